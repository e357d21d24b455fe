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
from autotune import metrics as metrics_module
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
    if loss is not None and dataset.task == data_module.CLASSIFICATION:
        if _is_sigmoid(model, dataset):
            loss = "binary_crossentropy"  # and "accuracy" becomes Keras' binary accuracy
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
    assert family.build is not None, "a training loop builds its own model"
    try:
        model = family.build(params, dataset.input_shape, dataset.n_outputs)
    except AutotuneError as e:
        raise type(e)(f"{spec.source}: {e}") from e
    except Exception as e:
        raise _failure(
            e,
            f"{_model_label(spec)} raised {references.describe(e, _file_of(family.build))} when"
            f" building with {format_params(params)}, input_shape={dataset.input_shape},"
            f" n_outputs={dataset.n_outputs}",
        ) from e
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"{_model_label(spec)} returned {type(model).__name__}, not a keras.Model. Make it"
            f" return the model, e.g. keras.Model(inputs, outputs)."
        )
    return model


def _model_label(spec: StudySpec) -> str:
    return f"{spec.source}: model '{spec.model}'"


def _label(spec: StudySpec) -> str:
    """Names the user's code that trains: the training loop, the fit, or the model."""
    if spec.train:
        return f"{spec.source}: train '{spec.train}'"
    if spec.fit:
        return f"{spec.source}: fit '{spec.fit}'"
    return f"{spec.source}: model '{spec.model}'"


def _file_of(function: Any) -> str | None:
    code = getattr(function, "__code__", None)
    return code.co_filename if code else None


def _output_width(model: Any, dataset: Dataset) -> int:
    """The width of a model's output: a functional model knows it; a subclassed one is called
    on one example (which builds it)."""
    outputs = getattr(model, "outputs", None)
    if outputs:
        return int(outputs[0].shape[-1])
    return int(model(dataset.x_train[:1], training=False).shape[-1])


def _is_sigmoid(model: Any, dataset: Dataset) -> bool:
    """Whether a two-class model ends in one unit (a sigmoid) rather than one per class."""
    return dataset.n_outputs == 2 and _output_width(model, dataset) == 1


class TrainingData:
    """What a user's ``fit`` or training loop trains with, shaped by the trial's params.

    Attributes:
        train: The training split as a ``tf.data`` pipeline of ``(x, y)`` batches at the sampled
            batch size, reshuffled every epoch by the trial's seed.
        validation: The validation split, as ``(x, y)`` batches.
        x_train, y_train, x_val, y_val: The same splits as arrays (labels as class indices).
        epochs: How many epochs to train: ``max_epochs`` in the search; the trial's best epoch
            when ``autotune best`` trains it again.
        batch_size: The sampled batch size (the whole split for a larger one).
        steps_per_epoch: Batches per epoch.
        seed: The trial's seed; autotune has seeded Python, NumPy and TensorFlow with it.
        input_shape, n_outputs, task, classes: As in :class:`autotune.data.Dataset`.
    """

    def __init__(
        self,
        dataset: Dataset,
        params: Params,
        *,
        seed: int,
        epochs: int,
        max_epochs: int,
        validation: Any = None,
    ) -> None:
        self.dataset = dataset
        self.params = params
        self.seed = seed
        self.epochs = epochs
        self.max_epochs = max_epochs
        self.batch_size = batch_size_for(params, len(dataset.x_train))
        self.steps_per_epoch = math.ceil(len(dataset.x_train) / self.batch_size)
        self.train = pipeline(dataset.x_train, dataset.y_train, self.batch_size, shuffle_seed=seed)
        self.validation = (
            validation
            if validation is not None
            else pipeline(dataset.x_val, dataset.y_val, VALIDATION_BATCH)
        )
        self.x_train, self.y_train = dataset.x_train, dataset.y_train
        self.x_val, self.y_val = dataset.x_val, dataset.y_val
        self.input_shape, self.n_outputs = dataset.input_shape, dataset.n_outputs
        self.task, self.classes = dataset.task, dataset.classes

    def optimizer(self) -> Any:
        """A new Keras optimizer: the sampled one, at the sampled learning rate, with the
        sampled decay schedule laid over ``max_epochs`` epochs of ``steps_per_epoch`` steps."""
        return make_optimizer(self.params, self.steps_per_epoch, self.max_epochs)


class Reporter:
    """Takes one epoch's metrics at a time: checks them, counts epochs, feeds the pruner, and
    says when early stopping ends training.

    In a training loop, once per epoch, counting from 0::

        if reporter.report(epoch, loss=loss, val_accuracy=accuracy):
            break  # early stopping: the metric stopped improving

    ``report`` raises ``optuna.TrialPruned`` when the pruner ends the trial, and
    :class:`~autotune.errors.TrialDiverged` when the loss is NaN or infinite; the loop need not
    catch either. Values may be Python numbers, NumPy scalars or TensorFlow tensors.

    Args:
        spec: The study: its metric and direction, and its early stopping.
        prune: Called with the 0-based epoch and the metric's value; raises
            ``optuna.TrialPruned`` to end the trial there. None outside a search.
        early_stopping: Whether ``report`` says to stop once the metric stopped improving for
            ``patience`` epochs.
        label: Names the user's code in error messages.

    Attributes:
        epochs: Epochs reported so far.
        values: The study's metric at each epoch.
        stopped: Whether early stopping ended training.
        seconds: Wall time spent in the pruner (its storage writes and decision).
    """

    def __init__(
        self,
        spec: StudySpec,
        prune: Callable[[int, float], None] | None = None,
        *,
        early_stopping: bool = True,
        label: str = "",
    ) -> None:
        self.metric = spec.metric
        self.maximize = spec.direction == "maximize"
        self.patience = spec.patience if early_stopping else None
        self.min_delta = spec.min_delta
        self.prune = prune
        self.label = label or spec.source
        self.epochs = 0
        self.values: list[float] = []
        self.stopped = False
        self.seconds = 0.0
        self._reference: float | None = None
        self._wait = 0

    def report(self, epoch: int, logs: Mapping[str, Any] | None = None, **metrics: Any) -> bool:
        """Takes epoch ``epoch`` (counted from 0) and its metrics, as a dict or as keywords.

        Returns:
            True when early stopping ends training here.

        Raises:
            ModelError: The epochs are not 0, 1, 2, ... or the study's metric is missing.
            TrialDiverged: The loss is NaN or infinite.
            optuna.TrialPruned: The pruner ended the trial.
        """
        values = {name: _number(value) for name, value in {**(logs or {}), **metrics}.items()}
        if epoch != self.epochs:
            raise ModelError(
                f"{self.label} reported epoch {epoch} after"
                f" {f'epoch {self.epochs - 1}' if self.epochs else 'none'}; report every epoch"
                f" once, in order, counting from 0."
            )
        if self.metric not in values:
            raise ModelError(
                f"{self.label} reported {', '.join(sorted(values)) or 'no metric'} at epoch"
                f" {epoch}, but not the study's metric {self.metric}. Report it, or set metric"
                f" to one of those."
            )
        self.epochs = epoch + 1
        loss = values.get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrialDiverged(f"loss became {loss} at epoch {epoch + 1}")
        value = values[self.metric]
        self.values.append(value)
        self._early_stopping(epoch, value)
        if self.prune is not None:
            start = time.perf_counter()
            try:
                self.prune(epoch, value)
            finally:
                self.seconds += time.perf_counter() - start
        return self.stopped

    def _early_stopping(self, epoch: int, value: float) -> None:
        """Keras' EarlyStopping rule: an improvement beats the best by more than min_delta."""
        reference = self._reference
        improved = math.isfinite(value) and (
            reference is None
            or (
                value - self.min_delta > reference
                if self.maximize
                else value + self.min_delta < reference
            )
        )
        if improved:
            self._reference, self._wait = value, 0
            return
        self._wait += 1
        if self.patience is not None and self._wait >= self.patience and epoch > 0:
            self.stopped = True

    def best(self) -> tuple[int, float]:
        """The 1-based epoch of the best value of the study's metric, and that value.

        Raises:
            TrialDiverged: The metric was never finite.
        """
        finite = [(v, i) for i, v in enumerate(self.values) if math.isfinite(v)]
        if not finite:
            raise TrialDiverged(f"{self.metric} was never finite")
        pick = max if self.maximize else min
        # max and min keep the first of equal values: the epoch early stopping would restore.
        value, index = pick(finite, key=lambda pair: pair[0])
        return index + 1, value

    def keras_callback(self) -> Any:
        """This reporter as a Keras callback: it reports every epoch's logs and stops training
        when early stopping says so."""
        import keras

        reporter = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                if reporter.report(epoch, logs or {}):
                    self.model.stop_training = True

        return Callback()


def _number(value: Any) -> float:
    """A reported value as a float (a tensor, a NumPy scalar or a Python number)."""
    if hasattr(value, "numpy"):
        value = value.numpy()
    return float(value)


def _scores_callback(spec: StudySpec, data: TrainingData) -> Any:
    """A Keras callback that adds ``val_<name>`` for the metrics autotune scores itself
    (:mod:`autotune.metrics`) and the model does not log, before the reporter reads the logs."""
    import keras

    scorers = metrics_module.scored(data.task, list(_scored_names(spec)))
    if not scorers:
        return None

    class Scores(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if logs is None:
                return
            missing = {n: s for n, s in scorers.items() if f"val_{n}" not in logs}
            if not missing:
                return
            predicted = self.model.predict(data.validation, verbose=0)
            for name, value in metrics_module.score(missing, data.y_val, predicted).items():
                logs[f"val_{name}"] = value

    return Scores()


def _scored_names(spec: StudySpec) -> tuple[str, ...]:
    return (spec.metric.removeprefix("val_"), *spec.metrics)


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
        model: The trained ``keras.Model`` (as it is after its last epoch).
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
    """Builds and trains one configuration on the training split: with Keras' ``fit``, the
    user's ``fit``, or the user's training loop, as the study says.

    Run it inside :func:`autotune.backend.fresh_graphs`, which frees what it traced.

    Args:
        spec: The study.
        params: The configuration.
        dataset: The study's data.
        seed: Seeds the weights and the shuffling (:func:`trial_seed`).
        reporter: Takes every epoch's metrics; with it, the validation split is scored after
            every epoch and early stopping watches the study's metric.
        epochs: Train exactly this many epochs, without early stopping (how ``best``
            reproduces a trial's best epoch); by default up to ``spec.max_epochs``.
        validation: A ready validation pipeline, to reuse across trials.

    Raises:
        TrialFailed: This configuration failed (see the module's docstring).
        optuna.TrialPruned: The reporter's pruner ended it.
        AutotuneError: A mistake no configuration can get around.
    """
    import keras

    seconds: dict[str, float] = {"build": 0.0}
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    data = TrainingData(
        dataset, params, seed=seed, epochs=epochs or spec.max_epochs,
        max_epochs=spec.max_epochs, validation=validation,
    )  # fmt: skip
    try:
        if spec.loop is not None:
            reporter = reporter or Reporter(spec, early_stopping=False, label=_label(spec))
            model = _run_loop(spec, params, data, reporter)
        else:
            model = build_model(spec, params, dataset)
            compile_model(model, params, dataset, spec.max_epochs)
            seconds["build"] = time.perf_counter() - start
            _fit(spec, params, model, data, reporter)
        seconds["fit"] = time.perf_counter() - start - seconds["build"]
        seconds["report"] = reporter.seconds if reporter is not None else 0.0
    except (AutotuneError, TrialFailed, KeyboardInterrupt):
        raise
    except Exception as e:
        if _is_pruned(e):
            raise
        what = "training" if spec.loop is None and spec.fit_function is None else _label(spec)
        raise _failure(e, f"{what} raised {references.describe(e, _user_file(spec))}") from e
    if reporter is None or not reporter.values:
        return Trained(model, data.epochs, data.epochs, None, "completed", seconds)
    best_epoch, value = reporter.best()
    stop_reason = "early-stopped" if reporter.stopped else "completed"
    return Trained(model, reporter.epochs, best_epoch, value, stop_reason, seconds)


def _fit(
    spec: StudySpec, params: Params, model: Any, data: TrainingData, reporter: Reporter | None
) -> None:
    """Trains a compiled model with Keras' ``fit``, or with the user's ``fit``."""
    import keras

    callbacks: list[Any] = []
    if reporter is not None:
        scores = _scores_callback(spec, data)
        callbacks = [c for c in (scores, reporter.keras_callback()) if c is not None]
    if spec.fit_function is None:
        model.fit(
            data.train,
            validation_data=data.validation if reporter is not None else None,
            epochs=data.epochs,
            shuffle=False,  # the pipeline shuffles
            verbose=0,
            callbacks=callbacks,
        )
        return
    history = spec.fit_function(params, model, data, callbacks)
    if not isinstance(history, keras.callbacks.History):
        raise ModelError(
            f"{_label(spec)} returned {type(history).__name__}, not the History that"
            f" model.fit returns. End it with: return model.fit(...)"
        )


def _run_loop(spec: StudySpec, params: Params, data: TrainingData, reporter: Reporter) -> Any:
    """Runs the user's training loop and checks what it gave back."""
    import keras

    assert spec.loop is not None
    model = spec.loop(params, data, reporter)
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"{_label(spec)} returned {type(model).__name__}, not the trained keras.Model."
            f" End it with: return model"
        )
    if reporter.epochs == 0:
        raise ModelError(
            f"{_label(spec)} never called reporter.report(epoch, ...); call it once per epoch"
            f" with the metrics, {spec.metric} among them."
        )
    return model


def _user_file(spec: StudySpec) -> str | None:
    """The file of the user's code that trains, for the line of an error raised in it."""
    for function in (spec.loop, spec.fit_function, spec.family.build):
        if function is not None:
            return _file_of(function)
    return None


def _failure(error: Exception, message: str) -> TrialFailed:
    """What ends this trial: out of memory (TensorFlow's ``ResourceExhaustedError``, Python's
    ``MemoryError``), or any other failure of the user's code for these params."""
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        return TrialOutOfMemory(f"out of memory: {message}")
    return TrialFailed(message)


def _is_pruned(error: BaseException) -> bool:
    import optuna

    return isinstance(error, optuna.TrialPruned)


def compile_for_scoring(model: Any, dataset: Dataset) -> None:
    """Compiles a model that its training loop left uncompiled with the task's loss and
    metrics, so that it can be evaluated (its weights stay as they are)."""
    if model.compiled:
        return
    loss, metrics = _LOSSES[dataset.task]
    if dataset.task == data_module.CLASSIFICATION and _is_sigmoid(model, dataset):
        loss = "binary_crossentropy"
    model.compile(loss=loss, metrics=metrics)


def evaluate(model: Any, dataset: Dataset, spec: StudySpec) -> dict[str, dict[str, float]]:
    """A trained model's metrics on the validation and the test split: Keras' compiled ones and
    those autotune scores itself (:mod:`autotune.metrics`)."""
    compile_for_scoring(model, dataset)
    scorers = metrics_module.scored(dataset.task, list(_scored_names(spec)))
    out = {}
    for split, x, y in (
        ("validation", dataset.x_val, dataset.y_val),
        ("test", dataset.x_test, dataset.y_test),
    ):
        data = pipeline(x, y, VALIDATION_BATCH)
        scores = {
            name: float(value)
            for name, value in model.evaluate(data, return_dict=True, verbose=0).items()
        }
        missing = {n: s for n, s in scorers.items() if n not in scores}
        if missing:
            predicted = model.predict(data, verbose=0)
            scores.update(metrics_module.score(missing, y, predicted))
        out[split] = scores
    return out


# How many configurations the check tries before it calls failing user code broken.
CHECK_CONFIGURATIONS = 5
# The check trains on this many rows of each split, for at most CHECK_EPOCHS epochs.
CHECK_ROWS = 64
CHECK_EPOCHS = 2


def check_model(spec: StudySpec, dataset: Dataset) -> None:
    """Checks the study's model and training code on one configuration, before any trial.

    A builder's model is built, compiled and run on a few training examples, so a builder that
    returns something other than a ``keras.Model``, makes outputs that do not fit the data, or
    whose compiled metrics lack the study's metric stops the study before a trial is spent. A
    user's ``fit`` or training loop is run for an epoch or two on a few rows, so one that does
    not report each epoch, reports another metric, counts epochs wrong, or returns the wrong
    thing stops it too. Code that raises is tried on a few more configurations, drawn at random
    (see :func:`autotune.space.typical`): it stops the study only when it fails for all of them.

    Raises:
        ModelError: Naming the user's code, what does not fit and the fix.
    """
    first: TrialFailed | None = None
    for params in _configurations(spec.space, CHECK_CONFIGURATIONS):
        with fresh_graphs():
            try:
                _check(spec, params, dataset)
                return
            except TrialFailed as e:
                first = first or e
    assert first is not None
    what = "training loop" if spec.loop else "fit" if spec.fit_function else "builder"
    raise ModelError(
        f"{first}. Fix the {what}: it failed for each of the {CHECK_CONFIGURATIONS}"
        f" configurations tried before the first trial."
    ) from first


def _configurations(space: Any, count: int) -> Iterator[dict[str, Any]]:
    """The typical configuration of ``space``, then ``count - 1`` drawn at random (seeded)."""
    import optuna

    yield typical(space)
    draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(count - 1):
        yield sample(space, draws.ask())


def _check(spec: StudySpec, params: Params, dataset: Dataset) -> None:
    if spec.loop is None:
        model = build_model(spec, params, dataset)
        _check_model(spec, model, params, dataset)
        if spec.fit_function is None:
            return
    # A user's fit or loop runs for real, on a few rows, with the checks of a real trial.
    head = _head(dataset, CHECK_ROWS)
    reporter = Reporter(spec, early_stopping=False, label=_label(spec))
    epochs = min(CHECK_EPOCHS, spec.max_epochs)
    trained = train(spec, params, head, seed=0, reporter=reporter, epochs=epochs)
    if trained.value is None:
        raise ModelError(
            f"{_label(spec)} trained, but no epoch reached autotune: pass the callbacks it"
            f" receives on to model.fit(..., callbacks=callbacks)."
        )


def _head(dataset: Dataset, rows: int) -> Dataset:
    """The first ``rows`` examples of each split."""
    import dataclasses

    return dataclasses.replace(
        dataset,
        **{
            name: getattr(dataset, name)[:rows]
            for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
        },
    )


def _check_model(spec: StudySpec, model: Any, params: Params, dataset: Dataset) -> None:
    import numpy as np

    label = _model_label(spec)
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
    scored = metrics_module.SCORERS[dataset.task]
    if needed not in logged and needed not in scored and spec.fit_function is None:
        raise ModelError(
            f"{label}: its model logs {', '.join(sorted(logged))}, but the study's metric"
            f" {spec.metric} needs {needed}. Add metrics=['{needed}'] to its compile(), or"
            f" leave compile() to autotune."
        )


def _check_outputs(predicted: Any, dataset: Dataset, label: str) -> None:
    """Checks that an uncompiled model's outputs fit the loss autotune compiles it with."""
    import numpy as np

    width = tuple(predicted.shape[1:])
    ending = "end it with autotune.models.output_layer(n_outputs)"
    sigmoid = dataset.task == data_module.CLASSIFICATION and dataset.n_outputs == 2
    if width != (dataset.n_outputs,) and not (sigmoid and width == (1,)):
        needs = (
            "1 output (regression)" if dataset.task == data_module.REGRESSION
            else f"{dataset.n_outputs} outputs, one per class"
            + (", or 1 sigmoid output" if sigmoid else "")
        )  # fmt: skip
        raise ModelError(
            f"{label}: its model's outputs have shape {width}, but the data"
            f" needs {needs}; {ending}, which is Dense(n_outputs) with a softmax for classes."
        )
    if dataset.task != data_module.CLASSIFICATION:
        return
    if width == (1,):
        if not ((predicted >= 0).all() and (predicted <= 1).all()):
            raise ModelError(
                f"{label}: its model's one output is not a probability (it gave"
                f" {predicted.ravel()[0]:.3g}); end it with Dense(1, activation='sigmoid')."
            )
        return
    if not ((predicted >= 0).all() and np.allclose(predicted.sum(axis=-1), 1.0, atol=1e-3)):
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
        reporter = Reporter(spec, prune=optuna_pruning(trial), label=_label(spec))
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
