"""What keeps one run in one directory: a lock held for the run's life, and signals that stop it cleanly.

:class:`RunLock` is an exclusive ``fcntl`` lock on ``<workdir>/run.lock``.
The kernel releases it when its process exits in any way (``kill -9``
included), so a lock is never left behind; the file keeps the holder's pid,
and a run that takes over from a process that died says so.

:class:`StopOnSignal` is a fit hook: the first SIGTERM or SIGINT (Ctrl-C)
asks the run to stop at the end of the current epoch, where the checkpoint
hook saves it; a second SIGINT interrupts at once (the last committed
checkpoint is untouched: Orbax commits a checkpoint by renaming a finished
folder).
"""

import fcntl
import os
import signal
import sys
import threading
import warnings

from jaxreg.errors import CheckpointError
from jaxreg.train.hooks import EpochEnd, Hook

LOCK_FILE = "run.lock"


class TakeoverWarning(UserWarning):
  """A run took over a work directory from a process that ended without finishing."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class RunLock:
  """An exclusive lock on a work directory, as a context manager.

  Raises:
    CheckpointError: (on entering) when another live process holds it; the
      message names its pid.

  Examples:
    >>> with RunLock('/tmp/run'):  # doctest: +SKIP
    ...   train_and_evaluate(config, '/tmp/run')
  """

  def __init__(self, workdir: str):
    self.workdir = os.path.abspath(workdir)
    self.path = os.path.join(self.workdir, LOCK_FILE)
    self._file = None

  def ensure_free(self) -> None:
    """Raises ``CheckpointError`` if another process holds the lock now; takes nothing and writes nothing."""
    if not os.path.exists(self.path):
      return
    with open(self.path, "a+") as handle:
      self._lock(handle)
      fcntl.flock(handle, fcntl.LOCK_UN)

  def _lock(self, handle) -> None:
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = self._read_pid(handle)
      raise CheckpointError(
          f"{self.workdir} is in use by another jaxreg run (process {holder or 'unknown'}); wait for it to end, "
          "or choose another --workdir"
      ) from None

  def __enter__(self) -> "RunLock":
    try:
      os.makedirs(self.workdir, exist_ok=True)
      handle = open(self.path, "a+")
    except OSError as e:
      raise CheckpointError(f"cannot use {self.workdir} as a work directory ({e.strerror}); choose another") from None
    try:
      self._lock(handle)
    except CheckpointError:
      handle.close()
      raise
    previous = self._read_pid(handle)
    if previous and previous != os.getpid() and not _alive(previous):
      warnings.warn(f"{self.workdir}: took over from a run (process {previous}) that ended without finishing",
                    TakeoverWarning, stacklevel=2)
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    self._file = handle
    return self

  @staticmethod
  def _read_pid(handle) -> int | None:
    handle.seek(0)
    text = handle.read().strip()
    return int(text) if text.isdigit() else None

  def __exit__(self, *exc) -> None:
    if self._file is not None:
      self._file.seek(0)
      self._file.truncate()  # a clean exit leaves no pid behind
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None


class StopOnSignal(Hook):
  """Stops the run at the end of the epoch after a SIGTERM or SIGINT; a second SIGINT interrupts at once.

  When the data streams from the host (``summary['train_path'] ==
  'streaming'``), the epoch in progress is dropped at the next step instead:
  a long epoch stops within seconds, the run ends at its last completed (and
  checkpointed) epoch, and a resume redoes the dropped epoch with the same
  data order and keys, so it ends exactly as an uninterrupted run.

  The run's summary then says ``stop_reason = 'interrupted by SIGTERM'`` (or
  SIGINT) and :attr:`signal_number` holds the signal, so a command line can
  exit with ``128 + signal``. Handlers are installed only in the main thread
  and restored when the run ends.

  Args:
    exit_at_once: on the second SIGINT, end the process with exit code 130
      right away (the command line), instead of raising ``KeyboardInterrupt``
      (a notebook, whose kernel should survive). Exiting skips the
      interpreter's shutdown, where a checkpoint write still in flight would
      print the tracebacks of its threads; the committed checkpoints are
      untouched, and the write's temporary folder is cleaned up on resume.

  Examples:
    >>> stopper = StopOnSignal()
    >>> result = fit(state, ..., hooks=[stopper])  # Ctrl-C ends the run at the epoch's end, checkpointed  # doctest: +SKIP
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)
  INTERRUPTED = "jaxreg: interrupted; the last committed checkpoint is kept (continue with --resume)"

  def __init__(self, *, exit_at_once: bool = False):
    self.signal_number: int | None = None
    self.exit_at_once = exit_at_once
    self._previous = {}

  def before_run(self, start_epoch: int) -> None:
    del start_epoch
    if threading.current_thread() is not threading.main_thread():
      return
    for number in self.SIGNALS:
      self._previous[number] = signal.signal(number, self._handle)

  def _handle(self, number, frame) -> None:
    del frame
    if self.signal_number is not None and number == signal.SIGINT:  # the second Ctrl-C: stop now
      if self.exit_at_once:
        sys.stderr.write(self.INTERRUPTED + "\n")
        sys.stderr.flush()
        os._exit(130)
      raise KeyboardInterrupt
    self.signal_number = number

  def interrupted(self) -> bool:
    """Whether a signal arrived: a streamed epoch stops at the next step (see :meth:`Hook.interrupted`)."""
    return self.signal_number is not None

  def after_epoch(self, end: EpochEnd) -> None:
    if self.signal_number is not None:
      end.stop(f"interrupted by {signal.Signals(self.signal_number).name}")

  def close(self) -> None:
    for number, previous in self._previous.items():
      signal.signal(number, previous)
    self._previous = {}
