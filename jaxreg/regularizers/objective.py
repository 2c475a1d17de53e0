"""Objective transforms: regularizers that map an objective to an objective.

An objective is ``objective(params, batch, ctx) -> (loss, aux)``, where ``ctx``
is a :class:`jaxreg.train.Context` and ``aux`` a dict holding at least
``'metrics'`` (a dict of scalars) and ``'model_state'``. An objective
transform is a function ``objective -> objective``; transforms compose by
function composition (:func:`chain`).
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxreg.errors import ConfigError
from jaxreg.regularizers.masks import MaskSpec, masked_leaves

Objective = Callable[[Any, Any, Any], tuple[jax.Array, dict]]
ObjectiveTransform = Callable[[Objective], Objective]


def chain(*transforms: ObjectiveTransform) -> ObjectiveTransform:
  """Composes objective transforms; the first one listed is applied first (innermost).

  ``chain(a, b)(objective) == b(a(objective))``, mirroring ``optax.chain``.
  With no transforms it is the identity.
  """

  def transform(objective: Objective) -> Objective:
    for t in transforms:
      objective = t(objective)
    return objective

  return transform


def add_penalty(
    name: str, penalty_fn: Callable[[Any, Any], jax.Array]
) -> ObjectiveTransform:
  """Adds ``penalty_fn(params, ctx)`` to an objective's loss.

  The penalty's value is reported as ``aux['metrics'][name]``, and the sum as
  ``aux['metrics']['objective']``; ``aux['metrics']['loss']`` stays the data term.
  """

  def transform(objective: Objective) -> Objective:
    def penalized(params, batch, ctx):
      loss, aux = objective(params, batch, ctx)
      penalty = penalty_fn(params, ctx)
      metrics = dict(aux["metrics"], **{name: penalty})
      metrics["objective"] = metrics.get("objective", loss) + penalty
      return loss + penalty, dict(aux, metrics=metrics)

    return penalized

  return transform


def _coefficient(name: str, alpha) -> Callable[[Any], Any]:
  """``alpha`` as a function of the step: a schedule as it is, a number as a constant."""
  if callable(alpha):
    return alpha
  if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
    raise ConfigError(f"{name}: alpha must be a number >= 0 or a schedule, got {alpha!r}")
  return lambda step: alpha


def l2(alpha: float | Callable[[Any], Any], *, mask: MaskSpec = None) -> ObjectiveTransform:
  """L2 parameter norm penalty (weight decay as a penalty).

  ``J~(theta) = J(theta) + (alpha / 2) * ||w||_2^2``, summed over the weights
  ``w`` that ``mask`` selects (by default every kernel; biases and
  normalization scales are excluded by name). Its gradient adds ``alpha * w``,
  so a gradient step is ``w <- (1 - eps*alpha) w - eps * grad J``.

  Source: seed 002, "L2 Norm Parameter Regularization" (Goodfellow et al.,
  Deep Learning, section 7.1.1).

  Args:
    alpha: the penalty's weight, ``alpha >= 0``, or a schedule ``step -> alpha``
      (seed 001's trick: lower the regularization coefficient near
      convergence), evaluated at the optimizer step ``ctx.step``.
    mask: which parameters to penalize: ``None`` (kernels, not biases or
      scales), a pytree of bools, or a function of the params returning one.

  Example:
    >>> objective = l2(1e-4)(classification_objective(model.apply))  # doctest: +SKIP
    >>> decaying = l2(optax.exponential_decay(1e-3, 1000, 0.5))(objective)  # doctest: +SKIP
  """
  coefficient = _coefficient("l2", alpha)

  def penalty(params, ctx):
    leaves = masked_leaves(params, mask)
    if not leaves:
      return jnp.zeros((), jnp.float32)
    step = getattr(ctx, "step", 0)  # a constant alpha needs no context
    return 0.5 * coefficient(step) * sum(jnp.sum(jnp.square(w)) for w in leaves)

  return add_penalty("l2_penalty", penalty)
