"""Layers that every family shares, and that a user's builder may end with too."""

from __future__ import annotations

from typing import Any


def output_layer(n_outputs: int) -> Any:
    """The head every built-in family ends with: softmax for classes, linear for regression.

    A user's builder can end with it too: ``outputs = output_layer(n_outputs)(x)``.
    """
    import keras

    if n_outputs == 1:
        return keras.layers.Dense(1, name="output")
    return keras.layers.Dense(n_outputs, activation="softmax", name="output")
