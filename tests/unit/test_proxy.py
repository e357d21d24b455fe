"""The storage proxy: its monitor (driven by a clock of the test's own, on an SQLite file), the
beats of a worker behind it, and a proxy served in this process that workers reach through
grpc://: the exact total, counted without SQL, and the errors a user can meet."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from autotune import proxy as proxy_module
from autotune import runner
from autotune import storage as storage_module
from autotune import study as study_module
from autotune.errors import AutotuneError, StorageError
from autotune.spec import from_dict

from conftest import tiny_raw

State = optuna.trial.TrialState
GRACE = 4  # tiny_raw's grace_period


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def autotune_study(url: str, name: str = "tiny") -> optuna.Study:
    """A study made by autotune (its spec stored, with grace_period 4) on ``url``."""
    return study_module.open_study(from_dict(tiny_raw(name, sampler="random")), url)


def running(study: optuna.Study, x: float = 0.25) -> optuna.Trial:
    """A RUNNING trial with ``x`` as its param, as a worker leaves it when it dies."""
    study.enqueue_trial({"x": x})
    trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    return trial


def stored(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The study's trials as the database holds them now."""
    return storage_module.rdb_of(study._storage).get_all_trials(study._study_id, deepcopy=False)


def beat(study: optuna.Study, trial: optuna.Trial, count: int) -> None:
    study._storage.set_trial_system_attr(trial._trial_id, proxy_module.BEAT_ATTR, count)


@pytest.fixture
def monitored(sqlite_url: str) -> tuple[optuna.Study, proxy_module.Monitor, Clock]:
    study = autotune_study(sqlite_url)
    clock = Clock()
    storage = storage_module.open_storage(sqlite_url, retry_stale=False)
    return study, proxy_module.Monitor(storage, clock), clock


def test_a_trial_that_beats_lives_and_one_whose_beat_stops_is_failed_and_queued_again(monitored):
    study, monitor, clock = monitored
    trial = running(study, x=0.25)
    for count in range(1, 8):  # beating once a second, for longer than the grace period
        beat(study, trial, count)
        assert monitor.check() == []
        clock.now += 1.0
    assert stored(study)[0].state == State.RUNNING
    clock.now += GRACE - 1.5  # its last beat was seen GRACE - 0.5 s ago
    assert monitor.check() == []
    clock.now += 0.5
    assert monitor.check() == [trial._trial_id]
    failed, retry = stored(study)
    assert failed.state == State.FAIL
    # Queued again as Optuna's RetryHeartbeatStaleTrialCallback does, which resume_point reads.
    assert retry.state == State.WAITING and retry.params == {"x": 0.25}
    assert retry.system_attrs["failed_trial"] == 0 and retry.system_attrs["retry_history"] == [0]
    assert proxy_module.BEAT_ATTR not in retry.system_attrs  # its first beat will be a change
    assert monitor.check() == []  # failed once


def test_a_trial_never_seen_beating_is_failed_a_grace_period_after_it_was_first_seen(monitored):
    study, monitor, clock = monitored
    clock.now = 1000.0  # the trial may be much older; only the monitor's own clock counts
    running(study)
    assert monitor.check() == []
    clock.now += GRACE - 0.1
    assert monitor.check() == []
    clock.now += 0.1
    assert len(monitor.check()) == 1
    assert [t.state for t in stored(study)] == [State.FAIL, State.WAITING]


def test_a_retried_trial_is_retried_three_times_at_most(monitored):
    study, monitor, clock = monitored
    running(study)
    for attempt in range(4):
        monitor.check()
        clock.now += GRACE
        assert len(monitor.check()) == 1
        if attempt < 3:
            assert study.ask().params == {"x": 0.25}  # the retry, queued
    assert [t.state for t in stored(study)] == [State.FAIL] * 4
    assert stored(study)[-1].system_attrs["retry_history"] == [0, 1, 2]


def test_trials_of_a_study_not_made_by_autotune_are_left_alone(monitored, sqlite_url: str):
    _, monitor, clock = monitored
    other = optuna.create_study(study_name="plain", storage=sqlite_url)
    other.ask()
    monitor.check()
    clock.now += 10 * GRACE
    assert monitor.check() == []
    assert other.trials[0].state == State.RUNNING


def test_a_beat_is_written_as_the_optuna_heartbeat_that_direct_workers_read(monitored):
    study, monitor, clock = monitored
    trial = running(study)
    assert storage_module.running_without_heartbeat(study._storage, study._study_id) == {
        trial._trial_id
    }
    beat(study, trial, 1)
    monitor.check()
    assert storage_module.running_without_heartbeat(study._storage, study._study_id) == set()


def test_a_direct_workers_trial_lives_while_its_heartbeat_changes_and_is_failed_once_it_stops(
    monitored, sqlite_url: str
):
    study, monitor, clock = monitored
    rdb = storage_module.rdb_of(study._storage)
    trial = running(study)
    rdb.record_heartbeat(trial._trial_id)
    assert monitor.check() == []
    clock.now += GRACE - 0.5
    time.sleep(1.05)  # a heartbeat is the database's time, to the second on SQLite
    rdb.record_heartbeat(trial._trial_id)
    assert monitor.check() == []
    clock.now += GRACE - 0.5  # the first heartbeat would be stale by now, the second is not
    assert monitor.check() == []
    clock.now += 0.5
    assert monitor.check() == [trial._trial_id]


def test_the_beat_counts_up_through_the_proxy_and_stops_with_the_block(served: str):
    study = autotune_study(served)
    trial = study.ask()
    with proxy_module.beating(trial):
        time.sleep(1.2)  # tiny_raw beats every second: at once, then a second later
        assert study._storage.get_trial(trial._trial_id).system_attrs[proxy_module.BEAT_ATTR] == 2
    assert not [t for t in threading.enumerate() if t.name.startswith("autotune-beat")]


def test_beating_is_nothing_on_a_database(sqlite_url: str):
    study = autotune_study(sqlite_url)
    trial = study.ask()
    with proxy_module.beating(trial):
        pass
    assert proxy_module.BEAT_ATTR not in stored(study)[0].system_attrs


@pytest.fixture
def served(workdir: Path) -> Iterator[str]:
    """A proxy served in this process on an SQLite file, by its grpc:// URL."""
    proxy = proxy_module.Proxy(f"sqlite:///{workdir / 'behind.db'}", port=0)
    proxy.start()
    try:
        yield proxy.address
    finally:
        proxy.stop()


def quadratic(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    return 1.0 - x * x


def test_workers_behind_the_proxy_reach_the_exact_total_counted_without_sql(served: str):
    study = autotune_study(served)
    assert isinstance(study._storage, optuna.storages.GrpcStorageProxy) or (
        storage_module.proxy_of(study._storage) is not None
    )
    assert storage_module.rdb_of(study._storage) is None  # counts read the trials
    others = [autotune_study(served) for _ in range(2)]
    threads = [
        threading.Thread(target=runner.work, args=(s, lambda: quadratic), kwargs={
            "n_trials": 12, "echo": None})
        for s in [study, *others]
    ]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    tally = study_module.counts(study)
    assert (tally.finished, tally.running, tally.waiting) == (12, 0, 0)
    beaten = [t for t in study.trials if not study_module.is_surplus(t)]
    assert all(t.system_attrs[proxy_module.BEAT_ATTR] >= 1 for t in beaten)


def test_a_proxy_gone_away_is_a_storage_error_that_the_work_loop_waits_out(workdir: Path):
    proxy = proxy_module.Proxy(f"sqlite:///{workdir / 'behind.db'}", port=0)
    proxy.start()
    client = storage_module.open_storage(proxy.address)
    proxy.stop()
    with pytest.raises(Exception) as info:
        client.get_all_studies()
    # The loop waits for a storage error to pass (see test_runner), and then ends in one line.
    assert runner._database_error(info.value) is info.value
    assert str(storage_module.lost(info.value, client)).startswith(
        f"The storage {proxy.address} stopped answering: failed to connect to all addresses"
    )
    assert runner._database_error(ValueError("a bug")) is None


def test_a_port_in_use_is_one_line_and_no_second_proxy(workdir: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AutotuneError, match=rf"^Cannot listen on 127\.0\.0\.1:{port}: "
                                                r"address already in use\. Choose another"):  # fmt: skip
            proxy_module.Proxy(f"sqlite:///{workdir / 'a.db'}", port=port)


def test_a_proxy_in_front_of_a_proxy_is_refused():
    with pytest.raises(StorageError, match=r"serves a database, not another proxy"):
        proxy_module.Proxy("grpc://127.0.0.1:13000", port=0)
