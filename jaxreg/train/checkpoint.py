"""Orbax checkpoints of the ``TrainState``: the last few, and the best one, each verified on restore.

A checkpoint is saved under ``<directory>/<epoch>`` with the epoch's metrics
and a SHA-256 of its arrays. The manager keeps the ``keep`` most recent
checkpoints and, beside them, the one with the best monitored metric; the
metrics are on disk, so the best one survives any number of resumes. A
restore that cannot read a checkpoint, or whose arrays fail their checksum,
raises ``CheckpointError``; a damaged checkpoint can be set aside
(``corrupt-<epoch>``), never deleted.
"""

import contextlib
import errno
import hashlib
import json
import os
import re
import warnings

import jax
import numpy as np

from jaxreg.errors import CheckpointError


def _host_local(tree):
  """With several processes, each holds the whole (replicated) state: save and restore it as NumPy.

  Orbax refuses process-local ``jax.Array``s in a multi-process run; NumPy
  leaves are written once (by the primary process) and read by every process.
  """
  return jax.device_get(tree) if jax.process_count() > 1 else tree


# Saved with every checkpoint by the fit loop: the epoch if it is early stopping's best so far, else 0.
# Ranking checkpoints by it keeps early stopping's best model, whatever its min_delta.
BEST_SO_FAR = "best_so_far"


class RecoveryWarning(UserWarning):
  """A resume went on from an older checkpoint because a newer one could not be read."""


CHECKSUM = "checksum"


def tree_checksum(tree) -> str:
  """A SHA-256 of a pytree's leaves (their paths, dtypes, shapes and bytes), read on the host."""
  digest = hashlib.sha256()
  is_key = lambda leaf: isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)  # noqa: E731
  tree = jax.device_get(jax.tree.map(lambda leaf: jax.random.key_data(leaf) if is_key(leaf) else leaf, tree))
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):  # one transfer to the host, then the hash
    array = np.ascontiguousarray(leaf)
    digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape};".encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def _set_aside(directory: str, epoch: int) -> str:
  """Renames the checkpoint folder of ``epoch`` to ``corrupt-<epoch>`` (a free name); returns the new path."""
  target, suffix = os.path.join(directory, f"corrupt-{epoch}"), 1
  while os.path.exists(target):
    target, suffix = os.path.join(directory, f"corrupt-{epoch}-{suffix}"), suffix + 1
  os.replace(os.path.join(directory, str(epoch)), target)
  return target


def _set_aside_unreadable_metrics(directory: str) -> list[str]:
  """Sets aside, with a warning, each checkpoint whose saved metrics are not valid JSON; returns where they went."""
  moved_to = []
  if not os.path.isdir(directory):
    return moved_to
  for name in sorted(os.listdir(directory)):
    path = os.path.join(directory, name, "metrics", "metrics")
    if not (name.isdigit() and os.path.isfile(path)):
      continue
    try:
      with open(path) as f:
        json.load(f)
    except (ValueError, UnicodeDecodeError):
      moved = _set_aside(directory, int(name))
      moved_to.append(moved)
      warnings.warn(f"checkpoint {name} is damaged (its metrics cannot be read); moved it to {moved}",
                    RecoveryWarning, stacklevel=3)
  return moved_to


class Checkpointer:
  """Saves and restores ``TrainState`` pytrees with Orbax.

  In a multi-process run every process calls ``save`` and ``restore`` with
  the same (replicated) state; Orbax writes each checkpoint once. ``save``
  records a SHA-256 of the state's arrays (a copy to the host and a hash per
  checkpoint); ``restore`` checks it.

  Args:
    directory: where checkpoints go (created if missing).
    keep: how many of the most recent checkpoints to keep, ``>= 1``.
    monitor: the metric that ranks checkpoints for "best", or ``None`` (keep
      only the latest). The default, ``BEST_SO_FAR``, keeps the best epoch
      of :func:`~jaxreg.train.fit`'s early stopping.
    mode: ``'min'`` or ``'max'`` for ``monitor``.

  Examples:
    >>> ckpt = Checkpointer('/tmp/run/checkpoints', keep=3, monitor='val_loss')  # doctest: +SKIP
    >>> ckpt.save(1, state, {'val_loss': 0.3})  # doctest: +SKIP
    >>> state = ckpt.restore(1, like=state)  # doctest: +SKIP
  """

  def __init__(self, directory: str, *, keep: int = 3, monitor: str | None = BEST_SO_FAR, mode: str = "max"):
    if not isinstance(keep, int) or keep < 1:
      raise ValueError(f"keep must be a positive integer, got {keep!r}")
    import orbax.checkpoint as ocp  # imported here: ``import jaxreg.train`` does not load Orbax
    from orbax.checkpoint.checkpoint_managers import preservation_policy as preservation

    self.directory = os.path.abspath(directory)
    policies = [preservation.LatestN(n=keep)]
    worst = float("-inf") if mode == "max" else float("inf")
    metric = lambda metrics: metrics.get(monitor, worst)  # noqa: E731  a checkpoint saved without it ranks last
    if monitor is not None:
      policies.append(
          preservation.BestN(
              get_metric_fn=metric,
              reverse=(mode == "min"),  # BestN keeps the last n of the sorted list
              n=1,
              keep_checkpoints_without_metrics=False,
          )
      )
    options = ocp.CheckpointManagerOptions(
        preservation_policy=preservation.AnyPreservationPolicy(policies),
        # With best_fn set, Orbax also writes each checkpoint's metrics to disk, so a manager
        # reopened on resume still knows which checkpoint is the best and keeps it.
        best_fn=metric,  # always: Orbax then also saves the metrics, the checksum among them
        best_mode=mode,
        cleanup_tmp_directories=True,
        create=True,
    )
    # Checkpoints found unreadable, moved out of the way (Orbax's manager fails to open on damaged metrics).
    self.set_aside_paths = _set_aside_unreadable_metrics(self.directory)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def epochs(self) -> list[int]:
    """The epochs that have a finished checkpoint, oldest first."""
    return sorted(self._manager.all_steps())

  def latest_epoch(self) -> int | None:
    return self._manager.latest_step()

  def save(self, epoch: int, state, metrics: dict) -> None:
    """Saves ``state`` as the checkpoint of ``epoch`` (asynchronously)."""
    import orbax.checkpoint as ocp

    saved = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    saved[CHECKSUM] = tree_checksum(state)  # verified on restore: flipped bytes that still decode are caught
    with _as_os_errors(self.directory):  # the previous save's error surfaces here too
      self._manager.save(epoch, args=ocp.args.StandardSave(_host_local(state)), metrics=saved)

  def restore(self, epoch: int, *, like):
    """Restores the checkpoint of ``epoch`` into the structure of ``like``.

    Raises:
      CheckpointError: if there is no checkpoint for ``epoch``, or it cannot
        be read (incomplete or corrupt); the message names the folder.
    """
    import orbax.checkpoint as ocp

    self._manager.wait_until_finished()
    path = os.path.join(self.directory, str(epoch))
    if epoch not in self._manager.all_steps():
      raise CheckpointError(
          f"no checkpoint for epoch {epoch} in {self.directory} (found: {self.epochs() or 'none'})"
      )
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _host_local(like))
    try:
      restored = self._manager.restore(epoch, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # orbax/tensorstore raise many types for damaged files
      raise CheckpointError(
          f"the checkpoint {path} could not be read; it is incomplete or corrupt "
          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Delete that folder to resume "
          f"from the previous checkpoint, or start a new run in a new --workdir."
      ) from e
    expected = (self._manager.metrics(epoch) or {}).get(CHECKSUM)
    if expected is not None and tree_checksum(restored) != expected:
      raise CheckpointError(
          f"the checkpoint {path} is corrupt: its arrays do not match the checksum saved with them. Delete that "
          "folder to resume from the previous checkpoint, or start a new run in a new --workdir."
      )
    return restored

  def set_aside(self, epoch: int) -> str:
    """Moves the unreadable checkpoint of ``epoch`` out of the way, to ``corrupt-<epoch>``; returns its new path.

    Nothing is deleted; the folder no longer counts as a checkpoint, so the
    epoch can be saved again.
    """
    self._manager.wait_until_finished()
    target = _set_aside(self.directory, epoch)
    self.set_aside_paths.append(target)
    self._manager.reload()
    return target

  def close(self) -> None:
    """Waits for pending saves and releases the manager."""
    try:
      with _as_os_errors(self.directory):
        self._manager.wait_until_finished()
        self._manager.close()
    except OSError:
      with contextlib.suppress(Exception):  # closing waits again, and raises the same failed save again
        self._manager.close()
      raise


@contextlib.contextmanager
def _as_os_errors(directory: str):
  """Re-raises a file-system failure that Orbax or TensorStore reports as another type as the ``OSError`` it is.

  TensorStore says ``ValueError: RESOURCE_EXHAUSTED: ... No space left on
  device [os_error_code='28']``; the command line names a full disk only for
  ``OSError(ENOSPC)``, with the advice to free space and resume.
  """
  try:
    yield
  except OSError:
    raise
  except Exception as e:  # noqa: BLE001  only re-raised, as an OSError when it is one
    code = re.search(r"os_error_code='(\d+)'", str(e))
    number = int(code.group(1)) if code else errno.ENOSPC if "No space left on device" in str(e) else None
    if number is None:
      raise
    raise OSError(number, os.strerror(number), directory) from e
