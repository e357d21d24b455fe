"""autotune: hyperparameter search for TensorFlow/Keras models, built on Optuna.

The Python API mirrors the CLI::

    import autotune

    study = autotune.run("circles", n_trials=20)   # an optuna.Study
    print(study.best_params)
"""

from __future__ import annotations

from typing import Any

from autotune.errors import AutotuneError, StorageError, StudyMismatchError, StudySpecError

__all__ = ["AutotuneError", "StorageError", "StudyMismatchError", "StudySpecError", "run"]


def run(study: Any, **kwargs: Any) -> Any:
    """Runs or resumes a study; see :func:`autotune.runner.run` for the arguments."""
    from autotune.runner import run as _run

    return _run(study, **kwargs)
