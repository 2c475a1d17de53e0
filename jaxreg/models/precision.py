"""Mixed precision: a model that computes in a low-precision dtype while its parameters stay float32.

:func:`with_compute_dtype` wraps any ``ModelFns``: each ``apply`` casts the
float32 parameters and the inputs to ``dtype`` (bfloat16 on a TPU, where its
matrix units run it at full rate), runs the model, and returns the outputs
(and the model state) in float32, so the loss, the gradients, the parameters
and the optimizer state stay float32 (Micikevicius et al. 2018's master
weights; bfloat16 keeps float32's exponent, so no loss scaling is needed).
"""

import jax
import jax.numpy as jnp

from jaxreg.models.base import ModelFns

COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def _cast(tree, dtype):
  """``tree`` with its floating-point arrays in ``dtype`` (integers, keys and others as they are)."""
  def cast(leaf):
    if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating) and leaf.dtype != dtype:
      return leaf.astype(dtype)
    return leaf
  return jax.tree.map(cast, tree)


def with_compute_dtype(model: ModelFns, dtype="bfloat16") -> ModelFns:
  """``model`` computing in ``dtype``, with float32 parameters, model state and outputs.

  The casts are differentiable, so the gradient reaching the float32
  parameters is the low-precision computation's, in float32.

  Args:
    model: any ``ModelFns``.
    dtype: one of ``COMPUTE_DTYPES``; ``'float32'`` returns ``model`` unchanged.

  Examples:
    >>> model = with_compute_dtype(make_mlp(num_outputs=10, hidden_sizes=(32,)), 'bfloat16')
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 64)))
    >>> logits, _ = model.apply(variables, jnp.ones((2, 64)), train=False)
    >>> variables['params']['dense_0']['kernel'].dtype, logits.dtype
    (dtype('float32'), dtype('float32'))
  """
  if str(dtype) not in COMPUTE_DTYPES:
    raise ValueError(f"compute_dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}")
  if str(dtype) == "float32":
    return model
  low = jnp.dtype(dtype)

  def apply(variables, x, *, train, rng=None, **kwargs):
    low_variables = {**variables, "params": _cast(variables["params"], low)}
    outputs, state = model.apply(low_variables, _cast(x, low), train=train, rng=rng, **kwargs)
    return _cast(outputs, jnp.float32), _cast(state, jnp.float32)

  return model._replace(apply=apply)


__all__ = ["COMPUTE_DTYPES", "with_compute_dtype"]
