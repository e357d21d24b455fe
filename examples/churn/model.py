"""A model family of your own: a funnel of dense layers, each half as wide as the one before.

autotune calls ``build(params, input_shape, n_outputs)`` once per trial with the sampled
``params``: the keys of ``SPACE`` below, plus the training parameters autotune searches for
every model (learning_rate, optimizer, decay, batch_size, ...), which it applies itself.

Keras is imported inside ``build``, so that ``autotune show`` answers without loading
TensorFlow.
"""

# The default search space, in the same form as a study file's [space] table.
SPACE = {
    "units": {"low": 8, "high": 128, "log": True},  # width of the first layer
    "n_layers": {"low": 1, "high": 3},
    "activation": {"choices": ["relu", "elu"]},
    "dropout": {"low": 0.0, "high": 0.4},
    "batchnorm": {"choices": [False, True]},
}


def build(params, input_shape, n_outputs):
    """Returns an uncompiled keras.Model; autotune compiles it with the sampled optimizer."""
    import keras

    inputs = keras.Input(shape=input_shape)
    x = inputs
    units = params["units"]
    for _ in range(params["n_layers"]):
        x = keras.layers.Dense(max(units, 2), use_bias=not params["batchnorm"])(x)
        if params["batchnorm"]:
            x = keras.layers.BatchNormalization()(x)
        x = keras.layers.Activation(params["activation"])(x)
        x = keras.layers.Dropout(params["dropout"])(x)
        units //= 2
    # One probability per class; a single linear output would do for regression.
    outputs = keras.layers.Dense(n_outputs, activation="softmax" if n_outputs > 1 else None)(x)
    return keras.Model(inputs, outputs, name="funnel")
