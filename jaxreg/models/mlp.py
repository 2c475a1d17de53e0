"""Multilayer perceptron (Flax Linen)."""

from typing import Callable, Sequence

import flax.linen as nn
import jax

from jaxreg.errors import ConfigError
from jaxreg.models.dropout import layer_rates, module_dropout
from jaxreg.models.initializers import Initializer
from jaxreg.models.normalization import NormalizedLayers

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": nn.tanh,
    "sigmoid": nn.sigmoid,
    "gelu": nn.gelu,
    "elu": nn.elu,
    "leaky_relu": nn.leaky_relu,
    "softplus": nn.softplus,
    "identity": lambda x: x,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """Returns the activation function called ``name`` (``'relu'``, ``'tanh'``, ...).

  Examples:
    >>> get_activation('relu')(jnp.array([-1.0, 2.0])).tolist()
    [0.0, 2.0]
  """
  try:
    return _ACTIVATIONS[name]
  except KeyError:
    raise ConfigError(
        f"unknown activation {name!r}; valid names: {', '.join(sorted(_ACTIVATIONS))}"
    ) from None


class MLP(NormalizedLayers, nn.Module):
  """A fully connected network ``Dense -> activation -> Dropout`` per hidden layer.

  ``h_0 = flatten(x)``, ``h_l = dropout(act(W_l h_{l-1} + b_l))``,
  ``outputs = W_L h_{L-1} + b_L`` (logits; no softmax).

  Dropout (:mod:`jaxreg.models.dropout`) is by default inverted Bernoulli
  dropout (as ``flax.linen.Dropout``): in training each unit is kept with
  probability ``1 - p`` and scaled by ``1 / (1 - p)``, so inference uses the
  weights unchanged; ``dropout_inference='weight_scaling'`` is the lecture
  notes' form instead (no scaling in training, ``(1 - p) h`` at test time),
  ``dropout_kind='gaussian'`` multiplies by ``N(1, p / (1 - p))``. The
  inputs have their own rate (``input_dropout``; the notes keep inputs with
  probability 0.8 and hidden units with 0.5), and each hidden layer may have
  its own.

  With ``normalization='batch_norm'``, each hidden layer is ``Dense -> BatchNorm
  -> activation -> Dropout`` (:class:`~jaxreg.models.normalization.BatchNorm`,
  the lecture notes' form: Wang 2023; Ioffe and Szegedy 2015): in training
  each unit's pre-activation is normalized with the mini-batch mean and
  variance, ``y = gamma * (a - mu_B) / sqrt(var_B + eps) + beta`` with
  ``eps = 1e-5`` (the notes' delta), and the running averages
  ``m <- momentum * m + (1 - momentum) * mu_B`` (likewise the variance,
  unbiased ``m / (m - 1) var_B`` by default, ``batch_norm_variance='biased'``
  as Flax) kept in the ``'batch_stats'`` collection are used at test time.
  ``'mean_only'`` subtracts the batch mean only. ``weight_norm`` makes every
  dense layer ``w = g v / ||v||``. Under ``pmap`` set
  ``batch_norm_axis_name`` to the mapped axis so the statistics are the
  global batch's, not each device's shard's; on the sharded path they are
  global without it.

  Each hidden activation (after the nonlinearity, before dropout) is sown into
  the ``'intermediates'`` collection as ``hidden_<l>`` for activity penalties.

  Attributes:
    hidden_sizes: widths of the hidden layers.
    num_outputs: width of the output layer (number of classes, or targets).
    activation: nonlinearity of the hidden layers.
    dropout_rate: probability of dropping a hidden unit in training: one for
      every hidden layer, or a sequence with one per hidden layer.
    input_dropout: probability of dropping an input in training.
    dropout_kind: ``'bernoulli'`` or ``'gaussian'``.
    dropout_inference: ``'inverted'`` or ``'weight_scaling'``.
    mc_dropout: keep dropout sampling at evaluation (Monte-Carlo dropout).
    kernel_init: initializer of every kernel.
    normalization: ``'none'``, ``'batch_norm'`` or ``'mean_only'``, of each hidden layer's pre-activations.
    batch_norm_momentum: decay of the running mean and variance.
    batch_norm_variance: ``'unbiased'`` (the notes' inference rule) or ``'biased'`` (Flax).
    batch_norm_axis_name: the ``pmap`` axis to average the batch statistics over, or ``None``.
    weight_norm: weight-normalize every dense layer.
    weight_norm_scale_init: ``'norm'`` (``g = ||v||``) or ``'one'``.

  Examples:
    >>> module = MLP(hidden_sizes=(32,), num_outputs=10, dropout_rate=0.1)
    >>> variables = module.init(jax.random.key(0), jnp.zeros((1, 64)), train=False)
    >>> module.apply(variables, jnp.zeros((2, 64)), train=False).shape
    (2, 10)
  """

  hidden_sizes: Sequence[int]
  num_outputs: int
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

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    h = module_dropout(self, x.reshape((x.shape[0], -1)), self.input_dropout, train)
    rates = layer_rates("dropout_rate", self.dropout_rate, len(self.hidden_sizes))
    for layer, width in enumerate(self.hidden_sizes):
      h = self.normalize(self.dense(width, f"dense_{layer}")(h), f"batch_norm_{layer}", train)
      h = self.activation(h)
      self.sow("intermediates", f"hidden_{layer}", h)
      h = module_dropout(self, h, rates[layer], train)
    return self.dense(self.num_outputs, "output", output=True)(h)
