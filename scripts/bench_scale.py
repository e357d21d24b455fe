"""How autotune behaves on a study of 100,000 trials: every command's time and memory by size.

1. Builds studies of the shipped ``circles`` study with N synthetic finished trials (1k, 10k,
   100k by default), on SQLite and PostgreSQL. The study itself is made by ``autotune``
   (``open_study``, so its spec, fingerprint and metric are stored as a run stores them); the
   trials are written to Optuna's tables in bulk, with params drawn from autotune's own search
   space (distributions as Optuna stores them), a value, a learning curve of 1 to 20 epochs
   and the attributes a real trial has; about 40% complete and 60% pruned.
2. Times each command in a fresh process, as a user runs it, and takes its peak resident
   memory from the kernel (``wait4``): ``show``, ``studies``, ``trials --out`` (the table),
   ``report``; ``run`` resumed for two more trials: from its start to the first trial's start,
   and each trial's time outside training (from one trial's start to the next's, less its
   ``seconds``); the dashboard's study page (``/api/studies/ID``), the first load and later
   polls as its page makes them (``?after=`` the trials it has).
3. With ``--workers``, the storage load test of ``scripts/scale_workers.py``.

Prints the tables and writes them, with the command, to ``benchmarks/scale.md`` (raw figures
in ``benchmarks/scale.json``).

Example:

    python scripts/bench_scale.py --sizes 1000 10000 100000 --storages sqlite postgresql
    python scripts/bench_scale.py --sizes 300 --storages sqlite --out /tmp/scale  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CONFIGS = 2000  # distinct configurations drawn from the space, reused round robin
CHUNK = 5000  # trials per bulk insert
RUN_TRIALS = 4  # the trials `run` adds: start to the first, and the time outside training of 3


def study_name(size: int) -> str:
    return f"scale-{size}"


def study_file(size: int, folder: Path) -> Path:
    """The study file of ``scale-<size>``: the shipped circles study under that name."""
    from autotune.spec import find

    path = folder / f"{study_name(size)}.toml"
    text = find("circles").read_text()
    path.write_text(text.replace('name = "circles"', f'name = "{study_name(size)}"', 1)
                    .replace("n_trials = 30", f"n_trials = {size + 1000}", 1))  # fmt: skip
    return path


def build(url: str, size: int, folder: Path, *, seed: int = 0) -> float:
    """Makes study ``scale-<size>`` in ``url`` with ``size`` finished trials; seconds taken."""
    import optuna
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    from autotune import storage as storage_module
    from autotune import study as study_module
    from autotune.space import sample
    from autotune.spec import load

    start = time.perf_counter()
    spec = load(str(study_file(size, folder)))
    study = study_module.open_study(spec, url, sampler_seed=seed)
    rng = random.Random(seed)
    with storage_module.quiet_optuna():
        drawn = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        configs = []
        for _ in range(CONFIGS):
            trial = drawn.ask()
            sample(spec.space, trial)
            configs.append(
                [
                    (name, dist.to_internal_repr(trial.params[name]),
                     optuna.distributions.distribution_to_json(dist))
                    for name, dist in trial.distributions.items()
                ]
            )  # fmt: skip
    engine = storage_module.rdb_of(study._storage).engine
    tables = {m.__tablename__: m.__table__ for m in (
        models.TrialModel, models.TrialParamModel, models.TrialValueModel,
        models.TrialIntermediateValueModel, models.TrialUserAttributeModel,
    )}  # fmt: skip
    t0 = datetime(2026, 1, 1)
    State = optuna.trial.TrialState
    for first in range(0, size, CHUNK):
        numbers = range(first, min(size, first + CHUNK))
        rows = []
        for number in numbers:
            begin = t0 + timedelta(seconds=10 * number)
            rows.append({
                "number": number, "study_id": study._study_id,
                "state": State.COMPLETE if rng.random() < 0.4 else State.PRUNED,
                "datetime_start": begin,
                "datetime_complete": begin + timedelta(seconds=rng.uniform(1, 9)),
            })  # fmt: skip
        with engine.begin() as connection:
            connection.execute(tables["trials"].insert(), rows)
            ids = dict(
                connection.execute(
                    sa.select(tables["trials"].c.number, tables["trials"].c.trial_id).where(
                        tables["trials"].c.study_id == study._study_id,
                        tables["trials"].c.number >= first,
                        tables["trials"].c.number < first + CHUNK,
                    )
                ).all()
            )
            params, values, curves, attrs = [], [], [], []
            for row in rows:
                trial_id, number = ids[row["number"]], row["number"]
                for name, value, dist in configs[number % CONFIGS]:
                    params.append({"trial_id": trial_id, "param_name": name,
                                   "param_value": value, "distribution_json": dist})  # fmt: skip
                epochs = rng.randint(1, 20)
                curve = [min(1.0, rng.uniform(0.4, 0.7) + 0.02 * e) for e in range(epochs)]
                curves += [
                    {"trial_id": trial_id, "step": step, "intermediate_value": v,
                     "intermediate_value_type": models.TrialIntermediateValueModel
                     .TrialIntermediateValueType.FINITE}
                    for step, v in enumerate(curve)
                ]  # fmt: skip
                complete = row["state"] == State.COMPLETE
                if complete:
                    values.append({"trial_id": trial_id, "objective": 0, "value": max(curve),
                                   "value_type": models.TrialValueModel.TrialValueType.FINITE})  # fmt: skip
                seconds = (row["datetime_complete"] - row["datetime_start"]).total_seconds()
                user = {
                    "epochs": epochs, "seconds": round(seconds, 3), "seed": number,
                    "stop_reason": "early-stopped" if complete else "pruned",
                    "best_epoch": curve.index(max(curve)) + 1, "device": "CPU",
                }  # fmt: skip
                attrs += [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
                          for k, v in user.items()]  # fmt: skip
            connection.execute(tables["trial_params"].insert(), params)
            connection.execute(tables["trial_values"].insert(), values)
            connection.execute(tables["trial_intermediate_values"].insert(), curves)
            connection.execute(tables["trial_user_attributes"].insert(), attrs)
    if engine.dialect.name == "postgresql":
        # PostgreSQL's autovacuum analyzes a table that grows over weeks of trials; one written
        # in a minute would otherwise be planned on the statistics of an empty one.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("ANALYZE")
    return time.perf_counter() - start


# Runs a command and writes its peak resident memory (KB) to a file. The command is forked
# from this small process, not from the benchmark: a child's peak starts at its parent's size
# at fork (the kernel carries it over), and the benchmark holds the studies it built.
_LAUNCH = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def timed(command: Sequence[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Runs ``command`` to its end; its wall seconds and peak resident memory (MB)."""
    with tempfile.NamedTemporaryFile(suffix=".peak") as peak:
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _LAUNCH, peak.name, *command],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{shlex.join(command)} failed: {done.stderr[-2000:]}")
        kilobytes = int(Path(peak.name).read_text())
    return {"seconds": round(seconds, 3), "peak_mb": round(kilobytes / 1024, 1)}


def autotune(*args: str) -> list[str]:
    return [sys.executable, "-m", "autotune", *args]


def time_run(url: str, size: int, folder: Path) -> dict[str, Any]:
    """Resumes the study for :data:`RUN_TRIALS` more trials; start to first trial, and the time
    outside training of each but the last."""
    import optuna

    name = study_name(size)
    launched = datetime.now(UTC).replace(tzinfo=None)
    figures = timed(autotune("run", "--study", str(folder / f"{name}.toml"), "--storage", url,
                             "--n-trials",
                             str(size + RUN_TRIALS), "--quiet"))  # fmt: skip
    storage = optuna.storages.RDBStorage(url)
    study_id = storage.get_study_id_from_name(name)
    new = [
        storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id, number))
        for number in range(size, size + RUN_TRIALS)
    ]
    first = (new[0].datetime_start - launched).total_seconds()
    outside = [
        (b.datetime_start - a.datetime_start).total_seconds() - a.user_attrs["seconds"]
        for a, b in zip(new, new[1:], strict=False)
    ]
    return {
        "run_seconds": figures["seconds"],
        "run_peak_mb": figures["peak_mb"],
        "start_to_first_trial": round(first, 3),
        "outside_fit": [round(x, 3) for x in outside],
        "sampling_seconds": [t.user_attrs.get("sampling_seconds") for t in new],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def time_dashboard(url: str, size: int, polls: int = 3) -> dict[str, Any]:
    """The study page's API: the first load, then polls as the page makes them."""
    import optuna

    study_id = optuna.storages.RDBStorage(url).get_study_id_from_name(study_name(size))
    port = free_port()
    process = subprocess.Popen(
        autotune("dashboard", "--storage", url, "--port", str(port)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/studies", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the dashboard did not start") from None
                time.sleep(0.5)
        times, after = [], 0
        for _ in range(polls + 1):
            start = time.perf_counter()
            body = urllib.request.urlopen(
                f"{base}/api/studies/{study_id}?after={after}", timeout=600
            ).read()
            times.append(time.perf_counter() - start)
            after += len(json.loads(body)["trials"])
            time.sleep(1)  # as the page: a poll, a pause
        with open(f"/proc/{process.pid}/status") as status:
            peak = next(int(x.split()[1]) for x in status if x.startswith("VmHWM"))
    finally:
        process.terminate()
        process.wait()
    return {
        "first": round(times[0], 3),
        "polls": [round(t, 3) for t in times[1:]],
        "peak_mb": round(peak / 1024, 1),
    }


MEASURES = ("show", "studies", "trials", "report", "dashboard", "run")


def measure(url: str, size: int, folder: Path, skip: Sequence[str] = ()) -> dict[str, Any]:
    name = study_name(size)
    out: dict[str, Any] = {}
    if "show" not in skip:
        out["show"] = timed(autotune("show", "--study", name, "--storage", url))
    if "studies" not in skip:
        out["studies"] = timed(autotune("studies", "--storage", url))
    if "trials" not in skip:
        table = folder / f"{name}.csv"
        out["trials"] = timed(autotune("trials", "--study", name, "--storage", url, "--out",
                                       str(table), "--force"))  # fmt: skip
    if "report" not in skip:
        report = folder / f"{name}.html"
        out["report"] = timed(autotune("report", "--study", name, "--storage", url, "--out",
                                       str(report), "--force"))  # fmt: skip
        out["report"]["mb"] = round(report.stat().st_size / 2**20, 1)
    if "dashboard" not in skip:
        out["dashboard"] = time_dashboard(url, size)
    if "run" not in skip:
        out["run"] = time_run(url, size, folder)
    return out


def storage_url(kind: str, folder: Path) -> str:
    return f"sqlite:///{folder / 'scale.db'}" if kind == "sqlite" else POSTGRES


def drop_scale_studies(url: str) -> None:
    from autotune import study as study_module

    for name in study_module.names(url):
        if name.startswith("scale-"):
            study_module.delete_study(study_module.load_study(name, url))


def _peaks(figures: dict[str, Any], *where: tuple[str, str]) -> str:
    found = [figures.get(measure, {}).get(key) for measure, key in where]
    return " / ".join("-" if mb is None else f"{mb:.0f}" for mb in found) + " MB"


def table(results: dict[str, Any]) -> list[str]:
    sizes = sorted({int(s) for r in results.values() for s in r})
    lines = []
    for kind, by_size in results.items():
        lines += [f"### {kind}", "", "| | " + " | ".join(f"{s:,} trials" for s in sizes) + " |",
                  "|---|" + "---|" * len(sizes)]  # fmt: skip

        def row(label: str, pick: Any, by_size: dict[str, Any] = by_size) -> str:
            cells = []
            for s in sizes:
                try:
                    cells.append(pick(by_size[str(s)]))
                except (KeyError, TypeError, ValueError, statistics.StatisticsError):
                    cells.append("-")
            return f"| {label} | " + " | ".join(cells) + " |"

        lines += [
            row("`show`", lambda r: f"{r['show']['seconds']:.2f} s"),
            row("`studies`", lambda r: f"{r['studies']['seconds']:.2f} s"),
            row("`trials --out` (the table)", lambda r: f"{r['trials']['seconds']:.2f} s"),
            row("`report`", lambda r: f"{r['report']['seconds']:.1f} s, {r['report']['mb']} MB"),
            row("`run`: start to first trial",
                lambda r: f"{r['run']['start_to_first_trial']:.2f} s"),
            row("a trial's time outside training (median)",
                lambda r: f"{1000 * statistics.median(r['run']['outside_fit']):.0f} ms"),
            row("dashboard: study page, first load",
                lambda r: f"{r['dashboard']['first']:.2f} s"),
            row("dashboard: study page, later polls (median)",
                lambda r: f"{statistics.median(r['dashboard']['polls']):.3f} s"),
            row("peak memory: show / studies / trials",
                lambda r: _peaks(r, ("show", "peak_mb"), ("studies", "peak_mb"),
                                 ("trials", "peak_mb"))),
            row("peak memory: report / run (TF) / dashboard",
                lambda r: _peaks(r, ("report", "peak_mb"), ("run", "run_peak_mb"),
                                 ("dashboard", "peak_mb"))),
            "",
        ]  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--storages", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"])  # fmt: skip
    parser.add_argument(
        "--workers",
        action="store_true",
        help="also the 64-worker storage load test (scripts/scale_workers.py)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks"))
    parser.add_argument("--label", default="after", help="the run's name in the results")
    parser.add_argument(
        "--keep", action="store_true", help="keep the studies, the table and the report (in --out)"
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=MEASURES,
                        help="measures to leave out")  # fmt: skip
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out if args.keep else Path(tmp)
        for kind in args.storages:
            url = storage_url(kind, folder)
            if kind == "postgresql":
                drop_scale_studies(url)
            results[kind] = {}
            for size in args.sizes:
                seconds = build(url, size, folder)
                print(f"{kind}: built {size:,} trials in {seconds:.0f} s", flush=True)
                results[kind][str(size)] = measure(url, size, folder, args.skip)
                print(json.dumps(results[kind][str(size)]), flush=True)
            if kind == "postgresql" and not args.keep:
                drop_scale_studies(url)
    lines = table(results)
    print("\n".join(lines))
    command = shlex.join(["python", "scripts/bench_scale.py", *sys.argv[1:]])
    raw_path = args.out / "scale.json"
    raw = json.loads(raw_path.read_text()) if raw_path.is_file() else {}
    raw[args.label] = {"command": command, "machine": f"{platform.machine()}, {os.cpu_count()}"
                       f" cores, Python {platform.python_version()}", "results": results}  # fmt: skip
    raw_path.write_text(json.dumps(raw, indent=1) + "\n")
    (args.out / f"scale-{args.label}.md").write_text(
        f"# Scale: {args.label}\n\n`{command}`\n\n" + "\n".join(lines) + "\n"
    )


if __name__ == "__main__":
    main()
