"""Datasets and shuffling iterators, and the ``make_dataset`` factory."""

import dataclasses
import inspect

import numpy as np

from jaxreg.data.coloured import load_coloured_digits
from jaxreg.data.datasets import (
    NPZ_KEYS,
    TASKS,
    Dataset,
    Split,
    dataset_from_arrays,
    load_digits,
    load_npz,
    validate_split,
)
from jaxreg.data.iterators import epoch_batch_indices, padded_batches
from jaxreg.data.mnist1d import load_mnist1d
from jaxreg.data.preprocess import Preprocessing, fit_preprocessing
from jaxreg.data.splits import split_off
from jaxreg.data.sequences import load_adding
from jaxreg._imports import import_object, is_import_path
from jaxreg._registry import Registry
from jaxreg.errors import ConfigError, DataError

DATASET_NAMES = ("adding", "digits", "coloured_digits", "mnist1d", "npz")


def make_dataset(
    name: str,
    *,
    path: str | None = None,
    task: str = "classification",
    num_classes: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    sequence_length: int | None = None,
    num_examples: int | None = None,
    example_shape: tuple[int, ...] | None = None,
    upsample: int = 1,
    train_fraction: float = 1.0,
) -> Dataset:
  """Builds the dataset of a config's ``data`` section (less ``batch_size``).

  Args:
    name: ``'digits'``, ``'coloured_digits'`` (RGB, colour-shifted test split:
      :func:`load_coloured_digits`), ``'mnist1d'`` (generated locally, see
      :func:`jaxreg.data.mnist1d.load_mnist1d`; its test split is its own), ``'npz'``,
      or the import path of a function of the user's, ``'my_pkg.data:load'``
      (called with ``seed=`` if it takes it), returning a :class:`Dataset`,
      arrays named as in an ``.npz`` (``{'x_train': ..., 'y_train': ...,
      ...}``) or a pair ``(x, y)`` (:func:`dataset_from_arrays`).
    path: the ``.npz`` file, for ``name='npz'``.
    task: ``'classification'`` or ``'regression'`` (``npz`` only; digits is classification).
    num_classes: number of classes (``npz`` only; inferred from the labels if ``None``).
    seed: seed of the train/validation/test split.
    val_fraction: share of the data held out for validation.
    test_fraction: share of the data held out for testing.
    sequence_length: ``T`` of the adding problem (default 100).
    num_examples: sequences generated for the adding problem (default 12,000).
    example_shape: read every example as this shape, e.g. ``(8, 8, 1)`` for
      digits as images (for a 2-D CNN and image augmentations), or ``None``.
    upsample: enlarge images ``(height, width, channels)`` by this integer
      factor, bilinearly (:func:`upsample_images`); 1 leaves them.
    train_fraction: train on this share of the training split only (a
      subset fixed by ``seed``, stratified for classification: a small-data
      experiment); the validation and test splits stay whole.

  Raises:
    ConfigError: for an unknown name or an argument that does not apply.
    DataError: for malformed data.

  Examples:
    >>> make_dataset('digits', example_shape=(8, 8, 1)).train.x.shape  # digits as images, for a 2-D CNN
    (1257, 8, 8, 1)
  """
  if name != "adding" and (sequence_length is not None or num_examples is not None):
    raise ConfigError("data.sequence_length and data.num_examples apply to data.name='adding' only")
  split = dict(seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
  loader = _user_data(name) if is_import_path(name) else _DATASETS.get(name)
  try:
    dataset = loader(path=path, task=task, num_classes=num_classes, sequence_length=sequence_length,
                     num_examples=num_examples, **split)
  except (ConfigError, DataError):
    raise
  except ValueError as e:  # the loaders name their argument; the config path is added here
    raise ConfigError(f"data.{e}") from None
  dataset = dataset if train_fraction == 1.0 else training_subset(dataset, train_fraction, seed)
  dataset = dataset if example_shape is None else with_example_shape(dataset, example_shape)
  return dataset if upsample == 1 else upsample_images(dataset, upsample)


def training_subset(dataset: Dataset, fraction: float, seed: int) -> Dataset:
  """``dataset`` with ``fraction`` of its training split (stratified for classification), the other splits kept.

  Examples:
    >>> len(make_dataset('digits', train_fraction=0.1).train.y)
    126
  """
  if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
    raise ConfigError(f"data.train_fraction must be a number in (0, 1], got {fraction!r}")
  train = dataset.train
  try:
    _, (x, y) = split_off(train.x, train.y, fraction, seed=seed, stratify=dataset.task == "classification")
  except ValueError as e:
    raise ConfigError(f"data.train_fraction={fraction} leaves too few training examples: {e}") from None
  return dataclasses.replace(dataset, train=Split(x, y))


def upsample_images(dataset: Dataset, factor: int) -> Dataset:
  """``dataset`` with every image ``(height, width, channels)`` enlarged ``factor`` times (bilinear).

  ``jax.image.resize`` with pixels as unit squares (half-pixel centres), as SciPy's ``zoom(grid_mode=True)``.

  Examples:
    >>> make_dataset('digits', example_shape=(8, 8, 1), upsample=4).train.x.shape
    (1257, 32, 32, 1)
  """
  if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
    raise ConfigError(f"data.upsample must be a positive integer, got {factor!r}")
  if dataset.train.x.ndim != 4:
    raise ConfigError(f"data.upsample enlarges images shaped (height, width, channels), but the examples of "
                      f"{dataset.name} have shape {dataset.train.x.shape[1:]}; set data.example_shape, "
                      "e.g. [8, 8, 1] for digits")
  import jax

  def enlarge(x):
    n, height, width, channels = x.shape
    return np.asarray(jax.image.resize(x, (n, height * factor, width * factor, channels), "linear"))

  splits = {name: Split(enlarge(split.x), split.y) for name, split in dataset.splits().items()}
  return dataclasses.replace(dataset, **splits)


def with_example_shape(dataset: Dataset, example_shape) -> Dataset:
  """``dataset`` with every split's examples reshaped to ``example_shape`` (the values and their order kept).

  Raises:
    ConfigError: if the shape does not hold an example's values.
  """
  shape = tuple(example_shape)
  if not shape or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape):
    raise ConfigError(f"data.example_shape must be a list of positive integers, got {example_shape!r}")
  size = int(np.prod(shape))
  if dataset.train.x[0].size != size:
    raise ConfigError(f"data.example_shape={list(shape)} holds {size} values, but each example of "
                      f"{dataset.name} has {dataset.train.x[0].size} (shape {dataset.train.x.shape[1:]})")
  splits = {name: Split(split.x.reshape(len(split.x), *shape), split.y) for name, split in dataset.splits().items()}
  return dataclasses.replace(dataset, **splits)


def _user_data(spec: str):
  """The loader of a user's function named by import path (see :func:`make_dataset`)."""
  fn = import_object(spec, "data.name")

  def load(*, path, task, num_classes, sequence_length, num_examples, seed, val_fraction, test_fraction) -> Dataset:
    if path is not None:
      raise ConfigError(f"data.path applies to data.name='npz' only; {spec} loads its own data")
    takes_seed = "seed" in inspect.signature(fn).parameters
    try:
      result = fn(seed=seed) if takes_seed else fn()
    except (ValueError, TypeError, OSError) as e:
      raise DataError(f"data.name {spec!r} failed: {e}") from e
    if isinstance(result, Dataset):
      return result
    if not isinstance(result, (dict, tuple)):
      raise DataError(f"data.name {spec!r} returned {type(result).__name__}; return a jaxreg.data.Dataset, a dict "
                      f"of arrays named {', '.join(NPZ_KEYS)}, or a pair (x, y)")
    name = spec.partition(":")[2]
    return dataset_from_arrays(result, name=name, source=f"what {spec} returned", task=task,
                               num_classes=num_classes, seed=seed, val_fraction=val_fraction,
                               test_fraction=test_fraction)

  return load


def _adding(*, path, task, num_classes, sequence_length, num_examples, **split) -> Dataset:
  del task  # always regression
  if path or num_classes is not None:
    raise ConfigError("the adding problem is generated (always regression): leave data.path and data.num_classes unset")
  return load_adding(
      sequence_length=100 if sequence_length is None else sequence_length,
      num_examples=12000 if num_examples is None else num_examples, **split,
  )


def _digits(*, path, task, num_classes, sequence_length, num_examples, **split) -> Dataset:
  del sequence_length, num_examples
  if path:
    raise ConfigError("data.path applies to data.name='npz' only; digits ships with scikit-learn")
  if task != "classification" or num_classes not in (None, 10):
    raise ConfigError("digits is a 10-class classification dataset: leave data.task and data.num_classes unset")
  return load_digits(**split)


def _coloured_digits(*, path, task, num_classes, sequence_length, num_examples, **split) -> Dataset:
  del sequence_length, num_examples
  if path or task != "classification" or num_classes not in (None, 10):
    raise ConfigError("coloured_digits is a 10-class classification dataset generated from digits: leave "
                      "data.path, data.task and data.num_classes unset")
  return load_coloured_digits(**split)


def _mnist1d(*, path, task, num_classes, sequence_length, num_examples, seed, val_fraction, test_fraction) -> Dataset:
  del sequence_length, num_examples, test_fraction  # its test split is its own
  if path or task != "classification" or num_classes not in (None, 10):
    raise ConfigError(
        "mnist1d is a 10-class classification dataset generated locally: leave data.path, "
        "data.task and data.num_classes unset"
    )
  return load_mnist1d(seed=seed, val_fraction=val_fraction)


def _npz(*, path, task, num_classes, sequence_length, num_examples, **split) -> Dataset:
  del sequence_length, num_examples
  return load_npz(path, task=task, num_classes=num_classes, **split)


_DATASETS = Registry("dataset", {"adding": _adding, "digits": _digits, "coloured_digits": _coloured_digits,
                                 "mnist1d": _mnist1d, "npz": _npz})


__all__ = [
    "DATASET_NAMES",
    "NPZ_KEYS",
    "TASKS",
    "Dataset",
    "Preprocessing",
    "Split",
    "epoch_batch_indices",
    "load_coloured_digits",
    "upsample_images",
    "fit_preprocessing",
    "load_adding",
    "load_digits",
    "load_mnist1d",
    "dataset_from_arrays",
    "load_npz",
    "make_dataset",
    "padded_batches",
    "validate_split",
]
