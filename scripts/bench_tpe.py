"""What autotune's TPE costs and finds, against Optuna's own, side by side.

autotune's ``tpe`` sampler computes the normal log-CDF with SciPy's vectorized ``log_ndtr``
instead of Optuna's element-by-element loop (``autotune.samplers``). The two agree to about
1e-12, so a seeded run proposes the same parameters up to float rounding (a near-tie between
TPE's 24 candidates could in principle resolve the other way). This measures both sides:

1. Sampling time per trial on the shipped circles space, with 100, 400 and 1,000 finished
   trials of history (400 is the window a worker of a long study reads; see
   ``autotune.history``), median of several asks.
2. Search quality: the best value found in 100 trials of cheap synthetic objectives over the
   same space, over 10 seeds, for each side: medians and how often each side was ahead.

Writes the figures, with the command, to ``benchmarks/tpe.md``.

Example:

    python scripts/bench_tpe.py --seeds 10 --trials 100
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from autotune import samplers
from autotune.space import sample
from autotune.spec import resolve

SPACE = resolve("circles").space


def _sampler(side: str, seed: int) -> Any:
    """autotune's tpe sampler, or the same class with Optuna's own log-CDF loop."""
    import scipy.special
    from optuna.samplers._tpe import _truncnorm

    samplers._infeasible_aware_tpe.cache_clear()
    real = scipy.special.log_ndtr
    if side == "optuna":
        scipy.special.log_ndtr = _truncnorm._log_ndtr  # the class takes its name at creation
    try:
        return samplers.make_sampler("tpe", seed, {}, SPACE)
    finally:
        scipy.special.log_ndtr = real
        samplers._infeasible_aware_tpe.cache_clear()


def _filled(n: int, seed: int) -> optuna.Study:
    rng = random.Random(seed)
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=seed))  # fmt: skip
    for _ in range(n):
        trial = study.ask()
        sample(SPACE, trial)
        study.tell(trial, rng.random())
    return study


def sampling_ms(side: str, history: int, asks: int = 7) -> float:
    study = _filled(history, 0)
    study.sampler = _sampler(side, 0)
    times = []
    for _ in range(asks):
        start = time.perf_counter()
        trial = study.ask()
        sample(SPACE, trial)
        times.append(time.perf_counter() - start)
        study.tell(trial, random.random())
    return 1000 * statistics.median(times)


def _lr_and_width(params: dict[str, Any]) -> float:
    """A smooth optimum: learning rate 3e-3, 64 units, dropout 0.1."""
    lr = (math.log10(params["learning_rate"]) + 2.5) ** 2
    width = (math.log2(params.get("units", 64)) - 6) ** 2 / 4
    return -lr - width - 4 * (params.get("dropout", 0.0) - 0.1) ** 2


def _mixed(params: dict[str, Any]) -> float:
    """Categorical and integer structure on top: one optimizer, a batch size, two layers."""
    good = {"adam": 0.0, "rmsprop": -0.3}.get(str(params.get("optimizer")), -1.0)
    batch = -abs(math.log2(params["batch_size"]) - 5) / 3
    layers = -abs(params.get("n_layers", 2) - 2) / 2
    return good + batch + layers + _lr_and_width(params)


OBJECTIVES: dict[str, Callable[[dict[str, Any]], float]] = {
    "smooth": _lr_and_width,
    "mixed": _mixed,
}


def best_found(side: str, objective: Callable[[dict[str, Any]], float], seed: int,
               trials: int) -> float:  # fmt: skip
    study = optuna.create_study(direction="maximize", sampler=_sampler(side, seed))
    study.optimize(lambda t: objective(sample(SPACE, t)), n_trials=trials)
    return float(study.best_value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("benchmarks") / "tpe.md")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    lines = [
        "# TPE: SciPy's log-CDF against Optuna's loop",
        "",
        f"`{shlex.join(['python', 'scripts/bench_tpe.py', *sys.argv[1:]])}`",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" Optuna {optuna.__version__}; the shipped circles space.",
        "",
        "## Sampling time per trial (median of 7 asks)",
        "",
        "| finished trials of history | Optuna's loop | SciPy (autotune) | ratio |",
        "|---|---|---|---|",
    ]
    for history in (100, 400, 1000):
        stock, ours = sampling_ms("optuna", history), sampling_ms("autotune", history)
        lines.append(f"| {history} | {stock:.1f} ms | {ours:.1f} ms | {stock / ours:.1f}x |")
        print(lines[-1], flush=True)
    lines += [
        "",
        f"## Best value found in {args.trials} trials, {args.seeds} seeds",
        "",
        "| objective | Optuna's loop (median) | SciPy (median) | SciPy ahead / tied / behind |",
        "|---|---|---|---|",
    ]
    for name, objective in OBJECTIVES.items():
        pairs = [
            (best_found("optuna", objective, seed, args.trials),
             best_found("autotune", objective, seed, args.trials))
            for seed in range(args.seeds)
        ]  # fmt: skip
        ahead = sum(ours > stock + 1e-9 for stock, ours in pairs)
        behind = sum(ours < stock - 1e-9 for stock, ours in pairs)
        lines.append(
            f"| {name} | {statistics.median(p[0] for p in pairs):.4f}"
            f" | {statistics.median(p[1] for p in pairs):.4f}"
            f" | {ahead} / {len(pairs) - ahead - behind} / {behind} |"
        )
        print(lines[-1], flush=True)
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
