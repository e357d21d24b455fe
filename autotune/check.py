"""The check before the first trial: the study's model and training code, tried on a few rows.

Most mistakes that would fail every trial (a builder that returns no ``keras.Model``, outputs
that do not fit the data, a loop that never reports) are found here, before a trial is spent,
and stop the study with one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from autotune import data as data_module
from autotune import metrics as metrics_module
from autotune import references
from autotune.backend import fresh_graphs
from autotune.errors import ModelError, TrialFailed
from autotune.space import sample, typical
from autotune.spec import StudySpec
from autotune.trial import (
    Params,
    Reporter,
    build_model,
    compile_model,
    label_of,
    model_label,
    train,
)

if TYPE_CHECKING:
    from autotune.data import Dataset


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
    reporter = Reporter(spec, early_stopping=False, label=label_of(spec))
    epochs = min(CHECK_EPOCHS, spec.max_epochs)
    trained = train(spec, params, head, seed=0, reporter=reporter, epochs=epochs)
    if trained.value is None:
        raise ModelError(
            f"{label_of(spec)} trained, but no epoch reached autotune: pass the callbacks it"
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

    label = model_label(spec)
    compiled_by_builder = model.compiled
    compile_model(model, params, dataset, spec.max_epochs)
    x, y = dataset.examples(dataset.x_train[:8]), dataset.y_train[:8]
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
