"""Warm start: seed a study with the best configurations of another study in the same storage.

The best ``top`` complete trials of the source study (best first, in the source's direction) are
queued in the target study with ``study.enqueue_trial``, so its next trials try them before the
sampler proposes its own. A configuration is skipped, with the reason, when the target's space
cannot hold it (:func:`autotune.space.rejects`), or when the target already has it, run or
waiting; so running or resuming with the same warm start queues nothing twice. Only the
parameters that the target's space uses are queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autotune.errors import AutotuneError
from autotune.space import Space, rejects
from autotune.study import ranked

if TYPE_CHECKING:
    import optuna

DEFAULT_TOP = 5


@dataclass
class WarmStart:
    """What a warm start did.

    Attributes:
        source: The source study's name.
        top: How many of its best trials were asked for.
        enqueued: Numbers of the source trials whose params were queued.
        skipped: Source trial numbers, each with why it was not queued.
    """

    source: str
    top: int
    enqueued: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What to tell the user: one line of counts, then one per skipped configuration."""
        considered = len(self.enqueued) + len(self.skipped)
        if considered == 0:
            return [f"Warm start from '{self.source}': it has no complete trial; nothing queued."]
        queued = ", ".join(f"#{n}" for n in self.enqueued)
        out = [
            f"Warm start from '{self.source}': queued {len(self.enqueued)} of its best"
            f" {considered} trials" + (f" ({queued})." if queued else ".")
        ]
        out += [f"  skipped trial #{number}: {reason}" for number, reason in self.skipped]
        return out


def _active(space: Space, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params that ``space`` uses, given the values its parents take in ``params``."""
    active: dict[str, Any] = {}
    for param in space.values():
        if param.is_active(active) and param.name in params:
            active[param.name] = params[param.name]
    return active


def _key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    # repr tells True from 1 and 1 from 1.0, as Optuna's distributions do.
    return tuple(sorted((name, repr(value)) for name, value in params.items()))


def _present(study: optuna.Study) -> set[tuple[tuple[str, str], ...]]:
    """The configurations the study holds: its trials' params, and queued trials' fixed params."""
    from autotune.study import all_trials

    keys = set()
    for trial in all_trials(study):
        for params in (trial.params, trial.system_attrs.get("fixed_params")):
            if params:
                keys.add(_key(params))
    return keys


def check(names: list[str], source: str, target: str, top: int = DEFAULT_TOP) -> None:
    """Checks a warm start before anything is written: ``source`` is another of the studies
    ``names`` that the storage holds, and ``top`` is at least 1.

    Raises:
        AutotuneError: Naming what is wrong, and the studies the storage holds.
    """
    if top < 1:
        raise AutotuneError(f"top must be at least 1, but got {top}.")
    if source == target:
        raise AutotuneError(
            f"Study '{source}' cannot warm-start from itself; name another study in the storage."
        )
    if source not in names:
        raise AutotuneError(
            f"Cannot warm-start from '{source}': no such study in this storage; it holds:"
            f" {', '.join(sorted(names)) or 'none'}."
        )


def warm_start(
    study: optuna.Study, space: Space, source: str, *, top: int = DEFAULT_TOP
) -> WarmStart:
    """Queues the best ``top`` complete configurations of study ``source`` in ``study``.

    Args:
        study: The target ``optuna.Study``.
        space: The target's search space.
        source: The name of another study in the same storage.
        top: How many of the source's best complete trials to consider.

    Returns:
        What was queued and what was skipped, and why.

    Raises:
        AutotuneError: ``top`` is below 1, or ``source`` is the target or not in the storage.
    """
    import optuna

    check(optuna.get_all_study_names(storage=study._storage), source, study.study_name, top)
    origin = optuna.load_study(study_name=source, storage=study._storage)
    result = WarmStart(source, top)
    present = _present(study)
    for trial in ranked(origin, top):
        reasons = rejects(space, trial.params)
        params = _active(space, trial.params)
        if reasons:
            result.skipped.append((trial.number, "; ".join(reasons)))
        elif _key(params) in present:
            result.skipped.append((trial.number, "already in this study"))
        else:
            study.enqueue_trial(params, user_attrs={"warm_start": f"{source}#{trial.number}"})
            present.add(_key(params))
            result.enqueued.append(trial.number)
    return result
