"""A small convolutional network for images: inputs of shape (height, width, channels).

``conv_blocks`` blocks, each a Conv2D of ``kernel_size`` with ``filters`` channels in the first
block and twice as many in each next one, then BatchNorm when ``batchnorm`` is on, ReLU, and
2x2 max pooling while the image is at least 2 pixels on each side. The feature maps are
flattened into a head of ``n_layers`` dense layers of ``units`` (the MLP's hidden layers, with
its dropout and BatchNorm), then the output layer. Inputs of shape (height, width) get one
channel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from autotune.errors import ModelError

SPACE: dict[str, Any] = {
    "filters": {"low": 8, "high": 64, "log": True},
    "conv_blocks": {"low": 1, "high": 3},
    "kernel_size": {"choices": [3, 5]},
    "n_layers": {"low": 1, "high": 2},
    "units": {"low": 16, "high": 128, "log": True},
    "dropout": {"low": 0.0, "high": 0.5},
    "batchnorm": {"choices": [False, True]},
}


def build(params: Mapping[str, Any], input_shape: tuple[int, ...], n_outputs: int) -> Any:
    """Builds the CNN that ``params`` describe; see :mod:`autotune.models`.

    Raises:
        ModelError: The inputs are not images.
    """
    import keras

    from autotune.models.layers import output_layer
    from autotune.models.mlp import dense_stack

    if len(input_shape) not in (2, 3):
        n = math.prod(input_shape)
        side = math.isqrt(n)
        example = f"[{side}, {side}, 1]" if side * side == n else "[height, width, channels]"
        raise ModelError(
            f"Model family 'cnn' needs images, inputs of shape (height, width, channels), but the"
            f" data's examples have shape {tuple(input_shape)}. Add reshape = {example} to the"
            f" study's [data] table."
        )
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Reshape((*input_shape, 1))(inputs) if len(input_shape) == 2 else inputs
    batchnorm = params.get("batchnorm", False)
    filters = params.get("filters", 16)
    for block in range(params.get("conv_blocks", 1)):
        x = keras.layers.Conv2D(
            filters * 2**block, params.get("kernel_size", 3), padding="same", use_bias=not batchnorm
        )(x)
        if batchnorm:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation("relu")(x)
        if min(x.shape[1], x.shape[2]) >= 2:
            x = keras.layers.MaxPooling2D(2)(x)
    x = dense_stack(keras.layers.Flatten()(x), params)
    return keras.Model(inputs, output_layer(n_outputs)(x), name="cnn")
