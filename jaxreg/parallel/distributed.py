"""Multi-host start-up: JAX's distributed runtime, from arguments or the environment.

Every process of a multi-host run calls :func:`initialize_distributed` before
any other JAX call; afterwards ``jax.devices()`` lists the devices of all
processes and collectives (``pmean`` under ``pmap``, the all-reduces of the
sharded path) span them. On CPUs the collectives go over TCP (Gloo, JAX's
default), which is how the tests run two processes on one machine.
"""

import os

import jax

from jaxreg.errors import ConfigError

COORDINATOR_ENV = "JAX_COORDINATOR_ADDRESS"  # read by JAX itself too
NUM_PROCESSES_ENV = "JAX_NUM_PROCESSES"
PROCESS_ID_ENV = "JAX_PROCESS_ID"


def _env_int(name: str) -> int | None:
  raw = os.environ.get(name)
  if raw in (None, ""):
    return None
  try:
    return int(raw)
  except ValueError:
    raise ConfigError(f"the environment variable {name}={raw!r} must be an integer") from None


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto: bool = False,
) -> bool:
  """Starts ``jax.distributed`` when a multi-process run is asked for; returns whether it did.

  Arguments left ``None`` are read from ``JAX_COORDINATOR_ADDRESS``,
  ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``. With none of them set and
  ``auto=False`` this is a single-process run and nothing happens. With
  ``auto=True`` and no address, JAX detects the cluster itself (a Cloud TPU
  pod slice, SLURM, Open MPI, Kubernetes).

  Args:
    coordinator_address: ``host:port`` of process 0's coordinator service.
    num_processes: how many processes take part.
    process_id: this process's index in ``[0, num_processes)``.
    auto: let JAX detect the cluster when no address is given.

  Raises:
    ConfigError: for an address without a process count or index, or an
      index out of range.

  Examples:
    >>> # on each of two machines, before anything else touches JAX:
    >>> initialize_distributed('10.0.0.1:1234', num_processes=2, process_id=0)  # doctest: +SKIP
  """
  coordinator_address = coordinator_address or os.environ.get(COORDINATOR_ENV) or None
  num_processes = num_processes if num_processes is not None else _env_int(NUM_PROCESSES_ENV)
  process_id = process_id if process_id is not None else _env_int(PROCESS_ID_ENV)
  if coordinator_address is None and not auto:
    if num_processes not in (None, 1) or process_id not in (None, 0):
      raise ConfigError(
          "a process count or index was given without a coordinator address; pass "
          f"--coordinator-address HOST:PORT (or set {COORDINATOR_ENV}), or --distributed-auto on a cluster "
          "JAX detects"
      )
    return False
  if jax.distributed.is_initialized():
    return True
  if coordinator_address is not None:
    if num_processes is None or process_id is None:
      raise ConfigError(
          f"--coordinator-address {coordinator_address} also needs --num-processes and --process-id "
          f"(or {NUM_PROCESSES_ENV} and {PROCESS_ID_ENV})"
      )
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise ConfigError(
          f"--process-id must be in [0, {num_processes}) for --num-processes {num_processes}, got {process_id}"
      )
  jax.distributed.initialize(
      coordinator_address=coordinator_address, num_processes=num_processes, process_id=process_id
  )
  return True


def is_primary_process() -> bool:
  """Whether this process writes the run's files (process 0; always true with one process).

  Examples:
    >>> is_primary_process()  # one process here
    True
  """
  return jax.process_index() == 0
