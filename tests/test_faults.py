"""Fault injection (scripts/bench_faults.py): workers killed at random moments, paused past the
grace period, cut off by the database server, and eight at once; nothing lost, nothing left
RUNNING, the total exact, every process clean or killed."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent / "scripts"))

import bench_faults  # noqa: E402

from conftest import server_url  # noqa: E402

pytestmark = pytest.mark.slow


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
