"""Storage behaviour that only real PostgreSQL and MariaDB servers show: time zones of
heartbeats, and names that a database compares without case."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import optuna
import pytest

from autotune import storage, study
from autotune.errors import StudyMismatchError
from autotune.spec import from_dict

from conftest import tiny_raw

pytestmark = pytest.mark.services


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh study name, deleted afterwards from the server the test used."""
    fresh = f"tz_{uuid.uuid4().hex[:10]}"
    yield fresh
    for url in getattr(request.node, "used", []):
        for stored in optuna.get_all_study_names(storage=url):
            if stored.lower() == fresh.lower():
                optuna.delete_study(study_name=stored, storage=url)


def test_a_live_heartbeat_is_not_stale_to_a_worker_in_another_time_zone(
    postgres_url: str, name: str, request, monkeypatch
):
    request.node.used = [postgres_url]
    # A worker in Los Angeles creates a trial and beats...
    monkeypatch.setenv("PGTZ", "America/Los_Angeles")
    west = storage.open_storage(postgres_url, heartbeat_interval=1, grace_period=60)
    created = optuna.create_study(study_name=name, storage=west)
    trial = created.ask()
    west.record_heartbeat(trial._trial_id)
    with west.engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW TimeZone").scalar() == "UTC"
    # ...and a worker in Tokyo, 17 hours ahead, looks for stale trials at once.
    monkeypatch.setenv("PGTZ", "Asia/Tokyo")
    east = storage.open_storage(postgres_url, heartbeat_interval=1, grace_period=60)
    study_id = east.get_study_id_from_name(name)
    assert east._get_stale_trial_ids(study_id) == []
    assert east.get_trial(trial._trial_id).state.name == "RUNNING"


def test_mariadb_cannot_alias_two_studies_that_differ_in_case(mariadb_url: str, name: str, request):
    request.node.used = [mariadb_url]
    study.open_study(from_dict(tiny_raw(name)), mariadb_url)
    shouting = name.upper()
    with pytest.raises(
        StudyMismatchError,
        match=rf"Study '{shouting}' would open study '{name}' in mysql\+pymysql://root@127.0.0.1:3306/test, whose database tells names apart by more than case",
    ):
        study.open_study(from_dict(tiny_raw(shouting)), mariadb_url)
    assert optuna.get_all_study_names(storage=mariadb_url).count(name) == 1


def test_mariadb_sessions_write_heartbeats_in_utc(mariadb_url: str):
    store = storage.open_storage(mariadb_url, heartbeat_interval=1, grace_period=60)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT @@session.time_zone").scalar() == "+00:00"
