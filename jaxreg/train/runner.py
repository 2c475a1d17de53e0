"""The epoch runner: the compiled part of :func:`jaxreg.train.fit`, one epoch and its evaluation per call.

:class:`EpochRunner` trains one epoch (one compiled ``lax.scan`` when the
split is on the device, streamed batches otherwise), evaluates every split,
applies the optimizer's metric-driven changes with one compiled call on the
placed state, and returns the epoch's metrics record. The optional
``batch_transform(batch, key) -> batch`` runs on every training batch inside
the compiled step (augmentation, input noise), with a key of its own per step.
"""

import time

import jax
import numpy as np

from jaxreg.data.datasets import Dataset
from jaxreg.train.diagnostics import is_diagnostic
from jaxreg.train.epochs import STEP_TRACE
from jaxreg.train.step import with_batch_transform


def _logged_learning_rate(opt_state) -> dict:
  from jaxreg.optim import current_learning_rate  # a plain optax optimizer logs its injected rate, if any

  return {"learning_rate": current_learning_rate(opt_state)}


class EpochRunner:
  """Runs epochs of ``train_step`` and evaluations of ``eval_step`` on a placement.

  Args:
    train_step: ``step(state, batch) -> (state, metrics)``.
    eval_step: ``eval_step(state, batch) -> metrics`` (with ``count``).
    dataset: the splits, as host arrays.
    batch_size: examples per step.
    placement: where the run lives (:class:`~jaxreg.train.epochs.SingleDevice`,
      ``Pmap``, ``Sharded``).
    shuffle_seed: seed of the epoch order.
    eval_batch_size: examples per evaluation batch.
    on_device: run the epoch as one scan over the split on the device (else stream).
    last_step: the step for each epoch's last batch (diagnostics), or ``None``.
    batch_transform: ``fn(batch, key) -> batch`` applied to every training
      batch inside the compiled step, or ``None``.
    optimizer: the :class:`~jaxreg.optim.Optimizer` bundle, for its logged
      hyperparameters and metric-driven parts, or ``None``.
    trace_steps: keep every step's training metrics; after each epoch they
      are in :attr:`last_steps` (``{'step': [...], <metric>: [...]}``).
  """

  def __init__(self, *, train_step, eval_step, dataset: Dataset, batch_size: int, placement, shuffle_seed: int,
               eval_batch_size: int, on_device: bool, last_step=None, batch_transform=None, optimizer=None,
               trace_steps: bool = False):
    self.placement, self.dataset, self.batch_size = placement, dataset, batch_size
    self.train_step, self.eval_step = train_step, eval_step
    if batch_transform is not None:
      train_step = with_batch_transform(train_step, batch_transform, axis_name=placement.axis_name)
      last_step = last_step and with_batch_transform(last_step, batch_transform, axis_name=placement.axis_name)
    train = dataset.train
    self.steps_per_epoch = len(train.y) // batch_size
    self.on_device = on_device
    self.run_epoch = placement.make_epoch(
        train_step, on_device=on_device, shuffle_key=jax.random.PRNGKey(shuffle_seed),
        num_examples=len(train.y), batch_size=batch_size, last_step=last_step,
        **({"trace_steps": True} if trace_steps else {}),
    )
    self.last_steps = None
    self.x_train, self.y_train = placement.put_train_data(train.x, train.y, on_device)
    self.eval_sets = self._put_eval_sets(eval_batch_size)
    self.evaluate = placement.make_evaluate(eval_step)
    self.logged = optimizer.logged if optimizer is not None else _logged_learning_rate
    self.monitors = optimizer.monitors if optimizer is not None else ()
    self.observe = None
    if self.monitors:
      self.observe = placement.compile_state_fn(
          lambda state, metrics: state.replace(opt_state=optimizer.observe(state.opt_state, metrics))
      )
    self.first_epoch_seconds, self.timed_steps, self.timed_seconds = None, 0, 0.0

  def _put_eval_sets(self, eval_batch_size: int) -> dict:
    splits = {name: s for name, s in (("val", self.dataset.val), ("test", self.dataset.test)) if s is not None}
    # Every split laid out like the largest, so validation and test share one compiled evaluation.
    layout = max((len(split.y) for split in splits.values()), default=None)
    return {
        name: self.placement.put_eval_batches(split.x, split.y, eval_batch_size, num_examples=layout)
        for name, split in splits.items()
    }

  def metric_names(self, state) -> list[str]:
    """The names an epoch's record holds metrics under, known without compiling anything."""
    return logged_metric_names(self.placement, self.train_step, self.eval_step, state, self.dataset, self.batch_size)

  def check_monitors(self, state, monitors: dict[str, str]) -> None:
    """Raises ``ValueError`` if a monitor is not a logged metric; ``monitors`` maps each to who watches it."""
    available = self.metric_names(state)
    for monitor, who in monitors.items():
      if monitor not in available:
        raise ValueError(f"{monitor!r}, {who}, is not a logged metric; choose one of: {', '.join(available)}")

  def run(self, placed, epoch: int, num_steps: int | None = None, should_stop=None) -> tuple[object, dict | None]:
    """Trains epoch ``epoch`` (cut to ``num_steps`` steps if given) and evaluates: ``(placed_state, record)``.

    On the streaming path ``should_stop()`` is polled between steps; when it
    says so the epoch is dropped and the record is ``None``.
    """
    start = time.perf_counter()
    short = num_steps is not None and num_steps < self.steps_per_epoch
    options = {"num_steps": num_steps} if short else {}
    if should_stop is not None and not self.on_device:
      options["should_stop"] = should_stop
    placed, train_metrics = self.run_epoch(placed, self.x_train, self.y_train, epoch, **options)
    if train_metrics is None:
      return placed, None
    host = self.placement.get_state(placed)
    train_metrics, step = jax.device_get((self.placement.host_metrics(train_metrics), host.step))
    self.last_steps = self._step_trace(train_metrics.pop(STEP_TRACE, None), int(step))
    train_seconds = time.perf_counter() - start
    self._time(train_seconds, short)
    evaluated = {name: self.evaluate(placed, batches) for name, batches in self.eval_sets.items()}
    record = {"epoch": epoch, "step": int(step)}
    record.update({k if is_diagnostic(k) else f"train_{k}": float(v) for k, v in train_metrics.items()})
    for name, metrics in jax.device_get(evaluated).items():  # every split dispatched, then one wait
      record.update({f"{name}_{k}": float(v) for k, v in metrics.items()})
    record.update(self.logged(host.opt_state))  # the values this epoch trained with
    record["train_seconds"] = train_seconds
    record["seconds"] = time.perf_counter() - start
    if self.observe is not None:
      placed = self.observe(placed, {m: np.float32(record[m]) for m in self.monitors})
    return placed, record

  @staticmethod
  def _step_trace(trace: dict | None, step: int) -> dict | None:
    """The per-step metrics with their step numbers, the last being ``step``."""
    if trace is None:
      return None
    count = len(next(iter(trace.values())))
    return {"step": np.arange(step - count + 1, step + 1), **{k: np.asarray(v) for k, v in trace.items()}}

  def _time(self, train_seconds: float, short: bool) -> None:
    if self.first_epoch_seconds is None:
      self.first_epoch_seconds = train_seconds  # includes compilation
    elif not short:  # a short last epoch compiles its own scan: leave it out of the speed
      self.timed_steps += self.steps_per_epoch
      self.timed_seconds += train_seconds

  def speed(self) -> dict:
    """``first_epoch_seconds`` and steady-state ``steps_per_second`` (the first epoch's if there is no other)."""
    if self.timed_seconds > 0:
      rate = self.timed_steps / self.timed_seconds
    else:
      rate = self.steps_per_epoch / self.first_epoch_seconds if self.first_epoch_seconds else None
    return {"first_epoch_seconds": self.first_epoch_seconds, "steps_per_second": rate}

  def evaluate_state(self, state) -> dict:
    """``val_*`` and ``test_*`` metrics of a host-view state (``None`` for a split that is absent)."""
    placed = self.placement.put_state(state) if self.eval_sets else None
    summary = {}
    for name in ("val", "test"):
      metrics = (
          {k: float(v) for k, v in jax.device_get(self.evaluate(placed, self.eval_sets[name])).items()}
          if name in self.eval_sets else {"loss": None, "accuracy": None}
      )
      summary.update({f"{name}_{k}": v for k, v in metrics.items()})
    return summary


def logged_metric_names(placement, train_step, eval_step, state, dataset: Dataset, batch_size: int) -> list[str]:
  """The metrics an epoch's record holds (``train_loss``, ``val_accuracy``, ...), from shapes alone (no compilation)."""
  train = dataset.train
  batch = {"x": train.x[:batch_size], "y": train.y[:batch_size]}
  names = [f"train_{k}" for k in sorted(placement.output_shapes(train_step, state, batch)[1]) if not is_diagnostic(k)]
  eval_names = placement.output_shapes(eval_step, state, {"x": train.x[:1], "y": train.y[:1]})
  for split in ("val", "test"):
    if getattr(dataset, split) is not None:
      names += [f"{split}_{k}" for k in sorted(eval_names) if k != "count"]
  return names


def steps_left(step: int, max_steps: int | None) -> int | None:
  """Steps before ``max_steps`` (``None``: no limit)."""
  return None if max_steps is None else max_steps - step

