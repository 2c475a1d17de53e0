"""Augmentations of 1-D signals (MNIST-1D, audio-like sequences): one example of shape ``(length,)`` or ``(length, channels)``.

Written here, since dm-pix works on images: integer shifts (circular, or
padded with a constant or the edge value), time stretch by linear
resampling, amplitude scaling and additive Gaussian noise (the last also
works on images). The lecture notes list shifts, time stretch and noise among
the augmentations for speech and signals.
"""

import jax
import jax.numpy as jnp

from jaxreg import _random
from jaxreg.augment import _checks


def shift_along(x: jax.Array, offset: jax.Array, axis: int, mode: str, fill: float = 0.0) -> jax.Array:
  """``x`` moved by ``offset`` (an integer, possibly traced) along ``axis``: ``out[t] = x[t - offset]``.

  ``mode``: ``'circular'`` wraps around (``jnp.roll``), ``'edge'`` repeats
  the edge value, ``'constant'`` fills with ``fill``.
  """
  length = x.shape[axis]
  source = jnp.arange(length) - offset
  if mode == "circular":
    return jnp.take(x, source % length, axis=axis)
  moved = jnp.take(x, jnp.clip(source, 0, length - 1), axis=axis)
  if mode == "edge":
    return moved
  inside = (source >= 0) & (source < length)
  shape = [1] * x.ndim
  shape[axis] = length
  return jnp.where(inside.reshape(shape), moved, jnp.asarray(fill, x.dtype))


def shift(max_shift: int, mode: str = "circular", fill: float = 0.0):
  """Moves the signal by an integer ``s ~ U{-max_shift, ..., max_shift}`` steps: ``out[t] = x[t - s]``.

  Args:
    max_shift: the largest shift, in steps (0: the identity).
    mode: ``'circular'`` (wrap around), ``'constant'`` (pad with ``fill``) or ``'edge'``.
    fill: the padding value of ``'constant'``.

  Example:
    >>> shift(2, mode='constant')(jax.random.PRNGKey(0), jnp.arange(5.0))  # doctest: +SKIP
    Array([0., 0., 0., 1., 2.], dtype=float32)
  """
  max_shift, mode = _checks.non_negative_int("max_shift", max_shift), _checks.pad_mode(mode)
  fill = _checks.number("fill", fill)

  def augment(key, x):
    offset = jax.random.randint(key, (), -max_shift, max_shift + 1)
    return shift_along(x, offset, 0, mode, fill)

  return augment


def time_stretch(min_rate: float, max_rate: float, mode: str = "edge", fill: float = 0.0):
  """Plays the signal at a rate ``r ~ U(min_rate, max_rate)`` about its centre, keeping its length.

  ``out[t] = x(c + r (t - c))`` with ``c = (length - 1) / 2``, read by linear
  interpolation: ``r > 1`` compresses the pattern (faster, a pitch-like
  shift up for audio), ``r < 1`` stretches it. Samples outside the signal
  take the edge value (``'edge'``) or ``fill`` (``'constant'``). ``r = 1``
  is the identity.
  """
  _checks.interval("min_rate", min_rate, "max_rate", max_rate, low_open=True)
  if mode not in ("edge", "constant"):
    raise ValueError(f"mode must be 'edge' or 'constant', got {mode!r}")
  fill = _checks.number("fill", fill)

  def augment(key, x):
    rate = jax.random.uniform(key, (), minval=min_rate, maxval=max_rate)
    length = x.shape[0]
    grid = jnp.arange(length, dtype=jnp.float32)
    centre = (length - 1) / 2.0
    where = centre + rate * (grid - centre)
    pad = {} if mode == "edge" else {"left": fill, "right": fill}
    columns = x.reshape(length, -1)
    out = jax.vmap(lambda column: jnp.interp(where, grid, column, **pad), in_axes=1, out_axes=1)(columns)
    return out.reshape(x.shape).astype(x.dtype)

  return augment


def scale_amplitude(min_scale: float, max_scale: float):
  """Multiplies the whole example by ``a ~ U(min_scale, max_scale)`` (``a = 1``: the identity)."""
  _checks.interval("min_scale", min_scale, "max_scale", max_scale)

  def augment(key, x):
    return x * jax.random.uniform(key, (), minval=min_scale, maxval=max_scale).astype(x.dtype)

  return augment


def gaussian_noise(sigma: float, clip: tuple[float, float] | None = None):
  """Adds ``N(0, sigma^2)`` noise to every value (Bishop 1995: for small ``sigma``, like an L2 penalty).

  Args:
    sigma: the noise's standard deviation, in the input's units (0: the identity).
    clip: ``(low, high)`` to clip the result to, e.g. ``(0, 1)`` for images, or ``None``.
  """
  sigma = _checks.number("sigma", sigma, low=0.0)
  if clip is not None:
    if len(clip) != 2:
      raise ValueError(f"clip must be (low, high) or None, got {clip!r}")
    _checks.interval("clip[0]", clip[0], "clip[1]", clip[1], minimum=-float("inf"))

  def augment(key, x):
    noisy = x + sigma * _random.normal(key, x.shape, dtype=x.dtype)
    return noisy if clip is None else jnp.clip(noisy, clip[0], clip[1])

  return augment
