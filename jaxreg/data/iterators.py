"""Shuffling and batching, shared by the compiled-epoch and streaming paths.

Both paths draw an epoch's order from the same key, ``fold_in(key, epoch)``,
so they visit the examples in the same order and a resumed run reshuffles
exactly as an uninterrupted one.
"""

import jax
import numpy as np


def epoch_batch_indices(key: jax.Array, epoch, num_examples: int, batch_size: int) -> jax.Array:
  """Indices of one epoch's batches, shape ``(num_examples // batch_size, batch_size)``.

  The examples are permuted with ``fold_in(key, epoch)``; the last
  ``num_examples % batch_size`` of the permutation are left out of this
  epoch (a different subset every epoch), so every step sees a full batch.
  Jit-safe (``epoch`` may be traced).

  Examples:
    >>> indices = epoch_batch_indices(jax.random.key(0), 0, 10, 4)
    >>> indices.shape, len(set(np.asarray(indices).ravel().tolist()))  # 2 full batches, no example twice
    ((2, 4), 8)
  """
  steps = num_examples // batch_size
  perm = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
  return perm[: steps * batch_size].reshape(steps, batch_size)


def padded_batches(
    x: np.ndarray, y: np.ndarray, batch_size: int, num_batches: int | None = None
) -> dict[str, np.ndarray]:
  """Stacks a split into ``(num_batches, batch_size, ...)`` arrays plus a 0/1 ``mask``.

  The last batch is padded with copies of the first example and mask 0, so
  evaluation sees every example exactly once with static shapes. With
  ``num_batches`` larger than the split needs, whole batches of padding
  follow the real ones, so splits of different sizes share one shape (and
  one compiled evaluation).

  Raises:
    ValueError: if ``num_batches`` is too small to hold the split.

  Examples:
    >>> batches = padded_batches(np.zeros((5, 2)), np.arange(5), batch_size=2)
    >>> batches['x'].shape, batches['mask'].tolist()
    ((3, 2, 2), [[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
  """
  n = len(y)
  needed = -(-n // batch_size)
  num_batches = needed if num_batches is None else num_batches
  if num_batches < needed:
    raise ValueError(f"num_batches={num_batches} cannot hold {n} examples in batches of {batch_size}")
  pad = num_batches * batch_size - n
  index = np.concatenate([np.arange(n), np.zeros(pad, dtype=np.int64)])
  mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
  shape = (num_batches, batch_size)
  return {
      "x": x[index].reshape(shape + x.shape[1:]),
      "y": y[index].reshape(shape + y.shape[1:]),
      "mask": mask.reshape(shape),
  }


def eval_layout(eval_batch_size: int, num_examples: int, num_devices: int = 1) -> tuple[int, int]:
  """``(batch_size, num_batches)`` of an evaluation over ``num_examples``.

  The batch is at most ``eval_batch_size`` and at most the split, rounded up
  to a multiple of ``num_devices``; the extra places are masked copies of an
  example (see :func:`padded_batches`), so none is dropped or counted twice.
  """
  size = -(-min(eval_batch_size, num_examples) // num_devices) * num_devices
  return size, -(-num_examples // size)
