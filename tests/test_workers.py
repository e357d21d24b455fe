"""Many workers, one study: real PostgreSQL and MariaDB servers, real processes, real SIGKILL.

The servers are the ones this machine runs: PostgreSQL on 127.0.0.1:5432 (trust auth, database
``test``) and MariaDB on 127.0.0.1:3306 (root, no password, database ``test``). Every test uses
its own study name and deletes its study afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from autotune import runner
from autotune import study as study_module
from autotune.spec import from_dict

from conftest import SERVERS, _listening, server_url, tiny_raw, to_toml

POSTGRES = SERVERS["postgresql"][0]


def states(url: str, name: str) -> list[str]:
    return [t.state.name for t in optuna.load_study(study_name=name, storage=url).trials]


def finished(url: str, name: str) -> int:
    return sum(1 for s in states(url, name) if s in ("COMPLETE", "PRUNED"))


@pytest.fixture
def study_name() -> Iterator[str]:
    """A fresh study name; the study is deleted from every server that runs afterwards."""
    name = f"test_{uuid.uuid4().hex[:10]}"
    yield name
    for url, address in SERVERS.values():
        if not _listening(address):
            continue
        try:
            optuna.delete_study(study_name=name, storage=url)
        except Exception:  # no such study there, or no such server here
            pass


@pytest.mark.services
@pytest.mark.parametrize("server", sorted(SERVERS))
def test_parallel_workers_reach_exactly_the_total(server: str, study_name: str, workdir: Path):
    url = server_url(server)
    spec = from_dict(tiny_raw(study_name, n_trials=5, max_epochs=2))
    runner.run(spec, storage=url, workers=2, echo=None)

    study = optuna.load_study(study_name=study_name, storage=url)
    counted = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(counted) == 5
    assert "RUNNING" not in states(url, study_name)
    # surplus trials, if two workers raced for the last place, never trained
    for trial in study.trials:
        if trial.state.name == "FAIL":
            assert trial.user_attrs["stop_reason"] == study_module.SURPLUS


def test_sqlite_serves_two_local_workers(study_name: str, sqlite_url: str):
    spec = from_dict(tiny_raw(study_name, n_trials=4, max_epochs=2))
    runner.run(spec, storage=sqlite_url, workers=2, echo=None)
    assert finished(sqlite_url, study_name) == 4
    assert "RUNNING" not in states(sqlite_url, study_name)


@pytest.mark.slow
@pytest.mark.services
def test_a_killed_workers_trial_is_retried_and_the_study_completes(
    study_name: str, workdir: Path, postgres_url: str
):
    path = workdir / "study.toml"
    # long trials, so the kill lands in the middle of one
    path.write_text(
        to_toml(
            tiny_raw(
                study_name,
                n_trials=1,
                max_epochs=150,
                pruner="none",
                early_stopping={"patience": 150},
            )
        )
    )
    command = [sys.executable, "-m", "autotune", "run", "--study", str(path)]
    env = {**os.environ, "AUTOTUNE_STORAGE": POSTGRES}
    worker = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    killed = None
    # One storage for every look: a storage per look would hold a connection each until
    # collected, and a slow start would use up the server's connections.
    storage = optuna.storages.RDBStorage(POSTGRES)
    while time.monotonic() < deadline and killed is None:
        time.sleep(0.3)
        try:
            trials = optuna.load_study(study_name=study_name, storage=storage).trials
        except KeyError:
            continue
        for trial in trials:
            if trial.state.name == "RUNNING" and len(trial.intermediate_values) >= 2:
                worker.send_signal(signal.SIGKILL)
                killed = trial
    worker.wait()
    assert killed is not None, "no trial started training"
    assert states(POSTGRES, study_name)[killed.number] == "RUNNING"  # nobody failed it yet

    # A new run waits out the grace period (4 s here), fails the dead trial, retries its params.
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name=study_name, storage=POSTGRES)
    assert study.trials[killed.number].state.name == "FAIL"
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1
    assert retries[0].params == killed.params
    assert retries[0].state.name in ("COMPLETE", "PRUNED")
    assert finished(POSTGRES, study_name) == 1
    assert "RUNNING" not in states(POSTGRES, study_name)


@pytest.fixture
def fresh_database(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database of its own, with no Optuna tables yet; dropped afterwards."""
    import psycopg

    name = f"autotune_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as c:
        c.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.slow
@pytest.mark.services
def test_workers_started_at_the_same_moment_create_one_study(fresh_database: str, workdir: Path):
    path = workdir / "race.toml"
    path.write_text(to_toml(tiny_raw("race", n_trials=3, max_epochs=1)))
    env = {**os.environ, "AUTOTUNE_STORAGE": fresh_database}
    command = [sys.executable, "-m", "autotune", "run", "--study", str(path)]
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in results]
    assert optuna.get_all_study_names(storage=fresh_database) == ["race"]
    assert finished(fresh_database, "race") == 3


def all_command_lines() -> Iterator[str]:
    for proc in Path("/proc").iterdir():
        try:
            yield (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue


@pytest.mark.slow
@pytest.mark.services
def test_a_password_is_never_printed(study_name: str, workdir: Path, postgres_url: str):
    # trust auth ignores the password, so the URL works and its secret must still never show
    url = "postgresql+psycopg://postgres:s3cr3t-pw@127.0.0.1:5432/test"
    path = workdir / "secret.toml"
    path.write_text(to_toml(tiny_raw(study_name, n_trials=2, max_epochs=1)))
    env = {**os.environ, "AUTOTUNE_STORAGE": url}
    # While two local workers run, no process's command line holds the password.
    command = [sys.executable, "-m", "autotune", "run", "--study", str(path), "--workers", "2"]
    parent = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    command_lines: set[str] = set()
    while parent.poll() is None:
        command_lines |= set(all_command_lines())
        time.sleep(0.1)
    outputs = [parent.stdout.read()]
    assert parent.returncode == 0, outputs[0]
    workers = [line for line in command_lines if " worker --study " in line]
    assert len(workers) == 2
    assert all(f"--threads {max(1, os.cpu_count() // 2)}" in line for line in workers)
    assert not any("s3cr3t-pw" in line for line in command_lines)

    for args in (
        ["show", "--study", study_name],
        ["studies"],
        ["env"],
        ["worker", "--study", study_name],
        ["show", "--study", "no_such_study"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "autotune", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        outputs.append(result.stdout + result.stderr)
    text = "\n".join(outputs)
    assert "s3cr3t-pw" not in text
    assert "postgres:***@127.0.0.1:5432/test" in text
    study = optuna.load_study(study_name=study_name, storage=url)
    assert "s3cr3t-pw" not in repr(study.user_attrs)
