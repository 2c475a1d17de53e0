"""Early stopping: watch a validation metric and stop when it stops improving.

Source: Baskin et al. 2018, "Regularization techniques: early stopping" and Wang 2023,
"Early Stopping" (Goodfellow et al., Deep Learning, section 7.8).
"""

import dataclasses

import jax
import numpy as np

from jaxreg.train.state import EarlyStoppingState


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
  """When an epoch counts as an improvement, and when to stop.

  An epoch improves on the best so far if ``value < best - min_delta``
  (``mode='min'``) or ``value > best + min_delta`` (``mode='max'``). Training
  stops after ``patience`` evaluations in a row without an improvement;
  ``patience=None`` only tracks the best epoch (for checkpoints and
  ``restore_best``) and never stops.

  Attributes:
    monitor: a logged metric, e.g. ``'val_loss'`` or ``'val_accuracy'``.
    mode: ``'min'`` if lower is better, ``'max'`` if higher is better.
    patience: evaluations without improvement before stopping, or ``None``.
    min_delta: the smallest change that counts as an improvement, ``>= 0``.

  Examples:
    >>> es = EarlyStopping(monitor='val_accuracy', mode='max', patience=10)
  """

  monitor: str = "val_loss"
  mode: str = "min"
  patience: int | None = None
  min_delta: float = 0.0

  def __post_init__(self):
    if self.mode not in ("min", "max"):
      raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
    if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
      raise ValueError(
          f"patience must be a positive integer or None (never stop), got {self.patience!r}"
      )
    if not self.min_delta >= 0:
      raise ValueError(f"min_delta must be >= 0, got {self.min_delta!r}")

  def initial_state(self) -> EarlyStoppingState:
    return EarlyStoppingState.create(self.mode)

  def update(self, es: EarlyStoppingState, value: float, epoch: int) -> tuple[EarlyStoppingState, bool]:
    """Records ``value`` for ``epoch``; returns the new state and whether it improved."""
    improved = bool(self.improves(value, float(es.best_value)))
    if improved:
      new = EarlyStoppingState(
          best_value=_scalar(value, np.float32), best_epoch=_scalar(epoch, np.int32), bad_epochs=_scalar(0, np.int32)
      )
    else:
      new = es.replace(bad_epochs=_scalar(int(es.bad_epochs) + 1, np.int32))
    return new, improved

  def improves(self, value, best):
    """Whether ``value`` improves on ``best`` (NaN never does); element-wise on NumPy arrays (a population's members)."""
    value, best = np.asarray(value, np.float64), np.asarray(best, np.float64)
    better = value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta
    return better & ~np.isnan(value)

  def should_stop(self, es: EarlyStoppingState) -> bool:
    return self.patience is not None and int(es.bad_epochs) >= self.patience


def _scalar(value, dtype) -> jax.Array:
  """A host number as a device scalar (``device_put`` compiles nothing, unlike ``jnp.asarray``)."""
  return jax.device_put(np.asarray(value, dtype))
