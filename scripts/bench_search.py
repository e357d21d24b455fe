"""Search quality: how fast autotune finds a good model against plain Optuna, random search and
KerasTuner's Hyperband, on the same data, space, epochs and wall-clock budget.

Four methods search each shipped MLP study (its ``[data]`` split, its space, its ``max_epochs``)
for the same number of seconds:

- ``autotune``: ``autotune.run`` with the study's own settings (TPE, Hyperband pruning, early
  stopping), on a fresh SQLite storage.
- ``optuna``: the textbook Optuna script: ``TPESampler(seed)``, no pruning, every trial
  ``model.fit`` on the NumPy arrays for ``max_epochs`` epochs, scored by its final epoch's
  validation accuracy, ``study.optimize(timeout=budget)``. It builds the model with the same
  family builder and optimizer factory as autotune, so only the search procedure differs.
- ``random``: the same script with ``RandomSampler(seed)``.
- ``kerastuner``: ``keras_tuner.Hyperband(max_epochs, factor=3)`` on a KerasTuner translation
  of the same space (conditional parameters through ``parent_name``/``parent_values``), with
  the objective ``val_accuracy``.

Every run happens in a fresh process; the methods of one (data set, seed) run back to back, in
an order rotated per seed. A run records each finished trial's wall time and validation value,
so the best-so-far curve, the best value at the budget, the time to a target validation
accuracy, the trials and the epochs follow; the best configuration found within the budget is
then scored once on the held-out test split. Writes ``search.md``, ``search.png`` and the raw
runs as ``search.json`` into ``--out-dir``.

Example:

    python scripts/bench_search.py --budget 50 --seeds 3
    python scripts/bench_search.py --budget 10 --seeds 1 --datasets circles
    python scripts/bench_search.py --report-only benchmarks/search.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATASETS = ("circles", "moons", "digits", "breast_cancer")
# Validation accuracy each method must reach; near each study's best, below its ceiling
# (moons has noise 0.3, so no model gets far past 0.9).
TARGETS = {"circles": 0.99, "moons": 0.90, "digits": 0.95, "breast_cancer": 0.97}
# The claim is checked on these data sets, against these methods.
CLAIM_DATASETS = ("moons", "digits")
CLAIM_METHODS = ("optuna", "kerastuner")
# So many trials that only the budget ends a run.
UNLIMITED = 10**6


# --- shared by the methods (in the child process) -------------------------------------------


def compiled_model(params: dict[str, Any], dataset: Any, max_epochs: int) -> tuple[Any, int]:
    """The MLP for ``params``, compiled as a user compiles it; returns it and its batch size.

    The same family builder and optimizer factory (with decay) as autotune's trials.
    """
    from autotune.models import FAMILIES
    from autotune.optimizers import make_optimizer
    from autotune.trial import batch_size_for

    n_train = len(dataset.x_train)
    batch_size = batch_size_for(params, n_train)
    model = FAMILIES["mlp"].build(params, dataset.input_shape, dataset.n_outputs)
    model.compile(
        optimizer=make_optimizer(params, math.ceil(n_train / batch_size), max_epochs),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model, batch_size


def scores(model: Any, dataset: Any) -> dict[str, float]:
    """Accuracy on the validation and the test split."""
    out = {}
    for split, x, y in (
        ("val", dataset.x_val, dataset.y_val),
        ("test", dataset.x_test, dataset.y_test),
    ):
        out[split] = float(model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"])
    return out


# Epochs trained in this process, counted by _Budget; a module global, since KerasTuner deep-copies
# the callbacks it is given once per trial.
_EPOCHS = [0]


def budget_callback(deadline: float) -> Any:
    """A Keras callback that counts epochs and stops training once ``deadline`` (monotonic) passes.

    It only acts after the budget is spent: a trial it cuts finishes after the budget, so it
    counts for nothing, and the run ends sooner.
    """
    import keras

    class _Budget(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.deadline = deadline
            self.cut = False

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            _EPOCHS[0] += 1
            if time.monotonic() >= self.deadline:
                self.cut = True
                self.model.stop_training = True

    return _Budget()


def optuna_trials(study: Any, t0: datetime) -> list[dict[str, Any]]:
    """Every finished trial of an Optuna study, with its finish time in seconds after ``t0``."""
    out = []
    for t in study.get_trials(deepcopy=False):
        if t.datetime_complete is None:
            continue
        attrs = t.user_attrs
        state = "cut" if attrs.get("cut") else t.state.name.lower()
        value = t.value if t.state.name == "COMPLETE" else None
        out.append(
            {
                "id": t.number,
                "t": (t.datetime_complete - t0).total_seconds(),
                "state": state,
                "value": value,
                # The best epoch's value: autotune's and KerasTuner's own score of a trial.
                "best_epoch_value": attrs.get("best_epoch_value", value),
                "epochs": int(attrs.get("epochs", 0)),
                "params": t.params,
            }
        )
    return out


def best_within(trials: list[dict[str, Any]], budget: float) -> dict[str, Any] | None:
    """The best complete trial finished within the budget; the first one on ties."""
    complete = [t for t in trials if t["state"] == "complete" and t["t"] <= budget]
    return max(complete, key=lambda t: t["value"]) if complete else None


def run_autotune(
    name: str, spec: Any, dataset: Any, seed: int, budget: float, folder: Path
) -> dict[str, Any]:
    import autotune
    from autotune import best as best_module

    t0 = datetime.now()
    study = autotune.run(
        spec,
        storage=f"sqlite:///{folder / 'search.db'}",
        timeout=budget,
        n_trials=UNLIMITED,
        seed=seed,
        echo=None,
    )
    wall = (datetime.now() - t0).total_seconds()
    trials = optuna_trials(study, t0)
    best = best_within(trials, budget)
    result: dict[str, Any] = {"trials": trials, "wall": wall, "best": None}
    if best is not None:
        # autotune's own retrain: the best trial's params, seed and schedule, for its best epoch.
        model = best_module.retrain(study, study.trials[best["id"]])
        result["best"] = {
            **best,
            "trained_epochs": model.epochs,
            "retrain_val": model.validation["accuracy"],
            "test": model.test["accuracy"],
        }
    return result


def run_plain(
    name: str, spec: Any, dataset: Any, seed: int, budget: float, folder: Path
) -> dict[str, Any]:
    import keras
    import optuna

    from autotune.space import sample
    from autotune.trial import trial_seed

    space = spec.space
    sampler = {"optuna": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}[name]
    max_epochs = spec.max_epochs

    def fit(params: dict[str, Any], number: int, callbacks: list[Any]) -> tuple[Any, Any]:
        keras.backend.clear_session()
        keras.utils.set_random_seed(trial_seed(seed, number))
        model, batch_size = compiled_model(params, dataset, max_epochs)
        history = model.fit(
            dataset.x_train,
            dataset.y_train,
            validation_data=(dataset.x_val, dataset.y_val),
            epochs=max_epochs,
            batch_size=batch_size,
            verbose=0,
            callbacks=callbacks,
        )
        return model, history.history["val_accuracy"]

    def objective(trial: Any) -> float:
        params = sample(space, trial)
        budget_stop = budget_callback(deadline)
        _, values = fit(params, trial.number, [budget_stop])
        trial.set_user_attr("epochs", len(values))
        trial.set_user_attr("best_epoch_value", max(values))
        if budget_stop.cut:
            trial.set_user_attr("cut", True)
            raise optuna.TrialPruned("the budget is spent")
        return values[-1]  # the textbook value: the last epoch's

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    t0 = datetime.now()
    deadline = time.monotonic() + budget
    study = optuna.create_study(direction="maximize", sampler=sampler(seed=seed))
    study.optimize(objective, timeout=budget)
    wall = (datetime.now() - t0).total_seconds()
    trials = optuna_trials(study, t0)
    best = best_within(trials, budget)
    result: dict[str, Any] = {"trials": trials, "wall": wall, "best": None}
    if best is not None:
        # The same code path as the trial: same seed, builder, optimizer, fit on the arrays.
        model, _ = fit(best["params"], best["id"], [])
        result["best"] = {**best, "trained_epochs": max_epochs, **_renamed(scores(model, dataset))}
    return result


def _renamed(split_scores: dict[str, float]) -> dict[str, float]:
    return {"retrain_val": split_scores["val"], "test": split_scores["test"]}


def kerastuner_space(space: Any, hp: Any) -> dict[str, Any]:
    """Declares autotune's ``space`` on a KerasTuner ``hp``; returns the active values.

    Each parameter keeps its name, range, scale and choices; a ``when`` condition becomes
    ``parent_name``/``parent_values``. An inactive conditional parameter reads as None.
    """
    params = {}
    for param in space.values():
        if len(param.when) > 1:
            raise ValueError(f"{param.name}: KerasTuner takes one parent, got {param.when}")
        condition = {}
        if param.when:
            parent, values = param.when[0]
            condition = {"parent_name": parent, "parent_values": list(values)}
        if param.kind == "categorical" and len(param.choices) == 1:
            value = hp.Fixed(param.name, param.choices[0], **condition)
        elif param.kind == "categorical" and set(param.choices) == {False, True}:
            value = hp.Boolean(param.name, **condition)
        elif param.kind == "categorical":
            value = hp.Choice(param.name, list(param.choices), **condition)
        else:
            kind = hp.Int if param.kind == "int" else hp.Float
            value = kind(
                param.name,
                param.low,
                param.high,
                step=param.step,
                sampling="log" if param.log else "linear",
                **condition,
            )
        if value is not None:
            params[param.name] = value
    return params


def run_kerastuner(
    name: str, spec: Any, dataset: Any, seed: int, budget: float, folder: Path
) -> dict[str, Any]:
    import keras
    import keras_tuner

    from autotune.trial import batch_size_for

    space = spec.space
    keras.utils.set_random_seed(seed)
    trials: list[dict[str, Any]] = []

    class MLP(keras_tuner.HyperModel):
        def build(self, hp: Any) -> Any:
            return compiled_model(kerastuner_space(space, hp), dataset, spec.max_epochs)[0]

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            batch_size = batch_size_for({"batch_size": hp.get("batch_size")}, len(dataset.x_train))
            return model.fit(*args, batch_size=batch_size, **kwargs)

    class BudgetedHyperband(keras_tuner.Hyperband):
        """Hyperband that starts no trial once the budget is spent, and records each trial."""

        def on_trial_begin(self, trial: Any) -> None:
            self._epochs_before = _EPOCHS[0]
            super().on_trial_begin(trial)

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            ended = self.oracle.get_trial(trial.trial_id)
            values = ended.hyperparameters.values
            complete = ended.status == "COMPLETED" and ended.score is not None
            after = time.monotonic() >= deadline
            trials.append(
                {
                    "id": ended.trial_id,
                    "t": (datetime.now() - t0).total_seconds(),
                    "state": ("cut" if after else "complete") if complete else "failed",
                    "value": float(ended.score) if complete else None,
                    "best_epoch_value": float(ended.score) if complete else None,
                    "epochs": _EPOCHS[0] - self._epochs_before,
                    "params": {k: v for k, v in values.items() if not k.startswith("tuner/")},
                    "round": values.get("tuner/round", 0),
                }
            )
            if after:
                # The oracle stops the search when it holds max_trials trials.
                self.oracle.max_trials = len(self.oracle.trials)

    t0 = datetime.now()
    deadline = time.monotonic() + budget
    tuner = BudgetedHyperband(
        MLP(),
        objective="val_accuracy",
        max_epochs=spec.max_epochs,
        factor=3,
        hyperband_iterations=UNLIMITED,
        seed=seed,
        directory=str(folder),
        project_name="kt",
        overwrite=True,
    )
    tuner.search(
        dataset.x_train,
        dataset.y_train,
        validation_data=(dataset.x_val, dataset.y_val),
        callbacks=[budget_callback(deadline)],
        verbose=0,
    )
    wall = (datetime.now() - t0).total_seconds()
    best = best_within(trials, budget)
    result: dict[str, Any] = {"trials": trials, "wall": wall, "best": None}
    if best is not None:
        # KerasTuner's own best model: the trial's weights at its best epoch, as it saved them.
        model = tuner.load_model(tuner.oracle.get_trial(best["id"]))
        result["best"] = {**best, **_renamed(scores(model, dataset))}
    return result


METHODS: dict[str, Callable[..., dict[str, Any]]] = {
    "autotune": run_autotune,
    "optuna": run_plain,
    "random": run_plain,
    "kerastuner": run_kerastuner,
}


def split_fingerprint(dataset: Any) -> str:
    """A hash of the three splits' arrays: equal for every method of a data set."""
    import hashlib

    digest = hashlib.sha256()
    for array in (
        dataset.x_train,
        dataset.y_train,
        dataset.x_val,
        dataset.y_val,
        dataset.x_test,
        dataset.y_test,
    ):
        digest.update(array.tobytes())
    return digest.hexdigest()[:12]


def child(method: str, dataset_name: str, seed: int, budget: float, result_path: Path) -> None:
    """One run, in its own process: writes its JSON result to ``result_path``."""
    warnings.filterwarnings("ignore")
    from autotune import data
    from autotune.backend import setup
    from autotune.spec import resolve

    setup()  # TensorFlow imported (and its start-up time spent) before the clock starts
    import keras

    keras.utils.disable_interactive_logging()
    spec = resolve(dataset_name)
    dataset = data.load(spec.data)
    with tempfile.TemporaryDirectory() as folder:
        result = METHODS[method](method, spec, dataset, seed, budget, Path(folder))
    result.update(
        method=method,
        dataset=dataset_name,
        seed=seed,
        budget=budget,
        max_epochs=spec.max_epochs,
        split=split_fingerprint(dataset),
        sizes=dataset.sizes(),
        epochs_counted=_EPOCHS[0],
    )
    result_path.write_text(json.dumps(result))


# --- the parent: runs, figures, report ------------------------------------------------------


def one_run(method: str, dataset: str, seed: int, budget: float, folder: Path) -> dict[str, Any]:
    path = folder / f"{dataset}-{seed}-{method}.json"
    command = [
        sys.executable,
        __file__,
        "--child",
        method,
        dataset,
        str(seed),
        "--budget",
        str(budget),
        "--result",
        str(path),
    ]
    start = time.perf_counter()
    # A failed run is recorded as failed; the other runs go on.
    done = subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or not path.exists():
        return {
            "method": method,
            "dataset": dataset,
            "seed": seed,
            "budget": budget,
            "error": f"exit code {done.returncode}",
            "process_seconds": seconds,
        }
    result = json.loads(path.read_text())
    result["process_seconds"] = seconds
    return result


def derive(run: dict[str, Any]) -> dict[str, Any]:
    """The figures of one run, counting only what finished within its budget."""
    if "error" in run:
        return {"error": run["error"]}
    budget, target = run["budget"], TARGETS[run["dataset"]]
    within = [t for t in run["trials"] if t["t"] <= budget]
    complete = [t for t in within if t["state"] == "complete"]

    def first_reaching(key: str) -> float:
        hits = [t["t"] for t in complete if t[key] is not None and t[key] >= target - 1e-9]
        return min(hits) if hits else math.inf

    best = run["best"]
    return {
        "best_val": max((t["value"] for t in complete), default=None),
        "test": best["test"] if best else None,
        "retrain_val": best["retrain_val"] if best else None,
        "t_target": first_reaching("value"),
        "t_target_best_epoch": first_reaching("best_epoch_value"),
        "trials": sum(t["state"] in ("complete", "pruned") for t in within),
        "failed": sum(t["state"] == "failed" for t in within),
        "epochs": sum(t["epochs"] for t in within),
        "wall": run["wall"],
    }


def curve(run: dict[str, Any]) -> list[tuple[float, float]]:
    """Best-so-far validation value at each finished trial within the budget."""
    points, best = [], -math.inf
    for t in sorted(run.get("trials", []), key=lambda t: t["t"]):
        if t["state"] == "complete" and t["t"] <= run["budget"] and t["value"] > best:
            best = t["value"]
            points.append((t["t"], best))
    return points


def median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return "not reached" if math.isinf(seconds) else f"{seconds:.1f}"


def summary_rows(
    runs: list[dict[str, Any]], datasets: list[str], methods: list[str]
) -> tuple[list[str], dict[tuple[str, str], dict[str, Any]]]:
    lines = [
        "| data set (target) | method | best val acc at budget | test acc of that config"
        " | time to target (s) | reached | trials | epochs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    medians = {}
    for dataset in datasets:
        for method in methods:
            figures = [derive(r) for r in runs if r["dataset"] == dataset and r["method"] == method]
            ok = [f for f in figures if "error" not in f]
            if not ok:
                continue
            times = [f["t_target"] for f in ok]
            m = {
                "best_val": median([f["best_val"] for f in ok]),
                "test": median([f["test"] for f in ok]),
                "t_target": statistics.median(times),
                "t_target_best_epoch": statistics.median(f["t_target_best_epoch"] for f in ok),
                "reached": sum(not math.isinf(t) for t in times),
                "runs": len(ok),
                "trials": median([f["trials"] for f in ok]),
                "epochs": median([f["epochs"] for f in ok]),
            }
            medians[(dataset, method)] = m
            errors = len(figures) - len(ok)
            lines.append(
                f"| {dataset} ({TARGETS[dataset]}) | {method} | {fmt(m['best_val'])}"
                f" | {fmt(m['test'])} | {fmt_time(m['t_target'])} | {m['reached']}/{m['runs']}"
                + (f" ({errors} failed)" if errors else "")
                + f" | {m['trials']:.0f} | {m['epochs']:.0f} |"
            )
    return lines, medians


def _seconds(value: float) -> float:
    """Seconds as the report shows them (0.1 s), so that equal-looking figures compare equal."""
    return value if math.isinf(value) else round(value, 1)


def _accuracy(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def claim_lines(
    runs: list[dict[str, Any]],
    medians: dict[tuple[str, str], dict[str, Any]],
    datasets: list[str],
    methods: list[str],
) -> list[str]:
    """The targets, on the medians and seed by seed: autotune reaches the target
    validation accuracy in at most half the time of each other method, and its test accuracy
    is not below theirs."""
    lines = []
    by = {(r["dataset"], r["method"], r["seed"]): derive(r) for r in runs}
    seeds = sorted({r["seed"] for r in runs})

    def half_time(mine: float, theirs: float) -> bool:
        return not math.isinf(mine) and _seconds(mine) <= 0.5 * _seconds(theirs)

    def not_below(mine: float | None, theirs: float | None) -> bool:
        return mine is not None and (theirs is None or _accuracy(mine) >= _accuracy(theirs))

    if "autotune" not in methods:
        return lines
    for dataset in [d for d in CLAIM_DATASETS if d in datasets]:
        for other in [m for m in CLAIM_METHODS if m in methods]:
            mine, theirs = medians.get((dataset, "autotune")), medians.get((dataset, other))
            if not mine or not theirs:
                continue
            time_ok = half_time(mine["t_target"], theirs["t_target"])
            test_ok = not_below(mine["test"], theirs["test"])
            pairs = [(by.get((dataset, "autotune", s)), by.get((dataset, other, s))) for s in seeds]
            pairs = [(a, o) for a, o in pairs if a and o and "error" not in a and "error" not in o]
            details = [
                f"{fmt_time(a['t_target'])} vs {fmt_time(o['t_target'])} s,"
                f" test {fmt(a['test'])} vs {fmt(o['test'])}"
                for a, o in pairs
            ]
            lines.append(
                f"- {dataset}, autotune vs {other}: medians {fmt_time(mine['t_target'])} vs"
                f" {fmt_time(theirs['t_target'])} s to target, {'met' if time_ok else 'NOT met'};"
                f" test {fmt(mine['test'])} vs {fmt(theirs['test'])},"
                f" {'met' if test_ok else 'NOT met'}. Seeds: half the time or less in"
                f" {sum(half_time(a['t_target'], o['t_target']) for a, o in pairs)}/{len(pairs)},"
                f" test not below in {sum(not_below(a['test'], o['test']) for a, o in pairs)}"
                f"/{len(pairs)} ({'; '.join(details)})."
            )
    return lines


def loss_lines(
    runs: list[dict[str, Any]],
    medians: dict[tuple[str, str], dict[str, Any]],
    datasets: list[str],
    methods: list[str],
) -> list[str]:
    """Every median, then every seed, in which another method beats autotune (on the figures
    as the report rounds them)."""

    def worse(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
        found = []
        for key, label in (("best_val", "best val acc"), ("test", "test acc")):
            a, b = _accuracy(mine[key]), _accuracy(theirs[key])
            if a is not None and b is not None and b > a:
                found.append(f"{label} {fmt(b)} vs {fmt(a)}")
        if _seconds(theirs["t_target"]) < _seconds(mine["t_target"]):
            found.append(
                f"time to target {fmt_time(theirs['t_target'])} vs {fmt_time(mine['t_target'])} s"
            )
        return found

    lines = ["On the medians:", ""]
    for dataset in datasets:
        for other in methods:
            mine, theirs = medians.get((dataset, "autotune")), medians.get((dataset, other))
            if other != "autotune" and mine and theirs and worse(mine, theirs):
                lines.append(
                    f"- {dataset}: {other} beats autotune on {'; '.join(worse(mine, theirs))}."
                )
    if len(lines) == 2:
        lines.append("- nowhere.")
    lines += ["", "Seed by seed (the other method's figure first):", ""]
    by = {(r["dataset"], r["method"], r["seed"]): derive(r) for r in runs}
    before = len(lines)
    for dataset in datasets:
        for seed in sorted({r["seed"] for r in runs}):
            mine = by.get((dataset, "autotune", seed))
            if not mine or "error" in mine:
                continue
            for other in methods:
                theirs = by.get((dataset, other, seed))
                if other != "autotune" and theirs and "error" not in theirs and worse(mine, theirs):
                    lines.append(
                        f"- {dataset} seed {seed}: {other} beats autotune on"
                        f" {'; '.join(worse(mine, theirs))}."
                    )
    if len(lines) == before:
        lines.append("- nowhere.")
    return lines


def sensitivity_lines(
    medians: dict[tuple[str, str], dict[str, Any]], datasets: list[str]
) -> list[str]:
    lines = [
        "| data set | method | time to target, final-epoch value (s) | time to target,"
        " best-epoch value (s) |",
        "| --- | --- | --- | --- |",
    ]
    for dataset in datasets:
        for method in ("optuna", "random"):
            m = medians.get((dataset, method))
            if m:
                lines.append(
                    f"| {dataset} | {method} | {fmt_time(m['t_target'])}"
                    f" | {fmt_time(m['t_target_best_epoch'])} |"
                )
    return lines


def cost_lines(runs: list[dict[str, Any]], datasets: list[str], methods: list[str]) -> list[str]:
    """Where the time goes: seconds per trial and per epoch, and what a trial of at most two
    epochs costs (its fixed cost: build, compile, tracing, storage), pooled over seeds.

    One worker runs one trial at a time, so a trial's duration is the time since the previous
    one finished; the first trial of a run, which also pays for setting up the search, is left
    out.
    """
    lines = [
        "| data set | method | median s per trial | s per epoch (budget / epochs) | median s per"
        " trial of at most 2 epochs (count) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for dataset in datasets:
        for method in methods:
            chosen = [
                r
                for r in runs
                if r["dataset"] == dataset and r["method"] == method and "error" not in r
            ]
            if not chosen:
                continue
            durations, short, per_epoch = [], [], []
            for run in chosen:
                within = sorted(
                    (t for t in run["trials"] if t["t"] <= run["budget"]), key=lambda t: t["t"]
                )
                epochs = sum(t["epochs"] for t in within)
                if epochs:
                    per_epoch.append(run["budget"] / epochs)
                for before, trial in itertools.pairwise(within):
                    durations.append(trial["t"] - before["t"])
                    if trial["epochs"] <= 2:
                        short.append(trial["t"] - before["t"])
            lines.append(
                f"| {dataset} | {method} | {fmt(median(durations), 1)}"
                f" | {fmt(median(per_epoch), 3)}"
                f" | {fmt(median(short), 1) if short else '-'} ({len(short)}) |"
            )
    return lines


def raw_lines(runs: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| data set | seed | order | method | best val acc | retrained val acc | test acc"
        " | time to target (s) | trials | failed | epochs | search wall (s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        f = derive(run)
        head = f"| {run['dataset']} | {run['seed']} | {run.get('order', '-')} | {run['method']}"
        if "error" in f:
            lines.append(f"{head} | failed: {f['error']} | | | | | | | |")
            continue
        lines.append(
            f"{head} | {fmt(f['best_val'])} | {fmt(f['retrain_val'])} | {fmt(f['test'])}"
            f" | {fmt_time(f['t_target'])} | {f['trials']} | {f['failed']} | {f['epochs']}"
            f" | {f['wall']:.1f} |"
        )
    return lines


COLORS = {
    "autotune": "tab:blue",
    "optuna": "tab:orange",
    "random": "tab:green",
    "kerastuner": "tab:red",
}
# optuna and random often draw the same configurations (TPE starts with random trials), so one
# of them is dashed and both stay visible.
STYLES = {"optuna": "--"}


def plot(
    runs: list[dict[str, Any]], datasets: list[str], methods: list[str], budget: float, path: Path
) -> None:
    """Best-so-far validation accuracy against time: one panel per data set, every seed thin,
    the median over seeds thick (drawn where every seed has a finished trial)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    columns = min(2, len(datasets))
    rows = math.ceil(len(datasets) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4 * rows), squeeze=False)
    grid = np.linspace(0, budget, 400)
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        target = TARGETS[dataset]
        for method in methods:
            chosen = [
                r
                for r in runs
                if r["dataset"] == dataset and r["method"] == method and "error" not in r
            ]
            series = []
            for run in chosen:
                points = curve(run)
                if not points:
                    series.append(np.full(len(grid), np.nan))
                    continue
                times, values = zip(*points, strict=False)
                xs = [*times, budget]
                ys = [*values, values[-1]]
                ax.step(xs, ys, where="post", color=COLORS.get(method), alpha=0.25, lw=1)
                index = np.searchsorted(np.array(times), grid, side="right") - 1
                series.append(np.where(index >= 0, np.array(values)[index.clip(0)], np.nan))
            if series:
                stacked = np.array(series)
                med = np.median(stacked, axis=0)  # NaN until every seed has a value
                ax.plot(
                    grid,
                    med,
                    color=COLORS.get(method),
                    ls=STYLES.get(method, "-"),
                    lw=2.2,
                    label=method,
                    zorder=3 if method in STYLES else 2,
                )
        ax.axhline(target, color="gray", ls="--", lw=1)
        ax.text(budget * 0.01, target, f" target {target}", va="bottom", fontsize=8, color="gray")
        ax.set_ylim(target - 0.10, 1.005)
        ax.set_xlim(0, budget)
        ax.set_title(dataset)
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("best validation accuracy so far")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(datasets) :]:
        ax.axis("off")
    axes.flat[0].legend(loc="lower right")
    fig.suptitle(
        f"Best-so-far validation accuracy, {budget:g} s per run\n"
        "thin: each seed; thick: median over seeds"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def versions() -> str:
    from autotune.versions import versions as of

    found = of(("autotune", "optuna", "tensorflow", "keras", "keras-tuner"))
    return ", ".join(
        f"{package} {version}" for package, version in found.items() if package != "python"
    )


def report(
    runs: list[dict[str, Any]], meta: dict[str, Any], notes: str = "", rewritten: str = ""
) -> str:
    """The markdown report; ``notes`` (markdown) goes after the automatic list of losses."""
    datasets, methods, budget = meta["datasets"], meta["methods"], meta["budget"]
    table, medians = summary_rows(runs, datasets, methods)
    splits = {
        d: sorted({r["split"] for r in runs if r["dataset"] == d and "split" in r})
        for d in datasets
    }
    sizes = {
        d: next((r["sizes"] for r in runs if r["dataset"] == d and "sizes" in r), {})
        for d in datasets
    }
    max_epochs = {
        d: next((r["max_epochs"] for r in runs if r["dataset"] == d and "max_epochs" in r), "?")
        for d in datasets
    }
    data_lines = [
        f"- {d}: max_epochs {max_epochs[d]}, split train/val/test"
        f" {'/'.join(str(n) for n in sizes[d].values())}, target {TARGETS[d]},"
        f" split fingerprint {', '.join(splits[d])}"
        + (" (the same for every run)" if len(splits[d]) == 1 else " (DIFFERS between runs)")
        for d in datasets
    ]
    text = "\n".join(
        [
            "# Search quality: autotune against plain Optuna, random search and KerasTuner",
            "",
            f"Each run searches one shipped MLP study for {budget:g} s of wall time. Medians over"
            f" {meta['n_seeds']} seeds per data set; the methods of one (data set, seed) ran back to"
            " back, each in a fresh process, in an order rotated per seed.",
            "",
            f"Command: `{meta['command']}`",
            "",
            *(
                [f"Report rewritten from the saved runs (same figures) with `{rewritten}`.", ""]
                if rewritten
                else []
            ),
            f"Machine: {meta['machine']}.",
            "",
            f"Versions: {meta['versions']}.",
            "",
            f"Started {meta['started']}, took {meta['minutes']:.0f} min.",
            "",
            "## Results (medians over seeds)",
            "",
            *table,
            "",
            "- *best val acc at budget*: the best trial value among trials finished within the"
            " budget, as each method scores a trial (see below).",
            "- *test acc of that config*: the best configuration found within the budget, scored"
            " once on the held-out test split (how, per method, below).",
            "- *time to target*: wall time from the start of the search until the first finished"
            " trial whose value reaches the target; the median counts a seed that never reached it as"
            ' infinite, so "not reached" means at most half the seeds reached it.',
            "- *trials*: trials finished within the budget (autotune: complete and pruned;"
            " KerasTuner: each Hyperband round of a configuration counts as a trial, as KerasTuner"
            " counts them). *epochs*: epochs of those trials.",
            "",
            "![best-so-far validation accuracy against time](search.png)",
            "",
            "## The targets",
            "",
            "autotune reaches the target validation accuracy in at most half the time of the plain"
            " Optuna script and of KerasTuner's Hyperband on moons and digits, and its held-out test"
            " accuracy at the budget is not below theirs. On the medians, then seed by seed (autotune's"
            " figure first):",
            "",
            *claim_lines(runs, medians, datasets, methods),
            "",
            "## Where autotune loses",
            "",
            *loss_lines(runs, medians, datasets, methods),
            "",
            *([notes, ""] if notes else []),
            "## How the methods ran",
            "",
            "Same for all: the study's `[data]` table loaded by `autotune.data.load` (the same"
            " train/validation/test arrays for every method, split with the study's fixed data seed;"
            " the run's seed seeds only the samplers, tuners and weights), the MLP family's default"
            " space from the shipped study (`spec.space`), the study's `max_epochs`, the same"
            " budget. Every run is a fresh process that imports TensorFlow and loads the data before"
            " its clock starts; the clock then covers everything the method does (creating the"
            " study or tuner, building, training, storage). A trial counts only if it finished within"
            " the budget.",
            "",
            "- **autotune**: `autotune.run(spec, storage=<fresh SQLite file>, timeout=budget,"
            " n_trials=10**6, seed=seed, echo=None)`: the study's TPE sampler, Hyperband pruner"
            " (1 to max_epochs, factor 3) and early stopping (patience 10, best weights restored). A"
            " trial's value is its best epoch's validation accuracy. autotune starts no trial after"
            " the timeout and lets the running one finish; that trial finishes after the budget and"
            " does not count. Test: `autotune.best.retrain` of the best trial finished within the budget"
            " (the best trial retrained on train with its seed and schedule for its best epoch's"
            " count, as `autotune best` does), scored on test.",
            '- **optuna**: the textbook script: `optuna.create_study(direction="maximize",'
            " sampler=TPESampler(seed=seed))` (in memory), no pruner, `study.optimize(objective,"
            " timeout=budget)`; the objective samples with `autotune.space.sample`, builds with"
            ' `autotune.models.FAMILIES["mlp"].build`, compiles with'
            " `autotune.optimizers.make_optimizer` (same decay schedules) and sparse categorical"
            " cross-entropy, and runs `model.fit(x_train, y_train, validation_data=(x_val, y_val),"
            " epochs=max_epochs, batch_size=...)` on the NumPy arrays; the value is the final"
            " epoch's `val_accuracy`. Each trial seeds its weights with `keras.utils.set_random_seed`."
            " A callback that only acts after the budget stops the running trial's training then"
            " (it would not count anyway), to keep the benchmark short. Test: the best trial"
            " retrained by the same code (same seed, same epochs), scored on test.",
            "- **random**: the same script with `RandomSampler(seed=seed)`.",
            '- **kerastuner**: `keras_tuner.Hyperband(hypermodel, objective="val_accuracy",'
            " max_epochs=max_epochs, factor=3, hyperband_iterations=10**6, seed=seed)`;"
            " the hypermodel declares the same space on KerasTuner's `hp` (`Float`/`Int` with"
            ' `sampling="log"` where autotune\'s range is log, `Choice`, `Boolean` for batchnorm,'
            " the conditional parameters through `parent_name`/`parent_values`), builds and compiles"
            " the model with the same builder and optimizer factory, and its `fit` passes the"
            " sampled `batch_size`. `tuner.search(x_train, y_train, validation_data=(x_val, y_val),"
            " callbacks=[...])` on the arrays. KerasTuner has no timeout: a callback sets"
            " `model.stop_training` once the budget is spent, and the tuner's `on_trial_end` then"
            " sets the oracle's `max_trials` to the trials it holds, so the oracle stops the search."
            " A trial's value is KerasTuner's score, its best epoch's `val_accuracy`. Test: the"
            " tuner's own best model of that trial (`tuner.load_model`: the weights KerasTuner saved"
            " at the trial's best epoch), scored on test.",
            "",
            "Data sets:",
            "",
            *data_lines,
            "",
            "## How much comes from scoring a trial by its best epoch",
            "",
            "autotune and KerasTuner score a trial by its best epoch; the textbook script by its"
            " last. The plain scripts' time to target, median, under both scorings:",
            "",
            *sensitivity_lines(medians, datasets),
            "",
            "## Where the time goes",
            "",
            "A trial's duration is the time since the previous trial finished (one worker), the"
            " first trial of each run left out; medians pooled over seeds. *s per epoch* is the"
            " budget over the epochs of the trials that finished within it, so it includes every"
            " per-trial cost.",
            "",
            *cost_lines(runs, datasets, methods),
            "",
            "## Every run",
            "",
            "*retrained val acc*: the validation accuracy of the model that was scored on test (for"
            " autotune and the plain scripts a retrained one, so it shows how well the retrain"
            " reproduces the trial). *search wall*: from the start of the search to its end,"
            " including the trial that was running at the budget.",
            "",
            *raw_lines(runs),
            "",
        ]
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets",
        default=",".join(DATASETS),
        help=f"comma-separated, from {', '.join(DATASETS)}",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 per data set")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of search per run")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated, from {', '.join(METHODS)}"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks"))
    parser.add_argument(
        "--report-only",
        type=Path,
        metavar="JSON",
        help="rewrite search.md and search.png from a saved search.json",
    )
    parser.add_argument(
        "--notes",
        type=Path,
        metavar="MARKDOWN",
        help="a reading of the results, put after the list of losses",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("METHOD", "DATASET", "SEED"), help=argparse.SUPPRESS
    )
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        method, dataset, seed = args.child
        child(method, dataset, int(seed), args.budget, args.result)
        return

    if args.report_only:
        saved = json.loads(args.report_only.read_text())
        runs, meta = saved["runs"], saved["meta"]
    else:
        datasets = args.datasets.split(",")
        methods = args.methods.split(",")
        for name, allowed in ((datasets, DATASETS), (methods, tuple(METHODS))):
            unknown = sorted(set(name) - set(allowed))
            if unknown:
                parser.error(f"unknown {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        meta = {
            "datasets": datasets,
            "methods": methods,
            "budget": args.budget,
            "n_seeds": args.seeds,
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python"
            f" {platform.python_version()}",
            "versions": versions(),
            "started": datetime.now().isoformat(timespec="seconds"),
        }
        total = len(datasets) * args.seeds * len(methods)
        print(
            f"{total} runs of {args.budget:g} s each: at least {total * args.budget / 60:.0f} min",
            flush=True,
        )
        runs = []
        start = time.perf_counter()
        args.out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            for dataset in datasets:
                for seed in range(args.seeds):
                    shift = seed % len(methods)
                    order = methods[shift:] + methods[:shift]
                    for position, method in enumerate(order, 1):
                        run = one_run(method, dataset, seed, args.budget, Path(folder))
                        run["order"] = position
                        runs.append(run)
                        f = derive(run)
                        print(
                            f"{dataset:<13} seed {seed} {method:<10} "
                            + (
                                f"FAILED {f['error']}"
                                if "error" in f
                                else f"best val {fmt(f['best_val'])} test {fmt(f['test'])}"
                                f" target at {fmt_time(f['t_target'])} s, {f['trials']} trials,"
                                f" {f['epochs']} epochs, search {f['wall']:.1f} s"
                            )
                            + f" (process {run['process_seconds']:.1f} s)",
                            flush=True,
                        )
                        meta["minutes"] = (time.perf_counter() - start) / 60
                        (args.out_dir / "search.json").write_text(
                            json.dumps({"meta": meta, "runs": runs}) + "\n"
                        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    notes = args.notes.read_text().strip() if args.notes else ""
    rewritten = "python " + " ".join(shlex.quote(a) for a in sys.argv) if args.report_only else ""
    text = report(runs, meta, notes, rewritten)
    (args.out_dir / "search.md").write_text(text)
    plot(runs, meta["datasets"], meta["methods"], meta["budget"], args.out_dir / "search.png")
    print(text)
    print(f"wrote {args.out_dir / 'search.md'} and {args.out_dir / 'search.png'}")


if __name__ == "__main__":
    main()
