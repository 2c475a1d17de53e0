"""``make_optimizer``: a config's ``optimizer`` section to an optax transform.

The names ``sgd``, ``momentum``, ``nesterov``, ``adagrad``, ``rmsprop``,
``rmsprop_nesterov`` and ``adam`` are the lecture notes' algorithms
(:mod:`jaxreg.optim.transforms`); ``optax.<name>`` is any optimizer of optax
(e.g. ``optax.adamw``), with optax's own arguments.
"""

import dataclasses
import inspect
from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg._registry import Registry, config_error
from jaxreg._validation import is_traced
from jaxreg.errors import ConfigError
from jaxreg.optim import metric_driven, momentum_switch, plateau, schedules, transforms

OPTAX_PREFIX = "optax."


def _optax_factory(name: str) -> Callable[..., optax.GradientTransformation]:
  attr = name[len(OPTAX_PREFIX):]
  factory = getattr(optax, attr, None)
  if factory is None or not callable(factory) or "learning_rate" not in inspect.signature(factory).parameters:
    raise ConfigError(
        f"{name!r} is not an optax optimizer taking a learning_rate (e.g. optax.adamw, optax.lion)"
    )
  return factory


_OPTIMIZERS = Registry(
    "optimizer",
    {
        "adagrad": transforms.adagrad,
        "adam": transforms.adam,
        "momentum": transforms.momentum,
        "nesterov": transforms.nesterov,
        "rmsprop": transforms.rmsprop,
        "rmsprop_nesterov": transforms.rmsprop_nesterov,
        "sgd": transforms.sgd,
    },
    prefix=OPTAX_PREFIX,
    from_prefix=_optax_factory,
)


def optimizer_names() -> list[str]:
  """Returns the names of the lecture notes' optimizers accepted by :func:`make_optimizer` (besides ``optax.<name>``).

  Examples:
    >>> optimizer_names()
    ['adagrad', 'adam', 'momentum', 'nesterov', 'rmsprop', 'rmsprop_nesterov', 'sgd']
  """
  return _OPTIMIZERS.names()


@dataclasses.dataclass(frozen=True)
class Optimizer:
  """Everything :func:`make_optimizer` builds from a config's ``optimizer`` section.

  It stands where an optax transform is expected (``init`` and ``update``
  delegate to :attr:`tx`); inside ``optax.chain`` pass :attr:`tx`.

  Attributes:
    tx: the optax transform (metric-driven when ``monitors`` is not empty).
    learning_rate: the base rate ``eps_0``: a number, or a schedule ``step -> eps``.
    evaluation_params: ``fn(params, opt_state) -> params`` to evaluate at
      (the Nesterov optimizers' ``theta``), or ``None``.
    monitors: the logged metrics that the metric-driven parts watch (the
      plateau schedule's, then the momentum switch's).
    learning_rate_on_metric: whether the learning rate changes with a
      monitored metric (a plateau schedule), so that :attr:`learning_rate`
      is only its base value.

  Examples:
    >>> optimizer = make_optimizer('nesterov', learning_rate=0.1, momentum=0.9)
    >>> state = optimizer.init({'w': jnp.zeros(3)})
    >>> optimizer.evaluation_params is not None, optimizer.monitors
    (True, ())
  """

  tx: optax.GradientTransformationExtraArgs
  learning_rate: float | Callable
  evaluation_params: Callable | None = None
  monitors: tuple[str, ...] = ()
  learning_rate_on_metric: bool = False

  def init(self, params):
    """``tx.init``."""
    return self.tx.init(params)

  def update(self, updates, state, params=None, **extra_args):
    """``tx.update``."""
    return self.tx.update(updates, state, params, **extra_args)

  def observe(self, opt_state, metrics: Mapping[str, object]):
    """The state after one evaluation: each metric-driven part reads its monitor from ``metrics`` (jit-safe)."""
    return metric_driven.observe(self.tx, opt_state, metrics) if self.monitors else opt_state

  def logged(self, opt_state) -> dict:
    """What to log per epoch, read on the host: ``learning_rate`` and, if it can be switched off, ``momentum``."""
    logged = {"learning_rate": current_learning_rate(opt_state)}
    momentum = momentum_switch.injected_momentum(opt_state)
    if momentum is not None:  # injected only when it can be switched off
      logged["momentum"] = float(jax.device_get(momentum))
    return logged

  def summary(self, opt_state) -> dict:
    """What the run's summary reports: ``momentum_off_after_epoch`` once momentum was switched off."""
    off_after = momentum_switch.momentum_off_after(opt_state)
    return {} if off_after is None else {"momentum_off_after_epoch": off_after}


def _rule_kwargs(section: str, cfg, valid: tuple[str, ...], *, what: str = "") -> dict:
  """A metric-driven rule's config section as keyword arguments, refusing unknown keys."""
  if not isinstance(cfg, Mapping):
    raise ConfigError(f"{section} must be a mapping such as {{'monitor': 'val_loss', 'patience': 5}}, got {cfg!r}")
  unknown = sorted(set(cfg) - set(valid))
  if unknown:
    raise ConfigError(
        f"unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)}{what}; valid keys: {', '.join(sorted(valid))}"
    )
  return dict(cfg)


def _on_plateau(tx, schedule: Mapping, learning_rate: float) -> optax.GradientTransformationExtraArgs:
  """``tx`` wrapped in the plateau schedule of ``optimizer.schedule``."""
  kwargs = _rule_kwargs("optimizer.schedule", {k: v for k, v in schedule.items() if k != "name"}, PLATEAU_KEYS,
                        what=" for schedule 'plateau'")
  kwargs.setdefault("monitor", "val_loss")
  min_value = kwargs.pop("min_value", 0.0)
  if isinstance(min_value, bool) or not isinstance(min_value, (int, float)) or not min_value >= 0:
    raise ConfigError(f"optimizer.schedule.min_value must be a number >= 0, got {min_value!r}")
  try:
    return plateau.reduce_on_plateau(tx, min_scale=min(min_value / learning_rate, 1.0), **kwargs)
  except (ValueError, TypeError) as e:
    raise config_error(e, "optimizer.schedule", PLATEAU_KEYS + ("min_scale",), "schedule 'plateau'") from None


def _with_momentum_off(name, factory, kwargs, rate, momentum_off, transform):
  """The optimizer with its momentum injected and wrapped in the switch of ``optimizer.momentum_off``."""
  rule = _rule_kwargs("optimizer.momentum_off", momentum_off, MOMENTUM_OFF_KEYS)
  rule.setdefault("monitor", "val_loss")
  alpha = _switchable_momentum(name, factory, kwargs)
  kwargs = {k: v for k, v in kwargs.items() if k != "momentum"}
  inner = optax.inject_hyperparams(
      lambda learning_rate, momentum: transform(factory(learning_rate, momentum=momentum, **kwargs))
  )(learning_rate=rate, momentum=alpha)
  try:
    return momentum_switch.momentum_off_on_plateau(inner, **rule), rule["monitor"]
  except (ValueError, TypeError) as e:
    raise config_error(e, "optimizer.momentum_off", MOMENTUM_OFF_KEYS, "the momentum switch") from None


PLATEAU_KEYS = ("cooldown", "factor", "min_delta", "min_value", "mode", "monitor", "patience")
MOMENTUM_OFF_KEYS = ("min_delta", "mode", "monitor", "patience")


def make_optimizer(
    name: str,
    learning_rate: float,
    schedule: Mapping[str, object] | None = None,
    steps_per_epoch: int | None = None,
    clip_global_norm: float | None = None,
    momentum_off: Mapping[str, object] | None = None,
    **kwargs,
) -> Optimizer:
  """Builds the optimizer called ``name``, with its schedule and metric-driven parts, as one :class:`Optimizer`.

  The learning rate is injected as a hyperparameter
  (``optax.inject_hyperparams``), so the current value can be read from the
  optimizer state with :func:`current_learning_rate` and logged.

  Args:
    name: one of :func:`optimizer_names`, or ``'optax.<name>'``.
    learning_rate: the step size ``eps`` (``eps_0`` with a schedule), a positive number.
    schedule: ``{'name': ..., 'unit': 'step' | 'epoch', <its arguments>}``
      (see :func:`jaxreg.optim.schedules.make_schedule`), or
      ``{'name': 'plateau', 'monitor': ..., 'factor': ..., 'patience': ...,
      'min_delta': ..., 'cooldown': ..., 'min_value': ..., 'mode': ...}``
      (:func:`jaxreg.optim.reduce_on_plateau`), or ``None`` for a constant rate.
    steps_per_epoch: for schedules counted in epochs (filled in by jaxreg).
    clip_global_norm: if set, first rescale the gradient to global norm at most
      this (``optax.clip_by_global_norm``; the lecture notes' remedy (Baskin et al. 2018) for exploding gradients).
    momentum_off: ``{'monitor': ..., 'patience': ..., 'min_delta': ..., 'mode': ...}``
      to switch momentum off (plain SGD) once the monitored metric flat-lines
      (Baskin et al. 2018; :func:`jaxreg.optim.momentum_off_on_plateau`).
      Only for optimizers with a ``momentum``.
    **kwargs: the optimizer's own arguments, e.g. ``momentum=0.9`` or ``delta=1e-7``.

  Returns:
    An :class:`Optimizer`: the transform, the learning-rate schedule, the
    parameters to evaluate and the monitors of the metric-driven parts.

  Raises:
    ConfigError: for an unknown name, argument or an impossible value; the
      message names the config key (``optimizer.b2``) and lists the valid choices.

  Examples:
    >>> tx = make_optimizer('nesterov', learning_rate=0.1, momentum=0.9)
    >>> state = tx.init({'w': jnp.zeros(3)})
  """
  factory = _OPTIMIZERS.get(name)
  traced = is_traced(learning_rate)  # a sweep's member value: checked by the member's own build
  if not traced and (isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not (
      0 < learning_rate < float("inf"))):
    raise ConfigError(f"optimizer.learning_rate must be a positive, finite number, got {learning_rate!r}")
  # Validates the name, the keys and the values, naming the key (optimizer.b2).
  _OPTIMIZERS.build(name, kwargs, section="optimizer", filled={"learning_rate": 1.0 if traced else float(learning_rate)})
  if clip_global_norm is not None and (
      isinstance(clip_global_norm, bool) or not isinstance(clip_global_norm, (int, float)) or clip_global_norm <= 0
  ):
    raise ConfigError(f"optimizer.clip_global_norm must be a positive number, got {clip_global_norm!r}")
  clip = (lambda tx: optax.chain(optax.clip_by_global_norm(float(clip_global_norm)), tx)) if clip_global_norm else (
      lambda tx: tx)
  rate = learning_rate_schedule(learning_rate, schedule, steps_per_epoch)
  monitors = []
  # Only the learning rate (and the momentum, if it can be switched off) is
  # injected, so it can be read, logged and changed; the other arguments stay
  # Python constants.
  if momentum_off:
    tx, monitor = _with_momentum_off(name, factory, kwargs, rate, momentum_off, clip)
    monitors.append(monitor)
  elif momentum_off is not None and not isinstance(momentum_off, Mapping):
    raise ConfigError(f"optimizer.momentum_off must be a mapping such as {{'patience': 5}}, got {momentum_off!r}")
  else:
    tx = optax.inject_hyperparams(lambda learning_rate: clip(factory(learning_rate, **kwargs)))(learning_rate=rate)
  on_plateau = bool(schedule) and schedule.get("name") == "plateau"
  if on_plateau:
    tx = _on_plateau(tx, schedule, float(learning_rate))
    monitors.insert(0, dict(schedule).get("monitor", "val_loss"))
  return Optimizer(
      tx=tx, learning_rate=rate, monitors=tuple(monitors), learning_rate_on_metric=on_plateau,
      evaluation_params=make_evaluation_params(name, learning_rate, momentum_off=momentum_off, **kwargs),
  )


def learning_rate_schedule(learning_rate: float, schedule=None, steps_per_epoch: int | None = None):
  """The learning rate of a config's ``optimizer`` section: a number, or a schedule ``step -> eps``.

  With a plateau schedule it is the base rate (the plateau's cuts live in the
  optimizer state, see :mod:`jaxreg.optim.plateau`).
  """
  schedule = dict(schedule or {})
  rate = learning_rate if is_traced(learning_rate) else float(learning_rate)
  if not schedule or schedule.get("name") == "plateau":
    return rate
  if "name" not in schedule and schedule.get("warmup"):
    schedule["name"] = "constant"  # a warm-up to a constant rate
  if "name" not in schedule:
    raise ConfigError(
        f"optimizer.schedule needs a name; valid names: {', '.join(schedules.schedule_names())}"
    )
  name = schedule.pop("name")
  if isinstance(name, str) and name.startswith(OPTAX_PREFIX) and "init_value" in schedule:
    rate = schedule.pop("init_value")  # an optax schedule's own start (e.g. a warm-up's), given in the config
  return schedules.make_schedule(name, init_value=rate, steps_per_epoch=steps_per_epoch, **schedule)


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

  Examples:
    >>> eval_step = make_eval_step(objective, params_fn=make_evaluation_params('nesterov', 0.1))  # doctest: +SKIP
  """
  del learning_rate, schedule, steps_per_epoch
  if name not in _NESTEROV:
    return None
  default = inspect.signature(_OPTIMIZERS.get(name)).parameters["momentum"].default
  alpha = kwargs.get("momentum", default)

  def params_fn(params, opt_state):
    # With optimizer.momentum_off, alpha is injected and drops to 0 at the switch.
    injected = momentum_switch.injected_momentum(opt_state)
    return transforms.nesterov_theta(params, opt_state, alpha if injected is None else injected)

  return params_fn


def _is_injected(x) -> bool:
  return hasattr(x, "hyperparams") and hasattr(x, "inner_state")  # optax's InjectHyperparamsState


def set_learning_rate(opt_state, learning_rate: float):
  """The optimizer state with every injected constant ``learning_rate`` replaced by ``learning_rate``.

  ``optax.inject_hyperparams`` keeps a constant learning rate in the
  optimizer state, so an optimizer built with a new rate and handed a
  restored state would go on at the old one. This is the explicit way to
  change it, e.g. to continue a run that diverged from its last good
  checkpoint with a smaller step (``jaxreg train --resume
  --config.optimizer.learning_rate=...`` calls it). Everything else in the
  state (momentum, second-moment estimates, step counts, a plateau
  schedule's scale, which multiplies the new rate) is kept. A rate given by a
  schedule is recomputed from the step count at every update and needs
  nothing: build the optimizer with the new schedule.

  Args:
    opt_state: a state from :meth:`Optimizer.init` (or any optax state that
      holds ``InjectHyperparamsState``).
    learning_rate: the new rate, a positive number.

  Returns:
    The state with the new rate, in the old rate's dtype.

  Raises:
    ValueError: if ``learning_rate`` is not a positive number, or the state
      holds no injected learning rate.

  Examples:
    >>> state = make_optimizer('sgd', learning_rate=0.5).init({'w': jnp.zeros(3)})
    >>> current_learning_rate(set_learning_rate(state, 0.125))
    0.125
  """
  if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
    raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
  found = []

  def replace(state):
    if not _is_injected(state):
      return state
    inner = jax.tree.map(replace, state.inner_state, is_leaf=_is_injected)
    hyperparams = dict(state.hyperparams)
    if "learning_rate" in hyperparams:
      found.append(state)
      hyperparams["learning_rate"] = jnp.asarray(learning_rate, dtype=jnp.asarray(hyperparams["learning_rate"]).dtype)
    return state._replace(hyperparams=hyperparams, inner_state=inner)

  new_state = jax.tree.map(replace, opt_state, is_leaf=_is_injected)
  if not found:
    raise ValueError("the optimizer state holds no injected learning_rate; build the optimizer with "
                     "make_optimizer or optax.inject_hyperparams")
  return new_state


def current_learning_rate(opt_state) -> float | None:
  """Reads the injected learning rate from an optimizer state, or ``None`` if there is none.

  With a schedule it is the rate the latest update used; with a plateau
  schedule, the base rate times the current plateau scale. Computed on the
  host (it waits for the state), so it compiles nothing.

  Examples:
    >>> state = make_optimizer('sgd', learning_rate=0.5, schedule={'name': 'exponential', 'rate': 0.5}).init({'w': jnp.zeros(2)})
    >>> current_learning_rate(state)
    0.5
  """
  has_hyperparams = lambda x: hasattr(x, "hyperparams")  # noqa: E731  optax's InjectHyperparamsState
  for state in jax.tree.leaves(opt_state, is_leaf=has_hyperparams):
    if has_hyperparams(state) and "learning_rate" in state.hyperparams:
      rate = np.float32(jax.device_get(state.hyperparams["learning_rate"]))
      return float(rate * np.float32(plateau.plateau_scale(opt_state)))
  return None
