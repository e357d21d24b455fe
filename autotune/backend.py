"""TensorFlow for one process: imported once, quietly, with a thread budget.

TensorFlow prints CUDA probing chatter to the process's stderr (file descriptor 2) from C++
before any Python logging is set up, on every start and in every worker, even on machines
without a GPU. It is captured while TensorFlow starts, and only lines that are not known
chatter are passed on, so real errors still show.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator

# Start-up lines of TensorFlow / XLA that say nothing to a user of a CPU-only machine.
_CHATTER = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|"
    r"failed call to cuInit|cuda_dnn\.cc|cuda_fft\.cc|cuda_blas\.cc|computation_placer\.cc|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|This TensorFlow binary is optimized|"
    r"rebuild TensorFlow with the appropriate compiler flags|oneDNN custom operations"
)
_ready = False


def setup(threads: int | None = None) -> None:
    """Imports TensorFlow for this process, once, and caps its thread pools.

    N workers on C cores each want about C/N threads: left alone, every worker's pools take
    every core and the workers slow each other down. Must run before TensorFlow's first op.

    Args:
        threads: Intra- and inter-op threads, or None for TensorFlow's default (all cores).
    """
    global _ready
    if _ready:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # A GPU's memory as trials need it, not the whole card at once (see autotune.devices).
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    with tempfile.TemporaryFile(mode="w+b") as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            # Each trial's new model traces new functions, which TensorFlow's Python logger
            # reports as "retracing" warnings; they are expected here, not a problem to fix.
            tf.get_logger().setLevel("ERROR")
            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            tf.config.list_physical_devices()  # the device probe, which prints its own chatter
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip() and not _CHATTER.search(line):
                    print(line, file=sys.stderr)
    _ready = True


@contextlib.contextmanager
def fresh_graphs() -> Iterator[None]:
    """Runs the block on a cleared Keras session and frees the graphs it traced when it ends.

    Keras' TensorFlow optimizer sums gradients through ``tf.custom_gradient``, which in a traced
    function registers a gradient function, named ``CustomGradient-N``, in TensorFlow's global
    gradient registry and never takes it out (tensorflow/tensorflow#97697). That function holds
    the traced train step's graph, and with it the model: about 4.6 MB per ``fit`` on a small MLP,
    for the life of the process, whatever ``clear_session`` does. The entries that the block
    added are dropped, since nothing can differentiate through a finished trial's graphs, and
    the graphs are then collected (and with them the functions of the trial's ``tf.data``
    pipeline, which TensorFlow removes from its function library as they are collected).
    """
    import keras

    registry = _gradient_registry()
    before = set(registry)
    keras.backend.clear_session(free_memory=False)
    try:
        yield
    finally:
        for name in set(registry) - before:
            if name.startswith("CustomGradient-"):
                del registry[name]
        keras.backend.clear_session(free_memory=False)
        gc.collect()


@contextlib.contextmanager
def settled() -> Iterator[Callable[[], None]]:
    """Yields a function that exempts what is alive from the cycle collector's scans, until
    the block ends.

    Once TensorFlow, Keras and Optuna are loaded, a full collection scans a million objects
    that outlive every trial, and takes about 0.2 s. Trials collect after each one
    (:func:`fresh_graphs`), so once the function has been called only what was made since is
    scanned. The objects are handed back to the collector at the end, so that a process that
    runs a study and goes on (a notebook, say) keeps its garbage collection as it was.
    """

    def freeze() -> None:
        gc.collect()
        gc.freeze()

    try:
        yield freeze
    finally:
        gc.unfreeze()


def _gradient_registry() -> dict[str, object]:
    """TensorFlow's global registry of gradient functions (a private dict; empty if moved)."""
    from tensorflow.python.framework import ops

    return getattr(getattr(ops, "_gradient_registry", None), "_registry", {})
