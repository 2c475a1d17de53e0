"""Parameter norm penalties and parameter tying: objective transforms on the weights.

Each adds ``Omega(theta)`` to the objective, ``J~(theta) = J(theta) + Omega(theta)``,
reports it as its own metric, and leaves ``metrics['loss']`` the data term.
Masks select the penalized parameters by path; biases and normalization
scales are excluded by default (Wang 2023: "we typically penalize only the
weights ... and leave the biases unregularized").
"""

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxreg._tree import named_leaves
from jaxreg.regularizers.masks import MaskSpec, masked_leaves
from jaxreg.regularizers.objective import ObjectiveTransform, add_penalty, coefficient

Coefficient = float | Callable[[Any], Any]


def _step(ctx):
  return getattr(ctx, "step", 0)  # a constant coefficient needs no context


def _sum_over(leaves: Sequence[jax.Array], fn: Callable[[jax.Array], jax.Array]) -> jax.Array:
  if not leaves:
    return jnp.zeros((), jnp.float32)
  return sum(jnp.sum(fn(w)) for w in leaves)


def l2(alpha: Coefficient, *, mask: MaskSpec = None) -> ObjectiveTransform:
  """L2 parameter norm penalty (weight decay as a penalty).

  ``Omega(theta) = (alpha / 2) * ||w||_2^2``, summed over the weights ``w``
  that ``mask`` selects. Its gradient adds ``alpha * w``, so a gradient step
  is ``w <- (1 - eps*alpha) w - eps * grad J``. Near a minimum ``w*`` of a
  quadratic ``J`` with Hessian ``H = Q Lambda Q^T``, the penalized minimum is
  ``w~ = Q (Lambda + alpha I)^-1 Lambda Q^T w*``: each eigen-direction of
  ``H`` is shrunk by ``lambda_i / (lambda_i + alpha)``.

  Source: Wang 2023, "L2 Norm Parameter Regularization" (Goodfellow et al.,
  Deep Learning, section 7.1.1).

  Args:
    alpha: the penalty's weight, ``alpha >= 0``, or a schedule ``step -> alpha``
      (a trick of the lecture notes (Baskin et al. 2018): lower the regularization coefficient near
      convergence), evaluated at the optimizer step ``ctx.step``.
    mask: which parameters to penalize: ``None`` (kernels, not biases or
      scales), a pytree of bools, or a function of the params returning one.

  Examples:
    >>> objective = l2(1e-4)(classification_objective(model.apply))  # doctest: +SKIP
    >>> decaying = l2(optax.exponential_decay(1e-3, 1000, 0.5))(objective)  # doctest: +SKIP
  """
  alpha_at = coefficient("l2", alpha)

  def penalty(params, ctx):
    return 0.5 * alpha_at(_step(ctx)) * _sum_over(masked_leaves(params, mask), jnp.square)

  return add_penalty("l2_penalty", penalty)


def l1(alpha: Coefficient, *, mask: MaskSpec = None) -> ObjectiveTransform:
  """L1 parameter norm penalty: ``Omega(theta) = alpha * ||w||_1 = alpha * sum_i |w_i|``.

  Its subgradient is ``alpha * sign(w)`` (0 at ``w = 0``, JAX's convention),
  a constant push towards 0 whatever the size of ``w``. On a quadratic with a
  diagonal Hessian the minimum is ``w_i = sign(w*_i) max(|w*_i| - alpha/H_ii, 0)``,
  exactly 0 for small ``w*_i``; plain (sub)gradient descent only hovers
  around those zeros, :func:`jaxreg.regularizers.prox_l1` reaches them.

  Source: Wang 2023, "L1 Regularization" (Goodfellow et al., section 7.1.2).

  Args:
    alpha: the penalty's weight ``>= 0``, or a schedule of the step.
    mask: which parameters to penalize (default: kernels, not biases or scales).

  Examples:
    >>> objective = l1(1e-4)(classification_objective(model.apply))  # doctest: +SKIP
  """
  alpha_at = coefficient("l1", alpha)

  def penalty(params, ctx):
    return alpha_at(_step(ctx)) * _sum_over(masked_leaves(params, mask), jnp.abs)

  return add_penalty("l1_penalty", penalty)


def elastic_net(l1_alpha: Coefficient, l2_alpha: Coefficient, *, mask: MaskSpec = None) -> ObjectiveTransform:
  """Elastic net: ``Omega(theta) = l1_alpha * ||w||_1 + (l2_alpha / 2) * ||w||_2^2``.

  The sum of :func:`l1` and :func:`l2` on the same weights (Zou and Hastie,
  2005), reported as one metric, ``elastic_net_penalty``.

  Args:
    l1_alpha: the L1 weight ``>= 0``, or a schedule.
    l2_alpha: the L2 weight ``>= 0``, or a schedule.
    mask: which parameters to penalize (default: kernels, not biases or scales).

  Examples:
    >>> objective = elastic_net(1e-5, 1e-4)(classification_objective(model.apply))  # doctest: +SKIP
  """
  l1_at = coefficient("elastic_net.l1_alpha", l1_alpha)
  l2_at = coefficient("elastic_net.l2_alpha", l2_alpha)

  def penalty(params, ctx):
    leaves = masked_leaves(params, mask)
    step = _step(ctx)
    return l1_at(step) * _sum_over(leaves, jnp.abs) + 0.5 * l2_at(step) * _sum_over(leaves, jnp.square)

  return add_penalty("elastic_net_penalty", penalty)


def _subtree(params, path: str, what: str):
  """The leaves of ``params`` under ``path`` ('a/b' names a subtree or a leaf), by path."""
  leaves = named_leaves(params)
  prefix = path.strip("/")
  chosen = {k: v for k, v in leaves.items() if k == prefix or k.startswith(prefix + "/")}
  if not chosen:
    raise ValueError(
        f"tying: {what} {path!r} names no parameters; parameter paths are: {', '.join(leaves)}"
    )
  return {k[len(prefix):] for k in chosen}, chosen, prefix


def tying(alpha: Coefficient, path_a: str, path_b: str, *, reference: Any = None) -> ObjectiveTransform:
  """Parameter tying: ``Omega = alpha * ||w^(A) - w^(B)||_2^2``, pulling two parameter sets together.

  ``w^(A)`` is the subtree of the parameters at ``path_a`` (e.g.
  ``'dense_1/kernel'`` or a whole layer, ``'dense_1'``); ``w^(B)`` is the
  subtree at ``path_b`` of the same parameters (two layers of one model) or,
  with ``reference``, of a fixed reference model's parameters (no gradient
  flows into it). The two subtrees must have the same leaves and shapes.

  Source: Wang 2023, "Parameter Tying" (Goodfellow et al., section 7.9).

  Args:
    alpha: the penalty's weight ``>= 0``, or a schedule.
    path_a: a path into the trained parameters, ``'/'``-separated.
    path_b: a path into the trained parameters, or into ``reference``.
    reference: the parameters of model B, or ``None`` to tie within one model.

  Raises:
    ValueError: (when the objective is first traced) if a path names no
      parameters or the two subtrees differ in structure or shape.

  Examples:
    >>> tied = tying(1e-2, 'dense_1/kernel', 'dense_2/kernel')(objective)  # doctest: +SKIP
    >>> pulled = tying(1e-2, 'dense_0', 'dense_0', reference=pretrained_params)(objective)  # doctest: +SKIP
  """
  alpha_at = coefficient("tying", alpha)
  if not isinstance(path_a, str) or not isinstance(path_b, str):
    raise ValueError(f"path_a and path_b must be strings such as 'dense_1/kernel', got {path_a!r}, {path_b!r}")
  if reference is None and path_a.strip("/") == path_b.strip("/"):
    raise ValueError(f"path_a and path_b are the same subtree {path_a!r}; tie two different ones")

  def penalty(params, ctx):
    suffixes_a, leaves_a, prefix_a = _subtree(params, path_a, "path_a")
    source_b = params if reference is None else jax.lax.stop_gradient(reference)
    suffixes_b, leaves_b, prefix_b = _subtree(source_b, path_b, "path_b")
    if suffixes_a != suffixes_b:
      raise ValueError(
          f"tying: {path_a!r} and {path_b!r} hold different parameters "
          f"({sorted(suffixes_a)} vs {sorted(suffixes_b)})"
      )
    total = jnp.zeros((), jnp.float32)
    for suffix in sorted(suffixes_a):
      a, b = leaves_a[prefix_a + suffix], leaves_b[prefix_b + suffix]
      if a.shape != b.shape:
        raise ValueError(f"tying: {prefix_a + suffix} has shape {a.shape} but {prefix_b + suffix} has {b.shape}")
      total = total + jnp.sum(jnp.square(a - b))
    return alpha_at(_step(ctx)) * total

  return add_penalty("tying_penalty", penalty)
