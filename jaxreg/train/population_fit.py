"""``fit_population``: the fit loop of :mod:`jaxreg.train.loop` over a population, with its hooks and checkpoints.

The loop is :func:`jaxreg.train.loop.run_loop`, unchanged: a runner trains
an epoch (here :class:`PopulationRunner`: every member in one vmapped,
compiled program) and the hooks run between epochs. The population's hooks
are the single run's, member-wise:

* :class:`PopulationNanGuard`: a member whose training loss is not finite
  has diverged and stops (its best state is kept); bad data, or every
  member diverged, fails the run as for one model;
* :class:`TrackPopulationEarlyStopping`: each member's monitored metric,
  best epoch and patience, its best state kept; the run ends when no
  member is left training;
* :class:`SavePopulationCheckpoints`: the stacked states and the stacked
  best states in one Orbax checkpoint, so a resume goes on with every
  member's best intact;
* the metric writer (a line per epoch, a list per metric: one value per
  member), the progress bar and the user's hooks.

A member stopped early (or diverged) keeps its state: its epoch is still
computed in the one program and masked out (:func:`select`).
"""

import dataclasses
import time
import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg.data.datasets import Dataset
from jaxreg.data.iterators import eval_layout, padded_batches
from jaxreg.errors import CheckpointError, TrainingError
from jaxreg.train import hooks as hooks_lib
from jaxreg.train.checkpoint import Checkpointer
from jaxreg.train.diagnostics import is_diagnostic, non_finite_cause
from jaxreg.train.early_stopping import EarlyStopping
from jaxreg.train.ensemble import ensemble_metrics
from jaxreg.train.epochs import SingleDevice, mean_over_real_batches
from jaxreg.train.loop import _restore_newest_intact, _Start, run_loop
from jaxreg.train.population import make_population_epoch, member_count, select, shuffle_keys
from jaxreg.train.state import EarlyStoppingState, TrainState
from jaxreg.train.step import with_batch_transform
from jaxreg.train.writers import MetricWriter

# ``bad_epochs`` of a member that diverged: out of any patience, so it never trains again (and a resume knows it).
DIVERGED = 2**30


class DivergedMemberWarning(UserWarning):
  """A member of a population diverged (non-finite training loss) and stopped; the others go on."""


@dataclasses.dataclass
class PopulationResult:
  """What :func:`fit_population` returns.

  Attributes:
    states: each member's kept state (its best epoch's with ``restore_best``).
    history: one record per epoch: ``{'epoch', 'active', <metric>: [one value per member], ...}``.
    best_epochs: each member's best epoch (0 if it never improved).
    stopped_epochs: each member's last trained epoch.
    diverged: the members whose training loss became non-finite.
    summary: each member's validation and test metrics of ``states`` (lists), and the run's facts.

  Examples:
    >>> result = fit_population(states, ...)  # doctest: +SKIP
    >>> result.best_epochs, result.diverged  # doctest: +SKIP
  """

  states: TrainState
  history: list
  best_epochs: list
  stopped_epochs: list
  diverged: list = dataclasses.field(default_factory=list)
  summary: dict = dataclasses.field(default_factory=dict)


def make_population_evaluate(eval_step: Callable, *, sweep: bool = False):
  """A jitted ``evaluate(states, batches, hyperparameters=None) -> metrics``: each member's exact means over padded batches.

  With ``sweep``, ``eval_step`` is a factory ``fn(hyperparameters) -> eval_step`` as
  in :func:`~jaxreg.train.make_population_epoch`.

  Examples:
    >>> evaluate = make_population_evaluate(make_eval_step(objective))  # doctest: +SKIP
    >>> evaluate(states, batches)['accuracy'].shape  # one value per member  # doctest: +SKIP
  """

  def member_metrics(state, h, batches):
    return mean_over_real_batches(eval_step(h) if sweep else eval_step, state, batches)

  @jax.jit
  def evaluate(states, batches, hyperparameters=None):
    axes = (0, None if hyperparameters is None else 0, None)
    return jax.vmap(member_metrics, in_axes=axes)(states, hyperparameters, batches)

  return evaluate


def active_members(rule: EarlyStopping, es: EarlyStoppingState) -> np.ndarray:
  """Which members still train: patience left, and not diverged."""
  bad = np.asarray(es.bad_epochs)
  limit = DIVERGED if rule.patience is None else min(rule.patience, DIVERGED)
  return bad < limit


class PopulationRunner:
  """Trains an epoch of every member in one program and evaluates them: the population's :class:`EpochRunner`.

  Args:
    train_step: one member's step, or with ``hyperparameters`` a factory
      ``fn(h) -> step`` (see :func:`~jaxreg.train.make_population_epoch`).
    eval_step: one member's evaluation step, or its factory likewise.
    dataset: the splits, shared by the members.
    batch_size: examples per step.
    seeds: each member's shuffle seed.
    rule: the early-stopping rule (which members are still training).
    resamples: ``(members, n)`` bootstrap indices, or ``None``.
    hyperparameters: ``{name: (members,) array}`` of a sweep, or ``None``.
    eval_batch_size: examples per evaluation batch.
    batch_transform: ``fn(batch, key) -> batch`` inside every member's step, or ``None``.
    member_logits: ``fn(states, x) -> (members, n, classes)`` for the
      ensemble's metrics on each split after every epoch
      (``<split>_ensemble_accuracy``, ``<split>_ensemble_loss``: averaged
      probabilities), or ``None``.
  """

  def __init__(self, *, train_step, eval_step, dataset: Dataset, batch_size: int, seeds: Sequence[int],
               rule: EarlyStopping, resamples=None, hyperparameters=None, eval_batch_size: int = 1024,
               batch_transform=None, member_logits=None):
    self.placement = SingleDevice()
    self.dataset, self.rule, self.member_logits = dataset, rule, member_logits
    sweep = hyperparameters is not None
    if batch_transform is not None:
      step_or_factory = train_step
      train_step = ((lambda h: with_batch_transform(step_or_factory(h), batch_transform)) if sweep
                    else with_batch_transform(step_or_factory, batch_transform))
    self.run_epoch = make_population_epoch(train_step, num_examples=len(dataset.train.y), batch_size=batch_size,
                                           sweep=sweep)
    self.evaluate = make_population_evaluate(eval_step, sweep=sweep)
    self.keys, self.resamples, self.hyperparameters = shuffle_keys(seeds), resamples, hyperparameters
    self.x, self.y = jax.device_put((dataset.train.x, dataset.train.y))
    splits = {name: s for name, s in (("val", dataset.val), ("test", dataset.test)) if s is not None}
    layout = max((len(s.y) for s in splits.values()), default=None)
    size, num_batches = eval_layout(eval_batch_size, layout or 1)
    self.eval_sets = {name: jax.device_put(padded_batches(s.x, s.y, size, num_batches)) for name, s in splits.items()}
    self.steps_per_epoch = len(dataset.train.y) // batch_size
    self.first_epoch_seconds, self.timed_seconds, self.timed_epochs = None, 0.0, 0

  def run(self, states, epoch: int, num_steps=None, should_stop=None):
    """Trains epoch ``epoch`` of every active member and evaluates them all: ``(states, record)``."""
    del num_steps, should_stop  # a population's epoch is one program: it is not cut short
    start = time.perf_counter()
    active = active_members(self.rule, states.early_stopping)
    states, train_metrics = self.run_epoch(states, self.keys, self.resamples, self.x, self.y, epoch,
                                           jnp.asarray(active), self.hyperparameters)
    train_metrics, steps = jax.device_get((train_metrics, states.step))
    seconds = time.perf_counter() - start
    self._time(seconds)
    record = {"epoch": epoch, "step": np.asarray(steps).tolist(), "active": active.tolist()}
    record.update({k if is_diagnostic(k) else f"train_{k}": np.asarray(v).tolist() for k, v in train_metrics.items()})
    record.update(self.evaluate_states(states))
    record["train_seconds"], record["seconds"] = seconds, time.perf_counter() - start
    return states, record

  def _time(self, seconds: float) -> None:
    if self.first_epoch_seconds is None:
      self.first_epoch_seconds = seconds  # includes compilation
    else:
      self.timed_seconds, self.timed_epochs = self.timed_seconds + seconds, self.timed_epochs + 1

  def evaluate_states(self, states) -> dict:
    """``<split>_<metric>``: one value per member; with ``member_logits``, ``<split>_ensemble_*`` too."""
    record = {}
    for name, batches in self.eval_sets.items():
      metrics = jax.device_get(self.evaluate(states, batches, self.hyperparameters))
      record.update({f"{name}_{k}": np.asarray(v).tolist() for k, v in metrics.items()})
      if self.member_logits is not None:
        split = getattr(self.dataset, name)
        report = ensemble_metrics(self.member_logits(states, split.x), split.y)["mean_probabilities"]
        record.update({f"{name}_ensemble_{k}": v for k, v in report.items()})
    return record

  def speed(self) -> dict:
    """``first_epoch_seconds`` and the population's steady ``steps_per_second`` (every member's steps counted)."""
    count = int(self.keys.shape[0])
    seconds, epochs = (self.timed_seconds, self.timed_epochs) if self.timed_epochs else (self.first_epoch_seconds, 1)
    rate = count * self.steps_per_epoch * epochs / seconds if seconds else None
    return {"first_epoch_seconds": self.first_epoch_seconds, "member_steps_per_second": rate}


class PopulationNanGuard(hooks_lib.Hook):
  """Stops a member whose training loss is not finite (it diverged); fails the run for bad data or if all diverged.

  The diverged member's ``bad_epochs`` becomes :data:`DIVERGED`, so it
  stays stopped after a resume; its best state (before the divergence) is kept.
  """

  def __init__(self, dataset: Dataset | None = None):
    self.dataset = dataset

  def after_epoch(self, end: hooks_lib.EpochEnd) -> None:
    losses = np.asarray(end.record["train_loss"], np.float64)
    active = np.asarray(end.record["active"])
    bad = np.flatnonzero(active & ~np.isfinite(losses))
    if bad.size == 0:
      return
    cause = non_finite_cause(self.dataset) if self.dataset is not None else None
    if cause is not None:
      raise TrainingError(f"the training loss became {losses[bad[0]]} in epoch {end.epoch} because {cause}; "
                          "clean the data and start the run again")
    es = end.state.early_stopping
    bad_epochs = np.asarray(es.bad_epochs).copy()
    bad_epochs[bad] = DIVERGED
    end.state = end.state.replace(early_stopping=es.replace(bad_epochs=jax.device_put(bad_epochs)))
    end.record["diverged"] = bad.tolist()
    if np.all(bad_epochs >= DIVERGED):
      raise TrainingError(
          f"every member's training loss became non-finite by epoch {end.epoch}: the runs diverged. Lower "
          "optimizer.learning_rate or the regularization strength (or sweep it, population.sweep)")
    warnings.warn(f"member(s) {', '.join(map(str, bad))} diverged in epoch {end.epoch} (training loss "
                  f"{', '.join(f'{losses[m]}' for m in bad)}) and stopped; their best epochs are kept",
                  DivergedMemberWarning, stacklevel=2)


class TrackPopulationEarlyStopping(hooks_lib.Hook):
  """Each member's early stopping, as :class:`~jaxreg.train.hooks.TrackEarlyStopping` does for one model.

  Args:
    rule: the :class:`~jaxreg.train.EarlyStopping` rule, the same for every member.
    best_states: the stacked best states so far.
  """

  def __init__(self, rule: EarlyStopping, best_states):
    self.rule = rule
    self.best_states = best_states

  def after_epoch(self, end: hooks_lib.EpochEnd) -> None:
    es = end.state.early_stopping
    best_value, best_epoch, bad = (np.asarray(a).copy() for a in (es.best_value, es.best_epoch, es.bad_epochs))
    values = np.asarray([np.nan if v is None else v for v in end.record[self.rule.monitor]], np.float64)
    training = np.asarray(end.record["active"]) & (bad < DIVERGED)
    improved = training & self.rule.improves(values, best_value)
    best_value = np.where(improved, values, best_value).astype(np.float32)
    best_epoch = np.where(improved, end.epoch, best_epoch).astype(np.int32)
    bad = np.where(improved, 0, np.where(training, bad + 1, bad)).astype(np.int32)
    new_es = EarlyStoppingState(best_value=jax.device_put(best_value), best_epoch=jax.device_put(best_epoch),
                                bad_epochs=jax.device_put(bad))
    end.state = end.state.replace(early_stopping=new_es)
    self.best_states = select(jnp.asarray(improved), end.state, self.best_states)
    if not active_members(self.rule, new_es).any():
      end.stop(f"every member stopped (early stopping on {self.rule.monitor}, patience {self.rule.patience}, "
               "or diverged)")


class SavePopulationCheckpoints(hooks_lib.Hook):
  """Saves ``{'states', 'best'}`` (the stacked states and best states) every ``every`` epochs, last and on a stop."""

  def __init__(self, checkpointer: Checkpointer, tracker: TrackPopulationEarlyStopping, *, every: int,
               last_epoch: int):
    self.checkpointer, self.tracker = checkpointer, tracker
    self.every, self.last_epoch = every, last_epoch

  def after_epoch(self, end: hooks_lib.EpochEnd) -> None:
    if end.epoch % self.every == 0 or end.epoch == self.last_epoch or end.stop_reason:
      self.checkpointer.save(end.epoch, {"states": end.state, "best": self.tracker.best_states},
                             {"epoch": end.epoch})

  def close(self) -> None:
    self.checkpointer.close()


class PopulationProgressBar(hooks_lib.ProgressBar):
  """The epoch bar with the members still training and their mean (and the ensemble's) validation accuracy."""

  def after_epoch(self, end: hooks_lib.EpochEnd) -> None:
    record = end.record
    postfix = {"training": f"{sum(record['active'])}/{len(record['active'])}"}
    for key in ("val_accuracy", "test_accuracy"):
      if key in record:
        postfix[f"mean_{key}"] = f"{np.nanmean(np.asarray(record[key], np.float64)):.4f}"
        break
    for key in ("val_ensemble_accuracy", "test_ensemble_accuracy"):
      if key in record:
        postfix[key] = f"{record[key]:.4f}"
        break
    self.bar.set_postfix(postfix, refresh=False)
    self.bar.update(1)


def _population_start(states, *, resume: bool, checkpointer, writer, epochs: int) -> _Start:
  """The fresh start, or the latest checkpoint's states and best states, with the history up to it."""
  if not resume:
    return _Start(states, 0, [], states)
  if checkpointer is None:
    raise CheckpointError("resume=True needs a checkpointer to resume from")
  latest, saved = _restore_newest_intact(checkpointer, {"states": states, "best": states})
  if latest > epochs:
    raise CheckpointError(
        f"the latest checkpoint in {checkpointer.directory} is epoch {latest}, past epochs={epochs}: resume "
        f"with epochs >= {latest} (--config.train.epochs={latest} or more)")
  history = writer.truncate_after(latest) if writer is not None else []
  return _Start(saved["states"], latest, history, saved["best"])


def fit_population(states: TrainState, *, train_step: Callable, eval_step: Callable, dataset: Dataset,
                   batch_size: int, epochs: int, seeds: Sequence[int], resamples: jax.Array | None = None,
                   hyperparameters: dict | None = None, early_stopping: EarlyStopping | None = None,
                   restore_best: bool = True, eval_batch_size: int = 1024, checkpointer: Checkpointer | None = None,
                   checkpoint_every: int = 1, resume: bool = False, writer: MetricWriter | None = None,
                   progress: bool = False, hooks: Sequence = (), batch_transform: Callable | None = None,
                   member_logits: Callable | None = None) -> PopulationResult:
  """Trains every member of ``states`` as one vmapped program per epoch; each stops early on its own.

  Member ``m`` shuffles with ``PRNGKey(seeds[m])`` (as ``fit(...,
  shuffle_seed=seeds[m])``, epochs numbered from 1 as there) and trains on
  ``resamples[m]`` if given (:func:`bootstrap_population`). After each
  epoch every member is evaluated on the validation and test splits;
  ``early_stopping`` tracks each member's monitored metric, and a member out
  of patience (or diverged) stops: its later epochs are masked out. The run
  ends when every member has stopped or after ``epochs``.

  Args:
    states: the stacked population (:func:`create_population`).
    train_step: one member's step; with ``hyperparameters``, a factory ``fn(h) -> step``.
    eval_step: one member's evaluation step (:func:`jaxreg.train.make_eval_step`), or its factory.
    dataset: the splits, shared by the members.
    batch_size: examples per step.
    epochs: the most epochs any member trains (a resumed run continues to it).
    seeds: one shuffle seed per member.
    resamples: ``(members, n)`` bootstrap indices, or ``None``.
    hyperparameters: a sweep's ``{name: (members,) array}``, passed to the factories, or ``None``.
    early_stopping: what is monitored and when a member stops (default:
      ``val_loss``, or ``train_loss`` without a validation split; never stop).
    restore_best: return each member's best epoch's state.
    eval_batch_size: examples per evaluation batch.
    checkpointer: where the stacked states and best states are saved
      (a :class:`~jaxreg.train.Checkpointer` with ``monitor=None``), or ``None``.
    checkpoint_every: save every this many epochs (and always the last).
    resume: continue from the checkpointer's latest checkpoint.
    writer: where each epoch's record goes (``metrics.jsonl``), or ``None``.
    progress: show a progress bar.
    hooks: the user's hooks, called after each epoch as by :func:`~jaxreg.train.fit`.
    batch_transform: ``fn(batch, key) -> batch`` in every member's step (augmentation, input noise).
    member_logits: ``fn(states, x) -> (members, n, classes)``: the records
      then hold the ensemble's accuracy and loss on each split.

  Examples:
    >>> result = fit_population(states, train_step=step, eval_step=eval_step, dataset=data,  # doctest: +SKIP
    ...                         batch_size=64, epochs=50, seeds=range(8))
  """
  count = member_count(states)
  if len(list(seeds)) != count:
    raise ValueError(f"seeds must give one shuffle seed per member ({count}), got {len(list(seeds))}")
  if dataset.val is None and dataset.test is None:
    raise ValueError("fit_population evaluates each member on a validation or test split; the dataset has neither")
  rule = early_stopping or EarlyStopping(monitor="val_loss" if dataset.val is not None else "train_loss")
  runner = PopulationRunner(
      train_step=train_step, eval_step=eval_step, dataset=dataset, batch_size=batch_size, seeds=seeds, rule=rule,
      resamples=resamples, hyperparameters=hyperparameters, eval_batch_size=eval_batch_size,
      batch_transform=batch_transform, member_logits=member_logits)
  start = _population_start(states, resume=resume, checkpointer=checkpointer, writer=writer, epochs=epochs)
  tracker = TrackPopulationEarlyStopping(rule, start.best_state)
  all_hooks = [PopulationNanGuard(dataset), tracker, *map(hooks_lib.as_hook, hooks)]
  all_hooks += [hooks_lib.WriteMetrics(writer)] if writer is not None else []
  if checkpointer is not None:
    all_hooks.append(SavePopulationCheckpoints(checkpointer, tracker, every=checkpoint_every, last_epoch=epochs))
  all_hooks += [PopulationProgressBar(epochs, f"{dataset.name} x{count}")] if progress else []
  stopped = not active_members(rule, start.state.early_stopping).any()  # a resumed run that had ended stays so
  final, history, _, reason = run_loop(start, runner, all_hooks, epochs=start.epoch if stopped else epochs,
                                       max_steps=None)
  kept = tracker.best_states if restore_best else final
  best_epochs = np.asarray(final.early_stopping.best_epoch)
  if restore_best:  # a member that never improved keeps its last state
    kept = select(jnp.asarray(best_epochs > 0), kept, final)
  summary = {"stop_reason": reason, "epochs_run": history[-1]["epoch"] if history else start.epoch,
             **runner.speed(), **runner.evaluate_states(kept)}
  return PopulationResult(
      states=kept, history=history, best_epochs=best_epochs.tolist(),
      stopped_epochs=_stopped_epochs(history, count),
      diverged=sorted({m for r in history for m in r.get("diverged", [])}), summary=summary)


def _stopped_epochs(history: list, count: int) -> list[int]:
  """Each member's last trained epoch, from the records' ``active`` lists."""
  last = [0] * count
  for record in history:
    for m, active in enumerate(record["active"]):
      if active:
        last[m] = record["epoch"]
  return last
