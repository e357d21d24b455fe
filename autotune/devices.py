"""Which GPU each local worker trains on.

``--gpus auto`` (the default) gives the local workers the GPUs TensorFlow sees, round robin;
``--gpus 0,2`` gives them those GPUs; ``--gpus none`` hides every GPU, so that they train on
the CPU. More workers than GPUs share them evenly; ``--trials-per-gpu K`` caps the workers on
one GPU (each needs to fit in its share of the card's memory), and more workers than that
allows is refused. A worker sees only its own GPU: its ``CUDA_VISIBLE_DEVICES`` is set
before TensorFlow starts in it. Memory growth is on in every process
(``TF_FORCE_GPU_ALLOW_GROWTH``), so that TensorFlow takes the memory a trial needs rather than
the whole card, and workers that share a card can.

With one worker, the run trains in its own process: an explicit list or ``none`` is set in
its environment before TensorFlow starts there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from autotune.errors import AutotuneError

AUTO, NONE = "auto", "none"
ENV = "CUDA_VISIBLE_DEVICES"


def parse(text: str) -> str | list[str]:
    """``auto``, ``none``, or a list of GPU numbers as given (``0,1``).

    Raises:
        AutotuneError: Anything else, with the forms allowed.
    """
    text = text.strip().lower()
    if text in (AUTO, NONE):
        return text
    ids = [part.strip() for part in text.split(",")]
    if not ids or not all(part.isdigit() for part in ids) or len(set(ids)) != len(ids):
        raise AutotuneError(
            f"--gpus {text!r} is not auto, none or a list of distinct GPU numbers such as 0,1."
        )
    return ids


def placement(workers: int, gpus: Sequence[str], per_gpu: int | None) -> list[str]:
    """Each worker's ``CUDA_VISIBLE_DEVICES``: the GPUs round robin, at most ``per_gpu`` each
    (None: as many as it takes).

    Raises:
        AutotuneError: More workers than the GPUs hold.
    """
    if per_gpu is not None and workers > len(gpus) * per_gpu:
        raise AutotuneError(
            f"--workers {workers} needs {workers} GPU places, but {len(gpus)} GPU(s)"
            f" ({', '.join(gpus)}) with --trials-per-gpu {per_gpu} give {len(gpus) * per_gpu}."
            f" Use fewer workers, raise --trials-per-gpu, or --gpus none for the CPU."
        )
    return [gpus[index % len(gpus)] for index in range(workers)]


def visible() -> list[str]:
    """The GPUs TensorFlow sees in this process, by their machine-wide numbers (what a child's
    ``CUDA_VISIBLE_DEVICES`` takes): ``CUDA_VISIBLE_DEVICES`` of this process maps TensorFlow's
    numbering back to the machine's."""
    from autotune.backend import setup

    setup()  # imports TensorFlow quietly
    import tensorflow as tf

    count = len(tf.config.list_physical_devices("GPU"))
    shown = os.environ.get(ENV)
    if shown is None:
        return [str(index) for index in range(count)]
    return [part.strip() for part in shown.split(",") if part.strip()][:count]


def before_tensorflow(gpus: str | list[str], workers: int) -> None:
    """With one worker, which trains in this process: shows it only the GPUs asked for (none
    for ``none``), before TensorFlow starts here.

    Raises:
        AutotuneError: TensorFlow runs in this process already (a notebook), on other GPUs.
    """
    if workers != 1 or gpus == AUTO:
        return
    wanted = "" if gpus == NONE else ",".join(gpus)
    import sys

    if "tensorflow" in sys.modules and os.environ.get(ENV) != wanted:
        raise AutotuneError(
            f"TensorFlow has started in this process already, so it cannot be given --gpus"
            f" {gpus if isinstance(gpus, str) else ','.join(gpus)}. Set {ENV}={wanted!r} before"
            f" it starts (or restart the notebook), or run with --workers 2 or more."
        )
    os.environ[ENV] = wanted


def plan(
    gpus: str | list[str], workers: int, per_gpu: int | None, seen: list[str]
) -> list[str | None]:
    """Each local worker's ``CUDA_VISIBLE_DEVICES`` (None: left as it is), given the GPUs this
    process's TensorFlow sees (``seen``).

    Raises:
        AutotuneError: A GPU asked for that is not there, or more workers than the GPUs hold.
    """
    if gpus == NONE:
        return ["" for _ in range(workers)]
    if gpus == AUTO:
        if not seen:
            return [None for _ in range(workers)]
        return list(placement(workers, seen, per_gpu))
    assert isinstance(gpus, list)
    missing = [g for g in gpus if g not in seen] if workers > 1 else gpus[len(seen) :]
    if missing:
        there = f"GPUs {', '.join(seen)}" if seen else "no GPU"
        raise AutotuneError(
            f"--gpus {','.join(gpus)}: GPU {', '.join(missing)} is not there; TensorFlow sees"
            f" {there} on this machine. Use --gpus auto (the GPUs there are, else the CPU) or"
            f" --gpus none."
        )
    if workers == 1:
        return [None]  # set in this process before TensorFlow started
    return list(placement(workers, gpus, per_gpu))


def describe() -> list[str]:
    """The devices TensorFlow sees, one per line, for ``autotune env``."""
    from autotune.backend import setup

    setup()  # imports TensorFlow quietly
    import tensorflow as tf

    lines = []
    for device in tf.config.list_physical_devices():
        name = device.name.removeprefix("/physical_device:")
        details = tf.config.experimental.get_device_details(device) if "GPU" in name else {}
        extra = f" ({details['device_name']})" if details.get("device_name") else ""
        lines.append(f"{name}{extra}")
    return lines


def current() -> str:
    """Where this process trains: ``GPU <n>`` (its machine-wide number) or ``CPU``."""
    seen = visible()
    return f"GPU {seen[0]}" if seen else "CPU"
