"""``make_optimizer``: a config's ``optimizer`` section to an optax transform.

For now the names ``sgd``, ``momentum`` and ``adam`` map to optax's own
optimizers; the seeds' exact algorithms replace them behind the same names.
"""

from collections.abc import Callable

import optax

from jaxreg._validation import check_kwargs
from jaxreg.errors import ConfigError


def _sgd(learning_rate):
  """Plain (minibatch) SGD: ``theta <- theta - eps * g``."""
  return optax.sgd(learning_rate)


def _momentum(learning_rate, momentum: float = 0.9, nesterov: bool = False):
  """SGD with heavy-ball momentum, optax's form: ``v <- momentum*v + g; theta <- theta - eps*v``."""
  if not 0.0 <= momentum < 1.0:
    raise ConfigError(f"optimizer.momentum must be in [0, 1), got {momentum!r}")
  return optax.sgd(learning_rate, momentum=momentum, nesterov=nesterov)


def _adam(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
  """Adam (Kingma and Ba, 2015), optax's form."""
  for name, value in (("b1", b1), ("b2", b2)):
    if not 0.0 <= value < 1.0:
      raise ConfigError(f"optimizer.{name} must be in [0, 1), got {value!r}")
  if eps <= 0:
    raise ConfigError(f"optimizer.eps must be positive, got {eps!r}")
  return optax.adam(learning_rate, b1=b1, b2=b2, eps=eps)


_OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": _sgd,
    "momentum": _momentum,
    "adam": _adam,
}


def optimizer_names() -> list[str]:
  """Returns the names accepted by :func:`make_optimizer`."""
  return sorted(_OPTIMIZERS)


def make_optimizer(
    name: str, learning_rate: float, **kwargs
) -> optax.GradientTransformationExtraArgs:
  """Builds the optimizer called ``name``.

  The learning rate is injected as a hyperparameter
  (``optax.inject_hyperparams``), so the current value can be read from the
  optimizer state with :func:`current_learning_rate` and logged.

  Args:
    name: one of :func:`optimizer_names`.
    learning_rate: the step size ``eps``, a positive number.
    **kwargs: the optimizer's own arguments, e.g. ``momentum=0.9`` or ``b1=0.9``.

  Raises:
    ConfigError: for an unknown name, argument or an impossible value; the
      message lists the valid choices.

  Example:
    >>> tx = make_optimizer('momentum', learning_rate=0.1, momentum=0.9)
    >>> state = tx.init({'w': jnp.zeros(3)})
  """
  if name not in _OPTIMIZERS:
    raise ConfigError(
        f"unknown optimizer {name!r}; valid names: {', '.join(optimizer_names())}"
    )
  factory = _OPTIMIZERS[name]
  check_kwargs(
      factory, kwargs, section="optimizer", what=f"optimizer {name!r}", exclude=("learning_rate",)
  )
  if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or learning_rate <= 0:
    raise ConfigError(
        f"optimizer.learning_rate must be a positive number, got {learning_rate!r}"
    )
  factory(float(learning_rate), **kwargs)  # validates the arguments eagerly
  # Only the learning rate is injected (so it can be read and, later,
  # scheduled); the other arguments stay Python constants.
  return optax.inject_hyperparams(lambda learning_rate: factory(learning_rate, **kwargs))(
      learning_rate=float(learning_rate)
  )


def current_learning_rate(opt_state) -> float | None:
  """Reads the injected learning rate from an optimizer state, or ``None`` if there is none."""
  try:
    return optax.tree_utils.tree_get(opt_state, "learning_rate")
  except (KeyError, ValueError):
    return None
