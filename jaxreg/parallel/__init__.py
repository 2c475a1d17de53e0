"""Data parallelism: the ``pmap`` entry point, the sharded-``jit`` path and multi-host start-up.

``make_placement(mode, num_devices)`` gives :func:`jaxreg.train.fit` a
placement (``parallel.mode`` in configs): ``'none'`` (one device),
``'pmap'`` (:class:`Pmap`) or ``'sharded'`` (:class:`Sharded`). All three
train on the same examples in the same order with the same step, and
checkpoint the same single-device view of the state, so a run can move
between them. See ``docs/parallel.md``.
"""

from jaxreg.errors import ConfigError
from jaxreg.parallel.devices import AXIS_NAME, MODES, check_mode
from jaxreg.parallel.distributed import initialize_distributed, is_primary_process
from jaxreg.parallel.pmap import Pmap, pmap_step, replicate, split_batch, unreplicate
from jaxreg.parallel.sharded import Sharded, make_mesh, put_replicated, put_sharded, sharded_step
from jaxreg.train.epochs import SingleDevice


def make_placement(mode: str = "none", num_devices: int | None = None):
  """The placement of a run: ``SingleDevice()``, ``Pmap(num_devices)`` or ``Sharded(num_devices)``.

  Args:
    mode: ``'none'``, ``'pmap'`` or ``'sharded'`` (the config's ``parallel.mode``).
    num_devices: devices to use (default all); must be unset or 1 for ``'none'``.

  Raises:
    ConfigError: for an unknown mode, or more devices than are present.

  Examples:
    >>> placement = make_placement('sharded')  # doctest: +SKIP
    >>> result = fit(state, train_step=step, eval_step=eval_step, dataset=ds, batch_size=128,
    ...              epochs=10, placement=placement)  # doctest: +SKIP
  """
  check_mode(mode)
  if mode == "none":
    if num_devices not in (None, 1):
      raise ConfigError(
          f"parallel.num_devices={num_devices} needs parallel.mode='pmap' or 'sharded' (mode is 'none')"
      )
    return SingleDevice()
  return (Pmap if mode == "pmap" else Sharded)(num_devices)


__all__ = [
    "AXIS_NAME",
    "MODES",
    "Pmap",
    "Sharded",
    "SingleDevice",
    "initialize_distributed",
    "is_primary_process",
    "make_mesh",
    "make_placement",
    "pmap_step",
    "put_replicated",
    "put_sharded",
    "replicate",
    "sharded_step",
    "split_batch",
    "unreplicate",
]
