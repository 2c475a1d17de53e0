"""Step decay on plateau: cut the learning rate when a validation metric stops improving.

Baskin et al. 2018 ("tricks of the trade"): decay the learning rate when the
validation error plateaus. :func:`reduce_on_plateau` wraps an optimizer and
multiplies its updates by a scale held in the optimizer state (so it is
jit-safe, checkpointed and resumed with it); the scale is cut when an
evaluation passed through ``update(..., value=)`` (see
:mod:`jaxreg.optim.metric_driven`) ends ``patience`` evaluations without an
improvement.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg.optim.metric_driven import (
    MetricDriven,
    check_rule_arguments,
    find_states,
    is_improvement,
    monitored_value,
)


class PlateauState(NamedTuple):
  """The plateau's bookkeeping, wrapping the inner optimizer's state.

  Attributes:
    inner: the wrapped optimizer's state.
    scale: the factor applied to the updates (1 until the first cut).
    best: the best monitored value so far (NaN before the first evaluation).
    bad_evals: evaluations in a row without an improvement.
    cooldown_left: evaluations left during which no cut happens.
  """

  inner: Any
  scale: jax.Array
  best: jax.Array
  bad_evals: jax.Array
  cooldown_left: jax.Array


def _check_plateau_arguments(factor, cooldown, min_scale) -> None:
  if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
    raise ValueError(f"factor must be in (0, 1), got {factor!r}")
  if isinstance(cooldown, bool) or not isinstance(cooldown, int) or cooldown < 0:
    raise ValueError(f"cooldown must be an integer >= 0, got {cooldown!r}")
  if isinstance(min_scale, bool) or not isinstance(min_scale, (int, float)) or not 0 <= min_scale <= 1:
    raise ValueError(f"min_scale must be in [0, 1], got {min_scale!r}")


def plateau_step(state: PlateauState, value, *, mode, factor, patience, min_delta, cooldown, min_scale):
  """The bookkeeping after one evaluation with metric ``value`` (pure; jit-safe)."""
  improved = is_improvement(value, state.best, mode=mode, min_delta=min_delta)
  bad = jnp.where(improved | (state.cooldown_left > 0), 0, state.bad_evals + 1)
  cut = bad >= patience
  scale = jnp.where(cut, jnp.maximum(state.scale * factor, min_scale), state.scale)
  return state._replace(
      scale=scale.astype(jnp.float32),
      best=jnp.where(improved, value, state.best),
      bad_evals=jnp.where(cut, 0, bad).astype(jnp.int32),
      cooldown_left=jnp.where(cut, cooldown, jnp.maximum(state.cooldown_left - 1, 0)).astype(jnp.int32),
  )


def reduce_on_plateau(
    inner: optax.GradientTransformation,
    *,
    monitor: str | None = None,
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    min_delta: float = 0.0,
    cooldown: int = 0,
    min_scale: float = 0.0,
) -> MetricDriven:
  """Multiplies ``inner``'s updates by ``factor`` each time the monitored metric plateaus.

  An evaluation improves on the best so far if ``value < best - min_delta``
  (``mode='min'``) or ``value > best + min_delta`` (``mode='max'``).
  ``min_delta`` is absolute, so the rule reads the same for negative metrics
  (a relative threshold such as ``best*(1 - rtol)`` turns around when
  ``best`` is negative). After ``patience`` evaluations in a row without an
  improvement the scale is multiplied by ``factor`` (as Keras does; PyTorch
  waits one evaluation more), then ``cooldown`` evaluations pass before the
  counting restarts. The scale never goes below ``min_scale``.

  Evaluations arrive through ``update(updates, state, params, value=v)``
  (:mod:`jaxreg.optim.metric_driven`); :func:`jaxreg.train.fit` passes the
  metric ``monitor`` after each epoch.

  Args:
    inner: the optimizer whose updates are scaled.
    monitor: the logged metric to watch when ``value`` is a mapping of metrics.
    mode: ``'min'`` or ``'max'``.
    factor: the multiplier in (0, 1).
    patience: evaluations without improvement before a cut, >= 1.
    min_delta: the smallest change that counts as an improvement, >= 0.
    cooldown: evaluations after a cut before counting again, >= 0.
    min_scale: the smallest scale, in [0, 1] (the floor of the learning rate
      divided by its base value).

  Raises:
    ValueError: for an impossible argument, named in the message.

  Examples:
    >>> tx = reduce_on_plateau(optax.sgd(0.1), factor=0.5, patience=2)
    >>> opt_state = tx.init({'w': jnp.zeros(2)})
    >>> opt_state = observe(tx, opt_state, 0.7)  # after each evaluation  # doctest: +SKIP
  """
  check_rule_arguments(mode=mode, patience=patience, min_delta=min_delta)
  _check_plateau_arguments(factor, cooldown, min_scale)
  rule = dict(mode=mode, factor=factor, patience=patience, min_delta=min_delta, cooldown=cooldown,
              min_scale=min_scale)

  def init_fn(params):
    return PlateauState(
        inner=inner.init(params),
        scale=jnp.ones((), jnp.float32),
        best=jnp.full((), jnp.nan, jnp.float32),
        bad_evals=jnp.zeros((), jnp.int32),
        cooldown_left=jnp.zeros((), jnp.int32),
    )

  def update_fn(updates, state, params=None, *, value=None, **extra):
    if value is not None:  # an evaluation
      state = plateau_step(state, monitored_value(value, monitor, "reduce_on_plateau"), **rule)
      if isinstance(inner, MetricDriven):
        _, inner_state = inner.update(updates, state.inner, params, value=value, **extra)
        state = state._replace(inner=inner_state)
      return updates, state
    updates, inner_state = optax.with_extra_args_support(inner).update(updates, state.inner, params, **extra)
    updates = jax.tree.map(lambda u: u * state.scale.astype(u.dtype), updates)
    return updates, state._replace(inner=inner_state)

  return MetricDriven(init_fn, update_fn)


def plateau_scale(opt_state) -> float:
  """The product of the plateau scales in an optimizer state (1 if there is none), read on the host.

  For logging: it waits for the state and compiles nothing.
  """
  scales = [s.scale for s in find_states(opt_state, PlateauState)]
  return float(np.prod(np.asarray(jax.device_get(scales), np.float32), dtype=np.float32))
