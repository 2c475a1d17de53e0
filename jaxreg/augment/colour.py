"""Colour augmentations of images ``(height, width, channels)``, values in ``[0, 1]``.

dm-pix supplies brightness, contrast, saturation and hue
(``random_brightness``, ``random_contrast``, ``random_saturation``,
``random_hue``). Fancy PCA (Krizhevsky et al. 2012) is written here: dm-pix
has no colour PCA, and it needs statistics fitted once on the training set
(:func:`fit_fancy_pca`).
"""

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np

from jaxreg.augment import _checks
from jaxreg.augment.images import image_only


def brightness(max_delta: float):
  """Adds ``d ~ U(-max_delta, max_delta)`` to every channel (dm-pix ``random_brightness``).

  Examples:
    >>> aug = brightness(0.2)
    >>> out = aug(jax.random.key(0), jnp.full((8, 8, 3), 0.5))
    >>> bool(jnp.all(jnp.abs(out - 0.5) <= 0.2)), float(jnp.ptp(out))  # one shift for the whole image
    (True, 0.0)
  """
  max_delta = _checks.number("max_delta", max_delta, low=0.0)

  def augment(key, x):
    image_only(x)
    return pix.random_brightness(key, x, max_delta)

  return augment


def contrast(lower: float, upper: float):
  """Scales each channel's deviation from its mean by ``c ~ U(lower, upper)`` (dm-pix ``random_contrast``).

  Examples:
    >>> aug = contrast(0.5, 1.5)
    >>> aug(jax.random.key(0), jnp.linspace(0, 1, 8 * 8 * 3).reshape(8, 8, 3)).shape
    (8, 8, 3)
  """
  _checks.interval("lower", lower, "upper", upper)

  def augment(key, x):
    image_only(x)
    return pix.random_contrast(key, x, lower, upper)

  return augment


def _rgb(x) -> None:
  image_only(x)
  if x.shape[-1] != 3:
    raise ValueError(f"saturation and hue need RGB images (3 channels), got {x.shape[-1]}")


def saturation(lower: float, upper: float):
  """Scales the saturation by ``s ~ U(lower, upper)`` (dm-pix ``random_saturation``; RGB images).

  Examples:
    >>> saturation(0.5, 1.5)(jax.random.key(0), jnp.full((4, 4, 3), 0.5)).shape
    (4, 4, 3)
  """
  _checks.interval("lower", lower, "upper", upper)

  def augment(key, x):
    _rgb(x)
    return pix.random_saturation(key, x, lower, upper)

  return augment


def hue(max_delta: float):
  """Rotates the hue by ``h ~ U(-max_delta, max_delta)`` turns (dm-pix ``random_hue``; RGB images).

  Examples:
    >>> hue(0.1)(jax.random.key(0), jnp.full((4, 4, 3), 0.5)).shape
    (4, 4, 3)
  """
  max_delta = _checks.number("max_delta", max_delta, low=0.0, high=0.5)

  def augment(key, x):
    _rgb(x)
    return pix.random_hue(key, x, max_delta)

  return augment


def fit_fancy_pca(images) -> tuple[np.ndarray, np.ndarray]:
  """The PCA of the RGB values of a whole training set: ``(eigenvalues, eigenvectors)``, largest first.

  Every pixel of every image is one sample of 3 values; the eigenvalues
  ``lambda_i`` and eigenvectors ``p_i`` (the columns) are those of their
  3x3 covariance matrix (Krizhevsky et al. 2012). Computed once, on the host
  (float64), on the training split only.

  Args:
    images: shaped ``(n, height, width, 3)``.

  Examples:
    >>> images = np.random.default_rng(0).uniform(size=(20, 4, 4, 3))
    >>> eigenvalues, eigenvectors = fit_fancy_pca(images)
    >>> eigenvalues.shape, eigenvectors.shape, bool(eigenvalues[0] >= eigenvalues[-1])
    ((3,), (3, 3), True)
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"Fancy PCA needs RGB images shaped (n, height, width, 3), got shape {images.shape}")
  pixels = images.reshape(-1, 3).astype(np.float64)
  eigenvalues, eigenvectors = np.linalg.eigh(np.cov(pixels, rowvar=False))
  order = np.argsort(eigenvalues)[::-1]
  return np.maximum(eigenvalues[order], 0.0), eigenvectors[:, order]


def fancy_pca(eigenvalues, eigenvectors, std: float = 0.1, clip: tuple[float, float] | None = (0.0, 1.0)):
  """Fancy PCA colour augmentation (Krizhevsky et al. 2012), with statistics from :func:`fit_fancy_pca`.

  Each image gets ``[p_1, p_2, p_3] [a_1 lambda_1, a_2 lambda_2, a_3 lambda_3]^T``
  added to every pixel, ``a_i ~ N(0, std^2)`` drawn once per image: the
  image's colour moves along the training set's principal colour axes, most
  along those with the most variance. The paper draws ``a`` with standard
  deviation 0.1 (the default); the lecture notes say variance 0.1, which is
  ``std=0.316``. ``std = 0`` is the identity (up to ``clip``).

  Args:
    eigenvalues: the 3 eigenvalues ``lambda_i`` of the RGB covariance.
    eigenvectors: 3x3, the eigenvector ``p_i`` in column ``i``.
    std: the standard deviation of each ``a_i``.
    clip: ``(low, high)`` the result is clipped to, or ``None``.

  Examples:
    >>> values, vectors = fit_fancy_pca(train_images)  # doctest: +SKIP
    >>> aug = fancy_pca(values, vectors, std=0.1)  # doctest: +SKIP
  """
  eigenvalues = np.asarray(eigenvalues, np.float32)
  eigenvectors = np.asarray(eigenvectors, np.float32)
  if eigenvalues.shape != (3,) or eigenvectors.shape != (3, 3):
    raise ValueError(f"eigenvalues must have shape (3,) and eigenvectors (3, 3), "
                     f"got {eigenvalues.shape} and {eigenvectors.shape}: use fit_fancy_pca(train_images)")
  std = _checks.number("std", std, low=0.0)
  if clip is not None:
    _checks.interval("clip[0]", clip[0], "clip[1]", clip[1], minimum=-float("inf"))

  def augment(key, x):
    _rgb(x)
    a = std * jax.random.normal(key, (3,))
    delta = jnp.asarray(eigenvectors) @ (a * jnp.asarray(eigenvalues))
    out = x + delta.astype(x.dtype)
    return out if clip is None else jnp.clip(out, clip[0], clip[1])

  return augment


def fancy_pca_from_data(train_x, std: float = 0.1, clip: tuple[float, float] | None = (0.0, 1.0)):
  """:func:`fancy_pca` fitted on ``train_x`` (what ``data.augment``'s ``{'name': 'fancy_pca'}`` builds)."""
  return fancy_pca(*fit_fancy_pca(train_x), std=std, clip=clip)
