"""Step decay on plateau: cut the learning rate when a validation metric stops improving.

Baskin et al. 2018 ("tricks of the trade"): decay the learning rate when the validation
error plateaus. The decay is an optax transform, :func:`scale_by_plateau`,
whose state holds the current factor (so it is jit-safe, checkpointed and
resumed with the optimizer state), and a rule, :class:`ReduceOnPlateau`, that
the fit loop applies to that state after each evaluation.
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg.errors import ConfigError


class PlateauState(NamedTuple):
  """The plateau's bookkeeping, inside the optimizer state.

  Attributes:
    scale: the factor applied to the updates (1 until the first cut).
    best: the best monitored value so far (NaN before the first evaluation).
    bad_evals: evaluations in a row without an improvement.
    cooldown_left: evaluations left during which no cut happens.
  """

  scale: jax.Array
  best: jax.Array
  bad_evals: jax.Array
  cooldown_left: jax.Array


def scale_by_plateau() -> optax.GradientTransformation:
  """Multiplies updates by ``PlateauState.scale``; :class:`ReduceOnPlateau` changes the scale."""

  def init_fn(params):
    del params
    return PlateauState(
        scale=jnp.ones((), jnp.float32),
        best=jnp.full((), jnp.nan, jnp.float32),
        bad_evals=jnp.zeros((), jnp.int32),
        cooldown_left=jnp.zeros((), jnp.int32),
    )

  def update_fn(updates, state, params=None):
    del params
    return jax.tree.map(lambda u: u * state.scale.astype(u.dtype), updates), state

  return optax.GradientTransformation(init_fn, update_fn)


def is_improvement(value: jax.Array, best: jax.Array, *, mode: str, min_delta: float) -> jax.Array:
  """Whether ``value`` beats ``best`` by more than ``min_delta`` (jit-safe).

  The first value (``best`` is NaN) always improves; a NaN value never does.
  ``min_delta`` is absolute, so the test reads the same for negative metrics.
  """
  better = value < best - min_delta if mode == "min" else value > best + min_delta
  return (jnp.isnan(best) | better) & ~jnp.isnan(value)


def _is_plateau(x) -> bool:
  return isinstance(x, PlateauState)


@dataclasses.dataclass(frozen=True)
class ReduceOnPlateau:
  """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for ``patience`` evaluations.

  An evaluation improves on the best so far if ``value < best - min_delta``
  (``mode='min'``) or ``value > best + min_delta`` (``mode='max'``).
  ``min_delta`` is absolute, so the rule is the same for negative metrics (a
  relative threshold such as ``best*(1 - rtol)`` turns around when ``best``
  is negative). After ``patience`` evaluations in a row without an
  improvement the scale is multiplied by ``factor`` (as Keras does; PyTorch
  waits one evaluation more), then ``cooldown`` evaluations pass before the
  counting restarts. The learning rate never goes below ``min_value``.

  Attributes:
    monitor: a logged metric, e.g. ``'val_loss'`` or ``'val_accuracy'``.
    mode: ``'min'`` or ``'max'``.
    factor: the multiplier in (0, 1).
    patience: evaluations without improvement before a cut, >= 1.
    min_delta: the smallest change that counts as an improvement, >= 0.
    cooldown: evaluations after a cut before counting again, >= 0.
    min_value: the smallest learning rate, >= 0.
    learning_rate: the base learning rate (to turn ``min_value`` into a scale).
  """

  monitor: str = "val_loss"
  mode: str = "min"
  factor: float = 0.1
  patience: int = 10
  min_delta: float = 0.0
  cooldown: int = 0
  min_value: float = 0.0
  learning_rate: float = 1.0

  def __post_init__(self):
    if self.mode not in ("min", "max"):
      raise ConfigError(f"optimizer.schedule.mode must be 'min' or 'max', got {self.mode!r}")
    if not 0 < self.factor < 1:
      raise ConfigError(f"optimizer.schedule.factor must be in (0, 1), got {self.factor!r}")
    if not isinstance(self.patience, int) or self.patience < 1:
      raise ConfigError(f"optimizer.schedule.patience must be a positive integer, got {self.patience!r}")
    if not isinstance(self.cooldown, int) or self.cooldown < 0:
      raise ConfigError(f"optimizer.schedule.cooldown must be an integer >= 0, got {self.cooldown!r}")
    if not self.min_delta >= 0 or not self.min_value >= 0:
      raise ConfigError("optimizer.schedule.min_delta and min_value must be >= 0")

  def update(self, state: PlateauState, value) -> PlateauState:
    """The state after one evaluation with metric ``value`` (pure; jit-safe)."""
    value = jnp.asarray(value, jnp.float32)
    improved = is_improvement(value, state.best, mode=self.mode, min_delta=self.min_delta)
    best = jnp.where(improved, value, state.best)
    in_cooldown = state.cooldown_left > 0
    bad = jnp.where(improved | in_cooldown, 0, state.bad_evals + 1)
    cooldown_left = jnp.maximum(state.cooldown_left - 1, 0)
    cut = bad >= self.patience
    min_scale = self.min_value / self.learning_rate
    scale = jnp.where(cut, jnp.maximum(state.scale * self.factor, min_scale), state.scale)
    return PlateauState(
        scale=scale.astype(jnp.float32),
        best=best,
        bad_evals=jnp.where(cut, 0, bad).astype(jnp.int32),
        cooldown_left=jnp.where(cut, self.cooldown, cooldown_left).astype(jnp.int32),
    )

  def apply(self, opt_state, value):
    """Updates every :class:`PlateauState` inside an optimizer state after an evaluation."""
    return jax.tree.map(
        lambda s: self.update(s, value) if _is_plateau(s) else s, opt_state, is_leaf=_is_plateau
    )


def plateau_scale(opt_state) -> float:
  """The product of the plateau scales in an optimizer state (1 if there is none), read on the host.

  For logging: it waits for the state and compiles nothing.
  """
  scales = jax.device_get([s.scale for s in jax.tree.leaves(opt_state, is_leaf=_is_plateau) if _is_plateau(s)])
  return float(np.prod(np.asarray(scales, np.float32), dtype=np.float32))


def make_plateau(schedule, learning_rate: float) -> "ReduceOnPlateau | None":
  """The :class:`ReduceOnPlateau` rule of a config's ``optimizer.schedule`` section, or ``None``."""
  if not schedule or schedule.get("name") != "plateau":
    return None
  kwargs = {k: v for k, v in dict(schedule).items() if k != "name"}
  valid = {f.name for f in dataclasses.fields(ReduceOnPlateau)} - {"learning_rate"}
  unknown = sorted(set(kwargs) - valid)
  if unknown:
    raise ConfigError(
        f"unknown key(s) {', '.join('optimizer.schedule.' + k for k in unknown)} for schedule 'plateau'; "
        f"valid keys: {', '.join(sorted(valid))}"
    )
  if math.isclose(learning_rate, 0.0):
    raise ConfigError("a plateau schedule needs a positive optimizer.learning_rate")
  return ReduceOnPlateau(learning_rate=learning_rate, **kwargs)
