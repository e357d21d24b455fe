"""Reading a study's trials: the best complete ones, in rank order."""

from __future__ import annotations

from typing import Any


def ranked(study: Any, top: int | None = None) -> list[Any]:
    """The study's complete trials, best first in its direction; the first ``top`` if given."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return sorted(complete, key=lambda t: t.value, reverse=maximize)[:top]
