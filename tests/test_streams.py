"""A data function of the user's that returns tf.data streams: batched by autotune at each
trial's batch size, shuffled by the trial's seed, and its mistakes as one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from autotune import best, runner
from autotune import study as study_module
from autotune.cli import cli

from conftest import nothing_stored, tiny_raw, to_toml

STREAMS = """
import numpy as np
import tensorflow as tf
from sklearn.datasets import make_moons

def load():
    x, y = make_moons(600, noise=0.2, random_state=0)
    labels = np.where(y == 1, "upper", "lower")
    def stream(rows):
        return tf.data.Dataset.from_tensor_slices((x[rows].astype("float32"), labels[rows]))
    return {"train": stream(slice(0, 400)), "validation": stream(slice(400, 500)),
            "test": stream(slice(500, 600))}
"""


def streams_study(folder: Path, source: str = STREAMS, **overrides) -> Path:
    (folder / "data.py").write_text(source)
    raw = tiny_raw("streams", n_trials=2, max_epochs=2, pruner="none", **overrides)
    raw["data"] = {"source": "data.py:load", "task": "classification"}
    path = folder / "streams.toml"
    path.write_text(to_toml(raw))
    return path


def test_streams_are_batched_searched_and_scored_on_their_own_test_split(
    workdir: Path, sqlite_url: str
):
    study = runner.run(str(streams_study(workdir)), storage=sqlite_url, echo=None)
    assert study_module.counts(study).finished == 2
    result = best.retrain(study)
    assert result.sizes == {"train": 400, "validation": 100, "test": 100}
    assert result.validation["accuracy"] == pytest.approx(study.best_value, abs=1e-6)
    assert 0.0 <= result.test["accuracy"] <= 1.0
    exported = best.export(result, workdir / "model")
    import json

    metadata = json.loads((exported / "metadata.json").read_text())
    assert metadata["classes"] == ["lower", "upper"]
    assert metadata["inputs"]["kind"] == "array" and metadata["inputs"]["shape"] == [2]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("return {'train': s, 'validation': s}", "returned streams for train, validation; return"),
        (
            "return {'train': s.batch(8), 'validation': s, 'test': s}",
            "the 'train' stream looks batched",
        ),
        (
            "return {'train': s.map(lambda x, y: x), 'validation': s, 'test': s}",
            "the 'train' stream's elements are not (x, y) pairs",
        ),
        (
            "return {'train': s.filter(lambda x, y: y == 'a'), 'validation': s, 'test': s}",
            "the training stream holds one class only",
        ),
    ],
)
def test_a_wrong_stream_is_one_line_and_nothing_is_stored(
    workdir: Path, sqlite_url: str, body: str, message: str
):
    source = (
        "import tensorflow as tf\n"
        "def load():\n"
        "    s = tf.data.Dataset.from_tensor_slices(([[0.0, 1.0]] * 10, ['a', 'b'] * 5))\n"
        f"    {body}\n"
    )
    path = streams_study(workdir, source)
    result = CliRunner().invoke(cli, ["run", "--study", str(path), "--storage", sqlite_url])
    assert result.exit_code == 1
    assert message in result.output.splitlines()[-1], result.output
    assert nothing_stored(sqlite_url)
