"""TensorFlow for one process: imported once, quietly, with a thread budget.

TensorFlow prints CUDA probing chatter to the process's stderr (file descriptor 2) from C++
before any Python logging is set up, on every start and in every worker, even on machines
without a GPU. It is captured while TensorFlow starts, and only lines that are not known
chatter are passed on, so real errors still show.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

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
