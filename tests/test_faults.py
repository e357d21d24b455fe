"""Fault injection (scripts/bench_faults.py): workers killed at random moments, paused past the
grace period, cut off by the database server, and eight at once; nothing lost, nothing left
RUNNING, the total exact, every process clean or killed."""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import optuna
import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "scripts"))

import bench_faults  # noqa: E402

from autotune import runner  # noqa: E402
from autotune import study as study_module  # noqa: E402

from conftest import server_url  # noqa: E402

pytestmark = pytest.mark.slow
State = optuna.trial.TrialState


def quadratic(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    return 1.0 - x * x


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.trials]


def url_for(storage: str, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'faults.db'}" if storage == "sqlite" else server_url(storage)


def assert_holds(outcome: bench_faults.Outcome) -> None:
    assert outcome.bad_exits == []
    assert (outcome.running, outcome.lost, outcome.changed) == (0, 0, 0)
    assert outcome.finished == outcome.trials
    assert outcome.holds


@pytest.mark.parametrize(
    "storage", ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)]
)
def test_workers_killed_at_random_moments_lose_nothing(storage: str, tmp_path: Path):
    outcome = bench_faults.kill_scenario(url_for(storage, tmp_path), storage, kills=4,
                                         rng=random.Random(1))  # fmt: skip
    assert outcome.kills == 4
    assert_holds(outcome)


@pytest.mark.parametrize(
    "storage", ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)]
)
def test_a_worker_paused_past_the_grace_period_comes_back_and_finishes_cleanly(
    storage: str, tmp_path: Path
):
    outcome = bench_faults.pause_scenario(url_for(storage, tmp_path), storage, rng=random.Random(2))
    assert outcome.pauses == 1
    assert_holds(outcome)


@pytest.mark.services
def test_workers_survive_the_server_ending_their_connections(postgres_url: str):
    outcome = bench_faults.drop_scenario(postgres_url, "postgresql", drops=2, rng=random.Random(3))
    assert outcome.drops >= 1
    assert_holds(outcome)


@pytest.mark.services
@pytest.mark.parametrize("storage", ["postgresql", "mariadb"])
def test_eight_workers_reach_the_exact_total(storage: str, tmp_path: Path):
    outcome = bench_faults.load_scenario(
        url_for(storage, tmp_path), storage, workers=8, n_trials=200
    )
    assert outcome.workers == 9  # eight, and the last that checks the end
    assert_holds(outcome)


# Single faults, with real waits: a trial that never wrote a heartbeat, a disk that fills up, and
# processes racing to create a new storage.


def test_a_running_trial_that_never_wrote_a_heartbeat_is_failed_after_the_grace_period(tmp_path):
    from autotune.storage import open_storage

    url = f"sqlite:///{tmp_path / 'orphan.db'}"
    storage = open_storage(url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(study_name="stub", storage=storage, direction="maximize")
    study.enqueue_trial({"x": 0.25})
    orphan = study.ask()  # its worker died before its first heartbeat
    orphan.suggest_float("x", -1.0, 1.0)
    started = time.monotonic()
    runner.work(study, lambda: quadratic, n_trials=1, timeout=30, echo=None)
    waited = time.monotonic() - started
    states_now = states(study)
    assert states_now[0] == "FAIL" and "RUNNING" not in states_now
    # its params were queued again and trained, as for a trial whose heartbeat went stale
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retried) == 1 and retried[0].params == {"x": 0.25}
    assert retried[0].state.name == "COMPLETE"
    assert waited >= 2.0  # not before the grace period


@pytest.mark.disk_size("4m")
def test_a_full_disk_stops_the_run_with_one_line_and_the_next_run_finishes_the_study(
    tiny_disk, monkeypatch
):
    import os

    from autotune.errors import StorageError
    from autotune.storage import open_storage

    monkeypatch.setattr(runner, "RECONNECT_WAITS", (0.01,))
    url = f"sqlite:///{tiny_disk / 'studies.db'}"
    study = optuna.create_study(study_name="stub", direction="maximize",
                                storage=open_storage(url, heartbeat_interval=1, grace_period=2))  # fmt: skip
    filler = tiny_disk / "filler"

    def objective(trial: optuna.Trial) -> float:
        value = quadratic(trial)
        if trial.number == 2:  # something else fills the disk while this trial trains
            free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
            filler.write_bytes(b"\0" * free)
        return value

    with pytest.raises(
        StorageError,
        match=r"^The storage sqlite:///.*studies.db stopped answering: database or disk is full\. Finished trials are kept in it; run the study again once it answers\.$",
    ):
        runner.work(study, lambda: objective, n_trials=5, echo=None)
    assert states(study)[:2] == ["COMPLETE", "COMPLETE"]
    filler.unlink()  # the disk has room again: the next run finishes the study
    again = optuna.load_study(
        study_name="stub", storage=open_storage(url, heartbeat_interval=1, grace_period=2)
    )
    runner.work(again, lambda: quadratic, n_trials=5, timeout=60, echo=None)
    assert "RUNNING" not in states(again)
    assert study_module.counts(again).finished == 5


def test_processes_opening_a_new_sqlite_file_at_once_all_get_it(tmp_path: Path):
    # Several workers started together race to create Optuna's tables in a fresh file.
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    start = time.time() + 3  # all import first, then open at the same moment
    code = (
        "import time, sqlalchemy, optuna\n"
        "from autotune.storage import open_storage\n"
        f"time.sleep(max(0.0, {start} - time.time()))\n"
        f"open_storage({url!r})\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]  # fmt: skip
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0] * 4, [err[-300:] for _, err in results]
