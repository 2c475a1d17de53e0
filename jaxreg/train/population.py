"""Populations: K train states stacked on a leading axis, trained by one vmapped, compiled epoch.

A population is the same :class:`~jaxreg.train.TrainState` pytree with a
member axis in front of every leaf. Each member has its own initialization
and step key (from its own seed), its own data order (its own shuffle key)
and, for bagging, its own bootstrap resample of the training split. One
epoch of every member is one program: ``vmap`` over members of the
``lax.scan`` over batches that :func:`jaxreg.train.make_scan_epoch` runs for
one model, so a member trains exactly as the same run alone (tested to 1e-5).

Source: Goodfellow et al., Deep Learning, section 7.11 ("Bagging and Other
Ensemble Methods"); Breiman 1996 (bagging).
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg.data.iterators import epoch_batch_indices
from jaxreg.models.base import ModelFns
from jaxreg.train.epochs import scan_epoch_body
from jaxreg.train.state import TrainState, state_initializer


def member_count(states: TrainState) -> int:
  """The number of members of a stacked population (its leading axis)."""
  return int(jax.tree.leaves(states)[0].shape[0])


def create_population(model: ModelFns, tx: optax.GradientTransformation, *, seeds: Sequence[int],
                      sample_x, early_stopping_mode: str = "min") -> TrainState:
  """One :func:`~jaxreg.train.create_train_state` per seed, stacked: member ``m`` is the state of seed ``seeds[m]``.

  Examples:
    >>> states = create_population(model, optax.adam(1e-3), seeds=range(8), sample_x=x[:1])  # doctest: +SKIP
  """
  seeds = list(seeds)
  if not seeds:
    raise ValueError("seeds must name at least one member, e.g. range(8)")
  initialize = state_initializer(model, tx, sample_x=sample_x, early_stopping_mode=early_stopping_mode)
  return stack([initialize(jax.random.PRNGKey(s)) for s in seeds])  # one compilation for all members


def stack(states: Sequence) -> object:
  """Pytrees of the same structure stacked on a new leading axis."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def member(states, index: int):
  """Member ``index`` of a stacked population, as a pytree without the member axis.

  Examples:
    >>> states = {'w': jnp.arange(6.0).reshape(3, 2)}  # 3 members
    >>> member(states, 1)['w'].tolist()
    [2.0, 3.0]
  """
  return jax.tree.map(lambda leaf: leaf[index], states)


def bootstrap_indices(key: jax.Array, num_examples: int) -> jax.Array:
  """A bootstrap resample: ``num_examples`` indices drawn uniformly with replacement (Breiman 1996).

  Each example appears ``Binomial(n, 1/n)`` times, so a resample holds
  about ``1 - (1 - 1/n)^n ~ 1 - 1/e = 63.2%`` of the distinct examples.
  """
  return jax.random.randint(key, (num_examples,), 0, num_examples)


def bootstrap_population(key: jax.Array, members: int, num_examples: int) -> jax.Array:
  """``(members, num_examples)`` resamples, one per member (``fold_in(key, m)``).

  Examples:
    >>> resamples = bootstrap_population(jax.random.key(0), members=3, num_examples=10)
    >>> resamples.shape, bool(resamples.max() < 10)
    ((3, 10), True)
  """
  return jax.vmap(lambda m: bootstrap_indices(jax.random.fold_in(key, m), num_examples))(jnp.arange(members))


def make_population_epoch(train_step: Callable, *, num_examples: int, batch_size: int, sweep: bool = False):
  """Returns a jitted ``epoch(states, shuffle_keys, resamples, x, y, epoch, active=None, hyperparameters=None)``.

  Member ``m`` runs the epoch :func:`jaxreg.train.make_scan_epoch` would run
  with ``shuffle_key=shuffle_keys[m]``: batches of the permutation
  ``epoch_batch_indices(shuffle_keys[m], epoch, ...)`` gathered from the
  shared ``x``, ``y``, read through ``resamples[m]`` (its bootstrap
  resample: position ``i`` of the epoch's order is example
  ``resamples[m, i]``) unless ``resamples`` is ``None``. A member whose
  ``active[m]`` is False (it stopped early) keeps its state: its epoch is
  computed and masked out, so the program stays one. The epoch returns
  ``(states, metrics)``; every leaf of the metrics has the member axis in front.

  A **sweep** is a population whose members differ in hyperparameters: with
  ``sweep=True``, ``train_step`` is a factory ``fn(hyperparameters) ->
  step`` called inside the vmapped program with member ``m``'s values
  (``hyperparameters`` a dict of ``(members,)`` arrays, traced). The
  factory builds the step from them, e.g. a learning rate or a penalty
  strength given as a schedule ``lambda step: h['lr']`` (jaxreg's
  transforms take schedules), so every member runs its own values in the
  one compiled program.

  Args:
    train_step: the step ``step(state, batch) -> (state, metrics)`` of one
      member, or with ``sweep`` the factory of one.
    num_examples: the training split's size (a resample's length).
    batch_size: examples per step.
    sweep: ``train_step`` is a factory of hyperparameters.

  Examples:
    >>> def step_for(h):
    ...   return make_train_step(l2(lambda step: h['l2'])(objective), adam(lambda count: h['lr']))
    >>> epoch = make_population_epoch(step_for, num_examples=n, batch_size=64, sweep=True)  # doctest: +SKIP
    >>> states, metrics = epoch(states, keys, None, x, y, 0,
    ...                         hyperparameters={'lr': lrs, 'l2': alphas})  # doctest: +SKIP
  """

  def member_epoch(state, shuffle_key, resample, hyperparameters, x, y, epoch):
    def batch_indices(epoch, num_steps):
      order = epoch_batch_indices(shuffle_key, epoch, num_examples, batch_size)[:num_steps]
      return order if resample is None else resample[order]

    step = train_step(hyperparameters) if sweep else train_step
    return scan_epoch_body(step, None, batch_indices)(state, x, y, epoch, None)

  @jax.jit
  def epoch(states, shuffle_keys, resamples, x, y, epoch, active=None, hyperparameters=None):
    if sweep and hyperparameters is None:
      raise ValueError("a sweep's epoch needs hyperparameters: a dict of one value per member for each name")
    axes = (0, 0, None if resamples is None else 0, None if hyperparameters is None else 0, None, None, None)
    new_states, metrics = jax.vmap(member_epoch, in_axes=axes)(
        states, shuffle_keys, resamples, hyperparameters, x, y, epoch)
    if active is not None:
      new_states = select(active, new_states, states)
    return new_states, metrics

  return epoch


def select(chosen: jax.Array, if_true, if_false):
  """Member-wise ``where``: member ``m`` of ``if_true`` where ``chosen[m]``, else of ``if_false``."""

  def pick(a, b):
    return jnp.where(chosen.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

  return jax.tree.map(pick, if_true, if_false)


def shuffle_keys(seeds: Sequence[int]) -> jax.Array:
  """One shuffle key per member, ``PRNGKey(seed)``: the key ``fit(..., shuffle_seed=seed)`` shuffles with."""
  return jnp.stack([jax.random.PRNGKey(s) for s in seeds])


def member_predictions(apply: Callable, states: TrainState, x, *, batch_size: int = 1024) -> np.ndarray:
  """``(members, n, ...)`` evaluation-mode outputs of every member on ``x`` (one vmapped program per batch).

  Examples:
    >>> logits = member_predictions(model.apply, result.states, data.test.x)  # doctest: +SKIP
    >>> logits.shape  # (members, examples, classes)  # doctest: +SKIP
  """

  @jax.jit
  def predict(params, model_state, xb):
    return jax.vmap(lambda p, s: apply({"params": p, **s}, xb, train=False, rng=None)[0])(params, model_state)

  x = np.asarray(x)
  parts = [np.asarray(predict(states.params, states.model_state, x[i:i + batch_size]))
           for i in range(0, len(x), batch_size)]
  return np.concatenate(parts, axis=1)


def evaluate_ensemble(apply: Callable, states: TrainState, x, y, *, batch_size: int = 1024) -> dict:
  """Each member's accuracy and loss on ``(x, y)`` and the ensemble's, three ways (:func:`jaxreg.train.ensemble_metrics`).

  Examples:
    >>> evaluate_ensemble(model.apply, result.states, data.test.x, data.test.y)['mean_probabilities']  # doctest: +SKIP
    {'accuracy': 0.986, 'loss': 0.05}
  """
  from jaxreg.train.ensemble import ensemble_metrics

  return ensemble_metrics(member_predictions(apply, states, x, batch_size=batch_size), y)
