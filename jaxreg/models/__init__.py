"""Models as ``ModelFns(init, apply)`` pairs, and the ``make_model`` factory."""

import inspect
from collections.abc import Mapping, Sequence

import flax.linen as nn

from jaxreg._imports import import_object, is_import_path
from jaxreg._registry import Registry
from jaxreg._validation import check_kwargs, check_layer_sizes, check_positive_int, check_rate
from jaxreg.errors import ConfigError
from jaxreg.models.base import ModelFns, from_linen
from jaxreg.models.nnx_adapter import from_nnx
from jaxreg.models.precision import with_compute_dtype
from jaxreg.models.cnn import CNN
from jaxreg.models.dropout import check_options as check_dropout_options
from jaxreg.models.dropout import layer_rates, mc_dropout_predict
from jaxreg.models.initializers import get_initializer, initializer_names
from jaxreg.models.mlp import MLP, get_activation
from jaxreg.models.normalization import (
    BatchNorm,
    MeanOnlyBatchNorm,
    WeightNormConv,
    WeightNormDense,
    check_normalization,
    fold_batch_norm,
    weight_norm_data_init,
)
from jaxreg.models.multitask import MultiTaskMLP
from jaxreg.models.recurrent import RecurrentLayer, SequenceModel, validate_sequence_model
from jaxreg.models.tangent_distance import (
    TangentDistanceModel,
    fit_tangent_distance,
    predict_tangent_distance,
    tangent_distances,
)

MODEL_NAMES = ("mlp", "multitask_mlp", "rnn", "lstm", "gru", "cnn")


def _dropout_fields(rate, layers: int, input_dropout, kind: str, inference: str, mc_dropout) -> dict:
  """A model's dropout attributes, checked: one rate per layer, the input rate, kind, rule and MC sampling."""
  check_dropout_options(kind, inference)
  return {"dropout_rate": layer_rates("dropout_rate", rate, layers),
          "input_dropout": check_rate("input_dropout", input_dropout),
          "dropout_kind": kind, "dropout_inference": inference, "mc_dropout": bool(mc_dropout)}


def _normalization_fields(normalization, batch_norm, momentum, variance, axis_name, weight_norm, scale_init) -> dict:
  """A model's normalization attributes, checked (:mod:`jaxreg.models.normalization`)."""
  return {"normalization": check_normalization(normalization, bool(batch_norm), variance, scale_init),
          "batch_norm_momentum": check_rate("batch_norm_momentum", momentum), "batch_norm_variance": variance,
          "batch_norm_axis_name": axis_name, "weight_norm": bool(weight_norm), "weight_norm_scale_init": scale_init}


def make_mlp(
    *,
    num_outputs: int,
    hidden_sizes: Sequence[int] = (256, 256),
    activation: str = "relu",
    dropout_rate: float | Sequence[float] = 0.0,
    input_dropout: float = 0.0,
    dropout_kind: str = "bernoulli",
    dropout_inference: str = "inverted",
    mc_dropout: bool = False,
    kernel_init: str | Mapping[str, object] = "lecun_normal",
    batch_norm: bool = False,
    batch_norm_momentum: float = 0.9,
    batch_norm_axis_name: str | None = None,
    normalization: str = "none",
    batch_norm_variance: str = "unbiased",
    weight_norm: bool = False,
    weight_norm_scale_init: str = "norm",
) -> ModelFns:
  """Builds an :class:`MLP` as ``ModelFns``.

  Args:
    num_outputs: width of the output layer (number of classes).
    hidden_sizes: widths of the hidden layers, e.g. ``(256, 256)``.
    activation: name of the hidden nonlinearity (``'relu'``, ``'tanh'``, ...).
    dropout_rate: probability of dropping a hidden unit in training, in
      [0, 1): one for every hidden layer, or one per hidden layer.
    input_dropout: probability of dropping an input (the notes: 0.2, keep 0.8).
    dropout_kind, dropout_inference, mc_dropout: see :mod:`jaxreg.models.dropout`.
    kernel_init: the kernel initializer: a name (see ``initializer_names()``)
      or ``{'name': ..., <arguments>}``, e.g. ``{'name': 'sparse', 'k': 15}``.
    batch_norm: batch-normalize each hidden layer's pre-activations (its
      dense layer then has no bias; ``beta`` takes its place): the same as
      ``normalization='batch_norm'``.
    batch_norm_momentum: decay of the running statistics, in [0, 1).
    batch_norm_axis_name: the ``pmap`` axis name to synchronize batch
      statistics over; :func:`make_model` sets it from the run's placement,
      configs leave it out.
    normalization: ``'none'``, ``'batch_norm'`` or ``'mean_only'``
      (:mod:`jaxreg.models.normalization`).
    batch_norm_variance: the running variance: ``'unbiased'`` (``m/(m-1)``,
      the notes' inference rule) or ``'biased'`` (Flax's).
    weight_norm: every dense layer ``w = g v / ||v||`` per output unit.
    weight_norm_scale_init: ``g``'s start: ``'norm'`` (``||v||``: the plain
      layer's function) or ``'one'`` (Flax's ``WeightNorm``).

  Examples:
    >>> model = make_mlp(num_outputs=10, hidden_sizes=(32,))
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 64)))
    >>> logits, _ = model.apply(variables, jnp.zeros((5, 64)), train=False)
    >>> logits.shape
    (5, 10)
  """
  hidden_sizes = check_layer_sizes("hidden_sizes", hidden_sizes)
  if num_outputs <= 0:
    raise ValueError(f"num_outputs must be positive, got {num_outputs!r}")
  module = MLP(
      hidden_sizes=hidden_sizes,
      num_outputs=int(num_outputs),
      activation=get_activation(activation),
      **_dropout_fields(dropout_rate, len(hidden_sizes), input_dropout, dropout_kind, dropout_inference, mc_dropout),
      kernel_init=get_initializer(kernel_init),
      **_normalization_fields(normalization, batch_norm, batch_norm_momentum, batch_norm_variance,
                              batch_norm_axis_name, weight_norm, weight_norm_scale_init),
  )
  return from_linen(module)


def make_multitask_mlp(
    *,
    num_outputs: int,
    tasks: Mapping[str, float],
    trunk_sizes: Sequence[int] = (256, 256),
    activation: str = "relu",
    dropout_rate: float = 0.0,
    kernel_init: str | Mapping[str, object] = "lecun_normal",
) -> ModelFns:
  """Builds a :class:`MultiTaskMLP`: a shared trunk and one head per task of ``tasks``.

  Args:
    num_outputs: the dataset's number of classes (the ``'label'`` head's width).
    tasks: ``{task: loss weight}`` with task names from :mod:`jaxreg.data.tasks`
      (``'label'``, ``'parity'``, ``'above_4'``); the weights are the
      objective's (:func:`jaxreg.train.multitask_objective`).
    trunk_sizes: widths of the shared hidden layers.
    activation: name of the trunk's nonlinearity.
    dropout_rate: dropout on the trunk's hidden units, in [0, 1).
    kernel_init: the kernel initializer (a name or a mapping).

  Examples:
    >>> model = make_multitask_mlp(num_outputs=10, tasks={'label': 1.0, 'parity': 0.5}, trunk_sizes=(32,))
    >>> outputs, _ = model.apply(model.init(jax.random.key(0), jnp.zeros((1, 64))), jnp.zeros((5, 64)), train=False)
    >>> {k: v.shape for k, v in outputs.items()}
    {'label': (5, 10), 'parity': (5, 2)}
  """
  from jaxreg.data.tasks import get_task

  if not isinstance(tasks, Mapping) or not tasks:
    raise ValueError(f"tasks must map task names to loss weights, e.g. {{'label': 1.0, 'parity': 0.5}}, got {tasks!r}")
  heads = {name: get_task(name).num_classes or int(num_outputs) for name in tasks}
  module = MultiTaskMLP(
      trunk_sizes=check_layer_sizes("trunk_sizes", trunk_sizes),
      heads=heads,
      activation=get_activation(activation),
      dropout_rate=check_rate("dropout_rate", dropout_rate),
      kernel_init=get_initializer(kernel_init),
  )
  return from_linen(module)


def make_sequence_model(
    *,
    cell: str,
    num_outputs: int,
    hidden_sizes: Sequence[int] = (128,),
    bidirectional: bool = False,
    output: str = "last",
    dropout_rate: float | Sequence[float] = 0.0,
    input_dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    dropout_kind: str = "bernoulli",
    dropout_inference: str = "inverted",
    mc_dropout: bool = False,
    forget_bias: float = 1.0,
    kernel_init: str | Mapping[str, object] = "lecun_normal",
    recurrent_init: str | Mapping[str, object] = "orthogonal",
    sequence_length: int | None = None,
    unroll: int = 1,
    normalization: str = "none",
    batch_norm_momentum: float = 0.9,
    batch_norm_variance: str = "unbiased",
    batch_norm_axis_name: str | None = None,
) -> ModelFns:
  """Builds a recurrent :class:`SequenceModel` (``cell`` = ``'rnn'``, ``'lstm'`` or ``'gru'``) as ``ModelFns``.

  Args:
    cell: the recurrent cell.
    num_outputs: the output layer's width (number of classes or targets).
    hidden_sizes: the stacked layers' widths.
    bidirectional: add a backward layer at each level.
    output: ``'last'`` or ``'mean'`` (many-to-one) or ``'sequence'`` (many-to-many).
    dropout_rate: dropout between layers, in [0, 1): one rate, or one per layer.
    input_dropout: variational dropout on the inputs (one mask per sequence).
    recurrent_dropout: variational dropout on the recurrent state.
    dropout_kind, dropout_inference, mc_dropout: see :mod:`jaxreg.models.dropout`
      (kind and inference rule apply between layers).
    forget_bias: the LSTM forget gate's initial bias.
    kernel_init: initializer of the input kernels (a name or a mapping).
    recurrent_init: initializer of each gate's recurrent matrix (default orthogonal).
    sequence_length: read flat inputs ``(batch, d)`` as this many steps.
    unroll: time steps per compiled loop iteration (1 measured fastest on a CPU, see bench/rnn.py --unroll).
    normalization: ``'none'``, ``'batch_norm'`` or ``'mean_only'`` between stacked layers (statistics over
      the batch and the real time steps; :mod:`jaxreg.models.normalization`).
    batch_norm_momentum, batch_norm_variance: as for :func:`make_mlp`.
    batch_norm_axis_name: set by :func:`make_model` from the run's placement.

  Examples:
    >>> model = make_sequence_model(cell='gru', num_outputs=10, hidden_sizes=(32,))
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 40)))
    >>> model.apply(variables, jnp.zeros((5, 40)), train=False)[0].shape
    (5, 10)
  """
  hidden_sizes = tuple(hidden_sizes)
  validate_sequence_model(
      cell, hidden_sizes, output,
      {"input_dropout": input_dropout, "recurrent_dropout": recurrent_dropout},
      unroll,
  )
  if sequence_length is not None and (isinstance(sequence_length, bool) or not isinstance(sequence_length, int) or sequence_length < 1):
    raise ValueError(f"sequence_length must be a positive integer, got {sequence_length!r}")
  module = SequenceModel(
      cell=cell,
      hidden_sizes=tuple(int(w) for w in hidden_sizes),
      num_outputs=int(num_outputs),
      bidirectional=bool(bidirectional),
      output=output,
      **_dropout_fields(dropout_rate, len(hidden_sizes), input_dropout, dropout_kind, dropout_inference, mc_dropout),
      recurrent_dropout=float(recurrent_dropout),
      forget_bias=float(forget_bias),
      kernel_init=get_initializer(kernel_init),
      recurrent_init=get_initializer(recurrent_init),
      sequence_length=sequence_length,
      unroll=unroll,
      normalization=check_normalization(normalization, False, batch_norm_variance, "norm"),
      batch_norm_momentum=check_rate("batch_norm_momentum", batch_norm_momentum),
      batch_norm_variance=batch_norm_variance,
      batch_norm_axis_name=batch_norm_axis_name,
  )
  return from_linen(module)


def _recurrent(cell: str):
  def factory(*, num_outputs: int, **kwargs) -> ModelFns:
    return make_sequence_model(cell=cell, num_outputs=num_outputs, **kwargs)

  factory.__signature__ = inspect.signature(make_sequence_model).replace(
      parameters=[p for n, p in inspect.signature(make_sequence_model).parameters.items() if n != "cell"]
  )
  factory.__name__ = f"make_{cell}"
  return factory


def make_cnn(
    *,
    num_outputs: int,
    channels: Sequence[int] = (32, 32),
    dims: int = 1,
    kernel_size: int = 5,
    strides: int = 1,
    pool: int = 2,
    pooling: str = "max",
    dense_sizes: Sequence[int] = (),
    activation: str = "relu",
    dropout_rate: float | Sequence[float] = 0.0,
    input_dropout: float = 0.0,
    dropout_kind: str = "bernoulli",
    dropout_inference: str = "inverted",
    mc_dropout: bool = False,
    kernel_init: str | Mapping[str, object] = "lecun_normal",
    batch_norm: bool = False,
    batch_norm_momentum: float = 0.9,
    batch_norm_axis_name: str | None = None,
    input_shape: Sequence[int] | None = None,
    normalization: str = "none",
    batch_norm_variance: str = "unbiased",
    weight_norm: bool = False,
    weight_norm_scale_init: str = "norm",
) -> ModelFns:
  """Builds a :class:`CNN` (1-D for signals, 2-D for images) as ``ModelFns``.

  Args:
    num_outputs: width of the output layer (number of classes).
    channels: output channels of each conv block, e.g. ``(32, 32)``.
    dims: 1 (examples ``(length[, channels])``) or 2 (``(height, width[, channels])``).
    kernel_size: kernel width along every spatial axis.
    strides: convolution stride.
    pool: pooling window and stride after each block (1: no pooling).
    pooling: ``'max'`` or ``'avg'``.
    dense_sizes: dense layers between the conv blocks and the output.
    activation: name of the nonlinearity.
    dropout_rate: dropout after each block and dense layer, in [0, 1): one
      rate, or one per block and dense layer.
    input_dropout: dropout on the inputs, in [0, 1).
    dropout_kind, dropout_inference, mc_dropout: see :mod:`jaxreg.models.dropout`.
    kernel_init: the kernel initializer, as for :func:`make_mlp`.
    batch_norm: batch-normalize each layer's pre-activations (``normalization='batch_norm'``).
    batch_norm_momentum: decay of the running statistics, in [0, 1).
    batch_norm_axis_name: set by :func:`make_model` from the run's placement.
    input_shape: read flat inputs as this shape, e.g. ``(8, 8)`` for digits' 64 pixels.
    normalization, batch_norm_variance, weight_norm, weight_norm_scale_init: as for :func:`make_mlp`,
      on every conv and dense layer.

  Examples:
    >>> model = make_cnn(num_outputs=10, channels=(8,), dims=2, input_shape=(8, 8))
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 64)))
    >>> model.apply(variables, jnp.zeros((5, 64)), train=False)[0].shape
    (5, 10)
  """
  if dims not in (1, 2):
    raise ValueError(f"dims must be 1 (signals) or 2 (images), got {dims!r}")
  if pooling not in ("max", "avg"):
    raise ValueError(f"pooling must be 'max' or 'avg', got {pooling!r}")
  if num_outputs <= 0:
    raise ValueError(f"num_outputs must be positive, got {num_outputs!r}")
  if input_shape is not None:
    input_shape = check_layer_sizes("input_shape", input_shape)
  channels = check_layer_sizes("channels", channels)
  dense_sizes = check_layer_sizes("dense_sizes", dense_sizes) if dense_sizes else ()
  module = CNN(
      channels=channels, num_outputs=int(num_outputs), dims=dims,
      kernel_size=check_positive_int("kernel_size", kernel_size), strides=check_positive_int("strides", strides),
      pool=check_positive_int("pool", pool), pooling=pooling,
      dense_sizes=dense_sizes, activation=get_activation(activation),
      **_dropout_fields(dropout_rate, len(channels) + len(dense_sizes), input_dropout, dropout_kind,
                        dropout_inference, mc_dropout),
      kernel_init=get_initializer(kernel_init), input_shape=input_shape,
      **_normalization_fields(normalization, batch_norm, batch_norm_momentum, batch_norm_variance,
                              batch_norm_axis_name, weight_norm, weight_norm_scale_init),
  )
  return from_linen(module)


_MODELS = Registry("model", {
    "mlp": make_mlp,
    "multitask_mlp": make_multitask_mlp,
    "rnn": _recurrent("rnn"),
    "lstm": _recurrent("lstm"),
    "gru": _recurrent("gru"),
    "cnn": make_cnn,
})
# Models with batch normalization, whose statistics are synchronized over the pmap axis.
_BATCH_NORM_MODELS = ("mlp", "cnn", "rnn", "lstm", "gru")


def make_model(name: str, *, num_outputs: int, axis_name: str | None = None, **kwargs) -> ModelFns:
  """Builds the model called ``name`` from the keyword arguments of a config's ``model`` section.

  Args:
    name: one of ``MODEL_NAMES``, or the import path of a function of the
      user's, ``'my_pkg.models:build'`` (:func:`user_model`).
    num_outputs: width of the output layer (taken from the dataset).
    axis_name: the ``pmap`` axis of the run, if any; models with batch
      normalization synchronize their batch statistics over it.
    **kwargs: the model's own arguments (see e.g. :func:`make_mlp`).

  Raises:
    ConfigError: for an unknown model name or argument; the message lists the valid ones.

  Examples:
    >>> model = make_model('gru', num_outputs=1, hidden_sizes=(16,))
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 20, 2)))
    >>> model.apply(variables, jnp.zeros((4, 20, 2)), train=False)[0].shape
    (4, 1)
  """
  if is_import_path(name):
    return user_model(name, num_outputs=num_outputs, **kwargs)
  filled = {"num_outputs": num_outputs}
  if name in _BATCH_NORM_MODELS:
    filled["batch_norm_axis_name"] = axis_name
  return _MODELS.build(name, kwargs, section="model", filled=filled)


def as_model_fns(model, what: str = "the model") -> ModelFns:
  """``ModelFns`` from what a user's factory returns: ``ModelFns``, a Linen module (``__call__(x, *, train)``) or an NNX module.

  Examples:
    >>> model = as_model_fns(MLP(hidden_sizes=(8,), num_outputs=2))  # a Linen module
    >>> model.apply(model.init(jax.random.key(0), jnp.zeros((1, 4))), jnp.zeros((3, 4)), train=False)[0].shape
    (3, 2)
  """
  from flax import nnx

  if isinstance(model, ModelFns):
    return model
  if isinstance(model, nn.Module):
    return from_linen(model)
  if isinstance(model, nnx.Module):
    return from_nnx(model)
  raise ConfigError(f"{what} returned {type(model).__name__}; return a jaxreg.models.ModelFns, a Linen module "
                    "or an NNX module")


def user_model(spec: str, *, num_outputs: int, **kwargs) -> ModelFns:
  """The model of a user's function named by import path, called with the config's ``model`` keys.

  The function gets ``num_outputs`` (from the data) if it takes it. If it
  takes ``rngs`` it is an NNX factory: it is called by ``init`` with the
  run's seed (:func:`from_nnx`). Otherwise it returns a ``ModelFns``, a
  Linen module or an NNX module (:func:`as_model_fns`).

  Examples:
    >>> # my_pkg/models.py: def build(num_outputs, width=64, *, rngs): return Net(width, num_outputs, rngs=rngs)
    >>> model = make_model('my_pkg.models:build', num_outputs=10, width=128)  # doctest: +SKIP
  """
  fn = import_object(spec, "model.name")
  parameters = inspect.signature(fn).parameters
  open_keywords = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
  filled = {"num_outputs": num_outputs} if "num_outputs" in parameters or open_keywords else {}
  if not open_keywords:
    check_kwargs(fn, kwargs, section="model", what=f"model {spec!r}", exclude=("num_outputs", "rngs"))
  if "rngs" in parameters:
    return from_nnx(lambda rngs: fn(**kwargs, **filled, rngs=rngs))
  try:
    built = fn(**kwargs, **filled)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"model {spec!r}: {e}") from None
  return as_model_fns(built, f"model.name {spec!r}")


__all__ = [
    "BatchNorm",
    "CNN",
    "MLP",
    "MeanOnlyBatchNorm",
    "WeightNormConv",
    "WeightNormDense",
    "MODEL_NAMES",
    "MultiTaskMLP",
    "RecurrentLayer",
    "SequenceModel",
    "ModelFns",
    "TangentDistanceModel",
    "as_model_fns",
    "from_nnx",
    "with_compute_dtype",
    "user_model",
    "fit_tangent_distance",
    "fold_batch_norm",
    "from_linen",
    "get_activation",
    "get_initializer",
    "initializer_names",
    "make_cnn",
    "make_mlp",
    "make_model",
    "make_multitask_mlp",
    "make_sequence_model",
    "mc_dropout_predict",
    "predict_tangent_distance",
    "tangent_distances",
    "weight_norm_data_init",
]
