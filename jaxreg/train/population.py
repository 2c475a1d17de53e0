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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg.data.datasets import Dataset
from jaxreg.data.iterators import epoch_batch_indices, eval_layout, padded_batches
from jaxreg.models.base import ModelFns
from jaxreg.train.early_stopping import EarlyStopping
from jaxreg.train.epochs import mean_over_real_batches, scan_epoch_body
from jaxreg.train.state import TrainState, create_train_state


def member_count(states: TrainState) -> int:
  """The number of members of a stacked population (its leading axis)."""
  return int(jax.tree.leaves(states)[0].shape[0])


def create_population(model: ModelFns, tx: optax.GradientTransformation, *, seeds: Sequence[int],
                      sample_x, early_stopping_mode: str = "min") -> TrainState:
  """One :func:`~jaxreg.train.create_train_state` per seed, stacked: member ``m`` is the state of seed ``seeds[m]``.

  Example:
    >>> states = create_population(model, optax.adam(1e-3), seeds=range(8), sample_x=x[:1])  # doctest: +SKIP
  """
  seeds = list(seeds)
  if not seeds:
    raise ValueError("seeds must name at least one member, e.g. range(8)")
  states = [create_train_state(model, tx, rng=jax.random.PRNGKey(s), sample_x=sample_x,
                               early_stopping_mode=early_stopping_mode) for s in seeds]
  return stack(states)


def stack(states: Sequence) -> object:
  """Pytrees of the same structure stacked on a new leading axis."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def member(states, index: int):
  """Member ``index`` of a stacked population, as a pytree without the member axis."""
  return jax.tree.map(lambda leaf: leaf[index], states)


def bootstrap_indices(key: jax.Array, num_examples: int) -> jax.Array:
  """A bootstrap resample: ``num_examples`` indices drawn uniformly with replacement (Breiman 1996).

  Each example appears ``Binomial(n, 1/n)`` times, so a resample holds
  about ``1 - (1 - 1/n)^n ~ 1 - 1/e = 63.2%`` of the distinct examples.
  """
  return jax.random.randint(key, (num_examples,), 0, num_examples)


def bootstrap_population(key: jax.Array, members: int, num_examples: int) -> jax.Array:
  """``(members, num_examples)`` resamples, one per member (``fold_in(key, m)``)."""
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

  Example:
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
  """``(members, n, ...)`` evaluation-mode outputs of every member on ``x`` (one vmapped program per batch)."""

  @jax.jit
  def predict(params, model_state, xb):
    return jax.vmap(lambda p, s: apply({"params": p, **s}, xb, train=False, rng=None)[0])(params, model_state)

  x = np.asarray(x)
  parts = [np.asarray(predict(states.params, states.model_state, x[i:i + batch_size]))
           for i in range(0, len(x), batch_size)]
  return np.concatenate(parts, axis=1)


class PopulationResult(NamedTuple):
  """What :func:`fit_population` returns.

  Attributes:
    states: each member's kept state (its best epoch's with ``restore_best``).
    history: one record per epoch: ``{'epoch', 'active', <metric>: [one value per member]}``.
    best_epochs: each member's best epoch (0 if it never improved).
    stopped_epochs: the epoch after which each member stopped (its last trained epoch).
  """

  states: TrainState
  history: list
  best_epochs: list
  stopped_epochs: list


def make_population_evaluate(eval_step: Callable):
  """A jitted ``evaluate(states, batches) -> metrics``: each member's exact means over padded batches."""
  return jax.jit(jax.vmap(lambda state, batches: mean_over_real_batches(eval_step, state, batches),
                          in_axes=(0, None)))


def fit_population(states: TrainState, *, train_step: Callable, eval_step: Callable, dataset: Dataset,
                   batch_size: int, epochs: int, seeds: Sequence[int], resamples: jax.Array | None = None,
                   early_stopping: EarlyStopping | None = None, restore_best: bool = True,
                   eval_batch_size: int = 1024) -> PopulationResult:
  """Trains every member of ``states`` as one vmapped program per epoch; each stops early on its own.

  Member ``m`` shuffles with ``PRNGKey(seeds[m])`` (as ``fit(...,
  shuffle_seed=seeds[m])``, epochs numbered from 1 as there) and trains on ``resamples[m]`` if given
  (:func:`bootstrap_population`). After each epoch every member is
  evaluated on the validation split (the test split if there is none);
  ``early_stopping`` tracks each member's monitored metric, and a member
  out of patience stops: its later epochs are masked out.

  Args:
    states: the stacked population (:func:`create_population`).
    train_step: one member's step.
    eval_step: one member's evaluation step (:func:`jaxreg.train.make_eval_step`).
    dataset: the splits, shared by the members.
    batch_size: examples per step.
    epochs: the most epochs any member trains.
    seeds: one shuffle seed per member.
    resamples: ``(members, n)`` bootstrap indices, or ``None``.
    early_stopping: what is monitored and when a member stops (default: ``val_loss``, never stop).
    restore_best: return each member's best epoch's state.
    eval_batch_size: examples per evaluation batch.

  Example:
    >>> result = fit_population(states, train_step=step, eval_step=eval_step, dataset=data,  # doctest: +SKIP
    ...                         batch_size=64, epochs=50, seeds=range(8))
  """
  count = member_count(states)
  if len(list(seeds)) != count:
    raise ValueError(f"seeds must give one shuffle seed per member ({count}), got {len(list(seeds))}")
  early_stopping = early_stopping or EarlyStopping()
  held_out = dataset.val if dataset.val is not None else dataset.test
  prefix = "val" if dataset.val is not None else "test"
  if held_out is None:
    raise ValueError("fit_population evaluates each member on a validation or test split; the dataset has neither")
  x, y = jax.device_put(dataset.train.x), jax.device_put(dataset.train.y)
  run_epoch = make_population_epoch(train_step, num_examples=len(dataset.train.y), batch_size=batch_size)
  evaluate = make_population_evaluate(eval_step)
  size, num_batches = eval_layout(eval_batch_size, len(held_out.y))
  batches = jax.device_put(padded_batches(held_out.x, held_out.y, size, num_batches))
  keys, active = shuffle_keys(seeds), np.ones(count, bool)
  tracked = [early_stopping.initial_state() for _ in range(count)]
  best, history, stopped = states, [], [0] * count
  for epoch in range(1, epochs + 1):
    states, train_metrics = run_epoch(states, keys, resamples, x, y, epoch, jnp.asarray(active))
    metrics = {f"train_{k}": np.asarray(v) for k, v in train_metrics.items()}
    metrics.update({f"{prefix}_{k}": np.asarray(v) for k, v in evaluate(states, batches).items()})
    improved = np.zeros(count, bool)
    for m in np.flatnonzero(active):
      tracked[m], improved[m] = early_stopping.update(tracked[m], float(metrics[early_stopping.monitor][m]), epoch)
      stopped[m] = epoch
    best = select(jnp.asarray(improved), states, best)
    history.append({"epoch": epoch, "active": active.tolist(), **{k: v.tolist() for k, v in metrics.items()}})
    active &= np.array([not early_stopping.should_stop(t) for t in tracked])
    if not active.any():
      break
  return PopulationResult(states=best if restore_best else states, history=history,
                          best_epochs=[int(t.best_epoch) for t in tracked], stopped_epochs=stopped)


def evaluate_ensemble(apply: Callable, states: TrainState, x, y, *, batch_size: int = 1024) -> dict:
  """Each member's accuracy and loss on ``(x, y)`` and the ensemble's, three ways (:func:`jaxreg.train.ensemble_metrics`).

  Example:
    >>> evaluate_ensemble(model.apply, result.states, data.test.x, data.test.y)['mean_probabilities']  # doctest: +SKIP
    {'accuracy': 0.986, 'loss': 0.05}
  """
  from jaxreg.train.ensemble import ensemble_metrics

  return ensemble_metrics(member_predictions(apply, states, x, batch_size=batch_size), y)
