"""What a worker reads of its study: a bounded window of the trials, however long the study.

Optuna's samplers and pruners read the whole study at every trial (TPE) and every epoch (the
pruners), and Optuna's trial cache holds every trial in each worker: a study of 100,000 trials
would cost each worker minutes to start, gigabytes of memory, and most of a second of sampling
per trial. A worker's study instead reads through :func:`windowed`, a storage whose
``get_all_trials`` answers with

- every unfinished trial (running or waiting, which the workers and Optuna's queue need),
- the :data:`RECENT` finished trials with the highest numbers (failed and pruned ones
  included, as TPE and the pruners read them), and
- the :data:`BEST` best complete trials, whenever they ran.

Below ``RECENT`` finished trials the window is the whole study, so a study of normal size is
searched exactly as before. Past it, TPE still splits off its "good" trials from the best of
the whole study (TPE's good group is at most 25 trials by default, and the window always holds
the study's 25 best), and models the rest on the most recent trials, which its default weights
already favour. The pruners compare a trial with the recent trials and the best ones.

On a database the window is kept up to date incrementally, as Optuna's own cache does: each
read fetches only the trials created since the last read and the ones that were unfinished
then; once the window is full, older trials are let go. Writes pass straight through, and every
other read (one trial, the best trial, counts) asks the storage itself.
"""

from __future__ import annotations

import functools
import heapq
import threading
import time
from collections.abc import Container, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

# The finished trials a worker's sampler and pruners read, most recent first: TPE's cost grows
# with the trials it models (about 25 ms at 400 trials on one core), and 400 recent trials
# cover several hundred epochs of any pruning rung.
RECENT = 400
# The best complete trials always in the window: TPE's good group, gamma(n) = min(0.1 n, 25).
BEST = 25
# How long a window read without a write of this worker may be reused (other workers' trials
# are seen at most this late).
FRESH_SECONDS = 0.5


def window(
    trials: Iterable[FrozenTrial], maximize: bool, recent: int = RECENT, best: int = BEST
) -> list[FrozenTrial]:
    """The window of ``trials`` (see the module's text), by number."""
    from optuna.trial import TrialState

    trials = list(trials)
    unfinished = [t for t in trials if not t.state.is_finished()]
    finished = sorted((t for t in trials if t.state.is_finished()), key=lambda t: t.number)
    complete = [t for t in finished if t.state == TrialState.COMPLETE and t.value is not None]
    top = sorted(complete, key=functools.partial(_rank, maximize))[:best]
    latest = finished[-recent:] if recent else []
    kept = {t._trial_id: t for t in [*unfinished, *latest, *top]}
    return sorted(kept.values(), key=lambda t: t.number)


def _rank(maximize: bool, trial: FrozenTrial) -> tuple[float, int]:
    value = float(trial.value)  # type: ignore[arg-type]  # complete trials have one
    return (-value if maximize else value, trial.number)


class _Kept:
    """One study's window, refreshed from an RDB storage by what changed since the last read."""

    def __init__(self, rdb: Any, study_id: int, recent: int, best: int) -> None:
        import optuna

        self.rdb = rdb
        self.study_id = study_id
        self.recent_size = recent
        self.best_size = best
        direction = rdb.get_study_directions(study_id)[0]
        self.maximize = direction == optuna.study.StudyDirection.MAXIMIZE
        self.unfinished: dict[int, FrozenTrial] = {}
        self.recent: list[tuple[int, int]] = []  # a min-heap of (number, trial id)
        self.best: list[FrozenTrial] = []
        self.by_id: dict[int, FrozenTrial] = {}
        self.last_id = -1
        self.loaded = False

    def refresh(self) -> None:
        first = not self.loaded
        wanted = self._first_ids() if first else set(self.unfinished)
        if not wanted and self.last_id < 0:
            fetched = self.rdb._get_trials(self.study_id, None, set(), -1)
        else:
            newest = max([self.last_id, *wanted])
            fetched = self.rdb._get_trials(self.study_id, None, wanted, newest)
        for trial in fetched:
            self._take(trial)
        self.loaded = True

    def _first_ids(self) -> set[int]:
        """The ids of the window's trials, by three small queries; and the newest id."""
        import sqlalchemy as sa
        from optuna.storages._rdb import models

        trials = models.TrialModel.__table__
        values = models.TrialValueModel.__table__
        from optuna.trial import TrialState

        finished = trials.c.state.notin_([TrialState.RUNNING, TrialState.WAITING])
        mine = trials.c.study_id == self.study_id
        order = values.c.value.desc() if self.maximize else values.c.value.asc()
        queries = [
            sa.select(trials.c.trial_id).where(mine, ~finished),
            sa.select(trials.c.trial_id)
            .where(mine, finished)
            .order_by(trials.c.trial_id.desc())
            .limit(self.recent_size),
            sa.select(trials.c.trial_id)
            .join(values, values.c.trial_id == trials.c.trial_id)
            .where(
                mine,
                trials.c.state == TrialState.COMPLETE,
                values.c.objective == 0,
                values.c.value.is_not(None),
            )
            .order_by(order, trials.c.trial_id)
            .limit(self.best_size),
            sa.select(sa.func.max(trials.c.trial_id)).where(mine),
        ]
        with self.rdb.engine.connect() as connection:
            *found, newest = [connection.execute(q).scalars().all() for q in queries]
        ids = {i for rows in found for i in rows}
        self.last_id = max([self.last_id, *ids, *(n for n in newest if n is not None)])
        # Trials between the oldest kept one and the newest are read as they come.
        return ids

    def _take(self, trial: FrozenTrial) -> None:
        from optuna.trial import TrialState

        trial_id = trial._trial_id
        self.last_id = max(self.last_id, trial_id)
        if not trial.state.is_finished():
            self.unfinished[trial_id] = trial
            return
        self.unfinished.pop(trial_id, None)
        if trial_id in self.by_id:
            return  # a finished trial does not change
        self.by_id[trial_id] = trial
        heapq.heappush(self.recent, (trial.number, trial_id))
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            self.best.append(trial)
            self.best.sort(key=functools.partial(_rank, self.maximize))
            del self.best[self.best_size :]
        while len(self.recent) > self.recent_size:
            heapq.heappop(self.recent)
        kept = self._kept_ids()
        if len(self.by_id) > len(kept):  # let go of what left both the recent and the best
            self.by_id = {i: t for i, t in self.by_id.items() if i in kept}

    def _kept_ids(self) -> set[int]:
        return {i for _, i in self.recent} | {t._trial_id for t in self.best}

    def trials(self) -> list[FrozenTrial]:
        chosen = [self.by_id[i] for i in self._kept_ids()] + list(self.unfinished.values())
        return sorted(chosen, key=lambda t: t.number)


@functools.cache
def _windowed_class() -> type:
    """The :class:`Windowed` storage class (made on first use: it subclasses Optuna's)."""
    import copy

    import optuna
    from optuna.storages import BaseStorage
    from optuna.storages._heartbeat import BaseHeartbeat

    # Writes that change which trials there are, or finish one: the next read of the window
    # looks at once. The others (a running trial's params, values and attributes) are seen
    # within FRESH_SECONDS, as other workers' writes are.
    writes = ("create_new_trial", "set_trial_state_values")
    # What never changes for a study: kept after the first answer (Hyperband's pruner builds a
    # Study, which asks both, at every epoch of every trial).
    kept_answers = ("get_study_id_from_name", "get_study_directions")
    passed = ("set_trial_param", "set_trial_intermediate_value", "set_trial_user_attr",
              "set_trial_system_attr", "create_new_study", "delete_study",
              "set_study_user_attr", "set_study_system_attr", "get_study_name_from_id",
              "get_study_user_attrs", "get_study_system_attrs", "get_all_studies",
              "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id",
              "get_trial_param", "get_trial", "get_trial_params",
              "get_trial_user_attrs", "get_trial_system_attrs", "remove_session",
              "check_trial_is_updatable", "get_n_trials")  # fmt: skip
    beats: dict[str, Any] = {"record_heartbeat": None, "_get_stale_trial_ids": [],
             "get_heartbeat_interval": None, "get_heartbeat_stale_trial_callback": None,
             "get_failed_trial_callback": None}  # fmt: skip

    def passing(name: str) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return getattr(self._backend, name)(*args, **kwargs)

        method.__name__ = name
        return method

    def writing(name: str) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            self._written = True
            return getattr(self._backend, name)(*args, **kwargs)

        method.__name__ = name
        return method

    def keeping(name: str) -> Any:
        def method(self: Any, key: Any) -> Any:
            answers = self._answers.setdefault(name, {})
            if key not in answers:
                answers[key] = getattr(self._backend, name)(key)
            return answers[key]

        method.__name__ = name
        return method

    def beating(name: str, otherwise: Any) -> Any:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(self._backend, BaseHeartbeat):
                return copy.copy(otherwise)
            return getattr(self._backend, name)(*args, **kwargs)

        method.__name__ = name
        return method

    def __init__(self: Any, backend: Any, recent: int = RECENT, best: int = BEST) -> None:
        self._backend = backend
        self._recent = recent
        self._best = best
        self._kept = {}  # study id: its window (a _Kept, or a _Frozen read)
        self._read_at = {}  # study id: when its window was last read (monotonic seconds)
        self._written = True
        self._answers = {}  # method name: {argument: answer}, for kept_answers
        self._lock = threading.Lock()

    def get_all_trials(
        self: Any,
        study_id: int,
        deepcopy: bool = True,
        states: Container[optuna.trial.TrialState] | None = None,
    ) -> list[FrozenTrial]:
        with self._lock:
            trials = self._window(study_id)
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def _window(self: Any, study_id: int) -> list[FrozenTrial]:
        now = time.monotonic()
        kept = self._kept.get(study_id)
        fresh = now - self._read_at.get(study_id, -1e9) < FRESH_SECONDS
        if kept is not None and fresh and not self._written:
            return kept.trials()
        self._written = False
        self._read_at[study_id] = now
        if hasattr(self._backend, "engine"):
            if kept is None:
                kept = self._kept[study_id] = _Kept(self._backend, study_id, self._recent,
                                                    self._best)  # fmt: skip
            kept.refresh()
            return kept.trials()
        # Another storage (in memory, a proxy): its own trials, cut to the window.
        direction = self._backend.get_study_directions(study_id)[0]
        maximize = direction == optuna.study.StudyDirection.MAXIMIZE
        trials = self._backend.get_all_trials(study_id, deepcopy=False)
        cut = window(trials, maximize, self._recent, self._best)
        self._kept[study_id] = _Frozen(cut, maximize)
        return cut

    def best_trials(self: Any, study_id: int, top: int) -> list[FrozenTrial]:
        """The study's ``top`` best complete trials (at most ``best``), from the window."""
        with self._lock:
            self._window(study_id)
            return list(self._kept[study_id].best[:top])

    def get_best_trial(self: Any, study_id: int) -> FrozenTrial:
        # Read now, not within FRESH_SECONDS: whether a trial just told is the best decides
        # which model is kept. The window always holds the best trials; the storage would
        # sort every complete trial for it.
        self._written = True
        found = best_trials(self, study_id, 1)
        if not found:
            raise ValueError("No trials are completed yet.")
        return copy.deepcopy(found[0])

    namespace: dict[str, Any] = {name: passing(name) for name in passed}
    namespace.update(best_trials=best_trials, get_best_trial=get_best_trial)
    namespace.update({name: writing(name) for name in writes})
    namespace.update({name: keeping(name) for name in kept_answers})
    namespace.update({name: beating(name, otherwise) for name, otherwise in beats.items()})
    namespace.update(__init__=__init__, get_all_trials=get_all_trials, _window=_window,
                     __doc__=windowed.__doc__, __module__=__name__)  # fmt: skip
    return type("Windowed", (BaseStorage, BaseHeartbeat), namespace)


class _Frozen:
    """A window read whole from a storage without SQL, reused while fresh."""

    def __init__(self, trials: list[FrozenTrial], maximize: bool) -> None:
        from optuna.trial import TrialState

        self._trials = trials
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        self.best = sorted(complete, key=functools.partial(_rank, maximize))

    def trials(self) -> list[FrozenTrial]:
        return self._trials


def windowed(backend: Any, recent: int = RECENT, best: int = BEST) -> Any:
    """A storage that passes everything to ``backend`` except ``get_all_trials``, which answers
    with the study's window (see the module's text). A worker's study reads through it.

    Args:
        backend: The storage: Optuna's RDB storage (read incrementally), or any other.
        recent: How many of the most recent finished trials the window holds.
        best: How many of the best complete trials it always holds.
    """
    return _windowed_class()(backend, recent, best)


def through_window(
    study: optuna.Study, recent: int = RECENT, best: int = BEST, *, like: Any = None
) -> None:
    """Makes ``study``'s sampler and pruners read its window, not the whole study; writes and
    every other read go to its storage as before (Optuna's trial cache is left out).

    The window's first read (a second or so of a long study) starts at once in a thread of
    its own, so that it overlaps what the process does next (importing TensorFlow, loading the
    data); the first read of the sampler waits for it.

    Args:
        like: Another study of the same name and storage, already read through a window: its
            window is taken over, read or being read.
    """
    if like is not None and hasattr(like._storage, "_kept"):
        study._storage = like._storage
        return
    backend = getattr(study._storage, "_backend", study._storage)
    view = study._storage = windowed(backend, recent, best)
    study_id = study._study_id

    def first_read() -> None:
        try:
            view.get_all_trials(study_id, deepcopy=False)
        except Exception:  # noqa: S110  # the sampler's own first read tries again, and says why
            pass

    threading.Thread(target=first_read, name="autotune-window", daemon=True).start()
