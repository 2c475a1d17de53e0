"""Synthetic sequence tasks: the adding problem (Hochreiter and Schmidhuber, 1997).

Each input is a length-``T`` sequence of pairs ``(value, marker)``: values
drawn from U(0, 1), markers 0 except at two steps, one in each half of the
sequence. The target is the sum of the two marked values. Predicting the
mean, 1, gives a mean squared error of ``Var = 2/12 = 0.167``; beating it
needs a memory of about ``T/2`` steps, the long-term dependency that the
basic RNN fails to learn (Wang 2023: "Challenge of Long-Term Dependencies").
"""

import numpy as np

from jaxreg.data.datasets import Dataset, Split, _assemble

ADDING_BASELINE_MSE = 2.0 / 12.0


def adding_problem(num_examples: int, sequence_length: int, *, seed: int = 0) -> Split:
  """``num_examples`` adding-problem sequences ``x (n, T, 2)`` and their sums ``y (n,)``.

  Examples:
    >>> split = adding_problem(10, 20)
    >>> split.x.shape, split.y.shape, split.x[:4, :, 1].sum(1).tolist()
    ((10, 20, 2), (10,), [2.0, 2.0, 2.0, 2.0])
  """
  if isinstance(sequence_length, bool) or not isinstance(sequence_length, int) or sequence_length < 2:
    raise ValueError(f"sequence_length must be an integer >= 2 for the adding problem, got {sequence_length!r}")
  if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 10:
    raise ValueError(f"num_examples must be an integer >= 10, got {num_examples!r}")
  g = np.random.default_rng(seed)
  values = g.uniform(0.0, 1.0, size=(num_examples, sequence_length))
  half = sequence_length // 2
  first = g.integers(0, half, size=num_examples)
  second = g.integers(half, sequence_length, size=num_examples)
  markers = np.zeros_like(values)
  rows = np.arange(num_examples)
  markers[rows, first] = 1.0
  markers[rows, second] = 1.0
  x = np.stack([values, markers], axis=-1).astype(np.float32)
  y = (values[rows, first] + values[rows, second]).astype(np.float32)
  return Split(x, y)


def load_adding(
    *, sequence_length: int = 100, num_examples: int = 12000, seed: int = 0,
    val_fraction: float = 0.1, test_fraction: float = 0.2,
) -> Dataset:
  """The adding problem as a regression dataset (generated from ``seed``; by default 8,400 / 1,200 / 2,400).

  Args:
    sequence_length: ``T``, the sequence length (100 in the lecture notes' comparison).
    num_examples: sequences generated in all.
    seed: seed of the generator and of the split.
    val_fraction: share held out for validation.
    test_fraction: share held out for testing.

  Examples:
    >>> data = load_adding(sequence_length=20, num_examples=100)
    >>> data.task, data.train.x.shape
    ('regression', (70, 20, 2))
  """
  data = adding_problem(num_examples, sequence_length, seed=seed)
  return _assemble(
      f"adding{sequence_length}", "regression", data, None, None, num_classes=None,
      val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
  )
