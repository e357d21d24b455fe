"""Search spaces: declarative parameters, sampled from an ``optuna.Trial``.

A space is written as plain data, the same in Python and in a study file's ``[space]`` table::

    learning_rate = { low = 1e-4, high = 0.3, log = true }    # float, log scale
    units = { low = 4, high = 128, log = true }               # int (both bounds whole)
    optimizer = { choices = ["sgd", "adam"] }                 # categorical
    momentum = { low = 0.5, high = 0.99, when = { optimizer = ["momentum"] } }
    dropout = 0.0                                             # fixed: one choice

A parameter with ``when`` exists in a trial only while its parent took one of the listed
values, so the sampler never sees a parameter the trial does not use.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autotune.errors import StudySpecError

Value = bool | int | float | str
_RANGE_KEYS = ("low", "high", "log", "step")
_ALLOWED_KEYS = ("choices", "high", "log", "low", "step", "when")


@dataclass(frozen=True)
class Param:
    """One dimension of a search space.

    Attributes:
        name: The parameter's name, as the model builder and Optuna see it.
        kind: ``"float"``, ``"int"`` or ``"categorical"``.
        low, high, log, step: The range of a float or int parameter.
        choices: The values of a categorical parameter.
        when: Parent name to the parent values under which this parameter exists.
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Value, ...] = ()
    when: tuple[tuple[str, tuple[Value, ...]], ...] = ()

    @property
    def bounds(self) -> tuple[float | int, float | int]:
        """``(low, high)`` of a float or int parameter."""
        assert self.low is not None and self.high is not None, f"'{self.name}' has no range"
        return self.low, self.high

    def is_active(self, params: Mapping[str, Any]) -> bool:
        """Whether the parents sampled so far ask for this parameter."""
        return all(parent in params and params[parent] in values for parent, values in self.when)

    def suggest(self, trial: Any) -> Value:
        """Samples this parameter from an ``optuna.Trial``."""
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, self.low, self.high, step=self.step or 1, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` lies in this parameter's range or choices."""
        if self.kind == "categorical":
            return any(type(value) is type(c) and value == c for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and value != int(value):
            return False
        low, high = self.bounds
        return low <= value <= high

    def grid(self) -> list[Value]:
        """The values of a discrete parameter, for the grid sampler."""
        if self.kind == "categorical":
            return list(self.choices)
        low, high = self.bounds
        if self.kind == "int":
            return list(range(int(low), int(high) + 1, int(self.step or 1)))
        if self.step is None:
            raise StudySpecError(
                f"The grid sampler needs a discrete space, but '{self.name}' is continuous."
                f" Give it choices = [...] or a step in [space], or use another sampler."
            )
        count = int(round((high - low) / self.step)) + 1
        return [low + i * self.step for i in range(count)]

    def to_dict(self) -> dict[str, Any]:
        """The parameter as plain data, in the study file's form."""
        out: dict[str, Any]
        if self.kind == "categorical":
            out = {"choices": list(self.choices)}
        else:
            out = {"low": self.low, "high": self.high}
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
        if self.when:
            out["when"] = {parent: list(values) for parent, values in self.when}
        return out

    def describe(self) -> str:
        """A short human form: ``[0.0001, 0.3] log`` or ``{sgd, adam}``."""
        if self.kind == "categorical":
            text = "{" + ", ".join(str(c) for c in self.choices) + "}"
        else:
            text = f"[{self.low}, {self.high}]" + (" log" if self.log else "")
            if self.step is not None:
                text += f" step {self.step}"
        for parent, values in self.when:
            text += f" when {parent} in {{{', '.join(str(v) for v in values)}}}"
        return text


Space = dict[str, Param]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_param(name: str, raw: Any, base: Param | None = None, where: str = "[space]") -> Param:
    """Builds a :class:`Param` from its plain-data form, narrowing ``base`` if given.

    Keys that ``raw`` leaves out (``log``, ``when``, a bound) are taken from ``base``, so a study
    file can narrow a default range with ``{ high = 0.1 }``.

    Raises:
        StudySpecError: The definition is malformed; the message names ``where`` and the key.
    """
    label = f"{where} '{name}'"
    when = base.when if base is not None else ()
    if isinstance(raw, (bool, int, float, str)):
        return Param(name, "categorical", choices=(raw,), when=when)
    if isinstance(raw, list):
        raw = {"choices": raw}
    if not isinstance(raw, Mapping):
        raise StudySpecError(
            f"{label} must be a value, a list of choices or a table such as"
            f" {{ low = 1, high = 10 }}, but got {raw!r}."
        )
    unknown = sorted(set(raw) - set(_ALLOWED_KEYS))
    if unknown:
        raise StudySpecError(
            f"{label} has unknown key(s) {', '.join(unknown)}; allowed: {', '.join(_ALLOWED_KEYS)}."
        )
    if "when" in raw:
        when = _parse_when(raw["when"], label)

    if "choices" in raw:
        if any(key in raw for key in _RANGE_KEYS):
            raise StudySpecError(f"{label} has both choices and a range; give one of them.")
        choices = raw["choices"]
        if not isinstance(choices, list) or not choices:
            raise StudySpecError(f"{label}: choices must be a non-empty list, but got {choices!r}.")
        for choice in choices:
            if not isinstance(choice, (bool, int, float, str)):
                raise StudySpecError(
                    f"{label}: a choice must be a number, a string or a boolean, but got"
                    f" {choice!r}."
                )
        if len(set(map(repr, choices))) != len(choices):
            raise StudySpecError(f"{label}: choices repeat a value: {choices!r}.")
        return Param(name, "categorical", choices=tuple(choices), when=when)

    ranged = base if base is not None and base.kind != "categorical" else None
    low = raw.get("low", ranged.low if ranged else None)
    high = raw.get("high", ranged.high if ranged else None)
    log = raw.get("log", ranged.log if ranged else False)
    step = raw.get("step", ranged.step if ranged and "log" not in raw else None)
    if low is None or high is None:
        raise StudySpecError(f"{label} needs both low and high (or choices).")
    for key, value in (("low", low), ("high", high)):
        if not _is_number(value):
            raise StudySpecError(f"{label}: {key} must be a number, but got {value!r}.")
    if step is not None and (not _is_number(step) or step <= 0):
        raise StudySpecError(f"{label}: step must be a positive number, but got {step!r}.")
    if not isinstance(log, bool):
        raise StudySpecError(f"{label}: log must be true or false, but got {log!r}.")

    if ranged is not None:
        kind = ranged.kind
    else:
        kind = (
            "int"
            if _is_whole(low) and _is_whole(high) and (step is None or _is_whole(step))
            else "float"
        )
    if kind == "int":
        if not (_is_whole(low) and _is_whole(high) and (step is None or _is_whole(step))):
            raise StudySpecError(
                f"{label} takes whole numbers, but got low={low!r}, high={high!r}"
                + (f", step={step!r}" if step is not None else "")
                + "."
            )
    else:
        low, high = float(low), float(high)
        step = float(step) if step is not None else None
    if low > high:
        raise StudySpecError(f"{label}: low must not exceed high, but got low={low}, high={high}.")
    if log and low <= 0:
        raise StudySpecError(f"{label}: a log scale needs low > 0, but got low={low}.")
    if log and step is not None:
        raise StudySpecError(f"{label}: log and step cannot be used together; drop one of them.")
    return Param(name, kind, low=low, high=high, log=log, step=step, when=when)


def _parse_when(raw: Any, label: str) -> tuple[tuple[str, tuple[Value, ...]], ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise StudySpecError(
            f'{label}: when must be a table such as when = {{ optimizer = ["momentum"] }},'
            f" but got {raw!r}."
        )
    out = []
    for parent, values in sorted(raw.items()):
        if not isinstance(values, list):
            values = [values]
        out.append((parent, tuple(values)))
    return tuple(out)


def build_space(
    default: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    allow_new: bool = False,
    where: str = "[space]",
) -> Space:
    """The default space narrowed by a study file's ``[space]`` table.

    Args:
        default: The model family's default space, in plain-data form.
        overrides: The study file's ``[space]`` table.
        allow_new: Whether ``overrides`` may add parameters the default does not have (a user's
            own model family reads them; a built-in family would silently ignore them).
        where: Names the source in error messages.

    Raises:
        StudySpecError: A definition is malformed, names an unknown parameter, or a ``when``
            names a parent that does not exist.
    """
    space: Space = {
        name: parse_param(name, raw, where="default space") for name, raw in default.items()
    }
    for name, raw in (overrides or {}).items():
        if name not in space and not allow_new:
            raise StudySpecError(
                f"{where} names unknown parameter '{name}'; this model family has:"
                f" {', '.join(sorted(space))}."
            )
        space[name] = parse_param(name, raw, space.get(name), where)
    return _in_dependency_order(space, where)


def _in_dependency_order(space: Space, where: str) -> Space:
    for param in space.values():
        for parent, _ in param.when:
            if parent not in space:
                raise StudySpecError(
                    f"{where} '{param.name}' depends on unknown parameter '{parent}'; the space"
                    f" has: {', '.join(sorted(space))}."
                )
    ordered: Space = {}
    pending = list(space.values())
    while pending:
        ready = [p for p in pending if all(parent in ordered for parent, _ in p.when)]
        if not ready:
            names = ", ".join(sorted(p.name for p in pending))
            raise StudySpecError(f"{where}: the when conditions of {names} form a cycle.")
        for param in ready:
            ordered[param.name] = param
            pending.remove(param)
    return ordered


def sample(space: Space, trial: Any) -> dict[str, Value]:
    """Samples every active parameter of ``space`` from ``trial``, parents first."""
    params: dict[str, Value] = {}
    for param in space.values():
        if param.is_active(params):
            params[param.name] = param.suggest(trial)
    return params


def space_to_dict(space: Space) -> dict[str, Any]:
    """The space as plain data, in the study file's form."""
    return {name: param.to_dict() for name, param in space.items()}


def space_hash(space: Space) -> str:
    """A stable short hash of the space: equal spaces give equal hashes across processes."""
    text = json.dumps(space_to_dict(space), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rejects(space: Space, params: Mapping[str, Any]) -> list[str]:
    """Why ``params`` (say, another study's best trial) cannot be a trial of ``space``.

    Returns:
        One reason per offending parameter; empty when the space holds the configuration.
    """
    reasons = []
    active: dict[str, Any] = {}
    for param in space.values():
        if not param.is_active(active):
            continue
        if param.name not in params:
            reasons.append(f"{param.name} is missing")
        elif not param.contains(params[param.name]):
            reasons.append(f"{param.name}={params[param.name]!r} is outside {param.describe()}")
        else:
            active[param.name] = params[param.name]
    return reasons


def typical(space: Space) -> dict[str, Value]:
    """One configuration of ``space`` without a trial, to check that a model builds before any
    trial is spent: each active parameter's first choice, or the middle of its range (the
    geometric middle on a log scale)."""
    params: dict[str, Value] = {}
    for param in space.values():
        if not param.is_active(params):
            continue
        if param.kind == "categorical":
            params[param.name] = param.choices[0]
            continue
        low, high = param.bounds
        middle = math.sqrt(low * high) if param.log else (low + high) / 2
        if param.step is not None:
            middle = low + round((middle - low) / param.step) * param.step
        params[param.name] = round(middle) if param.kind == "int" else min(middle, high)
    return params
