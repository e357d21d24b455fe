"""The trial seam's training: what makes a short trial cheap trains exactly as Keras alone does."""

import numpy as np
import pytest

from autotune import data, trial
from autotune.backend import fresh_graphs, setup
from autotune.spec import from_dict

from conftest import tiny_raw

# The MLP with epochs of few steps (one per call into TensorFlow) and of many (several per
# call), batch normalization and dropout: what a difference in their state or draws would show.
FEW_STEPS = {
    "batch_size": 150, "learning_rate": 0.01, "optimizer": "adamw", "weight_decay": 1e-4,
    "decay": "cosine", "cosine_alpha": 0.1, "n_layers": 2, "units": 16, "activation": "relu",
    "dropout": 0.2, "batchnorm": True,
}  # fmt: skip
MANY_STEPS = {
    "batch_size": 32, "learning_rate": 0.01, "optimizer": "momentum", "momentum": 0.9,
    "decay": "none", "n_layers": 1, "units": 8, "activation": "tanh", "dropout": 0.3,
    "batchnorm": False,
}  # fmt: skip


@pytest.fixture(scope="module")
def spec():
    setup()
    return from_dict(tiny_raw(max_epochs=2, pruner="none", early_stopping={"patience": 5}))


def fit(spec, params, seed, batches=None):
    """Trains ``params`` for 2 epochs: each epoch's logs and the weights at the end."""
    reporter = trial.Reporter(spec)
    logs: list[dict[str, float]] = []
    reporter.on_epoch = lambda epoch, metrics: logs.append(dict(metrics))
    with fresh_graphs():
        trained = trial.train(spec, params, data.load(spec.data), seed=seed, reporter=reporter,
                              batches=batches)  # fmt: skip
        return logs, [np.array(w) for w in trained.model.get_weights()]


def assert_same(a, b):
    assert a[0] == b[0]  # every epoch's loss and metrics, to the last bit
    assert all(np.array_equal(x, y) for x, y in zip(a[1], b[1], strict=True))  # and weights


@pytest.mark.parametrize(("params", "per_call"), [(FEW_STEPS, 1), (MANY_STEPS, 19)])
def test_a_training_built_ahead_one_step_a_call_trains_as_keras_alone(
    spec, params, per_call, monkeypatch
):
    dataset = data.load(spec.data)
    with fresh_graphs():
        model = trial.build_model(spec, params, dataset)
        trial.compile_model(model, params, dataset, spec.max_epochs)
        assert model.steps_per_execution == per_call  # 600 rows in 4 batches, or in 19
        assert not model.optimizer.built
        trial.build_state(model, trial.ArrayBatches.of(dataset).start(seed=0, batch_size=32))
        assert model.optimizer.built and model.optimizer.variables

    fast = fit(spec, params, seed=3)
    # Keras' own way: the optimizer's and the metrics' variables made while the first step is
    # traced, and up to 32 steps in every call.
    monkeypatch.setattr(trial, "build_state", lambda model, batches: None)
    monkeypatch.setattr(trial, "FEW_STEPS", 0)
    assert_same(fit(spec, params, seed=3), fast)


def test_trials_that_share_a_pipeline_train_as_with_one_each(spec):
    shared = trial.ArrayBatches.of(data.load(spec.data))
    first = fit(spec, FEW_STEPS, seed=1, batches=shared)
    fit(spec, MANY_STEPS, seed=2, batches=shared)  # another trial in between
    assert_same(fit(spec, FEW_STEPS, seed=1, batches=shared), first)
    assert_same(fit(spec, FEW_STEPS, seed=1), first)


def test_an_epochs_batches_follow_its_seed_and_epoch_whatever_came_before(spec):
    dataset = data.load(spec.data)
    shared = trial.ArrayBatches.of(dataset)
    assert shared is not None

    def epoch(seed, batch_size, number):
        batches = list(shared.start(seed=seed, batch_size=batch_size, epoch=number))
        return [x.numpy() for x, _ in batches], [y.numpy() for _, y in batches]

    x, y = epoch(seed=1, batch_size=64, number=0)
    assert [len(b) for b in x] == [64] * 9 + [24]
    rows = np.concatenate(x)
    assert sorted(map(tuple, rows)) == sorted(map(tuple, dataset.x_train))  # every row once
    order = {tuple(r): i for i, r in enumerate(dataset.x_train)}
    assert list(np.concatenate(y)) == [dataset.y_train[order[tuple(r)]] for r in rows]
    assert not np.array_equal(np.concatenate(epoch(1, 64, 1)[0]), rows)  # another epoch
    assert not np.array_equal(np.concatenate(epoch(2, 64, 0)[0]), rows)  # another seed
    epoch(2, 100, 5)
    again = epoch(1, 64, 0)
    assert all(np.array_equal(a, b) for a, b in zip(again[0], x, strict=True))
