"""Wang 2023's two ways to use the validation data after early stopping, from configs."""

import json

import pytest

from jaxreg.config import load_config
from jaxreg.errors import ConfigError
from jaxreg.experiment import train_and_evaluate

OVERRIDES = [
    ("model.hidden_sizes", "(32,)"), ("model.dropout_rate", "0.0"), ("train.epochs", "12"),
    ("train.progress_bar", "False"), ("train.early_stopping.patience", "3"), ("optimizer.learning_rate", "0.01"),
]


def _run(tmp_path, strategy, extra=()):
  config, _ = load_config("digits_mlp", OVERRIDES + [("train.after_early_stopping", strategy), *extra])
  result = train_and_evaluate(config, str(tmp_path / strategy))
  records = [json.loads(line) for line in (tmp_path / strategy / "metrics_refit.jsonl").read_text().splitlines()]
  return result, records


@pytest.mark.slow
def test_retrain_for_the_same_number_of_steps(tmp_path):
  result, records = _run(tmp_path, "retrain_steps")
  report = result.summary["refit"]
  best = result.summary["best_epoch"]
  assert report["target_steps"] == best * (1257 // 64) == report["steps_run"] == int(result.state.step)
  assert report["train_examples"] == 1257 + 180
  assert records[-1]["step"] == report["target_steps"]  # the last epoch was cut short to land on it
  assert "val_loss" not in records[0]  # no validation split left
  assert result.summary["test_accuracy"] == pytest.approx(records[-1]["test_accuracy"])


@pytest.mark.slow
def test_retrain_for_the_same_number_of_epochs(tmp_path):
  result, records = _run(tmp_path, "retrain_epochs")
  report = result.summary["refit"]
  assert report["epochs_run"] == result.summary["best_epoch"] == len(records)
  assert report["steps_run"] == len(records) * (1437 // 64)  # more steps than the first run took


@pytest.mark.slow  # an end-to-end run: in the full suite, out of the fast tier
def test_continue_until_the_training_loss_is_below_the_validation_loss_at_the_stop(tmp_path):
  result, records = _run(tmp_path, "continue")
  report = result.summary["refit"]
  target = report["target_train_loss"]
  assert target == pytest.approx(result.summary["val_loss"])  # the restored (best) state's validation loss
  assert report["reached_target"] and records[-1]["train_loss"] < target
  assert all(r["train_loss"] >= target for r in records[:-1])
  assert report["early_stopped_test_accuracy"] is not None


@pytest.mark.parametrize(
    "extra, message",
    [
        ([("train.after_early_stopping", "twice")], "train.after_early_stopping must be one of none, retrain_steps"),
        ([("train.after_early_stopping", "continue"), ("data.val_fraction", "0.0")], "the dataset has none"),
    ],
)
def test_bad_refit_configs(tmp_path, extra, message):
  config, _ = load_config("digits_mlp:smoke", extra)
  with pytest.raises(ConfigError, match=message):
    train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()  # nothing was written
