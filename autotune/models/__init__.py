"""Model families: each has a default search space and a ``build`` function.

``build(params, input_shape, n_outputs)`` returns an uncompiled ``keras.Model`` whose output
layer is a softmax over ``n_outputs`` classes, or one linear unit for regression
(``n_outputs == 1``). Training compiles it with the sampled optimizer and the task's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from autotune.models import mlp


@dataclass(frozen=True)
class Family:
    """A model family: its architecture's default space and its builder."""

    name: str
    space: Mapping[str, Any]
    build: Callable[[Mapping[str, Any], tuple[int, ...], int], Any]


FAMILIES: dict[str, Family] = {
    "mlp": Family("mlp", mlp.SPACE, mlp.build),
}


def output_layer(n_outputs: int) -> Any:
    """The head every built-in family ends with: softmax for classes, linear for regression."""
    import keras

    if n_outputs == 1:
        return keras.layers.Dense(1, name="output")
    return keras.layers.Dense(n_outputs, activation="softmax", name="output")
