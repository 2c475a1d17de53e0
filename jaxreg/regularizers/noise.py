"""Noise on the weights: the objective evaluated, and differentiated, at freshly perturbed parameters.

The lecture notes list three places to inject noise (Goodfellow et al.,
section 7.5): the inputs (``data.augment``'s ``gaussian_noise``: for linear
regression with squared error ``E[loss(x + e)] = loss(x) + sigma^2 ||w||^2``,
Bishop 1995), the outputs (:func:`jaxreg.regularizers.label_smoothing`) and
the weights, here: a stochastic form of Bayesian inference over the weights
(Graves 2011) that pushes the parameters towards regions where small
perturbations of the weights barely change the loss (flat minima).
"""

import math

import jax

from jaxreg import _random
from jaxreg.regularizers.masks import MaskSpec, flat_selection
from jaxreg.regularizers.objective import Objective, ObjectiveTransform
from jaxreg._validation import is_traced


def perturb(params, key: jax.Array, sigma: float, mask: MaskSpec = None):
  """``params`` with ``N(0, sigma^2)`` noise added to every leaf ``mask`` selects (kernels by default).

  Each selected leaf gets its own key (``fold_in`` of its position), so the
  perturbation is a deterministic function of ``key``.

  Examples:
    >>> params = {'dense': {'kernel': jnp.zeros((2, 2)), 'bias': jnp.zeros(2)}}
    >>> noisy = perturb(params, jax.random.key(0), sigma=0.1)
    >>> bool(jnp.any(noisy['dense']['kernel'] != 0)), bool(jnp.all(noisy['dense']['bias'] == 0))  # kernels only
    (True, True)
  """
  leaves, treedef, selected = flat_selection(params, mask)
  return treedef.unflatten([
      leaf + sigma * _random.normal(jax.random.fold_in(key, index), leaf.shape, dtype=leaf.dtype) if chosen else leaf
      for index, (leaf, chosen) in enumerate(zip(leaves, selected, strict=True))
  ])


def weight_noise(sigma: float, *, mask: MaskSpec = None) -> ObjectiveTransform:
  """Trains at randomly perturbed weights: ``J(theta + e)``, ``e ~ N(0, sigma^2 I)`` drawn afresh every step.

  The gradient is ``grad J`` **at the perturbed point** ``theta + e`` (the
  chain rule through ``theta + e`` is the identity) and is applied to the
  clean ``theta``. For small ``sigma``, ``E[J(theta + e)] ~ J(theta) +
  (sigma^2 / 2) tr(H)``: a penalty on the curvature of the loss in the
  weights. Evaluation (``ctx.train`` False) uses the clean weights. Put it
  innermost: penalties (``l2``, ...) see the clean weights (the config
  applies it first).

  Source: Goodfellow et al., Deep Learning, section 7.5 ("Noise Robustness");
  Graves 2011.

  Args:
    sigma: the noise's standard deviation (0: no noise).
    mask: which parameters get noise: ``None`` (kernels, not biases or
      scales), a pytree of bools, or a function of the params returning one.

  Examples:
    >>> objective = weight_noise(0.01)(classification_objective(model.apply))  # doctest: +SKIP
  """
  if not is_traced(sigma) and (
      isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0.0 <= sigma < math.inf):
    raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")

  def transform(objective: Objective) -> Objective:
    def noisy(params, batch, ctx):
      if not ctx.train or (not is_traced(sigma) and sigma == 0.0):
        return objective(params, batch, ctx)
      if ctx.rng is None:
        raise ValueError("weight_noise needs a random key in training (ctx.rng), got None")
      noise_key, rest = jax.random.split(ctx.rng)
      return objective(perturb(params, noise_key, sigma, mask), batch, ctx._replace(rng=rest))

    return noisy

  return transform
