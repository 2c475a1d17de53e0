"""The dropout family of the lecture notes, shared by the MLP, the CNN and the recurrent models.

Each hidden unit ``h`` is multiplied by a random ``mu`` in training:

* ``'bernoulli'``: ``mu ~ Bernoulli(1 - p)`` (Srivastava et al. 2014). At test
  time the network's expected output is approximated by one pass with the
  unit scaled by its keep probability, the notes' **weight-scaling inference
  rule** (``inference='weight_scaling'``: ``h`` in training masked, ``(1 - p) h``
  at test time), or equivalently by **inverted dropout**
  (``inference='inverted'``, the default, as ``flax.linen.Dropout``: ``mu h / (1 - p)``
  in training, ``h`` unchanged at test time). Both give the same expected
  output in training as at test time, so a trained network's test outputs
  are the same under either rule when the weights are.
* ``'gaussian'``: ``mu ~ N(1, p / (1 - p))``, multiplicative Gaussian noise
  with the variance of inverted Bernoulli dropout's ``mu`` (Srivastava et al.
  2014, section 10); its mean is 1, so test time uses ``h`` unchanged under
  either rule.

**Monte-Carlo dropout** (Gal and Ghahramani 2016): with ``mc_dropout`` set
on a model, dropout stays on at evaluation, and the mean of the predicted
probabilities of ``k`` sampled sub-networks (:func:`mc_dropout_predict`)
approximates the ensemble the weight-scaling rule approximates in one pass.
"""

import jax
import jax.numpy as jnp

from jaxreg import _random
from jaxreg._validation import check_rate, is_traced

KINDS = ("bernoulli", "gaussian")
INFERENCE_RULES = ("inverted", "weight_scaling")


def check_options(kind: str, inference: str) -> None:
  """Refuses an unknown ``dropout_kind`` or ``dropout_inference``, naming the choices."""
  if kind not in KINDS:
    raise ValueError(f"dropout_kind must be one of {', '.join(KINDS)}, got {kind!r}")
  if inference not in INFERENCE_RULES:
    raise ValueError(f"dropout_inference must be one of {', '.join(INFERENCE_RULES)}, got {inference!r}")


def layer_rates(name: str, rate, count: int) -> tuple[float, ...]:
  """One rate per layer from a single rate (every layer) or a sequence of ``count`` rates, each in [0, 1)."""
  if isinstance(rate, (list, tuple)):
    if len(rate) != count:
      raise ValueError(f"{name} must be one rate or {count} rates (one per layer), got {len(rate)}: {list(rate)}")
    return tuple(check_rate(name, r) for r in rate)
  return (check_rate(name, rate),) * count


def drop(h: jax.Array, rate: float, key: jax.Array | None, *, kind: str = "bernoulli",
         inference: str = "inverted", sample: bool) -> jax.Array:
  """``h`` through dropout at ``rate``: a sampled sub-network if ``sample``, else the test-time rule.

  Args:
    h: the units (any shape; each value its own unit).
    rate: ``p``, the probability of dropping a unit (Bernoulli) or the
      variance ``p / (1 - p)`` of the Gaussian multiplier.
    key: the random key (needed when ``sample``).
    kind: ``'bernoulli'`` or ``'gaussian'``.
    inference: ``'inverted'`` or ``'weight_scaling'``.
    sample: training (or Monte-Carlo evaluation): draw ``mu``; else the
      deterministic test-time output.
  """
  if not is_traced(rate) and rate == 0.0:  # a traced rate (a sweep's member value) may be 0: drawn, nothing dropped
    return h
  if not sample:
    weight_scaling = kind == "bernoulli" and inference == "weight_scaling"
    return h * jnp.asarray(1.0 - rate, h.dtype) if weight_scaling else h
  if key is None:
    raise ValueError("dropout needs a random key when it samples (training, or mc_dropout at evaluation)")
  keep = 1.0 - rate
  if kind == "gaussian":
    return h * (1.0 + (rate / keep) ** 0.5 * _random.normal(key, h.shape, dtype=h.dtype))
  mask = _random.bernoulli(key, keep, h.shape)
  kept = h / jnp.asarray(keep, h.dtype) if inference == "inverted" else h  # as flax.linen.Dropout
  return jnp.where(mask, kept, jnp.zeros((), h.dtype))


def module_dropout(module, h: jax.Array, rate: float, train: bool) -> jax.Array:
  """:func:`drop` inside a Linen module with ``dropout_kind``, ``dropout_inference`` and ``mc_dropout``."""
  sample = train or module.mc_dropout
  key = module.make_rng("dropout") if (sample and (is_traced(rate) or rate > 0)) else None
  return drop(h, rate, key, kind=module.dropout_kind, inference=module.dropout_inference, sample=sample)


def mc_dropout_predict(apply, variables, x: jax.Array, key: jax.Array, samples: int) -> jax.Array:
  """The mean of ``samples`` sampled sub-networks' class probabilities (Monte-Carlo dropout).

  Args:
    apply: the ``apply`` of a model built with ``mc_dropout=True`` (it takes
      the same variables as the model without it).
    variables: the trained variables.
    x: the inputs.
    key: one key; each sample gets ``fold_in(key, i)``.
    samples: ``k``, the number of sub-networks.

  Returns:
    ``mean_i softmax(f_i(x))``, shaped ``(batch, classes)``.

  Examples:
    >>> sampling = make_mlp(num_outputs=10, dropout_rate=0.5, mc_dropout=True)  # doctest: +SKIP
    >>> probs = mc_dropout_predict(sampling.apply, variables, x, jax.random.key(0), 32)  # doctest: +SKIP
  """
  if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
    raise ValueError(f"samples must be an integer >= 1, got {samples!r}")

  def one(index):
    logits, _ = apply(variables, x, train=False, rng=jax.random.fold_in(key, index))
    return jax.nn.softmax(logits)

  return jnp.mean(jax.lax.map(one, jnp.arange(samples)), axis=0)
