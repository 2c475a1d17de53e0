"""Augmentations of images: one example of shape ``(height, width, channels)``, values in ``[0, 1]``.

dm-pix supplies the flip and the colour changes (``random_flip_left_right``,
``random_brightness``, ``random_contrast``, ``random_saturation``,
``random_hue``); the integer translation with a choice of padding is written
here (dm-pix has crops and affine resampling, not a padded integer shift).
"""

import dm_pix as pix
import jax

from jaxreg.augment import _checks
from jaxreg.augment.signals import shift_along


def _image(x) -> None:
  if x.ndim != 3:
    raise ValueError(f"image augmentations take one image shaped (height, width, channels), got shape {x.shape}")


def horizontal_flip(p: float = 0.5):
  """Mirrors the image left to right with probability ``p`` (dm-pix ``random_flip_left_right``).

  Caution: a mirror image is not always the same class: it turns a 'b' into
  a 'd', and digits such as 2, 3, 4, 7 and 9 into shapes that are no digit.
  Use it where the class is symmetric (natural images), not blindly on digits.
  """
  p = _checks.number("p", p, low=0.0, high=1.0)

  def augment(key, x):
    _image(x)
    return pix.random_flip_left_right(key, x, probability=p)

  return augment


def translate(max_pixels: int, mode: str = "constant", fill: float = 0.0):
  """Moves the image by integers ``(dy, dx)``, each ``~ U{-max_pixels, ..., max_pixels}``.

  Args:
    max_pixels: the largest move along each axis (0: the identity).
    mode: what fills the uncovered border: ``'constant'`` (``fill``),
      ``'edge'`` (the nearest edge pixel) or ``'circular'`` (wrap around).
    fill: the value of ``'constant'`` (0: black).
  """
  max_pixels, mode = _checks.non_negative_int("max_pixels", max_pixels), _checks.pad_mode(mode)
  fill = _checks.number("fill", fill)

  def augment(key, x):
    _image(x)
    offsets = jax.random.randint(key, (2,), -max_pixels, max_pixels + 1)
    return shift_along(shift_along(x, offsets[0], 0, mode, fill), offsets[1], 1, mode, fill)

  return augment


def brightness(max_delta: float):
  """Adds ``d ~ U(-max_delta, max_delta)`` to every channel (dm-pix ``random_brightness``)."""
  max_delta = _checks.number("max_delta", max_delta, low=0.0)

  def augment(key, x):
    _image(x)
    return pix.random_brightness(key, x, max_delta)

  return augment


def contrast(lower: float, upper: float):
  """Scales each channel's deviation from its mean by ``c ~ U(lower, upper)`` (dm-pix ``random_contrast``)."""
  _checks.interval("lower", lower, "upper", upper)

  def augment(key, x):
    _image(x)
    return pix.random_contrast(key, x, lower, upper)

  return augment


def _rgb(x) -> None:
  _image(x)
  if x.shape[-1] != 3:
    raise ValueError(f"saturation and hue need RGB images (3 channels), got {x.shape[-1]}")


def saturation(lower: float, upper: float):
  """Scales the saturation by ``s ~ U(lower, upper)`` (dm-pix ``random_saturation``; RGB images)."""
  _checks.interval("lower", lower, "upper", upper)

  def augment(key, x):
    _rgb(x)
    return pix.random_saturation(key, x, lower, upper)

  return augment


def hue(max_delta: float):
  """Rotates the hue by ``h ~ U(-max_delta, max_delta)`` turns (dm-pix ``random_hue``; RGB images)."""
  max_delta = _checks.number("max_delta", max_delta, low=0.0, high=0.5)

  def augment(key, x):
    _rgb(x)
    return pix.random_hue(key, x, max_delta)

  return augment
