"""Hooks: what :func:`jaxreg.train.fit` does between epochs, one small object each.

After every epoch the fit loop builds an :class:`EpochEnd` (the epoch, its
metrics record and the state) and hands it to each hook in turn. A hook may
add keys to the record, replace fields of the state (the loop places the
changed fields back on the devices) or ask the loop to stop. Every built-in
behaviour between epochs is a hook: the NaN guard, early stopping, a stopping
rule, the metrics file, checkpoints and the progress bar. Users pass their
own with ``fit(..., hooks=[...])``: an object with any of the methods of
:class:`Hook`, or a plain function ``fn(end)`` used as ``after_epoch``.

Order: the NaN guard, early stopping, the stopping rules, the user's hooks,
then the writers, checkpoints and progress bar, so the user's hooks can add
to the record that is written and stop a run that is then checkpointed.

Examples:
  >>> class RecordEpochs(Hook):
  ...   def __init__(self):
  ...     self.seen = []
  ...   def after_epoch(self, end):
  ...     self.seen.append((end.epoch, end.record['train_loss']))
  >>> hook = RecordEpochs()
  >>> result = fit(state, ..., hooks=[hook])  # doctest: +SKIP
"""

import dataclasses
import math
import sys
from collections.abc import Callable

from jaxreg.errors import TrainingError
from jaxreg.train.diagnostics import non_finite_cause
from jaxreg.train.checkpoint import BEST_SO_FAR


@dataclasses.dataclass
class EpochEnd:
  """What the hooks see after an epoch.

  Attributes:
    epoch: the epoch just finished (1-based).
    record: its metrics, the line of ``metrics.jsonl``; hooks may add keys.
    state: the host view of the ``TrainState`` after the epoch; a hook may
      replace it (``end.state = end.state.replace(...)``).
    first_step: the step count before the epoch.
    steps: the epoch's training metrics per step, ``{'step': [...], 'loss':
      [...], ...}`` (host arrays, ``step`` counting from ``first_step + 1``)
      when ``fit(trace_steps=True)``, else ``None``.
    stop_reason: why the run stops after this epoch, or ``None``.

  Examples:
    >>> def stop_at_97(end):  # a hook: a function of the EpochEnd, or a Hook
    ...   if end.record.get('val_accuracy', 0) > 0.97:
    ...     end.stop('reached 97% validation accuracy')
    >>> result = fit(state, ..., hooks=[stop_at_97])  # doctest: +SKIP
  """

  epoch: int
  record: dict
  state: object
  first_step: int = 0
  steps: dict | None = None
  stop_reason: str | None = None

  def stop(self, reason: str) -> None:
    """Asks the loop to stop after this epoch; the first reason given is kept."""
    if self.stop_reason is None:
      self.stop_reason = reason


class Hook:
  """The points at which the fit loop calls a hook; subclass and override what you need.

  ``before_run(start_epoch)`` once before the first epoch (``start_epoch`` is
  0, or the epoch a resumed run restarts after); ``after_epoch(end)`` after
  each epoch; ``close()`` once at the end, also when the run fails.
  ``interrupted()`` is polled between the steps of a streamed epoch (data
  not on the device): ``True`` drops the epoch in progress and ends the run
  at its last completed epoch, so a long epoch stops within a step.

  Examples:
    >>> class PrintLoss(Hook):
    ...   def after_epoch(self, end):
    ...     print(end.epoch, round(end.record['train_loss'], 3))
    >>> result = fit(state, ..., hooks=[PrintLoss()])  # doctest: +SKIP
  """

  def before_run(self, start_epoch: int) -> None:
    del start_epoch

  def after_epoch(self, end: EpochEnd) -> None:
    del end

  def interrupted(self) -> bool:
    return False

  def close(self) -> None:
    pass


class FunctionHook(Hook):
  """A plain function ``fn(end)`` as a hook's ``after_epoch``."""

  def __init__(self, fn: Callable[[EpochEnd], None]):
    self.fn = fn

  def after_epoch(self, end: EpochEnd) -> None:
    self.fn(end)


def as_hook(hook) -> Hook:
  """``hook`` if it has a hook's methods, a :class:`FunctionHook` if it is a function; else ``TypeError``."""
  if any(hasattr(hook, name) for name in ("before_run", "after_epoch", "close")):
    return hook
  if callable(hook):
    return FunctionHook(hook)
  raise TypeError(
      f"a hook must have before_run/after_epoch/close methods (see jaxreg.train.Hook) or be a function "
      f"fn(end), got {hook!r}"
  )


def call(hook, method: str, *args) -> None:
  """Calls ``hook.method(*args)`` if the hook has it."""
  fn = getattr(hook, method, None)
  if fn is not None:
    fn(*args)


class NanGuard(Hook):
  """Fails the run with :class:`TrainingError` when the training loss is NaN or infinite; no checkpoint of it is made.

  The message says why: the data (non-finite inputs or targets, labels out
  of range: checked on the spot) or, when the data is clean, a divergence;
  and how to go on: from the last good checkpoint with a smaller learning
  rate (``fit(resume=True, on_resume=...)`` with
  :func:`jaxreg.optim.set_learning_rate`; on the command line ``--resume
  --config.optimizer.learning_rate=...``), or from the start when nothing was
  checkpointed.

  Args:
    checkpointer: the run's checkpointer (its last good checkpoint is named
      in the message), or ``None``.
    dataset: the run's data, checked when the loss is not finite, or ``None``.
  """

  def __init__(self, checkpointer=None, dataset=None):
    self.checkpointer = checkpointer
    self.dataset = dataset

  def after_epoch(self, end: EpochEnd) -> None:
    loss = end.record["train_loss"]
    if math.isfinite(loss):
      return
    cause = non_finite_cause(self.dataset) if self.dataset is not None else None
    if cause is not None:
      raise TrainingError(f"the training loss became {loss} in epoch {end.epoch} because {cause}; "
                          "clean the data and start the run again")
    last = self.checkpointer.latest_epoch() if self.checkpointer is not None else None
    if last:
      how = (f"the last good checkpoint (epoch {last}) is kept in {self.checkpointer.directory}: go on from it "
             "with a smaller rate (--resume --config.optimizer.learning_rate=<smaller>)")
    else:
      how = "nothing was checkpointed: start the run again with a smaller optimizer.learning_rate"
    checked = " (the data is finite, with labels in range)" if self.dataset is not None else ""
    raise TrainingError(
        f"the training loss became {loss} in epoch {end.epoch}: the run diverged{checked}. Lower "
        f"optimizer.learning_rate or the regularization strength; {how}"
    )


class TrackEarlyStopping(Hook):
  """Updates the early-stopping state with the monitored metric, keeps the best state, stops when patience runs out.

  Args:
    early_stopping: the :class:`~jaxreg.train.EarlyStopping` rule.
    best_state: the best state so far (the start state, or a resumed run's best).
  """

  def __init__(self, early_stopping, best_state):
    self.rule = early_stopping
    self.best_state = best_state

  def after_epoch(self, end: EpochEnd) -> None:
    es_state, improved = self.rule.update(end.state.early_stopping, end.record[self.rule.monitor], end.epoch)
    end.state = end.state.replace(early_stopping=es_state)
    if improved:
      self.best_state = end.state
    if self.rule.should_stop(es_state):
      end.stop(f"early stopping: {self.rule.monitor} did not improve for {self.rule.patience} epochs")


class StopWhen(Hook):
  """Stops when ``fn(record)`` returns a reason (e.g. a target training loss)."""

  def __init__(self, fn: Callable[[dict], str | None]):
    self.fn = fn

  def after_epoch(self, end: EpochEnd) -> None:
    reason = self.fn(end.record)
    if reason:
      end.stop(reason)


class StopAtStep(Hook):
  """Stops once the optimizer step reaches ``max_steps``."""

  def __init__(self, max_steps: int):
    self.max_steps = max_steps

  def after_epoch(self, end: EpochEnd) -> None:
    if end.record["step"] >= self.max_steps:
      end.stop(f"reached max_steps={self.max_steps}")


class WriteMetrics(Hook):
  """Appends each epoch's record to a :class:`~jaxreg.train.MetricWriter`."""

  def __init__(self, writer):
    self.writer = writer

  def after_epoch(self, end: EpochEnd) -> None:
    self.writer.write(end.record)


class SaveCheckpoints(Hook):
  """Saves the state every ``every`` epochs, at the last epoch and when the run stops; waits for saves at the end.

  Each checkpoint's metrics are the epoch's record and ``best_so_far`` (the
  epoch if early stopping counts it the best so far), by which a
  :class:`~jaxreg.train.Checkpointer` keeps the best model by default.
  """

  def __init__(self, checkpointer, *, every: int, last_epoch: int):
    self.checkpointer = checkpointer
    self.every = every
    self.last_epoch = last_epoch

  def after_epoch(self, end: EpochEnd) -> None:
    if end.epoch % self.every == 0 or end.epoch == self.last_epoch or end.stop_reason:
      best = int(end.state.early_stopping.best_epoch) == end.epoch
      self.checkpointer.save(end.epoch, end.state, {**end.record, BEST_SO_FAR: end.epoch if best else 0})

  def close(self) -> None:
    self.checkpointer.close()


def shows_bars(stream=None) -> bool:
  """Whether a progress bar can redraw itself on ``stream`` (default ``sys.stderr``): a terminal, or a notebook.

  Elsewhere (a log file, a pipe, CI) a bar's carriage returns pile up on one
  line, so :class:`ProgressBar` prints one line per epoch instead.
  """
  stream = sys.stderr if stream is None else stream
  try:
    if stream.isatty():
      return True
  except (AttributeError, ValueError):  # a closed or bare stream
    return False
  shell = sys.modules.get("IPython")
  ipython = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
  return ipython is not None and type(ipython).__name__ == "ZMQInteractiveShell"


class ProgressBar(Hook):
  """Progress over the epochs with the latest losses and validation accuracy.

  A tqdm bar on a terminal or in a notebook; elsewhere (``style='auto'`` and
  the output going to a file or a pipe, or ``style='lines'``) one plain line
  per epoch, e.g. ``digits epoch 3/50: train_loss 0.2451 val_loss 0.2710
  val_accuracy 0.9389 (0.4 s)``.

  Args:
    total: the last epoch.
    description: the bar's label (the dataset's name in ``fit``).
    style: ``'auto'``, ``'bar'`` or ``'lines'``.
    stream: where the lines go (default ``sys.stderr``, as the bar).
  """

  KEYS = ("train_loss", "val_loss", "val_accuracy")

  def __init__(self, total: int, description: str = "", style: str = "auto", stream=None):
    if style not in ("auto", "bar", "lines"):
      raise ValueError(f"style must be 'auto', 'bar' or 'lines', got {style!r}")
    self.total, self.description, self.stream = total, description, stream
    self.lines = style == "lines" or (style == "auto" and not shows_bars(stream))
    self.bar = None

  def before_run(self, start_epoch: int) -> None:
    if self.lines:
      return
    from tqdm.auto import tqdm  # imported here: ``import jaxreg.train`` does not load tqdm

    self.bar = tqdm(total=self.total, initial=start_epoch, unit="epoch", desc=self.description, dynamic_ncols=True)

  def after_epoch(self, end: EpochEnd) -> None:
    shown = {k: end.record[k] for k in self.KEYS if end.record.get(k) is not None}
    if self.lines:
      values = " ".join(f"{k} {v:.4f}" for k, v in shown.items())
      seconds = end.record.get("seconds")
      took = f" ({seconds:.1f} s)" if seconds is not None else ""
      print(f"{self.description} epoch {end.epoch}/{self.total}: {values}{took}".lstrip(),
            file=self.stream or sys.stderr, flush=True)
      return
    self.bar.set_postfix({k: f"{v:.4f}" for k, v in shown.items()}, refresh=False)
    self.bar.update(1)

  def close(self) -> None:
    if self.bar is not None:
      self.bar.close()
