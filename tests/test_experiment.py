"""Build once, then run: ``build(config) -> Experiment`` checked against the real data, ``run`` owns the directory."""

import json
import os

import jax
import numpy as np
import pytest

from jaxreg.config import load_config
from jaxreg.errors import ConfigError
from jaxreg.experiment import Experiment, build, run, train_and_evaluate


def _smoke(overrides=()):
  config, _ = load_config("digits_mlp:smoke", [("train.progress_bar", "False"), *overrides])
  return config


def test_build_uses_the_real_data_and_writes_nothing(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  config = _smoke([("optimizer.schedule", "{'name': 'exponential', 'unit': 'epoch', 'rate': 0.5}")])
  experiment = build(config)
  assert isinstance(experiment, Experiment)
  assert os.listdir(tmp_path) == []
  steps_per_epoch = len(experiment.dataset.train.y) // experiment.options.batch_size
  assert steps_per_epoch == 1257 // 64 and experiment.model is not None
  rate = experiment.optimizer.learning_rate  # an epoch schedule counted in the data's real steps
  assert float(rate(steps_per_epoch)) == pytest.approx(0.5 * float(rate(0)))
  assert experiment.config == config.to_dict()
  logits, _ = experiment.model.apply({"params": experiment.initial_state.params}, experiment.dataset.test.x[:2],
                                     train=False)
  assert logits.shape == (2, experiment.dataset.num_outputs)


def test_a_bad_value_stops_the_build_naming_its_key(tmp_path):
  with pytest.raises(ConfigError, match=r"^optimizer\.b2 must be in \[0, 1\), got 1\.0$"):
    build(_smoke([("optimizer.b2", "1.0")]))
  with pytest.raises(ConfigError, match="optimizer.schedule.factor must be in \\(0, 1\\)"):
    train_and_evaluate(_smoke([("optimizer.schedule", "{'name': 'plateau', 'factor': 3.0}")]), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_run_of_a_build_is_train_and_evaluate(tmp_path):
  config = _smoke()
  by_parts = run(build(config), str(tmp_path / "parts"))
  whole = train_and_evaluate(config, str(tmp_path / "whole"))
  assert by_parts.history[-1]["val_loss"] == whole.history[-1]["val_loss"]
  for a, b in zip(jax.tree.leaves(by_parts.state.params), jax.tree.leaves(whole.state.params), strict=True):
    np.testing.assert_array_equal(a, b)
  summary = json.loads((tmp_path / "parts" / "summary.json").read_text())
  assert summary["test_accuracy"] == by_parts.summary["test_accuracy"]
  assert "compilations" in json.loads((tmp_path / "whole" / "summary.json").read_text())


def test_an_existing_run_is_refused_before_anything_is_built(tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "config.json").write_text("{}")
  (workdir / "summary.json").write_text("{}")  # a finished run
  import jaxreg.experiment as experiment

  monkeypatch.setattr(experiment, "build", lambda config: pytest.fail("built before the directory was checked"))
  with pytest.raises(Exception, match="already holds a run; pass --resume"):
    train_and_evaluate(_smoke(), str(workdir))
