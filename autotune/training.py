"""One trial: sample the params, build and compile the model, fit it, and report to Optuna.

Each epoch's validation metric goes to Optuna (so the pruner can stop the trial) and to Keras'
early stopping (so a trial that stopped improving ends and keeps its best weights). The trial's
value is the best validation metric it reached. These trial attributes say what happened:

- ``epochs``: epochs trained;
- ``best_epoch``: the 1-based epoch of the best value;
- ``stop_reason``: ``completed``, ``early-stopped``, ``pruned``, ``diverged`` or ``interrupted``;
- ``seconds``: wall time of the trial.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

from autotune import data as data_module
from autotune import references
from autotune.backend import fresh_graphs
from autotune.errors import AutotuneError, ModelError, TrialDiverged
from autotune.optimizers import make_optimizer
from autotune.space import sample, typical
from autotune.spec import StudySpec

_LOSSES = {
    data_module.CLASSIFICATION: ("sparse_categorical_crossentropy", ["accuracy"]),
    data_module.REGRESSION: ("mse", ["mae"]),
}


def trial_seed(study_seed: int, trial_number: int) -> int:
    """The seed of one trial's weights and shuffling: fixed by the study seed and the trial."""
    return (study_seed * 100_003 + trial_number) % (2**31 - 1)


def batch_size_for(params: Mapping[str, Any], n_train: int) -> int:
    """The batch size to train with; values at or above the training-set size are full-batch."""
    return max(1, min(int(params.get("batch_size", 32)), n_train))


# Keras runs this many batches per call into TensorFlow: small models spend most of an epoch in
# per-step Python overhead otherwise. Callbacks here act per epoch, so nothing is lost.
STEPS_PER_EXECUTION = 32
VALIDATION_BATCH = 1024


def compile_model(model: Any, params: Mapping[str, Any], dataset: Any, max_epochs: int) -> None:
    """Compiles ``model`` with the optimizer and decay that ``params`` choose, and the task's loss.

    A model that its builder compiled keeps its own loss and metrics; only its optimizer is
    replaced, since the optimizer's parameters are searched for every family.
    """
    steps_per_epoch = math.ceil(len(dataset.x_train) / batch_size_for(params, len(dataset.x_train)))
    # Keras keeps the loss and metrics of an earlier compile() that a new one leaves out.
    loss, metrics = (None, None) if model.compiled else _LOSSES[dataset.task]
    model.compile(
        optimizer=make_optimizer(params, steps_per_epoch, max_epochs),
        loss=loss,
        metrics=metrics,
        steps_per_execution=min(STEPS_PER_EXECUTION, steps_per_epoch),
    )


def pipeline(x: Any, y: Any, batch_size: int, *, shuffle_seed: int | None = None) -> Any:
    """A cached ``tf.data`` pipeline over in-memory arrays, reshuffled every epoch if seeded.

    Keras' own path for NumPy arrays rebuilds its input pipeline every epoch, which costs small
    models several times the training itself.
    """
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle_seed is not None:
        data = data.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def build_model(spec: StudySpec, params: Mapping[str, Any], dataset: Any) -> Any:
    """Builds the family's model for ``params`` and checks that it is a ``keras.Model``.

    Raises:
        ModelError: The builder raised, or returned something else; the study cannot go on.
    """
    import keras

    family = spec.family()
    label = f"{spec.source}: model '{spec.model}'"
    try:
        model = family.build(params, dataset.input_shape, dataset.n_outputs)
    except AutotuneError as e:
        raise type(e)(f"{spec.source}: {e}") from None
    except Exception as e:
        from autotune.runner import format_params

        raise ModelError(
            f"{label} raised {references.describe(e, _file_of(family.build))} when building with"
            f" {format_params(params)}, input_shape={dataset.input_shape},"
            f" n_outputs={dataset.n_outputs}. Fix the builder."
        ) from None
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"{label} returned {type(model).__name__}, not a keras.Model. Make it return the"
            f" model, e.g. keras.Model(inputs, outputs)."
        )
    return model


def _file_of(function: Any) -> str | None:
    code = getattr(function, "__code__", None)
    return code.co_filename if code else None


def check_model(spec: StudySpec, space: Any, dataset: Any) -> None:
    """Builds and compiles one model, and runs it on a few training examples, before any trial.

    The model is built with one configuration of ``space`` (see :func:`autotune.space.typical`),
    so a builder that raises, returns something other than a ``keras.Model``, makes outputs
    that do not fit the data, or whose compiled metrics lack the study's metric stops the study
    before a trial is spent.

    Raises:
        ModelError: Naming the model, what does not fit and the fix.
    """
    with fresh_graphs():
        _check_model(spec, typical(space), dataset)


def _check_model(spec: StudySpec, params: Mapping[str, Any], dataset: Any) -> None:
    import numpy as np

    label = f"{spec.source}: model '{spec.model}'"
    model = build_model(spec, params, dataset)
    compiled_by_builder = model.compiled
    compile_model(model, params, dataset, spec.max_epochs)
    x, y = dataset.x_train[:8], dataset.y_train[:8]
    try:
        predicted = model(x, training=False)
    except Exception as e:
        raise ModelError(
            f"{label}: its model cannot take the data's examples, of shape {dataset.input_shape}"
            f" ({references.describe(e)}). Start it with keras.Input(shape=input_shape)."
        ) from None
    if not compiled_by_builder:
        _check_outputs(np.asarray(predicted), dataset, label)
    try:
        model.compute_loss(x=x, y=y, y_pred=predicted)
        logged = model.compute_metrics(x, y, predicted)
    except Exception as e:
        raise ModelError(
            f"{label}: the loss or metrics it was compiled with do not fit the data's targets"
            f" ({references.describe(e)}). Compile it with a loss for {dataset.task} with"
            f" {dataset.n_outputs} output(s), or leave compile() to autotune."
        ) from None
    needed = spec.metric.removeprefix("val_")
    if needed not in logged:
        raise ModelError(
            f"{label}: its model logs {', '.join(sorted(logged))}, but the study's metric"
            f" {spec.metric} needs {needed}. Add metrics=['{needed}'] to its compile(), or"
            f" leave compile() to autotune."
        )


def _check_outputs(predicted: Any, dataset: Any, label: str) -> None:
    """Checks that an uncompiled model's outputs fit the loss autotune compiles it with."""
    import numpy as np

    wanted = (dataset.n_outputs,)
    ending = "end it with autotune.models.output_layer(n_outputs)"
    if tuple(predicted.shape[1:]) != wanted:
        needs = (
            "1 output (regression)" if dataset.task == data_module.REGRESSION
            else f"{dataset.n_outputs} outputs, one per class"
        )  # fmt: skip
        raise ModelError(
            f"{label}: its model's outputs have shape {tuple(predicted.shape[1:])}, but the data"
            f" needs {needs}; {ending}, which is Dense(n_outputs) with a softmax for classes."
        )
    if dataset.task == data_module.CLASSIFICATION and not (
        (predicted >= 0).all() and np.allclose(predicted.sum(axis=-1), 1.0, atol=1e-3)
    ):
        raise ModelError(
            f"{label}: its model's outputs are not class probabilities (a row sums to"
            f" {predicted.sum(axis=-1)[0]:.3g}); {ending}, or compile the model yourself with"
            f" loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True) and"
            f" metrics=['accuracy']."
        )


class _Monitor:
    """Counts epochs, checks that the metric is logged, and fails a trial whose loss diverges."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.epochs = 0

    def callback(self) -> Any:
        import keras

        monitor = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                logs = logs or {}
                monitor.epochs = epoch + 1
                if monitor.metric not in logs:
                    # optuna-integration only warns here, so pruning would silently never happen.
                    raise AutotuneError(
                        f"Metric '{monitor.metric}' is not in Keras' logs"
                        f" ({', '.join(sorted(logs))}). Set metric to one of them."
                    )
                loss = logs.get("loss")
                if loss is None or not math.isfinite(loss):
                    raise TrialDiverged(f"loss became {loss} at epoch {epoch + 1}")

        return Callback()


class Objective:
    """The function Optuna calls once per trial; one per worker, holding the data set."""

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        self.space = spec.space()
        self.dataset = spec.dataset()
        check_model(spec, self.space, self.dataset)
        self.validation = pipeline(self.dataset.x_val, self.dataset.y_val, VALIDATION_BATCH)

    def __call__(self, trial: Any) -> float:
        start = time.perf_counter()
        params = sample(self.space, trial)
        with fresh_graphs():
            return self._train(trial, params, start)

    def _train(self, trial: Any, params: Mapping[str, Any], start: float) -> float:
        import keras
        import optuna
        from optuna_integration import KerasPruningCallback

        spec, dataset = self.spec, self.dataset
        seed = trial_seed(spec.seed, trial.number)
        keras.utils.set_random_seed(seed)
        model = build_model(spec, params, dataset)
        compile_model(model, params, dataset, spec.max_epochs)

        monitor = _Monitor(spec.metric)
        mode = "max" if spec.direction == "maximize" else "min"
        early_stopping = keras.callbacks.EarlyStopping(
            monitor=spec.metric,
            mode=mode,
            patience=spec.patience,
            min_delta=spec.min_delta,
            restore_best_weights=True,
        )
        try:
            history = model.fit(
                pipeline(
                    dataset.x_train,
                    dataset.y_train,
                    batch_size_for(params, len(dataset.x_train)),
                    shuffle_seed=seed,
                ),
                validation_data=self.validation,
                epochs=spec.max_epochs,
                shuffle=False,  # the pipeline shuffles
                verbose=0,
                callbacks=[
                    monitor.callback(),
                    early_stopping,
                    KerasPruningCallback(trial, spec.metric),
                ],
            )
        except (optuna.TrialPruned, TrialDiverged, KeyboardInterrupt) as e:
            _record(trial, _reasons()[type(e)], monitor.epochs, start)
            raise
        reason = "early-stopped" if early_stopping.stopped_epoch > 0 else "completed"
        _record(trial, reason, monitor.epochs, start)
        values = history.history[spec.metric]
        best_epoch = _best_index(values, mode)
        trial.set_user_attr("best_epoch", best_epoch + 1)
        return float(values[best_epoch])


def _reasons() -> dict[type, str]:
    import optuna

    return {optuna.TrialPruned: "pruned", TrialDiverged: "diverged", KeyboardInterrupt: "interrupted"}


def _record(trial: Any, reason: str, epochs: int, start: float) -> None:
    trial.set_user_attr("stop_reason", reason)
    trial.set_user_attr("epochs", epochs)
    trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))


def _best_index(values: list[float], mode: str) -> int:
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        raise TrialDiverged("the validation metric was never finite")
    pick = max if mode == "max" else min
    # max and min keep the first of equal values: the epoch early stopping restores.
    return pick(finite, key=lambda pair: pair[0])[1]
