"""The lecture notes' optimizers as optax transforms, and the ``make_optimizer`` factory."""

from jaxreg.optim.factory import current_learning_rate, make_evaluation_params, make_optimizer, optimizer_names
from jaxreg.optim.transforms import (
    adagrad,
    adam,
    momentum,
    nesterov,
    nesterov_theta,
    rmsprop,
    rmsprop_nesterov,
    scale_by_adagrad,
    sgd,
)

__all__ = [
    "adagrad",
    "adam",
    "current_learning_rate",
    "make_evaluation_params",
    "make_optimizer",
    "momentum",
    "nesterov",
    "nesterov_theta",
    "optimizer_names",
    "rmsprop",
    "rmsprop_nesterov",
    "scale_by_adagrad",
    "sgd",
]
