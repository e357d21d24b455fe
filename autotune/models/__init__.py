"""Model families: each has a default search space and a ``build`` function.

``build(params, input_shape, n_outputs)`` returns a ``keras.Model`` whose output layer is a
softmax over ``n_outputs`` classes, or one linear unit for regression (``n_outputs == 1``).
The built-in families return it uncompiled; training compiles it with the sampled optimizer
and decay and the task's loss.

A user's own family is named by reference, ``"package.module:build"`` or
``"path/to/file.py:build"``; the module may define ``SPACE``, its default search space in the
same plain-data form as :data:`autotune.models.mlp.SPACE`. Its builder may also return a
compiled model: its loss and metrics are kept, and only the optimizer is replaced by the
sampled one (the training parameters are searched for every family).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from autotune import references
from autotune.errors import ModelError, StudySpecError
from autotune.models import cnn, mlp
from autotune.models.layers import output_layer
from autotune.space import build_space

__all__ = ["FAMILIES", "Family", "family", "output_layer"]

BUILD_ARGUMENTS = ("params", "input_shape", "n_outputs")


@dataclass(frozen=True)
class Family:
    """A model family: its architecture's default space and its builder.

    Attributes:
        name: A built-in family's name, or the reference to a user's builder.
        space: The default space, in plain-data form.
        build: ``build(params, input_shape, n_outputs) -> keras.Model``; None for a user's
            training loop, which builds its model itself.
        user: Whether it is a user's own family, whose study file's ``[space]`` may add
            parameters (a built-in family would silently ignore them).
    """

    name: str
    space: Mapping[str, Any]
    build: Callable[[Mapping[str, Any], tuple[int, ...], int], Any] | None
    user: bool = False


FAMILIES: dict[str, Family] = {
    "mlp": Family("mlp", mlp.SPACE, mlp.build),
    "cnn": Family("cnn", cnn.SPACE, cnn.build),
}

ALLOWED = ", ".join(sorted(FAMILIES)) + ", or your own as 'module:function' or 'file.py:function'"


def family(model: str, folder: str | os.PathLike[str] = "", where: str = "") -> Family:
    """The family a study file's ``model`` names: a built-in one, or a user's builder.

    Args:
        model: A name from :data:`FAMILIES`, or a reference to a user's builder.
        folder: Where a relative path in the reference starts (the study file's folder).
        where: Names the study file in error messages.

    Raises:
        StudySpecError: ``model`` is neither a built-in family nor a reference.
        ModelError: The user's module or function is missing, cannot be imported, takes other
            arguments, or its ``SPACE`` is malformed.
    """
    prefix = f"{where}: " if where else ""
    if model in FAMILIES:
        return FAMILIES[model]
    if not references.is_reference(model):
        raise StudySpecError(f"{prefix}unknown model '{model}'; allowed: {ALLOWED}.")
    build, space = user_code(model, folder, BUILD_ARGUMENTS, label=f"{prefix}model '{model}'")
    return Family(model, space, build, user=True)


def user_code(
    reference: str, folder: str | os.PathLike[str], arguments: tuple[str, ...], *, label: str
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """A user's function that a study file names (a builder, a training loop, a ``fit``),
    checked to take ``arguments``, and the default search space its module defines as ``SPACE``.

    Raises:
        ModelError: The module or function is missing, cannot be imported, takes other
            arguments, or its ``SPACE`` is malformed.
    """
    function, module = references.load(reference, folder, label=label, error=ModelError)
    references.check_signature(function, arguments, label=label, error=ModelError)
    space = vars(module).get("SPACE", {})
    if not isinstance(space, Mapping):
        raise ModelError(
            f"{label}: SPACE must be a dict of parameter definitions such as"
            f" {{'units': {{'low': 4, 'high': 64}}}}, but it is a {type(space).__name__}."
        )
    build_space({}, space, allow_new=True, where=f"{label}: SPACE")
    return function, dict(space)
