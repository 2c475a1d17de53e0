"""Auxiliary classification tasks derived from a dataset's integer labels (for multitask learning).

Wang 2023, "Multitask Learning": tasks that share generic parameters pool
their examples. On digits the auxiliary targets come from the digit label
itself, so no extra data is needed: its parity, or whether it is above 4.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxreg.errors import ConfigError


class Task(NamedTuple):
  """A classification task on the dataset's examples.

  Attributes:
    num_classes: the task's number of classes (``None``: the dataset's own).
    labels: ``labels(y) -> task labels`` from the dataset's integer labels.
  """

  num_classes: int | None
  labels: Callable[[jax.Array], jax.Array]


TASKS: dict[str, Task] = {
    "label": Task(None, lambda y: y),
    "parity": Task(2, lambda y: jnp.mod(y, 2)),
    "above_4": Task(2, lambda y: (y > 4).astype(jnp.int32)),
}


def get_task(name: str) -> Task:
  """The task called ``name``: ``'label'`` (the dataset's labels), ``'parity'`` or ``'above_4'``."""
  if name not in TASKS:
    raise ConfigError(f"unknown task {name!r}; valid tasks: {', '.join(sorted(TASKS))}")
  return TASKS[name]
