"""The best model out of a study: retrain the best trial, score it on the test split, export it.

The best complete trial's configuration is trained again exactly as its trial trained it: the
same training split, the same seed (:func:`autotune.training.trial_seed` of that trial), the same
optimizer and decay schedule (built for the study's ``max_epochs``), and the same batches, but
stopped after the epoch at which the trial reached its best value (its ``best_epoch``). That is
the model the search scored, so its validation figure reproduces the trial's value, and the
validation split stays unseen by the weights. Only then is the model evaluated, once, on the
test split that the search never saw.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.errors import AutotuneError

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
TRAINED_ON = "train"
_VERSIONED = ("autotune", "tensorflow", "keras", "optuna", "numpy", "scikit-learn")


@dataclass
class BestModel:
    """The best trial's configuration, trained again, and its scores.

    Attributes:
        study: The study's name.
        trial: The number of the best trial.
        metric: The study's metric (e.g. ``val_accuracy``).
        search_value: The trial's value in the search.
        params: The trial's params.
        epochs: Epochs trained: the trial's ``best_epoch``.
        seed: The seed of the weights and the shuffling.
        data: The study's ``[data]`` table.
        sizes: Samples per split.
        validation, test: Keras' metrics (``loss``, ``accuracy``, ...) on each split.
        model: The trained ``keras.Model``.
    """

    study: str
    trial: int
    metric: str
    search_value: float
    params: dict[str, Any]
    epochs: int
    seed: int
    data: dict[str, Any]
    sizes: dict[str, int]
    validation: dict[str, float]
    test: dict[str, float]
    model: Any = field(repr=False, default=None)

    def metadata(self) -> dict[str, Any]:
        """What :func:`export` writes next to the model, as plain data."""
        return {
            "study": self.study,
            "trial": self.trial,
            "metric": self.metric,
            "search_value": self.search_value,
            "params": self.params,
            "epochs": self.epochs,
            "seed": self.seed,
            "trained_on": TRAINED_ON,
            "metrics": {"validation": self.validation, "test": self.test},
            "data": {"table": self.data, "sizes": self.sizes},
            "versions": versions(),
        }


def retrain(study: Any) -> BestModel:
    """Trains the best complete trial of ``study`` again and evaluates it on validation and test.

    Args:
        study: An ``optuna.Study`` made by ``autotune run`` (its study file is stored with it).

    Raises:
        AutotuneError: The study has no complete trial, or was not made by autotune.
    """
    from autotune import runner, training
    from autotune.backend import setup as setup_backend

    spec = runner.stored_spec(study)
    trial = runner.best_trial(study)
    if trial is None:
        raise AutotuneError(
            f"Study '{study.study_name}' has no complete trial yet, so it has no best model."
            f" Run it first: autotune run --study {study.study_name}"
        )
    setup_backend()
    import keras

    dataset = spec.dataset()
    params = dict(trial.params)
    attrs = trial.user_attrs
    epochs = int(attrs.get("best_epoch") or attrs.get("epochs") or spec.max_epochs)
    seed = training.trial_seed(spec.seed, trial.number)
    # The same steps as the trial's own fit, so the same weights come out.
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = training.build_model(spec, params, dataset)
    training.compile_model(model, params, dataset, spec.max_epochs)
    batch_size = training.batch_size_for(params, len(dataset.x_train))
    model.fit(
        training.pipeline(dataset.x_train, dataset.y_train, batch_size, shuffle_seed=seed),
        epochs=epochs,
        shuffle=False,
        verbose=0,
    )
    scores = {
        split: model.evaluate(
            training.pipeline(x, y, training.VALIDATION_BATCH), return_dict=True, verbose=0
        )
        for split, x, y in (
            ("validation", dataset.x_val, dataset.y_val),
            ("test", dataset.x_test, dataset.y_test),
        )
    }
    return BestModel(
        study=study.study_name,
        trial=trial.number,
        metric=spec.metric,
        search_value=float(trial.value),
        params=params,
        epochs=epochs,
        seed=seed,
        data=dict(spec.data),
        sizes=dataset.sizes(),
        validation={k: float(v) for k, v in scores["validation"].items()},
        test={k: float(v) for k, v in scores["test"].items()},
        model=model,
    )


def describe(best: BestModel) -> list[str]:
    """Lines for the terminal: where the model comes from, then validation and test side by side."""
    lines = [
        f"Best trial {best.trial} of study '{best.study}': {best.metric} {best.search_value:.4f}"
        f" in the search.",
        f"Retrained on the training split ({best.sizes['train']} samples) for {best.epochs}"
        f" epoch{'s' if best.epochs != 1 else ''} (the trial's best), seed {best.seed}.",
        f"{'metric':<12}{'validation':>12}{'test':>12}",
    ]
    for name in sorted(best.validation):
        validation, test = best.validation[name], best.test.get(name, float("nan"))
        lines.append(f"{name:<12}{validation:>12.4f}{test:>12.4f}")
    lines.append(
        f"Validation: {best.sizes['validation']} samples, the search's own; test:"
        f" {best.sizes['test']} samples, never seen by the search."
    )
    return lines


def export(best: BestModel, directory: str | Path) -> Path:
    """Writes the model (``model.keras``) and its ``metadata.json`` into ``directory``.

    Returns:
        The directory.

    Raises:
        AutotuneError: The directory cannot be created or written.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        best.model.save(directory / MODEL_FILE)
        (directory / METADATA_FILE).write_text(
            json.dumps(best.metadata(), indent=2) + "\n", encoding="utf-8"
        )
    except OSError as e:
        raise AutotuneError(f"Cannot export the model to {directory}: {e.strerror or e}.") from None
    return directory


def versions() -> dict[str, str]:
    """The versions of Python and of the packages that trained and can load the model."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for package in _VERSIONED:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out
