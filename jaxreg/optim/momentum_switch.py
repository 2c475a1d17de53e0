"""Switch momentum off when the validation metric flat-lines (Baskin et al. 2018, "tricks of the trade").

Baskin et al. 2018: "Disable momentum and turn to vanilla SGD when validation
error completely flat-lines". :func:`momentum_off_on_plateau` wraps an
optimizer whose momentum ``alpha`` is injected (``optax.inject_hyperparams``)
and sets ``alpha`` to 0 for good once the monitored metric, passed as
``update(..., value=)`` after each evaluation (:mod:`jaxreg.optim.metric_driven`),
has not improved by ``min_delta`` for ``patience`` evaluations. With
``alpha = 0`` the momentum update ``v <- alpha*v - eps*g; theta <- theta + v``
is plain SGD, ``theta <- theta - eps*g``. Everything is jit-safe,
checkpointed and resumed with the optimizer state.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxreg.optim.metric_driven import (
    MetricDriven,
    check_rule_arguments,
    find_states,
    is_improvement,
    monitored_value,
)

MOMENTUM = "momentum"


class MomentumSwitchState(NamedTuple):
  """The switch's bookkeeping, wrapping the inner optimizer's state.

  Attributes:
    inner: the wrapped optimizer's state (an ``InjectHyperparamsState``
      holding ``hyperparams['momentum']``).
    best: the best monitored value so far (NaN before the first evaluation).
    bad_evals: evaluations in a row without an improvement.
    off_after: the number of evaluations after which momentum was switched
      off, or 0 while it is on.
    evaluations: evaluations seen so far.
  """

  inner: Any
  best: jax.Array
  bad_evals: jax.Array
  off_after: jax.Array
  evaluations: jax.Array


def switch_step(state: MomentumSwitchState, value, *, mode: str, patience: int, min_delta: float):
  """The bookkeeping after one evaluation with metric ``value``, momentum zeroed once off (pure; jit-safe)."""
  improved = is_improvement(value, state.best, mode=mode, min_delta=min_delta)
  bad = jnp.where(improved, 0, state.bad_evals + 1).astype(jnp.int32)
  evaluations = (state.evaluations + 1).astype(jnp.int32)
  off_after = jnp.where((state.off_after == 0) & (bad >= patience), evaluations, state.off_after)
  hyperparams = dict(state.inner.hyperparams)
  alpha = hyperparams[MOMENTUM]
  hyperparams[MOMENTUM] = jnp.where(off_after > 0, jnp.zeros_like(alpha), alpha)
  return MomentumSwitchState(
      inner=state.inner._replace(hyperparams=hyperparams),
      best=jnp.where(improved, value, state.best),
      bad_evals=bad,
      off_after=off_after.astype(jnp.int32),
      evaluations=evaluations,
  )


def momentum_off_on_plateau(
    inner: optax.GradientTransformation,
    *,
    monitor: str | None = None,
    mode: str = "min",
    patience: int = 5,
    min_delta: float = 0.0,
) -> MetricDriven:
  """Sets ``inner``'s momentum to 0 (plain SGD) once the monitored metric has not improved for ``patience`` evaluations.

  An evaluation improves if ``value < best - min_delta`` (``mode='min'``) or
  ``value > best + min_delta`` (``mode='max'``), the same test as
  :func:`jaxreg.optim.reduce_on_plateau`. The switch is one-way.

  Args:
    inner: an optimizer built by ``optax.inject_hyperparams`` with a
      ``momentum`` hyperparameter, e.g.
      ``optax.inject_hyperparams(jaxreg.optim.momentum)(learning_rate=0.1, momentum=0.9)``.
    monitor: the logged metric to watch when ``value`` is a mapping of metrics.
    mode: ``'min'`` or ``'max'``.
    patience: evaluations without improvement before momentum goes, >= 1.
    min_delta: the smallest change that counts as an improvement, >= 0.

  Raises:
    ValueError: for an impossible argument, and at ``init`` if ``inner``'s
      state has no injected ``momentum``.

  Examples:
    >>> inner = optax.inject_hyperparams(momentum)(learning_rate=0.1, momentum=0.9)  # doctest: +SKIP
    >>> tx = momentum_off_on_plateau(inner, patience=5)  # doctest: +SKIP
  """
  check_rule_arguments(mode=mode, patience=patience, min_delta=min_delta)

  def init_fn(params):
    inner_state = inner.init(params)
    if MOMENTUM not in getattr(inner_state, "hyperparams", {}):
      raise ValueError(
          "momentum_off_on_plateau needs an inner optimizer with an injected momentum: "
          "optax.inject_hyperparams(factory)(learning_rate=..., momentum=...)"
      )
    return MomentumSwitchState(
        inner=inner_state,
        best=jnp.full((), jnp.nan, jnp.float32),
        bad_evals=jnp.zeros((), jnp.int32),
        off_after=jnp.zeros((), jnp.int32),
        evaluations=jnp.zeros((), jnp.int32),
    )

  def update_fn(updates, state, params=None, *, value=None, **extra):
    if value is None:
      updates, inner_state = optax.with_extra_args_support(inner).update(updates, state.inner, params, **extra)
      return updates, state._replace(inner=inner_state)
    value = monitored_value(value, monitor, "momentum_off_on_plateau")
    return updates, switch_step(state, value, mode=mode, patience=patience, min_delta=min_delta)

  return MetricDriven(init_fn, update_fn)


def injected_momentum(opt_state) -> jax.Array | None:
  """The injected momentum ``alpha`` in an optimizer state (0 once switched off), or ``None``."""
  has_momentum = lambda x: MOMENTUM in getattr(x, "hyperparams", {})  # noqa: E731
  for s in jax.tree.leaves(opt_state, is_leaf=has_momentum):
    if has_momentum(s):
      return s.hyperparams[MOMENTUM]
  return None


def momentum_off_after(opt_state) -> int | None:
  """The evaluation after which momentum was switched off, or ``None`` (still on, or no switch)."""
  for s in find_states(opt_state, MomentumSwitchState):
    return int(s.off_after) or None
  return None
