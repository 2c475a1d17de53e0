"""Kernel initializers selectable by name from configs.

Each name maps to a ``jax.nn.initializers`` initializer. A later issue adds the
seed-exact initializers (``uniform_fan_in``, ``sparse``, ...) to this registry.
"""

from typing import Callable

import jax

from jaxreg.errors import ConfigError

Initializer = Callable[..., jax.Array]

_INITIALIZERS: dict[str, Callable[[], Initializer]] = {
    # Flax's default for nn.Dense: N(0, 1/fan_in), truncated.
    "lecun_normal": jax.nn.initializers.lecun_normal,
    "lecun_uniform": jax.nn.initializers.lecun_uniform,
    # Glorot and Bengio (2010): U(-sqrt(6/(m+n)), sqrt(6/(m+n))).
    "glorot_uniform": jax.nn.initializers.glorot_uniform,
    "glorot_normal": jax.nn.initializers.glorot_normal,
    # He et al. (2015): N(0, 2/fan_in), truncated.
    "he_normal": jax.nn.initializers.he_normal,
    "he_uniform": jax.nn.initializers.he_uniform,
    "orthogonal": jax.nn.initializers.orthogonal,
}


def initializer_names() -> list[str]:
  """Returns the names accepted by :func:`get_initializer`."""
  return sorted(_INITIALIZERS)


def get_initializer(name: str) -> Initializer:
  """Returns the kernel initializer called ``name``.

  Args:
    name: one of :func:`initializer_names`, e.g. ``'glorot_uniform'``.

  Raises:
    ConfigError: for an unknown name; the message lists the valid ones.

  Example:
    >>> init = get_initializer('he_normal')
    >>> init(jax.random.key(0), (64, 32)).shape
    (64, 32)
  """
  try:
    return _INITIALIZERS[name]()
  except KeyError:
    raise ConfigError(
        f"unknown kernel initializer {name!r}; valid names: {', '.join(initializer_names())}"
    ) from None
