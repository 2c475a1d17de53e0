"""Learning-rate schedules of the lecture notes (Baskin et al. 2018; Wang 2023), cosine decay, a linear
warm-up before any of them, and any ``optax`` schedule by name; counted in steps or in epochs.

Each returns an optax schedule ``count -> value`` and plugs into any
``learning_rate`` argument. ``t`` below is the step count, or the epoch
(``count // steps_per_epoch``) when ``unit='epoch'``.
"""

import inspect
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


def cosine(init_value: float, decay_steps: int, alpha: float = 0.0) -> optax.Schedule:
  """Cosine decay (Loshchilov and Hutter 2017, without restarts) to ``alpha*eps_0`` at ``decay_steps``, then constant.

  ``eps_t = eps_0 * ((1 - alpha) * (1 + cos(pi * min(t, T) / T)) / 2 + alpha)`` with ``T = decay_steps``.

  Examples:
    >>> round(float(cosine(0.1, decay_steps=100)(50)), 6)
    0.05
  """
  _positive("decay_steps", decay_steps)
  if not 0 <= alpha <= 1:
    raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
  return optax.cosine_decay_schedule(init_value, decay_steps=int(decay_steps), alpha=alpha)


def with_warmup(schedule: optax.Schedule, warmup: int, init_value: float, start_fraction: float = 0.0
                ) -> optax.Schedule:
  """A linear warm-up of ``warmup`` steps (or epochs) before ``schedule``, which then starts from its own ``t = 0``.

  ``eps_t = eps_0 * (f + (1 - f) * t / W)`` for ``t < W``, then
  ``schedule(t - W)``, with ``W = warmup`` and ``f = start_fraction`` (Goyal et
  al. 2017's gradual warm-up; ``f = 0`` starts from zero).

  Examples:
    >>> lr = with_warmup(cosine(0.1, decay_steps=900), warmup=100, init_value=0.1)
    >>> round(float(lr(50)), 6), round(float(lr(100)), 6)
    (0.05, 0.1)
  """
  _positive("warmup", warmup)
  if not 0 <= start_fraction <= 1:
    raise ValueError(f"warmup_start must be in [0, 1], got {start_fraction!r}")
  ramp = optax.linear_schedule(start_fraction * init_value, init_value, transition_steps=int(warmup))
  return optax.join_schedules([ramp, schedule], boundaries=[int(warmup)])


OPTAX_PREFIX = "optax."


def optax_schedule(name: str, init_value: float, section: str = "optimizer.schedule", **kwargs) -> optax.Schedule:
  """``optax.<name>(**kwargs)``, e.g. ``optax.warmup_cosine_decay_schedule``, with its own arguments.

  ``init_value`` (the optimizer's ``learning_rate``) fills the schedule's
  ``init_value`` when it takes one and the config does not give it; every
  other argument is the schedule's own, as optax documents it.

  Raises:
    ConfigError: if ``optax.<name>`` is not a schedule, or an argument is unknown or missing.

  Examples:
    >>> lr = optax_schedule('optax.polynomial_schedule', 0.1, end_value=0.0, power=2, transition_steps=100)
  """
  factory = getattr(optax, name[len(OPTAX_PREFIX):], None)
  if not callable(factory) or not name.endswith(("_schedule", "_decay")):
    raise ConfigError(f"{section}.name {name!r} is not an optax schedule (e.g. optax.warmup_cosine_decay_schedule, "
                      "optax.exponential_decay, optax.polynomial_schedule)")
  parameters = inspect.signature(factory).parameters
  if "init_value" in parameters and "init_value" not in kwargs:
    kwargs = {"init_value": init_value, **kwargs}
  unknown = sorted(set(kwargs) - set(parameters))
  missing = [p.name for p in parameters.values() if p.default is inspect.Parameter.empty and p.name not in kwargs]
  if unknown or missing:
    what = f"unknown key {section}.{unknown[0]}" if unknown else f"{section}.{missing[0]} is needed"
    raise ConfigError(f"{what} for {name}; its arguments: {', '.join(parameters)}")
  return factory(**kwargs)


_SCHEDULES = Registry("schedule", {
    "constant": constant,
    "cosine": cosine,
    "exponential": exponential,
    "inverse_time": inverse_time,
    "linear": linear,
    "piecewise": piecewise,
}, prefix=OPTAX_PREFIX, from_prefix=lambda name: lambda init_value, **kwargs: optax_schedule(name, init_value, **kwargs))


def schedule_names() -> list[str]:
  """Schedules by name, including ``'plateau'`` (see :mod:`jaxreg.optim.plateau`); also ``'optax.<name>'``."""
  return sorted([*_SCHEDULES.names(), "plateau"])


def per_epoch(schedule: optax.Schedule, steps_per_epoch: int) -> optax.Schedule:
  """Counts ``schedule`` in epochs: step ``count`` uses ``schedule(count // steps_per_epoch)``."""
  _positive("steps_per_epoch", steps_per_epoch)
  return lambda count: schedule(jnp.asarray(count) // steps_per_epoch)


def make_schedule(
    name: str, *, init_value: float, unit: str = "step", steps_per_epoch: int | None = None,
    section: str = "optimizer.schedule", warmup: int = 0, warmup_start: float = 0.0, **kwargs
) -> optax.Schedule:
  """Builds the schedule ``name`` from a config's ``optimizer.schedule`` section.

  Args:
    name: one of :func:`schedule_names`, or ``'optax.<name>'`` (:func:`optax_schedule`).
    init_value: ``eps_0`` (the optimizer's ``learning_rate``).
    unit: ``'step'`` or ``'epoch'``: what ``t`` counts (the warm-up's too).
    steps_per_epoch: needed when ``unit='epoch'`` (filled in by jaxreg).
    section: the config section the arguments come from, named in errors
      (e.g. ``'regularizers.l2.schedule'``).
    warmup: ``W > 0``: a linear warm-up from ``warmup_start * eps_0`` to
      ``eps_0`` over the first ``W`` steps (or epochs), then the schedule
      from its own start (:func:`with_warmup`).
    warmup_start: the warm-up's first value, as a fraction of ``eps_0``.
    **kwargs: the schedule's own arguments (``rate``, ``k``, ``tau``, ...).

  Examples:
    >>> lr = make_schedule('exponential', init_value=0.1, rate=0.95, unit='epoch', steps_per_epoch=19)
    >>> lr = make_schedule('cosine', init_value=0.1, decay_steps=1000, warmup=100)
  """
  if unit not in ("step", "epoch"):
    raise ConfigError(f"{section}.unit must be 'step' or 'epoch', got {unit!r}")
  if isinstance(name, str) and name.startswith(OPTAX_PREFIX):
    schedule = optax_schedule(name, init_value, section=section, **kwargs)
  else:
    schedule = _SCHEDULES.build(name, kwargs, section=section, filled={"init_value": init_value})
  if warmup:
    try:
      schedule = with_warmup(schedule, warmup, init_value, warmup_start)
    except ValueError as e:
      raise ConfigError(f"{section}.{e}") from None
  if unit == "epoch":
    if steps_per_epoch is None:
      raise ConfigError("a schedule counted in epochs needs steps_per_epoch")
    schedule = per_epoch(schedule, steps_per_epoch)
  return schedule
