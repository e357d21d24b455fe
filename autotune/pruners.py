"""Optuna pruners by name, fed the per-epoch validation metric.

A factory gets the study's ``max_epochs``, its ``n_trials`` (None where not known) and its
``pruner_options`` (keyword arguments that override the defaults here) and returns a pruner.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from autotune.errors import StudySpecError

Options = Mapping[str, Any]

# Epoch-1 metrics are noisy: compare trials only after a few epochs and a few finished trials.
_MEDIAN_DEFAULTS = {"n_startup_trials": 5, "n_warmup_steps": 3}


def _median(max_epochs: int, n_trials: int | None, options: Options) -> Any:
    import optuna

    return optuna.pruners.MedianPruner(**{**_MEDIAN_DEFAULTS, **options})


def _percentile(max_epochs: int, n_trials: int | None, options: Options) -> Any:
    import optuna

    return optuna.pruners.PercentilePruner(**{"percentile": 25.0, **_MEDIAN_DEFAULTS, **options})


def _successive_halving(max_epochs: int, n_trials: int | None, options: Options) -> Any:
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(**options)


def _hyperband(max_epochs: int, n_trials: int | None, options: Options) -> Any:
    import optuna

    # "auto" would take the epochs of the first finished trial, which early stopping shortens.
    options = {"max_resource": max_epochs, "reduction_factor": 3, **options}
    if "min_resource" not in options:
        options["min_resource"] = sized_min_resource(
            options["max_resource"], options["reduction_factor"], n_trials
        )
    return optuna.pruners.HyperbandPruner(**options)


def bracket_shares(max_resource: int, min_resource: int, reduction_factor: int) -> list[float]:
    """The share of a study's trials that Optuna's HyperbandPruner sends to each bracket, most
    aggressive first.

    Optuna counts ``floor(log_factor(max / min)) + 1`` brackets; bracket ``i`` (``s = brackets
    - 1 - i`` rungs below the top) gets a budget of ``ceil(brackets * factor**s / (s + 1))``,
    and a hash of the trial's number picks its bracket in proportion to the budgets
    (``HyperbandPruner._try_initialization`` and ``_get_bracket_id``).
    """
    brackets = math.floor(math.log(max_resource / min_resource, reduction_factor)) + 1
    budgets = [
        math.ceil(brackets * reduction_factor**s / (s + 1)) for s in reversed(range(brackets))
    ]
    return [budget / sum(budgets) for budget in budgets]


def sized_min_resource(max_resource: Any, reduction_factor: Any, n_trials: int | None) -> int:
    """Hyperband's first rung, in epochs, for a study of ``n_trials``: the smallest one that
    leaves every bracket ``reduction_factor`` trials or more, on average.

    A bracket is a successive-halving run of its own, whose trials compete with each other
    only; each rung keeps the best ``1 / reduction_factor`` of the trials that reached it (the
    best one until twice the factor have), so a bracket of fewer trials than the factor has
    no fraction to keep, only a running best that depends on the order the trials came in. A
    larger first rung means fewer brackets, each with more trials. 1 (Optuna's count of
    brackets) where the study's size is not known.
    """
    if (
        n_trials is None
        or not isinstance(max_resource, int)
        or not isinstance(reduction_factor, int)
        or max_resource < 1
        or reduction_factor < 2
    ):
        return 1  # Optuna's own checks name a bad value
    for min_resource in range(1, max_resource):
        shares = bracket_shares(max_resource, min_resource, reduction_factor)
        if n_trials * min(shares) >= reduction_factor:
            return min_resource
    return max_resource


def _patient(max_epochs: int, n_trials: int | None, options: Options) -> Any:
    import optuna

    options = dict(options)
    patience = options.pop("patience", 3)
    min_delta = options.pop("min_delta", 0.0)
    wrapped = optuna.pruners.MedianPruner(**{**_MEDIAN_DEFAULTS, **options})
    return optuna.pruners.PatientPruner(wrapped, patience=patience, min_delta=min_delta)


def _threshold(max_epochs: int, n_trials: int | None, options: Options) -> Any:
    import optuna

    if "lower" not in options and "upper" not in options:
        raise StudySpecError(
            "The threshold pruner needs a bound: set [pruner_options] lower = 0.6 for a metric"
            " to maximize, or upper = 1.0 for one to minimize."
        )
    return optuna.pruners.ThresholdPruner(**options)


def _none(max_epochs: int, n_trials: int | None, options: Options) -> Any:
    import optuna

    return optuna.pruners.NopPruner(**options)


PRUNERS: dict[str, Callable[[int, int | None, Options], Any]] = {
    "median": _median,
    "percentile": _percentile,
    "successive-halving": _successive_halving,
    "hyperband": _hyperband,
    "patient": _patient,
    "threshold": _threshold,
    "none": _none,
}


def make_pruner(name: str, max_epochs: int, options: Options, n_trials: int | None = None) -> Any:
    """Builds the named pruner.

    Args:
        name: A name from :data:`PRUNERS`.
        max_epochs: The most epochs a trial trains.
        options: The study file's ``[pruner_options]``, which win over the defaults here.
        n_trials: The study's total of trials, which sizes Hyperband's brackets; None where it
            is not known (Optuna's count of brackets).

    Raises:
        StudySpecError: ``pruner_options`` has a keyword or a value the pruner does not take.
    """
    from autotune.storage import quiet_optuna

    try:
        with quiet_optuna():  # PatientPruner is marked experimental
            return PRUNERS[name](max_epochs, n_trials, options)
    except (TypeError, ValueError) as e:
        raise StudySpecError(
            f"pruner_options do not fit the {name} pruner: {e}. Check the keyword names and values."
        ) from e
