"""Datasets: scikit-learn's digits and user ``.npz`` arrays, validated and split.

Nothing here downloads anything: digits ships inside scikit-learn, and
``.npz`` files are the user's own.
"""

import dataclasses
import gzip
import hashlib
import importlib.util
import os
import zipfile
from typing import NamedTuple

import numpy as np

from jaxreg.data.splits import split_off
from jaxreg.errors import DataError

TASKS = ("classification", "regression")


class Split(NamedTuple):
  """One split of a dataset: inputs ``x`` (examples first) and targets ``y``.

  Examples:
    >>> split = Split(x=np.zeros((4, 2), np.float32), y=np.array([0, 1, 0, 1]))
    >>> split.x.shape, len(split.y)
    ((4, 2), 4)
  """

  x: np.ndarray
  y: np.ndarray


@dataclasses.dataclass(frozen=True)
class Dataset:
  """Train, validation and test splits as host NumPy arrays.

  Attributes:
    name: a short name for logs.
    task: ``'classification'`` (integer labels) or ``'regression'``.
    train: the training split.
    val: the validation split, or ``None``.
    test: the test split, or ``None``.
    num_classes: number of classes (classification), else ``None``.

  Examples:
    >>> data = load_digits(seed=0)
    >>> data.describe()
    'digits (classification; train 1257, val 180, test 360; input shape (64,))'
    >>> data.num_outputs, data.train.x.dtype
    (10, dtype('float32'))
  """

  name: str
  task: str
  train: Split
  val: Split | None
  test: Split | None
  num_classes: int | None

  @property
  def num_outputs(self) -> int:
    """Width of the model's output layer for this dataset."""
    if self.task == "classification":
      return int(self.num_classes)
    return int(np.prod(self.train.y.shape[1:], dtype=int)) if self.train.y.ndim > 1 else 1

  def splits(self) -> dict[str, Split]:
    """The splits that exist, by name."""
    return {k: v for k, v in (("train", self.train), ("val", self.val), ("test", self.test)) if v is not None}

  def fingerprint(self) -> str:
    """A SHA-256 of every split's arrays (shapes, dtypes and bytes), 16 hex digits: the same data, the same print."""
    digest = hashlib.sha256()
    for name, split in self.splits().items():
      for array in (split.x, split.y):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]

  def describe(self) -> str:
    sizes = ", ".join(f"{k} {len(v.y)}" for k, v in self.splits().items())
    return f"{self.name} ({self.task}; {sizes}; input shape {self.train.x.shape[1:]})"


def _check_fraction(name: str, value: float) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
    raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def _carve(
    split: Split, fraction: float, *, seed: int, stratify: bool
) -> tuple[Split, Split | None]:
  """Splits off ``fraction`` of ``split`` (stratified by label for classification)."""
  if fraction == 0:
    return split, None
  try:
    keep, out = split_off(split.x, split.y, fraction, seed=seed, stratify=stratify)
  except ValueError as e:  # e.g. a class with a single example cannot be stratified
    raise DataError(f"cannot split off {fraction:.0%} of {len(split.y)} examples: {e}") from e
  return Split(*keep), Split(*out)


def validate_split(
    name: str, split: Split, *, task: str, num_classes: int | None
) -> Split:
  """Checks one split and returns it with canonical dtypes.

  Raises:
    DataError: naming the split and the problem: mismatched lengths, an empty
      split, complex, non-numeric or non-finite inputs, non-integer labels or
      labels outside ``[0, num_classes)``.

  Examples:
    >>> split = validate_split('train', Split(np.zeros((3, 2)), np.array([0, 1, 2])), task='classification', num_classes=3)
    >>> split.x.dtype, split.y.dtype
    (dtype('float32'), dtype('int32'))
  """
  x, y = np.asarray(split.x), np.asarray(split.y)
  if x.ndim < 2:
    raise DataError(f"x_{name} must have shape (examples, features...), got shape {x.shape}")
  if len(x) != len(y):
    raise DataError(
        f"x_{name} and y_{name} have different lengths ({len(x)} vs {len(y)}); "
        "they must hold one target per example"
    )
  if len(x) == 0:
    raise DataError(f"the {name} split is empty")
  for array, label in ((x, f"x_{name}"), (y, f"y_{name}")):
    if np.iscomplexobj(array):  # a cast to float32 would drop the imaginary part silently
      raise DataError(f"{label} is complex ({array.dtype}); pass its real part, or real and imaginary parts as features")
  if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
    raise DataError(f"x_{name} must be numeric, got dtype {x.dtype}")
  x = x.astype(np.float32)
  bad = ~np.isfinite(x)
  if bad.any():
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    raise DataError(
        f"x_{name} contains {int(bad.sum())} NaN or infinite value(s), the first at index {first}; "
        "clean or impute them before training"
    )
  if task == "classification":
    if y.ndim != 1:
      raise DataError(f"y_{name} must be a 1-D array of integer class labels, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
      if not (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
        raise DataError(f"y_{name} must hold integer class labels, got dtype {y.dtype} with non-integer values")
    y = y.astype(np.int64)
    outside = (y < 0) | (y >= num_classes)
    if outside.any():
      raise DataError(
          f"y_{name} has {int(outside.sum())} label(s) outside [0, {num_classes}) "
          f"(e.g. {int(y[outside][0])} at index {int(np.argmax(outside))}); "
          "labels must be 0..num_classes-1 (set data.num_classes if it is larger than inferred)"
      )
    y = y.astype(np.int32)
  else:
    y = y.astype(np.float32)
    if not np.all(np.isfinite(y)):
      raise DataError(f"y_{name} contains NaN or infinite targets")
  return Split(x, y)


def _assemble(
    name: str,
    task: str,
    train: Split,
    val: Split | None,
    test: Split | None,
    *,
    num_classes: int | None,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> Dataset:
  """Validates the given splits and carves the missing ones out of train."""
  if task not in TASKS:
    raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
  _check_fraction("val_fraction", val_fraction)
  _check_fraction("test_fraction", test_fraction)
  if val is None and test is None and val_fraction + test_fraction >= 1.0:
    raise ValueError(
        f"val_fraction + test_fraction must be below 1 to leave training data, "
        f"got {val_fraction} + {test_fraction}"
    )
  if task == "classification" and num_classes is None:
    labels = [s.y for s in (train, val, test) if s is not None]
    try:
      num_classes = int(max(np.max(np.asarray(l)) for l in labels)) + 1
    except (TypeError, ValueError) as e:
      raise DataError(f"cannot infer the number of classes from the labels: {e}") from e
  if task == "classification" and (not isinstance(num_classes, int) or num_classes < 2):
    raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
  train = validate_split("train", train, task=task, num_classes=num_classes)
  stratify = task == "classification"
  test_carved = test is None
  if test_carved:
    train, test = _carve(train, test_fraction, seed=seed, stratify=stratify)
  if val is None:
    # val_fraction is a share of the data before any split, not of what is left.
    share = val_fraction / (1.0 - test_fraction) if test_carved else val_fraction
    train, val = _carve(train, share, seed=seed + 1, stratify=stratify)
  if val is not None:
    val = validate_split("val", val, task=task, num_classes=num_classes)
  if test is not None:
    test = validate_split("test", test, task=task, num_classes=num_classes)
  for split_name, split in (("val", val), ("test", test)):
    if split is not None and split.x.shape[1:] != train.x.shape[1:]:
      raise DataError(
          f"x_{split_name} has example shape {split.x.shape[1:]} but x_train has {train.x.shape[1:]}"
      )
  return Dataset(name, task, train, val, test, num_classes if task == "classification" else None)


def _digits_table() -> np.ndarray:
  """scikit-learn's digits as its ``(1797, 65)`` table (64 pixels, then the label).

  Read from the file scikit-learn ships, as ``sklearn.datasets.load_digits``
  reads it, without importing scikit-learn (about 3.5 s); if the file is not
  where scikit-learn keeps it, its loader is used.
  """
  spec = importlib.util.find_spec("sklearn")  # finds the package without running it
  folders = spec.submodule_search_locations if spec is not None else None
  path = os.path.join(folders[0], "datasets", "data", "digits.csv.gz") if folders else None
  if path is None or not os.path.isfile(path):
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    return np.column_stack([bunch.data, bunch.target])
  with gzip.open(path, mode="rt", encoding="utf-8") as f:
    return np.loadtxt(f, delimiter=",")


def load_digits(*, seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Dataset:
  """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), ships with scikit-learn.

  Pixels (0..16) are scaled to [0, 1]. The split is stratified by class and
  fixed by ``seed``: by default 70% train (1,257), 10% validation (180),
  20% test (360).

  Examples:
    >>> data = load_digits(seed=0)
    >>> data.train.x.shape, data.num_classes
    ((1257, 64), 10)
  """
  data = _digits_table()
  x = (data[:, :-1] / 16.0).astype(np.float32)
  y = data[:, -1].astype(np.int32)
  return _assemble(
      "digits", "classification", Split(x, y), None, None, num_classes=10,
      val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
  )


NPZ_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def load_npz(
    path: str,
    *,
    task: str = "classification",
    num_classes: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
) -> Dataset:
  """User arrays from an ``.npz`` file.

  The file must hold ``x_train`` and ``y_train``; ``x_val``/``y_val`` and
  ``x_test``/``y_test`` are optional (each pair all or nothing). A missing
  validation or test split is carved out of the training split
  (``val_fraction`` and ``test_fraction`` of it, stratified for
  classification). Inputs are used as given (scale them beforehand).

  Args:
    path: the ``.npz`` file (``np.savez(path, x_train=..., y_train=...)``).
    task: ``'classification'`` (integer labels ``0..num_classes-1``) or ``'regression'``.
    num_classes: the number of classes; inferred as ``max label + 1`` if ``None``.
    seed: seed of the carved-out splits.
    val_fraction: share of the training data used for validation if ``x_val`` is absent.
    test_fraction: share of the training data used for testing if ``x_test`` is absent.

  Raises:
    DataError: for a missing file or key, a half-given pair, or a malformed split.

  Examples:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'mine.npz')
    >>> rng = np.random.default_rng(0)
    >>> np.savez(path, x_train=rng.normal(size=(100, 5)), y_train=rng.integers(0, 3, 100))
    >>> load_npz(path).describe()  # validation and test carved out of the training arrays
    'mine (classification; train 70, val 10, test 20; input shape (5,))'
  """
  if not path:
    raise ValueError("path must name an .npz file")
  if not os.path.isfile(path):
    raise DataError(f"data file {path!r} does not exist")
  if not zipfile.is_zipfile(path):  # np.load would try it as a pickle and advise allow_pickle
    raise DataError(f"{path!r} is not an .npz file (not a zip archive of arrays; it may be damaged); write it with "
                    "numpy.savez(path, x_train=..., y_train=...)")
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except ValueError as e:  # an array of Python objects, which is never loaded (it could run code)
    raise DataError(f"{path!r} holds an array of Python objects ({e.__class__.__name__}); save numeric "
                    "arrays only") from e
  except Exception as e:  # zipfile.BadZipFile, OSError: a damaged archive
    raise DataError(f"cannot read {path!r} as an .npz file: {e}") from e
  name = os.path.splitext(os.path.basename(path))[0]
  return dataset_from_arrays(arrays, name=name, source=repr(path), task=task, num_classes=num_classes,
                             seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)


def dataset_from_arrays(
    arrays, *, name: str, source: str | None = None, task: str = "classification", num_classes: int | None = None,
    seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2,
) -> Dataset:
  """A dataset from arrays named as in an ``.npz`` (``x_train``, ``y_train``, optional ``x_val``/``y_val``, ``x_test``/``y_test``).

  A missing validation or test split is carved out of the training split,
  as in :func:`load_npz`. A pair ``(x, y)`` is taken as the training split.

  Raises:
    DataError: for an unknown or missing key, a half-given pair, or a malformed split (naming ``source``).

  Examples:
    >>> data = dataset_from_arrays({'x_train': x, 'y_train': y}, name='mine')  # doctest: +SKIP
  """
  source = source or name
  if isinstance(arrays, tuple) and len(arrays) == 2:
    arrays = {"x_train": arrays[0], "y_train": arrays[1]}
  arrays = dict(arrays)
  unknown = sorted(set(arrays) - set(NPZ_KEYS))
  if unknown:
    raise DataError(f"{source} has unexpected key(s) {unknown}; valid keys: {', '.join(NPZ_KEYS)}")
  for key in ("x_train", "y_train"):
    if key not in arrays:
      raise DataError(
          f"{source} is missing the required key {key!r} (it has: {', '.join(sorted(arrays)) or 'nothing'})"
      )
  pairs = {}
  for split in ("val", "test"):
    has_x, has_y = f"x_{split}" in arrays, f"y_{split}" in arrays
    if has_x != has_y:
      missing = f"y_{split}" if has_x else f"x_{split}"
      raise DataError(f"{source} has {'x' if has_x else 'y'}_{split} but is missing {missing!r}")
    pairs[split] = Split(np.asarray(arrays[f"x_{split}"]), np.asarray(arrays[f"y_{split}"])) if has_x else None
  return _assemble(
      name, task, Split(np.asarray(arrays["x_train"]), np.asarray(arrays["y_train"])), pairs["val"], pairs["test"],
      num_classes=num_classes, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
  )
