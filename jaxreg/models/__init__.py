"""Models as ``ModelFns(init, apply)`` pairs, and the ``make_model`` factory."""

from collections.abc import Mapping, Sequence

from jaxreg._validation import check_kwargs
from jaxreg.errors import ConfigError
from jaxreg.models.base import ModelFns, from_linen
from jaxreg.models.initializers import get_initializer, initializer_names
from jaxreg.models.mlp import MLP, get_activation

MODEL_NAMES = ("mlp",)


def make_mlp(
    *,
    num_outputs: int,
    hidden_sizes: Sequence[int] = (256, 256),
    activation: str = "relu",
    dropout_rate: float = 0.0,
    kernel_init: str | Mapping[str, object] = "lecun_normal",
) -> ModelFns:
  """Builds an :class:`MLP` as ``ModelFns``.

  Args:
    num_outputs: width of the output layer (number of classes).
    hidden_sizes: widths of the hidden layers, e.g. ``(256, 256)``.
    activation: name of the hidden nonlinearity (``'relu'``, ``'tanh'``, ...).
    dropout_rate: probability of dropping a hidden unit in training, in [0, 1).
    kernel_init: the kernel initializer: a name (see ``initializer_names()``)
      or ``{'name': ..., <arguments>}``, e.g. ``{'name': 'sparse', 'k': 15}``.

  Example:
    >>> model = make_mlp(num_outputs=10, hidden_sizes=(32,))
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 64)))
    >>> logits, _ = model.apply(variables, jnp.zeros((5, 64)), train=False)
    >>> logits.shape
    (5, 10)
  """
  hidden_sizes = tuple(hidden_sizes)
  if not hidden_sizes or any(int(w) != w or w <= 0 for w in hidden_sizes):
    raise ConfigError(
        f"model.hidden_sizes must be a non-empty list of positive integers, got {hidden_sizes!r}"
    )
  if not 0.0 <= dropout_rate < 1.0:
    raise ConfigError(f"model.dropout_rate must be in [0, 1), got {dropout_rate!r}")
  if num_outputs <= 0:
    raise ConfigError(f"num_outputs must be positive, got {num_outputs!r}")
  module = MLP(
      hidden_sizes=tuple(int(w) for w in hidden_sizes),
      num_outputs=int(num_outputs),
      activation=get_activation(activation),
      dropout_rate=float(dropout_rate),
      kernel_init=get_initializer(kernel_init),
  )
  return from_linen(module)


_FACTORIES = {"mlp": make_mlp}


def make_model(name: str, *, num_outputs: int, **kwargs) -> ModelFns:
  """Builds the model called ``name`` from the keyword arguments of a config's ``model`` section.

  Args:
    name: one of ``MODEL_NAMES``.
    num_outputs: width of the output layer (taken from the dataset).
    **kwargs: the model's own arguments (see e.g. :func:`make_mlp`).

  Raises:
    ConfigError: for an unknown model name or argument; the message lists the valid ones.
  """
  if name not in _FACTORIES:
    raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
  factory = _FACTORIES[name]
  check_kwargs(
      factory, kwargs, section="model", what=f"model {name!r}", exclude=("num_outputs",)
  )
  return factory(num_outputs=num_outputs, **kwargs)


__all__ = [
    "MLP",
    "MODEL_NAMES",
    "ModelFns",
    "from_linen",
    "get_activation",
    "get_initializer",
    "initializer_names",
    "make_mlp",
    "make_model",
]
