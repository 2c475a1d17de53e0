"""jaxreg's held-out splits against scikit-learn's train_test_split, index for index."""

import numpy as np
import pytest
from sklearn.datasets import load_digits as sk_load_digits
from sklearn.model_selection import train_test_split

from jaxreg.data import load_digits
from jaxreg.data.datasets import _digits_table
from jaxreg.data.splits import split_off


def _labels(rng, n, num_classes, imbalance):
  weights = np.linspace(1.0, imbalance, num_classes)
  labels = rng.choice(num_classes, size=n, p=weights / weights.sum())
  labels[:2 * num_classes] = np.repeat(np.arange(num_classes), 2)  # every class at least twice
  return labels


@pytest.mark.parametrize("stratify", [True, False])
def test_split_off_equals_train_test_split(stratify):
  rng = np.random.default_rng(0)
  for case in range(40):
    n = int(rng.integers(40, 400))
    num_classes = int(rng.integers(2, 8))
    y = _labels(rng, n, num_classes, imbalance=float(rng.uniform(1, 10)))
    x = rng.normal(size=(n, 3))
    fraction = float(rng.choice([0.1, 0.125, 0.2, 0.25, 0.333, 0.5]))
    seed = int(rng.integers(0, 10_000))
    (x_keep, y_keep), (x_out, y_out) = split_off(x, y, fraction, seed=seed, stratify=stratify)
    expected = train_test_split(x, y, test_size=fraction, random_state=seed, stratify=y if stratify else None)
    for ours, theirs in zip((x_keep, x_out, y_keep, y_out), expected):
      np.testing.assert_array_equal(ours, theirs, err_msg=f"case {case}: n={n}, fraction={fraction}, seed={seed}")


def test_split_off_refuses_what_train_test_split_refuses():
  y = np.array([0, 0, 0, 1, 1, 2])  # class 2 has one member
  with pytest.raises(ValueError, match="only 1 member"):
    split_off(np.zeros((6, 1)), y, 0.5, seed=0, stratify=True)
  with pytest.raises(ValueError):
    train_test_split(np.zeros((6, 1)), y, test_size=0.5, random_state=0, stratify=y)
  with pytest.raises(ValueError, match=r"\(0, 1\)"):
    split_off(np.zeros((6, 1)), y, 1.0, seed=0, stratify=False)


def test_digits_read_from_scikit_learns_file_equal_its_loader():
  bunch = sk_load_digits()
  np.testing.assert_array_equal(_digits_table(), np.column_stack([bunch.data, bunch.target]))


def test_digits_splits_are_scikit_learns():
  bunch = sk_load_digits()
  x, y = (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int32)
  x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, random_state=3, stratify=y)
  x_train, x_val, y_train, y_val = train_test_split(
      x_rest, y_rest, test_size=0.1 / 0.8, random_state=4, stratify=y_rest)
  data = load_digits(seed=3, val_fraction=0.1, test_fraction=0.2)
  for ours, theirs in ((data.train, (x_train, y_train)), (data.val, (x_val, y_val)), (data.test, (x_test, y_test))):
    np.testing.assert_array_equal(ours.x, theirs[0])
    np.testing.assert_array_equal(ours.y, theirs[1])


def test_digits_fall_back_to_scikit_learns_loader_when_its_file_is_elsewhere(monkeypatch):
  import jaxreg.data.datasets as datasets

  direct = _digits_table()
  monkeypatch.setattr(datasets.importlib.util, "find_spec", lambda name: None)
  np.testing.assert_array_equal(datasets._digits_table(), direct)
