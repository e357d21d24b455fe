"""The trial seam: one configuration, built, compiled, trained and scored.

Everything that trains a model goes through :func:`train`: the search's objective
(:mod:`autotune.objective`, one call per trial), the check before the first trial
(:mod:`autotune.check`), ``autotune best`` (the best trial's configuration again, for its best
epoch) and the benchmark scripts. It trains with Keras' ``fit``, the user's ``fit``, or the
user's training loop; nothing else in autotune calls ``fit``.

A :class:`Reporter` receives each epoch's metrics, whichever way the model trains. It checks
them (the study's metric is there; the loss is finite, else the trial diverged), counts the
epochs, tells Optuna's pruner (which may end the trial there) and says when early stopping
ends training. The trial's value is the best validation metric it reached.

What a configuration does wrong ends that trial only, as :class:`~autotune.errors.TrialFailed`:
its builder raising for these params, its loss diverging, running out of memory. What is wrong
for every configuration (a builder that returns no ``keras.Model``, a metric the model never
logs) is an :class:`~autotune.errors.AutotuneError` and stops the study;
:func:`autotune.check.check_model` finds most of those before the first trial.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autotune import data as data_module
from autotune import metrics as metrics_module
from autotune import references
from autotune.console import format_params
from autotune.errors import (
    AutotuneError,
    ModelError,
    TrialDiverged,
    TrialFailed,
    TrialOutOfMemory,
)
from autotune.optimizers import make_optimizer
from autotune.spec import StudySpec

if TYPE_CHECKING:
    import optuna

    from autotune.checkpoints import Checkpoints
    from autotune.data import Dataset
    from autotune.data.images import Images

Params = Mapping[str, Any]

_LOSSES = {
    data_module.CLASSIFICATION: ("sparse_categorical_crossentropy", ["accuracy"]),
    data_module.REGRESSION: ("mse", ["mae"]),
}
# Keras runs up to this many batches per call into TensorFlow: small models spend most of a long
# epoch in per-step Python overhead otherwise. Callbacks here act per epoch, so nothing is lost.
STEPS_PER_EXECUTION = 32
# Keras' loop over several steps costs each trial once, in tracing and in TensorFlow's set-up of
# the traced functions (about 0.2 s of CPU for a small MLP on 2 cores, a fifth of a 1-epoch
# trial), and saves about a millisecond per step after the first: an epoch of at most this many
# steps runs one per call, which trials that stop early gain from and long ones barely feel.
FEW_STEPS = 8
VALIDATION_BATCH = 1024


class Budget:
    """A run's time: ``timeout`` seconds from :meth:`start` (when the work loop begins).

    The work loop starts no trial once it is spent, and a trial's :class:`Reporter` ends the
    trial at the first epoch that ends after it, so a run ends within one epoch of its budget.
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self.deadline: float | None = None

    def start(self) -> None:
        if self.timeout:
            self.deadline = time.monotonic() + self.timeout

    def spent(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def trial_seed(study_seed: int, trial_number: int) -> int:
    """The seed of one trial's weights and shuffling: fixed by the study seed and the trial."""
    return (study_seed * 100_003 + trial_number) % (2**31 - 1)


def batch_size_for(params: Params, n_train: int) -> int:
    """The batch size to train with; values at or above the training-set size are full-batch."""
    return max(1, min(int(params.get("batch_size", 32)), n_train))


def pipeline(
    x: Any, y: Any, batch_size: int, images: Images | None = None, stream: Any = None
) -> Any:
    """A ``tf.data`` pipeline of a split, in order (validation, scoring): in-memory arrays,
    cached; image files, read as it goes; or the user's stream, its first ``len(x)`` elements.

    Keras' own path for NumPy arrays rebuilds its input pipeline every epoch, which costs small
    models several times the training itself.
    """
    import tensorflow as tf

    if stream is not None:
        known = stream.take(len(x)).apply(tf.data.experimental.assert_cardinality(len(x)))
        return known.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if images is not None:
        data = data.map(lambda path, label: (images.decode(path), label),
                        num_parallel_calls=tf.data.AUTOTUNE)  # fmt: skip
    else:
        data = data.cache()
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def training_pipeline(
    x: Any,
    y: Any,
    batch_size: int,
    *,
    seed: int,
    epoch: Any,
    images: Images | None = None,
    stream: Any = None,
) -> Any:
    """The training split of a folder of images (``x`` holds the files' paths) or of the user's
    stream, in batches (arrays in memory: :class:`ArrayBatches`).

    Images come in an order fixed by the seed and the epoch: each pass reads the ``epoch``
    variable when it starts and shuffles the rows by it (a stateless shuffle), then reads each
    file as its batch needs it. The order of epoch ``k`` is the same however many passes came
    before (Keras' ``fit`` opens two per epoch), so a trial that goes on from a checkpoint at
    epoch ``k`` sees the batches an uninterrupted one would have seen. The user's stream is
    shuffled by the seed through a buffer.
    """
    import tensorflow as tf

    rows = len(x)
    if stream is not None:  # the user's stream, shuffled by the trial's seed
        from autotune.data.streams import SHUFFLE_BUFFER

        shuffled = stream.take(rows).shuffle(
            min(rows, SHUFFLE_BUFFER), seed=seed % 2**31, reshuffle_each_iteration=True
        )
        known = shuffled.apply(tf.data.experimental.assert_cardinality(rows))
        return known.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    assert images is not None, "arrays in memory go through ArrayBatches"
    features, labels = tf.constant(x), tf.constant(y)
    key = tf.constant(seed % 2**31, tf.int64)

    def order(_: Any) -> Any:
        return tf.data.Dataset.from_tensor_slices(epoch_order(rows, key, epoch.read_value()))

    batches = (
        tf.data.Dataset.from_tensors(0)
        .flat_map(order)
        .map(
            lambda row: (images.decode(tf.gather(features, row)), tf.gather(labels, row)),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .batch(batch_size)
    )
    known = batches.apply(tf.data.experimental.assert_cardinality(math.ceil(rows / batch_size)))
    return known.prefetch(tf.data.AUTOTUNE)


def epoch_order(rows: int, seed: Any, epoch: Any) -> Any:
    """The training rows' order in one epoch: a stateless shuffle by the seed and the epoch (int64
    tensors), the same however many passes came before."""
    import tensorflow as tf

    return tf.random.experimental.stateless_shuffle(
        tf.range(rows, dtype=tf.int64), seed=tf.stack([seed, epoch])
    )


class ArrayBatches:
    """A training split of arrays in memory as one ``tf.data`` pipeline of batches, which every
    trial of a process reuses.

    Each pass reads the seed and the :attr:`epoch` when it starts and shuffles the rows by them
    (a stateless shuffle), then gathers each batch's rows at once. The order of epoch ``k`` is
    the same however many passes came before (Keras' ``fit`` opens two per epoch), so a trial
    that goes on from a checkpoint at epoch ``k`` sees the batches an uninterrupted one would
    have seen.

    The seed, the batch size and the epoch are variables, so that a worker traces the
    pipeline's functions once instead of once per trial (about 20 ms a trial); one training at
    a time uses it, and :meth:`start` sets them for the next.

    Attributes:
        epoch: The epoch whose order the next pass takes.
    """

    def __init__(self, x: Any, y: Any) -> None:
        import tensorflow as tf

        rows = len(x)
        features, labels = tf.constant(x), tf.constant(y)
        # Locals, not attributes, in the functions: nothing they hold leads back to self, so
        # the pipeline goes with its last reference.
        seed, batch_size, epoch = (
            tf.Variable(v, dtype=tf.int64, trainable=False) for v in (0, 1, 0)
        )

        def order(_: Any) -> Any:
            return (
                tf.data.Dataset.from_tensor_slices(
                    epoch_order(rows, seed.read_value(), epoch.read_value())
                )
                .batch(batch_size.read_value())
                .map(lambda rows_: (tf.gather(features, rows_), tf.gather(labels, rows_)))
            )

        self.rows = rows
        self.seed, self.batch_size, self.epoch = seed, batch_size, epoch
        self.batches = tf.data.Dataset.from_tensors(0).flat_map(order)

    @staticmethod
    def of(dataset: Dataset) -> ArrayBatches | None:
        """The pipeline of a data set's training split, or None when it is not arrays in
        memory (a folder of images, the user's streams)."""
        if dataset.images is not None or dataset.streams is not None:
            return None
        return ArrayBatches(dataset.x_train, dataset.y_train)

    def start(self, *, seed: int, batch_size: int, epoch: int = 0) -> Any:
        """The pipeline of one training's batches, from epoch ``epoch`` on."""
        import tensorflow as tf

        self.seed.assign(seed % 2**31)
        self.batch_size.assign(batch_size)
        self.epoch.assign(epoch)
        steps = math.ceil(self.rows / batch_size)
        known = self.batches.apply(tf.data.experimental.assert_cardinality(steps))
        # Arrays in memory leave tf.data's autotuning nothing to tune, and an iterator it tuned
        # can hold up its release for up to a second: a pruned trial's training (which Optuna
        # keeps in a reference cycle) is freed by the next trial's collection, which waited.
        options = tf.data.Options()
        options.autotune.enabled = False
        return known.prefetch(tf.data.AUTOTUNE).with_options(options)


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
        steps_per_execution=steps_per_execution(steps_per_epoch),
    )


def steps_per_execution(steps_per_epoch: int) -> int:
    """The batches Keras runs per call into TensorFlow, for epochs of ``steps_per_epoch``."""
    return 1 if steps_per_epoch <= FEW_STEPS else min(STEPS_PER_EXECUTION, steps_per_epoch)


def build_state(model: Any, batches: Any) -> None:
    """Makes the variables of a compiled model's training (the optimizer's slots, the state of
    the compiled loss and metrics) now, eagerly, for batches like those of ``batches`` (a
    ``tf.data`` pipeline).

    Keras otherwise makes them while it traces the first train step, where each variable gets an
    initializing ``tf.cond`` of its own: for a small MLP that is most of the first epoch's
    tracing. They start from the same values either way (zeros, and the optimizer's constants),
    so training is unchanged. Keras builds them so itself when it trains under a distribution
    strategy (``Trainer._symbolic_build``). A model with a layer that makes its weights when
    first called (a subclassed one), or that Keras cannot build this way, is left to Keras.
    """
    symbolic_build = getattr(model, "_symbolic_build", None)
    if symbolic_build is None or not all(layer.built for layer in model._flatten_layers()):
        return
    try:
        symbolic_build(data_batch=batches.element_spec)
    except Exception:  # Keras builds what is left while it traces the first step, as before
        return


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
            f"{model_label(spec)} raised {references.describe(e, _file_of(family.build))} when"
            f" building with {format_params(params)}, input_shape={dataset.input_shape},"
            f" n_outputs={dataset.n_outputs}",
        ) from e
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"{model_label(spec)} returned {type(model).__name__}, not a keras.Model. Make it"
            f" return the model, e.g. keras.Model(inputs, outputs)."
        )
    return model


def model_label(spec: StudySpec) -> str:
    """Names the study's model family in messages."""
    return f"{spec.source}: model '{spec.model}'"


def label_of(spec: StudySpec) -> str:
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
    return int(model(dataset.examples(dataset.x_train[:1]), training=False).shape[-1])


def _is_sigmoid(model: Any, dataset: Dataset) -> bool:
    """Whether a two-class model ends in one unit (a sigmoid) rather than one per class."""
    return dataset.n_outputs == 2 and _output_width(model, dataset) == 1


class TrainingData:
    """What a user's ``fit`` or training loop trains with, shaped by the trial's params.

    Attributes:
        train: The training split as a ``tf.data`` pipeline of ``(x, y)`` batches at the sampled
            batch size, reshuffled every epoch by the trial's seed.
        validation: The validation split, as ``(x, y)`` batches.
        x_train, y_train, x_val, y_val: The same splits as arrays (labels as class indices;
            for a folder of images, ``x`` holds the files' paths).
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
        initial_epoch: int = 0,
        batches: ArrayBatches | None = None,
    ) -> None:
        import tensorflow as tf

        self.dataset = dataset
        self.params = params
        self.seed = seed
        self.epochs = epochs
        self.max_epochs = max_epochs
        self.batch_size = batch_size_for(params, len(dataset.x_train))
        self.steps_per_epoch = math.ceil(len(dataset.x_train) / self.batch_size)
        self.initial_epoch = initial_epoch
        batches = batches or ArrayBatches.of(dataset)
        if batches is not None:
            self.epoch = batches.epoch
            self.train = batches.start(seed=seed, batch_size=self.batch_size, epoch=initial_epoch)
        else:
            self.epoch = tf.Variable(initial_epoch, dtype=tf.int64, trainable=False)
            self.train = training_pipeline(
                dataset.x_train, dataset.y_train, self.batch_size, seed=seed, epoch=self.epoch,
                images=dataset.images, stream=dataset.stream("train"),
            )  # fmt: skip
        self.validation = (
            validation
            if validation is not None
            else pipeline(
                dataset.x_val,
                dataset.y_val,
                VALIDATION_BATCH,
                dataset.images,
                dataset.stream("validation"),
            )  # fmt: skip
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
        on_epoch: Called with the 0-based epoch and its metrics once they are checked, before
            the pruner decides (what the progress display and the trackers read).
        budget: The run's time; once spent, ``report`` ends the trial as pruned.
        checkpoints: Saves the trial's state every so many epochs (see
            :mod:`autotune.checkpoints`), once :meth:`resume` has said what to save.

    A training loop hands the reporter what it owns, and starts from the epoch it returns (0,
    or where the trial's last attempt left off)::

        start = reporter.resume(model, optimizer)
        for epoch in range(start, data.epochs):
            ...

    Attributes:
        epochs: Epochs reported so far.
        values: The study's metric at each epoch.
        stopped: Whether early stopping ended training.
        out_of_time: Whether the run's time budget ended the trial.
        seconds: Wall time spent in the pruner (its storage writes and decision).
        pending: A checkpoint to go on from, which :meth:`resume` restores.
        resumed_from: The epochs done at the checkpoint this trial went on from, or None.
    """

    def __init__(
        self,
        spec: StudySpec,
        prune: Callable[[int, float], None] | None = None,
        *,
        early_stopping: bool = True,
        label: str = "",
        on_epoch: Callable[[int, Mapping[str, float]], None] | None = None,
        budget: Budget | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.metric = spec.metric
        self.maximize = spec.direction == "maximize"
        self.patience = spec.patience if early_stopping else None
        self.min_delta = spec.min_delta
        self.prune = prune
        self.on_epoch = on_epoch
        self.budget = budget
        self.out_of_time = False
        self.checkpoints = checkpoints
        self.pending: dict[str, Any] | None = None
        self.on_resume: Callable[[list[float]], None] | None = None
        self.resumed_from: int | None = None
        # Set by train(): one example (a subclassed model makes its weights when called), and
        # what keeps the training pipeline's epoch up to date in a training loop.
        self.example: Any = None
        self.next_epoch: Callable[[int], None] | None = None
        self._tracked: tuple[Any, Any] | None = None
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
            optuna.TrialPruned: The pruner ended the trial, or the run's time budget did.
        """
        values = {name: _number(value) for name, value in {**(logs or {}), **metrics}.items()}
        if epoch == 0 and self.resumed_from:
            raise TrialFailed(
                f"this trial went on from epoch {self.resumed_from} of an earlier attempt, but"
                f" {self.label} started again at epoch 0. Pass initial_epoch=data.initial_epoch"
                f" to model.fit (or loop from reporter.resume's epoch)"
            )
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
        if self.on_epoch is not None:
            self.on_epoch(epoch, values)
        if self.prune is not None:
            start = time.perf_counter()
            try:
                self.prune(epoch, value)
            finally:
                self.seconds += time.perf_counter() - start
        if self.budget is not None and self.budget.spent() and not self.stopped:
            import optuna

            self.out_of_time = True
            raise optuna.TrialPruned(f"The time budget ended the trial at epoch {epoch}.")
        if self.next_epoch is not None:
            self.next_epoch(epoch)
        self._checkpoint(epoch)
        return self.stopped

    def resume(self, model: Any, optimizer: Any = None) -> int:
        """Hands over the model and the optimizer that the training owns: each checkpoint saves
        them, and a trial that goes on from an earlier attempt's checkpoint has them restored
        here (with the random generators, the epochs and the values so far).

        Returns:
            The epoch to train from: 0, or the epochs the checkpoint had done.
        """
        from autotune.checkpoints import restore

        self._tracked = (model, optimizer)
        if self.pending is None:
            return self.epochs
        payload, self.pending = self.pending, None
        restore(model, optimizer, payload["training"], self.example)
        state = payload["reporter"]
        self.epochs, self.values = int(state["epochs"]), list(state["values"])
        self._reference, self._wait = state["reference"], int(state["wait"])
        self.resumed_from = self.epochs
        if self.on_resume is not None:
            self.on_resume(self.values)
        return self.epochs

    def _checkpoint(self, epoch: int) -> None:
        """Saves the trial's state after ``epoch`` when a checkpoint is due."""
        from autotune.checkpoints import capture

        if self.checkpoints is None or self._tracked is None or self.stopped:
            return
        if not self.checkpoints.due(epoch):
            return
        state = {"epochs": self.epochs, "values": list(self.values),
                 "reference": self._reference, "wait": self._wait}  # fmt: skip
        self.checkpoints.save(self.epochs, {"reporter": state, "training": capture(*self._tracked)})

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
    batches: ArrayBatches | None = None,
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
        batches: The training split's ready :class:`ArrayBatches`, to reuse across trials.

    Raises:
        TrialFailed: This configuration failed (see the module's docstring).
        optuna.TrialPruned: The reporter's pruner ended it.
        AutotuneError: A mistake no configuration can get around.
    """
    import keras

    seconds: dict[str, float] = {"build": 0.0}
    start = time.perf_counter()
    keras.utils.set_random_seed(seed)
    pending = reporter.pending if reporter is not None else None
    data = TrainingData(
        dataset, params, seed=seed, epochs=epochs or spec.max_epochs,
        max_epochs=spec.max_epochs, validation=validation,
        initial_epoch=int(pending["reporter"]["epochs"]) if pending else 0, batches=batches,
    )  # fmt: skip
    try:
        if spec.loop is not None:
            reporter = reporter or Reporter(spec, early_stopping=False, label=label_of(spec))
            _hook(reporter, data)
            # A loop's reporter keeps the pipeline's epoch current (a fit's callback does).
            reporter.next_epoch = lambda epoch: data.epoch.assign(epoch + 1)
            model = _run_loop(spec, params, data, reporter)
        else:
            model = build_model(spec, params, dataset)
            compile_model(model, params, dataset, spec.max_epochs)
            build_state(model, data.train)
            if reporter is not None:
                _hook(reporter, data)
                reporter.resume(model, model.optimizer)
            seconds["build"] = time.perf_counter() - start
            _fit(spec, params, model, data, reporter)
        seconds["fit"] = time.perf_counter() - start - seconds["build"]
        seconds["report"] = reporter.seconds if reporter is not None else 0.0
    except (AutotuneError, TrialFailed, KeyboardInterrupt):
        raise
    except Exception as e:
        if _is_pruned(e):
            raise
        what = "training" if spec.loop is None and spec.fit_function is None else label_of(spec)
        raise _failure(e, f"{what} raised {references.describe(e, _user_file(spec))}") from e
    if reporter is None or not reporter.values:
        return Trained(model, data.epochs, data.epochs, None, "completed", seconds)
    best_epoch, value = reporter.best()
    stop_reason = "early-stopped" if reporter.stopped else "completed"
    return Trained(model, reporter.epochs, best_epoch, value, stop_reason, seconds)


def _hook(reporter: Reporter, data: TrainingData) -> None:
    """Gives the reporter one example, with which a subclassed model makes its weights."""
    reporter.example = data.dataset.examples(data.x_train[:1])


def _epoch_callback(data: TrainingData) -> Any:
    """A Keras callback that sets ``data.epoch`` as each epoch begins (the training pipeline's
    order follows it)."""
    import keras

    class Epoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            data.epoch.assign(epoch)

    return Epoch()


def _fit(
    spec: StudySpec, params: Params, model: Any, data: TrainingData, reporter: Reporter | None
) -> None:
    """Trains a compiled model with Keras' ``fit``, or with the user's ``fit``."""
    import keras

    callbacks: list[Any] = [_epoch_callback(data)]
    if reporter is not None:
        scores = _scores_callback(spec, data)
        callbacks += [c for c in (scores, reporter.keras_callback()) if c is not None]
    if spec.fit_function is None:
        model.fit(
            data.train,
            validation_data=data.validation if reporter is not None else None,
            epochs=data.epochs,
            initial_epoch=data.initial_epoch,
            shuffle=False,  # the pipeline shuffles
            verbose=0,
            callbacks=callbacks,
        )
        return
    history = spec.fit_function(params, model, data, callbacks)
    if not isinstance(history, keras.callbacks.History):
        raise ModelError(
            f"{label_of(spec)} returned {type(history).__name__}, not the History that"
            f" model.fit returns. End it with: return model.fit(...)"
        )


def _run_loop(spec: StudySpec, params: Params, data: TrainingData, reporter: Reporter) -> Any:
    """Runs the user's training loop and checks what it gave back."""
    import keras

    assert spec.loop is not None
    model = spec.loop(params, data, reporter)
    if not isinstance(model, keras.Model):
        raise ModelError(
            f"{label_of(spec)} returned {type(model).__name__}, not the trained keras.Model."
            f" End it with: return model"
        )
    if reporter.epochs == 0:
        raise ModelError(
            f"{label_of(spec)} never called reporter.report(epoch, ...); call it once per epoch"
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


def _compile_for_scoring(model: Any, dataset: Dataset) -> None:
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
    _compile_for_scoring(model, dataset)
    scorers = metrics_module.scored(dataset.task, list(_scored_names(spec)))
    out = {}
    for split, x, y in (
        ("validation", dataset.x_val, dataset.y_val),
        ("test", dataset.x_test, dataset.y_test),
    ):
        data = pipeline(x, y, VALIDATION_BATCH, dataset.images, dataset.stream(split))
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
