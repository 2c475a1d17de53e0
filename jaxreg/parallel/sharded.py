"""The sharded path: the same step under ``jax.jit``, the batch split over a one-dimensional mesh.

Parameters and optimizer state are replicated (``PartitionSpec()``); each
batch is sharded along its first axis (``PartitionSpec('batch')``). The step
is the single-device one (no ``axis_name``): XLA's partitioner inserts the
all-reduce of the gradients, and batch statistics are the global batch's by
construction. Dropout masks are the ones a single device would draw for the
whole batch (JAX's partitionable ``threefry``), so a sharded run follows a
single-device run even with dropout. For user code::

    mesh = make_mesh()                       # all devices, axis 'batch'
    step = sharded_step(make_train_step(objective, tx), mesh)
    state = put_replicated(state, mesh)
    state, metrics = step(state, put_sharded(batch, mesh))
"""

from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxreg.data.iterators import epoch_batch_indices, eval_layout, padded_batches
from jaxreg.parallel.devices import AXIS_NAME, check_divisible, select_devices
from jaxreg.parallel.pmap import as_plain_data
from jaxreg.train.epochs import make_streaming_epoch, mean_over_real_batches, scan_epoch_body


def make_mesh(num_devices: int | None = None, *, axis_name: str = AXIS_NAME) -> Mesh:
  """A one-dimensional mesh over the first ``num_devices`` devices (default: all, of all processes).

  Examples:
    >>> mesh = make_mesh(1)
    >>> mesh.axis_names, mesh.devices.shape
    (('batch',), (1,))
  """
  return Mesh(np.array(select_devices(num_devices)), (axis_name,))


def _global_array(value, sharding: NamedSharding) -> jax.Array:
  """A global array with ``sharding`` from a value every process holds whole (typed keys included)."""
  return as_plain_data(lambda host: jax.make_array_from_callback(host.shape, sharding, lambda index: host[index]))(
      value
  )


def put_replicated(tree, mesh: Mesh):
  """Every leaf replicated on every device of ``mesh`` (each process passes the same values).

  Examples:
    >>> params = put_replicated({'w': np.ones(3)}, make_mesh(1))
    >>> params['w'].sharding.is_fully_replicated
    True
  """
  sharding = NamedSharding(mesh, PartitionSpec())
  return jax.tree.map(lambda a: _global_array(a, sharding), tree)


def put_sharded(batch, mesh: Mesh, *, axis: int = 0, what: str = "the batch"):
  """Every leaf split along ``axis`` over ``mesh`` (each process passes the whole global batch).

  Raises:
    ConfigError: if that axis is not a multiple of the mesh's size.

  Examples:
    >>> batch = put_sharded({'x': np.zeros((8, 2))}, make_mesh(1))
    >>> batch['x'].shape  # the global batch, split over the mesh's devices
    (8, 2)
  """
  (name,) = mesh.axis_names
  spec = PartitionSpec(*([None] * axis + [name]))

  def put(a):
    check_divisible(np.shape(a)[axis], mesh.size, what)
    return _global_array(a, NamedSharding(mesh, spec))

  return jax.tree.map(put, batch)


def local_copy(tree):
  """This process's first copy of every leaf of a replicated pytree, as single-device arrays."""
  return jax.tree.map(lambda a: a.addressable_data(0), tree)


def sharded_step(step: Callable, mesh: Mesh, *, donate_state: bool = False) -> Callable:
  """``jax.jit`` of ``step(state, batch)`` with the state replicated and the batch sharded over ``mesh``.

  Examples:
    >>> step = sharded_step(make_train_step(objective, tx), make_mesh())  # doctest: +SKIP
    >>> state, metrics = step(state, put_sharded(batch, make_mesh()))  # doctest: +SKIP
  """
  (name,) = mesh.axis_names
  replicated = NamedSharding(mesh, PartitionSpec())
  return jax.jit(
      step, in_shardings=(replicated, NamedSharding(mesh, PartitionSpec(name))), out_shardings=replicated,
      donate_argnums=(0,) if donate_state else (),
  )


class Sharded:
  """Placement of a :func:`~jaxreg.train.fit` run on a device mesh (``parallel.mode='sharded'``).

  The state and the training split are replicated on the mesh; a whole
  epoch is one compiled ``lax.scan`` in which every gathered batch is
  constrained to be sharded along the mesh, so each device computes its
  shard and XLA all-reduces the gradients. Steps are built without an
  ``axis_name``. Evaluation batches are padded to a multiple of the device
  count with masked examples, so every example counts exactly once.

  Args:
    num_devices: how many devices to use (default: all, of all processes).
    axis_name: the mesh's axis name.

  Examples:
    >>> placement = Sharded(1)  # parallel.mode='sharded'; fit(..., placement=placement)
    >>> placement.mode, placement.num_devices
    ('sharded', 1)
  """

  mode = "sharded"
  axis_name = None  # the steps are the single-device ones

  def __init__(self, num_devices: int | None = None, *, axis_name: str = AXIS_NAME):
    self.mesh = make_mesh(num_devices, axis_name=axis_name)
    self.num_devices = self.mesh.size
    self.replicated = NamedSharding(self.mesh, PartitionSpec())
    self.batch_sharding = NamedSharding(self.mesh, PartitionSpec(axis_name))

  def check_batch_size(self, batch_size: int, what: str = "data.batch_size") -> None:
    check_divisible(batch_size, self.num_devices, what)

  def put_state(self, state):
    return put_replicated(state, self.mesh)

  def get_state(self, state):
    return local_copy(state)

  def host_metrics(self, metrics):
    return local_copy(metrics)

  def output_shapes(self, fn, *args):
    return jax.eval_shape(fn, *args)

  def compile_state_fn(self, fn):
    return jax.jit(fn, out_shardings=self.replicated)

  def put_train_data(self, x: np.ndarray, y: np.ndarray, on_device: bool):
    return put_replicated((x, y), self.mesh) if on_device else (x, y)

  def _constrain(self, batch):
    return jax.lax.with_sharding_constraint(batch, self.batch_sharding)

  def make_epoch(self, train_step, *, on_device: bool, shuffle_key, num_examples: int, batch_size: int,
                 last_step=None, trace_steps: bool = False):
    if not on_device:
      jit = lambda f: jax.jit(f, out_shardings=self.replicated)  # noqa: E731
      return make_streaming_epoch(
          train_step, shuffle_key=shuffle_key, num_examples=num_examples, batch_size=batch_size,
          last_step=last_step, place_batch=lambda batch: put_sharded(batch, self.mesh, what="data.batch_size"),
          compile_step=jit, trace_steps=trace_steps,
      )

    def batch_indices(epoch, num_steps):
      return epoch_batch_indices(shuffle_key, epoch, num_examples, batch_size)[:num_steps]

    run = jax.jit(
        scan_epoch_body(train_step, last_step, batch_indices, constrain=self._constrain,
                        trace_steps=trace_steps),
        static_argnums=(4,), out_shardings=self.replicated,
    )

    def run_epoch(state, x, y, epoch, num_steps=None):
      return run(state, x, y, epoch, num_steps)

    return run_epoch

  def put_eval_batches(
      self, x: np.ndarray, y: np.ndarray, eval_batch_size: int, num_examples: int | None = None
  ) -> dict:
    size, num_batches = eval_layout(eval_batch_size, num_examples or len(y), self.num_devices)
    return put_sharded(padded_batches(x, y, size, num_batches), self.mesh, axis=1, what="the evaluation batch")

  def make_evaluate(self, eval_step):
    @jax.jit
    def evaluate(state, batches):
      metrics = mean_over_real_batches(eval_step, state, batches, constrain=self._constrain)
      return jax.lax.with_sharding_constraint(metrics, self.replicated)

    return lambda state, batches: local_copy(evaluate(state, batches))
