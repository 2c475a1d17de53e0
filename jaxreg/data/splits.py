"""Random train/held-out splits: scikit-learn's ``train_test_split``, index for index, without importing it.

jaxreg carves its validation and test splits exactly as
``sklearn.model_selection.train_test_split(x, y, test_size=fraction,
random_state=seed, stratify=y or None)`` does (``StratifiedShuffleSplit`` or
``ShuffleSplit`` over a ``numpy.random.RandomState(seed)``), so the splits
match scikit-learn's, which the test suite checks index for index. It is
written out here because importing scikit-learn takes about 3.5 s (it pulls
in ``scipy.stats``), half of a short run's start-up; it also keeps jaxreg's
splits fixed whatever scikit-learn version is installed.
"""

import math

import numpy as np


def held_out_sizes(num_examples: int, fraction: float) -> tuple[int, int]:
  """``(n_keep, n_out)``: ``n_out = ceil(fraction * n)``, as scikit-learn rounds a float ``test_size``.

  Raises:
    ValueError: if ``fraction`` is not in (0, 1) or leaves either side empty.
  """
  if not 0 < fraction < 1:
    raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
  n_out = math.ceil(fraction * num_examples)
  n_keep = num_examples - n_out
  if n_keep <= 0 or n_out <= 0:
    raise ValueError(f"holding out {fraction} of {num_examples} examples leaves an empty side")
  return n_keep, n_out


def shuffle_split(num_examples: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Indices ``(keep, out)`` of a plain random split (scikit-learn's ``ShuffleSplit``)."""
  n_keep, n_out = held_out_sizes(num_examples, fraction)
  permutation = np.random.RandomState(seed).permutation(num_examples)
  return permutation[n_out:n_out + n_keep], permutation[:n_out]


def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
  """How many of each class to draw so the draw is closest to the class proportions (ties broken at random)."""
  continuous = class_counts / class_counts.sum() * n_draws
  floored = np.floor(continuous)
  need_to_add = int(n_draws - floored.sum())
  if need_to_add > 0:
    remainder = continuous - floored
    for value in np.sort(np.unique(remainder))[::-1]:
      (candidates,) = np.where(remainder == value)
      add_now = min(len(candidates), need_to_add)
      floored[rng.choice(candidates, size=add_now, replace=False)] += 1
      need_to_add -= add_now
      if need_to_add == 0:
        break
  return floored.astype(int)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Indices ``(keep, out)`` of a split that keeps the class proportions (``StratifiedShuffleSplit``).

  Raises:
    ValueError: if a class has fewer than 2 examples, or either side would
      have fewer examples than there are classes.
  """
  n_keep, n_out = held_out_sizes(len(y), fraction)
  classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
  if np.min(class_counts) < 2:
    raise ValueError(
        f"the least populated classes have only 1 member, too few to stratify: {classes[class_counts < 2].tolist()}"
    )
  if min(n_keep, n_out) < len(classes):
    raise ValueError(
        f"a side of {min(n_keep, n_out)} examples cannot hold all {len(classes)} classes"
    )
  class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
  rng = np.random.RandomState(seed)
  n_i = _approximate_mode(class_counts, n_keep, rng)
  t_i = _approximate_mode(class_counts - n_i, n_out, rng)
  keep, out = [], []
  for i in range(len(classes)):
    shuffled = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
    keep.extend(shuffled[:n_i[i]])
    out.extend(shuffled[n_i[i]:n_i[i] + t_i[i]])
  return rng.permutation(keep), rng.permutation(out)


def split_off(
    x: np.ndarray, y: np.ndarray, fraction: float, *, seed: int, stratify: bool
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
  """``((x_keep, y_keep), (x_out, y_out))`` with ``fraction`` of the examples held out.

  The same arrays as ``train_test_split(x, y, test_size=fraction,
  random_state=seed, stratify=y if stratify else None)``.

  Examples:
    >>> y = np.repeat(np.arange(3), 10)
    >>> (_, y_keep), (_, y_out) = split_off(np.zeros((30, 2)), y, 0.2, seed=0, stratify=True)
    >>> np.bincount(y_out).tolist()
    [2, 2, 2]
  """
  keep, out = stratified_split(y, fraction, seed) if stratify else shuffle_split(len(y), fraction, seed)
  return (x[keep], y[keep]), (x[out], y[out])
