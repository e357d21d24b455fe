"""Shared fixtures: tiny studies (a few epochs on circles) and throwaway storages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

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
    runner.run(str(path), storage=url, report=None)
    return url


# A user's own model family, as a model.py next to a study file would hold it.
USER_MODEL = '''
SPACE = {"units": {"low": 4, "high": 16}, "dropout": {"low": 0.0, "high": 0.3}}

def build(params, input_shape, n_outputs):
    import keras
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Dense(params["units"], activation="relu")(inputs)
    x = keras.layers.Dropout(params["dropout"])(x)
    head = keras.layers.Dense(n_outputs, activation="softmax" if n_outputs > 1 else None)
    return keras.Model(inputs, head(x))
'''
