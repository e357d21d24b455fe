"""TPE's start-up: a scrambled Sobol design against random draws, on cheap test functions.

autotune's ``tpe`` sampler draws its start-up trials from a scrambled Sobol sequence and sizes
the start-up to the study (``autotune.samplers``); Optuna draws 10 start-up trials at random.
This runs both, and the two halves of the change apart, on standard test functions and on a
synthetic objective over the shipped circles space (log scales, ints, choices, conditional
parameters), none of which was used to choose the defaults:

1. Coverage: the first 8 start-up points of the float-only spaces, in the unit cube (log
   scales as logs): centered L2 discrepancy (lower is more even) and the smallest distance
   between two points (larger is more spread), mean over the seeds.
2. Search: the best value (all functions are minimized) after 10, 20 and 30 trials, mean and
   standard error over the seeds, for each start; and how often the new default is ahead of
   the previous behaviour, seed by seed.
3. Hyperband's brackets as autotune sizes them to the study, against a first rung of 1 epoch.

Writes the figures, with the command, to ``benchmarks/startup.md``.

Example:

    python scripts/bench_startup.py --seeds 10 --trials 30
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from scipy.spatial.distance import pdist
from scipy.stats import qmc

from autotune.pruners import bracket_shares, sized_min_resource
from autotune.samplers import Plan, make_sampler, startup_trials
from autotune.space import Space, build_space, sample
from autotune.spec import resolve

Objective = Callable[[dict[str, Any]], float]
CHECKPOINTS = (10, 20, 30)


def _branin(p: dict[str, Any]) -> float:
    x, y = p["x1"], p["x2"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x) + 10


_HARTMANN_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                        [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])  # fmt: skip
_HARTMANN_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886],
                               [2329, 4135, 8307, 3736, 1004, 9991],
                               [2348, 1451, 3522, 2883, 3047, 6650],
                               [4047, 8828, 8732, 5743, 1091, 381]])  # fmt: skip
_HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann6(p: dict[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(6)])
    inner = (_HARTMANN_A * (x - _HARTMANN_P) ** 2).sum(axis=1)
    return float(-(_HARTMANN_ALPHA * np.exp(-inner)).sum())


def _styblinski_tang(p: dict[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(4)])
    return float((x**4 - 16 * x**2 + 5 * x).sum() / 2)


def _rosenbrock_log(p: dict[str, Any]) -> float:
    """Rosenbrock's valley on log-scaled inputs, as learning rates and widths are searched."""
    x = np.log10([p[f"x{i}"] for i in range(3)]) + 1  # [1e-3, 1e1] -> [-2, 2]
    return float((100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum())


_OPTIMIZERS = {"adam": 0.0, "adamw": 0.05, "rmsprop": 0.2, "momentum": 0.1, "nesterov": 0.1,
               "sgd": 0.6, "adagrad": 0.8}  # fmt: skip
_DECAYS = {"cosine": 0.0, "exponential": 0.05, "none": 0.15, "linear": 0.1, "step": 0.2}


def _circles_like(p: dict[str, Any]) -> float:
    """A made-up loss over the shipped circles space: a best learning rate that moves with the
    batch size, an optimizer and momentum, a width, a depth, dropout and a decay."""
    lr = (math.log10(p["learning_rate"]) + 2.5 - 0.15 * (math.log2(p["batch_size"]) - 6)) ** 2
    loss = lr + _OPTIMIZERS[p["optimizer"]] + _DECAYS[p["decay"]]
    loss += 4 * (p.get("momentum", 0.9) - 0.9) ** 2 + 2 * (p.get("cosine_alpha", 0.1) - 0.1) ** 2
    loss += (math.log2(p["units"]) - 5) ** 2 / 10 + 0.1 * abs(p["n_layers"] - 2)
    return loss + (p["dropout"] - 0.1) ** 2 + (0.05 if p["activation"] == "tanh" else 0.0)


def _cube(names: list[str], low: float, high: float, log: bool = False) -> Space:
    return build_space({name: {"low": low, "high": high, "log": log} for name in names})


FUNCTIONS: dict[str, tuple[Space, Objective]] = {
    "branin (2 floats)": (
        build_space({"x1": {"low": -5.0, "high": 10.0}, "x2": {"low": 0.0, "high": 15.0}}),
        _branin,
    ),
    "hartmann6 (6 floats)": (_cube([f"x{i}" for i in range(6)], 0.0, 1.0), _hartmann6),
    "styblinski-tang (4 floats)": (_cube([f"x{i}" for i in range(4)], -5.0, 5.0), _styblinski_tang),
    "rosenbrock (3 log floats)": (
        _cube([f"x{i}" for i in range(3)], 1e-3, 10.0, log=True),
        _rosenbrock_log,
    ),
    "circles space (16 params, conditional)": (resolve("circles").space, _circles_like),
}


def variants(trials: int) -> dict[str, dict[str, Any]]:
    sized = startup_trials(trials)
    return {
        "random, 10 (before)": {"startup": "random", "n_startup_trials": 10},
        "sobol, 10": {"startup": "sobol", "n_startup_trials": 10},
        f"random, {sized}": {"startup": "random", "n_startup_trials": sized},
        f"sobol, {sized} (new default)": {},
    }


def best_so_far(space: Space, objective: Objective, options: dict[str, Any], seed: int,
                trials: int) -> list[float]:  # fmt: skip
    sampler = make_sampler("tpe", seed, options, space, Plan(n_trials=trials, seed=seed))
    study = optuna.create_study(sampler=sampler)
    values = []
    for _ in range(trials):
        trial = study.ask()
        value = objective(sample(space, trial))
        study.tell(trial, value)
        values.append(min(value, values[-1]) if values else value)
    return values


def unit_cube(space: Space, params: list[dict[str, Any]]) -> np.ndarray:
    def unit(name: str, value: float) -> float:
        low, high = space[name].bounds
        if space[name].log:
            return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
        return (value - low) / (high - low)

    return np.array([[unit(name, p[name]) for name in space] for p in params])


def coverage(space: Space, startup: str, seeds: int) -> tuple[float, float]:
    discrepancy, spread = [], []
    for seed in range(seeds):
        sampler = make_sampler("tpe", seed, {"startup": startup, "n_startup_trials": 8}, space)
        study = optuna.create_study(sampler=sampler)
        params = []
        for _ in range(8):
            trial = study.ask()
            params.append(sample(space, trial))
            study.tell(trial, 0.0)
        points = unit_cube(space, params)
        discrepancy.append(qmc.discrepancy(points))
        spread.append(pdist(points).min())
    return statistics.mean(discrepancy), statistics.mean(spread)


def _mean_sem(values: list[float]) -> str:
    sem = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3g} ± {sem:.2g}"


def search_section(seeds: int, trials: int) -> list[str]:
    checkpoints = [c for c in CHECKPOINTS if c <= trials]
    named = variants(trials)
    before, new = list(named)[0], list(named)[-1]
    header = " | ".join(f"best after {c}" for c in checkpoints)
    lines = [
        f"## Best value found (minimized), mean ± standard error over {seeds} seeds",
        "",
        f"Start: how the start-up trials are drawn, and how many (autotune sizes a {trials}-trial"
        f" study's start-up to {startup_trials(trials)}).",
        "",
    ]
    ahead = {c: [0, 0, 0] for c in checkpoints}  # new default ahead / tied / behind
    ranks: dict[str, dict[int, list[float]]] = {v: {c: [] for c in checkpoints} for v in named}
    for function, (space, objective) in FUNCTIONS.items():
        lines += [f"### {function}", "", f"| start | {header} |",
                  "|---|" + "---|" * len(checkpoints)]  # fmt: skip
        curves = {
            name: [best_so_far(space, objective, options, seed, trials) for seed in range(seeds)]
            for name, options in named.items()
        }
        for name, runs in curves.items():
            cells = " | ".join(_mean_sem([run[c - 1] for run in runs]) for c in checkpoints)
            lines.append(f"| {name} | {cells} |")
        lines.append("")
        print("\n".join(lines[-len(named) - 3 :]), flush=True)
        for c in checkpoints:
            for seed in range(seeds):
                old, ours = curves[before][seed][c - 1], curves[new][seed][c - 1]
                ahead[c][0 if ours < old - 1e-12 else 2 if ours > old + 1e-12 else 1] += 1
                order = sorted(named, key=lambda v: curves[v][seed][c - 1])
                for rank, name in enumerate(order, 1):
                    ranks[name][c].append(rank)
    cases = len(FUNCTIONS) * seeds
    lines += [
        f"### Over all {len(FUNCTIONS)} functions and {seeds} seeds ({cases} runs each)",
        "",
        f"| | {header} |",
        "|---|" + "---|" * len(checkpoints),
        f"| {new} ahead / tied / behind {before} | "
        + " | ".join("{} / {} / {}".format(*ahead[c]) for c in checkpoints)
        + " |",
    ]
    for name in named:
        cells = " | ".join(f"{statistics.mean(ranks[name][c]):.2f}" for c in checkpoints)
        lines.append(f"| mean rank of {name} (1 best, {len(named)} worst) | {cells} |")
    return lines + [""]


def coverage_section(seeds: int) -> list[str]:
    lines = [
        f"## Coverage of the first 8 start-up points, mean over {seeds} seeds",
        "",
        "| space | discrepancy, random | discrepancy, sobol | closest pair, random"
        " | closest pair, sobol |",
        "|---|---|---|---|---|",
    ]
    for function, (space, _) in FUNCTIONS.items():
        if any(p.kind != "float" or p.when for p in space.values()):
            continue
        (d_random, s_random), (d_sobol, s_sobol) = (coverage(space, s, seeds)
                                                    for s in ("random", "sobol"))  # fmt: skip
        lines.append(f"| {function} | {d_random:.4f} | {d_sobol:.4f} | {s_random:.3f}"
                     f" | {s_sobol:.3f} |")  # fmt: skip
    return lines + [""]


def brackets_section(max_epochs: int = 100) -> list[str]:
    lines = [
        f"## Hyperband's brackets, max_epochs = {max_epochs}, reduction factor 3",
        "",
        "Trials a bracket expects: the study's trials times the bracket's share of Optuna's"
        " allocation (a hash of the trial number picks the bracket), most aggressive bracket"
        " first.",
        "",
        "| n_trials | first rung 1 epoch (before): trials per bracket"
        " | sized first rung | sized: trials per bracket |",
        "|---|---|---|---|",
    ]
    for n_trials in (10, 20, 30, 40, 50, 100, 200):
        sized = sized_min_resource(max_epochs, 3, n_trials)

        def per_bracket(min_resource: int, n: int = n_trials) -> str:
            shares = bracket_shares(max_epochs, min_resource, 3)
            return ", ".join(f"{n * share:.1f}" for share in shares)

        lines.append(f"| {n_trials} | {per_bracket(1)} | {sized} | {per_bracket(sized)} |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks") / "startup.md")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    lines = [
        "# TPE's start-up: a Sobol design against random draws",
        "",
        f"`{shlex.join(['python', 'scripts/bench_startup.py', *sys.argv[1:]])}`",
        "",
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()},"
        f" Optuna {optuna.__version__}; {args.trials} trials per run, autotune's tpe sampler"
        f" (multivariate TPE, SciPy's log-CDF) in every column.",
        "",
    ]
    lines += coverage_section(args.seeds)
    lines += search_section(args.seeds, args.trials)
    lines += brackets_section()
    args.out.write_text("\n".join(lines))
    print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
