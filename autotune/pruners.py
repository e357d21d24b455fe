"""Optuna pruners by name, fed the per-epoch validation metric.

A factory gets the study's ``max_epochs`` and its ``pruner_options`` (keyword arguments that
override the defaults here) and returns a pruner.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from autotune.errors import StudySpecError

Options = Mapping[str, Any]

# Epoch-1 metrics are noisy: compare trials only after a few epochs and a few finished trials.
_MEDIAN_DEFAULTS = {"n_startup_trials": 5, "n_warmup_steps": 3}


def _median(max_epochs: int, options: Options) -> Any:
    import optuna

    return optuna.pruners.MedianPruner(**{**_MEDIAN_DEFAULTS, **options})


def _percentile(max_epochs: int, options: Options) -> Any:
    import optuna

    return optuna.pruners.PercentilePruner(**{"percentile": 25.0, **_MEDIAN_DEFAULTS, **options})


def _successive_halving(max_epochs: int, options: Options) -> Any:
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(**options)


def _hyperband(max_epochs: int, options: Options) -> Any:
    import optuna

    # "auto" would take the epochs of the first finished trial, which early stopping shortens.
    return optuna.pruners.HyperbandPruner(
        **{"min_resource": 1, "max_resource": max_epochs, "reduction_factor": 3, **options}
    )


def _patient(max_epochs: int, options: Options) -> Any:
    import optuna

    options = dict(options)
    patience = options.pop("patience", 3)
    min_delta = options.pop("min_delta", 0.0)
    wrapped = optuna.pruners.MedianPruner(**{**_MEDIAN_DEFAULTS, **options})
    return optuna.pruners.PatientPruner(wrapped, patience=patience, min_delta=min_delta)


def _threshold(max_epochs: int, options: Options) -> Any:
    import optuna

    if "lower" not in options and "upper" not in options:
        raise StudySpecError(
            "The threshold pruner needs a bound: set [pruner_options] lower = 0.6 for a metric"
            " to maximize, or upper = 1.0 for one to minimize."
        )
    return optuna.pruners.ThresholdPruner(**options)


def _none(max_epochs: int, options: Options) -> Any:
    import optuna

    return optuna.pruners.NopPruner(**options)


PRUNERS: dict[str, Callable[[int, Options], Any]] = {
    "median": _median,
    "percentile": _percentile,
    "successive-halving": _successive_halving,
    "hyperband": _hyperband,
    "patient": _patient,
    "threshold": _threshold,
    "none": _none,
}


def make_pruner(name: str, max_epochs: int, options: Options) -> Any:
    """Builds the named pruner.

    Raises:
        StudySpecError: ``pruner_options`` has a keyword or a value the pruner does not take.
    """
    from autotune.storage import quiet_optuna

    try:
        with quiet_optuna():  # PatientPruner is marked experimental
            return PRUNERS[name](max_epochs, options)
    except (TypeError, ValueError) as e:
        raise StudySpecError(
            f"pruner_options do not fit the {name} pruner: {e}. Check the keyword names and values."
        ) from e
