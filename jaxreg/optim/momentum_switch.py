"""Switch momentum off when the validation metric flat-lines (Baskin et al. 2018, "tricks of the trade").

Baskin et al. 2018: "Disable momentum and turn to vanilla SGD when validation error
completely flat-lines". The momentum ``alpha`` of the optimizer is injected
as a hyperparameter (``optax.inject_hyperparams``), so it lives in the
optimizer state; :func:`momentum_switch` adds the rule's bookkeeping to that
state, and :class:`MomentumOffOnPlateau`, applied by the fit loop after each
evaluation, sets ``alpha`` to 0 for good once the monitored metric has not
improved by ``min_delta`` for ``patience`` evaluations. With ``alpha = 0``
the momentum update ``v <- alpha*v - eps*g; theta <- theta + v`` is plain SGD,
``theta <- theta - eps*g``. Everything is jit-safe, checkpointed and resumed
with the optimizer state.
"""

import dataclasses
from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxreg.errors import ConfigError
from jaxreg.optim.plateau import is_improvement

MOMENTUM = "momentum"


class MomentumSwitchState(NamedTuple):
  """The switch's bookkeeping, inside the optimizer state.

  Attributes:
    best: the best monitored value so far (NaN before the first evaluation).
    bad_evals: evaluations in a row without an improvement.
    off_after: the number of evaluations after which momentum was switched
      off, or 0 while it is on.
    evaluations: evaluations seen so far.
  """

  best: jax.Array
  bad_evals: jax.Array
  off_after: jax.Array
  evaluations: jax.Array


def momentum_switch() -> optax.GradientTransformation:
  """An identity transform that holds :class:`MomentumSwitchState` in the optimizer state."""

  def init_fn(params):
    del params
    return MomentumSwitchState(
        best=jnp.full((), jnp.nan, jnp.float32),
        bad_evals=jnp.zeros((), jnp.int32),
        off_after=jnp.zeros((), jnp.int32),
        evaluations=jnp.zeros((), jnp.int32),
    )

  def update_fn(updates, state, params=None):
    del params
    return updates, state

  return optax.GradientTransformation(init_fn, update_fn)


def _is_switch(x) -> bool:
  return isinstance(x, MomentumSwitchState)


def _has_momentum(x) -> bool:
  return hasattr(x, "hyperparams") and MOMENTUM in x.hyperparams


def injected_momentum(opt_state) -> jax.Array | None:
  """The injected momentum ``alpha`` in an optimizer state (0 once switched off), or ``None``."""
  for s in jax.tree.leaves(opt_state, is_leaf=_has_momentum):
    if _has_momentum(s):
      return s.hyperparams[MOMENTUM]
  return None


@dataclasses.dataclass(frozen=True)
class MomentumOffOnPlateau:
  """Sets the momentum to 0 (plain SGD) once ``monitor`` has not improved for ``patience`` evaluations.

  An evaluation improves if ``value < best - min_delta`` (``mode='min'``) or
  ``value > best + min_delta`` (``mode='max'``), the same test as
  :class:`jaxreg.optim.plateau.ReduceOnPlateau`. The switch is one-way.

  Attributes:
    monitor: a logged metric, e.g. ``'val_loss'`` or ``'val_accuracy'``.
    mode: ``'min'`` or ``'max'``.
    patience: evaluations without improvement before momentum goes, >= 1.
    min_delta: the smallest change that counts as an improvement, >= 0.

  Example:
    >>> tx = make_optimizer('momentum', 0.1, momentum=0.9,
    ...                     momentum_off={'monitor': 'val_loss', 'patience': 5})  # doctest: +SKIP
  """

  monitor: str = "val_loss"
  mode: str = "min"
  patience: int = 5
  min_delta: float = 0.0

  def __post_init__(self):
    if self.mode not in ("min", "max"):
      raise ConfigError(f"optimizer.momentum_off.mode must be 'min' or 'max', got {self.mode!r}")
    if isinstance(self.patience, bool) or not isinstance(self.patience, int) or self.patience < 1:
      raise ConfigError(
          f"optimizer.momentum_off.patience must be a positive integer, got {self.patience!r}"
      )
    if isinstance(self.min_delta, bool) or not isinstance(self.min_delta, (int, float)) or not self.min_delta >= 0:
      raise ConfigError(f"optimizer.momentum_off.min_delta must be a number >= 0, got {self.min_delta!r}")

  def update(self, state: MomentumSwitchState, value) -> MomentumSwitchState:
    """The bookkeeping after one evaluation with metric ``value`` (pure; jit-safe)."""
    value = jnp.asarray(value, jnp.float32)
    improved = is_improvement(value, state.best, mode=self.mode, min_delta=self.min_delta)
    bad = jnp.where(improved, 0, state.bad_evals + 1).astype(jnp.int32)
    evaluations = state.evaluations + 1
    switch_now = (state.off_after == 0) & (bad >= self.patience)
    return MomentumSwitchState(
        best=jnp.where(improved, value, state.best),
        bad_evals=bad,
        off_after=jnp.where(switch_now, evaluations, state.off_after).astype(jnp.int32),
        evaluations=evaluations.astype(jnp.int32),
    )

  def apply(self, opt_state, value):
    """Updates the switch inside ``opt_state`` after an evaluation; zeroes the momentum once it is off."""
    switches = [s for s in jax.tree.leaves(opt_state, is_leaf=_is_switch) if _is_switch(s)]
    if len(switches) != 1 or injected_momentum(opt_state) is None:
      raise ValueError(
          "MomentumOffOnPlateau needs an optimizer built with momentum_off "
          "(make_optimizer(..., momentum_off={...}))"
      )
    switch = self.update(switches[0], value)
    off = switch.off_after > 0

    def replace(s):
      if _is_switch(s):
        return switch
      if _has_momentum(s):
        hyperparams = dict(s.hyperparams)
        hyperparams[MOMENTUM] = jnp.where(off, jnp.zeros_like(hyperparams[MOMENTUM]), hyperparams[MOMENTUM])
        return s._replace(hyperparams=hyperparams)
      return s

    return jax.tree.map(replace, opt_state, is_leaf=lambda x: _is_switch(x) or _has_momentum(x))


def momentum_off_after(opt_state) -> int | None:
  """The evaluation after which momentum was switched off, or ``None`` (still on, or no switch)."""
  for s in jax.tree.leaves(opt_state, is_leaf=_is_switch):
    if _is_switch(s):
      return int(s.off_after) or None
  return None


def make_momentum_off(momentum_off: Mapping[str, object] | None) -> MomentumOffOnPlateau | None:
  """The rule of a config's ``optimizer.momentum_off`` section (``None`` or empty: no switch)."""
  if not momentum_off:
    return None
  if not isinstance(momentum_off, Mapping):
    raise ConfigError(
        "optimizer.momentum_off must be a mapping such as {'monitor': 'val_loss', 'patience': 5}, "
        f"got {momentum_off!r}"
    )
  valid = {f.name for f in dataclasses.fields(MomentumOffOnPlateau)}
  unknown = sorted(set(momentum_off) - valid)
  if unknown:
    raise ConfigError(
        f"unknown key(s) {', '.join('optimizer.momentum_off.' + k for k in unknown)}; "
        f"valid keys: {', '.join(sorted(valid))}"
    )
  return MomentumOffOnPlateau(**momentum_off)
