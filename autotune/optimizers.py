"""Optimizers and learning-rate decay policies, as factories by name.

Both registries are plain dicts; their keys are the allowed values of the ``optimizer`` and
``decay`` parameters. Keras is imported inside the factories, so that reading this module (to
validate a study file) stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Params = Mapping[str, Any]


def _sgd(lr: Any, params: Params) -> Any:
    import keras

    return keras.optimizers.SGD(learning_rate=lr)


def _momentum(lr: Any, params: Params) -> Any:
    import keras

    return keras.optimizers.SGD(learning_rate=lr, momentum=params["momentum"])


def _nesterov(lr: Any, params: Params) -> Any:
    import keras

    return keras.optimizers.SGD(learning_rate=lr, momentum=params["momentum"], nesterov=True)


def _adagrad(lr: Any, params: Params) -> Any:
    import keras

    return keras.optimizers.Adagrad(learning_rate=lr)


def _rmsprop(lr: Any, params: Params) -> Any:
    import keras

    return keras.optimizers.RMSprop(learning_rate=lr)


def _adam(lr: Any, params: Params) -> Any:
    import keras

    return keras.optimizers.Adam(learning_rate=lr)


def _adamw(lr: Any, params: Params) -> Any:
    import keras

    return keras.optimizers.AdamW(learning_rate=lr, weight_decay=params["weight_decay"])


OPTIMIZERS: dict[str, Callable[[Any, Params], Any]] = {
    "sgd": _sgd,
    "momentum": _momentum,
    "nesterov": _nesterov,
    "adagrad": _adagrad,
    "rmsprop": _rmsprop,
    "adam": _adam,
    "adamw": _adamw,
}


# A decay factory gets the initial rate, the params, the steps per epoch and the maximum number
# of epochs, and returns a rate or a schedule that counts optimizer steps.
def _no_decay(lr: float, params: Params, steps_per_epoch: int, max_epochs: int) -> Any:
    return lr


def _exponential(lr: float, params: Params, steps_per_epoch: int, max_epochs: int) -> Any:
    import keras

    # Multiplies the rate by exp_decay_rate once per epoch, smoothly.
    return keras.optimizers.schedules.ExponentialDecay(
        lr, decay_steps=steps_per_epoch, decay_rate=params["exp_decay_rate"]
    )


def _linear(lr: float, params: Params, steps_per_epoch: int, max_epochs: int) -> Any:
    import keras

    return keras.optimizers.schedules.PolynomialDecay(
        lr,
        decay_steps=steps_per_epoch * max_epochs,
        end_learning_rate=lr * params["linear_end_factor"],
        power=1.0,
    )


def _cosine(lr: float, params: Params, steps_per_epoch: int, max_epochs: int) -> Any:
    import keras

    return keras.optimizers.schedules.CosineDecay(
        lr, decay_steps=steps_per_epoch * max_epochs, alpha=params["cosine_alpha"]
    )


def _step(lr: float, params: Params, steps_per_epoch: int, max_epochs: int) -> Any:
    import keras

    # Multiplies the rate by step_factor every step_epochs epochs.
    return keras.optimizers.schedules.ExponentialDecay(
        lr,
        decay_steps=steps_per_epoch * params["step_epochs"],
        decay_rate=params["step_factor"],
        staircase=True,
    )


DECAYS: dict[str, Callable[[float, Params, int, int], Any]] = {
    "none": _no_decay,
    "exponential": _exponential,
    "linear": _linear,
    "cosine": _cosine,
    "step": _step,
}


# The training hyperparameters every model family shares. Conditional parameters carry their
# parent's name, so one name never means two things.
SPACE: dict[str, Any] = {
    "learning_rate": {"low": 1e-4, "high": 0.3, "log": True},
    "optimizer": {"choices": list(OPTIMIZERS)},
    "momentum": {"low": 0.5, "high": 0.99, "when": {"optimizer": ["momentum", "nesterov"]}},
    "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True, "when": {"optimizer": ["adamw"]}},
    "decay": {"choices": list(DECAYS)},
    "exp_decay_rate": {"low": 0.8, "high": 0.99, "when": {"decay": ["exponential"]}},
    "linear_end_factor": {"low": 0.01, "high": 0.5, "log": True, "when": {"decay": ["linear"]}},
    "cosine_alpha": {"low": 0.0, "high": 0.2, "when": {"decay": ["cosine"]}},
    "step_epochs": {"low": 2, "high": 20, "when": {"decay": ["step"]}},
    "step_factor": {"low": 0.1, "high": 0.7, "when": {"decay": ["step"]}},
}


def make_optimizer(params: Params, steps_per_epoch: int, max_epochs: int) -> Any:
    """The Keras optimizer that ``params`` describe, with its decay schedule."""
    lr = DECAYS[params.get("decay", "none")](
        params["learning_rate"], params, steps_per_epoch, max_epochs
    )
    return OPTIMIZERS[params.get("optimizer", "adam")](lr, params)
