"""Optimizers as optax transforms, and the ``make_optimizer`` factory."""

from jaxreg.optim.factory import current_learning_rate, make_optimizer, optimizer_names

__all__ = ["current_learning_rate", "make_optimizer", "optimizer_names"]
