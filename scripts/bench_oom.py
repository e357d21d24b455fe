"""Out-of-memory trials as a signal: how many a search proposes with TPE that sees them
(autotune's ``tpe``) and with Optuna's plain ``TPESampler``, over seeds, side by side.

A toy objective stands in for training (no TensorFlow): a configuration whose
``batch_size * units`` passes a memory limit raises autotune's ``TrialOutOfMemory``, as a real
trial does on TensorFlow's ``ResourceExhaustedError``; the rest score a smooth function. Both
samplers run through autotune's own work loop, which fails the trial (it does not count toward
the total) and marks it infeasible. Two shapes of study:

- ``interior``: the best configurations lie well inside the memory limit;
- ``edge``: the bigger the better, up to the limit (the best lie on it).

    python scripts/bench_oom.py                 # 20 seeds, writes benchmarks/oom.md
    python scripts/bench_oom.py --seeds 5
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from pathlib import Path

import optuna

from autotune import runner, samplers
from autotune.errors import SearchFailedError, TrialOutOfMemory

LIMIT = 32 * 1024  # batch_size * units above this runs out of memory
N_TRIALS = 50


def objective(shape: str):
    def run(trial: optuna.Trial) -> float:
        batch = trial.suggest_int("batch_size", 16, 4096, log=True)
        units = trial.suggest_int("units", 4, 256, log=True)
        rate = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
        if batch * units > LIMIT:
            raise TrialOutOfMemory(f"out of memory at batch_size={batch} units={units}")
        if shape == "edge":
            return math.sqrt(batch * units) / 256 - abs(math.log10(rate) + 2) * 0.1
        return (
            -((math.log2(batch) - 7) ** 2)
            - (math.log2(units) - 5) ** 2
            - (math.log10(rate) + 2) ** 2
        )

    return run


def search(shape: str, sampler: optuna.samplers.BaseSampler) -> tuple[int, float]:
    """The out-of-memory trials of one search to N_TRIALS finished trials, and its best value."""
    study = optuna.create_study(direction="maximize", sampler=sampler)
    try:
        runner.work(study, lambda: objective(shape), n_trials=N_TRIALS, echo=None)
    except SearchFailedError:  # ten in a row: the search gives up, as it would for real
        pass
    oom = sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials)
    return oom, max(t.value for t in study.trials if t.value is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/oom.md")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    start = time.time()
    rows = []
    for shape in ("interior", "edge"):
        plain, aware = [], []
        for seed in range(args.seeds):
            plain.append(search(shape, optuna.samplers.TPESampler(seed=seed)))
            aware.append(search(shape, samplers.make_sampler("tpe", seed, {}, {})))
        fewer = sum(a[0] < p[0] for a, p in zip(aware, plain, strict=True))
        more = sum(a[0] > p[0] for a, p in zip(aware, plain, strict=True))
        rows.append(
            f"| {shape} | {statistics.median(p[0] for p in plain):.1f} | {statistics.median(a[0] for a in aware):.1f}"
            f" | {sum(p[0] for p in plain)} | {sum(a[0] for a in aware)} | {fewer} / {more}"
            f" | {statistics.median(p[1] for p in plain):.3f} | {statistics.median(a[1] for a in aware):.3f} |"
        )
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            "# Out-of-memory trials: TPE that sees them, and TPE that does not",
            "",
            f"`python scripts/bench_oom.py --seeds {args.seeds}` on {platform.node()}"
            f" ({platform.machine()}, Optuna {optuna.__version__}); {args.seeds} seeds per shape,"
            f" searches to {N_TRIALS} finished trials; {time.time() - start:.0f} s.",
            "",
            "Out-of-memory trials per search (they fail and do not count toward the total), and"
            " the best value reached. `plain`: Optuna's `TPESampler`, which models only complete"
            " and pruned trials and so never sees a failed one; `autotune`: the `tpe` sampler,"
            " which also models the failed trials marked infeasible.",
            "",
            "| study | OOM plain (median) | OOM autotune (median) | OOM plain (sum) | OOM autotune (sum)"
            " | seeds with fewer / more | best plain (median) | best autotune (median) |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
