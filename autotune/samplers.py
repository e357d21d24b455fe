"""Optuna samplers by name.

A factory gets the seed, the study file's ``sampler_options``, the search space and the
study's :class:`Plan` (its total of trials and its seed), and returns a sampler. Optuna does
not store samplers, so the runner rebuilds one from the spec on every load.

The ``tpe`` sampler starts from a space-filling design: its start-up trials (the ones TPE
draws before it models anything) are the points of a scrambled Sobol sequence over the whole
space, one point per trial number, instead of independent random draws; and the start-up is
sized to the study (:func:`startup_trials`). ``[sampler_options] startup = "random"`` and
``n_startup_trials = 10`` give Optuna's own start.

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
import random
import threading
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from typing import Any

from autotune.errors import AutotuneError, StudySpecError
from autotune.space import Param, Space

Options = Mapping[str, Any]


@dataclass(frozen=True)
class Plan:
    """The study a sampler searches for.

    Attributes:
        n_trials: The study's total of finished trials; None where it is not known.
        seed: The study's seed, the same in every worker (each worker's sampler seed is the
            study's seed plus its index, so the sampler seed alone would give each worker its
            own start-up design); None: the sampler seed.
    """

    n_trials: int | None = None
    seed: int | None = None


# The constraint that an out-of-memory trial violates (value 1; feasible trials have none).
OUT_OF_MEMORY = "out_of_memory"


# How TPE draws its start-up trials: a scrambled Sobol sequence, or Optuna's random draws.
STARTUPS = ("sobol", "random")
# TPE's start-up length where the study's size is not known: Optuna's default.
OPTUNA_STARTUP_TRIALS = 10


def startup_trials(n_trials: int | None) -> int:
    """TPE's start-up length for a study of ``n_trials``: 4 below 60 trials, 8 from 60.

    About a tenth of a study of 30 to 80 trials, the studies autotune ships, and at most 8, so
    that TPE models most of the budget; a power of two, since the first 2**m points of a Sobol
    sequence are its balanced ones (each parameter's range cut into 2**m equal bins, one point
    in each). Optuna's 10 where the size is not known."""
    if n_trials is None:
        return OPTUNA_STARTUP_TRIALS
    return 4 if n_trials < 60 else 8


def _tpe(seed: int | None, options: Options, space: Space, plan: Plan) -> Any:
    options = dict(options)
    startup = options.pop("startup", "sobol")
    if not isinstance(startup, str) or startup not in STARTUPS:
        raise StudySpecError(
            f"[sampler_options] startup must be one of {', '.join(STARTUPS)}, but got {startup!r}."
        )
    count = options.setdefault("n_startup_trials", startup_trials(plan.n_trials))
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise StudySpecError(
            f"[sampler_options] n_startup_trials must be a whole number, 0 or more, but got"
            f" {count!r}."
        )
    sampler = _infeasible_aware_tpe()(seed=seed, **options)
    if startup == "sobol":
        # TPE draws every parameter of its start-up trials from this one sampler, and decides
        # itself which trials are start-up ones (fewer complete or pruned trials than
        # n_startup_trials): the Sobol design answers in the random sampler's place.
        design_seed = plan.seed if plan.seed is not None else seed
        sampler._random_sampler = SobolStart(space, design_seed, sampler._random_sampler)
    return sampler


# SciPy's Sobol engines may share state between threads (Optuna's QMCSampler builds its own
# under a lock too).
_SOBOL_LOCK = threading.Lock()


class SobolStart:
    """Start-up trials from a scrambled Sobol sequence: trial ``k`` takes point ``k``.

    Every parameter of the space that takes more than one value owns one dimension of the
    sequence, in the space's order; a conditional parameter reads its dimension when it is
    active. Points go by trial number, which the storage hands out once per trial, so several
    workers (whose designs share the study's seed) each take different points of one design
    and none is drawn twice. A parameter that is not in the space (a training loop's own
    ``trial.suggest_*``) goes to ``fallback``, Optuna's random sampler.
    """

    def __init__(self, space: Space, seed: int | None, fallback: Any) -> None:
        names = [name for name, param in reachable(space).items() if _varies(param)]
        self.dimensions = {name: index for index, name in enumerate(names)}
        self.seed = seed if seed is not None else random.SystemRandom().getrandbits(32)
        self.fallback = fallback
        self._points: Any = None

    def point(self, k: int) -> Any:
        """Point ``k`` of the sequence, in [0, 1) in each dimension."""
        if self._points is None or k >= len(self._points):
            from scipy.stats import qmc

            # Whole powers of two: SciPy warns that other lengths lose Sobol's balance.
            m = max(4, k.bit_length())
            with _SOBOL_LOCK:
                engine = qmc.Sobol(len(self.dimensions), scramble=True, rng=self.seed)
                self._points = engine.random_base2(m)
        return self._points[k]

    def sample_independent(
        self, study: Any, trial: Any, param_name: str, param_distribution: Any
    ) -> Any:
        dimension = self.dimensions.get(param_name)
        if dimension is None or param_distribution.single():
            return self.fallback.sample_independent(study, trial, param_name, param_distribution)
        return at(float(self.point(trial.number)[dimension]), param_distribution)

    def before_trial(self, study: Any, trial: Any) -> None:
        self.fallback.before_trial(study, trial)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self.fallback.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.fallback.reseed_rng()


def at(u: float, distribution: Any) -> Any:
    """The value of an Optuna distribution at ``u`` in [0, 1): uniform, log-uniform on a log
    scale, an int or a stepped float in equal bins, one per value (as Optuna's random sampler
    maps a uniform draw), a categorical in equal bins, one per choice."""
    import numpy as np
    from optuna._transform import _SearchSpaceTransform
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        choices = distribution.choices
        return choices[min(int(u * len(choices)), len(choices) - 1)]
    transform = _SearchSpaceTransform({"x": distribution})
    low, high = transform.bounds[0]
    return transform.untransform(np.array([low + u * (high - low)]))["x"]


def _varies(param: Param) -> bool:
    if param.kind == "categorical":
        return len(param.choices) > 1
    low, high = param.bounds
    return low != high


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


def _random(seed: int | None, options: Options, space: Space, plan: Plan) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed, **options)


def _cmaes(seed: int | None, options: Options, space: Space, plan: Plan) -> Any:
    import optuna

    # CMA-ES models the float and int parameters jointly; categorical and conditional ones
    # are sampled independently (at random), which Optuna would otherwise warn about per trial.
    return optuna.samplers.CmaEsSampler(
        seed=seed, **{"warn_independent_sampling": False, **options}
    )


def _qmc(seed: int | None, options: Options, space: Space, plan: Plan) -> Any:
    import optuna

    return optuna.samplers.QMCSampler(
        seed=seed, **{"warn_independent_sampling": False, "scramble": True, **options}
    )


def _gp(seed: int | None, options: Options, space: Space, plan: Plan) -> Any:
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


def _grid(seed: int | None, options: Options, space: Space, plan: Plan) -> Any:
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


SAMPLERS: dict[str, Callable[[int | None, Options, Space, Plan], Any]] = {
    "tpe": _tpe,
    "random": _random,
    "cmaes": _cmaes,
    "qmc": _qmc,
    "gp": _gp,
    "grid": _grid,
}


def make_sampler(
    name: str, seed: int | None, options: Options, space: Space, plan: Plan | None = None
) -> Any:
    """Builds the named sampler.

    Args:
        name: A name from :data:`SAMPLERS`.
        seed: The sampler's seed; None for a random one.
        options: The study file's ``[sampler_options]``, keyword arguments of the sampler.
        space: The study's search space.
        plan: The study's total of trials and seed, which size the ``tpe`` start-up and seed
            its design; by default unknown (Optuna's 10 start-up trials, the sampler seed).

    Raises:
        StudySpecError: ``sampler_options`` has a keyword or value the sampler does not take,
            or the space does not suit it (grid on a continuous parameter).
    """
    try:
        return SAMPLERS[name](seed, options, space, plan or Plan())
    except TypeError as e:
        raise StudySpecError(
            f"sampler_options do not fit the {name} sampler: {e}. Check the keyword names."
        ) from e
