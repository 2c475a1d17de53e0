"""The lecture notes' optimizers as optax transforms, metric-driven rules, and the ``make_optimizer`` factory."""

from jaxreg.optim.factory import (
    Optimizer,
    current_learning_rate,
    make_evaluation_params,
    make_optimizer,
    optimizer_names,
    set_learning_rate,
)
from jaxreg.optim.metric_driven import MetricDriven, observe
from jaxreg.optim.momentum_switch import momentum_off_on_plateau
from jaxreg.optim.plateau import reduce_on_plateau
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
    "MetricDriven",
    "Optimizer",
    "adagrad",
    "adam",
    "current_learning_rate",
    "make_evaluation_params",
    "make_optimizer",
    "momentum",
    "momentum_off_on_plateau",
    "nesterov",
    "nesterov_theta",
    "observe",
    "optimizer_names",
    "reduce_on_plateau",
    "rmsprop",
    "rmsprop_nesterov",
    "scale_by_adagrad",
    "set_learning_rate",
    "sgd",
]
