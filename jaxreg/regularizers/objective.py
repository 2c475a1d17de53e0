"""Objective transforms: regularizers that map an objective to an objective.

An objective is ``objective(params, batch, ctx) -> (loss, aux)``, where ``ctx``
is a :class:`jaxreg.train.Context` and ``aux`` a :class:`jaxreg.train.Aux`
(the metrics, the model state, the hidden activations). An objective
transform is a function ``objective -> objective``; transforms compose by
function composition (:func:`chain`).
"""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jaxreg._validation import is_traced


Objective = Callable[[Any, Any, Any], tuple[jax.Array, dict]]
ObjectiveTransform = Callable[[Objective], Objective]


def chain(*transforms: ObjectiveTransform) -> ObjectiveTransform:
  """Composes objective transforms; the first one listed is applied first (innermost).

  ``chain(a, b)(objective) == b(a(objective))``, mirroring ``optax.chain``.
  With no transforms it is the identity.

  Examples:
    >>> regularize = chain(l2(1e-4), label_smoothing(0.1))  # l2 innermost, as optax.chain
    >>> objective = regularize(classification_objective(make_mlp(num_outputs=10, hidden_sizes=(8,)).apply))
  """

  def transform(objective: Objective) -> Objective:
    for t in transforms:
      objective = t(objective)
    return objective

  return transform


def masked_mean(values: jax.Array, mask: jax.Array | None) -> jax.Array:
  """The mean of ``values`` over the batch's real examples (``mask`` 1, padding 0), or over all without a mask."""
  if mask is None:
    return jnp.mean(values)
  mask = mask.astype(values.dtype)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def add_penalty(
    name: str, penalty_fn: Callable[[Any, Any], jax.Array]
) -> ObjectiveTransform:
  """Adds ``penalty_fn(params, ctx)`` to an objective's loss.

  The penalty's value is reported as ``aux.metrics[name]``, and the sum as
  ``aux.metrics['objective']``; ``aux.metrics['loss']`` stays the data term.

  Examples:
    >>> quadratic = lambda params, batch, ctx: (jnp.sum(params['w'] ** 2), Aux(metrics={}))
    >>> penalized = add_penalty('l1_penalty', lambda params, ctx: jnp.sum(jnp.abs(params['w'])))(quadratic)
    >>> loss, aux = penalized({'w': jnp.array([1.0, -2.0])}, None, None)
    >>> float(loss), float(aux.metrics['l1_penalty'])
    (8.0, 3.0)
  """

  def transform(objective: Objective) -> Objective:
    def penalized(params, batch, ctx):
      loss, aux = objective(params, batch, ctx)
      penalty = penalty_fn(params, ctx)
      objective_value = aux.metrics.get("objective", loss) + penalty
      return loss + penalty, aux.with_metrics(**{name: penalty, "objective": objective_value})

    return penalized

  return transform


def coefficient(name: str, alpha) -> Callable[[Any], Any]:
  """``alpha`` as a function of the step: a schedule as it is, a number as a constant."""
  if callable(alpha):
    return alpha
  if is_traced(alpha):  # a sweep's member value, checked by the member's own build
    return lambda step: alpha
  if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha < math.inf:
    raise ValueError(f"alpha must be a finite number >= 0 or a schedule, got {alpha!r} (in {name})")
  return lambda step: alpha
