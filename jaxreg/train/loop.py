"""``fit``: a small loop over epochs that calls hooks between them.

The compiled work (an epoch as one ``lax.scan`` when the data fits, the
evaluations, the optimizer's metric-driven changes) is the
:class:`~jaxreg.train.runner.EpochRunner`'s; everything between epochs
(the NaN guard, early stopping, stopping rules, metrics, checkpoints, the
progress bar, the user's hooks) is a hook (:mod:`jaxreg.train.hooks`). A
placement (:mod:`jaxreg.train.epochs`, :mod:`jaxreg.parallel`) says whether
the epochs run on one device, under ``pmap`` or on a sharded mesh; the loop
is the same.
"""

import dataclasses
import re
import time
import warnings
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jaxreg._validation import check_positive_int
from jaxreg.data.datasets import Dataset
from jaxreg.errors import CheckpointError
from jaxreg.train import hooks as hooks_lib
from jaxreg.train.checkpoint import Checkpointer, RecoveryWarning
from jaxreg.train.diagnostics import summarize_update_ratios
from jaxreg.train.early_stopping import EarlyStopping
from jaxreg.train.epochs import SingleDevice
from jaxreg.train.runner import EpochRunner, steps_left
from jaxreg.train.state import TrainState
from jaxreg.train.writers import MetricWriter

DATA_ON_DEVICE_CHOICES = ("auto", "always", "never")
DEFAULT_MAX_DEVICE_BYTES = 2 * 1024**3


@dataclasses.dataclass
class FitResult:
  """What :func:`fit` returns.

  Attributes:
    state: the final state, or the best epoch's state if ``restore_best``.
    history: one record per epoch (the lines of ``metrics.jsonl``).
    summary: test and validation metrics of ``state``, the best epoch, speed.

  Examples:
    >>> result = fit(state, train_step=step, eval_step=eval_step, dataset=data, batch_size=64, epochs=5)  # doctest: +SKIP
    >>> result.summary['test_accuracy'], len(result.history), result.state.step  # doctest: +SKIP
  """

  state: TrainState
  history: list[dict]
  summary: dict


@dataclasses.dataclass
class _Start:
  """Where the loop starts: the state, its epoch, the history so far and the best state."""

  state: TrainState
  epoch: int
  history: list
  best_state: TrainState


def fit(
    state: TrainState,
    *,
    train_step: Callable,
    eval_step: Callable,
    dataset: Dataset,
    batch_size: int,
    epochs: int,
    shuffle_seed: int = 0,
    eval_batch_size: int = 1024,
    early_stopping: EarlyStopping | None = None,
    restore_best: bool = True,
    checkpointer: Checkpointer | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    writer: MetricWriter | None = None,
    progress: bool = True,
    data_on_device: str = "auto",
    max_device_bytes: int = DEFAULT_MAX_DEVICE_BYTES,
    diagnostic_step: Callable | None = None,
    optimizer=None,
    max_steps: int | None = None,
    stop_when: Callable[[dict], str | None] | None = None,
    placement=None,
    hooks: Sequence = (),
    batch_transform: Callable | None = None,
    on_resume: Callable[[TrainState], TrainState] | None = None,
    trace_steps: bool = False,
) -> FitResult:
  """Trains ``state`` for ``epochs`` epochs, evaluating after each and calling the hooks.

  Each epoch reshuffles the training split with ``fold_in(PRNGKey(shuffle_seed), epoch)``
  and takes ``len(train) // batch_size`` steps on full batches. When the
  training split fits on the device (``data_on_device``) the whole epoch is
  one compiled ``lax.scan``; otherwise batches stream from the host to a
  jitted step. After each epoch the validation and test splits are
  evaluated, the optimizer's metric-driven parts see their metrics, and the
  hooks run (:mod:`jaxreg.train.hooks`): early stopping, the record to
  ``writer``, a checkpoint to ``checkpointer``, the progress bar, ``hooks``.

  Args:
    state: the initial :class:`TrainState` (also the template for a resume).
    train_step: from :func:`make_train_step`.
    eval_step: from :func:`make_eval_step`, built on the unregularized objective.
    dataset: the splits, as host arrays.
    batch_size: examples per step.
    epochs: the epoch to train up to (a resumed run continues to it).
    shuffle_seed: seed of the epoch order.
    eval_batch_size: examples per evaluation batch.
    early_stopping: what to monitor and when to stop; default tracks
      ``val_loss`` (or ``train_loss`` without a validation split), never stops.
    restore_best: return the state of the best epoch instead of the last.
    checkpointer: where to save checkpoints, or ``None``.
    checkpoint_every: save every this many epochs (and always the last).
    resume: continue from the checkpointer's latest checkpoint; it is an
      error if there is none.
    writer: where to append ``metrics.jsonl`` lines, or ``None``.
    progress: show a tqdm progress bar.
    data_on_device: ``'auto'`` (scan if the split is at most
      ``max_device_bytes``, except a convolutional model on a CPU:
      :func:`convolves_on_cpu`), ``'always'`` or ``'never'`` (stream).
    max_device_bytes: the size limit of ``'auto'``.
    diagnostic_step: ``train_step`` built with ``diagnostics=True``; if given,
      it takes each epoch's last step, and the update-to-weight ratios and
      gradient norm it reports go to the record (see
      :mod:`jaxreg.train.diagnostics`) and their medians to the summary.
    optimizer: the :class:`~jaxreg.optim.Optimizer` from
      :func:`~jaxreg.optim.make_optimizer` that ``train_step`` uses: its
      metric-driven parts (a plateau schedule, the momentum switch) get
      their monitored metrics after each evaluation, in one compiled call on
      the placed state, and its hyperparameters are logged. ``None`` logs
      the learning rate of an optax optimizer built with ``inject_hyperparams``.
    max_steps: stop once ``state.step`` reaches this (the last epoch is cut
      short to land on it exactly), or ``None``.
    stop_when: ``fn(record) -> reason or None``, called after each epoch's
      record; a reason stops the run (e.g. a target training loss).
    placement: where the run lives: ``None`` (one device,
      :class:`~jaxreg.train.epochs.SingleDevice`) or a data-parallel
      placement from :func:`jaxreg.parallel.make_placement` (``Pmap`` or
      ``Sharded``). With ``Pmap`` the steps must be built with its
      ``axis_name``. The state passed in, checkpointed and returned is
      always the single-device view, so checkpoints move between modes.
    hooks: the user's hooks (:class:`~jaxreg.train.hooks.Hook` objects or
      functions ``fn(end)``), called after each epoch after early stopping
      and before the record is written and checkpointed.
    batch_transform: ``fn(batch, key) -> batch`` applied to every training
      batch inside the compiled step, with a fresh key per step (and per
      device under ``pmap``), e.g. augmentation or input noise. Evaluation
      batches are not transformed.
    on_resume: ``fn(state) -> state`` applied to the restored state when
      ``resume`` finds a checkpoint, before training goes on: the explicit
      place for a deliberate change, e.g. a smaller learning rate after a
      divergence (``lambda s: s.replace(opt_state=set_learning_rate(s.opt_state, 0.01))``,
      see :func:`jaxreg.optim.set_learning_rate`).
    trace_steps: keep every step's training metrics (the scan stacks them
      anyway) and give them to the hooks as ``end.steps``, e.g. for
      :class:`~jaxreg.train.tensorboard.WriteTensorBoard` ``(every_steps=N)``.

  Returns:
    A :class:`FitResult`.

  Raises:
    ValueError: for impossible settings (e.g. a batch larger than the split, a
      monitor that is not a logged metric), naming the argument.
    CheckpointError: when ``resume`` finds no readable checkpoint.
    TrainingError: when the training loss becomes NaN or infinite; the last
      good checkpoint is kept.

  Examples:
    >>> seen = []
    >>> result = fit(state, train_step=step, eval_step=eval_step, dataset=data, batch_size=128,
    ...              epochs=5, hooks=[lambda end: seen.append(end.record['val_loss'])])  # doctest: +SKIP
  """
  wall_start = time.perf_counter()
  placement = placement or SingleDevice()
  _check_arguments(dataset, batch_size, eval_batch_size, epochs, checkpoint_every, data_on_device, max_steps)
  placement.check_batch_size(batch_size)
  if early_stopping is None:
    early_stopping = EarlyStopping(monitor="val_loss" if dataset.val is not None else "train_loss")
  on_device = _scans(data_on_device, dataset, max_device_bytes, state)
  runner = EpochRunner(
      train_step=train_step, eval_step=eval_step, dataset=dataset, batch_size=batch_size, placement=placement,
      shuffle_seed=shuffle_seed, eval_batch_size=eval_batch_size, on_device=on_device,
      last_step=diagnostic_step, batch_transform=batch_transform, optimizer=optimizer, trace_steps=trace_steps,
  )
  runner.check_monitors(state, _monitors(early_stopping, optimizer))
  start = _start(state, resume=resume, restore_best=restore_best, checkpointer=checkpointer, writer=writer, epochs=epochs)
  if resume and on_resume is not None:
    start = dataclasses.replace(start, state=on_resume(start.state))
  tracker = hooks_lib.TrackEarlyStopping(early_stopping, start.best_state)
  all_hooks = _all_hooks(
      tracker, hooks, checkpointer=checkpointer, writer=writer, stop_when=stop_when, max_steps=max_steps,
      checkpoint_every=checkpoint_every, epochs=epochs, progress=progress, dataset=dataset,
  )
  stopped = early_stopping.should_stop(start.state.early_stopping)  # a resumed run that had stopped early stays so
  state, history, epoch, stop_reason = run_loop(
      start, runner, all_hooks, epochs=start.epoch if stopped else epochs, max_steps=max_steps)
  if stopped:
    stop_reason = f"early stopping: {early_stopping.monitor} did not improve for {early_stopping.patience} epochs"
  summary = _summary(state, tracker.best_state, history, epoch, stop_reason, restore_best=restore_best,
                     runner=runner, optimizer=optimizer, monitor=early_stopping.monitor)
  final_state = summary.pop("final_state")
  summary["wall_seconds"] = time.perf_counter() - wall_start
  return FitResult(state=final_state, history=history, summary=summary)


def _summary(state, best_state, history, epoch, stop_reason, *, restore_best, runner, optimizer, monitor) -> dict:
  """The run's summary, with the returned state under ``'final_state'`` (the best one if restored)."""
  best_epoch = int(state.early_stopping.best_epoch)
  final_state = best_state if (restore_best and best_epoch > 0) else state
  return {
      "final_state": final_state,
      "epochs_run": epoch,
      "stop_reason": stop_reason,
      "monitor": monitor,
      "best_epoch": best_epoch,
      f"best_{monitor}": float(state.early_stopping.best_value),
      "restored_best": final_state is best_state and best_state is not state,
      "steps": int(state.step),
      "train_path": "scan" if runner.on_device else "streaming",
      **runner.speed(),
      **(optimizer.summary(state.opt_state) if optimizer is not None else {}),
      **summarize_update_ratios(history),
      **runner.evaluate_state(final_state),
  }


def _scans(data_on_device: str, dataset: Dataset, max_device_bytes: int, state: TrainState) -> bool:
  """Whether the epochs run as one scan over the split on the device (else batches stream)."""
  if data_on_device != "auto":
    return data_on_device == "always"
  return _nbytes(dataset.train) <= max_device_bytes and not convolves_on_cpu(state)


def convolves_on_cpu(state: TrainState) -> bool:
  """Whether the model convolves (a kernel of 3 or more axes) and runs on a CPU: there the scanned epoch is slow.

  XLA:CPU runs a convolution inside a loop body about 12x slower than in a
  jitted step (jax-ml/jax#12868; an MNIST-1D CNN step: 22 ms scanned,
  1.9 ms streamed), so ``data_on_device='auto'`` streams such a model's
  batches on a CPU. ``'always'`` still scans.
  """
  if jax.default_backend() != "cpu":
    return False
  return any(getattr(leaf, "ndim", 0) >= 3 for leaf in jax.tree.leaves(state.params))


def _nbytes(split) -> int:
  return split.x.nbytes + split.y.nbytes


def _all_hooks(tracker, user_hooks, *, checkpointer, writer, stop_when, max_steps, checkpoint_every, epochs,
               progress, dataset) -> list:
  """The hooks in the order they run: guard, early stopping, stopping rules, the user's, writer, checkpoints, bar."""
  hooks = [hooks_lib.NanGuard(checkpointer, dataset), tracker]
  hooks += [hooks_lib.StopWhen(stop_when)] if stop_when is not None else []
  hooks += [hooks_lib.StopAtStep(max_steps)] if max_steps is not None else []
  hooks += [hooks_lib.as_hook(hook) for hook in user_hooks]
  hooks += [hooks_lib.WriteMetrics(writer)] if writer is not None else []
  if checkpointer is not None:
    hooks.append(hooks_lib.SaveCheckpoints(checkpointer, every=checkpoint_every, last_epoch=epochs))
  hooks += [hooks_lib.ProgressBar(epochs, dataset.name)] if progress else []
  return hooks


def run_loop(start: _Start, runner: EpochRunner, hooks: Sequence, *, epochs: int, max_steps: int | None):
  """The loop: an epoch from the runner, then every hook; ``(state, history, last_epoch, stop_reason)``."""
  placement, state, history = runner.placement, start.state, list(start.history)
  placed, epoch, reason = placement.put_state(state), start.epoch, "completed all epochs"
  pollers = [hook.interrupted for hook in hooks if callable(getattr(hook, "interrupted", None))]
  interrupted = (lambda: any(poll() for poll in pollers)) if pollers else None
  try:
    for hook in hooks:
      hooks_lib.call(hook, "before_run", start.epoch)
    for epoch in range(start.epoch + 1, epochs + 1):
      left = None if max_steps is None else steps_left(int(state.step), max_steps)
      if left is not None and left <= 0:
        reason, epoch = f"reached max_steps={max_steps}", epoch - 1
        break
      placed, record = runner.run(placed, epoch, left, should_stop=interrupted)
      if record is None:  # a streamed epoch dropped by a hook: the run ends at the previous epoch
        reason, epoch = f"interrupted during epoch {epoch}, which was dropped", epoch - 1
        break
      before = placement.get_state(placed)
      end = hooks_lib.EpochEnd(epoch, record, before, _steps_done(state), getattr(runner, "last_steps", None))
      for hook in hooks:
        hooks_lib.call(hook, "after_epoch", end)
      placed, state = _place_changes(placement, placed, before, end.state), end.state
      history.append(record)
      if end.stop_reason:
        reason = end.stop_reason
        break
  finally:
    for hook in hooks:
      hooks_lib.call(hook, "close")
  return state, history, epoch, reason


def _steps_done(state) -> int:
  """The state's step count (a population's furthest member's), read on the host: nothing compiles."""
  return int(np.max(jax.device_get(state.step)))


def _place_changes(placement, placed, before: TrainState, after: TrainState):
  """``placed`` with the fields that the hooks replaced in the host view placed anew (usually only early stopping)."""
  changed = {f.name: getattr(after, f.name) for f in dataclasses.fields(after)
             if getattr(after, f.name) is not getattr(before, f.name)}
  return placed.replace(**{name: placement.put_state(value) for name, value in changed.items()}) if changed else placed


def _monitors(early_stopping: EarlyStopping, optimizer) -> dict[str, str]:
  """Every metric that something watches, with who watches it (for the error message)."""
  monitors = {early_stopping.monitor: "early_stopping.monitor (train.early_stopping.monitor in a config)"}
  for monitor in getattr(optimizer, "monitors", ()):
    monitors.setdefault(monitor, "the monitor of the optimizer's metric-driven part "
                                 "(optimizer.schedule.monitor or optimizer.momentum_off.monitor in a config)")
  return monitors


def _check_arguments(dataset, batch_size, eval_batch_size, epochs, checkpoint_every, data_on_device, max_steps):
  check_positive_int("batch_size", batch_size)
  check_positive_int("eval_batch_size", eval_batch_size)
  check_positive_int("epochs", epochs)
  check_positive_int("checkpoint_every", checkpoint_every)
  if max_steps is not None:
    check_positive_int("max_steps", max_steps)
  if data_on_device not in DATA_ON_DEVICE_CHOICES:
    raise ValueError(f"data_on_device must be one of {', '.join(DATA_ON_DEVICE_CHOICES)}, got {data_on_device!r}")
  num_train = len(dataset.train.y)
  if batch_size > num_train:
    raise ValueError(
        f"batch_size={batch_size} is larger than the training split ({num_train} examples); use at most {num_train}"
    )


def _restore_newest_intact(checkpointer, like) -> tuple[int, TrainState]:
  """The newest checkpoint that can be read; unreadable newer ones are set aside, with a warning naming them."""
  epochs = checkpointer.epochs()
  if not epochs and not checkpointer.set_aside_paths:
    raise CheckpointError(
        f"nothing to resume: no checkpoint in {checkpointer.directory}; start the run without --resume"
    )
  errors = []
  for epoch in reversed(epochs):
    try:
      state = checkpointer.restore(epoch, like=like)
    except CheckpointError as e:
      errors.append((epoch, checkpointer.set_aside(epoch), re.split(r"[;.] ", str(e))[0]))
      continue
    for skipped, moved, reason in errors:
      warnings.warn(f"checkpoint {skipped} could not be used ({reason}); resumed from epoch {epoch} instead, "
                    f"and moved it to {moved}", RecoveryWarning, stacklevel=3)
    return epoch, state
  raise CheckpointError(
      f"no checkpoint in {checkpointer.directory} can be read (set aside: {', '.join(checkpointer.set_aside_paths)}); "
      "start the run again in a new --workdir"
  )


def _start(state, *, resume: bool, restore_best: bool, checkpointer, writer, epochs: int) -> _Start:
  """The fresh start, or the latest checkpoint (with its history and best state) when resuming."""
  if not resume:
    return _Start(state, 0, [], state)
  if checkpointer is None:
    raise CheckpointError("resume=True needs a checkpointer to resume from")
  latest, state = _restore_newest_intact(checkpointer, state)
  if latest > epochs:
    raise CheckpointError(
        f"the latest checkpoint in {checkpointer.directory} is epoch {latest}, past epochs={epochs}: resume "
        f"with epochs >= {latest} (--config.train.epochs={latest} or more)"
    )
  history = writer.truncate_after(latest) if writer is not None else []
  best_epoch, best_state = int(state.early_stopping.best_epoch), state
  if restore_best and 0 < best_epoch != latest:
    without = "resume with --config.train.early_stopping.restore_best=False to go on without it"
    if best_epoch not in checkpointer.epochs():
      raise CheckpointError(f"the best epoch ({best_epoch}) has no checkpoint in {checkpointer.directory}; {without}")
    try:
      best_state = checkpointer.restore(best_epoch, like=state)
    except CheckpointError as e:
      raise CheckpointError(f"the best checkpoint cannot be read: {e}; or {without}") from e
  return _Start(state, latest, history, best_state)
