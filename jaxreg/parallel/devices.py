"""Choosing the devices of a data-parallel run, and the checks that go with it."""

import jax

from jaxreg.errors import ConfigError

MODES = ("none", "pmap", "sharded")
AXIS_NAME = "batch"  # the named axis of pmap steps and of the sharded path's mesh


def check_mode(mode: str) -> None:
  """Raises ``ConfigError`` unless ``mode`` is one of :data:`MODES`."""
  if mode not in MODES:
    raise ConfigError(f"parallel.mode must be one of {', '.join(MODES)}, got {mode!r}")


def select_devices(num_devices: int | None = None) -> list:
  """The devices a data-parallel run uses: the first ``num_devices`` of ``jax.devices()``, or all.

  With several processes (multi-host) every device of every process takes
  part, so ``num_devices`` must then be ``None`` or the global device count.

  Raises:
    ConfigError: if ``num_devices`` is not a positive integer, is more than
      are present, or leaves out devices of a multi-process run.
  """
  devices = jax.devices()
  if num_devices is None:
    return devices
  if isinstance(num_devices, bool) or not isinstance(num_devices, int) or num_devices < 1:
    raise ConfigError(f"parallel.num_devices must be a positive integer or None (all), got {num_devices!r}")
  if num_devices > len(devices):
    raise ConfigError(
        f"parallel.num_devices={num_devices}, but only {len(devices)} {devices[0].platform} device(s) are "
        f"present; use at most {len(devices)} (on a CPU, simulate more by setting "
        f"XLA_FLAGS=--xla_force_host_platform_device_count={num_devices} before JAX starts)"
    )
  if jax.process_count() > 1 and num_devices != len(devices):
    raise ConfigError(
        f"parallel.num_devices={num_devices} with {jax.process_count()} processes: a multi-process run uses "
        f"every device of every process ({len(devices)}); leave parallel.num_devices unset"
    )
  return devices[:num_devices]


def check_divisible(batch_size: int, num_devices: int, what: str = "data.batch_size") -> None:
  """Raises ``ConfigError`` unless ``batch_size`` splits evenly into ``num_devices`` shards.

  Training batches are never padded (a padded example would change the
  gradient), so the global training batch must be a multiple of the device
  count. Evaluation batches are padded instead (see ``put_eval_batches``).
  """
  if batch_size % num_devices:
    lower = batch_size - batch_size % num_devices
    options = f"{lower} or {lower + num_devices}" if lower else f"{num_devices}"
    raise ConfigError(
        f"{what}={batch_size} cannot be split evenly over {num_devices} devices; use a multiple of "
        f"{num_devices} (e.g. {options}), or set parallel.num_devices to a divisor of {batch_size}"
    )
