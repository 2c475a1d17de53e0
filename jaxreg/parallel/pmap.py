"""The ``pmap`` entry point: one copy of the state per device, each device on its shard of the batch.

For user code::

    step = make_train_step(objective, tx, axis_name='batch')   # pmean of gradients, metrics, model state
    p_step = pmap_step(step)                                   # jax.pmap over the local devices
    p_state = replicate(state)                                 # a leading device axis on every leaf
    p_state, metrics = p_step(p_state, split_batch(batch, jax.local_device_count()))
    state = unreplicate(p_state)                               # back to one copy (e.g. to checkpoint)

Each device draws its own dropout masks (the step folds the device index
into its key). ``pmap`` is in maintenance in current JAX (it is built on
``jit`` and ``shard_map``); new code can use :mod:`jaxreg.parallel.sharded`.
"""

from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxreg.data.iterators import epoch_batch_indices, eval_layout, padded_batches
from jaxreg.errors import ConfigError
from jaxreg.parallel.devices import AXIS_NAME, check_divisible, select_devices
from jaxreg.train.epochs import combine_batch_metrics, make_streaming_epoch, scan_epoch_body


def _local(devices: Sequence) -> list:
  return [d for d in devices if d.process_index == jax.process_index()]


def _stacked_sharding(devices: Sequence, axis_name: str = AXIS_NAME) -> NamedSharding:
  """The layout of a pmap output over ``devices`` (so feeding one back to pmap compiles nothing new)."""
  return NamedSharding(Mesh(np.array(devices), (axis_name,)), PartitionSpec(axis_name))


def as_plain_data(place: Callable) -> Callable:
  """Wraps ``place(host_array) -> jax.Array`` so that typed PRNG keys travel as their raw data."""

  def place_leaf(a):
    if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(place(np.asarray(jax.random.key_data(a))), impl=jax.random.key_impl(a))
    return place(np.asarray(a))

  return place_leaf


def replicate(tree, devices: Sequence | None = None, *, axis_name: str = AXIS_NAME):
  """One copy of every leaf per device, stacked on a new leading axis (the layout ``pmap`` takes).

  Args:
    tree: a pytree of arrays (e.g. a ``TrainState``).
    devices: this process's devices to replicate to; default ``jax.local_devices()``.
    axis_name: the axis name of the ``pmap`` it feeds; with the same name the
      arrays have the layout of that pmap's outputs.

  Examples:
    >>> replicate({'w': jnp.ones(3)}, jax.local_devices()[:1])['w'].shape  # a leading axis of one copy per device
    (1, 3)
  """
  devices = list(devices) if devices is not None else jax.local_devices()
  sharding = _stacked_sharding(devices, axis_name)
  n = len(devices)
  place = as_plain_data(lambda a: jax.device_put(np.broadcast_to(a, (n,) + a.shape), sharding))
  return jax.tree.map(place, tree)


def unreplicate(tree):
  """The first device's copy of every leaf of a replicated pytree.

  Examples:
    >>> unreplicate(replicate({'w': jnp.ones(3)}, jax.local_devices()[:1]))['w'].shape
    (3,)
  """
  return jax.tree.map(lambda a: a.addressable_shards[0].data.reshape(a.shape[1:]), tree)


def split_batch(batch, num_devices: int, *, what: str = "the batch"):
  """Reshapes every leaf's leading axis ``B`` to ``(num_devices, B // num_devices)``.

  Raises:
    ConfigError: if ``B`` is not a multiple of ``num_devices`` (nothing is dropped silently).

  Examples:
    >>> split_batch({'x': np.zeros((8, 3))}, 2)['x'].shape
    (2, 4, 3)
  """

  def split(a):
    a = np.asarray(a) if not isinstance(a, jax.Array) else a
    check_divisible(a.shape[0], num_devices, what)
    return a.reshape((num_devices, a.shape[0] // num_devices) + a.shape[1:])

  return jax.tree.map(split, batch)


def pmap_step(
    step: Callable, *, axis_name: str = AXIS_NAME, devices: Sequence | None = None, donate_state: bool = False
) -> Callable:
  """``jax.pmap`` of a train or eval step built with ``axis_name`` (see :func:`jaxreg.train.make_train_step`).

  The returned function takes a replicated state and a batch split over the
  devices (:func:`replicate`, :func:`split_batch`) and returns the new
  replicated state and per-device metrics (equal on every device: they are
  averaged across it).

  Args:
    step: ``step(state, batch) -> ...`` built with the same ``axis_name``.
    axis_name: the mapped axis; it must match the one the step averages over.
    devices: the devices to map over (default: all local devices).
    donate_state: let XLA reuse the input state's buffers for the output.

  Examples:
    >>> step = pmap_step(make_train_step(objective, tx, axis_name='batch'))  # doctest: +SKIP
    >>> state, metrics = step(replicate(state), split_batch(batch, jax.local_device_count()))  # doctest: +SKIP
  """
  return jax.pmap(step, axis_name=axis_name, devices=devices, donate_argnums=(0,) if donate_state else ())


class Pmap:
  """Placement of a :func:`~jaxreg.train.fit` run under ``jax.pmap`` (``parallel.mode='pmap'``).

  The state is replicated on every device; each global batch of
  ``batch_size`` examples is split into ``num_devices`` equal shards (a
  batch size that does not divide is refused); the steps (built with
  ``axis_name``) average gradients, metrics and batch statistics across
  devices. A whole epoch is one compiled ``lax.scan`` per device: every
  device holds the training split and gathers its shard of each batch, so the
  examples and their order are those of a single-device run. Evaluation
  batches are padded to a multiple of the device count with masked
  examples, so every example counts exactly once.

  With several processes, every process holds the whole (in-memory) dataset
  and feeds its own devices their shards of each global batch.

  Args:
    num_devices: how many devices to use (default: all).
    axis_name: the named axis the steps average over.

  Examples:
    >>> placement = Pmap(1)  # parallel.mode='pmap' over 1 device; fit(..., placement=placement)
    >>> placement.mode, placement.num_devices, placement.axis_name
    ('pmap', 1, 'batch')
  """

  mode = "pmap"

  def __init__(self, num_devices: int | None = None, *, axis_name: str = AXIS_NAME):
    devices = select_devices(num_devices)
    self.num_devices = len(devices)
    self.axis_name = axis_name
    self.local_devices = _local(devices)
    # With several processes pmap maps over all devices; on one, over the chosen subset.
    self._pmap_devices = None if jax.process_count() > 1 else devices
    self._first_shard = jax.process_index() * len(self.local_devices)
    self._replicas_checked = False

  def check_batch_size(self, batch_size: int, what: str = "data.batch_size") -> None:
    check_divisible(batch_size, self.num_devices, what)

  def put_state(self, state):
    return replicate(state, self.local_devices, axis_name=self.axis_name)

  def get_state(self, state):
    if not self._replicas_checked:
      self._check_replicas_agree(state)
    return unreplicate(state)

  def _check_replicas_agree(self, state) -> None:
    """After the first epoch: steps built without ``axis_name`` let each device follow its own shard."""
    self._replicas_checked = True
    for leaf in jax.tree.leaves(state.params if hasattr(state, "params") else state):
      first, last = (np.asarray(s.data) for s in (leaf.addressable_shards[0], leaf.addressable_shards[-1]))
      if not np.allclose(first, last, rtol=1e-6, atol=1e-7):
        raise ConfigError(
            "the devices' copies of the parameters differ after the first epoch under pmap: the train step "
            f"does not average its gradients across devices. Build it with make_train_step(..., "
            f"axis_name={self.axis_name!r}) (and the eval step likewise)"
        )

  def host_metrics(self, metrics):
    return unreplicate(metrics)

  def output_shapes(self, fn, *args):
    mapped = jax.vmap(fn, in_axes=None, axis_name=self.axis_name, axis_size=1)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), jax.eval_shape(mapped, *args))

  def compile_state_fn(self, fn):
    mapped = jax.pmap(fn, axis_name=self.axis_name, in_axes=0, devices=self._pmap_devices)
    return lambda state, *args: mapped(state, *replicate(args, self.local_devices, axis_name=self.axis_name))

  def put_train_data(self, x: np.ndarray, y: np.ndarray, on_device: bool):
    return replicate((x, y), self.local_devices, axis_name=self.axis_name) if on_device else (x, y)

  def _local_shards(self, batch):
    """This process's devices' shards of a global host batch, placed for pmap."""
    shards = split_batch(batch, self.num_devices, what="data.batch_size")
    local = jax.tree.map(lambda a: a[self._first_shard:self._first_shard + len(self.local_devices)], shards)
    return jax.device_put(local, _stacked_sharding(self.local_devices, self.axis_name))

  def make_epoch(self, train_step, *, on_device: bool, shuffle_key, num_examples: int, batch_size: int,
                 last_step=None, trace_steps: bool = False):
    pmap = lambda f: jax.pmap(f, axis_name=self.axis_name, devices=self._pmap_devices)  # noqa: E731
    if not on_device:
      return make_streaming_epoch(
          train_step, shuffle_key=shuffle_key, num_examples=num_examples, batch_size=batch_size,
          last_step=last_step, place_batch=self._local_shards, compile_step=pmap, trace_steps=trace_steps,
      )
    per_device = batch_size // self.num_devices
    axis_name = self.axis_name

    def batch_indices(epoch, num_steps):
      indices = epoch_batch_indices(shuffle_key, epoch, num_examples, batch_size)[:num_steps]
      start = jax.lax.axis_index(axis_name) * per_device
      return jax.lax.dynamic_slice_in_dim(indices, start, per_device, axis=1)

    mapped = jax.pmap(
        scan_epoch_body(train_step, last_step, batch_indices, trace_steps=trace_steps), axis_name=axis_name,
        in_axes=(0, 0, 0, None), static_broadcasted_argnums=(4,), devices=self._pmap_devices,
    )

    def run_epoch(state, x, y, epoch, num_steps=None):
      return mapped(state, x, y, epoch, num_steps)

    return run_epoch

  def put_eval_batches(
      self, x: np.ndarray, y: np.ndarray, eval_batch_size: int, num_examples: int | None = None
  ) -> dict:
    size, num_batches = eval_layout(eval_batch_size, num_examples or len(y), self.num_devices)
    batches = padded_batches(x, y, size, num_batches)  # (num_batches, size, ...); padding is masked
    per_device = jax.tree.map(lambda a: np.swapaxes(split_batch(np.swapaxes(a, 0, 1), self.num_devices), 1, 2),
                              batches)  # (devices, num_batches, size // devices, ...)
    local = jax.tree.map(lambda a: a[self._first_shard:self._first_shard + len(self.local_devices)], per_device)
    return jax.device_put(local, _stacked_sharding(self.local_devices, self.axis_name))

  def make_evaluate(self, eval_step):
    mapped = jax.pmap(
        lambda state, batches: jax.lax.map(lambda batch: eval_step(state, batch), batches),
        axis_name=self.axis_name, devices=self._pmap_devices,
    )
    combine = jax.jit(combine_batch_metrics)

    def evaluate(state, batches):
      return combine(unreplicate(mapped(state, batches)))

    return evaluate


__all__ = ["Pmap", "pmap_step", "replicate", "split_batch", "unreplicate"]
