"""Optuna samplers by name.

A factory gets the seed, the study file's ``sampler_options`` and the search space, and returns
a sampler. Optuna does not store samplers, so the runner rebuilds one from the spec on every load.

A trial that runs out of memory is failed (it never trained, so it does not count toward the
study's total) and marked infeasible with Optuna's ``trial.set_constraint`` (key
:data:`OUT_OF_MEMORY`). TPE reads constraints only off the complete and pruned trials it
models, and so would never see a failed one; the ``tpe`` sampler here also shows it the failed
trials that are infeasible. TPE puts infeasible trials among the bad ones, so it proposes
fewer configurations like them (bigger batches, wider layers) without ever counting them as
finished.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Container, Mapping
from typing import Any

from autotune.errors import AutotuneError, StudySpecError
from autotune.space import Space

Options = Mapping[str, Any]


# The constraint that an out-of-memory trial violates (value 1; feasible trials have none).
OUT_OF_MEMORY = "out_of_memory"


def _tpe(seed: int | None, options: Options, space: Space) -> Any:
    return _infeasible_aware_tpe()(seed=seed, **options)


@functools.cache
def _infeasible_aware_tpe() -> type:
    """TPESampler that also models the failed trials marked infeasible (out of memory)."""
    import optuna

    State = optuna.trial.TrialState

    class _WithInfeasible:
        """The study as TPE reads it, its infeasible failed trials among the rest."""

        def __init__(self, study: optuna.Study) -> None:
            self._study = study

        def __getattr__(self, name: str) -> Any:
            return getattr(self._study, name)

        def _get_trials(
            self,
            deepcopy: bool = True,
            states: Container[Any] | None = None,
            use_cache: bool = False,
        ) -> list[optuna.trial.FrozenTrial]:
            trials = self._study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
            if states is None or State.FAIL in states:
                return trials
            failed = self._study._get_trials(deepcopy=deepcopy, states=(State.FAIL,),
                                             use_cache=use_cache)  # fmt: skip
            infeasible = [t for t in failed if any(v > 0 for v in t.constraints.values())]
            return sorted(trials + infeasible, key=lambda t: t.number)

    from optuna.samplers._tpe import _truncnorm
    from scipy.special import log_ndtr

    class InfeasibleAwareTPESampler(optuna.samplers.TPESampler):
        def _sample(self, study: Any, trial: Any, search_space: Any) -> dict[str, Any]:
            view: Any = _WithInfeasible(study)
            # Optuna computes the log of the normal CDF one element at a time in Python, for
            # every candidate against every trial of an integer or stepped parameter: most of a
            # TPE trial's sampling time. SciPy's log_ndtr is the same function, vectorized
            # (they agree to 1e-12), and samples 2 to 5 times faster (benchmarks/tpe.md).
            python_loop = _truncnorm._log_ndtr
            _truncnorm._log_ndtr = log_ndtr
            try:
                return super()._sample(view, trial, search_space)
            finally:
                _truncnorm._log_ndtr = python_loop

    return InfeasibleAwareTPESampler


def _random(seed: int | None, options: Options, space: Space) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed, **options)


def _cmaes(seed: int | None, options: Options, space: Space) -> Any:
    import optuna

    # CMA-ES models the float and int parameters jointly; categorical and conditional ones
    # are sampled independently (at random), which Optuna would otherwise warn about per trial.
    return optuna.samplers.CmaEsSampler(
        seed=seed, **{"warn_independent_sampling": False, **options}
    )


def _qmc(seed: int | None, options: Options, space: Space) -> Any:
    import optuna

    return optuna.samplers.QMCSampler(
        seed=seed, **{"warn_independent_sampling": False, "scramble": True, **options}
    )


def _gp(seed: int | None, options: Options, space: Space) -> Any:
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise AutotuneError(
            "The gp sampler needs PyTorch, which is not installed. Install a CPU build with"
            " `pip install torch --index-url https://download.pytorch.org/whl/cpu`"
            " (or `pip install 'autotune[gp]'`), or choose another sampler."
        ) from e
    import optuna

    return optuna.samplers.GPSampler(seed=seed, **{"warn_independent_sampling": False, **options})


def _grid(seed: int | None, options: Options, space: Space) -> Any:
    import optuna

    grid = {name: param.grid() for name, param in reachable(space).items()}
    return optuna.samplers.GridSampler(grid, seed=seed, **options)


def reachable(space: Space) -> Space:
    """The parameters some trial can use: a conditional one whose parent's choices never meet
    its condition (``momentum`` when the optimizer is fixed to adam) is left out."""
    out: Space = {}
    for name, param in space.items():
        if all(
            parent in out
            and (out[parent].kind != "categorical" or set(out[parent].choices) & set(values))
            for parent, values in param.when
        ):
            out[name] = param
    return out


SAMPLERS: dict[str, Callable[[int | None, Options, Space], Any]] = {
    "tpe": _tpe,
    "random": _random,
    "cmaes": _cmaes,
    "qmc": _qmc,
    "gp": _gp,
    "grid": _grid,
}


def make_sampler(name: str, seed: int | None, options: Options, space: Space) -> Any:
    """Builds the named sampler.

    Raises:
        StudySpecError: ``sampler_options`` has a keyword the sampler does not take, or the
            space does not suit it (grid on a continuous parameter).
    """
    try:
        return SAMPLERS[name](seed, options, space)
    except TypeError as e:
        raise StudySpecError(
            f"sampler_options do not fit the {name} sampler: {e}. Check the keyword names."
        ) from e
