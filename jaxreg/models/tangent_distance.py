"""The tangent distance classifier: nearest neighbour with a distance that ignores known transformations.

Two images of the same digit moved by a pixel are far apart in Euclidean
distance. The tangent distance compares a query ``q`` with the whole
tangent plane of a training example ``x`` instead of the point:
``d(q, x) = min_a ||x + T_x a - q||``, with ``T_x`` the ``k`` tangent
vectors at ``x`` (the one-sided distance; Simard et al. 1993). The minimum
is the residual of a least-squares problem: with ``u = T_x^T (q - x)`` and the
pseudo-inverse ``G_x^+`` of the tangents' Gram matrix ``G_x = T_x^T T_x``
(computed once per training example; a pseudo-inverse, so that tangents that
vanish or coincide, as on a blank image, span no spurious direction),
``d(q, x)^2 = ||q - x||^2 - u^T G_x^+ u``.

Source: Goodfellow et al., Deep Learning, section 7.14; Simard, LeCun &
Denker 1993.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class TangentDistanceModel(NamedTuple):
  """The training examples (flattened), their labels, their tangents and the tangents' inverse Gram matrices.

  Attributes:
    x: ``(n, d)`` training inputs.
    y: ``(n,)`` labels.
    tangents: ``(n, d, k)``, each example's tangent vectors as columns.
    inverse_gram: ``(n, k, k)``, the pseudo-inverse of each ``T^T T``.

  Examples:
    >>> x = np.random.default_rng(0).uniform(size=(6, 8, 8, 1)).astype(np.float32)
    >>> model = fit_tangent_distance(x, np.arange(6) % 2, make_tangents(['translate_x', 'translate_y']))
    >>> model.x.shape, model.tangents.shape
    ((6, 64), (6, 64, 2))
  """

  x: jax.Array
  y: jax.Array
  tangents: jax.Array
  inverse_gram: jax.Array


def fit_tangent_distance(x: np.ndarray, y: np.ndarray, tangents: Callable[[jax.Array], jax.Array]
                         ) -> TangentDistanceModel:
  """Stores the training set, each example's tangent vectors and the pseudo-inverse of their Gram matrix.

  Args:
    x: training inputs in the shape ``tangents`` takes (e.g. ``(n, 8, 8, 1)``).
    y: integer labels.
    tangents: ``fn(x) -> (k, *x.shape)``, e.g.
      :func:`jaxreg.augment.make_tangents` of translations and rotation.

  Examples:
    >>> model = fit_tangent_distance(train.x, train.y, make_tangents(['translate_x', 'translate_y']))  # doctest: +SKIP
    >>> accuracy = np.mean(predict_tangent_distance(model, test.x) == test.y)  # doctest: +SKIP
  """
  x = jnp.asarray(x, jnp.float32)
  if len(x) != len(y) or len(y) == 0:
    raise ValueError(f"x and y must hold the same number (> 0) of examples, got {len(x)} and {len(y)}")
  v = tangents(x)  # (k, n, ...)
  columns = jnp.moveaxis(v.reshape(v.shape[0], len(x), -1), 0, -1)  # (n, d, k)
  gram = jnp.einsum("ndk,ndl->nkl", columns, columns)
  inverse_gram = jnp.linalg.pinv(gram, rtol=1e-5, hermitian=True)
  return TangentDistanceModel(x.reshape(len(x), -1), jnp.asarray(y), columns, inverse_gram)


@jax.jit
def tangent_distances(model: TangentDistanceModel, queries: jax.Array) -> jax.Array:
  """``(m, n)`` squared one-sided tangent distances ``min_a ||x_j + T_j a - q_i||^2``.

  Examples:
    >>> x = np.random.default_rng(0).uniform(size=(4, 8, 8, 1)).astype(np.float32)
    >>> model = fit_tangent_distance(x, np.arange(4), make_tangents(['translate_x']))
    >>> distances = tangent_distances(model, jnp.asarray(x[:2].reshape(2, -1)))
    >>> distances.shape, bool(jnp.allclose(jnp.diagonal(distances[:, :2]), 0.0, atol=1e-4))
    ((2, 4), True)
  """
  q = queries.reshape(len(queries), -1)
  squared = jnp.sum(q**2, 1)[:, None] + jnp.sum(model.x**2, 1)[None, :] - 2 * q @ model.x.T
  # u = T_j^T (q_i - x_j) = T_j^T q_i - T_j^T x_j; the tangent plane takes u^T G_j^+ u of the distance.
  u = jnp.einsum("md,ndk->mnk", q, model.tangents) - jnp.einsum("nd,ndk->nk", model.x, model.tangents)[None]
  explained = jnp.einsum("mnk,nkl,mnl->mn", u, model.inverse_gram, u)
  return jnp.maximum(squared - explained, 0.0)


def predict_tangent_distance(model: TangentDistanceModel, queries, *, batch_size: int = 256) -> np.ndarray:
  """The label of each query's nearest training example in tangent distance (1-nearest neighbour).

  Examples:
    >>> x = np.random.default_rng(0).uniform(size=(6, 8, 8, 1)).astype(np.float32)
    >>> model = fit_tangent_distance(x, np.arange(6), make_tangents(['translate_x']))
    >>> predict_tangent_distance(model, x[:3]).tolist()  # each training example is its own nearest neighbour
    [0, 1, 2]
  """
  queries = jnp.asarray(queries, jnp.float32)
  nearest = [np.asarray(jnp.argmin(tangent_distances(model, queries[i:i + batch_size]), axis=1))
             for i in range(0, len(queries), batch_size)]
  return np.asarray(model.y)[np.concatenate(nearest)]
