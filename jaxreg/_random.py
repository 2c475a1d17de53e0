"""Random draws of any shape that compile fast on CPU: drawn flat, then reshaped.

With ``jax_threefry_partitionable`` (the default in JAX 0.10), XLA:CPU takes
seconds to compile a draw of a 4-D shape (``jax.random.bernoulli(key, p,
(6, 4, 4, 8))``: 5 s; the same 768 values drawn flat: 0.3 s). The values are
the same either way (the counter is the flat index; tested in
``tests/test_cnn.py``), so these helpers only change the compile time.
"""

import math

import jax


def bernoulli(key: jax.Array, p, shape) -> jax.Array:
  """``jax.random.bernoulli(key, p, shape)``, drawn flat."""
  return jax.random.bernoulli(key, p, (math.prod(shape),)).reshape(shape)


def normal(key: jax.Array, shape, dtype=None) -> jax.Array:
  """``jax.random.normal(key, shape, dtype)``, drawn flat."""
  kwargs = {} if dtype is None else {"dtype": dtype}
  return jax.random.normal(key, (math.prod(shape),), **kwargs).reshape(shape)
