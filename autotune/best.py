"""The best model out of a study: retrain the best trial, score it on the test split, export it.

The best complete trial's configuration is trained again exactly as its trial trained it: the
same training split, the same seed (recorded on the trial), the same
optimizer and decay schedule (built for the study's ``max_epochs``), and the same batches, but
stopped after the epoch at which the trial reached its best value (its ``best_epoch``). That is
the model the search scored, so its validation figure reproduces the trial's value, and the
validation split stays unseen by the weights. Only then is the model evaluated, once, on the
test split that the search never saw.

The exported model takes raw inputs: the trained model behind built-in Keras layers that
encode them as training did (:func:`autotune.data.preprocess.keras_inputs`), and it gives one
probability per class. ``metadata.json`` says how to call it; :mod:`autotune.predict` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune import files
from autotune import trial as trial_module
from autotune.data.preprocess import Preprocessing, input_name
from autotune.data.schema import CLASSIFICATION
from autotune.errors import ModelError, OutputError
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
        model: The trained ``keras.Model``, which takes the encoded arrays.
        task: ``"classification"`` or ``"regression"``.
        classes: The class labels, in the order of the model's probabilities.
        preprocessing: What encodes raw inputs as the model's arrays.
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
    task: str = CLASSIFICATION
    classes: tuple[Any, ...] = ()
    preprocessing: Preprocessing | None = None

    @property
    def target(self) -> str | None:
        """The name of the target: a CSV's column, an npz file's array; None otherwise."""
        return self.data.get("target") or self.data.get("y")

    def metadata(self) -> dict[str, Any]:
        """What :func:`export` writes next to the model, as plain data."""
        preprocessing = self.preprocessing or Preprocessing()
        columns = preprocessing.columns
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
            "task": self.task,
            "target": self.target,
            "classes": list(self.classes),
            "features": [{"name": c.name, "type": c.type} for c in columns],
            "inputs": _inputs(preprocessing),
            "outputs": _outputs(self.task, self.classes),
            "preprocessing": preprocessing.as_dict(),
        }


def _inputs(preprocessing: Preprocessing) -> dict[str, Any]:
    """How to call the exported model."""
    if preprocessing.columns:
        names = [input_name(c.name) for c in preprocessing.columns]
        return {
            "kind": "columns",
            "names": names,
            "call": "model({name: column, ...}): one column of raw values per feature, one row"
            " per example; numbers for the number features, strings for the text ones",
        }
    shape = list(preprocessing.shape)
    if preprocessing.rescale is not None:
        return {
            "kind": "images",
            "shape": shape,
            "dtype": "float32",
            "call": f"model(x): x holds images of shape {shape}, raw pixel values 0 to 255",
        }
    return {
        "kind": "array",
        "shape": shape,
        "dtype": "float32",
        "call": f"model(x): x holds raw examples of shape {shape}, one per row",
    }


def _outputs(task: str, classes: tuple[Any, ...]) -> dict[str, Any]:
    """What the exported model gives."""
    if task == CLASSIFICATION:
        return {
            "kind": "probabilities",
            "columns": list(classes),
            "description": "one probability per class, in the order of classes",
        }
    return {"kind": "value", "description": "the predicted value of the target"}


def raw_model(best: BestModel) -> Any:
    """The model to export: ``best.model`` behind the layers that encode raw inputs as training
    did, ending in one probability per class (a single sigmoid unit becomes two columns, and
    logits become probabilities).

    Raises:
        ModelError: The model cannot be called on Keras inputs.
    """
    import keras

    from autotune.data.preprocess import keras_inputs

    assert best.preprocessing is not None, "the data set's preprocessing is needed"
    inputs, x = keras_inputs(best.preprocessing)
    try:
        y = best.model(x)
    except Exception as e:
        raise ModelError(
            f"Cannot export the model: it cannot be called on a Keras input"
            f" ({type(e).__name__}: {e}). Build it as a functional keras.Model, or give its"
            f" class a call() that Keras can trace."
        ) from e
    if best.task == CLASSIFICATION:
        one = int(y.shape[-1]) == 1
        if _from_logits(best.model):
            y = keras.layers.Activation("sigmoid" if one else "softmax")(y)
        if one:  # a sigmoid: the probability of the second class, after the first
            y = keras.layers.Concatenate()([keras.layers.Rescaling(-1.0, offset=1.0)(y), y])
    return keras.Model(inputs, y)


def _from_logits(model: Any) -> bool:
    """Whether the model was compiled with a loss that takes logits, not probabilities."""
    loss = getattr(model, "loss", None)
    get_config = getattr(loss, "get_config", None)
    return bool(callable(get_config) and get_config().get("from_logits"))


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
        task=dataset.task,
        classes=dataset.classes,
        preprocessing=dataset.preprocessing,
    )


def export(best: BestModel, directory: str | Path, *, force: bool = False) -> Path:
    """Writes the model that takes raw inputs (``model.keras``, see :func:`raw_model`) and its
    ``metadata.json`` into a new folder that becomes ``directory`` only once both are complete.

    Args:
        force: Replace ``directory`` if it exists.

    Returns:
        The directory.

    Raises:
        OutputError: ``directory`` exists (without ``force``) or cannot be written; nothing is
            left half-written.
        ModelError: The model cannot take the preprocessing in front of it.
    """
    directory = files.check_target(directory, force=force)
    model = raw_model(best)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"Cannot export the model to {directory}: {e.strerror or e}.") from e
    with files.new_folder(directory) as folder:
        model.save(folder / MODEL_FILE)
        (folder / METADATA_FILE).write_text(
            json.dumps(best.metadata(), indent=2) + "\n", encoding="utf-8"
        )
    return directory
