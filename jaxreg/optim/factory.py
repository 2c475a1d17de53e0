"""``make_optimizer``: a config's ``optimizer`` section to an optax transform.

The names ``sgd``, ``momentum``, ``nesterov``, ``adagrad``, ``rmsprop``,
``rmsprop_nesterov`` and ``adam`` are the lecture notes' algorithms
(:mod:`jaxreg.optim.transforms`); ``optax.<name>`` is any optimizer of optax
(e.g. ``optax.adamw``), with optax's own arguments.
"""

import inspect
from collections.abc import Callable, Mapping

import jax
import numpy as np
import optax

from jaxreg._validation import check_kwargs
from jaxreg.errors import ConfigError
from jaxreg.optim import momentum_switch, plateau, schedules, transforms

_OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": transforms.sgd,
    "momentum": transforms.momentum,
    "nesterov": transforms.nesterov,
    "adagrad": transforms.adagrad,
    "rmsprop": transforms.rmsprop,
    "rmsprop_nesterov": transforms.rmsprop_nesterov,
    "adam": transforms.adam,
}
OPTAX_PREFIX = "optax."


def optimizer_names() -> list[str]:
  """Returns the names of the lecture notes' optimizers accepted by :func:`make_optimizer` (besides ``optax.<name>``)."""
  return sorted(_OPTIMIZERS)


def _optax_factory(name: str) -> Callable[..., optax.GradientTransformation]:
  attr = name[len(OPTAX_PREFIX):]
  factory = getattr(optax, attr, None)
  if factory is None or not callable(factory) or "learning_rate" not in inspect.signature(factory).parameters:
    raise ConfigError(
        f"{name!r} is not an optax optimizer taking a learning_rate (e.g. optax.adamw, optax.lion)"
    )
  return factory


def make_optimizer(
    name: str,
    learning_rate: float,
    schedule: Mapping[str, object] | None = None,
    steps_per_epoch: int | None = None,
    clip_global_norm: float | None = None,
    momentum_off: Mapping[str, object] | None = None,
    **kwargs,
) -> optax.GradientTransformationExtraArgs:
  """Builds the optimizer called ``name``.

  The learning rate is injected as a hyperparameter
  (``optax.inject_hyperparams``), so the current value can be read from the
  optimizer state with :func:`current_learning_rate` and logged.

  Args:
    name: one of :func:`optimizer_names`, or ``'optax.<name>'``.
    learning_rate: the step size ``eps`` (``eps_0`` with a schedule), a positive number.
    schedule: ``{'name': ..., 'unit': 'step' | 'epoch', <its arguments>}``
      (see :func:`jaxreg.optim.schedules.make_schedule`), or ``None`` for a
      constant rate.
    steps_per_epoch: for schedules counted in epochs (filled in by jaxreg).
    clip_global_norm: if set, first rescale the gradient to global norm at most
      this (``optax.clip_by_global_norm``; the lecture notes' remedy (Baskin et al. 2018) for exploding gradients).
    momentum_off: ``{'monitor': ..., 'patience': ..., 'min_delta': ..., 'mode': ...}``
      to switch momentum off (plain SGD) once the monitored metric flat-lines
      (Baskin et al. 2018; :class:`jaxreg.optim.momentum_switch.MomentumOffOnPlateau`,
      applied by the fit loop). Only for optimizers with a ``momentum``.
    **kwargs: the optimizer's own arguments, e.g. ``momentum=0.9`` or ``delta=1e-7``.

  Raises:
    ConfigError: for an unknown name, argument or an impossible value; the
      message lists the valid choices.

  Example:
    >>> tx = make_optimizer('nesterov', learning_rate=0.1, momentum=0.9)
    >>> state = tx.init({'w': jnp.zeros(3)})
  """
  if name.startswith(OPTAX_PREFIX):
    factory = _optax_factory(name)
  elif name in _OPTIMIZERS:
    factory = _OPTIMIZERS[name]
  else:
    raise ConfigError(
        f"unknown optimizer {name!r}; valid names: {', '.join(optimizer_names())}, or optax.<name>"
    )
  check_kwargs(
      factory, kwargs, section="optimizer", what=f"optimizer {name!r}", exclude=("learning_rate",)
  )
  if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
    raise ConfigError(
        f"optimizer.learning_rate must be a positive number, got {learning_rate!r}"
    )
  try:
    factory(float(learning_rate), **kwargs)  # validates the arguments eagerly
  except (ValueError, TypeError) as e:  # the library names the argument; the config path is added here
    raise ConfigError(f"optimizer.{e}" if name in _OPTIMIZERS else f"optimizer {name!r}: {e}") from None
  if clip_global_norm is not None and (
      isinstance(clip_global_norm, bool) or not isinstance(clip_global_norm, (int, float)) or clip_global_norm <= 0
  ):
    raise ConfigError(f"optimizer.clip_global_norm must be a positive number, got {clip_global_norm!r}")
  on_plateau = bool(schedule) and schedule.get("name") == "plateau"
  if on_plateau:
    plateau.make_plateau(schedule, float(learning_rate))  # validates; the fit loop applies the rule
  rate = learning_rate_schedule(learning_rate, schedule, steps_per_epoch)
  # Only the learning rate (and the momentum, if it can be switched off) is
  # injected, so it can be read, logged and changed; the other arguments stay
  # Python constants.
  if momentum_switch.make_momentum_off(momentum_off) is None:
    tx = optax.inject_hyperparams(lambda learning_rate: factory(learning_rate, **kwargs))(learning_rate=rate)
  else:
    alpha = _switchable_momentum(name, factory, kwargs)
    kwargs = {k: v for k, v in kwargs.items() if k != "momentum"}
    tx = optax.inject_hyperparams(
        lambda learning_rate, momentum: factory(learning_rate, momentum=momentum, **kwargs)
    )(learning_rate=rate, momentum=alpha)
    tx = optax.chain(tx, momentum_switch.momentum_switch())
  if on_plateau:
    tx = optax.chain(tx, plateau.scale_by_plateau())
  if clip_global_norm is not None:
    tx = optax.chain(optax.clip_by_global_norm(float(clip_global_norm)), tx)
  return tx


def learning_rate_schedule(learning_rate: float, schedule=None, steps_per_epoch: int | None = None):
  """The learning rate of a config's ``optimizer`` section: a number, or a schedule ``step -> eps``.

  With a plateau schedule it is the base rate (the plateau's cuts live in the
  optimizer state, see :mod:`jaxreg.optim.plateau`).
  """
  schedule = dict(schedule or {})
  rate = float(learning_rate)
  if not schedule or schedule.get("name") == "plateau":
    return rate
  if "name" not in schedule:
    raise ConfigError(
        f"optimizer.schedule needs a name; valid names: {', '.join(schedules.schedule_names())}"
    )
  return schedules.make_schedule(
      schedule.pop("name"), init_value=rate, steps_per_epoch=steps_per_epoch, **schedule
  )


def _switchable_momentum(name: str, factory: Callable, kwargs: Mapping[str, object]) -> float:
  parameters = inspect.signature(factory).parameters
  if "momentum" not in parameters:
    raise ConfigError(
        f"optimizer.momentum_off needs an optimizer with momentum (momentum, nesterov, "
        f"rmsprop_nesterov, or optax.sgd with momentum=...); {name!r} has none"
    )
  alpha = kwargs.get("momentum", parameters["momentum"].default)
  if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or alpha <= 0:
    raise ConfigError(
        f"optimizer.momentum_off needs a positive optimizer.momentum to switch off, got {alpha!r}"
    )
  return float(alpha)


_NESTEROV = ("nesterov", "rmsprop_nesterov")


def make_evaluation_params(
    name: str, learning_rate=None, schedule=None, steps_per_epoch=None, **kwargs
) -> Callable | None:
  """For the Nesterov optimizers, ``fn(params, opt_state) -> theta`` to evaluate at; ``None`` otherwise.

  ``nesterov`` and ``rmsprop_nesterov`` keep the interim points
  ``theta~ = theta + alpha*v`` as parameters (see :func:`transforms.nesterov`);
  the model the lecture notes evaluate is ``theta``. Takes the same arguments as
  :func:`make_optimizer`.

  Example:
    >>> eval_step = make_eval_step(objective, params_fn=make_evaluation_params('nesterov', 0.1))  # doctest: +SKIP
  """
  del learning_rate, schedule, steps_per_epoch
  if name not in _NESTEROV:
    return None
  default = inspect.signature(_OPTIMIZERS[name]).parameters["momentum"].default
  alpha = kwargs.get("momentum", default)

  def params_fn(params, opt_state):
    # With optimizer.momentum_off, alpha is injected and drops to 0 at the switch.
    injected = momentum_switch.injected_momentum(opt_state)
    return transforms.nesterov_theta(params, opt_state, alpha if injected is None else injected)

  return params_fn


def current_learning_rate(opt_state) -> float | None:
  """Reads the injected learning rate from an optimizer state, or ``None`` if there is none.

  With a schedule it is the rate the latest update used; with a plateau
  schedule, the base rate times the current plateau scale. Computed on the
  host (it waits for the state), so it compiles nothing.
  """
  has_hyperparams = lambda x: hasattr(x, "hyperparams")  # noqa: E731  optax's InjectHyperparamsState
  for state in jax.tree.leaves(opt_state, is_leaf=has_hyperparams):
    if has_hyperparams(state) and "learning_rate" in state.hyperparams:
      rate = np.float32(jax.device_get(state.hyperparams["learning_rate"]))
      return float(rate * np.float32(plateau.plateau_scale(opt_state)))
  return None
