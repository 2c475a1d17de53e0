"""Kernel initializers selectable by name from configs.

A model config's ``kernel_init`` is a name (``'glorot_uniform'``) or a
mapping with a name and the initializer's arguments
(``{'name': 'sparse', 'k': 15}``, ``{'name': 'orthogonal', 'gain': 1.0}``).
For a kernel of shape ``(m, n)`` (``m`` inputs, ``n`` units), ``m`` is the
fan-in and ``n`` the fan-out; for larger kernels the leading axes count as
receptive field, as in ``jax.nn.initializers``.
"""

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp

from jaxreg._validation import check_kwargs
from jaxreg.errors import ConfigError

Initializer = Callable[..., jax.Array]


def uniform_fan_in() -> Initializer:
  """``W_ij ~ U(-1/sqrt(m), 1/sqrt(m))``, ``m`` the fan-in.

  The lecture notes' heuristic for the initial weights of a fully connected layer
  with ``m`` inputs. ``jax.nn.initializers.uniform(s)`` samples ``[0, s)``,
  not ``[-s, s)``; this samples the symmetric interval (a variance scaling
  of ``1/3``: ``Var = (1/sqrt(m))^2 / 3``).

  Source: Wang 2023, "Weight Initialization" (Goodfellow et al., section 8.4).
  """
  return jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def glorot_uniform() -> Initializer:
  """Glorot and Bengio (2010): ``W_ij ~ U(-sqrt(6/(m+n)), sqrt(6/(m+n)))``.

  The lecture notes print the bound as ``6/sqrt(m+n)``; Glorot's paper (and every
  library) has ``sqrt(6/(m+n))``, which this uses: it gives
  ``Var(W) = 2/(m+n)``, the compromise between keeping the forward and the
  backward variance.
  """
  return jax.nn.initializers.glorot_uniform()


def glorot_normal() -> Initializer:
  """Glorot normal: ``Var(W) = 2/(m+n)``, a normal truncated at 2 standard deviations (rescaled to keep the variance)."""
  return jax.nn.initializers.glorot_normal()


def he_normal() -> Initializer:
  """He et al. (2015): ``Var(W) = 2/m`` for ReLU layers, a normal truncated at 2 standard deviations (rescaled)."""
  return jax.nn.initializers.he_normal()


def orthogonal(gain: float = 1.0) -> Initializer:
  """A random (semi-)orthogonal matrix times ``gain`` (Saxe et al., 2014).

  The lecture notes recommend it for deep and recurrent networks: every singular
  value of the initial map is ``gain``, so signals neither grow nor vanish
  through the layer at the start.
  """
  if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not gain > 0:
    raise ValueError(f"kernel_init: orthogonal's gain must be a number > 0, got {gain!r}")
  return jax.nn.initializers.orthogonal(scale=float(gain))


def sparse(k: int = 15, scale: float = 1.0) -> Initializer:
  """Sparse initialization (Martens, 2010): each unit has exactly ``k`` non-zero incoming weights.

  For each unit (each column of an ``(m, n)`` kernel), ``k`` of its ``m``
  inputs are chosen uniformly without replacement and their weights drawn
  from ``N(0, scale^2)``; the others are exactly 0. Unlike dense schemes the
  size of the initial weights does not shrink as ``m`` grows, and units
  differ from one another from the start.

  Source: Wang 2023, "Weight Initialization" (sparse initialization).

  Args:
    k: non-zero incoming weights per unit, ``1 <= k <= m``.
    scale: standard deviation of the non-zero weights.
  """
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ValueError(f"kernel_init: sparse's k must be a positive integer, got {k!r}")

  def init(key, shape, dtype=jnp.float32):
    if len(shape) < 2:
      raise ValueError(f"sparse initialization needs a kernel of at least 2 dimensions, got shape {shape}")
    fan_in = 1
    for d in shape[:-1]:
      fan_in *= d
    units = shape[-1]
    if k > fan_in:
      raise ValueError(
          f"kernel_init: sparse's k={k} is larger than the fan-in {fan_in} of a kernel of shape {shape}"
      )
    choice_key, value_key = jax.random.split(key)
    # For each unit, the k inputs with the smallest of m uniform draws: a uniform k-subset.
    ranks = jnp.argsort(jnp.argsort(jax.random.uniform(choice_key, (fan_in, units)), axis=0), axis=0)
    chosen = ranks < k
    values = scale * jax.random.normal(value_key, (fan_in, units), dtype)
    return jnp.where(chosen, values, 0.0).astype(dtype).reshape(shape)

  return init


_INITIALIZERS: dict[str, Callable[..., Initializer]] = {
    # Flax's default for nn.Dense: N(0, 1/fan_in), truncated.
    "lecun_normal": jax.nn.initializers.lecun_normal,
    "lecun_uniform": jax.nn.initializers.lecun_uniform,
    "uniform_fan_in": uniform_fan_in,
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_normal": he_normal,
    "he_uniform": jax.nn.initializers.he_uniform,
    "orthogonal": orthogonal,
    "sparse": sparse,
}


def initializer_names() -> list[str]:
  """Returns the names accepted by :func:`get_initializer`.

  Examples:
    >>> 'glorot_uniform' in initializer_names(), 'he_normal' in initializer_names()
    (True, True)
  """
  return sorted(_INITIALIZERS)


def get_initializer(spec: str | Mapping[str, object]) -> Initializer:
  """Returns the kernel initializer a config names.

  Args:
    spec: a name from :func:`initializer_names`, e.g. ``'glorot_uniform'``,
      or a mapping ``{'name': ..., <arguments>}``, e.g. ``{'name': 'sparse', 'k': 15}``.

  Raises:
    ConfigError: for an unknown name or argument; the message lists the valid ones.

  Examples:
    >>> init = get_initializer('he_normal')
    >>> init(jax.random.key(0), (64, 32)).shape
    (64, 32)
    >>> w = get_initializer({'name': 'sparse', 'k': 3})(jax.random.key(0), (10, 4))
    >>> (w != 0).sum(axis=0).tolist()
    [3, 3, 3, 3]
  """
  if isinstance(spec, Mapping):
    kwargs = dict(spec)
    name = kwargs.pop("name", None)
  else:
    name, kwargs = spec, {}
  if name not in _INITIALIZERS:
    raise ConfigError(
        f"unknown kernel initializer {name!r}; valid names: {', '.join(initializer_names())} "
        "(a name, or {'name': ..., <its arguments>})"
    )
  factory = _INITIALIZERS[name]
  check_kwargs(factory, kwargs, section="model.kernel_init", what=f"initializer {name!r}")
  return factory(**kwargs)
