"""A multilayer perceptron: ``n_layers`` dense layers of ``units`` each.

Each hidden layer is Dense, then BatchNorm when ``batchnorm`` is on (the dense layer then drops
its bias, which BatchNorm's shift replaces), then the activation, then dropout.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SPACE: dict[str, Any] = {
    "n_layers": {"low": 1, "high": 3},
    "units": {"low": 4, "high": 128, "log": True},
    "activation": {"choices": ["relu", "tanh", "elu"]},
    "dropout": {"low": 0.0, "high": 0.5},
    "batchnorm": {"choices": [False, True]},
}


def dense_stack(x: Any, params: Mapping[str, Any]) -> Any:
    """``n_layers`` hidden dense layers of ``units`` on ``x``, as described above."""
    import keras

    batchnorm = params.get("batchnorm", False)
    dropout = params.get("dropout", 0.0)
    for _ in range(params.get("n_layers", 1)):
        x = keras.layers.Dense(params.get("units", 32), use_bias=not batchnorm)(x)
        if batchnorm:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation(params.get("activation", "relu"))(x)
        if dropout > 0:
            x = keras.layers.Dropout(dropout)(x)
    return x


def build(params: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> Any:
    """Builds the MLP that ``params`` describe; see :mod:`autotune.models`."""
    import keras

    from autotune.models.layers import output_layer

    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
    return keras.Model(inputs, output_layer(n_outputs)(dense_stack(x, params)), name="mlp")
