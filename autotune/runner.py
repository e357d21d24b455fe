"""The work loop: run trials of a study until its total is reached; and local workers.

``n_trials`` is the study's total of finished (complete or pruned) trials, across runs and
workers, so running a study again resumes it and a finished study returns at once. Several
workers, local (``workers=N``) or on other machines (``autotune worker``), share one study
through its storage. A worker starts a trial only while the finished and running trials fall
short of the total, and a trial that finds on start that earlier ones already fill the total
ends at once without training (state FAIL, ``stop_reason`` ``surplus``), so the study ends with
exactly ``n_trials`` finished trials.

The loop takes its objective from a factory, called once before the first trial (so that a
finished study never imports TensorFlow); the search's objective is
:class:`autotune.objective.Objective`, and any callable from an ``optuna.Trial`` to a float works.
An objective with a ``finished(study, trial)`` method is told of each trial once Optuna has
stored how it ended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from autotune import checkpoints, console, devices, proxy
from autotune import storage as storage_module
from autotune import study as study_module
from autotune.backend import settled
from autotune.errors import (
    AutotuneError,
    Interrupted,
    SearchFailedError,
    TrialFailed,
    TrialOutOfMemory,
)
from autotune.samplers import OUT_OF_MEMORY
from autotune.spec import StudySpec, resolve
from autotune.trial import Budget
from autotune.watch import Watchers

if TYPE_CHECKING:
    import optuna

    from autotune.console import Echo
    from autotune.watch import Watcher

ObjectiveFn = Callable[["optuna.Trial"], float]

# A run stops when this many trials in a row fail: the space or the data is broken.
MAX_CONSECUTIVE_FAILURES = 10
# How often a worker that waits for other workers' last trials looks again.
POLL_SECONDS = 1.0
# After a database error, how long to wait (seconds) before each look at whether the storage
# answers again; and how many such errors in a row end the search.
RECONNECT_WAITS = (0.5, 1.0, 2.0, 4.0)
MAX_DROPPED = 3
# The end of a failed trial's traceback that is kept on the trial (databases cap text).
TRACEBACK_CHARS = 8000
_BECAUSE = {"diverged": "it diverged", "oom": "it ran out of memory"}
# The gRPC status names of a storage proxy that is away, or whose database failed a request.
_PROXY_DOWN = ("UNAVAILABLE", "UNKNOWN", "INTERNAL", "DEADLINE_EXCEEDED")


@dataclass
class Progress:
    """What one worker did in one run."""

    finished: int = 0
    failed: int = 0
    interrupted_trial: int | None = None
    lines: list[str] = field(default_factory=list)


class _Unbeaten:
    """Fails RUNNING trials that never wrote a heartbeat, such as one whose worker was killed
    between creating it and its first heartbeat, which Optuna's stale-trial check passes over.

    A trial is failed (and its params queued again, as for a stale one) once this worker has
    seen it without a heartbeat for a whole grace period, on this worker's own clock: no clocks
    of two machines are ever compared.
    """

    def __init__(self, grace_period: float) -> None:
        self.grace_period = grace_period
        self.seen: dict[int, float] = {}

    def fail_dead(self, study: optuna.Study) -> None:
        import optuna

        unbeaten = storage_module.running_without_heartbeat(study._storage, study._study_id)
        now = time.monotonic()
        self.seen = {t: self.seen.get(t, now) for t in unbeaten}
        for trial_id, since in self.seen.items():
            if now - since < self.grace_period:
                continue
            try:
                study._storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # it finished, or another worker failed it first
            rdb = storage_module.rdb_of(study._storage)
            retry = rdb.get_heartbeat_stale_trial_callback() if rdb is not None else None
            if retry is not None:
                retry(study, study._storage.get_trial(trial_id))


class _Surplus(Exception):
    """The study's total was reached by earlier trials while this one was being created."""


class _Guarded:
    """Wraps the objective: ends a surplus trial before it trains, and records on a failed
    trial why it failed, with the traceback."""

    def __init__(self, objective: ObjectiveFn, n_trials: int) -> None:
        self.objective = objective
        self.n_trials = n_trials
        self.current: int | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        self.current = trial.number
        if study_module.taken_before(trial.study, trial.number) >= self.n_trials:
            trial.set_user_attr("stop_reason", study_module.SURPLUS)
            raise _Surplus(f"the study's {self.n_trials} trials were already taken")
        try:
            with proxy.beating(trial):  # a trial behind a storage proxy beats through it
                return self.objective(trial)
        except TrialFailed as e:
            if isinstance(e, TrialOutOfMemory):
                # The sampler learns that configurations like this one do not fit.
                trial.set_constraint(OUT_OF_MEMORY, 1.0)
            if "stop_reason" not in trial.user_attrs:
                trial.set_user_attr("stop_reason", e.reason)
            trial.set_user_attr("fail_reason", str(e))
            text = "".join(traceback.format_exception(e.__cause__ or e))
            trial.set_user_attr("traceback", text[-TRACEBACK_CHARS:])
            raise


def work(
    study: optuna.Study,
    objective: Callable[[], ObjectiveFn],
    *,
    n_trials: int,
    timeout: float | None = None,
    echo: Echo | None = print,
    prefix: str = "",
    watcher: Watcher | None = None,
    budget: Budget | None = None,
) -> Progress:
    """Runs trials of ``study`` in this process until it has ``n_trials`` finished trials.

    Args:
        study: The study, opened with its sampler and pruner.
        objective: Makes the objective; called once, before the first trial this process runs.
        n_trials: The study's total of finished trials.
        timeout: Seconds after which no new trial starts (unless ``budget`` is given).
        echo: Receives one line per finished trial; None for silence.
        prefix: Starts every line (a worker's name).
        watcher: Told of every finished trial (the objective tells it of the rest).
        budget: The run's time, shared with the objective (which ends a trial at the first
            epoch past it); started here. By default ``timeout`` seconds.

    Raises:
        Interrupted: Ctrl-C; the unfinished trial is queued to run again on resume.
        SearchFailedError: :data:`MAX_CONSECUTIVE_FAILURES` trials in a row failed.
        AutotuneError: A trial found a fatal mistake.
    """
    import optuna

    guarded: _Guarded | None = None
    unbeaten = _Unbeaten(_grace_period(study))
    progress = Progress()
    budget = budget if budget is not None else Budget(timeout)
    budget.start()
    streak: list[str] = []

    def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if study_module.is_surplus(trial):
            return
        if trial.state == optuna.trial.TrialState.FAIL:
            progress.failed += 1
            streak.append(_because(trial))
        else:
            progress.finished += 1
            streak.clear()
        line = prefix + console.trial_line(study, trial)
        progress.lines.append(line)
        if echo:
            echo(line)
        if watcher is not None:
            watcher.trial_finished(study, trial)
        finished = getattr(guarded.objective, "finished", None) if guarded else None
        if finished is not None:
            try:
                finished(study, trial)
            except Exception as e:  # keeping the best model is a convenience, not the search
                if echo:
                    echo(f"{prefix}trial {trial.number}: its model was not kept ({e}).")

    with storage_module.quiet_optuna(), settled() as settle:
        dropped = 0  # database errors in a row
        try:
            while True:
                try:
                    tally = study_module.counts(study)
                    if tally.finished >= n_trials or budget.spent():
                        return progress
                    if len(streak) >= MAX_CONSECUTIVE_FAILURES:
                        raise SearchFailedError(
                            f"{len(streak)} trials in a row failed, the last because"
                            f" {streak[-1]}. Check the study's space, model and data (a learning"
                            f" rate too high diverges); each trial's traceback is its"
                            f" 'traceback' attribute."
                        )
                    if tally.finished + tally.running >= n_trials:
                        # Other workers hold the last trials: wait until they finish, or
                        # their heartbeats stop and their trials are failed and queued again.
                        optuna.storages.fail_stale_trials(study)
                        unbeaten.fail_dead(study)
                        time.sleep(POLL_SECONDS)
                        continue
                    if guarded is None:
                        guarded = _Guarded(objective(), n_trials)
                        settle()  # the libraries it loaded outlive every trial
                    _optimize_one(study, guarded, on_trial, progress, echo, prefix)
                    dropped = 0
                except Exception as e:
                    database_error = _database_error(e)
                    if database_error is None:
                        raise
                    dropped += 1
                    if dropped > MAX_DROPPED or not _answers_again(study):
                        # Not chained: a driver's message may echo the connection string.
                        raise storage_module.lost(database_error, study._storage) from None
                    line = prefix + console.reconnected(guarded.current if guarded else None)
                    progress.lines.append(line)
                    if echo:
                        echo(line)
        except KeyboardInterrupt as e:
            progress.interrupted_trial = _requeue(study, guarded.current if guarded else None)
            raise Interrupted(trial=progress.interrupted_trial) from e


def _optimize_one(
    study: optuna.Study,
    guarded: _Guarded,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None],
    progress: Progress,
    echo: Echo | None,
    prefix: str,
) -> None:
    """Runs one trial; a trial that another worker failed while this one was paused past the
    grace period (Optuna then refuses this worker's late write) is said and left behind."""
    import optuna

    try:
        study.optimize(guarded, n_trials=1, catch=(TrialFailed, _Surplus), callbacks=[on_trial])
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as e:
        if not _refused_late_write(e) or not _failed_elsewhere(study, guarded.current):
            raise
        line = f"{prefix}{console.taken_over(guarded.current)}"
        progress.lines.append(line)
        if echo:
            echo(line)


def _pass_lines(process: subprocess.Popen[str], output: Echo) -> threading.Thread:
    """Passes a worker's output lines to ``output`` as they come, from a thread of their own."""

    def pass_on() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output(line.rstrip("\n"))

    thread = threading.Thread(target=pass_on, daemon=True)
    thread.start()
    return thread


def _answers_again(study: optuna.Study) -> bool:
    """Whether the storage answers again within a few seconds (a dropped connection, a server
    restart); the connection pool replaces dead connections as it hands them out."""
    for wait in RECONNECT_WAITS:
        time.sleep(wait)
        try:
            study_module.counts(study)
            return True
        except Exception as e:
            if _database_error(e) is None:
                raise
    return False


def _grace_period(study: optuna.Study) -> float:
    rdb = storage_module.rdb_of(study._storage)
    if rdb is None or rdb.heartbeat_interval is None:
        return float("inf")
    return float(rdb.grace_period or 2 * rdb.heartbeat_interval)


def _refused_late_write(error: Exception) -> bool:
    """Whether Optuna refused to write to a trial that is finished already."""
    import optuna

    return isinstance(error, optuna.exceptions.UpdateFinishedTrialError) or str(error).startswith(
        "Cannot tell a "
    )


def _failed_elsewhere(study: optuna.Study, number: int | None) -> bool:
    """Whether trial ``number`` of this worker is FAIL in the storage: failed by another."""
    import optuna

    if number is None:
        return False
    return study_module.trial_by_number(study, number).state == optuna.trial.TrialState.FAIL


def _database_error(error: BaseException) -> BaseException | None:
    """The database's own error behind ``error`` (Optuna wraps a failed commit in a
    ``StorageInternalError``), or the storage proxy's (away, or its database failed), or None
    when the storage is not what failed."""
    import optuna
    import sqlalchemy.exc

    grpc = sys.modules.get("grpc")  # loaded by a grpc:// storage only
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return seen
        if grpc is not None and isinstance(seen, grpc.RpcError) and _status(seen) in _PROXY_DOWN:
            return seen
        seen = seen.__cause__ or seen.__context__
    return error if isinstance(error, optuna.exceptions.StorageInternalError) else None


def _status(error: BaseException) -> str:
    """A gRPC error's status name (``UNAVAILABLE``)."""
    code = getattr(error, "code", None)
    return str(getattr(code(), "name", "")) if callable(code) else ""


def _because(trial: optuna.trial.FrozenTrial) -> str:
    reason = trial.user_attrs.get("stop_reason", "failed")
    said = _BECAUSE.get(reason, "it failed")
    detail = trial.user_attrs.get("fail_reason")
    return f"{said} ({detail})" if detail and reason != "diverged" else said


def _requeue(study: optuna.Study, number: int | None) -> int | None:
    """Fails an interrupted trial (if still RUNNING) and queues its params to run on resume.

    Returns:
        The interrupted trial's number, or None when Ctrl-C came between trials.
    """
    import optuna

    if number is None:
        return None
    trial = study_module.trial_by_number(study, number)
    if trial.state == optuna.trial.TrialState.RUNNING:
        study.tell(number, state=optuna.trial.TrialState.FAIL)
    elif trial.state != optuna.trial.TrialState.FAIL or study_module.is_surplus(trial):
        return None
    if trial.params:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": number})
    return number


def search_objective(
    spec: StudySpec,
    threads: int | None = None,
    *,
    watcher: Watcher | None = None,
    worker: int | None = None,
    budget: Budget | None = None,
    artifacts: checkpoints.Store | None = None,
) -> Callable[[], ObjectiveFn]:
    """The factory of the search's objective: TensorFlow set up for this process (with
    ``threads`` threads), the data loaded and the model checked; ``watcher`` is told of each
    trial's start and epochs, ``worker`` recorded on each trial, ``budget`` ends a trial at the
    first epoch past it, and ``artifacts`` keeps checkpoints and the best model."""

    def make() -> ObjectiveFn:
        from autotune.backend import setup
        from autotune.objective import Objective

        setup(threads)
        return Objective(spec, watcher=watcher, worker=worker, budget=budget, artifacts=artifacts)

    return make


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
    echo: Echo | None = print,
    watcher: Watcher | None = None,
    gpus: str | None = None,
    trials_per_gpu: int | None = None,
) -> optuna.Study:
    """Runs (or resumes) a study until its total of trials is reached, and returns it.

    Args:
        study: A study name (``circles``), a study file's path, or a :class:`StudySpec`.
        storage: A storage URL; defaults to ``$AUTOTUNE_STORAGE``, then ``./autotune.db``.
        n_trials: The study's total of finished trials (overrides the study file).
        timeout: This run's time in seconds: no trial starts after it, and the running one ends
            at its first epoch past it (pruned, keeping its intermediate values).
        sampler, pruner, max_epochs, seed: Override the study file.
        workers: Worker processes on this machine sharing the study.
        warm_start: Another study in the same storage whose best complete configurations
            are queued first (see :mod:`autotune.warmstart`); none is queued twice.
        top: How many of ``warm_start``'s best trials to queue (default 5).
        echo: Receives what the warm start did and one line per finished trial; None for
            silence.
        watcher: Told of the run's events (:class:`autotune.progress.Display` shows them);
            the trackers the study asks for (:mod:`autotune.trackers`) are told too.
        gpus: ``auto``, ``none`` or GPU numbers (``0,1``): where the workers train (see
            :mod:`autotune.devices`); None is ``auto`` without its note on a machine with no
            GPU.
        trials_per_gpu: The most local workers on one GPU; None: as many as it takes to
            share them evenly.

    Returns:
        The ``optuna.Study``.

    Raises:
        AutotuneError: A mistake in the study, the storage or the arguments, or a search that
            failed (:class:`~autotune.errors.SearchFailedError`).
        Interrupted: Ctrl-C; finished trials are kept.
    """
    spec = resolve(study) if isinstance(study, str) else study
    spec = spec.with_overrides(
        n_trials=n_trials, sampler=sampler, pruner=pruner, max_epochs=max_epochs, seed=seed
    )
    timeout = timeout if timeout is not None else spec.timeout
    if workers < 1:
        raise AutotuneError(f"workers must be at least 1, but got {workers}.")
    url = storage_module.resolve_url(storage)
    # Every check comes before the first write: a run that fails changes nothing stored.
    existing = study_module.find_study(spec, url)
    if existing is not None and study_module.counts(existing).finished >= spec.n_trials:
        if echo:
            echo(console.already_done(spec))
        return existing
    from autotune import warmstart

    top = warmstart.DEFAULT_TOP if top is None else top
    if warm_start is not None:
        warmstart.check(study_module.names(url), warm_start, spec.name, top)
    from autotune import trackers

    trackers.check(spec)
    wanted = devices.parse(gpus or devices.AUTO)
    devices.before_tensorflow(wanted, workers)
    budget = Budget(timeout)
    artifacts = checkpoints.Store(checkpoints.folder(spec, url))
    # The trackers join once every check has passed (MLflow makes its database at once).
    watchers = Watchers([watcher] if watcher is not None else [], warn=echo)
    if workers == 1:
        # Loads the data and checks the model.
        objective = search_objective(spec, watcher=watchers, budget=budget,
                                     artifacts=artifacts)()  # fmt: skip
    else:
        search_objective(spec)()  # the same checks; the workers train
    seen = devices.visible()
    places = devices.plan(wanted, workers, trials_per_gpu, seen)
    if gpus is not None and wanted == devices.AUTO and not seen and echo is not None:
        echo("No GPU found: training on the CPU.")
    optuna_study = study_module.open_study(spec, url, sampler_seed=spec.seed, found=existing)
    if warm_start is not None:
        started = warmstart.warm_start(optuna_study, spec.space, warm_start, top=top)
        if echo is not None:
            for line in started.lines():
                echo(line)
    try:
        watchers.watchers += trackers.for_spec(spec, owner=True)
        watchers.started(optuna_study, spec, workers=workers, timeout=timeout)
        if workers == 1:
            work(optuna_study, lambda: objective, n_trials=spec.n_trials, echo=echo,
                 watcher=watchers, budget=budget)  # fmt: skip
        else:
            run_workers(spec, url, workers, timeout=timeout, study=optuna_study, watcher=watchers,
                        gpus=places)  # fmt: skip
    except Interrupted as e:
        done = study_module.counts(optuna_study).finished
        raise Interrupted(console.interrupted(spec, url, done, e.trial), e.trial) from e
    finally:
        watchers.close()
    return optuna_study


def join(
    name: str,
    *,
    storage: str | None = None,
    worker_index: int | None = None,
    threads: int | None = None,
    timeout: float | None = None,
    echo: Echo | None = print,
    watcher: Watcher | None = None,
) -> Progress:
    """Joins a study that exists in a storage, and works on it until its total is reached.

    Args:
        name: The study's name in the storage.
        storage: A storage URL; defaults to ``$AUTOTUNE_STORAGE``, then ``./autotune.db``.
        worker_index: Seeds this worker's sampler with the study's seed plus the index, and
            starts every line with the worker's name; by default the sampler is seeded at random.
        threads: TensorFlow threads for this process, or None for all cores.
        timeout: This worker's time in seconds, as :func:`run`'s.
        echo: Receives one line per finished trial.
        watcher: Told of this worker's events, as :func:`run`'s.

    Raises:
        StudyNotFoundError: No such study in the storage.
        Interrupted, AutotuneError: As :func:`work`.
    """
    url = storage_module.resolve_url(storage)
    stored = study_module.load_study(name, url)
    spec = study_module.stored_spec(stored)
    # Its connection goes before this worker opens its own: 64 workers starting at once would
    # otherwise hold two each for a while, past a database's default limit of 100.
    storage_module.close(stored._storage)
    seed = spec.seed + worker_index if worker_index is not None else None
    optuna_study = study_module.open_study(spec, url, sampler_seed=seed)
    prefix = f"[worker {worker_index}] " if worker_index is not None else ""
    from autotune import trackers

    trackers.check(spec)
    watchers = Watchers([watcher] if watcher is not None else [], warn=echo)
    budget = Budget(timeout)
    artifacts = checkpoints.Store(checkpoints.folder(spec, url))
    objective = search_objective(spec, threads, watcher=watchers, worker=worker_index,
                                 budget=budget, artifacts=artifacts)  # fmt: skip
    try:
        watchers.watchers += trackers.for_spec(spec, owner=False)
        watchers.started(optuna_study, spec, timeout=timeout)
        return work(optuna_study, objective, n_trials=spec.n_trials, echo=echo, prefix=prefix,
                    watcher=watchers, budget=budget)  # fmt: skip
    except Interrupted as e:
        raise Interrupted(console.interrupted(spec, url, None, e.trial), e.trial) from e
    finally:
        watchers.close()


def run_workers(
    spec: StudySpec,
    url: str,
    workers: int,
    *,
    timeout: float | None,
    study: optuna.Study | None = None,
    watcher: Watcher | None = None,
    gpus: list[str | None] | None = None,
) -> None:
    """Runs ``workers`` processes of ``autotune worker`` on the stored study, and waits.

    Each gets ``cores / workers`` TensorFlow threads and its own sampler seed. The storage URL
    goes through the environment, so that its password stays out of the process list. While
    they run, ``watcher`` is polled about once a second (it reads their trials from ``study``);
    if it takes their output (a live display), their lines reach it through pipes. Worker ``i``
    sees only the GPUs ``gpus[i]`` names (its ``CUDA_VISIBLE_DEVICES``; None leaves it as is).

    Raises:
        Interrupted: Ctrl-C, passed on to the workers.
        AutotuneError: A worker stopped with an error.
    """
    threads = max(1, (os.cpu_count() or 1) // workers)
    env = {**os.environ, storage_module.ENV_VAR: url}
    output = watcher.worker_output() if watcher is not None else None
    if output is not None:
        # Piped lines come at once, and the display shows the status, not the workers.
        env.update({"PYTHONUNBUFFERED": "1", "AUTOTUNE_STATUS_SECONDS": "0"})
    processes = []
    readers = []
    for index in range(workers):
        command = [
            sys.executable, "-m", "autotune", "worker",
            "--study", spec.name,
            "--worker-index", str(index),
            "--threads", str(threads),
        ]  # fmt: skip
        if timeout:
            command += ["--timeout", str(timeout)]
        command += watcher.worker_flags() if watcher is not None else []
        place = gpus[index] if gpus else None
        process = subprocess.Popen(
            command,
            env=env if place is None else {**env, devices.ENV: place},
            stdout=subprocess.PIPE if output is not None else None,
            text=True,
        )
        processes.append(process)
        if output is not None:
            readers.append(_pass_lines(process, output))
    try:
        while any(p.poll() is None for p in processes):
            if watcher is not None and study is not None:
                watcher.poll(study)
            time.sleep(POLL_SECONDS)
        codes = [p.wait() for p in processes]
    except KeyboardInterrupt as e:
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
        raise Interrupted() from e
    finally:
        for reader in readers:
            reader.join(timeout=5)
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed:
        raise AutotuneError(
            f"Worker(s) {', '.join(map(str, failed))} stopped with an error (see above)."
            f" Finished trials are kept; resume with: {console.resume_command(spec, url)}"
        )
