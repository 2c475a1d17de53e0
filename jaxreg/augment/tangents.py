"""Tangent vectors of the data manifold: the derivative of an augmentation at the identity.

For a family of transformations ``s(x, theta)`` with ``s(x, 0) = x``
(translation, rotation, scaling), the tangent vector at ``x`` is
``v = d s(x, theta) / d theta`` at ``theta = 0``: the direction in input
space along which a small transformation moves the example. Tangent
propagation (:func:`jaxreg.regularizers.tangent_prop`, Simard et al. 1992)
penalizes the network's derivative along these directions.

The augmentations of :mod:`jaxreg.augment` resample the input at moved
coordinates: ``out(o) = x(source(o, theta))``. By the chain rule
``v(o) = grad x(o) . d source(o, theta) / d theta``: the **flow** of the
coordinates, obtained by differentiating the augmentations' own coordinate
maps (:func:`~jaxreg.augment.images.source_coordinates` with
:func:`~jaxreg.augment.images.affine_matrix`, the time axis of
``time_stretch``) with ``jax.jvp``, times the input's spatial gradient by
central differences (zero outside the input, as the augmentations' default
``'constant'`` padding). Differentiating the bilinear resampling itself at
the identity would give a one-sided difference (its kink lies on the pixel
grid); the central form is the mean of the two one-sided derivatives, and
equals the central finite difference of the augmentation,
``(s(x, h) - s(x, -h)) / 2h``, as ``h -> 0`` (tested). Simard et al. smooth
the image first (``smoothing``, a Gaussian of that many pixels).

Source: Goodfellow et al., Deep Learning, section 7.14 ("Tangent Distance,
Tangent Prop and Manifold Tangent Classifier"); Simard et al. 1992.
"""

from collections.abc import Callable, Sequence

import dm_pix as pix
import jax
import jax.numpy as jnp

from jaxreg.augment import _checks
from jaxreg.augment.images import affine_matrix, source_coordinates

IMAGE_TANGENTS = ("translate_x", "translate_y", "rotate", "scale", "shear")
SIGNAL_TANGENTS = ("shift", "stretch", "amplitude")


def tangent_names() -> list[str]:
  """The built-in tangent generators: images ``(height, width, channels)`` and signals ``(length[, channels])``.

  Examples:
    >>> tangent_names()[:3]
    ['translate_x', 'translate_y', 'rotate']
  """
  return list(IMAGE_TANGENTS + SIGNAL_TANGENTS)


def central_difference(x: jax.Array, axis: int) -> jax.Array:
  """``(x[i + 1] - x[i - 1]) / 2`` along ``axis``, with zeros outside ``x``."""
  pad = [(0, 0)] * x.ndim
  pad[axis] = (1, 1)
  padded = jnp.pad(x, pad)
  length = x.shape[axis]
  ahead = jax.lax.slice_in_dim(padded, 2, length + 2, axis=axis)
  behind = jax.lax.slice_in_dim(padded, 0, length, axis=axis)
  return (ahead - behind) / 2


def image_flow(name: str, height: int, width: int) -> jax.Array:
  """``d source(o, theta) / d theta`` at the identity, ``(height, width, 2)`` in ``(row, column)``.

  Translations move the image by ``theta`` pixels (``translate_x``: to the
  right, ``translate_y``: down), so each output reads ``theta`` pixels
  behind; ``rotate`` (radians, counter-clockwise), ``scale`` (the zoom
  factor, at 1) and ``shear`` (radians) differentiate
  :func:`~jaxreg.augment.images.source_coordinates` of
  :func:`~jaxreg.augment.images.affine_matrix` with ``jax.jvp``.
  """
  if name in ("translate_x", "translate_y"):
    axis = 1 if name == "translate_x" else 0

    def source(t):
      return source_coordinates(height, width, jnp.eye(2)) - t * jnp.eye(2)[axis]

    at = 0.0
  else:
    parameters = {"rotate": lambda a: (a, 1.0, 0.0), "scale": lambda z: (0.0, z, 0.0),
                  "shear": lambda s: (0.0, 1.0, s)}[name]
    at = 1.0 if name == "scale" else 0.0

    def source(theta):
      return source_coordinates(height, width, affine_matrix(*parameters(theta)))

  return jax.jvp(source, (jnp.float32(at),), (jnp.float32(1.0),))[1]


def _image_tangent(x: jax.Array, name: str, smoothing: float) -> jax.Array:
  """One image's tangent vector for ``name``."""
  if x.ndim != 3:
    raise ValueError(f"the image tangent {name!r} needs images shaped (height, width, channels), got an example "
                     f"of shape {x.shape}; set data.example_shape, e.g. [8, 8, 1] for digits")
  if smoothing > 0:
    x = pix.gaussian_blur(x, smoothing, ((smoothing - 0.8) / 0.3 + 1) / 0.5 + 1)
  flow = image_flow(name, x.shape[0], x.shape[1])
  return central_difference(x, 0) * flow[..., :1] + central_difference(x, 1) * flow[..., 1:]


def _signal_tangent(x: jax.Array, name: str) -> jax.Array:
  """One signal's tangent vector for ``name`` (time on axis 0)."""
  if x.ndim not in (1, 2):
    raise ValueError(f"the signal tangent {name!r} needs signals shaped (length,) or (length, channels), got an "
                     f"example of shape {x.shape}")
  if name == "amplitude":  # d (a x) / d a at a = 1
    return x
  length = x.shape[0]
  centre = (length - 1) / 2.0
  time = jnp.arange(length, dtype=jnp.float32)
  # shift: out[t] = x[t - s]; stretch: out[t] = x(c + r (t - c)) (augment.time_stretch).
  where = (lambda s: time - s) if name == "shift" else (lambda r: centre + r * (time - centre))
  flow = jax.jvp(where, (jnp.float32(0.0 if name == "shift" else 1.0),), (jnp.float32(1.0),))[1]
  return central_difference(x, 0) * flow.reshape((length,) + (1,) * (x.ndim - 1))


def make_tangents(names: Sequence[str], *, smoothing: float = 0.0) -> Callable[[jax.Array], jax.Array]:
  """A tangent generator ``fn(x) -> v`` for a batch ``x``: ``v`` has shape ``(k, *x.shape)``.

  Args:
    names: ``k`` built-in tangents (:func:`tangent_names`): for images
      ``translate_x``, ``translate_y``, ``rotate``, ``scale``, ``shear``; for
      signals ``shift``, ``stretch`` (the time scale of ``time_stretch``),
      ``amplitude`` (``d (a x) / d a = x``).
    smoothing: for images, the standard deviation in pixels of a Gaussian
      blur applied before differentiating (Simard et al.); 0 for none.

  Raises:
    ValueError: for an unknown name, none, a repeated name, or a negative smoothing.

  Examples:
    >>> tangents = make_tangents(['translate_x', 'translate_y'])
    >>> tangents(jnp.zeros((5, 8, 8, 1))).shape
    (2, 5, 8, 8, 1)
  """
  if isinstance(names, str):
    names = [names]
  names = list(names)
  if not names:
    raise ValueError(f"tangents must name at least one of {', '.join(tangent_names())}")
  for name in names:
    if name not in tangent_names():
      raise ValueError(f"unknown tangent {name!r}; valid tangents: {', '.join(tangent_names())}")
  if len(set(names)) != len(names):
    raise ValueError(f"tangents names a tangent twice: {names}")
  smoothing = _checks.number("smoothing", smoothing, low=0.0)

  def one(x, name):
    return _image_tangent(x, name, smoothing) if name in IMAGE_TANGENTS else _signal_tangent(x, name)

  def tangents(x: jax.Array) -> jax.Array:
    return jnp.stack([jax.vmap(lambda example, n=name: one(example, n))(x) for name in names])

  return tangents
