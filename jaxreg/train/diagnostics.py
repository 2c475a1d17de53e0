"""Training health checks: the update-to-weight ratio and the gradient norm.

Baskin et al. 2018 ("tricks of the trade"): "Evaluate the ratio ||dW_t||_2 / ||W_t||_2
as a measure to efficient learning rate. Should be around 10^-3". A ratio far
below (say under 1e-4) means the weights barely move: the learning rate is
too low or the layer is stuck. Far above (over 1e-2), each step rewrites a
large part of the weights: the learning rate is too high.

The fit loop measures the ratios on the last step of every epoch (one extra
norm per matrix, once per epoch, so the other steps run at full speed) and
writes them to ``metrics.jsonl`` as ``update_ratio/<layer>``, with the
gradient's global norm at that step as ``last_grad_norm``.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg._tree import named_leaves
from jaxreg.regularizers.activity import flatten_intermediates

UPDATE_RATIO_PREFIX = "update_ratio/"
LAST_GRAD_NORM = "last_grad_norm"
HEALTHY_UPDATE_RATIO = (1e-4, 1e-2)


def update_ratios(params, updates) -> dict[str, jax.Array]:
  """``||dW||_2 / ||W||_2`` for every weight matrix (leaves with ``ndim >= 2``), keyed by path.

  ``||.||_2`` is the Frobenius norm of the matrix; ``W`` is the weight before
  the update ``dW``. Biases and scales (1-D) are left out, as in the lecture notes.

  Examples:
    >>> update_ratios({'k': jnp.ones((2, 2))}, {'k': jnp.full((2, 2), 1e-3)})
    {'update_ratio/k': Array(0.001, dtype=float32)}
  """
  weights, deltas = named_leaves(params), named_leaves(updates)
  return {
      UPDATE_RATIO_PREFIX + name: jnp.linalg.norm(deltas[name].ravel()) / jnp.linalg.norm(w.ravel())
      for name, w in weights.items()
      if jnp.ndim(w) >= 2
  }


def summarize_update_ratios(
    history: Sequence[dict], healthy: tuple[float, float] = HEALTHY_UPDATE_RATIO
) -> dict:
  """The median ratio of each layer over the epochs, and the layers outside ``healthy``.

  Args:
    history: the fit loop's records (lines of ``metrics.jsonl``).
    healthy: the ``(low, high)`` band; the lecture notes' target (Baskin et al. 2018), 1e-3, is in the middle.

  Returns:
    ``{'update_ratio_median': {layer: median}, 'update_ratio_warnings': [message, ...]}``;
    both empty when no record has ratios.
  """
  low, high = healthy
  layers = sorted({k for record in history for k in record if k.startswith(UPDATE_RATIO_PREFIX)})
  medians, warnings = {}, []
  for key in layers:
    values = [r[key] for r in history if r.get(key) is not None]
    median = float(np.median(values))
    layer = key[len(UPDATE_RATIO_PREFIX):]
    medians[layer] = median
    if not np.isfinite(median):
      warnings.append(
          f"{layer}: median ||dW||/||W|| is {median} (the weights or their updates are no longer finite): the "
          "run diverged; lower optimizer.learning_rate"
      )
    elif median < low:
      warnings.append(
          f"{layer}: median ||dW||/||W|| = {median:.2e} is below {low:.0e}: the weights barely move "
          "(learning rate too low, or a dead layer)"
      )
    elif median > high:
      warnings.append(
          f"{layer}: median ||dW||/||W|| = {median:.2e} is above {high:.0e}: each step changes the "
          "weights a lot (learning rate too high?)"
      )
  return {"update_ratio_median": medians, "update_ratio_warnings": warnings}


def is_diagnostic(metric: str) -> bool:
  """Whether a train-step metric is one of the last step's diagnostics (logged without ``train_``)."""
  return metric == LAST_GRAD_NORM or metric.startswith(UPDATE_RATIO_PREFIX)


def activation_sparsity(apply, variables, x, *, near_zero: float = 1e-3, max_examples: int = 2048) -> dict:
  """The fraction of exactly-zero and near-zero hidden activations on inputs ``x`` (inference mode).

  The lecture notes' "sparse representations" (Wang 2023): with an L1 penalty on the
  activations (:func:`jaxreg.regularizers.activation_l1`) many ReLU units
  output exactly 0 for a given input. Measured on the first ``max_examples``
  of ``x``.

  Args:
    apply: the model's ``apply``, which must take ``capture_intermediates``.
    variables: ``{'params': ..., <state collections>}``.
    x: inputs, examples first.
    near_zero: the ``|h|`` at or below which an activation counts as near zero.
    max_examples: at most this many examples are used.

  Returns:
    ``{layer: {'zero_fraction': f, 'near_zero_fraction': f}}``, plus ``'all'``
    over every layer's units together; ``{}`` if the model sows no activations.

  Examples:
    >>> activation_sparsity(model.apply, {'params': params}, data.test.x)  # doctest: +SKIP
    {'hidden_0': {'zero_fraction': 0.61, 'near_zero_fraction': 0.63}, ...}
  """
  forward = jax.jit(lambda variables, x: apply(variables, x, train=False, capture_intermediates=True)[1])
  state = forward(variables, np.asarray(x[:max_examples]))  # one program, not one per eager operation
  activations = {k: np.asarray(v) for k, v in flatten_intermediates(state.get("intermediates", {})).items()}
  if not activations:
    return {}
  report = {
      name: {"zero_fraction": float(np.mean(h == 0)), "near_zero_fraction": float(np.mean(np.abs(h) <= near_zero))}
      for name, h in sorted(activations.items())
  }
  flat = np.concatenate([h.reshape(-1) for h in activations.values()])
  report["all"] = {"zero_fraction": float(np.mean(flat == 0)), "near_zero_fraction": float(np.mean(np.abs(flat) <= near_zero))}
  return report


def non_finite_cause(dataset) -> str | None:
  """Why a loss became NaN if the data is to blame: non-finite inputs or targets, or labels out of range.

  Run by the NaN guard when the training loss stops being finite, on the
  host arrays of every split; ``None`` means the data is clean, so the run
  diverged (the step size, a penalty's strength or the model).

  Examples:
    >>> x = np.ones((4, 2), np.float32); x[1, 0] = np.nan
    >>> non_finite_cause(Dataset('d', 'regression', Split(x, np.zeros(4, np.float32)), None, None, None))
    'x_train holds 1 NaN or infinite value(s)'
  """
  for name, split in dataset.splits().items():
    x, y = np.asarray(split.x), np.asarray(split.y)
    if np.issubdtype(x.dtype, np.inexact) and not np.isfinite(x).all():
      return f"x_{name} holds {int((~np.isfinite(x)).sum())} NaN or infinite value(s)"
    if np.issubdtype(y.dtype, np.inexact) and not np.isfinite(y).all():
      return f"y_{name} holds {int((~np.isfinite(y)).sum())} NaN or infinite target(s)"
    if dataset.task == "classification" and dataset.num_classes:
      outside = (y < 0) | (y >= dataset.num_classes)
      if outside.any():
        return f"y_{name} holds {int(outside.sum())} label(s) outside [0, {dataset.num_classes})"
  return None
