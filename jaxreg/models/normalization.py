"""Normalization layers as the lecture notes define them: batch norm, mean-only batch norm, weight norm.

* :class:`BatchNorm`: in training each feature is normalized with the
  mini-batch mean ``mu_B`` and variance ``var_B = mean((x - mu_B)^2)``,
  ``y = gamma (x - mu_B) / sqrt(var_B + eps) + beta``; at inference with the
  running averages. The notes' inference rule uses the **unbiased** variance
  ``m / (m - 1) var_B`` of the ``m`` values per feature (``variance='unbiased'``,
  the default); Flax's ``nn.BatchNorm`` keeps the biased one
  (``variance='biased'`` is equal to it). Under ``pmap`` the statistics are
  the global batch's (``axis_name``); inference is
  ``y = gamma / sqrt(Var + eps) x + (beta - gamma E[x] / sqrt(Var + eps))``,
  which :func:`fold_batch_norm` folds into the preceding layer.
* :class:`MeanOnlyBatchNorm`: ``y = x - mu_B + beta`` (Salimans and Kingma
  2016), a running mean for inference.
* :class:`WeightNormDense`, :class:`WeightNormConv`: ``w = g v / ||v||`` per
  output unit, with ``g`` initialized to ``||v||`` (the initial function is
  the plain layer's; Flax's ``WeightNorm`` starts at ``g = 1``:
  ``scale_init='one'``), and the data-dependent initialization
  (:func:`weight_norm_data_init`: one forward pass sets ``g`` and the bias so
  every unit's pre-activation has zero mean and unit variance on a batch).

Sources: Ioffe and Szegedy 2015; Salimans and Kingma 2016 (weight
normalization, mean-only batch normalization); Goodfellow et al., Deep
Learning, section 8.7.1.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

VARIANCE_FORMS = ("unbiased", "biased")
SCALE_INITS = ("norm", "one")
WEIGHT_NORM_INIT = "weight_norm_init"  # the collection that, made mutable, runs the data-dependent initialization


def batch_moments(x: jax.Array, axis_name: str | None, mask: jax.Array | None = None
                  ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per-feature mean, biased variance and count ``m`` over every axis but the last (and the ``pmap`` axis).

  ``mask`` (shaped as ``x`` without its last axis, 1 for a real position and
  0 for padding, e.g. the steps after a sequence's end) leaves positions out.
  """
  axes = tuple(range(x.ndim - 1))
  weights = jnp.ones(x.shape[:-1], x.dtype) if mask is None else mask.astype(x.dtype)
  count = jnp.sum(weights)
  sums = jnp.sum(x * weights[..., None], axes), jnp.sum(jnp.square(x) * weights[..., None], axes)
  if axis_name is not None:
    sums, count = jax.lax.psum((sums, count), axis_name)
  safe = jnp.maximum(count, 1.0)
  mean, mean_of_squares = sums[0] / safe, sums[1] / safe
  return mean, jnp.maximum(mean_of_squares - jnp.square(mean), 0.0), count


class BatchNorm(nn.Module):
  """Batch normalization over every axis but the last; the running variance unbiased by default (the notes').

  Attributes:
    momentum: decay of the running averages, ``r <- momentum r + (1 - momentum) s``.
    epsilon: the notes' ``delta`` inside the square root.
    variance: ``'unbiased'`` (``m / (m - 1) var_B`` enters the running
      variance) or ``'biased'`` (``var_B``, as ``flax.linen.BatchNorm``).
    axis_name: the ``pmap`` axis to average the statistics over, or ``None``.

    param_dtype: the dtype of the parameters and statistics.

  Variables: ``params`` ``scale`` (gamma) and ``bias`` (beta);
  ``batch_stats`` ``mean`` and ``var``: the names Flax's layer uses.

  Examples:
    >>> y, updates = BatchNorm().apply(variables, x, train=True, mutable=['batch_stats'])  # doctest: +SKIP
  """

  momentum: float = 0.9
  epsilon: float = 1e-5
  variance: str = "unbiased"
  axis_name: str | None = None
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    features, dtype = x.shape[-1], self.param_dtype
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), dtype)
    running_var = self.variable("batch_stats", "var", jnp.ones, (features,), dtype)
    gamma = self.param("scale", nn.initializers.ones, (features,), dtype)
    beta = self.param("bias", nn.initializers.zeros, (features,), dtype)
    if train:
      mean, var, count = batch_moments(x.astype(jnp.promote_types(x.dtype, dtype)), self.axis_name, mask)
      if not self.is_initializing():
        kept = var * count / jnp.maximum(count - 1.0, 1.0) if self.variance == "unbiased" else var
        running_mean.value = self.momentum * running_mean.value + (1.0 - self.momentum) * mean
        running_var.value = self.momentum * running_var.value + (1.0 - self.momentum) * kept
    else:
      mean, var = running_mean.value, running_var.value
    scale = gamma * jax.lax.rsqrt(var + self.epsilon)
    return ((x - mean) * scale + beta).astype(x.dtype)


class MeanOnlyBatchNorm(nn.Module):
  """``y = x - mu_B + beta``: the batch mean subtracted, a learned bias added; the running mean at inference.

  Attributes:
    momentum: decay of the running mean.
    axis_name: the ``pmap`` axis to average the mean over, or ``None``.

  Examples:
    >>> norm = MeanOnlyBatchNorm()
    >>> variables = norm.init(jax.random.key(0), jnp.zeros((4, 3)), train=False)
    >>> y, state = norm.apply(variables, jnp.arange(12.0).reshape(4, 3), train=True, mutable=['batch_stats'])
    >>> y.mean(0).tolist()  # the batch mean removed, the bias (0 at first) added
    [0.0, 0.0, 0.0]
  """

  momentum: float = 0.9
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, mask: jax.Array | None = None) -> jax.Array:
    features = x.shape[-1]
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    beta = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    if train:
      mean, _, _ = batch_moments(x.astype(jnp.float32), self.axis_name, mask)
      if not self.is_initializing():
        running_mean.value = self.momentum * running_mean.value + (1.0 - self.momentum) * mean
    else:
      mean = running_mean.value
    return (x - mean + beta).astype(x.dtype)


def _column_norms(v: jax.Array) -> jax.Array:
  """``||v||`` per output unit (the last axis), over every other axis."""
  return jnp.sqrt(jnp.sum(jnp.square(v), axis=tuple(range(v.ndim - 1))))


class _WeightNorm(nn.Module):
  """The shared part of the weight-normalized layers: ``w = g v / ||v||``, and the data-dependent init.

  A layer defines ``kernel_shape(x)`` (the shape of ``v``) and ``product(x, w)``.
  """

  features: int
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  scale_init: str = "norm"
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    v = self.param("kernel", self.kernel_init, self.kernel_shape(x), self.param_dtype)
    norms = _column_norms(v)
    first = (lambda key, shape, dtype: norms) if self.scale_init == "norm" else nn.initializers.ones
    g = self.param("scale", first, (self.features,), self.param_dtype)
    b = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype) if self.use_bias else None
    if self.is_mutable_collection(WEIGHT_NORM_INIT) and not self.is_initializing():
      g, b = self._data_init(x, v / norms)
    y = self.product(x, v * (g / norms))
    return y if b is None else y + b

  def _data_init(self, x: jax.Array, direction: jax.Array):
    """Sets ``g = 1 / std(t)`` and ``b = -mean(t) / std(t)`` for ``t = x . v / ||v||`` on this batch."""
    t = self.product(x, direction)
    mean, var, _ = batch_moments(t, None)
    std = jnp.sqrt(var + 1e-6)
    self.put_variable("params", "scale", 1.0 / std)
    self.sow(WEIGHT_NORM_INIT, "initialized", jnp.ones(()))
    if not self.use_bias:
      return 1.0 / std, None
    self.put_variable("params", "bias", -mean / std)
    return 1.0 / std, -mean / std


class WeightNormDense(_WeightNorm):
  """A dense layer with weight normalization: ``y = x (g v / ||v||) + b``, ``||v||`` per output unit.

  Attributes:
    features: output units.
    use_bias: add ``b``.
    kernel_init: the initializer of ``v``.
    scale_init: ``'norm'`` (``g = ||v||``: the plain layer's function at
      init) or ``'one'`` (``g = 1``, as ``flax.linen.WeightNorm``).
    param_dtype: the dtype of ``v``, ``g`` and ``b``.

  Examples:
    >>> dense = WeightNormDense(features=3)
    >>> params = dense.init(jax.random.key(0), jnp.zeros((1, 5)))['params']
    >>> w = params['scale'] * params['kernel'] / jnp.linalg.norm(params['kernel'], axis=0)
    >>> bool(jnp.allclose(jnp.linalg.norm(w, axis=0), params['scale']))  # ||w|| = g per unit
    True
  """

  def kernel_shape(self, x):
    return (x.shape[-1], self.features)

  def product(self, x, w):
    return x @ w


class WeightNormConv(_WeightNorm):
  """A convolution with weight normalization per output channel (``'SAME'`` padding), as :class:`WeightNormDense`.

  Attributes:
    kernel_size: the kernel's extent along each spatial axis.
    strides: the stride along each spatial axis.

  Examples:
    >>> conv = WeightNormConv(features=4, kernel_size=(3, 3), strides=(1, 1))
    >>> variables = conv.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
    >>> conv.apply(variables, jnp.ones((2, 8, 8, 1))).shape
    (2, 8, 8, 4)
  """

  kernel_size: Sequence[int] = (3,)
  strides: Sequence[int] = (1,)

  def kernel_shape(self, x):
    return (*self.kernel_size, x.shape[-1], self.features)

  def product(self, x, w):
    spatial = len(self.kernel_size)
    names = ("NWC", "WIO", "NWC") if spatial == 1 else ("NHWC", "HWIO", "NHWC")
    return jax.lax.conv_general_dilated(x, w, tuple(self.strides), "SAME", dimension_numbers=names)


NORMALIZATIONS = ("none", "batch_norm", "mean_only")


class NormalizedLayers:
  """Layer builders for the Linen models with the normalization options (MLP, CNN): a mixin.

  The model has the fields ``normalization`` (``'none'``, ``'batch_norm'``,
  ``'mean_only'``), ``batch_norm_momentum``, ``batch_norm_variance``,
  ``batch_norm_axis_name``, ``weight_norm``, ``weight_norm_scale_init`` and
  ``kernel_init``. A normalized layer has no bias: the normalization's
  ``beta`` takes its place.
  """

  def dense(self, features: int, name: str, *, output: bool = False) -> nn.Module:
    use_bias = output or self.normalization == "none"
    if self.weight_norm:
      return WeightNormDense(features, use_bias=use_bias, kernel_init=self.kernel_init,
                             scale_init=self.weight_norm_scale_init, name=name)
    return nn.Dense(features, use_bias=use_bias, kernel_init=self.kernel_init, name=name)

  def conv(self, features: int, kernel_size: tuple, strides: tuple, name: str) -> nn.Module:
    use_bias = self.normalization == "none"
    if self.weight_norm:
      return WeightNormConv(features, use_bias=use_bias, kernel_init=self.kernel_init,
                            scale_init=self.weight_norm_scale_init, kernel_size=kernel_size, strides=strides,
                            name=name)
    return nn.Conv(features, kernel_size, strides=strides, padding="SAME", use_bias=use_bias,
                   kernel_init=self.kernel_init, name=name)

  def normalize(self, h: jax.Array, name: str, train: bool, mask: jax.Array | None = None) -> jax.Array:
    if self.normalization == "batch_norm":
      return BatchNorm(momentum=self.batch_norm_momentum, variance=self.batch_norm_variance,
                       axis_name=self.batch_norm_axis_name, name=name)(h, train=train, mask=mask)
    if self.normalization == "mean_only":
      return MeanOnlyBatchNorm(momentum=self.batch_norm_momentum, axis_name=self.batch_norm_axis_name,
                               name=name)(h, train=train, mask=mask)
    return h


def check_normalization(normalization: str, batch_norm: bool, variance: str, scale_init: str) -> str:
  """The model's normalization from ``normalization`` and the older switch ``batch_norm``; ``ValueError`` naming the argument."""
  if normalization not in NORMALIZATIONS:
    raise ValueError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
  if batch_norm and normalization not in ("none", "batch_norm"):
    raise ValueError(f"batch_norm=True asks for batch norm but normalization={normalization!r}; set one of them")
  if variance not in VARIANCE_FORMS:
    raise ValueError(f"batch_norm_variance must be one of {', '.join(VARIANCE_FORMS)}, got {variance!r}")
  if scale_init not in SCALE_INITS:
    raise ValueError(f"weight_norm_scale_init must be one of {', '.join(SCALE_INITS)}, got {scale_init!r}")
  return "batch_norm" if batch_norm else normalization


def weight_norm_data_init(model, variables: dict, x: jax.Array) -> dict:
  """The data-dependent initialization of Salimans and Kingma (2016) for every weight-normalized layer.

  One forward pass over ``x`` (evaluation mode): each layer, in order, sets
  ``g`` and its bias so its pre-activations on ``x`` have zero mean and
  unit variance, and passes the normalized output on, so the next layer
  initializes on what it will see.

  Args:
    model: the model's ``ModelFns`` (from :func:`~jaxreg.models.make_model`
      or :func:`~jaxreg.models.from_linen`) or its Linen module.
    variables: the model's variables (``{'params': ..., ...}``).
    x: a batch of inputs.

  Returns:
    The variables with the new ``params``.

  Examples:
    >>> variables = weight_norm_data_init(model, variables, x_train[:512])  # doctest: +SKIP
  """
  module = getattr(model, "module", model)
  if not isinstance(module, nn.Module):
    raise TypeError(f"model must be a Linen module or a ModelFns made from one (from_linen), got {model!r}")
  _, updates = module.apply(variables, x, train=False, mutable=["params", WEIGHT_NORM_INIT])
  if WEIGHT_NORM_INIT not in updates:
    raise ValueError("the model has no weight-normalized layer to initialize (build it with weight_norm=True)")
  return {**variables, "params": updates["params"]}


def fold_batch_norm(params: dict, batch_stats: dict, pairs: Sequence[tuple[str, str]], *,
                    epsilon: float = 1e-5) -> dict:
  """Folds each batch norm into the layer before it, for inference: the notes' affine form.

  ``y = gamma / sqrt(Var + eps) (x W) + (beta - gamma E / sqrt(Var + eps))``, so
  ``W' = W gamma / sqrt(Var + eps)`` (per output unit) and
  ``b' = beta - gamma E / sqrt(Var + eps)``; a mean-only batch norm gives
  ``W' = W`` and ``b' = beta - E``. The layer's kernel (its ``kernel``, or a
  weight-normalized layer's ``g v / ||v||``) is folded as a plain kernel.

  Args:
    params: the model's ``params``.
    batch_stats: its ``batch_stats``.
    pairs: ``(layer, norm)`` names, e.g. ``[('dense_0', 'batch_norm_0')]``.
    epsilon: the batch norm's ``eps``.

  Returns:
    ``params`` of the same model built without normalization (and without
    weight normalization): each layer a plain ``kernel`` and ``bias``.

  Examples:
    >>> model = make_mlp(num_outputs=10, hidden_sizes=(16,), batch_norm=True)
    >>> v = model.init(jax.random.key(0), jnp.zeros((1, 64)))
    >>> folded = fold_batch_norm(v['params'], v['batch_stats'], [('dense_0', 'batch_norm_0')])
    >>> sorted(folded)  # the plain MLP's parameters, the normalization folded into dense_0
    ['dense_0', 'output']
  """
  folded = {k: v for k, v in params.items()}
  for layer, norm in pairs:
    kernel = params[layer]["kernel"]
    if "scale" in params[layer]:  # weight normalized
      kernel = kernel * (params[layer]["scale"] / _column_norms(kernel))
    mean = batch_stats[norm]["mean"]
    if "var" in batch_stats[norm]:
      scale = params[norm]["scale"] * jax.lax.rsqrt(batch_stats[norm]["var"] + epsilon)
      folded[layer] = {"kernel": kernel * scale, "bias": params[norm]["bias"] - mean * scale}
    else:
      folded[layer] = {"kernel": kernel, "bias": params[norm]["bias"] - mean}
    del folded[norm]
  return folded


__all__ = [
    "NORMALIZATIONS",
    "BatchNorm",
    "MeanOnlyBatchNorm",
    "WeightNormConv",
    "WeightNormDense",
    "fold_batch_norm",
    "weight_norm_data_init",
]
