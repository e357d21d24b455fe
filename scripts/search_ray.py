"""Ray Tune as a peer of ``scripts/bench_search.py``: ASHA early stopping over Ray's Optuna
search algorithm, on the same data, space, epochs and wall-clock budget as the other methods.

``run_ray`` is one method of the benchmark: it runs in the benchmark's child process (TensorFlow
imported, the data loaded) and returns what the other methods return: the finished trials, the
search's wall time and a scorer that retrains one trial and scores it on test, off the clock.

What runs:

- ``ray.init(num_cpus=2, include_dashboard=False)``, its temporary files under the run's folder.
  Ray's start-up (the GCS, the raylet and its pre-started workers) happens *before* the clock
  starts, like TensorFlow's import for every method; its seconds are kept in ``STARTUP``.
- ``tune.Tuner`` with ``OptunaSearch(space=<define-by-run>, metric, mode, seed=seed)`` (Ray's
  default sampler there, ``TPESampler(seed=seed)``) on autotune's space, sampled by
  ``autotune.space.sample`` so the ranges, log scales and conditional parameters are the same
  as the Optuna peers'; ``ASHAScheduler(time_attr="training_iteration", max_t=max_epochs,
  grace_period=1, reduction_factor=3)``; ``num_samples=-1`` with ``time_budget_s=budget``;
  ``max_concurrent_trials=1`` (the other methods train one trial at a time) and one trial holding
  both CPUs; ``reuse_actors=True`` (with Tune's default, False, every trial would start a new
  worker process that imports TensorFlow again).
- The trainable is a function: it builds and compiles the model (the study's family) with the
  benchmark's ``compiled_model``, seeds its weights per trial as the plain script does, and runs one
  ``model.fit`` on the NumPy arrays with a Keras callback that calls ``tune.report`` after each
  epoch (one epoch is one ASHA rung step). The data set reaches the trainable through
  ``tune.with_parameters``: it is put in Ray's object store once, not pickled per trial. The
  model and its weights stay in the trial's process; nothing is checkpointed.

Inside the clock: everything Tune does (the trial actor's start-up, which imports TensorFlow in
Ray's worker process, once, since the actor is reused; each trial's scheduling, result round
trips to the driver, Tune's result logging under the run's folder) and the training. A function
trainable reports synchronously: after each epoch the training waits until the driver has taken
the result and asked for the next one.

Ray writes nothing outside the run's folder: its temporary directory and Tune's storage are there,
usage statistics are off, and the token that Ray's local cluster authenticates with is given in
the environment (without one Ray writes ``~/.ray/auth_token``). After ``ray.shutdown`` the
processes Ray started are waited for, and killed by pid if still running after 10 s.

A trial's value is its last reported epoch's validation metric: what Ray Tune's
``ResultGrid.get_best_result`` ranks by (scope "last") and what ``OptunaSearch`` tells Optuna.
Every trial that ended within the budget is a candidate for the best, with its last value, as
Tune ranks them: a trial ASHA stopped is recorded as complete with ``stopped`` set (Ray tells
Optuna its last value as complete too: that is how ``OptunaSearch`` learns from stopped trials);
one that the time budget stopped is cut. The scorer retrains a trial in the same way
(its seed, its epochs) and scores it on validation and test.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from bench_search import Scorer, _renamed, fit_model, goal_of, scores  # noqa: E402

# The key under which the define-by-run space passes Optuna's trial number to the trainable:
# the trial's seed and id follow from it, as in the plain Optuna script.
NUMBER = "trial_number"
# Ray's start-up, in seconds, of each run_ray call in this process (outside the clock).
STARTUP: list[float] = []


class _Space:
    """The define-by-run space for ``OptunaSearch``: autotune's own sampling of the space, plus
    the trial's number. A class, not a lambda, since Tune pickles the searcher with its state."""

    def __init__(self, space: Any) -> None:
        self.space = space

    def __call__(self, trial: Any) -> dict[str, Any]:
        from autotune.space import sample

        return {**sample(self.space, trial), NUMBER: trial.number}


@contextlib.contextmanager
def _environment() -> Iterator[None]:
    """Ray's settings for one local run, in this process's environment while it lasts (Ray's
    processes inherit them).

    Usage statistics off (this machine has no network). A new local cluster turns on token
    authentication and, without a token, writes one to ``~/.ray/auth_token``; a fresh token in
    the environment keeps it on and writes nothing outside the run's folder.
    """
    settings = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _descendants() -> dict[int, str]:
    """This process's descendants on Linux, by pid, each with its start time (so that a reused pid
    does not pass for it)."""
    parents, starts = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while listed
        # After the command's closing parenthesis: state, ppid, ..., starttime (the 20th).
        if fields[0] != "Z":
            parents[int(entry)], starts[int(entry)] = int(fields[1]), fields[19]
    found, todo = {}, [os.getpid()]
    while todo:
        parent = todo.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = starts[pid]
                todo.append(pid)
    return found


def _end(processes: dict[int, str], grace_s: float = 10.0) -> None:
    """Waits for Ray's processes to end after ``ray.shutdown``, and kills those still running
    after ``grace_s``: a trial's worker can outlive the raylet while its training thread runs."""

    def running() -> list[int]:
        alive = []
        for pid, start in processes.items():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and fields[19] == start:
                alive.append(pid)
        return alive

    deadline = time.monotonic() + grace_s
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in running():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _trainable(config: dict[str, Any], *, spec: Any, dataset: Any, seed: int) -> None:
    """Ray Tune's function trainable: one trial, reporting ``metric`` after every epoch."""
    from autotune.backend import setup

    setup()  # in Ray's worker process: once per process, on the first trial
    import keras
    from ray import tune

    keras.utils.disable_interactive_logging()

    metric = spec.metric

    class Report(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            tune.report({metric: float((logs or {})[metric])})

    params = {k: v for k, v in config.items() if k != NUMBER}
    fit_model(params, spec, dataset, seed, config[NUMBER], spec.max_epochs, [Report()])


def _recorder(t0: float, metric: str) -> Any:
    """A Tune callback (in the driver) that keeps each trial's per-epoch values and its end."""
    from ray import tune

    class Recorder(tune.Callback):
        def __init__(self) -> None:
            self.values: dict[str, dict[int, float]] = {}
            self.configs: dict[str, dict[str, Any]] = {}
            self.ended: dict[str, tuple[float, bool]] = {}  # trial id: (seconds, failed)

        def on_trial_start(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            self.configs[trial.trial_id] = dict(trial.config)
            self.values.setdefault(trial.trial_id, {})

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            # Keyed by epoch: a trial's last result can come twice (once as "done").
            self.values[trial.trial_id][result["training_iteration"]] = result[metric]

        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            self.ended[trial.trial_id] = (time.monotonic() - t0, False)

        def on_trial_error(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            self.ended[trial.trial_id] = (time.monotonic() - t0, True)

    return Recorder()


def trial_record(
    config: dict[str, Any],
    values: dict[int, float],
    seconds: float,
    failed: bool,
    goal: Any,
    max_epochs: int,
    budget: float,
) -> dict[str, Any]:
    """One trial as the benchmark records it, from its value at each epoch it reported.

    ``seconds`` is when the trial ended, after the start; a trial still running when the search
    stopped ends with the search.
    """
    epochs = len(values)
    if failed or not values:
        state = "failed"
    elif seconds >= budget and epochs < max_epochs:
        state = "cut"  # stopped by the time budget, not by ASHA
    else:
        # A trial ASHA stopped keeps its last value: Tune ranks every trial by its last result
        # (ResultGrid.get_best_result), and OptunaSearch tells it to Optuna as complete.
        state = "complete"
    ordered = [values[epoch] for epoch in sorted(values)]
    best = goal.best_index(ordered) if ordered else None
    return {
        "id": config[NUMBER],
        "t": seconds,
        "state": state,
        "stopped": state == "complete" and epochs < max_epochs,
        "value": ordered[-1] if state == "complete" else None,
        "best_epoch_value": None if best is None else ordered[best],
        "best_epoch": None if best is None else best + 1,
        "epochs": epochs,
        "params": {k: v for k, v in config.items() if k != NUMBER},
    }


def run_ray(
    name: str, spec: Any, dataset: Any, seed: int, budget: float, folder: Path
) -> tuple[list[dict[str, Any]], float, Scorer]:
    """Searches ``spec``'s space with Ray Tune (ASHA over OptunaSearch) for ``budget`` seconds.

    Ray starts before the clock (its seconds are appended to ``STARTUP``); the clock covers the
    whole ``Tuner.fit``, including the trial actor's start-up and its TensorFlow import. Ray's
    temporary files and Tune's results are written under ``folder``; Ray is shut down before
    this returns.

    Returns:
        The finished trials, the search's wall time, and the scorer of a trial.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    goal = goal_of(spec)
    with _environment():
        trials, wall = _search(spec, dataset, seed, budget, folder)

    def scorer(trial: dict[str, Any]) -> dict[str, float]:
        # The same code path as the trial, same seed, here in the driver: the configuration
        # trained for as many epochs as it ran, since its value is its last epoch's.
        model, _ = fit_model(trial["params"], spec, dataset, seed, trial["id"], trial["epochs"], [])
        return {"trained_epochs": trial["epochs"], **_renamed(scores(model, dataset, goal.key))}

    return trials, wall, scorer


def _search(
    spec: Any, dataset: Any, seed: int, budget: float, folder: Path
) -> tuple[list[dict[str, Any]], float]:
    """Ray's start-up (off the clock), the search, Ray's shut-down; the trials and wall time."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    goal = goal_of(spec)
    before = _descendants()
    started = time.monotonic()
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=str(folder / "ray"),
        logging_level="error",
        # Ray's workers import this module (and bench_search beside it) to run the trainable.
        runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}},
    )
    try:
        STARTUP.append(time.monotonic() - started)
        t0 = time.monotonic()
        recorder = _recorder(t0, goal.metric)
        searcher = OptunaSearch(
            space=_Space(spec.space),
            metric=goal.metric,
            mode=goal.mode,
            seed=seed,
        )
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            metric=goal.metric,
            mode=goal.mode,
            max_t=spec.max_epochs,
            grace_period=1,
            reduction_factor=3,
        )
        tuner = tune.Tuner(
            # One trial holds both CPUs, as the other methods' single worker does.
            tune.with_resources(
                tune.with_parameters(_trainable, spec=spec, dataset=dataset, seed=seed),
                {"cpu": 2},
            ),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=-1,
                max_concurrent_trials=1,
                time_budget_s=budget,
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name="ray", storage_path=str(folder / "tune"), verbose=0, callbacks=[recorder]
            ),
        )
        tuner.fit()
        wall = time.monotonic() - t0
    finally:
        processes = {pid: s for pid, s in _descendants().items() if pid not in before}
        ray.shutdown()
        _end(processes)

    trials = sorted(
        (
            trial_record(
                config,
                recorder.values[trial_id],
                *recorder.ended.get(trial_id, (wall, False)),
                goal,
                spec.max_epochs,
                budget,
            )
            for trial_id, config in recorder.configs.items()
        ),
        key=lambda t: t["t"],
    )
    return trials, wall
