"""Fault injection: workers killed, paused and cut off from the database, and many workers at
once; then the study is checked for what autotune promises.

Each scenario runs real worker processes of autotune's own work loop on a real storage, with
a toy objective (no TensorFlow: each "epoch" sleeps a few milliseconds and reports through
autotune's Reporter, so the pruner, early stopping and every storage write are real):

- ``kill``: workers are killed with SIGKILL at random moments of their trials' lives (asking,
  training, reporting, telling, committing) and replaced;
- ``pause``: a worker is stopped with SIGSTOP for longer than the grace period, another
  worker fails and retries its trial, and the first is resumed with SIGCONT;
- ``drop`` (PostgreSQL): the database server ends every worker's connection mid-trial
  (``pg_terminate_backend``);
- ``load``: many workers at once on one study.

After each, a last worker finishes the study (waiting out the grace period of any trial left
RUNNING), and the study must show: no trial RUNNING; exactly ``n_trials`` complete and pruned
trials; every trial seen finished during the scenario still there, unchanged; and every
process either finished cleanly (exit 0) or was the one killed.

    python scripts/bench_faults.py                        # sqlite and postgresql, writes benchmarks/faults.md
    python scripts/bench_faults.py --storages sqlite --rounds 1
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVERS = {
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test",
}
HEARTBEAT, GRACE = 1, 3


def toy_spec(name: str, n_trials: int) -> Any:
    from autotune.spec import from_dict

    return from_dict({
        "name": name, "n_trials": n_trials, "max_epochs": 8, "pruner": "median",
        "pruner_options": {"n_startup_trials": 2, "n_warmup_steps": 1},
        "heartbeat_interval": HEARTBEAT, "grace_period": GRACE,
        "data": {"source": "circles"}, "early_stopping": {"patience": 3},
        "space": {"batch_size": 64},
    })  # fmt: skip


def worker(url: str, name: str, n_trials: int, seed: int, epoch_seconds: float) -> None:
    """One worker process: autotune's work loop with a toy objective."""
    from autotune import runner
    from autotune.study import open_study
    from autotune.trial import Reporter, optuna_pruning

    spec = toy_spec(name, n_trials)
    study = open_study(spec, url, sampler_seed=seed)

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        reporter = Reporter(spec, prune=optuna_pruning(trial))
        for epoch in range(spec.max_epochs):
            time.sleep(epoch_seconds)
            value = 1.0 - (x - 0.3) ** 2 * (1.0 + 1.0 / (epoch + 1))
            if reporter.report(epoch, loss=1.0 - value, val_accuracy=value):
                break
        return max(reporter.values)

    runner.work(study, lambda: objective, n_trials=n_trials, echo=None)


@dataclass
class Outcome:
    """What one scenario did, and what the study showed afterwards."""

    scenario: str
    storage: str
    workers: int = 0
    kills: int = 0
    pauses: int = 0
    drops: int = 0
    trials: int = 0
    finished: int = 0
    running: int = 0
    lost: int = 0
    changed: int = 0
    bad_exits: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def holds(self) -> bool:
        return (
            self.running == 0 and self.finished == self.trials and self.lost == 0
            and self.changed == 0 and not self.bad_exits
        )  # fmt: skip


class Scenario:
    """A study on a storage, its worker processes, and snapshots of its finished trials."""

    def __init__(self, url: str, n_trials: int, epoch_seconds: float) -> None:
        self.url = url
        self.name = f"faults_{uuid.uuid4().hex[:10]}"
        self.n_trials = n_trials
        self.epoch_seconds = epoch_seconds
        self.processes: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()
        self.seen: dict[int, tuple[str, float | None]] = {}
        self.seeds = iter(range(10**6))

    def start(self) -> subprocess.Popen[bytes]:
        command = [sys.executable, __file__, "worker", "--url", self.url, "--study", self.name,
                   "--n-trials", str(self.n_trials), "--seed", str(next(self.seeds)),
                   "--epoch-seconds", str(self.epoch_seconds)]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.processes.append(process)
        return process

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.processes if p.poll() is None]

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.killed.add(process.pid)

    def trials(self) -> list[Any]:
        import optuna

        try:
            return optuna.load_study(study_name=self.name, storage=self.url).get_trials()
        except KeyError:
            return []

    def snapshot(self) -> None:
        """Remembers every finished trial, to check later that none was lost or changed."""
        for t in self.trials():
            if t.state.name in ("COMPLETE", "PRUNED"):
                self.seen.setdefault(t.number, (t.state.name, t.value))

    def finish(self, outcome: Outcome, timeout: float = 300) -> Outcome:
        """Waits for the workers, runs a last one to the end, and checks the study."""
        for process in self.alive():
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        last = self.start()
        last.wait(timeout=timeout)
        self.snapshot()
        trials = self.trials()
        outcome.trials = self.n_trials
        outcome.finished = sum(1 for t in trials if t.state.name in ("COMPLETE", "PRUNED"))
        outcome.running = sum(1 for t in trials if t.state.name == "RUNNING")
        by_number = {t.number: (t.state.name, t.value) for t in trials}
        outcome.lost = sum(1 for n in self.seen if n not in by_number)
        outcome.changed = sum(1 for n, v in self.seen.items() if by_number.get(n, v) != v)
        outcome.workers = len(self.processes)
        for process in self.processes:
            if process.pid in self.killed or process.returncode == 0:
                continue
            error = (process.stderr.read() if process.stderr else b"").decode()[-400:]
            outcome.bad_exits.append(f"exit {process.returncode}: {error.strip()}")
        return outcome

    def delete(self) -> None:
        import optuna

        try:
            optuna.delete_study(study_name=self.name, storage=self.url)
        except KeyError:
            pass


@contextlib.contextmanager
def scenario_on(
    url: str, name: str, storage: str, *, n_trials: int, epoch_seconds: float
) -> Iterator[tuple[Scenario, Outcome]]:
    """A scenario's study and outcome; when the block ends, a last worker finishes the study,
    the study is checked into the outcome, and then deleted."""
    scenario = Scenario(url, n_trials=n_trials, epoch_seconds=epoch_seconds)
    outcome, start = Outcome(name, storage), time.monotonic()
    try:
        yield scenario, outcome
        scenario.finish(outcome)
    finally:
        scenario.delete()
        outcome.seconds = time.monotonic() - start


def kill_scenario(url: str, storage: str, kills: int, rng: random.Random) -> Outcome:
    with scenario_on(url, "kill", storage, n_trials=24, epoch_seconds=0.03) as (scenario, outcome):
        for _ in range(3):
            scenario.start()
        while outcome.kills < kills and scenario.alive():
            time.sleep(rng.uniform(0.2, 1.2))  # a random moment of some trial's life
            scenario.snapshot()
            victims = scenario.alive()
            if not victims:
                break
            scenario.kill(rng.choice(victims))
            outcome.kills += 1
            scenario.start()
    return outcome


def pause_scenario(url: str, storage: str, rng: random.Random) -> Outcome:
    with scenario_on(url, "pause", storage, n_trials=10, epoch_seconds=0.15) as (scenario, outcome):
        paused = scenario.start()
        time.sleep(rng.uniform(2.0, 3.0))  # it is in a trial by now
        scenario.snapshot()
        paused.send_signal(signal.SIGSTOP)
        outcome.pauses += 1
        helper = scenario.start()  # fails the paused worker's trial once its grace is over
        time.sleep(GRACE + 3)
        paused.send_signal(signal.SIGCONT)
        helper.wait(timeout=300)
    return outcome


def drop_scenario(url: str, storage: str, drops: int, rng: random.Random) -> Outcome:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    terminate = sqlalchemy.text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        " AND application_name NOT LIKE 'pg_%'"
    )
    try:
        with scenario_on(url, "drop", storage, n_trials=16, epoch_seconds=0.05) as (
            scenario,
            outcome,
        ):
            for _ in range(2):
                scenario.start()
            time.sleep(2.5)  # both workers have started trials
            while outcome.drops < drops and scenario.alive():
                scenario.snapshot()
                with engine.connect() as connection:
                    connection.execute(terminate)
                outcome.drops += 1
                time.sleep(rng.uniform(0.5, 1.5))
    finally:
        engine.dispose()
    return outcome


def load_scenario(url: str, storage: str, workers: int, n_trials: int) -> Outcome:
    with scenario_on(url, "load", storage, n_trials=n_trials, epoch_seconds=0.002) as (
        scenario,
        outcome,
    ):
        for _ in range(workers):
            scenario.start()
    return outcome


def storage_url(storage: str, folder: Path) -> str:
    return f"sqlite:///{folder / 'faults.db'}" if storage == "sqlite" else SERVERS[storage]


def run_all(storages: list[str], rounds: int, seed: int, load_workers: int,
            load_trials: int) -> list[Outcome]:  # fmt: skip
    rng = random.Random(seed)
    outcomes = []
    with tempfile.TemporaryDirectory() as folder:
        for storage in storages:
            url = storage_url(storage, Path(folder))
            for _ in range(rounds):
                outcomes.append(kill_scenario(url, storage, kills=4, rng=rng))
                outcomes.append(pause_scenario(url, storage, rng=rng))
                if storage == "postgresql":
                    outcomes.append(drop_scenario(url, storage, drops=3, rng=rng))
            if storage != "sqlite":
                outcomes.append(load_scenario(url, storage, load_workers, load_trials))
    return outcomes


def table(outcomes: list[Outcome]) -> list[str]:
    lines = [
        "| scenario | storage | workers | kills | pauses | drops | trials checked | RUNNING left"
        " | lost | changed | bad exits | seconds | holds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        lines.append(
            f"| {o.scenario} | {o.storage} | {o.workers} | {o.kills} | {o.pauses} | {o.drops}"
            f" | {o.finished} of {o.trials} | {o.running} | {o.lost} | {o.changed}"
            f" | {len(o.bad_exits)} | {o.seconds:.1f} | {'yes' if o.holds else 'NO'} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    one = sub.add_parser("worker", help="(internal) one worker process")
    one.add_argument("--url", required=True)
    one.add_argument("--study", required=True)
    one.add_argument("--n-trials", type=int, required=True)
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--epoch-seconds", type=float, required=True)
    parser.add_argument("--storages", default="sqlite,postgresql,mariadb")
    parser.add_argument("--rounds", type=int, default=3, help="kill/pause/drop rounds per storage")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--load-workers", type=int, default=8)
    parser.add_argument("--load-trials", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/faults.md"))
    args = parser.parse_args()
    if args.command == "worker":
        worker(args.url, args.study, args.n_trials, args.seed, args.epoch_seconds)
        return
    outcomes = run_all(args.storages.split(","), args.rounds, args.seed, args.load_workers,
                       args.load_trials)  # fmt: skip
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    total = {k: sum(getattr(o, k) for o in outcomes) for k in ("kills", "pauses", "drops",
                                                                "finished", "lost", "changed")}  # fmt: skip
    text = "\n".join([
        "# Fault injection", "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python"
        f" {platform.python_version()}. Heartbeat every {HEARTBEAT} s, grace period {GRACE} s.",
        "", f"Command: `{command}`", "",
        f"{len(outcomes)} scenarios: {total['kills']} workers killed with SIGKILL,"
        f" {total['pauses']} paused past the grace period, {total['drops']} rounds of every"
        f" connection ended by the server; {total['finished']} finished trials checked;"
        f" lost: {total['lost']}, changed: {total['changed']}; invariants held in"
        f" {sum(o.holds for o in outcomes)} of {len(outcomes)}.", "",
        *table(outcomes), "",
        *[f"- {o.scenario} on {o.storage}: {e}" for o in outcomes for e in o.bad_exits],
    ])  # fmt: skip
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
