"""TensorBoard event files beside ``metrics.jsonl``, written without TensorFlow (:mod:`jaxreg.train.event_file`).

:class:`WriteTensorBoard` is a fit hook: after each epoch it writes every
number of the epoch's record (the line of ``metrics.jsonl``) as a scalar at
the run's step count, and with ``every_steps`` the training metrics of every
N-th step, and optionally histograms of the weights. A resumed run tells
TensorBoard to drop what the interrupted run wrote after the checkpoint it
resumes from (``purge_step``), as ``metrics.jsonl`` is truncated.

Read the files with TensorBoard (``tensorboard --logdir WORKDIR/tensorboard``)
or :func:`read_scalars`.
"""

import os

import jax
import numpy as np

from jaxreg.train.event_file import EventFileWriter
from jaxreg.train.hooks import EpochEnd, Hook

TENSORBOARD_SUBDIR = "tensorboard"
SPLITS = ("train", "val", "test")
_NOT_SCALARS = ("epoch", "step")


def tensorboard_tag(key: str) -> str:
  """The TensorBoard tag of a record key: ``'val_accuracy'`` -> ``'val/accuracy'``; other keys as they are.

  The prefix before the first ``/`` is the group TensorBoard draws a tag in,
  so the training, validation and test metrics get a panel each.

  Examples:
    >>> tensorboard_tag('train_loss'), tensorboard_tag('learning_rate')
    ('train/loss', 'learning_rate')
  """
  split, sep, rest = key.partition("_")
  return f"{split}/{rest}" if sep and split in SPLITS else key


def _is_number(value) -> bool:
  return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def scalars(record: dict) -> dict[str, float]:
  """The TensorBoard scalars of a record: each number under its tag; a population's per-member lists as
  ``<tag>/member_<i>`` (members without a value left out).

  Examples:
    >>> scalars({'epoch': 2, 'step': 38, 'train_loss': 0.25, 'val_accuracy': [0.9, None], 'active': [True, False]})
    {'train/loss': 0.25, 'val/accuracy/member_0': 0.9}
  """
  out = {}
  for key, value in record.items():
    if key in _NOT_SCALARS:
      continue
    if _is_number(value):
      out[tensorboard_tag(key)] = float(value)
    elif isinstance(value, list):
      out.update({f"{tensorboard_tag(key)}/member_{i}": float(v) for i, v in enumerate(value) if _is_number(v)})
  return out


class WriteTensorBoard(Hook):
  """A fit hook writing each epoch's record to TensorBoard event files in ``logdir``.

  Args:
    logdir: the folder of the event files (``WORKDIR/tensorboard`` in a run).
    every_steps: also write the training metrics of every step whose count
      is a multiple of this (tags ``steps/<metric>``), from the epoch's
      per-step trace (``fit(trace_steps=True)``; single runs); ``0``: epochs only.
    histograms: write a histogram of every parameter array after each epoch.

  Examples:
    >>> result = fit(state, ..., hooks=[WriteTensorBoard('/tmp/run/tensorboard')])  # doctest: +SKIP
  """

  def __init__(self, logdir: str, *, every_steps: int = 0, histograms: bool = False):
    if isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 0:
      raise ValueError(f"every_steps must be an integer >= 0 (0: once per epoch), got {every_steps!r}")
    self.logdir, self.every_steps, self.histograms = logdir, every_steps, histograms
    self.writer, self.resumed = None, False

  def before_run(self, start_epoch: int) -> None:
    self.resumed = start_epoch > 0

  def _open(self, first_step: int) -> None:
    os.makedirs(self.logdir, exist_ok=True)
    earlier = any(name.startswith("events.") for name in os.listdir(self.logdir))
    self.writer = EventFileWriter(self.logdir)
    if earlier and self.resumed:  # TensorBoard drops the earlier files' events from here: the epochs trained again
      self.writer.purge_from(first_step + 1)

  def after_epoch(self, end: EpochEnd) -> None:
    if self.writer is None:
      self._open(end.first_step)
    step = int(np.max(end.record["step"]))  # a population's: its furthest member's
    for tag, value in scalars(end.record).items():
      self.writer.scalar(tag, value, step)
    self.writer.scalar("epoch", end.epoch, step)
    if self.every_steps and end.steps is not None:
      self._write_steps(end.steps)
    if self.histograms:
      for path, leaf in jax.tree_util.tree_leaves_with_path(end.state.params):
        name = "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
        self.writer.histogram(f"params/{name}", np.asarray(leaf), step)
    self.writer.flush()

  def _write_steps(self, steps: dict) -> None:
    numbers = np.asarray(steps["step"])
    chosen = np.flatnonzero(numbers % self.every_steps == 0)
    for key, values in steps.items():
      if key != "step":
        for i in chosen:
          self.writer.scalar(f"steps/{key}", float(values[i]), int(numbers[i]))

  def close(self) -> None:
    if self.writer is not None:
      self.writer.close()
      self.writer = None


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
  """Every scalar in ``logdir``'s event files, ``{tag: [(step, value), ...]}``, read by TensorBoard's own reader.

  Purged steps (see :class:`WriteTensorBoard`) are left out, as TensorBoard
  shows them. Needs the ``tensorboard`` package (``pip install 'jaxreg[tensorboard]'``).

  Examples:
    >>> read_scalars('runs/digits_mlp/x/tensorboard')['val/accuracy'][-1]  # doctest: +SKIP
    (190, 0.9722)
  """
  try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  except ImportError:
    raise ImportError("reading event files needs TensorBoard: pip install 'jaxreg[tensorboard]'") from None
  accumulator = EventAccumulator(logdir, size_guidance={"scalars": 0})
  accumulator.Reload()
  return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
          for tag in accumulator.Tags()["scalars"]}


__all__ = ["TENSORBOARD_SUBDIR", "WriteTensorBoard", "read_scalars", "scalars", "tensorboard_tag"]
