"""What a running study tells those who watch it: the terminal, TensorBoard, MLflow.

A :class:`Watcher` receives a study's events in the process that trains: a trial started (with
its params), an epoch ended (with its metrics), a trial finished (as Optuna stored it). The
search's objective sends the first two, the work loop the third. The process that waits on
local workers calls :meth:`Watcher.poll` instead, since their trials train elsewhere.

:class:`Watchers` passes each event to several watchers. A watcher that raises (a tracking
server gone away) is said once and dropped: watching a study never ends it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

    from autotune.spec import StudySpec


class Watcher:
    """Receives a study's events; every method does nothing unless a subclass says otherwise."""

    def started(
        self, study: optuna.Study, spec: StudySpec, *, workers: int = 1, timeout: Any = None
    ) -> None:
        """The run (or a worker) begins: ``workers`` local workers, ``timeout`` seconds."""

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        """Trial ``number`` starts training with ``params``."""

    def epoch_ended(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        """Trial ``number`` finished epoch ``epoch`` (counted from 0) with these metrics."""

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """A trial ended (complete, pruned or failed), as the storage now holds it."""

    def poll(self, study: optuna.Study) -> None:
        """Called about once a second by the process that waits on local workers."""

    def worker_output(self) -> Callable[[str], None] | None:
        """Where local workers' output lines go; None leaves them on this process's output."""
        return None

    def worker_flags(self) -> list[str]:
        """Options for ``autotune worker`` that local workers start with."""
        return []

    def close(self) -> None:
        """The run ended (finished, failed or interrupted): release what is held."""


class Watchers(Watcher):
    """Several watchers as one. One that raises is said once on ``warn`` and dropped."""

    def __init__(self, watchers: Sequence[Watcher], warn: Callable[[str], None] | None = None):
        self.watchers = list(watchers)
        self.warn = warn

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for watcher in list(self.watchers):
            try:
                getattr(watcher, method)(*args, **kwargs)
            except Exception as e:
                self.watchers.remove(watcher)
                if self.warn is not None:
                    self.warn(
                        f"{getattr(watcher, 'label', type(watcher).__name__)} stopped: {e}"
                        f" ({type(e).__name__}); the study goes on without it."
                    )

    def started(
        self, study: optuna.Study, spec: StudySpec, *, workers: int = 1, timeout: Any = None
    ) -> None:
        self._each("started", study, spec, workers=workers, timeout=timeout)

    def trial_started(self, number: int, params: Mapping[str, Any]) -> None:
        self._each("trial_started", number, params)

    def epoch_ended(self, number: int, epoch: int, metrics: Mapping[str, float]) -> None:
        self._each("epoch_ended", number, epoch, metrics)

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._each("trial_finished", study, trial)

    def poll(self, study: optuna.Study) -> None:
        self._each("poll", study)

    def worker_output(self) -> Callable[[str], None] | None:
        outputs = [w.worker_output() for w in self.watchers]
        return next((o for o in outputs if o is not None), None)

    def worker_flags(self) -> list[str]:
        return [flag for w in self.watchers for flag in w.worker_flags()]

    def close(self) -> None:
        # Every watcher is closed, even after one fails to.
        self._each("close")
