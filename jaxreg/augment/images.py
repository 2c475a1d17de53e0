"""Geometric augmentations of images: one example of shape ``(height, width, channels)``.

From dm-pix: the flip (``random_flip_left_right``) and the Gaussian blur of
the elastic deformation's displacement fields (``gaussian_blur``). Written
here:

* the integer translation with a choice of padding (dm-pix has crops, not a
  padded integer shift);
* the random affine parameters (rotation, zoom, shear about the image's
  centre), which dm-pix leaves to the caller;
* the bilinear resampling (:func:`bilinear`). dm-pix's ``affine_transform``
  and ``elastic_deformation`` give the same values (tested against them and
  SciPy), but they interpolate an ``(height, width, channels)`` image as a
  3-D volume, and under ``vmap`` ran at about 1,500 images/s on 32x32 RGB
  images on a 2-core CPU, against about 100,000 for one 2-D gather of all
  channels at once (``bench/augment.py``).
"""

import math

import dm_pix as pix
import jax
import jax.numpy as jnp

from jaxreg.augment import _checks
from jaxreg.augment.signals import shift_along

_RESAMPLE_MODES = ("constant", "nearest")


def image_only(x) -> None:
  """Refuses an ``x`` that is not one image shaped ``(height, width, channels)``."""
  if x.ndim != 3:
    raise ValueError(f"image augmentations take one image shaped (height, width, channels), got shape {x.shape}")


def _resample_mode(mode) -> str:
  if mode not in _RESAMPLE_MODES:
    raise ValueError(f"mode must be one of {', '.join(_RESAMPLE_MODES)}, got {mode!r}")
  return mode


def horizontal_flip(p: float = 0.5):
  """Mirrors the image left to right with probability ``p`` (dm-pix ``random_flip_left_right``).

  Caution: a mirror image is not always the same class: it turns a 'b' into
  a 'd', and digits such as 2, 3, 4, 7 and 9 into shapes that are no digit.
  Use it where the class is symmetric (natural images), not blindly on digits.

  Examples:
    >>> image = jnp.arange(4.0).reshape(1, 4, 1)
    >>> horizontal_flip(p=1.0)(jax.random.key(0), image)[0, :, 0].tolist()
    [3.0, 2.0, 1.0, 0.0]
  """
  p = _checks.number("p", p, low=0.0, high=1.0)

  def augment(key, x):
    image_only(x)
    return pix.random_flip_left_right(key, x, probability=p)

  return augment


def translate(max_pixels: int, mode: str = "constant", fill: float = 0.0):
  """Moves the image by integers ``(dy, dx)``, each ``~ U{-max_pixels, ..., max_pixels}``.

  Args:
    max_pixels: the largest move along each axis (0: the identity).
    mode: what fills the uncovered border: ``'constant'`` (``fill``),
      ``'edge'`` (the nearest edge pixel) or ``'circular'`` (wrap around).
    fill: the value of ``'constant'`` (0: black).

  Examples:
    >>> moved = translate(2)(jax.random.key(0), jnp.ones((8, 8, 1)))
    >>> moved.shape, float(moved.min())  # zeros come in at the edges
    ((8, 8, 1), 0.0)
  """
  max_pixels, mode = _checks.non_negative_int("max_pixels", max_pixels), _checks.pad_mode(mode)
  fill = _checks.number("fill", fill)

  def augment(key, x):
    image_only(x)
    offsets = jax.random.randint(key, (2,), -max_pixels, max_pixels + 1)
    return shift_along(shift_along(x, offsets[0], 0, mode, fill), offsets[1], 1, mode, fill)

  return augment


def affine_matrix(rotation: jax.Array, zoom: jax.Array, shear: jax.Array) -> jax.Array:
  """The 2x2 map from an output pixel's offset from the centre to the input's, in ``(row, column)``.

  ``inverse(R(rotation) S(shear) Z(zoom))``: the image is zoomed by ``zoom``
  (``> 1`` enlarges), sheared (columns slide by ``tan(shear) * row``) and
  rotated counter-clockwise by ``rotation`` radians. Resampling reads the
  input at ``centre + M @ (out - centre)``, so ``M`` is the inverse map.
  """
  cos, sin = jnp.cos(rotation), jnp.sin(rotation)
  # Counter-clockwise on screen (rows grow downwards): the inverse rotation in (row, col).
  inverse_rotation = jnp.array([[cos, sin], [-sin, cos]])
  inverse_shear = jnp.array([[1.0, 0.0], [-jnp.tan(shear), 1.0]])
  return (inverse_shear @ inverse_rotation) / zoom


def affine(max_rotation: float = 0.0, zoom: tuple[float, float] = (1.0, 1.0), max_shear: float = 0.0,
           mode: str = "constant", fill: float = 0.0):
  """Rotates, zooms and shears the image about its centre, by bilinear resampling (dm-pix ``affine_transform``).

  Per image: rotation ``~ U(-max_rotation, max_rotation)`` degrees, zoom
  ``~ U(zoom[0], zoom[1])``, shear ``~ U(-max_shear, max_shear)`` degrees;
  the output pixel ``o`` reads the input at ``c + M (o - c)`` with ``c`` the
  centre and ``M`` from :func:`affine_matrix`. All zeros and ``zoom=(1, 1)``
  give the identity.

  Args:
    max_rotation: the largest rotation, in degrees (< 180).
    zoom: the range of the zoom factor (``> 1`` enlarges).
    max_shear: the largest shear angle, in degrees (< 90).
    mode: pixels read from outside the image: ``'constant'`` (``fill``) or
      ``'nearest'`` (the nearest edge pixel).
    fill: the value of ``'constant'``.

  Examples:
    >>> aug = affine(max_rotation=15, zoom=(0.9, 1.1), max_shear=10)
    >>> aug(jax.random.PRNGKey(0), jnp.zeros((8, 8, 1))).shape
    (8, 8, 1)
  """
  max_rotation = _checks.number("max_rotation", max_rotation, low=0.0, high=179.0)
  max_shear = _checks.number("max_shear", max_shear, low=0.0, high=89.0)
  if not isinstance(zoom, (tuple, list)) or len(zoom) != 2:
    raise ValueError(f"zoom must be (low, high), got {zoom!r}")
  _checks.interval("zoom[0]", zoom[0], "zoom[1]", zoom[1], low_open=True)
  mode, fill = _resample_mode(mode), _checks.number("fill", fill)

  def augment(key, x):
    image_only(x)
    k_rot, k_zoom, k_shear = jax.random.split(key, 3)
    rotation = math.radians(max_rotation) * jax.random.uniform(k_rot, (), minval=-1.0, maxval=1.0)
    shear = math.radians(max_shear) * jax.random.uniform(k_shear, (), minval=-1.0, maxval=1.0)
    scale = jax.random.uniform(k_zoom, (), minval=zoom[0], maxval=zoom[1])
    return warp_affine(x, affine_matrix(rotation, scale, shear), mode=mode, fill=fill)

  return augment


def bilinear(x: jax.Array, rows: jax.Array, cols: jax.Array, *, mode: str = "constant", fill: float = 0.0) -> jax.Array:
  """``x`` (``(height, width, channels)``) read at the real coordinates ``(rows, cols)`` by bilinear interpolation.

  The semantics of SciPy's ``map_coordinates(order=1)`` (and dm-pix's):
  ``'nearest'`` clamps a coordinate to the image; ``'constant'`` gives
  ``fill`` where the coordinate lies outside ``[0, height - 1] x [0, width - 1]``
  and interpolates inside it. Every channel is read by one gather per corner.
  """
  height, width, channels = x.shape
  outside = (rows < 0) | (rows > height - 1) | (cols < 0) | (cols > width - 1)
  rows, cols = jnp.clip(rows, 0, height - 1), jnp.clip(cols, 0, width - 1)
  top, left = jnp.floor(rows), jnp.floor(cols)
  down, right = (rows - top)[..., None], (cols - left)[..., None]
  top, left = top.astype(jnp.int32), left.astype(jnp.int32)
  flat = x.reshape(height * width, channels)

  def at(r, c):
    return jnp.take(flat, jnp.minimum(r, height - 1) * width + jnp.minimum(c, width - 1), axis=0)

  out = ((1 - down) * ((1 - right) * at(top, left) + right * at(top, left + 1))
         + down * ((1 - right) * at(top + 1, left) + right * at(top + 1, left + 1)))
  if mode == "constant":
    out = jnp.where(outside[..., None], jnp.asarray(fill, out.dtype), out)
  return out.astype(x.dtype)


def source_coordinates(height: int, width: int, matrix: jax.Array) -> jax.Array:
  """Where each output pixel ``o`` of a ``(height, width)`` image reads its input: ``c + matrix (o - c)``.

  Returns ``(height, width, 2)`` real ``(row, column)`` coordinates (``c``:
  the centre). :func:`warp_affine` resamples there;
  :mod:`jaxreg.augment.tangents` differentiates it.
  """
  centre = jnp.array([(height - 1) / 2.0, (width - 1) / 2.0])
  grid = jnp.stack(jnp.meshgrid(jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32),
                                indexing="ij"), axis=-1)
  return (grid - centre) @ matrix.T + centre


def warp_affine(x: jax.Array, matrix: jax.Array, *, mode: str = "constant", fill: float = 0.0) -> jax.Array:
  """``x`` resampled at ``c + matrix (o - c)`` for every output pixel ``o`` (``c``: the centre), channels kept.

  Examples:
    >>> image = jnp.arange(16.0).reshape(4, 4, 1)
    >>> bool(jnp.allclose(warp_affine(image, jnp.eye(2)), image))  # the identity matrix leaves the image
    True
  """
  source = source_coordinates(x.shape[0], x.shape[1], matrix)
  return bilinear(x, source[..., 0], source[..., 1], mode=mode, fill=fill)


def elastic(alpha: float, sigma: float, mode: str = "nearest", fill: float = 0.0):
  """Simard et al. (2003)'s elastic deformation: dm-pix ``elastic_deformation``'s fields, read by :func:`bilinear`.

  Each pixel's displacement is ``alpha * (G_sigma * U(-1, 1))``: a field of
  uniform noise per axis, smoothed by a Gaussian of standard deviation
  ``sigma`` pixels, scaled by ``alpha`` pixels; the image is read there by
  bilinear interpolation. Simard et al. used ``sigma = 4``, ``alpha = 34`` on
  28x28 digits; on 8x8 digits ``sigma ~ 1.5``, ``alpha ~ 4`` is the like.
  ``alpha = 0`` is the identity.

  Args:
    alpha: the displacements' scale, in pixels.
    sigma: the smoothing's standard deviation, in pixels (> 0).
    mode: ``'nearest'`` (the edge pixel) or ``'constant'`` (``fill``) outside the image.
    fill: the value of ``'constant'``.

  Examples:
    >>> aug = elastic(alpha=8.0, sigma=3.0)
    >>> aug(jax.random.key(0), jnp.ones((8, 8, 1))).shape
    (8, 8, 1)
  """
  alpha = _checks.number("alpha", alpha, low=0.0)
  sigma = _checks.number("sigma", sigma, low=0.0, low_open=True)
  mode, fill = _resample_mode(mode), _checks.number("fill", fill)

  # dm-pix's kernel width for sigma (about 3 sigma each side), so the fields are dm-pix's own.
  kernel_size = ((sigma - 0.8) / 0.3 + 1) / 0.5 + 1

  def augment(key, x):
    image_only(x)
    height, width = x.shape[:2]
    fields = [alpha * pix.gaussian_blur(jax.random.uniform(k, (height, width, 1)) * 2 - 1, sigma, kernel_size)[..., 0]
              for k in jax.random.split(key)]
    rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32),
                              indexing="ij")
    return bilinear(x, rows + fields[0], cols + fields[1], mode=mode, fill=fill)

  return augment
