"""``fit``: epochs on the host, each epoch one compiled ``lax.scan`` when the data fits.

Between epochs the loop evaluates, updates early stopping, writes metrics,
checkpoints and moves the progress bar; within an epoch there is no host
round-trip per step. A placement (:mod:`jaxreg.train.epochs`,
:mod:`jaxreg.parallel`) says whether the epochs run on one device, under
``pmap`` or on a sharded mesh; the loop itself is the same.
"""

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import jax

from jaxreg.data.datasets import Dataset
from jaxreg.errors import CheckpointError, ConfigError, TrainingError
from jaxreg.optim.factory import current_learning_rate
from jaxreg.optim.momentum_switch import injected_momentum, momentum_off_after
from jaxreg.train.checkpoint import Checkpointer
from jaxreg.train.diagnostics import is_diagnostic, summarize_update_ratios
from jaxreg.train.early_stopping import EarlyStopping
from jaxreg.train.epochs import SingleDevice
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
  """

  state: TrainState
  history: list[dict]
  summary: dict


def _check_positive_int(name: str, value) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ConfigError(f"{name} must be a positive integer, got {value!r}")


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
    optimizer_rules: Sequence = (),
    max_steps: int | None = None,
    stop_when: Callable[[dict], str | None] | None = None,
    placement=None,
) -> FitResult:
  """Trains ``state`` for ``epochs`` epochs, evaluating after each.

  Each epoch reshuffles the training split with ``fold_in(PRNGKey(shuffle_seed), epoch)``
  and takes ``len(train) // batch_size`` steps on full batches. When the
  training split fits on the device (``data_on_device``) the whole epoch is
  one compiled ``lax.scan``; otherwise batches stream from the host to a
  jitted step. After each epoch the validation and test splits are
  evaluated, early stopping is updated, a line goes to ``writer`` and a
  checkpoint to ``checkpointer``.

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
      ``max_device_bytes``), ``'always'`` or ``'never'`` (stream).
    max_device_bytes: the size limit of ``'auto'``.
    diagnostic_step: ``train_step`` built with ``diagnostics=True``; if given,
      it takes each epoch's last step, and the update-to-weight ratios and
      gradient norm it reports go to the record (see
      :mod:`jaxreg.train.diagnostics`) and their medians to the summary.
    optimizer_rules: rules applied to the optimizer state after each
      evaluation, each with a ``monitor`` (a logged metric) and
      ``apply(opt_state, value) -> opt_state``:
      :class:`~jaxreg.optim.plateau.ReduceOnPlateau` (its optimizer must
      contain ``scale_by_plateau``) and
      :class:`~jaxreg.optim.momentum_switch.MomentumOffOnPlateau`.
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

  Returns:
    A :class:`FitResult`.

  Raises:
    ConfigError: for impossible settings (e.g. a batch larger than the split).
    CheckpointError: when ``resume`` finds no readable checkpoint.
    TrainingError: when the training loss becomes NaN or infinite; the last
      good checkpoint is kept.
  """
  wall_start = time.perf_counter()
  _check_positive_int("data.batch_size", batch_size)
  _check_positive_int("data.eval_batch_size", eval_batch_size)
  _check_positive_int("train.epochs", epochs)
  _check_positive_int("checkpoint.every", checkpoint_every)
  if data_on_device not in DATA_ON_DEVICE_CHOICES:
    raise ConfigError(
        f"data.on_device must be one of {', '.join(DATA_ON_DEVICE_CHOICES)}, got {data_on_device!r}"
    )
  train = dataset.train
  num_train = len(train.y)
  if batch_size > num_train:
    raise ConfigError(
        f"data.batch_size={batch_size} is larger than the training split ({num_train} examples); "
        f"use at most {num_train}"
    )
  placement = placement or SingleDevice()
  placement.check_batch_size(batch_size)
  if early_stopping is None:
    early_stopping = EarlyStopping(monitor="val_loss" if dataset.val is not None else "train_loss")

  eval_splits = {name: split for name, split in (("val", dataset.val), ("test", dataset.test)) if split is not None}
  # Every split laid out like the largest, so validation and test share one compiled evaluation.
  layout = max((len(split.y) for split in eval_splits.values()), default=None)
  eval_sets = {
      name: placement.put_eval_batches(split.x, split.y, eval_batch_size, num_examples=layout)
      for name, split in eval_splits.items()
  }
  shuffle_key = jax.random.PRNGKey(shuffle_seed)
  train_bytes = train.x.nbytes + train.y.nbytes
  on_device = data_on_device == "always" or (
      data_on_device == "auto" and train_bytes <= max_device_bytes
  )
  epoch_kwargs = dict(
      shuffle_key=shuffle_key, num_examples=num_train, batch_size=batch_size, last_step=diagnostic_step
  )
  run_epoch = placement.make_epoch(train_step, on_device=on_device, **epoch_kwargs)
  x_train, y_train = placement.put_train_data(train.x, train.y, on_device)
  evaluate = placement.make_evaluate(eval_step)

  # Metric names, known without compiling anything, so a wrong monitor fails now.
  train_names = placement.output_shapes(
      train_step, state, {"x": train.x[:batch_size], "y": train.y[:batch_size]}
  )[1]
  available = [f"train_{k}" for k in sorted(train_names) if not is_diagnostic(k)]
  eval_names = sorted(
      k for k in placement.output_shapes(eval_step, state, {"x": train.x[:1], "y": train.y[:1]}) if k != "count"
  )
  for name in eval_sets:
    available += [f"{name}_{k}" for k in eval_names]
  if early_stopping.monitor not in available:
    raise ConfigError(
        f"train.early_stopping.monitor={early_stopping.monitor!r} is not a logged metric; "
        f"choose one of: {', '.join(available)}"
    )
  for rule in optimizer_rules:
    if rule.monitor not in available:
      raise ConfigError(
          f"the monitor {rule.monitor!r} of {type(rule).__name__} (optimizer.schedule.monitor or "
          f"optimizer.momentum_off.monitor) is not a logged metric; choose one of: {', '.join(available)}"
      )

  start_epoch, history = 0, []
  if resume:
    if checkpointer is None:
      raise CheckpointError("resume=True needs a checkpointer to resume from")
    latest = checkpointer.latest_epoch()
    if latest is None:
      raise CheckpointError(
          f"nothing to resume: no checkpoint in {checkpointer.directory}; "
          "start the run without --resume"
      )
    state = checkpointer.restore(latest, like=state)
    start_epoch = latest
    if writer is not None:
      history = writer.truncate_after(start_epoch)
  best_state = state
  best_epoch = int(state.early_stopping.best_epoch)
  if resume and restore_best and 0 < best_epoch != start_epoch:
    if best_epoch in checkpointer.epochs():
      best_state = checkpointer.restore(best_epoch, like=state)
    else:
      raise CheckpointError(
          f"the best epoch ({best_epoch}) has no checkpoint in {checkpointer.directory}, so "
          "restore_best cannot be honoured; resume with train.early_stopping.restore_best=False"
      )

  from tqdm.auto import tqdm  # imported here: ``import jaxreg.train`` does not load tqdm

  bar = tqdm(
      total=epochs, initial=start_epoch, disable=not progress, unit="epoch",
      desc=dataset.name, dynamic_ncols=True,
  )
  stop_reason = "completed all epochs"
  timed_steps, timed_seconds, first_epoch_seconds = 0, 0.0, None
  steps_per_epoch = num_train // batch_size
  if max_steps is not None:
    _check_positive_int("max_steps", max_steps)
  epoch = start_epoch
  placed_state = placement.put_state(state)  # kept placed across epochs; the host's changes are re-placed
  try:
    for epoch in range(start_epoch + 1, epochs + 1):
      epoch_start = time.perf_counter()
      steps_left = None if max_steps is None else max_steps - int(state.step)
      if steps_left is not None and steps_left <= 0:
        stop_reason = f"reached max_steps={max_steps}"
        epoch -= 1
        break
      short = steps_left is not None and steps_left < steps_per_epoch
      placed_state, train_metrics = run_epoch(
          placed_state, x_train, y_train, epoch, **({"num_steps": steps_left} if short else {})
      )
      state = placement.get_state(placed_state)
      train_metrics, step, lr, alpha = jax.device_get((
          placement.host_metrics(train_metrics), state.step, current_learning_rate(state.opt_state),
          injected_momentum(state.opt_state),
      ))
      train_seconds = time.perf_counter() - epoch_start
      if first_epoch_seconds is None:
        first_epoch_seconds = train_seconds  # includes compilation
      elif not short:  # a short last epoch compiles its own scan: leave it out of the speed
        timed_steps += steps_per_epoch
        timed_seconds += train_seconds
      if not math.isfinite(float(train_metrics["loss"])):
        last = checkpointer.latest_epoch() if checkpointer is not None else None
        raise TrainingError(
            f"the training loss became {float(train_metrics['loss'])} in epoch {epoch}; lower "
            "optimizer.learning_rate or the regularization strength"
            + (f"; the last good checkpoint (epoch {last}) is kept in {checkpointer.directory}" if last else "")
        )
      record = {"epoch": epoch, "step": int(step)}
      record.update({k if is_diagnostic(k) else f"train_{k}": float(v) for k, v in train_metrics.items()})
      # Dispatch every split's evaluation, then wait once.
      evaluated = jax.device_get({name: evaluate(placed_state, batches) for name, batches in eval_sets.items()})
      for name, metrics in evaluated.items():
        record.update({f"{name}_{k}": float(v) for k, v in metrics.items()})
      record["learning_rate"] = None if lr is None else float(lr)
      if alpha is not None:
        record["momentum"] = float(alpha)
      record["train_seconds"] = train_seconds
      record["seconds"] = time.perf_counter() - epoch_start

      for rule in optimizer_rules:
        state = state.replace(opt_state=rule.apply(state.opt_state, record[rule.monitor]))
      es_state, improved = early_stopping.update(state.early_stopping, record[early_stopping.monitor], epoch)
      state = state.replace(early_stopping=es_state)
      placed_state = placed_state.replace(
          early_stopping=placement.put_state(es_state),
          opt_state=placement.put_state(state.opt_state) if optimizer_rules else placed_state.opt_state,
      )
      if improved:
        best_state = state
      history.append(record)
      if writer is not None:
        writer.write(record)
      stop = stop_when(record) if stop_when is not None else None
      if early_stopping.should_stop(es_state):
        stop = (
            f"early stopping: {early_stopping.monitor} did not improve for "
            f"{early_stopping.patience} epochs"
        )
      elif not stop and max_steps is not None and int(step) >= max_steps:
        stop = f"reached max_steps={max_steps}"
      if checkpointer is not None and (epoch % checkpoint_every == 0 or epoch == epochs or stop):
        checkpointer.save(epoch, state, record)
      bar.set_postfix(_postfix(record), refresh=False)
      bar.update(1)
      if stop:
        stop_reason = stop
        break
  finally:
    bar.close()
    if checkpointer is not None:
      checkpointer.close()

  best_epoch = int(state.early_stopping.best_epoch)
  final_state = best_state if (restore_best and best_epoch > 0) else state
  summary = {
      "epochs_run": epoch,
      "stop_reason": stop_reason,
      "monitor": early_stopping.monitor,
      "best_epoch": best_epoch,
      f"best_{early_stopping.monitor}": float(state.early_stopping.best_value),
      "restored_best": final_state is best_state and best_state is not state,
      "steps": int(state.step),
      "train_path": "scan" if on_device else "streaming",
      "first_epoch_seconds": first_epoch_seconds,
      "steps_per_second": (timed_steps / timed_seconds) if timed_seconds > 0 else (
          steps_per_epoch / first_epoch_seconds if first_epoch_seconds else None
      ),
  }
  off_after = momentum_off_after(state.opt_state)
  if off_after is not None:
    summary["momentum_off_after_epoch"] = off_after
  summary.update(summarize_update_ratios(history))
  placed_final = placement.put_state(final_state) if eval_sets else None
  for name in ("val", "test"):
    metrics = (
        {k: float(v) for k, v in jax.device_get(evaluate(placed_final, eval_sets[name])).items()}
        if name in eval_sets else {"loss": None, "accuracy": None}
    )
    summary.update({f"{name}_{k}": v for k, v in metrics.items()})
  summary["wall_seconds"] = time.perf_counter() - wall_start
  return FitResult(state=final_state, history=history, summary=summary)


def _postfix(record: dict) -> dict:
  keys = ("train_loss", "val_loss", "val_accuracy")
  return {k: f"{record[k]:.4f}" for k in keys if record.get(k) is not None}
