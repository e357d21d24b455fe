"""Storage load test: N worker processes on one study, on the database directly or through
``autotune storage-proxy``.

Each worker is autotune's own work loop (``autotune.runner.work``, so the exact-total rule and
every storage write of a real trial happen) with a toy objective that samples one param and
sleeps a few milliseconds: the storage, not training, is what is measured. The workers start,
open the study, and wait at a starting line, so that the time measured is the trials' and not
64 Python processes starting on a small machine. For each run:

- ``trials_per_second``: the study's ``n_trials`` over the seconds from the start to the last
  worker's exit;
- ``exact``: the study ends with exactly ``n_trials`` complete trials and none running;
- ``connection_errors``: lines of the workers' (and the proxy's) stderr that report a lost or
  refused connection (``too many clients``, a pool timeout, an unreachable proxy...), and
  ``failed_workers``, those that exited with an error;
- ``peak_connections`` (PostgreSQL): the most client connections to the database seen in
  ``pg_stat_activity``, sampled every 50 ms while the workers (and the proxy) run, with
  ``baseline_connections``, those there before they started.

Each run makes a fresh study and deletes it afterwards. :func:`load_test` is one run, for other
scripts to call; ``main`` runs 8 and 64 workers both ways, prints a table and adds the run to
``benchmarks/scale_workers.json``.

Example:

    python scripts/scale_workers.py                          # 8 and 64 workers, direct and proxy
    python scripts/scale_workers.py --workers 8 --trials 200 --modes proxy
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
HEARTBEAT, GRACE = 10, 60  # the defaults of a study file
SLEEP = 0.005
# What a worker or the proxy says when a connection is refused or lost.
CONNECTION_ERROR = re.compile(
    r"too many clients|remaining connection slots|QueuePool limit|could not connect"
    r"|connection (?:refused|failed|timed out|is closed)|server closed the connection"
    r"|StatusCode\.UNAVAILABLE|No storage proxy answers|stopped answering",
    re.IGNORECASE,
)


def toy_spec(name: str, n_trials: int, heartbeat: int = HEARTBEAT, grace: int = GRACE) -> Any:
    """A study whose trials never train: the random sampler (no model of the trials to fit, so
    that sampling costs nothing whatever their number) and no pruner."""
    from autotune.spec import from_dict

    return from_dict({
        "name": name, "n_trials": n_trials, "sampler": "random", "pruner": "none",
        "heartbeat_interval": heartbeat, "grace_period": grace,
        "data": {"source": "circles"}, "space": {"batch_size": 64},
    })  # fmt: skip


def worker(
    url: str, name: str, seed: int, sleep: float, ready: Path | None = None, go: Path | None = None
) -> None:
    """One worker process: opens the stored study, says it is ready (makes the file ``ready``),
    waits for the file ``go``, and works until the study's total is reached."""
    from autotune import runner
    from autotune import storage as storage_module
    from autotune import study as study_module

    # As `autotune worker` (autotune.runner.join) does.
    stored = study_module.load_study(name, url)
    spec = study_module.stored_spec(stored)
    storage_module.close(stored._storage)
    study = study_module.open_study(spec, url, sampler_seed=seed)

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        time.sleep(sleep)
        return x

    if ready is not None:
        ready.touch()
    while go is not None and not go.exists():
        time.sleep(0.01)
    runner.work(study, lambda: objective, n_trials=spec.n_trials, echo=None)


class Connections:
    """Samples the client connections to a PostgreSQL database, in a thread, until stopped."""

    def __init__(self, url: str, every: float = 0.05) -> None:
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self.query = sqlalchemy.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(self.query).scalar_one())

    def __enter__(self) -> Connections:
        self._connection = self.engine.connect()
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, int(self._connection.execute(self.query).scalar_one()))
            self._connection.rollback()
            self._stop.wait(self.every)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._connection.close()
        self.engine.dispose()


def start_proxy(url: str, folder: Path) -> tuple[subprocess.Popen[str], str, Path]:
    """``autotune storage-proxy`` on ``url`` on a free port; its process, the grpc:// URL the
    workers use, and the file its stderr goes to."""
    errors = folder / "proxy.err"
    process = subprocess.Popen(
        [sys.executable, "-m", "autotune", "storage-proxy", "--port", "0"],
        env={**os.environ, "AUTOTUNE_STORAGE": url},
        stdout=subprocess.PIPE, stderr=errors.open("w"), text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    found = re.search(r"--storage (grpc://\S+?)\.? ", line)
    if found is None:
        process.kill()
        raise RuntimeError(f"the proxy did not start: {line!r} {errors.read_text()}")
    return process, found[1], errors


def stop_proxy(process: subprocess.Popen[str]) -> int:
    """Stops the proxy as Ctrl-C does; its exit code."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def launch(url: str, name: str, index: int, sleep: float, folder: Path) -> subprocess.Popen[bytes]:
    """A worker process of :func:`worker`; its stderr goes to ``folder/worker-INDEX.err``."""
    command = [sys.executable, __file__, "worker", "--url", url, "--study", name,
               "--seed", str(index), "--sleep", str(sleep),
               "--ready", str(folder / "ready" / str(index)), "--go", str(folder / "go")]  # fmt: skip
    errors = (folder / f"worker-{index}.err").open("wb")
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)


def load_test(
    url: str,
    workers: int,
    n_trials: int,
    proxy: bool,
    *,
    sleep: float = SLEEP,
    timeout: float = 900,
) -> dict[str, Any]:
    """One run: ``workers`` processes bring a fresh study to ``n_trials`` trials, on the
    database at ``url`` or through a storage proxy in front of it; the figures (see the
    module's text), and the study deleted."""
    from autotune import storage as storage_module
    from autotune import study as study_module

    name = f"scale_{uuid.uuid4().hex[:10]}"
    created = study_module.open_study(toy_spec(name, n_trials), url)
    storage_module.rdb_of(created._storage).engine.dispose()  # the workers' connections only
    try:
        result = _run(url, name, workers, proxy, sleep, timeout)
        study = study_module.load_study(name, url)
        tally = study_module.counts(study)
    finally:
        study_module.delete_study(created)
        storage_module.rdb_of(created._storage).engine.dispose()
    seconds = result.pop("seconds")
    result = {"workers": workers, "proxy": proxy, "n_trials": n_trials, **result}
    result.update(
        finished=tally.finished,
        failed=tally.failed,
        running=tally.running,
        exact=tally.finished == n_trials and tally.running == 0,
        seconds=round(seconds, 2),
        trials_per_second=round(n_trials / seconds, 1),
    )
    return result


def _run(
    url: str, name: str, workers: int, proxy: bool, sleep: float, timeout: float
) -> dict[str, Any]:
    """Starts the proxy (if asked) and the workers, lets them go once all are ready, and
    waits for them; the seconds from the start to the last exit, and what was seen."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "ready").mkdir()
        sampler = Connections(url) if url.startswith("postgresql") else None
        baseline = sampler.count() if sampler else None
        processes: list[subprocess.Popen[bytes]] = []
        server = None
        try:
            if sampler is not None:
                sampler.__enter__()
            started = time.perf_counter()
            target = url
            if proxy:
                server, target, _ = start_proxy(url, folder)
            processes = [launch(target, name, i, sleep, folder) for i in range(workers)]
            deadline = time.monotonic() + timeout
            while len(list((folder / "ready").iterdir())) < workers:
                if any(p.poll() is not None for p in processes) or time.monotonic() > deadline:
                    break  # one died before the start: its stderr says why
                time.sleep(0.05)
            startup = time.perf_counter() - started
            (folder / "go").touch()
            began = time.perf_counter()
            for process in processes:
                try:
                    process.wait(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            seconds = time.perf_counter() - began
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            proxy_exit = stop_proxy(server) if server is not None else None
            if sampler is not None:
                sampler.__exit__()
        said = [p.read_text(errors="replace") for p in sorted(folder.glob("*.err"))]
    errors = [line for text in said for line in text.splitlines() if CONNECTION_ERROR.search(line)]
    # Where each worker that failed on a connection was: its traceback's last frame in autotune.
    where = Counter(
        frames[-1] for text in said if CONNECTION_ERROR.search(text)
        for frames in [re.findall(r'File ".*/autotune/(\w+\.py)", line \d+, in (\w+)', text)]
        if frames
    )  # fmt: skip
    return {
        "seconds": seconds,
        "startup_seconds": round(startup, 1),
        "connection_errors": len(errors),
        "first_error": errors[0].strip()[:200] if errors else None,
        "failed_in": {f"{module}:{function}": n for (module, function), n in where.items()},
        "failed_workers": sum(1 for p in processes if p.returncode != 0),
        "proxy_exit": proxy_exit,
        "baseline_connections": baseline,
        "peak_connections": sampler.peak if sampler else None,
    }


def table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| workers | storage | trials/s | exact total | connection errors | failed workers"
        " | peak connections (before) |",
        "| ---: | --- | ---: | --- | ---: | ---: | --- |",
    ]
    for r in results:
        peak = "-" if r["peak_connections"] is None else (
            f"{r['peak_connections']} ({r['baseline_connections']})")  # fmt: skip
        lines.append(
            f"| {r['workers']} | {'proxy' if r['proxy'] else 'direct'} | {r['trials_per_second']}"
            f" | {'yes' if r['exact'] else 'NO'} ({r['finished']}/{r['n_trials']})"
            f" | {r['connection_errors']} | {r['failed_workers']} | {peak} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("worker", help="one worker process (used by the load test)")
    one.add_argument("--url", required=True)
    one.add_argument("--study", required=True)
    one.add_argument("--seed", type=int, default=0)
    one.add_argument("--sleep", type=float, default=SLEEP)
    one.add_argument("--ready", type=Path, help="a file to make once the study is open")
    one.add_argument("--go", type=Path, help="a file to wait for before the first trial")
    parser.add_argument("--url", default=POSTGRES)
    parser.add_argument("--workers", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--trials", type=int, default=640, help="the study's total per run")
    parser.add_argument("--sleep", type=float, default=SLEEP, help="seconds each trial sleeps")
    parser.add_argument("--modes", nargs="+", choices=["direct", "proxy"],
                        default=["direct", "proxy"])  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("benchmarks/scale_workers.json"))
    args = parser.parse_args(argv)
    if args.command == "worker":
        worker(args.url, args.study, args.seed, args.sleep, args.ready, args.go)
        return
    results = []
    for workers in args.workers:
        for mode in args.modes:
            result = load_test(args.url, workers, args.trials, mode == "proxy", sleep=args.sleep)
            print(json.dumps(result), flush=True)
            results.append(result)
    lines = table(results)
    print("\n".join(lines))
    from autotune.proxy import THREADS
    from autotune.storage import POOL_OVERFLOW, POOL_SIZE

    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Each run is added to the file: on a shared machine one run alone says little.
    runs = json.loads(args.out.read_text())["runs"] if args.out.is_file() else []
    runs.append({
        "command": shlex.join(["python", "scripts/scale_workers.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores,"
                   f" Python {platform.python_version()}",
        "settings": {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW,
                     "proxy_threads": THREADS, "sleep": args.sleep},
        "results": results,
        "table": lines,
    })  # fmt: skip
    args.out.write_text(json.dumps({"runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
