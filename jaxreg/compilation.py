"""XLA compilation: counting the programs a block compiles, and JAX's persistent cache for the CLI.

Most of a short run's wall time is XLA compilation, so jaxreg counts it:
:func:`count_compilations` reports how many programs a block compiled (or
loaded from the persistent cache) and how long that took; ``summary.json``
holds the count of each run.

:func:`enable_persistent_cache` points JAX's persistent compilation cache at
a directory. It changes a process-wide JAX setting, so only the ``jaxreg``
command calls it (by default, in :func:`default_compilation_cache_dir`); the
library never does, and a notebook or script opts in by calling it.
"""

import contextlib
import dataclasses
import os
from collections.abc import Iterator

import jax

# Recorded once per program that jit, pmap or an eager op hands to XLA, whether
# XLA compiles it or it comes from the persistent cache.
_PROGRAM_EVENT = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"
# The environment variable that turns the CLI's cache off ('off') or moves it (a directory).
CACHE_ENV = "JAXREG_COMPILATION_CACHE"
_OFF = ("off", "none", "0", "false", "")
DEFAULT_CACHE_BYTES = 2 * 1024**3


@dataclasses.dataclass
class CompilationCount:
  """What :func:`count_compilations` saw.

  Attributes:
    programs: programs handed to XLA (compiled, or loaded from the persistent cache).
    cache_hits: how many of them came from the persistent cache.
    seconds: time spent compiling or loading them.

  Examples:
    >>> with count_compilations() as count:
    ...   _ = jax.jit(lambda x: x * 3.0)(jnp.ones(7))
    >>> count.programs >= 1
    True
  """

  programs: int = 0
  cache_hits: int = 0
  seconds: float = 0.0

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


@contextlib.contextmanager
def count_compilations() -> Iterator[CompilationCount]:
  """Counts the XLA programs compiled inside the block (in this process, on any thread).

  Examples:
    >>> with count_compilations() as count:
    ...   jax.jit(lambda x: x + 1)(1.0)  # doctest: +SKIP
    >>> count.programs  # doctest: +SKIP
    1
  """
  count = CompilationCount()

  def on_duration(event: str, seconds: float, **kwargs) -> None:
    del kwargs
    if event == _PROGRAM_EVENT:
      count.programs += 1
      count.seconds += seconds

  def on_event(event: str, **kwargs) -> None:
    del kwargs
    if event == _CACHE_HIT_EVENT:
      count.cache_hits += 1

  jax.monitoring.register_event_duration_secs_listener(on_duration)
  jax.monitoring.register_event_listener(on_event)
  try:
    yield count
  finally:
    jax.monitoring.unregister_event_duration_listener(on_duration)
    jax.monitoring.unregister_event_listener(on_event)


def default_compilation_cache_dir() -> str:
  """``<jaxreg's cache directory>/jax-compilation`` (beside the MNIST-1D cache: ``~/.cache/jaxreg``).

  Examples:
    >>> default_compilation_cache_dir().endswith('jax-compilation')
    True
  """
  from jaxreg.data.mnist1d import default_cache_dir

  return os.path.join(default_cache_dir(), "jax-compilation")


def resolve_cache_dir(flag: str | None) -> str | None:
  """Where the CLI's compilation cache goes, or ``None`` for no cache.

  In order: the ``--compilation-cache`` flag (a directory, or ``off``), then
  ``$JAXREG_COMPILATION_CACHE`` (the same), then JAX's own
  ``$JAX_COMPILATION_CACHE_DIR`` (left to JAX: ``None`` is returned and
  nothing is changed), else :func:`default_compilation_cache_dir`.

  Examples:
    >>> resolve_cache_dir('off'), resolve_cache_dir('/tmp/cache')
    (None, '/tmp/cache')
  """
  for value in (flag, os.environ.get(CACHE_ENV)):
    if value is not None:
      return None if value.strip().lower() in _OFF else os.path.expanduser(value)
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return None  # the user configured JAX's cache directly; JAX reads it itself
  return default_compilation_cache_dir()


def enable_persistent_cache(directory: str, *, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
  """Turns on JAX's persistent compilation cache in ``directory`` for every program.

  This sets process-wide JAX options: the directory, the thresholds that
  would otherwise skip programs compiling in under a second (most of a small
  run's), and a size limit. The limit turns on JAX's least-recently-used
  eviction, which also takes a file lock (``filelock``) around every read
  and write, so runs that start together can share the directory: none
  reads an entry that another is still writing.

  Args:
    directory: the cache directory (created if missing).
    max_bytes: the most the directory may hold; the least recently used
      entries are deleted beyond it.

  Raises:
    OSError: if ``directory`` cannot be created.

  Examples:
    >>> enable_persistent_cache(os.path.expanduser('~/.cache/jaxreg/jax-compilation'))  # doctest: +SKIP
  """
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_compilation_cache_max_size", max_bytes)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


__all__ = [
    "CompilationCount",
    "count_compilations",
    "default_compilation_cache_dir",
    "enable_persistent_cache",
    "resolve_cache_dir",
]
