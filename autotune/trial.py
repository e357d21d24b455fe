"""The trial seam: one configuration, built, compiled, trained and scored.

Everything that trains a model goes through :func:`train`: the search's objective (one call
per trial, fed to Optuna), ``autotune best`` (the best trial's configuration again, for its
best epoch) and the benchmark scripts. Nothing else in autotune calls ``fit``.

A :class:`Reporter` receives each epoch's metrics. It checks them (the study's metric is
there; the loss is finite, else the trial diverged), counts the epochs and, in the search,
tells Optuna's pruner, which may end the trial there. Early stopping ends a trial whose metric
stopped improving and restores its best weights; the trial's value is the best validation
metric it reached.

What a configuration does wrong ends that trial only, as :class:`~autotune.errors.TrialFailed`:
its builder raising for these params, its loss diverging, running out of memory. What is wrong
for every configuration (a builder that returns no ``keras.Model``, a metric the model never
logs) is an :class:`~autotune.errors.AutotuneError` and stops the study; :func:`check_model`
finds most of those before the first trial.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autotune import data as data_module
from autotune import references
from autotune.backend import fresh_graphs
from autotune.console import format_params
from autotune.errors import (
    AutotuneError,
    ModelError,
    TrialDiverged,
    TrialFailed,
    TrialOutOfMemory,
)
from autotune.optimizers import make_optimizer
from autotune.space import sample, typical
from autotune.spec import StudySpec

if TYPE_CHECKING:
    import optuna

    from autotune.data import Dataset

Params = Mapping[str, Any]

_LOSSES = {
    data_module.CLASSIFICATION: ("sparse_categorical_crossentropy", ["accuracy"]),
    data_module.REGRESSION: ("mse", ["mae"]),
}
# Keras runs this many batches per call into TensorFlow: small models spend most of an epoch in
# per-step Python overhead otherwise. Callbacks here act per epoch, so nothing is lost.
STEPS_PER_EXECUTION = 32
VALIDATION_BATCH = 1024
STOP_REASONS = ("completed", "early-stopped", "pruned", "diverged", "oom", "failed", "interrupted")


def trial_seed(study_seed: int, trial_number: int) -> int:
    """The seed of one trial's weights and shuffling: fixed by the study seed and the trial."""
    return (study_seed * 100_003 + trial_number) % (2**31 - 1)


def batch_size_for(params: Params, n_train: int) -> int:
    """The batch size to train with; values at or above the training-set size are full-batch."""
    return max(1, min(int(params.get("batch_size", 32)), n_train))


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


def compile_model(model: Any, params: Params, dataset: Dataset, max_epochs: int) -> None:
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


def build_model(spec: StudySpec, params: Params, dataset: Dataset) -> Any:
    """Builds the family's model for ``params`` and checks that it is a ``keras.Model``.

    Raises:
        TrialFailed: The builder raised for these params; the search goes on without them.
        ModelError: The builder returned something other than a ``keras.Model``.
    """
    import keras

    family = spec.family
    try:
        model = family.build(params, dataset.input_shape, dataset.n_outputs)
    except AutotuneError as e:
        raise type(e)(f"{spec.source}: {e}") from e
    except Exception as e:
        raise _failure(
            e,
            f"{_label(spec)} raised {references.describe(e, _file_of(family.build))} when"
            f" building with {format_params(params)}, input_shape={dataset.input_shape},"
            f" n_outputs={dataset.n_outputs}",
        ) from e
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"{_label(spec)} returned {type(model).__name__}, not a keras.Model. Make it return"
            f" the model, e.g. keras.Model(inputs, outputs)."
        )
    return model


def _label(spec: StudySpec) -> str:
    return f"{spec.source}: model '{spec.model}'"


def _file_of(function: Any) -> str | None:
    code = getattr(function, "__code__", None)
    return code.co_filename if code else None


class Reporter:
    """Receives one epoch's metrics at a time; checks them, counts epochs, feeds the pruner.

    Args:
        metric: The study's metric, which every epoch must report.
        prune: Called with the 0-based epoch and the metric's value; raises
            ``optuna.TrialPruned`` to end the trial there. None outside a search.

    Attributes:
        epochs: Epochs reported so far.
        seconds: Wall time spent in reporting (the pruner's storage writes and decision).
    """

    def __init__(self, metric: str, prune: Callable[[int, float], None] | None = None) -> None:
        self.metric = metric
        self.prune = prune
        self.epochs = 0
        self.seconds = 0.0

    def __call__(self, epoch: int, logs: Mapping[str, float]) -> None:
        """Takes epoch ``epoch`` (counted from 0) and its metrics.

        Raises:
            AutotuneError: The study's metric is not among them (no configuration can fix that).
            TrialDiverged: The loss is NaN or infinite.
            optuna.TrialPruned: The pruner ended the trial.
        """
        self.epochs = epoch + 1
        if self.metric not in logs:
            # optuna-integration only warns here, so pruning would silently never happen.
            raise AutotuneError(
                f"Metric '{self.metric}' is not in the logged metrics"
                f" ({', '.join(sorted(logs))}). Set metric to one of them."
            )
        loss = logs.get("loss")
        if loss is None or not math.isfinite(loss):
            raise TrialDiverged(f"loss became {loss} at epoch {epoch + 1}")
        if self.prune is not None:
            start = time.perf_counter()
            try:
                self.prune(epoch, float(logs[self.metric]))
            finally:
                self.seconds += time.perf_counter() - start

    def keras_callback(self) -> Any:
        """This reporter as a Keras callback, called at the end of every epoch."""
        import keras

        reporter = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                reporter(epoch, logs or {})

        return Callback()


def optuna_pruning(trial: optuna.Trial) -> Callable[[int, float], None]:
    """Reports each epoch's value to ``trial`` and ends it when Optuna's pruner says so."""
    import optuna

    def prune(epoch: int, value: float) -> None:
        trial.report(value, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned(f"Trial was pruned at epoch {epoch}.")

    return prune


@dataclass
class Trained:
    """One configuration, trained.

    Attributes:
        model: The trained ``keras.Model`` (with its best weights, when early stopping ended it).
        epochs: Epochs trained.
        best_epoch: The 1-based epoch of the best value of the study's metric (the last epoch
            when the metric was not monitored).
        value: The study's metric at ``best_epoch``, or None when it was not monitored.
        stop_reason: ``completed`` or ``early-stopped``.
        seconds: Wall time per phase: ``build`` (build and compile), ``fit`` (training and
            validation) and ``report`` (the reporter's share of ``fit``).
    """

    model: Any
    epochs: int
    best_epoch: int
    value: float | None
    stop_reason: str
    seconds: dict[str, float] = field(default_factory=dict)


def train(
    spec: StudySpec,
    params: Params,
    dataset: Dataset,
    *,
    seed: int,
    reporter: Reporter | None = None,
    epochs: int | None = None,
    validation: Any = None,
) -> Trained:
    """Builds, compiles and trains one configuration on the training split.

    Run it inside :func:`autotune.backend.fresh_graphs`, which frees what it traced.

    Args:
        spec: The study.
        params: The configuration.
        dataset: The study's data.
        seed: Seeds the weights and the shuffling (:func:`trial_seed`).
        reporter: Takes every epoch's metrics; with it, the validation split is scored after
            every epoch and early stopping watches the study's metric.
        epochs: Train exactly this many epochs, without validation or early stopping (how
            ``best`` reproduces a trial's best epoch); by default up to ``spec.max_epochs``.
        validation: A ready validation pipeline, to reuse across trials.

    Raises:
        TrialFailed: This configuration failed (see the module's docstring).
        optuna.TrialPruned: The reporter's pruner ended it.
        AutotuneError: A mistake no configuration can get around.
    """
    import keras

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    try:
        model = build_model(spec, params, dataset)
        compile_model(model, params, dataset, spec.max_epochs)
        seconds["build"] = time.perf_counter() - start
        callbacks: list[Any] = []
        early_stopping = None
        if reporter is not None:
            early_stopping = keras.callbacks.EarlyStopping(
                monitor=spec.metric,
                mode="max" if spec.direction == "maximize" else "min",
                patience=spec.patience,
                min_delta=spec.min_delta,
                restore_best_weights=True,
            )
            callbacks = [reporter.keras_callback(), early_stopping]
            if validation is None:
                validation = pipeline(dataset.x_val, dataset.y_val, VALIDATION_BATCH)
        fitted = time.perf_counter()
        history = model.fit(
            pipeline(
                dataset.x_train,
                dataset.y_train,
                batch_size_for(params, len(dataset.x_train)),
                shuffle_seed=seed,
            ),
            validation_data=validation if reporter is not None else None,
            epochs=epochs or spec.max_epochs,
            shuffle=False,  # the pipeline shuffles
            verbose=0,
            callbacks=callbacks,
        )
        seconds["fit"] = time.perf_counter() - fitted
        seconds["report"] = reporter.seconds if reporter is not None else 0.0
    except (AutotuneError, TrialFailed, KeyboardInterrupt):
        raise
    except Exception as e:
        if _is_pruned(e):
            raise
        raise _failure(e, f"training raised {references.describe(e)}") from e
    trained_epochs = len(history.epoch)
    values = history.history.get(spec.metric) if reporter is not None else None
    if not values:
        return Trained(model, trained_epochs, trained_epochs, None, "completed", seconds)
    best = _best_index(values, spec.direction)
    stopped = early_stopping is not None and early_stopping.stopped_epoch > 0
    return Trained(
        model, trained_epochs, best + 1, float(values[best]),
        "early-stopped" if stopped else "completed", seconds,
    )  # fmt: skip


def _failure(error: Exception, message: str) -> TrialFailed:
    """What ends this trial: out of memory (TensorFlow's ``ResourceExhaustedError``, Python's
    ``MemoryError``), or any other failure of the user's code for these params."""
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        return TrialOutOfMemory(f"out of memory: {message}")
    return TrialFailed(message)


def _is_pruned(error: BaseException) -> bool:
    import optuna

    return isinstance(error, optuna.TrialPruned)


def _best_index(values: list[float], direction: str) -> int:
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    if not finite:
        raise TrialDiverged("the validation metric was never finite")
    pick = max if direction == "maximize" else min
    # max and min keep the first of equal values: the epoch early stopping restores.
    return pick(finite, key=lambda pair: pair[0])[1]


def evaluate(model: Any, dataset: Dataset) -> dict[str, dict[str, float]]:
    """Keras' metrics of a trained model on the validation and the test split."""
    return {
        split: {
            name: float(value)
            for name, value in model.evaluate(
                pipeline(x, y, VALIDATION_BATCH), return_dict=True, verbose=0
            ).items()
        }
        for split, x, y in (
            ("validation", dataset.x_val, dataset.y_val),
            ("test", dataset.x_test, dataset.y_test),
        )
    }


# How many configurations the check build tries before it calls a failing builder broken.
CHECK_CONFIGURATIONS = 5


def check_model(spec: StudySpec, dataset: Dataset) -> None:
    """Builds and compiles one model, and runs it on a few training examples, before any trial.

    The model is built with one configuration of the space (see :func:`autotune.space.typical`),
    so a builder that returns something other than a ``keras.Model``, makes outputs that do not
    fit the data, or whose compiled metrics lack the study's metric stops the study before a
    trial is spent. A builder that raises is tried on a few more configurations, drawn at
    random: it stops the study only when it fails for all of them.

    Raises:
        ModelError: Naming the model, what does not fit and the fix.
    """
    first: TrialFailed | None = None
    for params in _configurations(spec.space, CHECK_CONFIGURATIONS):
        with fresh_graphs():
            try:
                model = build_model(spec, params, dataset)
            except TrialFailed as e:
                first = first or e
                continue
            _check_model(spec, model, params, dataset)
            return
    assert first is not None
    raise ModelError(f"{first}. Fix the builder.") from first


def _configurations(space: Any, count: int) -> Iterator[dict[str, Any]]:
    """The typical configuration of ``space``, then ``count - 1`` drawn at random (seeded)."""
    import optuna

    yield typical(space)
    draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(count - 1):
        yield sample(space, draws.ask())


def _check_model(spec: StudySpec, model: Any, params: Params, dataset: Dataset) -> None:
    import numpy as np

    label = _label(spec)
    compiled_by_builder = model.compiled
    compile_model(model, params, dataset, spec.max_epochs)
    x, y = dataset.x_train[:8], dataset.y_train[:8]
    try:
        predicted = model(x, training=False)
    except Exception as e:
        raise ModelError(
            f"{label}: its model cannot take the data's examples, of shape {dataset.input_shape}"
            f" ({references.describe(e)}). Start it with keras.Input(shape=input_shape)."
        ) from e
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
        ) from e
    needed = spec.metric.removeprefix("val_")
    if needed not in logged:
        raise ModelError(
            f"{label}: its model logs {', '.join(sorted(logged))}, but the study's metric"
            f" {spec.metric} needs {needed}. Add metrics=['{needed}'] to its compile(), or"
            f" leave compile() to autotune."
        )


def _check_outputs(predicted: Any, dataset: Dataset, label: str) -> None:
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


class Objective:
    """The search's objective, which Optuna calls once per trial: sample the params, seed,
    train through :func:`train` with a reporter that feeds the pruner, and record on the trial
    what happened.

    Built once per worker: it loads the data and checks the model before the first trial.
    ``last`` holds the figures of the last trial it trained (its model freed).

    Trial attributes: ``epochs`` (trained), ``best_epoch`` (1-based), ``seed``,
    ``stop_reason`` (one of :data:`STOP_REASONS`) and ``seconds`` (wall time of the trial).

    Raises:
        DataError, ModelError: From loading the data or checking the model.
    """

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        self.dataset = data_module.load(spec.data, spec.folder, where=spec.source)
        check_model(spec, self.dataset)
        self.validation = pipeline(self.dataset.x_val, self.dataset.y_val, VALIDATION_BATCH)
        self.last: Trained | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        start = time.perf_counter()
        spec = self.spec
        params = sample(spec.space, trial)
        seed = trial_seed(spec.seed, trial.number)
        trial.set_user_attr("seed", seed)
        reporter = Reporter(spec.metric, prune=optuna_pruning(trial))
        self.last = None
        try:
            with fresh_graphs():
                trained = train(
                    spec, params, self.dataset,
                    seed=seed, reporter=reporter, validation=self.validation,
                )  # fmt: skip
                # The trial keeps its figures; its model goes with the graphs it traced.
                trained.model = None
        except optuna.TrialPruned:
            _record(trial, "pruned", reporter.epochs, start)
            raise
        except TrialFailed as e:
            _record(trial, e.reason, reporter.epochs, start)
            raise
        except KeyboardInterrupt:
            _record(trial, "interrupted", reporter.epochs, start)
            raise
        self.last = trained
        _record(trial, trained.stop_reason, trained.epochs, start)
        trial.set_user_attr("best_epoch", trained.best_epoch)
        assert trained.value is not None  # a reporter was given
        return trained.value


def _record(trial: optuna.Trial, reason: str, epochs: int, start: float) -> None:
    trial.set_user_attr("stop_reason", reason)
    trial.set_user_attr("epochs", epochs)
    trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
