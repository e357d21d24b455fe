"""The search's objective: what Optuna calls once per trial."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from autotune import checkpoints, devices
from autotune import data as data_module
from autotune.backend import fresh_graphs
from autotune.check import check_model
from autotune.errors import TrialFailed
from autotune.space import sample
from autotune.spec import StudySpec
from autotune.trial import (
    VALIDATION_BATCH,
    ArrayBatches,
    Budget,
    Reporter,
    Trained,
    label_of,
    optuna_pruning,
    pipeline,
    train,
    trial_seed,
)

if TYPE_CHECKING:
    import optuna

    from autotune.checkpoints import Store
    from autotune.watch import Watcher


class Objective:
    """The search's objective, which Optuna calls once per trial: sample the params, seed,
    train through :func:`train` with a reporter that feeds the pruner, and record on the trial
    what happened.

    Built once per worker: it loads the data and checks the model before the first trial.
    ``last`` holds the figures of the last trial it trained (its model freed).

    Trial attributes: ``epochs`` (trained), ``best_epoch`` (1-based), ``seed``,
    ``stop_reason`` (``completed``, ``early-stopped``, ``pruned``, ``diverged``, ``oom``,
    ``failed``, ``interrupted`` or ``budget``), ``seconds`` (wall time of building, compiling
    and training the model), ``sampling_seconds`` (of the sampler choosing its params), and
    ``worker`` (the local worker's index, when given), ``device`` (``GPU <n>`` or ``CPU``). A
    trial that the run's time budget ended is pruned, and keeps ``best_epoch`` and
    ``best_value`` (its best so far).

    Args:
        spec: The study.
        watcher: Told when each trial starts and each epoch ends (:mod:`autotune.watch`).
        worker: This local worker's index, recorded on each trial.
        budget: The run's time, which ends a trial at the first epoch past it.
        artifacts: The study's artifact store: each trial's checkpoints, the best model.

    Raises:
        DataError, ModelError: From loading the data or checking the model.
    """

    def __init__(
        self,
        spec: StudySpec,
        *,
        watcher: Watcher | None = None,
        worker: int | None = None,
        budget: Budget | None = None,
        artifacts: Store | None = None,
    ) -> None:
        self.spec = spec
        self.budget = budget
        self.artifacts = artifacts
        self.watcher = watcher
        self.worker = worker
        self.device = devices.current()
        self.dataset = data_module.load(spec.data, spec.folder, where=spec.source)
        check_model(spec, self.dataset)
        self.validation = pipeline(
            self.dataset.x_val, self.dataset.y_val, VALIDATION_BATCH, self.dataset.images,
            self.dataset.stream("validation"),
        )  # fmt: skip
        self.batches = ArrayBatches.of(self.dataset)
        self.last: Trained | None = None
        self.candidate: tuple[int, bytes] | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        spec = self.spec
        sampling = time.perf_counter()
        params = sample(spec.space, trial)
        trial.set_user_attr("sampling_seconds", round(time.perf_counter() - sampling, 4))
        store = self.artifacts
        resume = None
        if store is not None:
            try:
                resume = checkpoints.resume_point(trial, store)
            except Exception as e:  # a storage that cannot say: the trial starts afresh
                trial.set_user_attr("resume_failed", f"{type(e).__name__}: {e}"[:500])
        # A retry trains the configuration of the attempt it retries, with that attempt's seed.
        seed = trial_seed(spec.seed, trial.number)
        if resume is not None and resume.seed is not None:
            seed = int(resume.seed)
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("device", self.device)
        if self.worker is not None:
            trial.set_user_attr("worker", self.worker)
        watcher, number = self.watcher, trial.number
        if watcher is not None:
            watcher.trial_started(number, params)
        saving = None
        if store is not None and spec.checkpoint_every:
            saving = checkpoints.Checkpoints(trial, store, spec.checkpoint_every)
        start = time.perf_counter()  # the trial's ``seconds``: building, compiling, training
        reporter = Reporter(
            spec,
            prune=optuna_pruning(trial),
            label=label_of(spec),
            on_epoch=(lambda e, m: watcher.epoch_ended(number, e, m)) if watcher else None,
            budget=self.budget,
            checkpoints=saving,
        )
        if store is not None and resume is not None and resume.payload is not None:
            reporter.pending = resume.payload
            reporter.on_resume = lambda values: _went_on(trial, values, resume, saving, store)
        self.last = None
        self.candidate = None
        try:
            with fresh_graphs():
                trained = train(
                    spec, params, self.dataset,
                    seed=seed, reporter=reporter, validation=self.validation,
                    batches=self.batches,
                )  # fmt: skip
                if store is not None and trained.value is not None:
                    self._candidate(trial, trained)
                # The trial keeps its figures; its model goes with the graphs it traced.
                trained.model = None
        except optuna.TrialPruned:
            _record(trial, "budget" if reporter.out_of_time else "pruned", reporter.epochs, start)
            if reporter.out_of_time:
                best_epoch, best_value = reporter.best()
                trial.set_user_attr("best_epoch", best_epoch)
                trial.set_user_attr("best_value", best_value)
            if saving is not None:
                saving.discard()
            raise
        except TrialFailed as e:
            _record(trial, e.reason, reporter.epochs, start)
            if saving is not None:
                saving.discard()
            raise
        except KeyboardInterrupt:
            # Its checkpoint stays: the trial runs again on resume and goes on from it.
            _record(trial, "interrupted", reporter.epochs, start)
            raise
        self.last = trained
        _record(trial, trained.stop_reason, trained.epochs, start)
        trial.set_user_attr("best_epoch", trained.best_epoch)
        if saving is not None:
            saving.discard()
        assert trained.value is not None  # a reporter was given
        return trained.value

    def _candidate(self, trial: optuna.Trial, trained: Trained) -> None:
        """Keeps the trained model's bytes while the trial may be the study's best; whether it
        is, :meth:`finished` learns once the trial is told. A model that cannot be saved (a
        subclassed one without ``get_config``) is no candidate, and the trial says why."""
        assert trained.value is not None
        try:
            if checkpoints.could_be_best(trial.study, trained.value):
                self.candidate = (trial.number, checkpoints.model_bytes(trained.model))
        except Exception as e:
            trial.set_user_attr("best_model_error", f"{type(e).__name__}: {e}"[:500])

    def finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """After a trial is told: keeps its model as the study's best model if it is the best
        trial now (see :func:`autotune.checkpoints.keep_best`)."""
        candidate, self.candidate = self.candidate, None
        if candidate is None or candidate[0] != trial.number or self.artifacts is None:
            return
        checkpoints.keep_best(study, trial, candidate[1], self.artifacts)


def _went_on(
    trial: optuna.Trial,
    values: list[float],
    resume: checkpoints.Resume,
    saving: checkpoints.Checkpoints | None,
    store: checkpoints.Store,
) -> None:
    """A retried trial went on from its attempt's checkpoint: the epochs before it join its
    learning curve, it says where it went on from, and the checkpoint it read goes."""
    for step, value in enumerate(values):
        trial.report(value, step)
    trial.set_user_attr("resumed_from_epoch", resume.epoch)
    trial.set_user_attr("resumed_from_trial", resume.trial)
    checkpoints.release(trial, resume, saving, store)


def _record(trial: optuna.Trial, reason: str, epochs: int, start: float) -> None:
    trial.set_user_attr("stop_reason", reason)
    trial.set_user_attr("epochs", epochs)
    trial.set_user_attr("seconds", round(time.perf_counter() - start, 3))
