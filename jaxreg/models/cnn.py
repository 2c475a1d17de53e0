"""A convolutional network, 1-D (signals) or 2-D (images), from conv blocks and dense layers (Flax Linen).

The lecture notes' main example of parameter sharing: a convolution applies
the same kernel at every position, so the layer is equivariant to shifts of
its input (away from the padded border) with far fewer parameters than a
dense layer.
"""

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax

from jaxreg.models.dropout import layer_rates, module_dropout
from jaxreg.models.initializers import Initializer
from jaxreg.models.normalization import NormalizedLayers


def as_feature_maps(x: jax.Array, dims: int, input_shape: Sequence[int] | None) -> jax.Array:
  """``x`` as ``(batch, *spatial, channels)`` with ``dims`` spatial axes.

  A flat ``(batch, d)`` input is reshaped to ``input_shape`` (e.g. ``(8, 8)``
  for digits) when given; an input with exactly ``dims`` axes after the batch
  gets one channel.

  Raises:
    ValueError: naming the shape, for inputs that cannot be read as ``dims``-D maps.
  """
  if input_shape is not None:
    size = 1
    for n in input_shape:
      size *= n
    if x[0].size != size:
      raise ValueError(f"input_shape={tuple(input_shape)} holds {size} values, but each example has {x[0].size}")
    x = x.reshape((x.shape[0], *input_shape))
  if x.ndim == dims + 1:
    x = x[..., None]
  if x.ndim != dims + 2:
    raise ValueError(
        f"a {dims}-D CNN takes examples shaped {'(length, channels)' if dims == 1 else '(height, width, channels)'} "
        f"(or without the channel axis), got examples of shape {tuple(x.shape[1:])}; set model.dims, or "
        "model.input_shape to read flat inputs"
    )
  return x


class CNN(NormalizedLayers, nn.Module):
  """Conv blocks ``Conv -> [BatchNorm] -> activation -> pool -> Dropout``, then dense layers and the output.

  ``h_l = dropout(pool(act(K_l * h_{l-1} + b_l)))`` with ``*`` the
  cross-correlation (``'SAME'`` zero padding, ``strides``), then
  ``flatten``, the dense layers of :class:`~jaxreg.models.MLP` and the
  output layer (logits). Each block's activation (before pooling) is sown
  into ``'intermediates'`` as ``hidden_conv_<l>``, each dense layer's as
  ``hidden_<l>``.

  Attributes:
    channels: the output channels of each conv block.
    num_outputs: width of the output layer.
    dims: 1 (signals) or 2 (images).
    kernel_size: the kernel's width along every spatial axis.
    strides: the convolution's stride along every spatial axis.
    pool: the max- or average-pooling window and stride after each block (1: none).
    pooling: ``'max'`` or ``'avg'``.
    dense_sizes: the widths of the dense layers after the conv blocks.
    activation: the nonlinearity.
    dropout_rate: dropout after each block and dense layer: one rate, or
      one per block and dense layer (:mod:`jaxreg.models.dropout`).
    input_dropout: dropout on the inputs (each value its own unit).
    dropout_kind: ``'bernoulli'`` or ``'gaussian'``.
    dropout_inference: ``'inverted'`` or ``'weight_scaling'``.
    mc_dropout: keep dropout sampling at evaluation (Monte-Carlo dropout).
    kernel_init: initializer of every kernel.
    normalization: ``'none'``, ``'batch_norm'`` or ``'mean_only'``, of each layer's pre-activations
      (:mod:`jaxreg.models.normalization`).
    batch_norm_momentum: decay of the running statistics.
    batch_norm_variance: ``'unbiased'`` (the notes' inference rule) or ``'biased'`` (Flax).
    batch_norm_axis_name: the ``pmap`` axis of the batch statistics, or ``None``.
    weight_norm: weight-normalize every conv and dense layer (per output channel or unit).
    weight_norm_scale_init: ``'norm'`` (``g = ||v||``) or ``'one'``.
    input_shape: the shape to read flat inputs as (e.g. ``(8, 8)``), or ``None``.

  Examples:
    >>> model = from_linen(CNN(channels=(8,), num_outputs=10, dims=2, input_shape=(8, 8)))
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 64)))
    >>> model.apply(variables, jnp.zeros((3, 64)), train=False)[0].shape
    (3, 10)
  """

  channels: Sequence[int]
  num_outputs: int
  dims: int = 1
  kernel_size: int = 5
  strides: int = 1
  pool: int = 1
  pooling: str = "max"
  dense_sizes: Sequence[int] = ()
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  dropout_rate: float | Sequence[float] = 0.0
  input_dropout: float = 0.0
  dropout_kind: str = "bernoulli"
  dropout_inference: str = "inverted"
  mc_dropout: bool = False
  kernel_init: Initializer = nn.initializers.lecun_normal()
  normalization: str = "none"
  batch_norm_momentum: float = 0.9
  batch_norm_variance: str = "unbiased"
  batch_norm_axis_name: str | None = None
  weight_norm: bool = False
  weight_norm_scale_init: str = "norm"
  input_shape: Sequence[int] | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    h = module_dropout(self, as_feature_maps(x, self.dims, self.input_shape), self.input_dropout, train)
    window = (self.pool,) * self.dims
    rates = layer_rates("dropout_rate", self.dropout_rate, len(self.channels) + len(self.dense_sizes))
    for level, width in enumerate(self.channels):
      conv = self.conv(width, (self.kernel_size,) * self.dims, (self.strides,) * self.dims, f"conv_{level}")
      h = self.activation(self.normalize(conv(h), f"conv_batch_norm_{level}", train))
      self.sow("intermediates", f"hidden_conv_{level}", h)
      if self.pool > 1:
        h = (nn.max_pool if self.pooling == "max" else nn.avg_pool)(h, window, strides=window, padding="SAME")
      h = module_dropout(self, h, rates[level], train)
    h = h.reshape((h.shape[0], -1))
    for level, width in enumerate(self.dense_sizes):
      h = self.activation(self.normalize(self.dense(width, f"dense_{level}")(h), f"batch_norm_{level}", train))
      self.sow("intermediates", f"hidden_{level}", h)
      h = module_dropout(self, h, rates[len(self.channels) + level], train)
    return self.dense(self.num_outputs, "output", output=True)(h)
