"""Coloured digits: scikit-learn's digits in colour, with a colour shift between training and test.

Each 8x8 digit ``g`` (values in [0, 1]) becomes an RGB image
``g * foreground + (1 - g) * background``. The foreground's hue is drawn
from ``train_hues`` for the training and validation splits and from
``test_hues`` for the test split; the background's hue is roughly the
complement (the foreground's plus ``0.5 +- 0.1``), and saturations and
values are random. Colour carries no information about the class, but the
test images are in colours the training set never shows: a network that
keys on colour pays for it, and colour augmentation (hue, saturation, Fancy
PCA) has something to show. Generated locally, in milliseconds, from the
digits that ship with scikit-learn.
"""

import colorsys

import numpy as np

from jaxreg.data.datasets import Dataset, Split, load_digits


def _check_hues(name: str, hues) -> tuple[float, float]:
  if (not isinstance(hues, (tuple, list)) or len(hues) != 2 or
      not all(isinstance(h, (int, float)) and not isinstance(h, bool) for h in hues) or not hues[0] < hues[1]):
    raise ValueError(f"{name} must be (low, high) with low < high (hues in turns: 0 red, 1/3 green, 2/3 blue), "
                     f"got {hues!r}")
  return float(hues[0]), float(hues[1])


def _colours(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
  return np.array([colorsys.hsv_to_rgb(h % 1.0, s, v) for h, s, v in zip(hue, saturation, value, strict=True)],
                  np.float32).reshape(-1, 3)


def colourize(grey: np.ndarray, hues: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
  """``grey`` (``(n, 64)`` or ``(n, 8, 8)``, values in [0, 1]) as RGB images ``(n, 8, 8, 3)`` in [0, 1].

  The foreground's hue ``~ U(hues)``, its saturation and value ``~ U(0.6, 1)``;
  the background's hue is the foreground's ``+ 0.5 + U(-0.1, 0.1)``, its
  saturation and value ``~ U(0.2, 0.6)``.
  """
  n = len(grey)
  images = np.asarray(grey, np.float32).reshape(n, 8, 8, 1)
  hue = rng.uniform(*hues, size=n)
  foreground = _colours(hue, rng.uniform(0.6, 1.0, n), rng.uniform(0.6, 1.0, n))
  background = _colours(hue + 0.5 + rng.uniform(-0.1, 0.1, n), rng.uniform(0.2, 0.6, n), rng.uniform(0.2, 0.6, n))
  return images * foreground[:, None, None, :] + (1.0 - images) * background[:, None, None, :]


def load_coloured_digits(*, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2,
                         train_hues=(0.0, 0.5), test_hues=(0.5, 1.0)) -> Dataset:
  """Coloured digits (1,797 RGB 8x8 images, 10 classes), with the foreground hues shifted in the test split.

  The split is digits' own (stratified by class, fixed by ``seed``); the
  colours are drawn with ``seed`` too. Training and validation share
  ``train_hues``, so model selection sees no test colours.

  Args:
    seed: the split's and the colours' seed.
    val_fraction: share held out for validation.
    test_fraction: share held out for testing.
    train_hues: the foreground hues of the training and validation images, in turns.
    test_hues: those of the test images (``train_hues`` again: no shift).

  Examples:
    >>> data = load_coloured_digits(seed=0)
    >>> data.train.x.shape, data.test.x.shape
    ((1257, 8, 8, 3), (360, 8, 8, 3))
  """
  train_hues, test_hues = _check_hues("train_hues", train_hues), _check_hues("test_hues", test_hues)
  grey = load_digits(seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
  rng = np.random.default_rng([seed, 0x636F6C])  # "col": a stream of its own

  def each(split: Split | None, hues) -> Split | None:
    return None if split is None else Split(colourize(split.x, hues, rng), split.y)

  return Dataset(name="coloured_digits", task="classification", train=each(grey.train, train_hues),
                 val=each(grey.val, train_hues), test=each(grey.test, test_hues), num_classes=10)
