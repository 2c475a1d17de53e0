"""Sparse representations: an L1 penalty on hidden activations.

Wang 2023, "Sparse Representations": penalize the activations ``h`` rather
than the weights, ``J~(theta) = J(theta) + alpha * Omega(h)`` with
``Omega(h) = ||h||_1``, so that many units are exactly zero for a given input
(Goodfellow et al., section 7.10). The models expose their hidden
activations through Flax's ``sow`` (the ``'intermediates'`` collection).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from jaxreg.regularizers.objective import Objective, ObjectiveTransform, coefficient, masked_mean


def flatten_intermediates(intermediates) -> dict[str, jax.Array]:
  """``{'hidden_0': h, ...}`` from Flax's sown ``'intermediates'`` (each a tuple of sown values)."""
  out = {}
  for name, value in dict(intermediates).items():
    if isinstance(value, tuple):
      value = value[-1] if len(value) == 1 else jnp.concatenate([v.reshape(v.shape[0], -1) for v in value], -1)
    if isinstance(value, dict):  # a submodule's collection: prefix its names
      out.update({f"{name}/{k}": v for k, v in flatten_intermediates(value).items()})
    else:
      out[name] = value
  return out


def activation_l1(alpha, layers: Sequence[str] | None = None) -> ObjectiveTransform:
  """L1 penalty on hidden activations: ``Omega = alpha * mean_batch sum_l ||h_l(x)||_1``.

  For each example, the absolute values of the chosen layers' activations
  are summed; the penalty is ``alpha`` times the mean of that over the batch
  (over the real examples when the batch has a ``'mask'``), added to the
  loss and reported as ``activation_l1_penalty``. With ReLU units the
  penalty drives many activations to exactly 0; the run's summary reports
  the fraction of exactly-zero and near-zero activations.

  Source: Wang 2023, "Sparse Representations" (Goodfellow et al., section 7.10).

  Args:
    alpha: the penalty's weight ``>= 0``, or a schedule of the step.
    layers: names of sown activations (``'hidden_0'``, ...); ``None`` means all.

  Raises:
    ValueError: (when the objective is first traced) if the model sows no
      activations or a named layer does not exist.

  Examples:
    >>> objective = activation_l1(1e-4, layers=['hidden_1'])(classification_objective(model.apply))  # doctest: +SKIP
  """
  alpha_at = coefficient("activation_l1", alpha)
  if layers is not None and (isinstance(layers, str) or not all(isinstance(n, str) for n in layers)):
    raise ValueError(f"layers must be a list of layer names such as ['hidden_0'], got {layers!r}")

  def transform(objective: Objective) -> Objective:
    def penalized(params, batch, ctx):
      loss, aux = objective(params, batch, ctx._replace(capture_intermediates=True))
      activations = flatten_intermediates(aux.intermediates)
      if not activations:
        raise ValueError(
            "activation_l1 needs a model that exposes its hidden activations (Flax sow into "
            "'intermediates', as jaxreg's MLP does); this model exposes none"
        )
      names = sorted(activations) if layers is None else list(layers)
      missing = [n for n in names if n not in activations]
      if missing:
        raise ValueError(
            f"activation_l1: no layer(s) {missing}; the model's activations are: {', '.join(sorted(activations))}"
        )
      per_example = sum(jnp.sum(jnp.abs(activations[n]).reshape(activations[n].shape[0], -1), -1) for n in names)
      penalty = alpha_at(getattr(ctx, "step", 0)) * masked_mean(per_example, batch.get("mask"))
      objective_value = aux.metrics.get("objective", loss) + penalty
      return loss + penalty, aux.with_metrics(activation_l1_penalty=penalty, objective=objective_value)

    return penalized

  return transform
