"""The fixed cost of a short trial: where a 1-epoch (and a 2-epoch) trial's time goes.

Runs the shipped circles study (``autotune/studies/circles.toml``: the MLP, TPE, an SQLite
storage with heartbeats, the artifact store) through autotune's own ``runner.run``, as
``autotune run --study circles`` does, with one change: a threshold pruner that no value passes
(``lower = 2.0`` on the validation accuracy), so that every trial is pruned after exactly
``--epochs`` epochs, as Hyperband prunes about a third of the circles trials after their first.

A trial's time is what the worker sees: from the end of one trial to the end of the next (the
worker's count of the study, asking, sampling, every storage write, clearing Keras' state,
seeding, building, compiling, the input pipelines, tracing, the epochs, the validation, the
callbacks, the tell and the line it prints). The first ``--warmup`` trials of each process are
left out. The time is split into phases by wrapping the functions that do each part (autotune's,
Keras' and Optuna's), each phase counted exclusive of the phases nested in it, in the main
thread only (the heartbeat thread's writes overlap the trial); ``other`` is what no phase
covers. Garbage collections (explicit and automatic) are a phase of their own, through
``gc.callbacks``.

Each measurement is a fresh process (TensorFlow imported and the data loaded before the clock
starts). With ``--old REV``, autotune's package at that git revision is put in place of the
working tree's in every other process, so that both are measured in the same run, interleaved
round by round, and the ratio of their medians is shown.

Prints the figures and writes them, with the command, to ``benchmarks/trial_cost.md``.

Example:

    python scripts/bench_trial_cost.py --rounds 4 --trials 10 --old cd63fa7 --profile 25
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
# The phases in the order a trial meets them; each table lists them so.
PHASES = [
    "worker count",
    "ask",
    "sampling",
    "storage",
    "clear session",
    "seed",
    "pipeline",
    "build",
    "compile",
    "train step tracing",
    "train steps",
    "test step tracing",
    "evaluation",
    "callbacks",
    "fit (Keras' own)",
    "tell",
    "objective (rest)",
    "garbage collection",
    "other tracing",
    "other",
]


class Phases:
    """Wall and CPU time per phase in the main thread, each exclusive of the phases nested in
    it. A phase given as a function is named when it starts, from the phase it is nested in."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._stack: list[list[Any]] = []  # [name, wall start, cpu start, nested wall, cpu]
        self._main = threading.get_ident()

    def current(self) -> str | None:
        return self._stack[-1][0] if self._stack else None

    def enter(self, name: str) -> None:
        self._stack.append([name, time.perf_counter(), time.process_time(), 0.0, 0.0])

    def leave(self) -> None:
        name, wall, cpu, nested_wall, nested_cpu = self._stack.pop()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        self.wall[name] = self.wall.get(name, 0.0) + wall - nested_wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu - nested_cpu
        if self._stack:
            self._stack[-1][3] += wall
            self._stack[-1][4] += cpu

    def wrap(self, phase: str | Callable[[str | None], str], function: Any) -> Any:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != self._main:
                return function(*args, **kwargs)
            self.enter(phase if isinstance(phase, str) else phase(self.current()))
            try:
                return function(*args, **kwargs)
            finally:
                self.leave()

        return timed

    def patch(self, owner: Any, names: list[str], phase: str | Callable[[str | None], str]) -> None:
        for name in names:
            setattr(owner, name, self.wrap(phase, getattr(owner, name)))

    def on_gc(self, stage: str, info: dict[str, Any]) -> None:
        if threading.get_ident() != self._main:
            return
        if stage == "start":
            self.enter("garbage collection")
        elif self._stack and self._stack[-1][0] == "garbage collection":
            self.leave()


def _tracing_phase(parent: str | None) -> str:
    """Tracing is named after what traces: Keras' train or test function, or tf.data."""
    if parent is not None and parent.endswith("tracing"):
        return parent  # a function traced inside another
    return {
        "train steps": "train step tracing",
        "evaluation": "test step tracing",
        "pipeline": "pipeline",
    }.get(parent or "", "other tracing")


def instrument(phases: Phases) -> None:
    """Wraps the functions that make up a trial, each under its phase."""
    import keras
    import optuna
    from keras.src.backend.tensorflow import trainer as tf_trainer
    from keras.src.callbacks.callback_list import CallbackList
    from optuna.storages._cached_storage import _CachedStorage
    from optuna.study import _optimize
    from tensorflow.python.eager.polymorphic_function import tracing_compilation

    import autotune.objective
    import autotune.runner
    import autotune.study
    import autotune.trial

    for cls in (optuna.storages.RDBStorage, _CachedStorage):
        public = [n for n, v in vars(cls).items() if not n.startswith("_") and callable(v)]
        phases.patch(cls, public, "storage")
    phases.patch(autotune.study, ["counts"], "worker count")
    phases.patch(optuna.Study, ["ask"], "ask")
    phases.patch(autotune.objective, ["sample"], "sampling")
    phases.patch(keras.backend, ["clear_session"], "clear session")
    phases.patch(keras.utils, ["set_random_seed"], "seed")
    phases.patch(autotune.trial, ["training_pipeline", "pipeline"], "pipeline")
    if hasattr(autotune.trial, "ArrayBatches"):  # a worker's training pipeline, set per trial
        phases.patch(autotune.trial.ArrayBatches, ["start"], "pipeline")
    phases.patch(tf_trainer.TFEpochIterator, ["__init__", "_get_iterator"], "pipeline")
    phases.patch(autotune.trial, ["build_model"], "build")
    # Compiling includes making the training's variables, where autotune does it (build_state).
    compiling = [n for n in ("compile_model", "build_state") if hasattr(autotune.trial, n)]
    phases.patch(autotune.trial, compiling, "compile")
    phases.patch(tf_trainer.TensorFlowTrainer, ["fit"], "fit (Keras' own)")
    phases.patch(tf_trainer.TensorFlowTrainer, ["evaluate"], "evaluation")
    make_function = tf_trainer.TensorFlowTrainer._make_function

    def timed_function(self: Any, step_function: Any) -> Any:
        made = make_function(self, step_function)
        name = getattr(step_function, "__name__", "")
        return phases.wrap("train steps" if name == "train_step" else "evaluation", made)

    tf_trainer.TensorFlowTrainer._make_function = timed_function
    phases.patch(tracing_compilation, ["trace_function"], _tracing_phase)
    on = [n for n in vars(CallbackList) if n.startswith("on_")]
    phases.patch(CallbackList, on, "callbacks")
    phases.patch(autotune.trial.Reporter, ["report"], "callbacks")
    phases.patch(_optimize, ["_tell_with_warning"], "tell")
    phases.patch(autotune.objective.Objective, ["__call__"], "objective (rest)")
    gc.callbacks.append(phases.on_gc)


def study_spec(epochs: int) -> Any:
    """The shipped circles study, every trial pruned after ``epochs`` epochs."""
    import autotune
    from autotune.spec import load

    spec = load(Path(autotune.__file__).parent / "studies" / "circles.toml")
    options: dict[str, Any] = {"lower": 2.0}  # no accuracy reaches it
    if epochs > 1:
        options["n_warmup_steps"] = epochs - 1
    return spec.with_overrides(pruner="threshold", pruner_options=options)


def child(epochs: int, trials: int, warmup: int, profile: Path | None) -> None:
    """Runs the study for ``warmup + trials`` trials and prints one JSON line per trial."""
    import optuna

    import autotune
    from autotune import runner
    from autotune.backend import setup

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    setup()
    phases = Phases()
    instrument(phases)
    rows: list[dict[str, Any]] = []
    last = {"wall": 0.0, "cpu": 0.0, "phases": {}, "phases_cpu": {}}
    profiler = None

    def finished(line: str) -> None:
        nonlocal profiler
        now, cpu = time.perf_counter(), time.process_time()
        if last["wall"]:
            rows.append({
                "wall": now - last["wall"], "cpu": cpu - last["cpu"],
                "phases": {k: v - last["phases"].get(k, 0.0) for k, v in phases.wall.items()},
                "phases_cpu": {k: v - last["phases_cpu"].get(k, 0.0)
                               for k, v in phases.cpu.items()},
                "line": line,
            })  # fmt: skip
        last.update(wall=now, cpu=cpu, phases=dict(phases.wall), phases_cpu=dict(phases.cpu))
        if profile is not None and profiler is None and len(rows) >= warmup:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()

    spec = study_spec(epochs).with_overrides(n_trials=warmup + trials + 1)
    with tempfile.TemporaryDirectory() as folder:
        runner.run(spec, storage=f"sqlite:///{folder}/bench.db", echo=finished)
    if profiler is not None and profile is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    print(json.dumps({"autotune": autotune.__file__, "trials": rows[warmup:]}))


def old_tree(revision: str, folder: Path) -> Path:
    """autotune's package at ``revision``, unpacked into ``folder``."""
    archive = subprocess.run(
        ["git", "archive", revision, "autotune"], cwd=ROOT, check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def measure(
    tree: Path, epochs: int, trials: int, warmup: int, profile: Path | None = None
) -> list[dict[str, Any]]:
    command = [sys.executable, __file__, "--child", "--epochs", str(epochs),
               "--trials", str(trials), "--warmup", str(warmup)]  # fmt: skip
    if profile is not None:
        command += ["--profile-file", str(profile)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    expected = tree / "autotune" / "__init__.py"
    assert Path(result["autotune"]).resolve() == expected.resolve(), result["autotune"]
    return list(result["trials"])


def summary(rows: list[dict[str, Any]], clock: str = "wall") -> dict[str, Any]:
    """Medians per trial of the wall (or CPU) time: the total and each phase."""
    key = "phases" if clock == "wall" else "phases_cpu"
    names = {k for row in rows for k in row[key]}
    phases = {k: statistics.median(row[key].get(k, 0.0) for row in rows) for k in names}
    phases["other"] = statistics.median(row[clock] - sum(row[key].values()) for row in rows)
    return {"total": statistics.median(row[clock] for row in rows), "phases": phases,
            "n": len(rows)}  # fmt: skip


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def phase_table(columns: dict[str, dict[str, Any]], total: str) -> list[str]:
    """One row per phase, one column per measured setting (medians in ms)."""
    names = [p for p in PHASES if any(p in c["phases"] for c in columns.values())]
    names += sorted({p for c in columns.values() for p in c["phases"]} - set(names))
    lines = ["| phase | " + " | ".join(columns) + " |", "| --- |" + " --- |" * len(columns)]
    for name in names:
        cells = [ms(c["phases"].get(name, 0.0)) for c in columns.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    totals = " | ".join(f"**{ms(c['total'])}**" for c in columns.values())
    lines.append(f"| **{total} (median of the totals)** | {totals} |")
    lines.append("| trials | " + " | ".join(str(c["n"]) for c in columns.values()) + " |")
    return lines


# What each phase times (the functions that instrument() wraps).
PHASE_NOTES = [
    "*worker count*: the worker's count of the study's trials before it starts one",
    "*ask*, *sampling*: Optuna's ask, and the sampler choosing the params (their storage"
    " writes are *storage*)",
    "*storage*: every call of the storage in the main thread: params, attributes, the pruner's"
    " reports and reads, the tell's writes, the stale-trial check",
    "*clear session*: Keras' clear_session before and after the trial; *seed*: seeding",
    "*pipeline*: making the training pipeline, and Keras' wrappers of the input pipelines",
    "*build*: the family's builder; *compile*: Keras' compile, and making the training's"
    " variables where autotune does that itself",
    "*train step tracing*, *test step tracing*: tracing Keras' train and test functions",
    "*train steps*, *evaluation*: running them (the first call of each includes TensorFlow's"
    " set-up of the traced function), and Keras' evaluate around the test function",
    "*callbacks*: Keras' callbacks and autotune's reporter; *fit (Keras' own)*: the rest of"
    " Keras' fit (its loop, making each epoch's input iterators)",
    "*tell*: Optuna's tell; *objective (rest)*: autotune's objective outside the phases above",
    "*garbage collection*: every collection in the main thread, automatic or the one at the"
    " trial's end that frees its graphs",
    "*other*: what no phase covers (Optuna's trial loop, the worker's loop, the printed line)",
]
GROUPS = {
    "tracing Keras' train and test functions": ["train step tracing", "test step tracing"],
    "running them (TensorFlow's set-up of each on its first call, and the epoch)": [
        "train steps", "evaluation",
    ],
    "building and compiling the model": ["build", "compile"],
    "the storage": ["storage", "worker count"],
    "Keras' fit and the callbacks around the steps": ["fit (Keras' own)", "callbacks"],
}  # fmt: skip


def remaining(label: str, column: dict[str, Any]) -> list[str]:
    """What one column's trial is made of, in groups of phases."""
    phases = column["phases"]
    total = sum(phases.values())
    lines = [f"What a trial of *{label}* is made of ({ms(total)} ms, the phases' medians added):"]
    grouped: set[str] = set()
    for name, members in GROUPS.items():
        part = sum(phases.get(p, 0.0) for p in members)
        grouped.update(members)
        lines.append(f"- {name}: {ms(part)} ms ({part / total:.0%})")
    rest = sum(v for p, v in phases.items() if p not in grouped)
    lines.append(
        f"- the rest (sampling, pipeline, clearing, collecting, Optuna's and the worker's loops):"
        f" {ms(rest)} ms ({rest / total:.0%})"
    )
    return lines


def profile_lines(path: Path, top: int) -> list[str]:
    import pstats

    stats = pstats.Stats(str(path))
    rows = []
    for (file, line, name), (_, calls, tottime, cumtime, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((tottime, cumtime, calls, f"{Path(file).name}:{line}({name})"))
    rows.sort(reverse=True)
    return [f"| {where} | {calls} | {ms(tottime)} |" for tottime, _, calls, where in rows[:top]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="processes per setting")
    parser.add_argument("--trials", type=int, default=10, help="measured trials per process")
    parser.add_argument("--warmup", type=int, default=2, help="trials left out per process")
    parser.add_argument("--epochs", default="1,2", help="epochs per trial, comma-separated")
    parser.add_argument("--old", default=None, help="git revision to measure beside this tree")
    parser.add_argument("--profile", type=int, default=0, help="cProfile's top N functions")
    parser.add_argument("--target", type=float, default=0.3, help="seconds for a 1-epoch trial")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/trial_cost.md"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profile-file", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.epochs), args.trials, args.warmup, args.profile_file)
        return
    epochs = [int(e) for e in args.epochs.split(",")]
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as name:
        trees = {"now": ROOT}
        if args.old:
            trees = {f"before ({args.old})": old_tree(args.old, Path(name)), "after": ROOT}
        rows: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for round_ in range(args.rounds):
            for label, tree in trees.items():
                for e in epochs:
                    got = measure(tree, e, args.trials, args.warmup)
                    rows.setdefault((label, e), []).extend(got)
                    print(f"round {round_ + 1}: {label}, {e} epoch(s):"
                          f" median {statistics.median(r['wall'] for r in got):.3f} s",
                          flush=True)  # fmt: skip
        profiled: list[str] = []
        if args.profile:
            path = Path(name) / "trial.prof"
            measure(ROOT, epochs[0], args.trials, args.warmup, profile=path)
            profiled = profile_lines(path, args.profile)
    load_after = os.getloadavg()
    wall = {f"{label}, {e} ep": summary(r) for (label, e), r in rows.items()}
    cpu = {f"{label}, {e} ep": summary(r, "cpu") for (label, e), r in rows.items()}
    from autotune.versions import versions

    version = versions(("tensorflow", "keras", "optuna")).__getitem__
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    lines = [
        "# The fixed cost of a short trial",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python"
        f" {platform.python_version()}, TensorFlow {version('tensorflow')}, Keras"
        f" {version('keras')}, Optuna {version('optuna')}. Load average {load_before[0]:.1f} at"
        f" the start, {load_after[0]:.1f} at the end: the machine is shared, so wall times are"
        " noisy; CPU times (of all the process's threads) less so.",
        "",
        f"Command: `{command}`",
        "",
        f"The circles study, every trial pruned after its epochs; {args.rounds} process(es) per"
        f" column, {args.trials} trials each after {args.warmup} left out, the settings"
        " interleaved round by round. Medians per trial, in ms (a column's phases need not add"
        " up to its median total).",
        "",
        "## Wall time, as the worker sees it",
        "",
        *phase_table(wall, "trial"),
        "",
        "## CPU time, all threads of the process",
        "",
        *phase_table(cpu, "CPU time"),
        "",
    ]

    def totals(*names: str) -> list[tuple[float, float]]:
        return [(wall[n]["total"], cpu[n]["total"]) for n in names]

    for label in trees:
        if (label, 1) in rows and (label, 2) in rows:
            (one, one_cpu), (two, two_cpu) = totals(f"{label}, 1 ep", f"{label}, 2 ep")
            lines.append(
                f"- {label}: the second epoch adds {ms(two - one)} ms of wall time ({ms(one)} ms"
                f" for a 1-epoch trial, {ms(two)} ms for 2) and {ms(two_cpu - one_cpu)} ms of"
                " CPU time."
            )
    if args.old:
        before, after = trees
        for e in epochs:
            (b, b_cpu), (a, a_cpu) = totals(f"{before}, {e} ep", f"{after}, {e} ep")
            lines.append(
                f"- {e}-epoch trial: before {ms(b)} ms, after {ms(a)} ms; after / before"
                f" {a / b:.2f} (CPU time {ms(b_cpu)} ms and {ms(a_cpu)} ms: {a_cpu / b_cpu:.2f})."
            )
    last = list(trees)[-1]
    if (last, 1) in rows:
        got = wall[f"{last}, 1 ep"]["total"]
        lines.append(
            f"- The target of at most {args.target:.2f} s for a 1-epoch trial is"
            f" {'met' if got <= args.target else 'not met'}: {got:.2f} s ({last})."
        )
    lines.append("")
    for label in trees:
        if (label, epochs[0]) in rows:
            lines += [*remaining(f"{label}, {epochs[0]} ep", wall[f"{label}, {epochs[0]} ep"]), ""]
    lines += ["Phases:", "", *[f"- {note}" for note in PHASE_NOTES]]
    if profiled:
        lines += [
            "",
            f"## cProfile of {args.trials} {epochs[0]}-epoch trials (this tree): functions by own"
            " time",
            "",
            "| function | calls | own ms |",
            "| --- | --- | --- |",
            *profiled,
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
