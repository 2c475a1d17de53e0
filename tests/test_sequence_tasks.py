"""Sequence tasks and recurrent configs: the adding problem, sequential digits, MNIST-1D as 40 steps."""

import numpy as np
import pytest

from jaxreg.config import load_config, validate_config
from jaxreg.data import make_dataset
from jaxreg.data.sequences import ADDING_BASELINE_MSE, adding_problem
from jaxreg.errors import ConfigError
from jaxreg.experiment import train_and_evaluate


def test_adding_problem_targets_are_the_two_marked_values():
  split = adding_problem(500, 30, seed=3)
  values, markers = split.x[..., 0], split.x[..., 1]
  np.testing.assert_array_equal(markers.sum(1), 2.0)
  assert (markers[:, :15].sum(1) == 1).all() and (markers[:, 15:].sum(1) == 1).all()  # one mark per half
  np.testing.assert_allclose(split.y, (values * markers).sum(1), rtol=1e-6)
  # Predicting the mean (1) scores about 2/12 = 0.167.
  assert abs(np.mean((split.y - 1.0) ** 2) - ADDING_BASELINE_MSE) < 0.03


def test_adding_dataset_from_a_config_and_its_errors():
  data = make_dataset("adding", sequence_length=20, num_examples=100)
  assert data.task == "regression" and data.train.x.shape[1:] == (20, 2)
  with pytest.raises(ConfigError, match="apply to data.name='adding' only"):
    make_dataset("digits", sequence_length=20)
  with pytest.raises(ConfigError, match="sequence_length must be an integer >= 2"):
    make_dataset("adding", sequence_length=1)


@pytest.mark.parametrize("spec", [f"{c}:{cell}" for c in ("adding", "mnist1d_rnn", "digits_rnn") for cell in ("rnn", "lstm", "gru")])
def test_recurrent_configs_are_valid(spec):
  config, _ = load_config(spec)
  validate_config(config)
  assert config.optimizer.clip_global_norm == 1.0  # gradient clipping is on in every RNN config


@pytest.mark.slow
def test_a_short_adding_run_learns_something(tmp_path):
  config, _ = load_config("adding:gru", [
      ("data.sequence_length", "10"), ("data.num_examples", "2000"), ("train.epochs", "4"),
      ("model.hidden_sizes", "(32,)"), ("train.progress_bar", "False"), ("optimizer.learning_rate", "0.01"),
  ])
  result = train_and_evaluate(config, str(tmp_path / "run"))
  assert result.summary["test_loss"] < 0.5 * ADDING_BASELINE_MSE  # a short sequence is learnt in a few epochs
  assert "test_accuracy" not in result.summary or result.summary["test_accuracy"] is None


@pytest.mark.slow
def test_sequential_digits_runs_rows_as_steps(tmp_path):
  config, _ = load_config("digits_rnn:lstm", [("train.epochs", "2"), ("model.hidden_sizes", "(16,)"),
                                               ("train.progress_bar", "False")])
  result = train_and_evaluate(config, str(tmp_path / "run"))
  assert result.summary["test_accuracy"] > 0.3
