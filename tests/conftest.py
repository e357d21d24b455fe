"""Shared fixtures: tiny studies (a few epochs on circles), throwaway storages, and the
services some tests need.

Tests come in three layers:

- ``tests/unit``: no TensorFlow, Optuna's in-memory storage, stub objectives; seconds.
- ``tests/test_*.py``: tiny real Keras fits on SQLite files.
- tests marked ``services``: the PostgreSQL and MariaDB servers and Debian's chromium. Each
  skips, saying which service it lacks, where that service is absent; with
  ``AUTOTUNE_REQUIRE_SERVICES=1`` (as CI sets it) every skip is a failure instead, so that CI
  runs everything.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REQUIRE_ENV = "AUTOTUNE_REQUIRE_SERVICES"

# name -> (storage URL, address the server listens on)
SERVERS = {
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:5432/test", ("127.0.0.1", 5432)),
    "mariadb": ("mysql+pymysql://root@127.0.0.1:3306/test", ("127.0.0.1", 3306)),
}
CHROMIUM = "/usr/bin/chromium"


def _listening(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def server_url(name: str) -> str:
    """The URL of a database server this machine runs; skips the test if it is not there."""
    url, address = SERVERS[name]
    if not _listening(address):
        pytest.skip(f"needs the {name} server on {address[0]}:{address[1]}")
    return url


@pytest.fixture
def postgres_url() -> str:
    return server_url("postgresql")


@pytest.fixture
def mariadb_url() -> str:
    return server_url("mariadb")


@pytest.fixture
def chromium() -> None:
    """Debian's chromium and Playwright, which drives it; skips the test without them."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    pytest.importorskip("playwright", reason="needs playwright (pip install -e '.[test]')")


UNIT = Path(__file__).parent / "unit"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A session of unit tests alone must not have imported TensorFlow."""
    import sys

    items = getattr(session, "items", [])
    unit_only = bool(items) and all(Path(str(i.path)).is_relative_to(UNIT) for i in items)
    if unit_only and "tensorflow" in sys.modules:
        print("\nThe unit layer (tests/unit) imported TensorFlow; keep it out of those tests.")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """With $AUTOTUNE_REQUIRE_SERVICES set, a skipped test is a failed one."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get(REQUIRE_ENV) and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"{REQUIRE_ENV} is set, so this skip fails: {reason}"


# Small enough that one trial trains in about a second on 2 cores, yet still a real search.
TINY_SPACE = {
    "batch_size": 1024,
    "n_layers": 1,
    "units": {"low": 4, "high": 16},
    "learning_rate": {"low": 0.01, "high": 0.1, "log": True},
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def to_toml(raw: dict[str, Any]) -> str:
    """Writes a study file: top-level scalars first, then one [table] per dict."""
    lines = [f"{k} = {toml_value(v)}" for k, v in raw.items() if not isinstance(v, dict)]
    for key, table in raw.items():
        if isinstance(table, dict):
            lines.append(f"\n[{key}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


# A small loop of a user's kind: a sigmoid model, trained batch by batch, reporting each epoch.
LOOP = """
SPACE = {"units": {"low": 4, "high": 16}}

def train(params, data, reporter):
    import keras
    import tensorflow as tf
    inputs = keras.Input(shape=data.input_shape)
    hidden = keras.layers.Dense(params["units"], activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(hidden))
    optimizer = data.optimizer()
    loss_fn = keras.losses.BinaryCrossentropy()
    accuracy = keras.metrics.BinaryAccuracy()
    for epoch in range(data.epochs):
        for x, y in data.train:
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                          model.trainable_variables))
        accuracy.reset_state()
        for x, y in data.validation:
            accuracy.update_state(y, model(x))
        REPORT
    return model
"""
REPORT = "if reporter.report(epoch, loss=loss, val_accuracy=accuracy.result()):\n            break"

# A user's fit whose epochs take SECONDS each once it trains on the whole training split
# (the check before the first trial fits 64 rows, and stays quick); it writes the time each
# such epoch ends into epochs.log in the current folder.
SLOW_FIT = """
import time
import keras

class Slow(keras.callbacks.Callback):
    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def on_epoch_end(self, epoch, logs=None):
        time.sleep(self.seconds)
        with open("epochs.log", "a") as log:  # when each epoch ended, for the tests
            log.write(f"{time.time()}\\n")

def fit(params, model, data, callbacks):
    slow = [Slow(SECONDS)] if len(data.x_train) > 100 else []
    return model.fit(data.train, validation_data=data.validation, epochs=data.epochs, verbose=0,
                     shuffle=False, initial_epoch=data.initial_epoch,
                     callbacks=[*slow, *callbacks])
"""
EPOCHS = 8


def run_command(study: str | Path, storage: str) -> list[str]:
    """``autotune run`` of a study in a process of its own."""
    import sys

    return [sys.executable, "-m", "autotune", "run", "--study", str(study), "--storage", storage]


def slow_study(folder: Path, seconds: float, **overrides: Any) -> Path:
    """A one-trial study whose epochs take ``seconds`` each, never stopped early; keyword
    arguments replace its keys."""
    (folder / "slow.py").write_text(SLOW_FIT.replace("SECONDS", repr(seconds)))
    raw = tiny_raw("slow", n_trials=1, max_epochs=EPOCHS, pruner="none",
                   early_stopping={"patience": EPOCHS}, **overrides)  # fmt: skip
    raw["fit"] = "slow.py:fit"
    path = folder / "slow.toml"
    path.write_text(to_toml(raw))
    return path


def tiny_raw(name: str = "tiny", **overrides: Any) -> dict[str, Any]:
    """A tiny study's contents; keyword arguments replace top-level keys or tables."""
    raw: dict[str, Any] = {
        "name": name,
        "n_trials": 3,
        "max_epochs": 3,
        "sampler": "tpe",
        "pruner": "median",
        "seed": 0,
        "heartbeat_interval": 1,
        "grace_period": 4,
        "data": {"source": "circles"},
        "early_stopping": {"patience": 2},
        "space": dict(TINY_SPACE),
    }
    raw.update(overrides)
    return raw


@pytest.fixture
def tiny_disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A small file system (64 KiB, or the size a test's ``disk_size`` marker asks for), to
    fill up for real; skips where mounting is not allowed."""
    import subprocess

    marker = request.node.get_closest_marker("disk_size")
    size = marker.args[0] if marker else "64k"
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip("needs root to mount a small tmpfs for the full-disk test")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=True)


def nothing_stored(url: str) -> bool:
    """Whether the storage at ``url`` holds no study (or does not exist): a run that failed
    its checks wrote nothing."""
    from autotune.study import names

    return names(url) == []


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh current directory, with no storage named in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AUTOTUNE_STORAGE", raising=False)
    return tmp_path


@pytest.fixture
def sqlite_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'studies.db'}"


@pytest.fixture
def write_study(workdir: Path) -> Callable[..., Path]:
    """Writes a tiny study file into the work directory and returns its path."""

    def write(name: str = "tiny", **overrides: Any) -> Path:
        path = workdir / f"{name}.toml"
        path.write_text(to_toml(tiny_raw(name, **overrides)))
        return path

    return write


@pytest.fixture(scope="session", autouse=True)
def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of an SQLite storage holding study 'tiny' run to its end (2 trials of 2 epochs).

    One search shared by every test that only reads a finished study: do not change it.
    """
    from autotune import runner

    folder = tmp_path_factory.mktemp("finished")
    path = folder / "tiny.toml"
    path.write_text(to_toml(tiny_raw(n_trials=2, max_epochs=2)))
    url = f"sqlite:///{folder / 'studies.db'}"
    runner.run(str(path), storage=url, echo=None)
    return url


# A user's own model family, as a model.py next to a study file would hold it.
USER_MODEL = """
SPACE = {"units": {"low": 4, "high": 16}, "dropout": {"low": 0.0, "high": 0.3}}

def build(params, input_shape, n_outputs):
    import keras
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Dense(params["units"], activation="relu")(inputs)
    x = keras.layers.Dropout(params["dropout"])(x)
    head = keras.layers.Dense(n_outputs, activation="softmax" if n_outputs > 1 else None)
    return keras.Model(inputs, head(x))
"""
