"""autotune: hyperparameter search for TensorFlow/Keras models, built on Optuna.

The Python API mirrors the CLI::

    import autotune

    study = autotune.run(study="circles", n_trials=20)   # an optuna.Study
    print(study.best_params)

    spec = autotune.load_spec("./my_study.toml")          # a validated StudySpec
    study = autotune.run(spec, storage="sqlite:///studies.db")
    study = autotune.load_study("circles")                # a stored study, as it is
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from autotune.errors import (
    AutotuneError,
    DataError,
    Interrupted,
    ModelError,
    NoCompleteTrialError,
    SearchFailedError,
    StorageError,
    StudyMismatchError,
    StudyNotFoundError,
    StudySpecError,
    TrialFailed,
)
from autotune.spec import StudySpec, from_dict, resolve
from autotune.study import load_study

__all__ = [
    "AutotuneError",
    "DataError",
    "Interrupted",
    "ModelError",
    "NoCompleteTrialError",
    "SearchFailedError",
    "StorageError",
    "StudyMismatchError",
    "StudyNotFoundError",
    "StudySpec",
    "StudySpecError",
    "TrialFailed",
    "load_spec",
    "load_study",
    "run",
]


def load_spec(study: str | os.PathLike[str] | Mapping[str, Any] | StudySpec) -> StudySpec:
    """A study, validated: by name (``"circles"``), by a study file's path, or from a dict
    holding a study file's contents (whose relative paths start at the current directory).

    Raises:
        AutotuneError: The study cannot be found, or is not valid.
    """
    if isinstance(study, StudySpec):
        return study
    if isinstance(study, Mapping):
        return from_dict(study, source="<dict>")
    return resolve(os.fspath(study))


def run(study: str | os.PathLike[str] | Mapping[str, Any] | StudySpec, **kwargs: Any) -> Any:
    """Runs or resumes a study and returns the ``optuna.Study``.

    Args:
        study: Anything :func:`load_spec` takes.
        **kwargs: ``storage``, ``n_trials``, ``timeout``, ``sampler``, ``pruner``,
            ``max_epochs``, ``seed``, ``workers``, ``warm_start``, ``top``, ``echo``; see
            :func:`autotune.runner.run`.
    """
    from autotune.runner import run as _run

    return _run(load_spec(study), **kwargs)
