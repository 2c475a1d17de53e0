"""Using the validation data after early stopping (Wang 2023, "Exploiting the Validation Data").

Early stopping holds out a validation split to choose the training time.
Once that is chosen, the lecture notes give two ways to train on all the data:

* **retrain** from scratch on train + validation for the chosen time. The
  lecture notes ask whether "the point" is the same number of parameter updates
  (``'retrain_steps'``) or the same number of passes through the data
  (``'retrain_epochs'``); with more data per epoch the two differ, and both
  are offered (Goodfellow et al., Algorithm 7.2).
* **continue** from the early-stopped parameters on train + validation
  (``'continue'``) until the training loss falls below the validation loss
  at the stopping point (Goodfellow et al., Algorithm 7.3, which monitors
  the average loss on the data). It is cheaper but, with no validation
  split left, "not well-behaved": the target may never be reached, so the
  run is capped at ``max_epochs``.
"""

import math
from collections.abc import Callable

import numpy as np

from jaxreg.data.datasets import Dataset, Split
from jaxreg.errors import ConfigError
from jaxreg.train.early_stopping import EarlyStopping
from jaxreg.train.loop import FitResult, fit
from jaxreg.train.state import EarlyStoppingState, TrainState

STRATEGIES = ("none", "retrain_steps", "retrain_epochs", "continue")


def with_validation_in_train(dataset: Dataset) -> Dataset:
  """The dataset with its validation split appended to the training split (and no validation split)."""
  if dataset.val is None:
    raise ConfigError(
        f"{dataset.name} has no validation split to train on; set data.val_fraction > 0 or give x_val/y_val"
    )
  train = Split(
      np.concatenate([dataset.train.x, dataset.val.x]), np.concatenate([dataset.train.y, dataset.val.y])
  )
  return Dataset(dataset.name + "+val", dataset.task, train, None, dataset.test, dataset.num_classes)


def check_strategy(strategy: str) -> None:
  if strategy not in STRATEGIES:
    raise ConfigError(
        f"train.after_early_stopping must be one of {', '.join(STRATEGIES)}, got {strategy!r}"
    )


def refit(
    strategy: str,
    first: FitResult,
    *,
    initial_state: TrainState,
    dataset: Dataset,
    batch_size: int,
    max_epochs: int,
    **fit_kwargs,
) -> tuple[FitResult, dict]:
  """Trains on train + validation after an early-stopped run ``first``.

  Args:
    strategy: ``'retrain_steps'``, ``'retrain_epochs'`` or ``'continue'``.
    first: the early-stopped run (its summary's ``best_epoch``, ``steps`` and
      ``val_loss``, and its ``state``, the restored best one).
    initial_state: the state ``first`` started from (retraining starts over from it).
    dataset: the dataset ``first`` trained on (with its validation split).
    batch_size: the batch size of both runs.
    max_epochs: the cap for ``'continue'``.
    **fit_kwargs: passed to :func:`fit` (train_step, eval_step, writer, ...).

  Returns:
    ``(result, report)``: the run on all the data, and what happened
    (strategy, target, epochs and steps, the early-stopped run's test metrics).
  """
  check_strategy(strategy)
  if strategy == "none":
    raise ValueError("refit needs a strategy other than 'none'")
  all_data = with_validation_in_train(dataset)
  first_steps_per_epoch = len(dataset.train.y) // batch_size
  steps_per_epoch = len(all_data.train.y) // batch_size
  best_epoch = int(first.summary["best_epoch"])
  if best_epoch < 1:
    raise ConfigError("the early-stopped run has no best epoch to refit from")
  report = {
      "strategy": strategy,
      "early_stopped_epoch": best_epoch,
      "early_stopped_steps": best_epoch * first_steps_per_epoch,
      "early_stopped_test_loss": first.summary.get("test_loss"),
      "early_stopped_test_accuracy": first.summary.get("test_accuracy"),
      "train_examples": len(all_data.train.y),
  }
  fresh_stopping = EarlyStopping(monitor="train_loss", mode="min")
  common = dict(dataset=all_data, batch_size=batch_size, early_stopping=fresh_stopping, restore_best=False,
                **fit_kwargs)
  if strategy == "retrain_steps":
    steps = best_epoch * first_steps_per_epoch
    report["target_steps"] = steps
    result = fit(initial_state, epochs=math.ceil(steps / steps_per_epoch), max_steps=steps, **common)
  elif strategy == "retrain_epochs":
    report["target_epochs"] = best_epoch
    result = fit(initial_state, epochs=best_epoch, **common)
  else:
    target = float(first.summary["val_loss"])
    report["target_train_loss"] = target
    stop_when: Callable[[dict], str | None] = lambda record: (
        f"the training loss {record['train_loss']:.4f} fell below the stopping point's validation loss {target:.4f}"
        if record["train_loss"] < target else None
    )
    start = first.state.replace(early_stopping=EarlyStoppingState.create("min"))
    result = fit(start, epochs=max_epochs, stop_when=stop_when, **common)
    report["reached_target"] = result.history[-1]["train_loss"] < target if result.history else False
  report.update(epochs_run=result.summary["epochs_run"], steps_run=result.summary["steps"] - (
      int(first.state.step) if strategy == "continue" else 0), stop_reason=result.summary["stop_reason"])
  return result, report
