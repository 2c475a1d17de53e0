"""Update transforms: regularizers that act on the step, as ``optax.GradientTransformation``s.

Chain them after the optimizer, ``optax.chain(optimizer, weight_decay(...),
max_norm(...))``: each receives the optimizer's update ``u`` (the step
``theta <- theta + u``) and the current parameters, and returns the update
that gives the regularized new parameters. Masks select parameters by path;
biases and normalization scales are left alone by default.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxreg.regularizers.masks import MaskSpec, resolve_mask
from jaxreg._validation import is_traced

ScalarOrSchedule = float | Callable[[Any], Any]


class CountState(NamedTuple):
  """The number of updates so far, to evaluate schedules."""

  count: jax.Array


def _check_scalar_or_schedule(name: str, value, *, positive: bool = False) -> None:
  if callable(value) or is_traced(value):
    return
  ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and (
      value > 0 if positive else value >= 0)
  if not ok:  # an infinite strength would zero or blow up every weight at the first step
    raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'} or a schedule, got {value!r}")


def _value_at(value: ScalarOrSchedule, count):
  return value(count) if callable(value) else value


def _masked(transform: optax.GradientTransformation, mask: MaskSpec) -> optax.GradientTransformation:
  """``optax.masked`` with jaxreg's default mask (no biases or scales)."""
  return optax.masked(transform, lambda params: resolve_mask(mask, params))


def weight_decay(rate: ScalarOrSchedule, *, mask: MaskSpec = None) -> optax.GradientTransformation:
  """Decoupled weight decay: ``theta <- theta + u - rate * theta`` after the optimizer's update ``u``.

  The decay is not part of the gradient, so an adaptive optimizer does not
  rescale it (Loshchilov and Hutter, 2019). With plain SGD and
  ``rate = eps * alpha`` it is the same step as the L2 penalty
  ``(alpha/2)||w||^2`` (Wang 2023: "weight decay" is L2 regularization's
  shrinking of the weights by ``(1 - eps*alpha)`` before each step).
  ``optax.add_decayed_weights(-rate)`` computes it.

  Args:
    rate: the fraction of each weight removed per step, ``>= 0``, or a
      schedule of the step count.
    mask: which parameters decay (default: kernels, not biases or scales).

  Examples:
    >>> tx = optax.chain(adam(1e-3), weight_decay(1e-4))
  """
  _check_scalar_or_schedule("rate", rate)
  negated = (lambda count: -rate(count)) if callable(rate) else -rate if is_traced(rate) else -float(rate)
  return _masked(optax.add_decayed_weights(negated), mask)


def prox_l1(alpha: ScalarOrSchedule, learning_rate: ScalarOrSchedule, *, mask: MaskSpec = None) -> optax.GradientTransformation:
  """Proximal L1 step: soft-threshold the new weights, which gives exact zeros.

  After the optimizer's step ``theta' = theta + u``:
  ``theta_new = sign(theta') * max(|theta'| - eps * alpha, 0)``, the
  proximal operator of ``eps * alpha * ||w||_1``. With plain SGD this is
  proximal gradient descent (ISTA) on ``J + alpha ||w||_1``; on a quadratic
  with a diagonal Hessian it converges to the notes' closed form
  ``w_i = sign(w*_i) max(|w*_i| - alpha / H_ii, 0)``, with exact zeros where
  the formula gives 0 (a subgradient step on :func:`l1` only oscillates
  around them). With an adaptive optimizer the threshold is still
  ``eps * alpha`` per step.

  Source: Wang 2023, "L1 Regularization" (the closed form); Beck and
  Teboulle (2009) for the proximal step.

  Args:
    alpha: the L1 weight ``>= 0``, or a schedule of the step count.
    learning_rate: the optimizer's ``eps`` (a number or the same schedule),
      so that the threshold is ``eps * alpha``.
    mask: which parameters are thresholded (default: kernels, not biases or scales).

  Examples:
    >>> tx = optax.chain(sgd(0.1), prox_l1(1e-3, learning_rate=0.1))
  """
  _check_scalar_or_schedule("alpha", alpha)
  _check_scalar_or_schedule("learning_rate", learning_rate, positive=True)

  def init_fn(params):
    del params
    return CountState(jnp.zeros((), jnp.int32))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("prox_l1 needs the parameters: call tx.update(updates, state, params)")
    threshold = _value_at(learning_rate, state.count) * _value_at(alpha, state.count)

    def step(u, p):
      moved = p + u
      shrunk = jnp.sign(moved) * jnp.maximum(jnp.abs(moved) - threshold, 0.0)
      return (shrunk - p).astype(u.dtype)

    return jax.tree.map(step, updates, params), CountState(optax.safe_increment(state.count))

  return _masked(optax.GradientTransformation(init_fn, update_fn), mask)


def max_norm(max_value: float, *, axis: int | tuple[int, ...] | None = None, mask: MaskSpec = None) -> optax.GradientTransformation:
  """Max-norm constraint: project every unit's incoming weight vector onto ``||w|| <= c`` after each step.

  After the optimizer's step ``W' = W + u``, each column ``w`` of ``W'``
  (the weights into one output unit) with ``||w||_2 > c`` is rescaled to
  ``c * w / ||w||_2``; the others are unchanged. For a Dense kernel of shape
  ``(in, out)`` the norm is over ``axis=0``; by default it is over every axis
  but the last (so a conv kernel ``(h, w, in, out)`` is handled per output
  channel too).

  Source: Wang 2023, "Norm Penalties as Constrained Optimization" (explicit
  constraints with reprojection; Srebro and Shraibman, 2005; used with
  dropout by Srivastava et al., 2014).

  Args:
    max_value: ``c > 0``.
    axis: the axes of the incoming weights; ``None``: all but the last.
    mask: which parameters are constrained (default: kernels, not biases or
      scales). 1-D leaves among them are left alone.

  Examples:
    >>> tx = optax.chain(sgd(0.1), max_norm(3.0))
  """
  if not is_traced(max_value) and (
      isinstance(max_value, bool) or not isinstance(max_value, (int, float)) or not max_value > 0):
    raise ValueError(f"max_value must be a number > 0, got {max_value!r}")

  def project(u, p):
    if p.ndim < 2:
      return u
    axes = tuple(range(p.ndim - 1)) if axis is None else axis
    moved = p + u
    norms = jnp.sqrt(jnp.sum(jnp.square(moved), axis=axes, keepdims=True))
    scale = jnp.minimum(1.0, max_value / jnp.maximum(norms, jnp.finfo(moved.dtype).tiny))
    return (moved * scale - p).astype(u.dtype)

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("max_norm needs the parameters: call tx.update(updates, state, params)")
    return jax.tree.map(project, updates, params), state

  return _masked(optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn), mask)
