"""The best model out of a study: retrain the best trial, score it on the test split, export it.

The best complete trial's configuration is trained again exactly as its trial trained it: the
same training split, the same seed (recorded on the trial), the same
optimizer and decay schedule (built for the study's ``max_epochs``), and the same batches, but
stopped after the epoch at which the trial reached its best value (its ``best_epoch``). That is
the model the search scored, so its validation figure reproduces the trial's value, and the
validation split stays unseen by the weights. Only then is the model evaluated, once, on the
test split that the search never saw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune import files
from autotune import trial as trial_module
from autotune.errors import OutputError
from autotune.versions import MODEL_PACKAGES, versions

if TYPE_CHECKING:
    import optuna

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
TRAINED_ON = "train"


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
            "versions": versions(MODEL_PACKAGES),
        }


def retrain(study: optuna.Study, trial: optuna.trial.FrozenTrial | None = None) -> BestModel:
    """Trains a complete trial of ``study`` again (its best one by default) and evaluates it on
    the validation and the test split.

    Args:
        study: An ``optuna.Study`` made by ``autotune run`` (its study file is stored with it).
        trial: The complete trial to train again; by default the study's best.

    Raises:
        NoCompleteTrialError: The study has no complete trial.
        StudyMismatchError: The study was not made by autotune.
    """
    from autotune import study as study_module
    from autotune.backend import fresh_graphs, setup
    from autotune.data import load

    spec = study_module.stored_spec(study)
    if trial is None:
        trial = study_module.require_best(study)
    setup()
    dataset = load(spec.data, spec.folder, where=spec.source)
    params = dict(trial.params)
    attrs = trial.user_attrs
    epochs = int(attrs.get("best_epoch") or attrs.get("epochs") or spec.max_epochs)
    seed = int(attrs.get("seed", trial_module.trial_seed(spec.seed, trial.number)))
    # The same seed, schedule and batches as the trial's own fit, so the same weights come out.
    with fresh_graphs():
        trained = trial_module.train(spec, params, dataset, seed=seed, epochs=epochs)
        scores = trial_module.evaluate(trained.model, dataset, spec)
    return BestModel(
        study=study.study_name,
        trial=trial.number,
        metric=spec.metric,
        search_value=float(trial.value or 0.0),
        params=params,
        epochs=epochs,
        seed=seed,
        data=dict(spec.data),
        sizes=dataset.sizes(),
        validation=scores["validation"],
        test=scores["test"],
        model=trained.model,
    )


def export(best: BestModel, directory: str | Path, *, force: bool = False) -> Path:
    """Writes the model (``model.keras``) and its ``metadata.json`` into a new folder that
    becomes ``directory`` only once both are complete.

    Args:
        force: Replace ``directory`` if it exists.

    Returns:
        The directory.

    Raises:
        OutputError: ``directory`` exists (without ``force``) or cannot be written; nothing is
            left half-written.
    """
    directory = files.check_target(directory, force=force)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"Cannot export the model to {directory}: {e.strerror or e}.") from e
    with files.new_folder(directory) as folder:
        best.model.save(folder / MODEL_FILE)
        (folder / METADATA_FILE).write_text(
            json.dumps(best.metadata(), indent=2) + "\n", encoding="utf-8"
        )
    return directory
