"""``TrainState``: everything that changes during training, as plain data."""

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxreg.models.base import ModelFns


@flax.struct.dataclass
class EarlyStoppingState:
  """What early stopping remembers between epochs.

  Attributes:
    best_value: the best value of the monitored metric so far (``inf`` or
      ``-inf`` before the first evaluation, depending on the mode).
    best_epoch: the epoch (1-based) that reached it, 0 before the first.
    bad_epochs: evaluations in a row without an improvement.

  Examples:
    >>> state = create_train_state(make_mlp(num_outputs=2, hidden_sizes=(4,)), optax.sgd(0.1), rng=jax.random.key(0),
    ...                            sample_x=jnp.zeros((1, 3)))
    >>> int(state.early_stopping.best_epoch), float(state.early_stopping.best_value)  # nothing seen yet
    (0, inf)
  """

  best_value: jax.Array
  best_epoch: jax.Array
  bad_epochs: jax.Array

  @classmethod
  def create(cls, mode: str = "min") -> "EarlyStoppingState":
    start = jnp.inf if mode == "min" else -jnp.inf
    return cls(
        best_value=jnp.asarray(start, jnp.float32),
        best_epoch=jnp.asarray(0, jnp.int32),
        bad_epochs=jnp.asarray(0, jnp.int32),
    )


@flax.struct.dataclass
class TrainState:
  """The whole training state as a pytree: it checkpoints, replicates and vmaps.

  It holds data only (no functions): the model and optimizer are passed to
  :func:`make_train_step` instead.

  Attributes:
    step: number of optimizer steps taken.
    params: the model's parameters.
    model_state: non-parameter collections (e.g. batch statistics); ``{}`` if none.
    opt_state: the optimizer's state.
    rng: base key; step ``t`` uses ``fold_in(rng, t)``.
    early_stopping: the early-stopping bookkeeping.

  Examples:
    >>> state = create_train_state(make_mlp(num_outputs=2, hidden_sizes=(4,)), optax.adam(1e-3), rng=jax.random.key(0),
    ...                            sample_x=jnp.zeros((1, 3)))
    >>> int(state.step), sorted(state.params)
    (0, ['dense_0', 'output'])
    >>> jax.tree.map(jnp.shape, state.params)['dense_0']  # a plain pytree: it vmaps, replicates and checkpoints
    {'bias': (4,), 'kernel': (3, 4)}
  """

  step: jax.Array
  params: Any
  model_state: Any
  opt_state: Any
  rng: jax.Array
  early_stopping: EarlyStoppingState


def create_train_state(
    model: ModelFns,
    tx: optax.GradientTransformation,
    *,
    rng: jax.Array,
    sample_x: jax.Array,
    early_stopping_mode: str = "min",
) -> TrainState:
  """Initialises the model and the optimizer, as one compiled program.

  Args:
    model: the model's ``ModelFns``.
    tx: the optimizer (any optax transform).
    rng: a key from ``jax.random.PRNGKey(seed)``; split for init and training.
    sample_x: a batch of inputs with the right shape and dtype (values unused).
    early_stopping_mode: ``'min'`` or ``'max'``, the monitored metric's direction.

  Examples:
    >>> state = create_train_state(model, optax.adam(1e-3), rng=jax.random.PRNGKey(0),
    ...                            sample_x=x_train[:1])  # doctest: +SKIP
  """
  return state_initializer(model, tx, sample_x=sample_x, early_stopping_mode=early_stopping_mode)(rng)


def state_initializer(model: ModelFns, tx: optax.GradientTransformation, *, sample_x: jax.Array,
                      early_stopping_mode: str = "min") -> Callable[[jax.Array], TrainState]:
  """``rng -> TrainState``: :func:`create_train_state` compiled once, for many keys (the members of a population).

  Each call equals ``create_train_state(model, tx, rng=rng, sample_x=sample_x)``
  bit for bit; only the compilation is shared.

  Examples:
    >>> model = make_mlp(num_outputs=3, hidden_sizes=(4,))
    >>> init = state_initializer(model, optax.adam(1e-3), sample_x=jnp.zeros((1, 5)))
    >>> states = [init(jax.random.PRNGKey(seed)) for seed in range(8)]  # compiled once, run 8 times
    >>> alone = create_train_state(model, optax.adam(1e-3), rng=jax.random.PRNGKey(7), sample_x=jnp.zeros((1, 5)))
    >>> bool(jnp.array_equal(states[7].params['dense_0']['kernel'], alone.params['dense_0']['kernel']))
    True
  """

  def init(rng, sample_x):
    init_rng, train_rng = jax.random.split(rng)
    variables = model.init(init_rng, sample_x)
    params = variables["params"]
    model_state = {k: v for k, v in variables.items() if k != "params"}
    return TrainState(
        step=jnp.asarray(0, jnp.int32),
        params=params,
        model_state=model_state,
        opt_state=tx.init(params),
        rng=train_rng,
        early_stopping=EarlyStoppingState.create(early_stopping_mode),
    )

  compiled = {}

  def initialize(rng: jax.Array) -> TrainState:
    kind = (jnp.shape(rng), jnp.result_type(rng))  # raw uint32 keys or typed ones: one program each
    if kind not in compiled:
      compiled[kind] = _compiled_once(init, rng, sample_x)
    return compiled[kind](rng, sample_x)

  return initialize


# XLA's backend optimization level for programs that run once. On the CPU, level 1 compiles the
# random initializers 2-3x faster than the default, with bit-identical results (tests/test_state.py).
_RUN_ONCE_OPTIONS = {"cpu": {"xla_backend_optimization_level": 1}}


def _compiled_once(fn, *args):
  """``fn`` compiled for ``args``' shapes: at :data:`_RUN_ONCE_OPTIONS`' level where it applies, else ``jax.jit(fn)``."""
  options = _RUN_ONCE_OPTIONS.get(jax.default_backend())
  if options is None or any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves(args)):
    return jax.jit(fn)  # inside vmap or jit, or on an accelerator: the usual compile
  return jax.jit(fn).lower(*args).compile(compiler_options=options)
