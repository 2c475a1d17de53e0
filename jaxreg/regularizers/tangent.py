"""Tangent propagation: penalize the network's derivative along known directions of invariance.

The manifold hypothesis: each class lies near a low-dimensional manifold, and
known transformations (small translations, rotations, scalings) move an
example along it. Tangent propagation asks the output to change little along
the manifold's tangent vectors ``v_i`` at each input ``x``:
``Omega(f) = sum_i ((grad_x f(x))^T v_i)^2``, summed over the outputs.

Source: Goodfellow et al., Deep Learning, section 7.14, eq. (7.67); Simard
et al. 1992.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxreg.regularizers.objective import Objective, ObjectiveTransform, coefficient, masked_mean


def directional_penalty(output_tangents, mask=None) -> jax.Array:
  """``mean_n sum_k sum_o (J_f(x_n) v_nk)_o^2`` over the batch's real examples.

  Args:
    output_tangents: a pytree of arrays shaped ``(k, n, ...)``: the
      directional derivatives of each output along each of ``k`` tangents.
    mask: ``(n,)``, 1 for real examples and 0 for padding, or ``None``.
  """
  leaves = jax.tree.leaves(output_tangents)
  per_example = sum(jnp.sum(jnp.square(t).reshape(t.shape[0], t.shape[1], -1), axis=(0, 2)) for t in leaves)
  return masked_mean(per_example, mask)


def tangent_prop(alpha, tangents: Callable[[jax.Array], jax.Array], *,
                 outputs_fn: Callable | None = None) -> ObjectiveTransform:
  """Adds ``alpha * mean_n sum_i ||J_f(x_n) v_i(x_n)||^2`` to the objective (Simard et al. 1992).

  ``J_f(x) v`` is the derivative of the model's outputs (the logits of a
  classifier) along the tangent ``v``, computed in forward mode
  (``jax.linearize``, no finite differences, no Jacobian) in the same pass
  as the outputs: the base objectives of :mod:`jaxreg.train` return it as
  ``aux.output_tangents`` when asked through ``ctx.input_tangents``. For an
  objective that does not (a wrapped plain loss), pass ``outputs_fn(params,
  x) -> outputs``; the penalty then runs its own forward pass. The penalty
  applies in training only; it is reported as ``aux.metrics['tangent_prop']``.

  Args:
    alpha: the penalty's weight (a number >= 0, or a schedule of the step).
    tangents: ``fn(x) -> v`` with ``v`` of shape ``(k, *x.shape)``, the
      tangent vectors of each input (:func:`jaxreg.augment.make_tangents`:
      translations, rotation, scale of images; shift and stretch of signals).
    outputs_fn: ``fn(params, x) -> outputs`` for objectives that do not
      return output tangents, or ``None``.

  Examples:
    >>> from jaxreg.augment import make_tangents
    >>> reg = tangent_prop(0.01, make_tangents(['translate_x', 'translate_y']))
    >>> objective = reg(classification_objective(model.apply))  # doctest: +SKIP
  """
  alpha_at = coefficient("tangent_prop", alpha)
  if not callable(tangents):
    raise TypeError(f"tangents must be a function x -> (k, *x.shape) tangent vectors, got {tangents!r}; "
                    "e.g. jaxreg.augment.make_tangents(['translate_x', 'translate_y'])")

  def output_tangents_of(params, x):
    v = jax.lax.stop_gradient(tangents(x))
    _, tangent_map = jax.linearize(lambda inputs: outputs_fn(params, inputs), x)
    return jax.vmap(tangent_map)(v)

  def transform(objective: Objective) -> Objective:
    def penalized(params, batch, ctx):
      if not ctx.train:
        return objective(params, batch, ctx)
      if outputs_fn is not None:
        loss, aux = objective(params, batch, ctx)
        found = output_tangents_of(params, batch["x"])
      else:
        loss, aux = objective(params, batch, ctx._replace(input_tangents=tangents))
        found = aux.output_tangents
        if found is None:
          raise ValueError(
              "tangent_prop: the objective returned no output tangents (aux.output_tangents is None), as a wrapped "
              "plain loss does; pass outputs_fn=lambda params, x: <the model's outputs> to tangent_prop")
      penalty = alpha_at(ctx.step) * directional_penalty(found, batch.get("mask"))
      objective_value = aux.metrics.get("objective", loss) + penalty
      aux = aux.replace(output_tangents=None).with_metrics(tangent_prop=penalty, objective=objective_value)
      return loss + penalty, aux

    return penalized

  return transform
