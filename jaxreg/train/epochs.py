"""One epoch of training and one evaluation, compiled, and where their arrays live.

:func:`make_scan_epoch` runs a whole epoch as one ``lax.scan`` over a
training split that lives on the device; :func:`make_streaming_epoch` feeds
host batches to a jitted step when it does not fit. :class:`SingleDevice` is
the placement that :func:`jaxreg.train.fit` uses by default; the data-parallel
placements of :mod:`jaxreg.parallel` (``Pmap``, ``Sharded``) have the same
methods, so ``fit`` runs unchanged on one device or many.
"""

import functools
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from jaxreg.data.iterators import epoch_batch_indices, eval_layout, padded_batches


def with_last_step(summed: dict, last: dict, num_steps: int) -> dict:
  """Epoch means of the metrics summed over the first steps plus the last step's; its extras as they are."""
  return {k: (summed[k] + v) / num_steps if k in summed else v for k, v in last.items()}


STEP_TRACE = "per_step"


def with_step_trace(means: dict, stacked: dict, last: dict | None) -> dict:
  """``means`` with the per-step metrics under :data:`STEP_TRACE`: ``stacked`` (one row per step), then ``last``'s."""
  per_step = stacked if last is None else {k: jnp.append(v, last[k]) for k, v in stacked.items()}
  return {**means, STEP_TRACE: per_step}


def scan_epoch_body(train_step: Callable, last_step: Callable | None, batch_indices: Callable, constrain=None,
                    trace_steps: bool = False):
  """``run(state, x, y, epoch, num_steps) -> (state, mean_metrics)``: the traced body of one scanned epoch.

  Args:
    train_step: the step.
    last_step: the step for the epoch's last batch (e.g. with diagnostics), or ``None``.
    batch_indices: ``fn(epoch, num_steps) -> (steps, batch)`` indices into ``x`` and ``y``.
    constrain: ``fn(batch) -> batch`` applied to every gathered batch (a
      sharding constraint), or ``None``.
    trace_steps: also return every step's metrics, under :data:`STEP_TRACE`
      (the scan stacks them anyway: this only keeps them).
  """
  constrain = constrain or (lambda batch: batch)
  keep = with_step_trace if trace_steps else (lambda means, stacked, last: means)

  def run(state, x, y, epoch, num_steps):
    indices = batch_indices(epoch, num_steps)

    def body(state, idx):
      return train_step(state, constrain({"x": x[idx], "y": y[idx]}))

    if last_step is None:
      state, metrics = jax.lax.scan(body, state, indices)
      return state, keep(jax.tree.map(jnp.mean, metrics), metrics, None)
    state, metrics = jax.lax.scan(body, state, indices[:-1])
    state, last = last_step(state, constrain({"x": x[indices[-1]], "y": y[indices[-1]]}))
    return state, keep(with_last_step(jax.tree.map(jnp.sum, metrics), last, len(indices)), metrics, last)

  return run


def make_scan_epoch(
    train_step: Callable, *, shuffle_key: jax.Array, num_examples: int, batch_size: int,
    last_step: Callable | None = None, trace_steps: bool = False,
):
  """Returns a jitted ``epoch(state, x, y, epoch) -> (state, mean_metrics)`` running one ``lax.scan``.

  ``x`` and ``y`` are the whole training split on the device; each step
  gathers its batch by index, so nothing crosses to the host within an epoch.
  ``num_steps`` (static) cuts the epoch short after that many steps.
  With ``last_step`` (e.g. a step with diagnostics), the epoch's last batch
  goes through it instead of ``train_step``; metrics only it reports are
  returned as its values rather than means. With ``trace_steps`` the
  metrics also hold every step's (:func:`scan_epoch_body`).

  Examples:
    >>> epoch = make_scan_epoch(train_step, shuffle_key=jax.random.key(0), num_examples=len(y), batch_size=64)  # doctest: +SKIP
    >>> state, metrics = epoch(state, jax.device_put(x), jax.device_put(y), 0)  # doctest: +SKIP
  """

  def batch_indices(epoch, num_steps):
    return epoch_batch_indices(shuffle_key, epoch, num_examples, batch_size)[:num_steps]

  run = scan_epoch_body(train_step, last_step, batch_indices, trace_steps=trace_steps)

  @functools.partial(jax.jit, static_argnames="num_steps")
  def run_epoch(state, x, y, epoch, num_steps=None):
    return run(state, x, y, epoch, num_steps)

  return run_epoch


def make_streaming_epoch(
    train_step: Callable, *, shuffle_key: jax.Array, num_examples: int, batch_size: int,
    last_step: Callable | None = None, place_batch: Callable | None = None, compile_step: Callable = jax.jit,
    trace_steps: bool = False,
):
  """Returns ``epoch(state, x, y, epoch) -> (state, mean_metrics)`` that feeds host batches to a compiled step.

  Used when the training split does not fit on the device. It visits the
  examples in the same order as :func:`make_scan_epoch`, and treats
  ``last_step`` the same way. ``place_batch(batch) -> batch`` moves each
  host batch (``None``: left to ``compile_step``); ``compile_step`` turns a step into
  the function that runs it (``jax.jit``; a ``pmap`` or a sharded ``jit``
  in :mod:`jaxreg.parallel`). The epoch's ``should_stop()``, if given, is
  polled before each step; when it says so the epoch is dropped and
  ``(state, None)`` returned. With ``trace_steps`` the metrics also hold
  every step's, as the scanned epoch's (kept on the device until the end).

  Examples:
    >>> epoch = make_streaming_epoch(train_step, shuffle_key=jax.random.key(0), num_examples=len(y), batch_size=64)  # doctest: +SKIP
    >>> state, metrics = epoch(state, x, y, 0)  # host arrays, a batch at a time  # doctest: +SKIP
  """
  step = compile_step(train_step)
  final_step = step if last_step is None else compile_step(last_step)
  place_batch = place_batch or (lambda batch: batch)
  order = jax.jit(epoch_batch_indices, static_argnums=(2, 3))

  def run_epoch(state, x, y, epoch, num_steps=None, should_stop=None):
    indices = np.asarray(order(shuffle_key, epoch, num_examples, batch_size))[:num_steps]
    totals, trace = {}, []
    for idx in indices[:-1]:
      if should_stop is not None and should_stop():
        return state, None  # the epoch is dropped
      state, metrics = step(state, place_batch({"x": x[idx], "y": y[idx]}))
      totals = metrics if not totals else jax.tree.map(jnp.add, totals, metrics)
      trace += [metrics] if trace_steps else []
    state, last = final_step(state, place_batch({"x": x[indices[-1]], "y": y[indices[-1]]}))
    means = with_last_step(totals, last, len(indices))
    if not trace_steps:
      return state, means
    trace.append({k: last[k] for k in (trace[0] if trace else last)})
    return state, {**means, STEP_TRACE: {k: jnp.stack([m[k] for m in trace], axis=-1) for k in trace[-1]}}

  return run_epoch


def combine_batch_metrics(per_batch: dict) -> dict:
  """Exact means over stacked per-batch metrics weighted by their ``count`` (which is dropped).

  Batches with no real example (``count == 0``, whose means are NaN) add nothing.
  """
  per_batch = dict(per_batch)
  counts = per_batch.pop("count")
  total = jnp.sum(counts)
  return {k: jnp.sum(jnp.where(counts > 0, v * counts, 0.0)) / total for k, v in per_batch.items()}


def mean_over_real_batches(eval_step: Callable, state, batches: dict, constrain=None) -> dict:
  """Exact means of ``eval_step``'s metrics over the stacked batches that hold real examples.

  ``batches`` come from :func:`~jaxreg.data.iterators.padded_batches`: real
  batches first, then any whole batches of padding (``mask`` 0), which a
  loop with a traced trip count skips. So splits of different sizes padded
  to one shape share one compiled program and pay only for their own
  examples. Not for ``pmap``: a per-device trip count would desynchronise the
  eval step's collectives.
  """
  constrain = constrain or (lambda batch: batch)
  real = jnp.sum(jnp.any(batches["mask"] > 0, axis=tuple(range(1, batches["mask"].ndim))))
  first = jax.tree.map(lambda a: a[0], batches)
  names = jax.eval_shape(eval_step, state, first)

  def add_batch(i, totals):
    metrics = eval_step(state, constrain(jax.tree.map(lambda a: a[i], batches)))
    count = metrics["count"].astype(jnp.float32)
    return {k: totals[k] + (count if k == "count" else metrics[k].astype(jnp.float32) * count) for k in totals}

  zeros = {k: jnp.zeros((), jnp.float32) for k in names}  # sums in float32 whatever the metrics' dtype
  totals = jax.lax.fori_loop(0, real, add_batch, zeros)
  return {k: v / totals["count"] for k, v in totals.items() if k != "count"}


def make_evaluate(eval_step: Callable):
  """Returns a jitted ``evaluate(state, batches) -> metrics`` over stacked, padded batches.

  Examples:
    >>> evaluate = make_evaluate(make_eval_step(objective))  # doctest: +SKIP
    >>> evaluate(state, jax.device_put(padded_batches(x, y, 256)))  # doctest: +SKIP
    {'accuracy': ..., 'loss': ...}
  """

  @jax.jit
  def evaluate(state, batches):
    return mean_over_real_batches(eval_step, state, batches)

  return evaluate


@runtime_checkable
class Placement(Protocol):
  """Where a run's state and data live and how its epochs and evaluations compile.

  :class:`SingleDevice` here, ``Pmap`` and ``Sharded`` in :mod:`jaxreg.parallel`;
  see :class:`SingleDevice` for what each method does.

  Examples:
    >>> isinstance(SingleDevice(), Placement)
    True
  """

  mode: str
  num_devices: int
  axis_name: str | None

  def check_batch_size(self, batch_size: int, what: str = "data.batch_size") -> None: ...
  def put_state(self, state): ...
  def get_state(self, state): ...
  def put_train_data(self, x: np.ndarray, y: np.ndarray, on_device: bool): ...
  def make_epoch(self, train_step, *, on_device: bool, **kwargs): ...
  def put_eval_batches(self, x: np.ndarray, y: np.ndarray, eval_batch_size: int,
                       num_examples: int | None = None) -> dict: ...
  def make_evaluate(self, eval_step): ...
  def output_shapes(self, fn, *args): ...
  def compile_state_fn(self, fn): ...
  def host_metrics(self, metrics): ...


class SingleDevice:
  """Runs :func:`~jaxreg.train.fit` on the default device: the placement every parallel mode mirrors.

  A placement tells ``fit`` where the state and data live and how an epoch
  and an evaluation are compiled. ``fit`` keeps its state in the host view
  (``get_state``: one copy, as a single-device run holds it), which is what
  checkpoints store, so a checkpoint does not depend on the placement that
  wrote it.

  Attributes:
    mode: ``'none'`` here, ``'pmap'`` or ``'sharded'`` in :mod:`jaxreg.parallel`.
    num_devices: devices that share each batch.
    axis_name: the named axis the steps must be built with
      (``make_train_step(..., axis_name=)``), or ``None``.

  Examples:
    >>> placement = SingleDevice()
    >>> placement.mode, placement.num_devices, placement.axis_name
    ('none', 1, None)
  """

  mode = "none"
  num_devices = 1
  axis_name = None

  def check_batch_size(self, batch_size: int, what: str = "data.batch_size") -> None:
    """Raises ``ConfigError`` if ``batch_size`` cannot be split over the devices."""

  def put_state(self, state):
    """The state placed for training (identity here)."""
    return state

  def get_state(self, state):
    """The host view of a placed state: one copy on one device (identity here)."""
    return state

  def put_train_data(self, x: np.ndarray, y: np.ndarray, on_device: bool):
    """The training split as the epoch function wants it: on the device, or left on the host."""
    return jax.device_put((x, y)) if on_device else (x, y)  # device_put compiles nothing

  def make_epoch(self, train_step, *, on_device: bool, **kwargs):
    """A compiled epoch: one scan when the split is on the device, else streamed batches."""
    return make_scan_epoch(train_step, **kwargs) if on_device else make_streaming_epoch(train_step, **kwargs)

  def put_eval_batches(
      self, x: np.ndarray, y: np.ndarray, eval_batch_size: int, num_examples: int | None = None
  ) -> dict:
    """A split as stacked, padded batches (every example once; ``mask`` marks the real ones) on the device.

    ``num_examples`` (at least the split's size) sets the layout: splits laid
    out for the same number share one shape, so one compiled evaluation.
    """
    size, num_batches = eval_layout(eval_batch_size, num_examples or len(y))
    return jax.device_put(padded_batches(x, y, size, num_batches))

  def make_evaluate(self, eval_step):
    """A compiled ``evaluate(placed_state, placed_batches) -> metrics`` (host-readable scalars)."""
    return make_evaluate(eval_step)

  def output_shapes(self, fn, *args):
    """``jax.eval_shape(fn, *args)`` for a step of this placement, on unplaced arguments."""
    return jax.eval_shape(fn, *args)

  def compile_state_fn(self, fn):
    """``fn(state, *args) -> state`` compiled to run on a placed state (``args`` the same everywhere)."""
    return jax.jit(fn)

  def host_metrics(self, metrics):
    """Metrics returned by an epoch, as one value each."""
    return metrics
