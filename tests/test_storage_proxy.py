"""``autotune storage-proxy`` as a user runs it: a real proxy process in front of an SQLite
file or PostgreSQL, worker processes of autotune's work loop (scripts/scale_workers.py's, with a
toy objective) reaching it through grpc://127.0.0.1:PORT; the exact total, a worker killed
with SIGKILL mid-trial, and a clean stop on Ctrl-C."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest

from autotune import proxy as proxy_module
from autotune import storage as storage_module
from autotune import study as study_module

from conftest import server_url

pytestmark = pytest.mark.slow
State = optuna.trial.TrialState
SCRIPT = Path(__file__).parents[1] / "scripts" / "scale_workers.py"
sys.path.insert(0, str(SCRIPT.parent))

import scale_workers  # noqa: E402

HEARTBEAT, GRACE = 1, 3


def url_for(storage: str, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'behind.db'}" if storage == "sqlite" else server_url(storage)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def proxy_process(url: str) -> Iterator[tuple[subprocess.Popen[str], str, int]]:
    """``autotune storage-proxy`` on ``url``; its process, the line it printed, and its port.
    Stopped with SIGINT (Ctrl-C) at the end if still running."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "autotune", "storage-proxy", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        if not select.select([process.stdout], [], [], 60)[0]:
            raise AssertionError("the proxy printed nothing within 60 s")
        yield process, process.stdout.readline(), port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


def start_worker(address: str, name: str, seed: int, sleep: float) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(SCRIPT), "worker", "--url", address, "--study", name,
               "--seed", str(seed), "--sleep", str(sleep)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stored(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    """The study's trials as the database holds them now (not through the proxy)."""
    rdb = storage_module.open_storage(url, retry_stale=False)
    try:
        return rdb.get_all_trials(rdb.get_study_id_from_name(name), deepcopy=False)
    finally:
        rdb.engine.dispose()


def delete(url: str, name: str) -> None:
    try:
        optuna.delete_study(study_name=name, storage=url)
    except KeyError:
        pass


@pytest.mark.parametrize(
    "storage", ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)]
)
def test_workers_through_a_proxy_reach_the_exact_total_and_ctrl_c_stops_it(
    storage: str, tmp_path: Path
):
    url = url_for(storage, tmp_path)
    name = f"proxy_{uuid.uuid4().hex[:8]}"
    try:
        with proxy_process(url) as (proxy, line, port):
            address = f"grpc://127.0.0.1:{port}"
            assert line == (
                f"Storage proxy for {url} on 127.0.0.1:{port}; workers use --storage"
                f" {address}. Stop it with Ctrl-C.\n"
            )
            # The study is made through the proxy too, as `autotune run --storage grpc://...`.
            study_module.open_study(scale_workers.toy_spec(name, 30, HEARTBEAT, GRACE), address)
            workers = [start_worker(address, name, seed, 0.02) for seed in range(4)]
            for worker in workers:
                _, errors = worker.communicate(timeout=240)
                assert worker.returncode == 0, errors.decode()[-2000:]
            proxy.send_signal(signal.SIGINT)
            out, errors = proxy.communicate(timeout=30)
        assert (proxy.returncode, out, errors) == (0, "Storage proxy stopped.\n", "")
        trials = [t for t in stored(url, name) if not study_module.is_surplus(t)]
        assert sum(1 for t in trials if t.state == State.COMPLETE) == 30
        assert [t for t in trials if t.state != State.COMPLETE] == []
        assert all(t.system_attrs[proxy_module.BEAT_ATTR] >= 1 for t in trials)
    finally:
        delete(url, name)


@pytest.mark.parametrize(
    "storage", ["sqlite", pytest.param("postgresql", marks=pytest.mark.services)]
)
def test_a_worker_killed_mid_trial_behind_the_proxy_has_its_trial_failed_and_run_again(
    storage: str, tmp_path: Path
):
    url = url_for(storage, tmp_path)
    name = f"proxy_{uuid.uuid4().hex[:8]}"
    n_trials = 4
    try:
        with proxy_process(url) as (_, _, port):
            address = f"grpc://127.0.0.1:{port}"
            study_module.open_study(
                scale_workers.toy_spec(name, n_trials, HEARTBEAT, GRACE), address
            )
            doomed = start_worker(address, name, seed=0, sleep=30.0)  # a trial that lasts
            deadline = time.monotonic() + 60
            while True:  # until its trial has beaten, i.e. it is training
                beating = [t for t in stored(url, name) if proxy_module.BEAT_ATTR in t.system_attrs]
                if beating or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert beating and beating[0].state == State.RUNNING
            victim = beating[0]
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
            killed = time.monotonic()
            while stored(url, name)[victim.number].state == State.RUNNING:
                assert time.monotonic() - killed < GRACE + 10, "still RUNNING well past the grace"
                time.sleep(0.1)
            waited = time.monotonic() - killed
            # Its last beat came at most a heartbeat before the kill; the monitor looks each second.
            assert GRACE - HEARTBEAT - 0.5 <= waited <= GRACE + 3
            trials = stored(url, name)
            assert trials[victim.number].state == State.FAIL
            retry = trials[-1]
            assert retry.state == State.WAITING and retry.params == victim.params
            assert retry.system_attrs["failed_trial"] == victim.number
            assert retry.system_attrs["retry_history"] == [victim.number]

            finisher = start_worker(address, name, seed=1, sleep=0.05)
            _, errors = finisher.communicate(timeout=120)
            assert finisher.returncode == 0, errors.decode()[-2000:]
        trials = stored(url, name)
        assert [t.state for t in trials].count(State.COMPLETE) == n_trials
        assert [t.state for t in trials].count(State.FAIL) == 1  # the killed one, nothing more
        assert State.RUNNING not in [t.state for t in trials]
        assert trials[retry.number].state == State.COMPLETE
        assert trials[retry.number].params == victim.params
    finally:
        delete(url, name)
