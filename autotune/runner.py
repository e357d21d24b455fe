"""The study runner: create or load a study, then run trials until its total is reached.

``n_trials`` is the study's total of finished (complete or pruned) trials, across runs and
workers, so running a study again resumes it and a finished study returns at once. Several
workers, local (``workers=N``) or on other machines (``autotune worker``), share one study
through its storage. A worker starts a trial only while the finished and running trials fall
short of the total, and a trial that finds on start that earlier ones already fill the total
ends at once without training (state FAIL, ``stop_reason`` ``surplus``), so the study ends with
exactly ``n_trials`` finished trials.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from autotune import storage as storage_module
from autotune.errors import AutotuneError, StudyMismatchError, TrialDiverged
from autotune.pruners import make_pruner
from autotune.samplers import make_sampler
from autotune.spec import StudySpec, from_dict, resolve

SPEC_ATTR = "autotune:spec"
OBJECTIVE_ATTR = "autotune:objective"
FINGERPRINT_ATTR = "autotune:fingerprint"
SURPLUS = "surplus"
# A run stops when this many trials in a row fail: the space or the data is broken.
MAX_CONSECUTIVE_FAILURES = 10
# How often a worker that waits for other workers' last trials looks again.
POLL_SECONDS = 1.0

Report = Callable[[str], None]


class Interrupted(AutotuneError):
    """Ctrl-C stopped the run; finished trials are kept."""


class _Surplus(Exception):
    """The study's total was reached by earlier trials while this one was being created."""


def counted_states() -> tuple[Any, ...]:
    import optuna

    return (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def finished(study: Any) -> int:
    """The trials that count toward the study's total: complete and pruned ones."""
    return len(study.get_trials(deepcopy=False, states=counted_states()))


def open_study(spec: StudySpec, url: str, *, sampler_seed: int | None = None) -> Any:
    """Creates the study in the storage, or loads it, and checks it searches the same objective.

    Safe when several workers start at the same moment: Optuna creates the study once and the
    others load it.

    Raises:
        StudyMismatchError: The stored study was searched with another space, data, model,
            metric, direction, epochs or early stopping.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = storage_module.open_storage(
        url, heartbeat_interval=spec.heartbeat_interval, grace_period=spec.grace_period
    )
    space = spec.space()
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=make_sampler(spec.sampler, sampler_seed, spec.sampler_options, space),
        pruner=make_pruner(spec.pruner, spec.max_epochs, spec.pruner_options),
        direction=spec.direction,
        load_if_exists=True,
    )
    _check_objective(study, spec, url)
    if study.metric_names != [spec.metric]:
        # optuna-dashboard and Optuna's plots label the value with it, not "Objective 0"
        study.set_metric_names([spec.metric])
    return study


def _check_objective(study: Any, spec: StudySpec, url: str) -> None:
    attrs = study.user_attrs
    stored = attrs.get(FINGERPRINT_ATTR)
    # Optuna keeps a study's direction for good, even while it has no trial.
    searched = bool(study.get_trials(deepcopy=False)) or study.direction.name.lower() != spec.direction
    if stored is None and searched:
        raise StudyMismatchError(
            f"Study '{spec.name}' in {storage_module.mask(url)} was not made by autotune."
            f" Give this study another name (name = ... in {spec.source})."
        )
    if searched and stored is not None and stored != spec.fingerprint():
        before = attrs.get(OBJECTIVE_ATTR, {})
        now = spec.objective()
        changed = sorted(k for k in now if before.get(k) != now[k]) or ["objective"]
        raise StudyMismatchError(
            f"Study '{spec.name}' in {storage_module.mask(url)} was searched with another"
            f" {', '.join(changed)}; its trials cannot be mixed with this run's. Undo the"
            f" change, give the study a new name (name = ... in {spec.source}), or start over"
            f" with `autotune delete --study {spec.name}`."
        )
    # A study without trials yet (a first run stopped by a mistake in the user's data or model
    # files, before any trial) takes the corrected objective.
    if stored != spec.fingerprint():
        study.set_user_attr(OBJECTIVE_ATTR, spec.objective())
        study.set_user_attr(FINGERPRINT_ATTR, spec.fingerprint())
    if attrs.get(SPEC_ATTR) != spec.to_dict():
        study.set_user_attr(SPEC_ATTR, spec.to_dict())


def stored_spec(study: Any) -> StudySpec:
    """The spec that the last ``autotune run`` stored with ``study``.

    Raises:
        AutotuneError: The study was not made by autotune.
    """
    raw = study.user_attrs.get(SPEC_ATTR)
    if raw is None:
        raise AutotuneError(
            f"Study '{study.study_name}' holds no autotune study file; it was not made by"
            f" `autotune run`."
        )
    return from_dict(raw, source=f"study '{study.study_name}'")


@dataclass
class Progress:
    """What one worker did in one run."""

    finished: int = 0
    failed: int = 0
    interrupted_trial: int | None = None
    lines: list[str] = field(default_factory=list)


class _Guarded:
    """Wraps the objective: ends a surplus trial before it trains."""

    def __init__(self, objective: Callable[[Any], float], n_trials: int) -> None:
        self.objective = objective
        self.n_trials = n_trials
        self.current: int | None = None

    def __call__(self, trial: Any) -> float:
        import optuna

        self.current = trial.number
        ahead = trial.study.get_trials(
            deepcopy=False, states=(*counted_states(), optuna.trial.TrialState.RUNNING)
        )
        if sum(1 for t in ahead if t.number < trial.number) >= self.n_trials:
            trial.set_user_attr("stop_reason", SURPLUS)
            raise _Surplus(f"the study's {self.n_trials} trials were already taken")
        return self.objective(trial)


def work(
    spec: StudySpec,
    url: str,
    *,
    sampler_seed: int | None = None,
    threads: int | None = None,
    timeout: float | None = None,
    report: Report | None = print,
    prefix: str = "",
    study: Any = None,
) -> Progress:
    """Runs trials of the stored study in this process until the study's total is reached.

    Args:
        spec: The study, as stored.
        url: A resolved storage URL.
        sampler_seed: Seeds this worker's sampler; workers of one study need different seeds.
        threads: TensorFlow threads for this process, or None for all cores.
        timeout: Seconds after which no new trial starts.
        report: Receives one line per finished trial.
        prefix: Starts every reported line (a worker's name).
        study: The study, if this process opened it already.

    Raises:
        Interrupted: Ctrl-C; the unfinished trial is queued to run again on resume.
        AutotuneError: Too many trials in a row failed, or a trial found a fatal mistake.
    """
    import optuna

    from autotune.backend import settled
    from autotune.backend import setup as setup_backend
    from autotune.training import Objective

    if study is None:
        study = open_study(spec, url, sampler_seed=sampler_seed)
    guarded: _Guarded | None = None  # built at the first trial: a finished study needs no TF
    progress = Progress()
    deadline = time.monotonic() + timeout if timeout else None
    streak: list[str] = []

    def on_trial(study: Any, trial: Any) -> None:
        if trial.user_attrs.get("stop_reason") == SURPLUS:
            return
        if trial.state == optuna.trial.TrialState.FAIL:
            progress.failed += 1
            streak.append(_fail_reason(study, trial))
        else:
            progress.finished += 1
            streak.clear()
        line = prefix + format_trial(study, trial)
        progress.lines.append(line)
        if report:
            report(line)

    with contextlib.ExitStack() as stack:
        try:
            while True:
                trials = study.get_trials(deepcopy=False)
                done = sum(1 for t in trials if t.state in counted_states())
                running = sum(1 for t in trials if t.state == optuna.trial.TrialState.RUNNING)
                if done >= spec.n_trials or (deadline is not None and time.monotonic() >= deadline):
                    return progress
                if len(streak) >= MAX_CONSECUTIVE_FAILURES:
                    raise AutotuneError(
                        f"{len(streak)} trials in a row failed, the last because {streak[-1]}."
                        f" Check the study's space and data (a learning rate too high diverges)."
                    )
                if done + running >= spec.n_trials:
                    # Other workers hold the last trials: wait until they finish, or their
                    # heartbeats stop and their trials are failed and queued again.
                    optuna.storages.fail_stale_trials(study)
                    time.sleep(POLL_SECONDS)
                    continue
                if guarded is None:
                    setup_backend(threads)
                    guarded = _Guarded(Objective(spec), spec.n_trials)
                    stack.enter_context(settled())  # the loaded libraries outlive every trial
                study.optimize(
                    guarded, n_trials=1, catch=(TrialDiverged, _Surplus), callbacks=[on_trial]
                )
        except KeyboardInterrupt:
            progress.interrupted_trial = _requeue(study, guarded.current if guarded else None)
            raise Interrupted(_interrupted_message(spec, url, study, progress)) from None


def _fail_reason(study: Any, trial: Any) -> str:
    reason = trial.user_attrs.get("stop_reason")
    fail = trial.system_attrs.get("fail_reason", "")
    return f"it {reason}" if reason == "diverged" else (fail.splitlines() or ["it failed"])[-1]


def _requeue(study: Any, number: int | None) -> int | None:
    """Fails an interrupted trial (if still RUNNING) and queues its params to run on resume.

    Returns:
        The interrupted trial's number, or None when Ctrl-C came between trials.
    """
    import optuna

    if number is None:
        return None
    trial = study.get_trials(deepcopy=False)[number]
    if trial.state == optuna.trial.TrialState.RUNNING:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    elif trial.state != optuna.trial.TrialState.FAIL or trial.user_attrs.get("stop_reason") == SURPLUS:
        return None
    if trial.params:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": number})
    return number


def _interrupted_message(spec: StudySpec, url: str, study: Any, progress: Progress) -> str:
    done = finished(study)
    again = (
        f" Trial {progress.interrupted_trial} did not finish; its params run first on resume."
        if progress.interrupted_trial is not None
        else ""
    )
    return (
        f"Stopped by Ctrl-C. {done} of {spec.n_trials} trials are finished and kept in"
        f" {storage_module.mask(url)}.{again} Resume with: {resume_command(spec, url)}"
    )


def resume_command(spec: StudySpec, url: str) -> str:
    """The command that resumes ``spec``'s study (without the password)."""
    command = f"autotune run --study {spec.source if spec.source.endswith('.toml') else spec.name}"
    if url != storage_module.default_url():
        command += f" --storage '{storage_module.mask(url)}'"
    return command


def format_params(params: dict[str, Any]) -> str:
    """``name=value`` pairs with floats to 3 significant figures."""
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def format_trial(study: Any, trial: Any) -> str:
    """One line for a finished trial: number, state, value, epochs, params, best so far."""
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    attrs = trial.user_attrs
    epochs = f"{attrs.get('epochs', '?')} ep {attrs.get('stop_reason', '')}".strip()
    best = best_trial(study)
    best_text = "best -" if best is None else f"best {best.value:.4f} (#{best.number})"
    return (
        f"trial {trial.number:>3}  {trial.state.name:<8}  {value:>7}  {epochs:<20}  {best_text}"
        f"  {format_params(trial.params)}"
    )


def best_trial(study: Any) -> Any | None:
    """The best complete trial, or None while there is none."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return None
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(complete, key=lambda t: t.value)


def run(
    study: str | StudySpec,
    *,
    storage: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    sampler: str | None = None,
    pruner: str | None = None,
    max_epochs: int | None = None,
    seed: int | None = None,
    workers: int = 1,
    warm_start: str | None = None,
    top: int | None = None,
    report: Report | None = print,
) -> Any:
    """Runs (or resumes) a study until its total of trials is reached, and returns it.

    Args:
        study: A study name (``circles``), a study file's path, or a :class:`StudySpec`.
        storage: A storage URL; defaults to ``$AUTOTUNE_STORAGE``, then ``./autotune.db``.
        n_trials: The study's total of finished trials (overrides the study file).
        timeout: Seconds after which no new trial starts, in this run.
        sampler, pruner, max_epochs, seed: Override the study file.
        workers: Worker processes on this machine sharing the study.
        warm_start: Another study in the same storage whose best complete configurations
            are queued first (see :mod:`autotune.warmstart`); none is queued twice.
        top: How many of ``warm_start``'s best trials to queue (default 5).
        report: Receives what the warm start did and one line per finished trial; None for
            silence.

    Returns:
        The ``optuna.Study``.

    Raises:
        AutotuneError: A mistake in the study, the storage or the arguments; or Ctrl-C
            (:class:`Interrupted`).
    """
    spec = resolve(study) if isinstance(study, str) else study
    spec = spec.with_overrides(
        n_trials=n_trials, sampler=sampler, pruner=pruner, max_epochs=max_epochs, seed=seed
    )
    timeout = timeout if timeout is not None else spec.timeout
    if workers < 1:
        raise AutotuneError(f"workers must be at least 1, but got {workers}.")
    url = storage_module.resolve_url(storage)
    optuna_study = open_study(spec, url, sampler_seed=spec.seed)
    if warm_start is not None and finished(optuna_study) < spec.n_trials:
        from autotune import warmstart

        started = warmstart.warm_start(
            optuna_study, spec.space(), warm_start,
            top=warmstart.DEFAULT_TOP if top is None else top,
        )  # fmt: skip
        for line in started.lines() if report else ():
            report(line)
    if finished(optuna_study) >= spec.n_trials:
        if report:
            report(
                f"The study has its {spec.n_trials} trials already. To search further, raise"
                f" the total with --n-trials."
            )
    elif workers == 1:
        work(spec, url, timeout=timeout, report=report, study=optuna_study)
    else:
        run_workers(spec, url, workers, timeout=timeout)
    return optuna_study


def run_workers(spec: StudySpec, url: str, workers: int, *, timeout: float | None) -> None:
    """Runs ``workers`` processes of ``autotune worker`` on the stored study, and waits.

    Each gets ``cores / workers`` TensorFlow threads and its own sampler seed. The storage URL
    goes through the environment, so that its password stays out of the process list.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {**os.environ, storage_module.ENV_VAR: url}
    processes = []
    for index in range(workers):
        command = [
            sys.executable, "-m", "autotune", "worker",
            "--study", spec.name,
            "--worker-index", str(index),
            "--threads", str(threads),
        ]  # fmt: skip
        if timeout:
            command += ["--timeout", str(timeout)]
        processes.append(subprocess.Popen(command, env=env))
    try:
        codes = [p.wait() for p in processes]
    except KeyboardInterrupt:
        # Ctrl-C in a terminal reaches the workers too; give them time to put their trials
        # away before passing the signal on to any that did not get it.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(p.poll() is None for p in processes):
            time.sleep(0.1)
        for p in processes:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in processes:
            p.wait()
        raise Interrupted(
            f"Stopped by Ctrl-C. Finished trials are kept in {storage_module.mask(url)}."
            f" Resume with: {resume_command(spec, url)}"
        ) from None
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed:
        raise AutotuneError(
            f"Worker(s) {', '.join(map(str, failed))} stopped with an error (see above)."
            f" Finished trials are kept; resume with: {resume_command(spec, url)}"
        )


def summary(study: Any, spec: StudySpec, url: str) -> str:
    """The end-of-run text: counts, the best trial, the storage and how to watch it."""
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get("stop_reason") != SURPLUS:
            states[trial.state.name] = states.get(trial.state.name, 0) + 1
    done = states.get("COMPLETE", 0) + states.get("PRUNED", 0)
    lines = [
        f"Study '{spec.name}': {done} of {spec.n_trials} trials finished"
        f" ({', '.join(f'{n} {s.lower()}' for s, n in sorted(states.items()))})."
    ]
    best = best_trial(study)
    if best is None:
        lines.append("No trial completed yet.")
    else:
        lines.append(
            f"Best {spec.metric}: {best.value:.4f} (trial {best.number},"
            f" {best.user_attrs.get('epochs', '?')} epochs)"
        )
        lines.append(f"Best params: {json.dumps(best.params)}")
    masked = storage_module.mask(url)
    lines.append(f"Storage: {masked}")
    lines.append(f"Dashboard: optuna-dashboard '{masked}'")
    return "\n".join(lines)
