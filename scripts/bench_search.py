"""Search quality: how fast autotune finds a good model against the peers a skilled user would
pick, on the same data, space, epochs and wall-clock budget.

The methods search one shipped study (its ``[data]`` split, its family's space, its
``max_epochs``, its metric and direction) for the same number of seconds, one trial at a time:

- ``autotune``: ``autotune.run`` with the study's own settings (TPE after 10 random
  start-up trials, Hyperband pruning, early stopping), on a fresh SQLite storage.
- ``optuna-skilled``: Optuna done well by hand, as its documentation teaches: ``TPESampler``,
  ``HyperbandPruner`` fed each epoch by optuna-integration's ``KerasPruningCallback``, Keras
  ``EarlyStopping`` with the study's patience restoring the best weights, ``model.fit`` on the
  NumPy arrays, ``study.optimize(timeout=budget)``.
- ``optuna``: the textbook script: TPE, no pruning, every trial trained for ``max_epochs`` and
  scored by its last epoch. ``random``: the same with ``RandomSampler``.
- ``kerastuner``: ``keras_tuner.Hyperband(max_epochs, factor=3)``; ``kerastuner-bo``:
  ``keras_tuner.BayesianOptimization`` with its default initial points. Both on a KerasTuner
  translation of the same space, with ``EarlyStopping`` (the study's patience) passed to
  ``search`` as KerasTuner's documentation shows.
- ``ray``: Ray Tune's ``ASHAScheduler`` with its ``OptunaSearch`` (``scripts/search_ray.py``),
  where Ray installs.

Every run is a fresh process that imports TensorFlow and loads the data before its clock
starts; the methods of one (study, seed) run back to back, in an order rotated per seed. A run
records each finished trial's wall time and validation value: the anytime curve (best-so-far
validation value against wall time), the best value at the budget, the time to a target and
the area under the normalized regret curve follow. The configuration that was best at 1/8,
1/4, 1/2 and all of the budget is then scored once on the held-out test split (retrained as
each method retrains, outside the clock), which gives the test score of the best-so-far
configuration against time. Writes ``NAME.md``, ``NAME.json`` (every run, raw) and one
``NAME-STUDY.png`` per study into ``--out-dir``.

Example:

    python scripts/bench_search.py                      # the full run (hours)
    python scripts/bench_search.py --quick              # under 10 minutes, same tables
    python scripts/bench_search.py --budget 20 --seeds 1 --studies moons --methods autotune,optuna-skilled
    python scripts/bench_search.py --report-only benchmarks/search.json
"""

from __future__ import annotations

import argparse
import dataclasses
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

STUDIES = (
    "circles",
    "moons",
    "digits",
    "breast_cancer",
    "digits_cnn",
    "noisy_features",
    "friedman",
)
# Validation value each method must reach: near each study's best, below its ceiling. For a
# metric to minimize (friedman's val_mae), reaching means at or below.
TARGETS = {
    "circles": 0.99,
    "moons": 0.90,
    "digits": 0.95,
    "breast_cancer": 0.97,
    "digits_cnn": 0.97,
    "noisy_features": 0.75,
    "friedman": 1.25,
}
# The studies where a budget outlasts the random start-up, and the full run's settings: 100
# runs of about 80 s each (the budget, then start-up and scoring outside it), over 2 hours on
# 2 cores; at 120 s it would take over 4 hours.
FULL = {
    "studies": ("moons", "noisy_features", "friedman", "digits_cnn"),
    "seeds": 5,
    "budget": 60.0,
    "methods": (
        "autotune",
        "optuna-skilled",
        "kerastuner",
        "kerastuner-bo",
        "ray",
    ),
}
# Ray is left out of the quick run: its first trial (never stopped, as ASHA has nothing to
# compare it with) trains max_epochs epochs and does not finish in 15 s.
QUICK = {
    "studies": ("noisy_features", "friedman"),
    "seeds": 2,
    "budget": 15.0,
    "methods": ("autotune", "optuna-skilled", "kerastuner", "kerastuner-bo"),
}
# The fractions of the budget at which the best configuration so far is scored on test.
CHECKS = (0.125, 0.25, 0.5, 1.0)
# So many trials that only the budget ends a run.
UNLIMITED = 10**6
# Methods that are autotune itself: the claim compares autotune against every other method.
# autotune-sobol is a saved run's variant (see benchmarks/search.md), not a method to run.
OWN = ("autotune", "autotune-sobol")


# --- shared by the methods (in the child process) -------------------------------------------


@dataclasses.dataclass(frozen=True)
class Goal:
    """The study's metric as Keras logs it, and which way is better."""

    metric: str  # val_accuracy, val_mae, val_loss
    direction: str  # maximize or minimize

    @property
    def key(self) -> str:
        """The metric's name in ``model.evaluate``'s results."""
        return self.metric.removeprefix("val_")

    @property
    def mode(self) -> str:
        return "max" if self.direction == "maximize" else "min"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

    def best(self, values: list[float]) -> float:
        return max(values) if self.direction == "maximize" else min(values)

    def best_index(self, values: list[float]) -> int:
        return values.index(self.best(values))


def goal_of(spec: Any) -> Goal:
    return Goal(spec.metric, spec.direction)


def compiled_model(
    params: dict[str, Any], dataset: Any, max_epochs: int, family: str = "mlp"
) -> tuple[Any, int]:
    """The model for ``params``, compiled as a user compiles it; returns it and its batch size.

    The same family builder, optimizer factory (with decay), loss and metrics as autotune's
    trials.
    """
    from autotune.models import FAMILIES
    from autotune.optimizers import make_optimizer
    from autotune.trial import _LOSSES, batch_size_for

    n_train = len(dataset.x_train)
    batch_size = batch_size_for(params, n_train)
    model = FAMILIES[family].build(params, dataset.input_shape, dataset.n_outputs)
    loss, metrics = _LOSSES[dataset.task]
    model.compile(
        optimizer=make_optimizer(params, math.ceil(n_train / batch_size), max_epochs),
        loss=loss,
        metrics=metrics,
    )
    return model, batch_size


def fit_model(
    params: dict[str, Any],
    spec: Any,
    dataset: Any,
    seed: int,
    number: int,
    epochs: int,
    callbacks: list[Any],
) -> tuple[Any, Any]:
    """A user's fit of one trial: Keras' state cleared, the weights seeded by the run's seed and
    the trial number, ``model.fit`` on the NumPy arrays; returns the model and its history."""
    import keras

    from autotune.trial import trial_seed

    keras.backend.clear_session()
    keras.utils.set_random_seed(trial_seed(seed, number))
    model, batch_size = compiled_model(params, dataset, spec.max_epochs, spec.model)
    history = model.fit(
        dataset.x_train,
        dataset.y_train,
        validation_data=(dataset.x_val, dataset.y_val),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        callbacks=callbacks,
    )
    return model, history


def scores(model: Any, dataset: Any, key: str = "accuracy") -> dict[str, float]:
    """The metric ``key`` on the validation and the test split."""
    out = {}
    for split, x, y in (
        ("val", dataset.x_val, dataset.y_val),
        ("test", dataset.x_test, dataset.y_test),
    ):
        out[split] = float(model.evaluate(x, y, verbose=0, return_dict=True)[key])
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


def early_stopping(spec: Any, goal: Goal) -> Any:
    """Keras' EarlyStopping with the study's patience, back to the best epoch's weights."""
    import keras

    return keras.callbacks.EarlyStopping(
        monitor=goal.metric, mode=goal.mode, patience=spec.patience, restore_best_weights=True
    )


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
                "best_epoch": attrs.get("best_epoch"),
                "epochs": int(attrs.get("epochs", 0)),
                "params": t.params,
            }
        )
    return out


# A method returns its finished trials, its search's wall time, and a scorer: the test (and
# retrained validation) score of one of its trials, computed after the search, off the clock.
Scorer = Callable[[dict[str, Any]], dict[str, float]]


def run_autotune(
    name: str, spec: Any, dataset: Any, seed: int, budget: float, folder: Path
) -> tuple[list[dict[str, Any]], float, Scorer]:
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
    key = goal_of(spec).key

    def scorer(trial: dict[str, Any]) -> dict[str, float]:
        # autotune's own retrain: the trial's params, seed and schedule, for its best epoch.
        model = best_module.retrain(study, study.trials[trial["id"]])
        return {
            "trained_epochs": model.epochs,
            "retrain_val": model.validation[key],
            "test": model.test[key],
        }

    return optuna_trials(study, t0), wall, scorer


def run_optuna(
    name: str, spec: Any, dataset: Any, seed: int, budget: float, folder: Path
) -> tuple[list[dict[str, Any]], float, Scorer]:
    """``optuna``, ``random`` (the textbook script) and ``optuna-skilled``."""
    import optuna

    from autotune.space import sample

    goal = goal_of(spec)
    skilled = name == "optuna-skilled"
    max_epochs = spec.max_epochs

    def objective(trial: Any) -> float:
        params = sample(spec.space, trial)
        budget_stop = budget_callback(deadline)
        callbacks = [budget_stop]
        if skilled:
            from optuna_integration import KerasPruningCallback

            callbacks = [
                KerasPruningCallback(trial, goal.metric),
                early_stopping(spec, goal),
                *callbacks,
            ]
        before = _EPOCHS[0]
        try:
            _, history = fit_model(params, spec, dataset, seed, trial.number, max_epochs, callbacks)
        finally:
            trial.set_user_attr("epochs", _EPOCHS[0] - before)
        values = history.history[goal.metric]
        best = goal.best_index(values)
        trial.set_user_attr("best_epoch_value", values[best])
        trial.set_user_attr("best_epoch", best + 1)
        if budget_stop.cut:
            trial.set_user_attr("cut", True)
            raise optuna.TrialPruned("the budget is spent")
        # Early stopping restored the best epoch's weights; the textbook script keeps the last.
        return values[best] if skilled else values[-1]

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if name == "random":
        sampler: Any = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    pruner = (
        optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs, reduction_factor=3)
        if skilled
        else optuna.pruners.NopPruner()
    )
    t0 = datetime.now()
    deadline = time.monotonic() + budget
    study = optuna.create_study(direction=goal.direction, sampler=sampler, pruner=pruner)
    study.optimize(objective, timeout=budget)
    wall = (datetime.now() - t0).total_seconds()

    def scorer(trial: dict[str, Any]) -> dict[str, float]:
        # The same code path as the trial, same seed; the skilled script's model is the one at
        # its best epoch (retrained for that many epochs), the textbook one all epochs.
        epochs = trial["best_epoch"] if skilled else max_epochs
        model, _ = fit_model(trial["params"], spec, dataset, seed, trial["id"], epochs, [])
        return {"trained_epochs": epochs, **_renamed(scores(model, dataset, goal.key))}

    return optuna_trials(study, t0), wall, scorer


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
) -> tuple[list[dict[str, Any]], float, Scorer]:
    """``kerastuner`` (Hyperband) and ``kerastuner-bo`` (BayesianOptimization)."""
    import keras
    import keras_tuner

    from autotune.trial import batch_size_for

    goal = goal_of(spec)
    keras.utils.set_random_seed(seed)
    trials: list[dict[str, Any]] = []

    class Model(keras_tuner.HyperModel):
        def build(self, hp: Any) -> Any:
            params = kerastuner_space(spec.space, hp)
            return compiled_model(params, dataset, spec.max_epochs, spec.model)[0]

        def fit(self, hp: Any, model: Any, *args: Any, **kwargs: Any) -> Any:
            batch_size = batch_size_for({"batch_size": hp.get("batch_size")}, len(dataset.x_train))
            return model.fit(*args, batch_size=batch_size, **kwargs)

    base = keras_tuner.BayesianOptimization if name == "kerastuner-bo" else keras_tuner.Hyperband

    class Budgeted(base):  # type: ignore[misc, valid-type]
        """The tuner, starting no trial once the budget is spent, recording each trial."""

        def on_trial_begin(self, trial: Any) -> None:
            self._epochs_before = _EPOCHS[0]
            super().on_trial_begin(trial)

        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            ended = self.oracle.get_trial(trial.trial_id)
            values = ended.hyperparameters.values
            complete = ended.status == "COMPLETED" and ended.score is not None
            after = time.monotonic() >= deadline
            score = float(ended.score) if complete else None
            trials.append(
                {
                    "id": ended.trial_id,
                    "t": (datetime.now() - t0).total_seconds(),
                    "state": ("cut" if after else "complete") if complete else "failed",
                    "value": score,
                    "best_epoch_value": score,
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
    common = {
        "objective": keras_tuner.Objective(goal.metric, direction=goal.mode),
        "seed": seed,
        "directory": str(folder),
        "project_name": "kt",
        "overwrite": True,
    }
    if name == "kerastuner-bo":
        tuner = Budgeted(Model(), max_trials=UNLIMITED, **common)
    else:
        tuner = Budgeted(
            Model(), max_epochs=spec.max_epochs, factor=3, hyperband_iterations=UNLIMITED, **common
        )
    epochs = {} if name == "kerastuner" else {"epochs": spec.max_epochs}
    tuner.search(
        dataset.x_train,
        dataset.y_train,
        validation_data=(dataset.x_val, dataset.y_val),
        callbacks=[early_stopping(spec, goal), budget_callback(deadline)],
        verbose=0,
        **epochs,
    )
    wall = (datetime.now() - t0).total_seconds()

    def scorer(trial: dict[str, Any]) -> dict[str, float]:
        # KerasTuner's own best model: the trial's weights at its best epoch, as it saved them.
        model = tuner.load_model(tuner.oracle.get_trial(trial["id"]))
        return _renamed(scores(model, dataset, goal.key))

    return trials, wall, scorer


def run_ray(
    name: str, spec: Any, dataset: Any, seed: int, budget: float, folder: Path
) -> tuple[list[dict[str, Any]], float, Scorer]:
    sys.path.insert(0, str(Path(__file__).parent))
    from search_ray import run_ray as run

    return run(name, spec, dataset, seed, budget, folder)


METHODS: dict[str, Callable[..., tuple[list[dict[str, Any]], float, Scorer]]] = {
    "autotune": run_autotune,
    "optuna-skilled": run_optuna,
    "kerastuner": run_kerastuner,
    "kerastuner-bo": run_kerastuner,
    "ray": run_ray,
    "optuna": run_optuna,
    "random": run_optuna,
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


def incumbents(trials: list[dict[str, Any]], budget: float, goal: Goal) -> dict[float, Any]:
    """The best complete trial finished within each checked fraction of the budget (the first
    one on ties), or None before any."""
    out: dict[float, Any] = {}
    for fraction in CHECKS:
        best = None
        for t in sorted(trials, key=lambda t: t["t"]):
            if t["state"] == "complete" and t["t"] <= fraction * budget:
                if best is None or goal.better(t["value"], best["value"]):
                    best = t
        out[fraction] = best
    return out


def child(method: str, study: str, seed: int, budget: float, result_path: Path) -> None:
    """One run, in its own process: writes its JSON result to ``result_path``."""
    warnings.filterwarnings("ignore")
    from autotune import data
    from autotune.backend import setup
    from autotune.spec import resolve

    setup()  # TensorFlow imported (and its start-up time spent) before the clock starts
    import keras

    keras.utils.disable_interactive_logging()
    spec = resolve(study)
    dataset = data.load(spec.data)
    goal = goal_of(spec)
    with tempfile.TemporaryDirectory() as folder:
        trials, wall, scorer = METHODS[method](method, spec, dataset, seed, budget, Path(folder))
        scored: dict[Any, dict[str, float]] = {}
        checks = []
        for fraction, trial in incumbents(trials, budget, goal).items():
            if trial is not None and trial["id"] not in scored:
                scored[trial["id"]] = scorer(trial)
            checks.append(
                {"at": fraction, "id": None if trial is None else trial["id"]}
                | (scored[trial["id"]] if trial is not None else {})
            )
    result = {
        "trials": trials,
        "wall": wall,
        "checks": checks,
        "method": method,
        "study": study,
        "seed": seed,
        "budget": budget,
        "metric": goal.metric,
        "direction": goal.direction,
        "max_epochs": spec.max_epochs,
        "split": split_fingerprint(dataset),
        "sizes": dataset.sizes(),
        "epochs_counted": _EPOCHS[0],
    }
    if method == "ray":
        from search_ray import STARTUP

        result["ray_startup"] = STARTUP[-1]  # Ray's own start-up, off the clock
    result_path.write_text(json.dumps(result))


# --- the parent: runs, figures, report ------------------------------------------------------


def one_run(method: str, study: str, seed: int, budget: float, folder: Path) -> dict[str, Any]:
    path = folder / f"{study}-{seed}-{method}.json"
    command = [
        sys.executable,
        __file__,
        "--child",
        method,
        study,
        str(seed),
        "--budget",
        str(budget),
        "--result",
        str(path),
    ]
    start = time.perf_counter()
    # A failed or hung run is recorded as failed; the other runs go on.
    try:
        done = subprocess.run(
            command, stdout=subprocess.DEVNULL, check=False, timeout=3 * budget + 300
        )
        code: Any = done.returncode
    except subprocess.TimeoutExpired:
        code = "timeout"
    seconds = time.perf_counter() - start
    if code != 0 or not path.exists():
        return {
            "method": method,
            "study": study,
            "seed": seed,
            "budget": budget,
            "error": f"exit code {code}",
            "process_seconds": seconds,
        }
    result = json.loads(path.read_text())
    result["process_seconds"] = seconds
    return result


def goal_of_run(run: dict[str, Any]) -> Goal:
    return Goal(run["metric"], run["direction"])


def best_so_far(run: dict[str, Any]) -> list[tuple[float, float]]:
    """(time, best validation value so far) at each finished trial that improved it, within
    the budget."""
    goal, points = goal_of_run(run), []
    for t in sorted(run.get("trials", []), key=lambda t: t["t"]):
        if t["state"] == "complete" and t["t"] <= run["budget"]:
            if not points or goal.better(t["value"], points[-1][1]):
                points.append((t["t"], t["value"]))
    return points


def reaches(value: float | None, target: float, goal: Goal) -> bool:
    if value is None:
        return False
    return value >= target - 1e-9 if goal.direction == "maximize" else value <= target + 1e-9


@dataclasses.dataclass(frozen=True)
class Scale:
    """A study's regret scale over every run of it: the best value any run found, and the median
    of every complete trial's value (a typical configuration), as the regret's 0 and 1."""

    best: float
    typical: float

    def regret(self, value: float | None) -> float:
        if value is None or self.best == self.typical:
            return 1.0
        return min(1.0, max(0.0, (self.best - value) / (self.best - self.typical)))


def scales(runs: list[dict[str, Any]]) -> dict[str, Scale]:
    out = {}
    for study in {r["study"] for r in runs if "error" not in r}:
        chosen = [r for r in runs if r["study"] == study and "error" not in r]
        goal = goal_of_run(chosen[0])
        values = [
            t["value"]
            for r in chosen
            for t in r["trials"]
            if t["state"] == "complete" and t["t"] <= r["budget"]
        ]
        if values:
            out[study] = Scale(goal.best(values), statistics.median(values))
    return out


def regret_area(run: dict[str, Any], scale: Scale) -> float:
    """The mean normalized regret of the best-so-far value over the budget (0: the best value
    of the study from the first second; 1: never better than a typical configuration)."""
    budget, area, previous, regret = run["budget"], 0.0, 0.0, 1.0
    for t, value in best_so_far(run):
        area += regret * (t - previous)
        previous, regret = t, scale.regret(value)
    return (area + regret * (budget - previous)) / budget


def derive(run: dict[str, Any], scale: Scale | None = None) -> dict[str, Any]:
    """The figures of one run, counting only what finished within its budget."""
    if "error" in run:
        return {"error": run["error"]}
    goal, budget, target = goal_of_run(run), run["budget"], TARGETS[run["study"]]
    within = [t for t in run["trials"] if t["t"] <= budget]
    complete = [t for t in within if t["state"] == "complete"]

    def first_reaching(key: str) -> float:
        hits = [t["t"] for t in complete if reaches(t[key], target, goal)]
        return min(hits) if hits else math.inf

    final = run["checks"][-1]
    return {
        "best_val": goal.best([t["value"] for t in complete]) if complete else None,
        "test": final.get("test"),
        "retrain_val": final.get("retrain_val"),
        "t_target": first_reaching("value"),
        "t_target_best_epoch": first_reaching("best_epoch_value"),
        "regret": None if scale is None else regret_area(run, scale),
        "trials": sum(t["state"] in ("complete", "pruned") for t in within),
        "failed": sum(t["state"] == "failed" for t in within),
        "epochs": sum(t["epochs"] for t in within),
        "wall": run["wall"],
    }


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return "not reached" if math.isinf(seconds) else f"{seconds:.1f}"


def target_text(study: str, direction: str) -> str:
    return f"{'≥' if direction == 'maximize' else '≤'} {TARGETS[study]}"


class Results:
    """Every run of a benchmark and the figures derived from them."""

    def __init__(self, runs: list[dict[str, Any]], meta: dict[str, Any]) -> None:
        self.runs, self.meta = runs, meta
        self.studies: list[str] = meta["studies"]
        self.methods: list[str] = meta["methods"]
        self.seeds = sorted({r["seed"] for r in runs})
        self.scales = scales(runs)
        self.by = {
            (r["study"], r["method"], r["seed"]): derive(r, self.scales.get(r["study"]))
            for r in runs
        }
        self.goals = {r["study"]: goal_of_run(r) for r in runs if "error" not in r}
        self.medians = {(s, m): self._median(s, m) for s in self.studies for m in self.methods}

    def seed_count(self, study: str) -> int:
        """How many seeds ``study`` ran (the runs may come from several sittings)."""
        return len({r["seed"] for r in self.runs if r["study"] == study})

    def seeds_text(self) -> str:
        """How many seeds each study ran (one figure when all ran as many)."""
        counts = {s: self.seed_count(s) for s in self.studies}
        if len(set(counts.values())) == 1:
            return f"{next(iter(counts.values()))} seed(s) per study"
        return "seeds per study: " + ", ".join(f"{s} {n}" for s, n in counts.items())

    def chosen(self, study: str, method: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.runs
            if r["study"] == study and r["method"] == method and "error" not in r
        ]

    def _median(self, study: str, method: str) -> dict[str, Any] | None:
        figures = [self.by[(study, method, s)] for s in self.seeds if (study, method, s) in self.by]
        ok = [f for f in figures if "error" not in f]
        if not ok:
            return None
        times = [f["t_target"] for f in ok]
        return {
            "best_val": median([f["best_val"] for f in ok]),
            "test": median([f["test"] for f in ok]),
            "t_target": statistics.median(times),
            "t_target_best_epoch": statistics.median(f["t_target_best_epoch"] for f in ok),
            "reached": sum(not math.isinf(t) for t in times),
            "runs": len(ok),
            "failed_runs": len(figures) - len(ok),
            "regret": median([f["regret"] for f in ok]),
            "trials": median([f["trials"] for f in ok]),
            "epochs": median([f["epochs"] for f in ok]),
        }

    def summary_lines(self) -> list[str]:
        lines = [
            "| study (target) | method | best val at budget | test of that config"
            " | time to target (s) | reached | area under regret | trials | epochs |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for study in self.studies:
            goal = self.goals.get(study)
            for method in self.methods:
                m = self.medians.get((study, method))
                if not m or goal is None:
                    continue
                lines.append(
                    f"| {study} ({goal.metric} {target_text(study, goal.direction)}) | {method}"
                    f" | {fmt(m['best_val'])} | {fmt(m['test'])} | {fmt_time(m['t_target'])}"
                    f" | {m['reached']}/{m['runs']}"
                    + (f" ({m['failed_runs']} failed)" if m["failed_runs"] else "")
                    + f" | {fmt(m['regret'], 3)} | {m['trials']:.0f} | {m['epochs']:.0f} |"
                )
        return lines

    def compare(
        self, study: str, mine: dict[str, Any], theirs: dict[str, Any]
    ) -> tuple[bool, bool]:
        """Whether ``mine`` reaches the target in at most half the time of ``theirs`` (as the
        report rounds times), and whether its test score is not below theirs (as rounded)."""
        goal = self.goals[study]
        a, b = _seconds(mine["t_target"]), _seconds(theirs["t_target"])
        time_ok = not math.isinf(a) and a <= 0.5 * b
        x, y = _rounded(mine["test"]), _rounded(theirs["test"])
        test_ok = x is not None and (y is None or x == y or goal.better(x, y))
        return time_ok, test_ok

    def claim_lines(self) -> list[str]:
        """The targets, on the medians and seed by seed: autotune reaches the target in at most
        half the time of every peer, and its test score is not below theirs."""
        lines = []
        for study in self.studies:
            for other in [m for m in self.methods if m not in OWN]:
                mine, theirs = (
                    self.medians.get((study, "autotune")),
                    self.medians.get((study, other)),
                )
                if not mine or not theirs:
                    continue
                time_ok, test_ok = self.compare(study, mine, theirs)
                pairs = [
                    (self.by.get((study, "autotune", s)), self.by.get((study, other, s)))
                    for s in self.seeds
                ]
                pairs = [
                    (a, o) for a, o in pairs if a and o and "error" not in a and "error" not in o
                ]
                verdicts = [self.compare(study, a, o) for a, o in pairs]
                lines.append(
                    f"| {study} | {other} | {fmt_time(mine['t_target'])} vs"
                    f" {fmt_time(theirs['t_target'])} | {'met' if time_ok else 'NOT met'}"
                    f" | {sum(v[0] for v in verdicts)}/{len(pairs)}"
                    f" | {fmt(mine['test'])} vs {fmt(theirs['test'])}"
                    f" | {'met' if test_ok else 'NOT met'} | {sum(v[1] for v in verdicts)}/{len(pairs)} |"
                )
        if not lines:
            return []
        return [
            "| study | peer | time to target, autotune vs peer (s) | ≤ 0.5x | seeds ≤ 0.5x"
            " | test, autotune vs peer | not below | seeds not below |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *lines,
        ]

    def ablation_lines(self) -> list[str]:
        lines = []
        for study in self.studies:
            new, old = (
                self.medians.get((study, "autotune")),
                self.medians.get((study, "autotune-sobol")),
            )
            if not new or not old:
                continue
            lines.append(
                f"| {study} | {fmt_time(new['t_target'])} vs {fmt_time(old['t_target'])}"
                f" | {fmt(new['regret'], 3)} vs {fmt(old['regret'], 3)}"
                f" | {fmt(new['best_val'])} vs {fmt(old['best_val'])}"
                f" | {fmt(new['test'])} vs {fmt(old['test'])} |"
            )
        if not lines:
            return []
        return [
            "## autotune against its Sobol start-up",
            "",
            "The notes below say how `autotune-sobol` ran.",
            "",
            "| study | time to target (s), autotune vs autotune-sobol | area under regret"
            " | best val | test |",
            "| --- | --- | --- | --- | --- |",
            *lines,
        ]

    def checks_lines(self) -> list[str]:
        """The test score of the best configuration so far at each checked fraction."""
        header = " | ".join(f"{f * self.meta['budget']:g} s" for f in CHECKS)
        lines = [
            f"| study | method | {header} |",
            "| --- | --- |" + " --- |" * len(CHECKS),
        ]
        for study in self.studies:
            for method in self.methods:
                chosen = self.chosen(study, method)
                if not chosen:
                    continue
                cells = [
                    fmt(median([r["checks"][i].get("test") for r in chosen]))
                    for i in range(len(CHECKS))
                ]
                lines.append(f"| {study} | {method} | {' | '.join(cells)} |")
        return lines

    def sensitivity_lines(self) -> list[str]:
        lines = []
        for study in self.studies:
            for method in ("optuna", "random"):
                m = self.medians.get((study, method))
                if m:
                    lines.append(
                        f"| {study} | {method} | {fmt_time(m['t_target'])}"
                        f" | {fmt_time(m['t_target_best_epoch'])} |"
                    )
        if not lines:
            return []
        return [
            "The textbook script scores a trial by its last epoch; scored by its best epoch"
            " instead, its time to target would be:",
            "",
            "| study | method | time to target, final-epoch value (s) | best-epoch value (s) |",
            "| --- | --- | --- | --- |",
            *lines,
            "",
        ]

    def cost_lines(self) -> list[str]:
        """Where the time goes: seconds per trial and per epoch, and what a trial of at most two
        epochs costs (its fixed cost: build, compile, tracing, storage), pooled over seeds.

        One worker runs one trial at a time, so a trial's duration is the time since the
        previous one finished; the first trial of a run, which also pays for setting up the
        search, is left out.
        """
        lines = [
            "| study | method | median s per trial | s per epoch (budget / epochs) | median s per"
            " trial of at most 2 epochs (count) |",
            "| --- | --- | --- | --- | --- |",
        ]
        for study in self.studies:
            for method in self.methods:
                chosen = self.chosen(study, method)
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
                    f"| {study} | {method} | {fmt(median(durations), 2)}"
                    f" | {fmt(median(per_epoch), 3)}"
                    f" | {fmt(median(short), 2) if short else '-'} ({len(short)}) |"
                )
        return lines

    def raw_lines(self) -> list[str]:
        lines = [
            "| study | seed | order | method | best val | retrained val | test | time to"
            " target (s) | area under regret | trials | failed | epochs | search wall (s) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for run in self.runs:
            f = self.by[(run["study"], run["method"], run["seed"])]
            head = f"| {run['study']} | {run['seed']} | {run.get('order', '-')} | {run['method']}"
            if "error" in f:
                lines.append(f"{head} | failed: {f['error']} | | | | | | | | |")
                continue
            lines.append(
                f"{head} | {fmt(f['best_val'])} | {fmt(f['retrain_val'])} | {fmt(f['test'])}"
                f" | {fmt_time(f['t_target'])} | {fmt(f['regret'], 3)} | {f['trials']}"
                f" | {f['failed']} | {f['epochs']} | {f['wall']:.1f} |"
            )
        return lines


def _seconds(value: float) -> float:
    """Seconds as the report shows them (0.1 s), so that equal-looking figures compare equal."""
    return value if math.isinf(value) else round(value, 1)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


COLORS = {
    "autotune": "tab:blue",
    "autotune-sobol": "tab:cyan",
    "optuna-skilled": "tab:orange",
    "optuna": "tab:brown",
    "random": "tab:gray",
    "kerastuner": "tab:red",
    "kerastuner-bo": "tab:pink",
    "ray": "tab:green",
}


def _bands(rows: Any, goal: Goal) -> tuple[Any, Any, Any]:
    """The 25th, 50th and 75th percentile over seeds (rows) at each column, a missing value (a
    seed with no finished trial yet) counted as the worst; NaN where a percentile is missing.

    Each seed's best-so-far only improves, so each percentile does too."""
    import numpy as np

    worst = -np.inf if goal.direction == "maximize" else np.inf
    filled = np.where(np.isnan(rows), worst, rows)
    # Interpolated as the tables' medians are; where a missing (infinite) value takes part, the
    # result is infinite or NaN, and is not drawn.
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = [np.percentile(filled, q, axis=0) for q in (25, 50, 75)]
    if goal.direction == "minimize":
        out.reverse()  # the 25th percentile of the goodness is the 75th of the error
    lower, mid, upper = (np.where(np.isfinite(a), a, np.nan) for a in out)
    return lower, mid, upper


def plot(results: Results, study: str, path: Path) -> None:
    """The anytime curves of one study: best-so-far validation value against wall time (left)
    and the test score of the best configuration so far (right), the median over seeds as a
    line and the interquartile range as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    budget = results.meta["budget"]
    goal = results.goals[study]
    grid = np.linspace(0, budget, 400)
    xs = [f * budget for f in CHECKS]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    shown: dict[Any, list[float]] = {left: [], right: []}
    for method in results.methods:
        chosen = results.chosen(study, method)
        if not chosen:
            continue
        color = COLORS.get(method)
        series = []
        for run in chosen:
            points = best_so_far(run)
            if not points:
                series.append(np.full(len(grid), np.nan))
                continue
            times, values = (np.array(a) for a in zip(*points, strict=True))
            index = np.searchsorted(times, grid, side="right") - 1
            series.append(np.where(index >= 0, values[index.clip(0)], np.nan))
        low, mid, high = _bands(np.array(series), goal)
        left.plot(grid, mid, color=color, lw=2, label=method)
        left.fill_between(grid, low, high, color=color, alpha=0.15, lw=0)
        tests = np.array(
            [[np.nan if c.get("test") is None else c["test"] for c in r["checks"]] for r in chosen]
        )
        t_low, t_mid, t_high = _bands(tests, goal)
        right.plot(xs, t_mid, color=color, lw=2, marker="o", label=method)
        right.fill_between(xs, t_low, t_high, color=color, alpha=0.15, lw=0)
        shown[left] += [v for v in mid if not np.isnan(v)]
        shown[right] += [v for v in t_mid if not np.isnan(v)]
    target = TARGETS[study]
    left.axhline(target, color="gray", ls="--", lw=1)
    left.text(budget * 0.01, target, f" target {target}", va="bottom", fontsize=8, color="gray")
    for ax, what in ((left, "best validation so far"), (right, "test of the best config so far")):
        ax.set_xlim(0, budget)
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel(f"{what} ({goal.metric.removeprefix('val_')})")
        ax.grid(alpha=0.3)
        _zoom(ax, shown[ax] + [target], goal)
    left.legend(loc="lower right" if goal.direction == "maximize" else "upper right", fontsize=8)
    fig.suptitle(
        f"{study}: anytime curves, {budget:g} s per run,"
        f" {results.seed_count(study)} seeds"
        " (line: median; band: interquartile range; a seed without a finished trial counts as"
        " worst)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _zoom(ax: Any, values: list[float], goal: Goal) -> None:
    """The vertical range where the median curves differ: from their best to a typical early
    value (the 80th percentile from the best), so that one diverged model does not flatten the
    rest."""
    if not values:
        return
    ranked = sorted(values, reverse=goal.direction == "maximize")
    best, typical = ranked[0], ranked[int(0.8 * (len(ranked) - 1))]
    margin = 0.05 * abs(typical - best) or 0.01
    ax.set_ylim(min(best, typical) - margin, max(best, typical) + margin)


def versions() -> str:
    from autotune.versions import versions as of

    found = of(("autotune", "optuna", "tensorflow", "keras", "keras-tuner", "ray"))
    return ", ".join(
        f"{package} {version}" for package, version in found.items() if package != "python"
    )


def report(results: Results, name: str, notes: str = "", rewritten: str = "") -> str:
    """The markdown report; ``notes`` (markdown) goes after the tables."""
    meta, runs = results.meta, results.runs
    studies, budget = results.studies, meta["budget"]
    data_lines = []
    for s in studies:
        chosen = [r for r in runs if r["study"] == s and "split" in r]
        if not chosen:
            continue
        splits = sorted({r["split"] for r in chosen})
        goal = results.goals[s]
        data_lines.append(
            f"- {s}: {goal.metric} ({goal.direction}), max_epochs {chosen[0]['max_epochs']},"
            f" split train/val/test {'/'.join(str(n) for n in chosen[0]['sizes'].values())},"
            f" target {target_text(s, goal.direction)}, split fingerprint {', '.join(splits)}"
            + (" (the same for every run)" if len(splits) == 1 else " (DIFFERS between runs)")
        )
    failed = [r for r in runs if "error" in r]
    return "\n".join(
        [
            "# Search quality: autotune against the peers a skilled user would pick",
            "",
            f"Each run searches one shipped study for {budget:g} s of wall time, one trial at a"
            f" time. {results.seeds_text()}; medians over seeds. The methods of one"
            " (study, seed) ran back to back, each in a fresh process, in an order rotated per"
            " seed.",
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
            f"Started {meta['started']}, took {meta.get('minutes', 0):.0f} min."
            + (f" {len(failed)} run(s) failed: see *Every run*." if failed else ""),
            "",
            "## Results (medians over seeds)",
            "",
            *results.summary_lines(),
            "",
            "- *best val at budget*: the best trial value among trials finished within the"
            " budget, as each method scores a trial (its best epoch, except the textbook"
            " script's last epoch).",
            "- *test of that config*: the best configuration found within the budget, scored"
            " once on the held-out test split (retrained, or reloaded, as each method does:"
            " below).",
            "- *time to target*: wall time from the start of the search until the first"
            " finished trial whose value reaches the target; the median counts a seed that never"
            ' reached it as infinite, so "not reached" means at most half the seeds reached it.',
            "- *area under regret*: the mean over the budget of the best-so-far value's"
            " normalized regret, (study best - best so far) / (study best - typical), clipped to"
            " [0, 1], and 1 before a method's first finished trial. *study best* is the best"
            " value any run of the study found, *typical* the median value of every complete"
            " trial of every run of the study. 0 would be the study's best from the first"
            " second; lower is better.",
            "- *trials*: trials finished within the budget (complete and pruned; KerasTuner's"
            " Hyperband counts each round of a configuration as a trial). *epochs*: epochs of"
            " those trials.",
            "",
            *[f"![anytime curves, {s}]({name}-{s}.png)" for s in studies if s in results.goals],
            "",
            "## The targets",
            "",
            "autotune reaches the target in at most half the time of every peer, and its test"
            " score at the budget is not below any peer's, on every study: on the medians, and"
            " how many seeds hold it (autotune's figure first).",
            "",
            *results.claim_lines(),
            "",
            *results.ablation_lines(),
            "",
            "## Test score of the best configuration so far",
            "",
            "Medians over seeds of the test score of the configuration that was best within each"
            " fraction of the budget.",
            "",
            *results.checks_lines(),
            "",
            *([notes, ""] if notes else []),
            "## How the methods ran",
            "",
            "Same for all: the study's `[data]` table loaded by `autotune.data.load` (the same"
            " train/validation/test arrays for every method, split with the study's fixed data"
            " seed; the run's seed seeds only the samplers, tuners and weights), the family's"
            " space from the shipped study (`spec.space`), built by the same family builder and"
            " compiled with the same optimizer factory (with its decay schedules), loss and"
            " metrics; the study's `max_epochs`, the same budget, one trial at a time. Every run"
            " is a fresh process that imports TensorFlow and loads the data before its clock"
            " starts; the clock then covers everything the method does (creating the study or"
            " tuner, building, training, storage). A trial counts only if it finished within the"
            " budget; a callback that only acts once the budget is spent ends the running"
            " trial's training then, to keep the benchmark short.",
            "",
            "- **autotune**: `autotune.run(spec, storage=<fresh SQLite file>, timeout=budget,"
            " n_trials=10**6, seed=seed, echo=None)` with the study's sampler, pruner and early"
            " stopping. Test: `autotune.best.retrain` of the trial (its params, seed and schedule,"
            " for its best epoch's count), scored on test.",
            "- **optuna-skilled**: `optuna.create_study(direction, sampler=TPESampler(seed=seed),"
            " pruner=HyperbandPruner(min_resource=1, max_resource=max_epochs,"
            " reduction_factor=3))` in memory, `study.optimize(objective, timeout=budget)`; the"
            " objective samples with `autotune.space.sample`, seeds its weights with"
            " `keras.utils.set_random_seed`, and runs `model.fit(x_train, y_train,"
            " validation_data=(x_val, y_val), epochs=max_epochs, batch_size=...)` on the NumPy"
            " arrays with `optuna_integration.KerasPruningCallback(trial, metric)` and"
            " `keras.callbacks.EarlyStopping(metric, patience=<the study's>,"
            " restore_best_weights=True)`; the value is the best epoch's. Test: the trial"
            " retrained by the same code for its best epoch's count, scored on test.",
            "- **optuna** / **random**: the textbook script: the same without pruner and early"
            " stopping, every trial `max_epochs` epochs, its value the last epoch's.",
            "- **kerastuner**: `keras_tuner.Hyperband(hypermodel, objective=Objective(metric,"
            " direction), max_epochs=max_epochs, factor=3, hyperband_iterations=10**6,"
            " seed=seed)`; **kerastuner-bo**: `keras_tuner.BayesianOptimization(hypermodel,"
            " objective, max_trials=10**6, seed=seed)` (its default initial points), searched"
            " with `epochs=max_epochs`. The hypermodel declares the same space on KerasTuner's"
            ' `hp` (`Float`/`Int` with `sampling="log"` where autotune\'s range is log,'
            " `Choice`, `Boolean`, the conditional parameters through"
            " `parent_name`/`parent_values`) and its `fit` passes the sampled `batch_size`."
            " `tuner.search(x_train, y_train, validation_data=(x_val, y_val),"
            " callbacks=[EarlyStopping(...), ...])` on the arrays. KerasTuner has no timeout: once"
            " the budget is spent the tuner's `on_trial_end` sets the oracle's `max_trials` to"
            " the trials it holds, so it stops. A trial's value is KerasTuner's score, its best"
            " epoch's. Test: the tuner's own model of that trial (`tuner.load_model`: the weights"
            " it saved at the best epoch), scored on test.",
            "- **ray**: see `scripts/search_ray.py`.",
            "",
            "Studies:",
            "",
            *data_lines,
            "",
            *results.sensitivity_lines(),
            "## Where the time goes",
            "",
            "A trial's duration is the time since the previous trial finished (one trial at a"
            " time), the first trial of each run left out; medians pooled over seeds. *s per"
            " epoch* is the budget over the epochs of the trials that finished within it, so it"
            " includes every per-trial cost.",
            "",
            *results.cost_lines(),
            "",
            "## Every run",
            "",
            "*retrained val*: the validation value of the model that was scored on test (for"
            " autotune and the Optuna scripts a retrained one, so it shows how well the retrain"
            " reproduces the trial). *search wall*: from the start of the search to its end,"
            " including the trial that was running at the budget.",
            "",
            *results.raw_lines(),
            "",
        ]
    )


def merged(saved: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The runs and metadata of several saved benchmarks of one budget, each study's runs from
    the last one that has any (a run stopped early, then finished by another command). The
    methods are those of every file; a study reports the methods its own file ran."""
    if len({s["meta"]["budget"] for s in saved}) > 1:
        raise SystemExit("the saved runs differ in budget; report them one by one")
    owner = {r["study"]: i for i, s in enumerate(saved) for r in s["runs"]}
    runs = [r for i, s in enumerate(saved) for r in s["runs"] if owner[r["study"]] == i]
    used = sorted(set(owner.values()))
    meta: dict[str, Any] = {}
    for i in used:  # a later file's settings win; an earlier file's own notes stay
        meta.update(saved[i]["meta"])
    meta.update(
        studies=list(dict.fromkeys(r["study"] for r in runs)),
        methods=list(dict.fromkeys(m for i in used for m in saved[i]["meta"]["methods"])),
        # The report wraps the command in backticks: several commands read as `a`, then `b`.
        command="`, then `".join(saved[i]["meta"]["command"] for i in used),
        started=saved[used[0]]["meta"]["started"],
        minutes=sum(saved[i]["meta"].get("minutes", 0) for i in used),
    )
    return runs, meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{', '.join(QUICK['studies'])}, {QUICK['seeds']} seeds, {QUICK['budget']:g} s,"
        f" {', '.join(QUICK['methods'])}: under 10 minutes; writes search-quick.*",
    )
    parser.add_argument("--studies", help=f"comma-separated, from {', '.join(STUDIES)}")
    parser.add_argument("--seeds", type=int, help="seeds 0 .. N-1 per study")
    parser.add_argument("--budget", type=float, help="seconds of search per run")
    parser.add_argument(
        "--methods",
        help=f"comma-separated, from {', '.join(METHODS)}; the preset's by default",
    )
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks"))
    parser.add_argument("--name", help="the results' file name (search, or search-quick)")
    parser.add_argument(
        "--report-only",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="rewrite the report and plots from saved JSON files of one budget (a study's runs"
        " are taken from the last file that has any)",
    )
    parser.add_argument(
        "--notes",
        type=Path,
        metavar="MARKDOWN",
        help="a reading of the results, put after the tables",
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("METHOD", "STUDY", "SEED"), help=argparse.SUPPRESS
    )
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        method, study, seed = args.child
        child(method, study, int(seed), args.budget, args.result)
        return

    preset = QUICK if args.quick else FULL
    name = args.name or ("search-quick" if args.quick else "search")
    if args.report_only:
        runs, meta = merged([json.loads(path.read_text()) for path in args.report_only])
        name = args.name or args.report_only[0].stem
    else:
        studies = args.studies.split(",") if args.studies else list(preset["studies"])
        methods = args.methods.split(",") if args.methods else list(preset["methods"])
        for given, allowed in ((studies, STUDIES), (methods, tuple(METHODS))):
            unknown = sorted(set(given) - set(allowed))
            if unknown:
                parser.error(f"unknown {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        seeds = args.seeds or preset["seeds"]
        budget = args.budget or preset["budget"]
        meta = {
            "studies": studies,
            "methods": methods,
            "budget": budget,
            "n_seeds": seeds,
            "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
            "machine": f"{os.cpu_count()} cores, {platform.platform()}, Python"
            f" {platform.python_version()}",
            "versions": versions(),
            "started": datetime.now().isoformat(timespec="seconds"),
        }
        total = len(studies) * seeds * len(methods)
        print(
            f"{total} runs of {budget:g} s each: at least {total * budget / 60:.0f} min", flush=True
        )
        runs = []
        start = time.perf_counter()
        args.out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            for study in studies:
                for seed in range(seeds):
                    shift = seed % len(methods)
                    order = methods[shift:] + methods[:shift]
                    for position, method in enumerate(order, 1):
                        run = one_run(method, study, seed, budget, Path(folder))
                        run["order"] = position
                        runs.append(run)
                        f = derive(run)
                        print(
                            f"{study:<13} seed {seed} {method:<15} "
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
                        (args.out_dir / f"{name}.json").write_text(
                            json.dumps({"meta": meta, "runs": runs}) + "\n"
                        )
    args.out_dir.mkdir(parents=True, exist_ok=True)
    results = Results(runs, meta)
    notes = args.notes.read_text().strip() if args.notes else ""
    rewritten = "python " + " ".join(shlex.quote(a) for a in sys.argv) if args.report_only else ""
    text = report(results, name, notes, rewritten)
    (args.out_dir / f"{name}.md").write_text(text)
    for study in results.studies:
        if study in results.goals:
            plot(results, study, args.out_dir / f"{name}-{study}.png")
    print(text)
    print(f"wrote {args.out_dir / (name + '.md')} and its plots")


if __name__ == "__main__":
    main()
