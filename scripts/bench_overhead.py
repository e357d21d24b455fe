"""What a trial costs beyond training: overhead, its split, start-up times and memory.

1. For one fixed configuration on circles, the wall time of an autotune trial (through
   ``study.optimize`` on an SQLite storage) against a bare ``model.fit`` of the same model for the
   same epochs, as a user writes it (build, compile, fit on NumPy arrays), in the same process,
   interleaved, several times.
2. The split of a trial's time into sampling, storage, build (with compile), fit and
   bookkeeping, by timing autotune's own functions and Optuna's storage and sampler methods
   (each phase counted exclusive of the phases nested in it).
3. Start-up time of ``autotune --help``, ``autotune studies`` and ``autotune show``.
4. Resident memory over many trials in one worker, as MB per trial (slope of a least-squares
   line after a warm-up).

Prints the figures and writes them, with the command, to ``benchmarks/overhead.md``.

Example:

    python scripts/bench_overhead.py --repeats 7 --memory-trials 200
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

FIXED = {
    "batch_size": 32,
    "learning_rate": 0.01,
    "optimizer": "adam",
    "decay": "none",
    "n_layers": 2,
    "units": 32,
    "activation": "relu",
    "dropout": 0.1,
    "batchnorm": False,
}
EPOCHS = 20


class PhaseTimer:
    """Accumulates wall time per phase, each exclusive of phases nested inside it."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.active = False
        self._stack: list[list[Any]] = []  # [phase, start, nested seconds]

    def wrap(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return function(*args, **kwargs)
            self._stack.append([phase, time.perf_counter(), 0.0])
            try:
                return function(*args, **kwargs)
            finally:
                _, start, nested = self._stack.pop()
                spent = time.perf_counter() - start
                self.totals[phase] = self.totals.get(phase, 0.0) + spent - nested
                if self._stack:
                    self._stack[-1][2] += spent

        return timed

    def instrument(self, obj: Any, phase: str, names: list[str]) -> None:
        for name in names:
            setattr(obj, name, self.wrap(phase, getattr(obj, name)))


def fixed_spec(name: str, epochs: int = EPOCHS) -> Any:
    from autotune.spec import from_dict

    # patience = epochs and no pruner: every trial trains exactly `epochs` epochs
    return from_dict(
        {
            "name": name,
            "n_trials": 10**6,
            "max_epochs": epochs,
            "pruner": "none",
            "data": {"source": "circles"},
            "early_stopping": {"patience": epochs},
            "space": FIXED,
        }
    )


def bare_fit(dataset: Any, epochs: int) -> float:
    """Build, compile and fit the same MLP as a user's own script would."""
    import keras

    start = time.perf_counter()
    keras.backend.clear_session()
    inputs = keras.Input(shape=dataset.input_shape)
    x = inputs
    for _ in range(FIXED["n_layers"]):
        x = keras.layers.Dense(FIXED["units"], activation="relu")(x)
        x = keras.layers.Dropout(FIXED["dropout"])(x)
    model = keras.Model(inputs, keras.layers.Dense(dataset.n_outputs, activation="softmax")(x))
    model.compile(
        optimizer=keras.optimizers.Adam(FIXED["learning_rate"]),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        dataset.x_train,
        dataset.y_train,
        validation_data=(dataset.x_val, dataset.y_val),
        batch_size=FIXED["batch_size"],
        epochs=epochs,
        verbose=0,
    )
    return time.perf_counter() - start


def overhead(repeats: int, folder: Path) -> tuple[list[str], dict[str, float]]:
    from autotune import data
    from autotune.backend import settled, setup
    from autotune.objective import Objective
    from autotune.study import open_study

    setup()
    spec = fixed_spec("overhead")
    url = f"sqlite:///{folder / 'overhead.db'}"
    study = open_study(spec, url, sampler_seed=0)
    objective = Objective(spec)
    timer = PhaseTimer()
    # This study's own storage and sampler objects are timed; the trial seam times its phases.
    storage = study._storage
    timer.instrument(
        storage,
        "storage",
        [n for n in dir(type(storage)) if not n.startswith("_") and callable(getattr(storage, n))],
    )
    timer.instrument(
        study.sampler,
        "sampling",
        ["infer_relative_search_space", "sample_relative", "sample_independent"],
    )
    dataset = data.load(spec.data)
    bare_fit(dataset, 1)  # warm both paths up once
    study.optimize(objective, n_trials=1)

    trial_times, bare_times = [], []
    seam = {"build": 0.0, "fit": 0.0}
    with settled() as settle:  # as a worker does once its objective is built
        settle()
        for _ in range(repeats):
            timer.active = True
            start = time.perf_counter()
            study.optimize(objective, n_trials=1)
            trial_times.append(time.perf_counter() - start)
            timer.active = False
            seconds = objective.last.seconds
            seam["build"] += seconds["build"]
            # the pruner's storage writes during fit are counted as storage
            seam["fit"] += seconds["fit"] - seconds["report"]
            bare_times.append(bare_fit(dataset, EPOCHS))
    ratios = [t / b for t, b in zip(trial_times, bare_times, strict=False)]
    total = sum(trial_times)
    split = {phase: timer.totals.get(phase, 0.0) / repeats for phase in ("sampling", "storage")}
    split.update({phase: seconds / repeats for phase, seconds in seam.items()})
    split["bookkeeping"] = total / repeats - sum(split.values())
    lines = [
        f"autotune trial: median {statistics.median(trial_times):.3f} s;"
        f" bare build+compile+fit: median {statistics.median(bare_times):.3f} s"
        f" ({EPOCHS} epochs, batch {FIXED['batch_size']}, {repeats} interleaved pairs)",
        f"ratio trial / bare fit: median {statistics.median(ratios):.3f}"
        f" (per pair: {', '.join(f'{r:.2f}' for r in ratios)})",
    ]
    return lines, split


def startup(repeats: int, folder: Path) -> list[str]:
    url = f"sqlite:///{folder / 'overhead.db'}"
    env = {**os.environ, "AUTOTUNE_STORAGE": url}
    lines = []
    for args in (["--help"], ["studies"], ["show", "--study", "overhead"]):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "autotune", *args],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            times.append(time.perf_counter() - start)
        lines.append(
            f"`autotune {' '.join(args)}`: median {statistics.median(times):.3f} s"
            f" (min {min(times):.3f}, {repeats} runs)"
        )
    return lines


def memory(trials: int, folder: Path) -> list[str]:
    """Runs in a child process, so that the RSS is one worker's alone."""
    code = (
        f"import sys, resource; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from bench_overhead import memory_child\n"
        f"memory_child({trials}, {str(folder)!r})\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    rss = [float(x) for x in out]
    warm = max(10, len(rss) // 10)
    xs = list(range(warm, len(rss)))
    slope = statistics.linear_regression(xs, rss[warm:]).slope
    return [
        f"RSS over {len(rss)} trials in one worker: {rss[0]:.0f} MB after the first trial,"
        f" {rss[warm]:.0f} MB after trial {warm + 1}, {rss[-1]:.0f} MB after the last;"
        f" slope after warm-up {slope:.3f} MB per trial"
    ]


def memory_child(trials: int, folder: str) -> None:
    from autotune.backend import settled, setup
    from autotune.objective import Objective
    from autotune.study import open_study

    setup()
    spec = fixed_spec("memory", epochs=2)
    study = open_study(spec, f"sqlite:///{folder}/memory.db", sampler_seed=0)
    objective = Objective(spec)

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    with settled() as settle:  # as a worker does once its objective is built
        settle()
        for _ in range(trials):
            study.optimize(objective, n_trials=1)
            print(f"{rss_mb():.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--memory-trials", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/overhead.md"))
    args = parser.parse_args()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        fit_lines, split = overhead(args.repeats, folder)
        total = sum(split.values())
        split_lines = [
            f"| {phase} | {seconds * 1000:.0f} | {seconds / total:.1%} |"
            for phase, seconds in split.items()
        ]
        start_lines = startup(args.repeats, folder)
        memory_lines = memory(args.memory_trials, folder)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    text = "\n".join(
        [
            "# Trial overhead, start-up and memory",
            "",
            f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python"
            f" {platform.python_version()}.",
            "",
            f"Command: `{command}`",
            "",
            "## One trial against a bare model.fit",
            "",
            *[f"- {line}" for line in fit_lines],
            "",
            "## Where a trial's time goes (mean per trial)",
            "",
            "| phase | ms | share |",
            "| --- | --- | --- |",
            *split_lines,
            "",
            "## Start-up",
            "",
            *[f"- {line}" for line in start_lines],
            "",
            "## Memory",
            "",
            *[f"- {line}" for line in memory_lines],
            "",
        ]
    )
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
