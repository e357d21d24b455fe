"""``autotune dashboard``: optuna-dashboard on the study storage, seen in a real browser."""

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner

from autotune import storage
from autotune.cli import cli

import browser

PG_WITH_PASSWORD = "postgresql+psycopg://postgres:s3cret@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(url: str, port: int) -> tuple[subprocess.Popen, list[str]]:
    """Starts ``autotune dashboard`` in a process of its own; returns it and its two lines."""
    process = subprocess.Popen(
        [sys.executable, "-m", "autotune", "dashboard", "--storage", url, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Both lines are read here: communicate() later reads the pipe past Python's buffer.
    return process, [process.stdout.readline().rstrip("\n") for _ in range(2)]


def stop(process: subprocess.Popen) -> tuple[str, str]:
    """Ctrl-C, as a user stops it; returns what it printed after its first two lines."""
    process.send_signal(signal.SIGINT)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return out, err


@pytest.mark.services
def test_the_dashboard_shows_the_study_and_its_trials_in_a_browser(finished_study: str, chromium):
    port = free_port()
    process, lines = start(finished_study, port)
    try:
        address = f"http://127.0.0.1:{port}/dashboard"
        assert lines == [f"optuna-dashboard on {finished_study}: {address}", "Stop it with Ctrl-C."]
        with browser.page() as page:
            page.goto(address)
            page.get_by_role("link", name=re.compile(r"^\d+\. tiny\b")).click(timeout=30_000)
            page.locator('a[href$="/trials"]').first.click(timeout=30_000)  # "Trials (List)"
            for number in range(2):
                page.get_by_text(f"Trial {number}", exact=True).first.wait_for(timeout=30_000)
            body = page.inner_text("body")
        trial = optuna.load_study(study_name="tiny", storage=finished_study).trials[0]
        assert "learning_rate" in body and str(trial.params["learning_rate"]) in body
        assert "stop_reason" in body
    finally:
        out, err = stop(process)
    assert process.returncode == 0, err
    assert out == "Dashboard stopped.\n"


@pytest.mark.services
def test_the_printed_address_never_shows_the_storage_password(postgres_url: str):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage.open_storage(storage.resolve_url(PG_WITH_PASSWORD))  # Optuna's tables exist
    process, (first, _) = start(PG_WITH_PASSWORD, free_port())
    stop(process)
    masked = "postgresql+psycopg://postgres:***@127.0.0.1:5432/test"
    assert first.startswith(f"optuna-dashboard on {masked}: http://127.0.0.1:")
    assert "s3cret" not in first


def test_a_port_in_use_is_one_line(sqlite_url: str):
    storage.open_storage(sqlite_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["dashboard", "--storage", sqlite_url, "--port", str(port)]
        )
    assert result.exit_code == 1
    assert result.output == (
        f"Error: Cannot listen on 127.0.0.1:{port}: Address already in use. Choose another"
        " port with --port, or stop what uses this one.\n"
    )


def test_no_storage_yet_is_one_line(workdir: Path):
    result = CliRunner().invoke(cli, ["dashboard"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: No storage at {workdir / 'autotune.db'} yet.")
    assert not (workdir / "autotune.db").exists()


def test_requests_for_another_host_are_refused_so_a_page_elsewhere_cannot_delete_a_study(
    finished_study: str, tmp_path: Path
):
    # A copy of the shared finished study: this test tries to delete it.
    import http.client
    import sqlite3
    import threading

    from autotune import dashboard

    # SQLite's backup copies what the write-ahead log holds too
    with sqlite3.connect(finished_study.split("///", 1)[1]) as source:
        with sqlite3.connect(tmp_path / "copy.db") as copy:
            source.backup(copy)
    url = f"sqlite:///{tmp_path / 'copy.db'}"
    server = dashboard.make_server(url, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_port
    study_id = optuna.load_study(study_name="tiny", storage=url)._study_id

    def request(method: str, host: str) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request(method, f"/api/studies/{study_id}", headers={"Host": host})
        response = connection.getresponse()
        return response.status, response.read().decode()

    try:
        status, body = request("DELETE", "attacker.example:8080")
        assert status == 403
        assert (
            "not 'attacker.example:8080'. To open it to a network on purpose, start it with --host 0.0.0.0"
            in body
        )
        assert optuna.get_all_study_names(storage=url) == ["tiny"]
        assert request("GET", f"127.0.0.1:{port}")[0] == 200
        assert request("GET", f"localhost:{port}")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_the_dashboard_serves_the_best_model_that_the_run_kept_as_an_artifact(
    write_study, sqlite_url: str, workdir: Path
):
    import http.client
    import json
    import threading

    from autotune import checkpoints, dashboard, runner

    study = runner.run(str(write_study(n_trials=3, max_epochs=2)), storage=sqlite_url, echo=None)
    kept = study.user_attrs[checkpoints.BEST_MODEL_ATTR]
    assert kept["trial"] == study.best_trial.number
    folder = checkpoints.default_folder(sqlite_url)
    assert folder == workdir / "studies-artifacts"
    # One model is left: the best trial's (every trial's checkpoint went when it ended).
    assert [p.name for p in folder.iterdir()] == [kept["artifact"]]

    server = dashboard.make_server(sqlite_url, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def get(path: str) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()

    try:
        status, body = get(f"/api/studies/{study._study_id}")
        assert status == 200
        listed = json.loads(body)["artifacts"]
        assert [(a["artifact_id"], a["filename"]) for a in listed] == [
            (kept["artifact"], "best-model.keras")
        ]
        status, model = get(f"/artifacts/{study._study_id}/{kept['artifact']}")
        assert status == 200
        assert model == (folder / kept["artifact"]).read_bytes() and model[:2] == b"PK"
    finally:
        server.shutdown()
        server.server_close()


def test_a_poll_of_the_study_page_reads_only_the_trials_that_changed(tmp_path: Path):
    import http.client
    import json
    import threading
    import time

    from optuna.storages import RDBStorage

    from autotune import dashboard

    url = f"sqlite:///{tmp_path / 'polls.db'}"
    study = optuna.create_study(study_name="polls", storage=url)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=600)
    read: list[int] = []
    fetch = RDBStorage._get_trials

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        trials = fetch(self, *args, **kwargs)
        read.append(len(trials))
        return trials

    server = dashboard.make_server(url, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from optuna_dashboard._inmemory_cache import _CachedExtraStudyProperty as Summary

    scan = Summary._update_search_space
    scanned: list[int] = []

    def counting_scan(self, trial):  # type: ignore[no-untyped-def]
        scanned.append(trial.number)
        return scan(self, trial)

    def poll(after: int) -> list[dict]:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
        connection.request("GET", f"/api/studies/{study._study_id}?after={after}")
        return json.loads(connection.getresponse().read())["trials"]

    RDBStorage._get_trials = counting  # type: ignore[method-assign]
    Summary._update_search_space = counting_scan  # type: ignore[method-assign]
    try:
        assert len(poll(0)) == 600 and read == [600]
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        time.sleep(10.5)  # optuna-dashboard keeps the trials 10 s past 500 trials
        read.clear()  # what the writes above read
        scanned.clear()
        new = poll(600)
        assert [t["number"] for t in new] == [600, 601, 602]
        assert read == [3]  # the three new trials, not the study again
        assert sorted(scanned) == [600, 601, 602]  # its summary, too, looked at them alone
    finally:
        RDBStorage._get_trials = fetch  # type: ignore[method-assign]
        Summary._update_search_space = scan  # type: ignore[method-assign]
        server.shutdown()
        server.server_close()
