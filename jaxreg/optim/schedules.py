"""Learning-rate schedules of the lecture notes (Baskin et al. 2018; Wang 2023), counted in steps or in epochs.

Each returns an optax schedule ``count -> value`` and plugs into any
``learning_rate`` argument. ``t`` below is the step count, or the epoch
(``count // steps_per_epoch``) when ``unit='epoch'``.
"""

from collections.abc import Sequence

import jax.numpy as jnp
import optax

from jaxreg._registry import Registry
from jaxreg.errors import ConfigError


def _positive(name: str, value) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
    raise ValueError(f"{name} must be a positive number, got {value!r}")


def constant(init_value: float) -> optax.Schedule:
  """``eps_t = eps_0``."""
  return optax.constant_schedule(init_value)


def exponential(init_value: float, rate: float) -> optax.Schedule:
  """Exponential decay (Baskin et al. 2018): ``eps_t = rate**t * eps_0``, ``0 < rate <= 1``."""
  if not 0 < rate <= 1:
    raise ValueError(f"rate must be in (0, 1], got {rate!r}")
  return optax.exponential_decay(init_value, transition_steps=1, decay_rate=rate)


def inverse_time(init_value: float, k: float) -> optax.Schedule:
  """Inverse-time decay (Baskin et al. 2018): ``eps_t = eps_0 / (1 + k*t)``, ``k >= 0``."""
  if not k >= 0:
    raise ValueError(f"k must be >= 0, got {k!r}")
  return lambda count: init_value / (1.0 + k * count)


def linear(init_value: float, tau: int, final_fraction: float = 0.01) -> optax.Schedule:
  """Linear decay until ``tau``, then constant (Wang 2023, "Learning Rate Schedule").

  ``eps_t = (1 - a)*eps_0 + a*eps_tau`` with ``a = t/tau`` for ``t <= tau``,
  and ``eps_tau`` after; ``eps_tau = final_fraction*eps_0`` ("roughly 1% of eps_0").
  """
  _positive("tau", tau)
  if not 0 <= final_fraction <= 1:
    raise ValueError(f"final_fraction must be in [0, 1], got {final_fraction!r}")
  return optax.linear_schedule(init_value, final_fraction * init_value, transition_steps=int(tau))


def piecewise(init_value: float, boundaries: Sequence[int], factor: float = 0.1) -> optax.Schedule:
  """Step decay at fixed times: ``eps`` is multiplied by ``factor`` at each boundary.

  ``eps_t = eps_0 * factor**(number of boundaries <= t)``, e.g.
  ``boundaries=(30, 60)`` for a tenfold drop at epochs 30 and 60.
  """
  boundaries = [int(b) for b in boundaries]
  if any(b <= 0 for b in boundaries) or boundaries != sorted(set(boundaries)):
    raise ValueError(f"boundaries must be increasing positive integers, got {boundaries!r}")
  _positive("factor", factor)
  return optax.piecewise_constant_schedule(init_value, {b: factor for b in boundaries})


_SCHEDULES = Registry("schedule", {
    "constant": constant,
    "exponential": exponential,
    "inverse_time": inverse_time,
    "linear": linear,
    "piecewise": piecewise,
})


def schedule_names() -> list[str]:
  """Schedules by name, including ``'plateau'`` (see :mod:`jaxreg.optim.plateau`)."""
  return sorted([*_SCHEDULES.names(), "plateau"])


def per_epoch(schedule: optax.Schedule, steps_per_epoch: int) -> optax.Schedule:
  """Counts ``schedule`` in epochs: step ``count`` uses ``schedule(count // steps_per_epoch)``."""
  _positive("steps_per_epoch", steps_per_epoch)
  return lambda count: schedule(jnp.asarray(count) // steps_per_epoch)


def make_schedule(
    name: str, *, init_value: float, unit: str = "step", steps_per_epoch: int | None = None,
    section: str = "optimizer.schedule", **kwargs
) -> optax.Schedule:
  """Builds the schedule ``name`` from a config's ``optimizer.schedule`` section.

  Args:
    name: one of :func:`schedule_names`.
    init_value: ``eps_0`` (the optimizer's ``learning_rate``).
    unit: ``'step'`` or ``'epoch'``: what ``t`` counts.
    steps_per_epoch: needed when ``unit='epoch'`` (filled in by jaxreg).
    section: the config section the arguments come from, named in errors
      (e.g. ``'regularizers.l2.schedule'``).
    **kwargs: the schedule's own arguments (``rate``, ``k``, ``tau``, ...).

  Example:
    >>> lr = make_schedule('exponential', init_value=0.1, rate=0.95, unit='epoch', steps_per_epoch=19)
    >>> tx = jaxreg.optim.momentum(lr, 0.9)  # doctest: +SKIP
  """
  if unit not in ("step", "epoch"):
    raise ConfigError(f"{section}.unit must be 'step' or 'epoch', got {unit!r}")
  schedule = _SCHEDULES.build(name, kwargs, section=section, filled={"init_value": init_value})
  if unit == "epoch":
    if steps_per_epoch is None:
      raise ConfigError("a schedule counted in epochs needs steps_per_epoch")
    schedule = per_epoch(schedule, steps_per_epoch)
  return schedule
