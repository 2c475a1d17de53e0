"""Populations from configs: members equal their runs alone, sweeps, refusals, checkpoints and resume, the CLI."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxreg.config import load_config, sweep_over
from jaxreg.errors import ConfigError, TrainingError
from jaxreg.experiment import train_and_evaluate
from jaxreg.populations import (
    build_population,
    member_config,
    population_members,
    sweep_settings,
    swept_values,
    train_population,
)
from jaxreg.train.population import member

QUIET = [("train.progress_bar", "False")]


def _config(*overrides):
  return load_config("digits_mlp:smoke", QUIET + [(k, v) for k, v in overrides])[0]


def _assert_same_params(got, want):
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_settings_grid_and_zip_and_the_members_seeds():
  config = _config(("population.sweep.optimizer.learning_rate", "[0.001, 0.01]"),
                   ("population.sweep.regularizers.l2.alpha", "[0.0, 0.1]"), ("population.size", "2"),
                   ("train.seed", "5"))
  assert swept_values(config) == {"optimizer.learning_rate": (0.001, 0.01), "regularizers.l2.alpha": (0.0, 0.1)}
  assert len(sweep_settings(config)) == 4
  members = population_members(config)
  assert [m.seed for m in members] == [5, 6] * 4
  alone = member_config(config, members[3])
  assert alone.train.seed == 6 and alone.optimizer.learning_rate == 0.001 and alone.regularizers.l2.alpha == 0.1
  assert alone.population.size == 1 and not swept_values(alone)
  config.population.sweep_mode = "zip"
  assert sweep_settings(config) == [{"optimizer.learning_rate": 0.001, "regularizers.l2.alpha": 0.0},
                                    {"optimizer.learning_rate": 0.01, "regularizers.l2.alpha": 0.1}]
  config.population.sweep = sweep_over({"optimizer.learning_rate": [1e-3, 1e-2, 1e-1], "regularizers.l2.alpha": [0]})
  with pytest.raises(ConfigError, match="same length"):
    sweep_settings(config)


def test_the_whole_sweep_can_be_given_as_one_dict_on_the_command_line():
  config = _config(("population.sweep", "{'optimizer.learning_rate': [0.001, 0.01], 'model.dropout_rate': [0.1]}"))
  assert swept_values(config) == {"optimizer.learning_rate": (0.001, 0.01), "model.dropout_rate": (0.1,)}
  with pytest.raises(ConfigError, match="dict of dotted keys"):
    _config(("population.sweep", "[1, 2]"))


@pytest.mark.parametrize("key, values, match", [
    ("data.batch_size", "[32, 64]", "only model, optimizer and regularizers"),
    ("model.hidden_sizes", "[[32], [64]]", "only numbers"),
    ("model.activation", "['relu', 'tanh']", "only numbers"),
    ("optimizer.clip_global_norm", "[1.0, 2.0]", "cannot differ between the members of one compiled program"),
])
def test_keys_that_change_the_program_are_refused_with_the_sequential_way(key, values, match):
  config = _config((f"population.sweep.{key}", values))
  with pytest.raises(ConfigError, match=match) as error:
    build_population(config)
  assert "jaxreg sweep --sequential" in str(error.value)


def test_settings_a_population_does_not_take_are_refused():
  with pytest.raises(ConfigError, match="train.after_early_stopping"):
    build_population(_config(("population.size", "2"), ("train.after_early_stopping", "retrain_steps")))
  with pytest.raises(ConfigError, match="population.size must be a positive integer"):
    build_population(_config(("population.size", "0")))


@pytest.mark.slow  # whole runs
def test_each_member_equals_its_seeds_run_alone_after_100_steps(tmp_path):
  """digits_mlp:smoke, 6 epochs x 19 steps: dropout 0.3, L2, Adam; member m is --config.train.seed=m."""
  config = _config(("population.size", "2"), ("train.epochs", "6"), ("train.seed", "3"))
  result = train_population(config, str(tmp_path / "population"))
  assert result.summary["population"]["seeds"] == [3, 4]
  for m, seed in enumerate((3, 4)):
    alone = train_and_evaluate(_config(("train.epochs", "6"), ("train.seed", str(seed))), str(tmp_path / f"{seed}"))
    assert int(member(result.states, m).step) == int(alone.summary["steps"]) >= 100
    _assert_same_params(member(result.states, m).params, alone.state.params)
    assert result.summary["members"]["best_epoch"][m] == alone.summary["best_epoch"]
    assert result.summary["members"]["test_loss"][m] == pytest.approx(alone.summary["test_loss"], rel=1e-5)
  ensemble = result.summary["ensemble"]
  assert set(ensemble) == {"mean_probabilities", "geometric_mean", "majority_vote"}
  assert result.summary["test_accuracy"] == ensemble["mean_probabilities"]["accuracy"]
  saved = json.loads((tmp_path / "population" / "summary.json").read_text())
  assert saved["members"]["test_accuracy"] == result.summary["members"]["test_accuracy"]
  assert saved["compilations"]["programs"] > 0


@pytest.mark.slow  # whole runs
def test_a_sweep_member_equals_the_run_with_its_values_alone(tmp_path):
  """Learning rate, L2 strength and dropout rate traced per member in one program."""
  sweep = {"optimizer.learning_rate": "[0.001, 0.004]", "regularizers.l2.alpha": "[0.0001, 0.003]",
           "model.dropout_rate": "[0.1, 0.4]"}
  config = _config(("population.sweep_mode", "zip"), *[(f"population.sweep.{k}", v) for k, v in sweep.items()])
  result = train_population(config, str(tmp_path / "sweep"))
  assert "ensemble" not in result.summary  # different models: not an ensemble
  for m, values in enumerate(zip(*[json.loads(v) for v in sweep.values()], strict=True)):
    alone = _config(*[(k, str(v)) for k, v in zip(sweep, values, strict=True)])
    solo = train_and_evaluate(alone, str(tmp_path / f"alone{m}"))
    _assert_same_params(member(result.states, m).params, solo.state.params)
    assert result.summary["members"]["test_loss"][m] == pytest.approx(solo.summary["test_loss"], rel=1e-5)


@pytest.mark.slow  # many compiled steps; the fast tier stays under 3 minutes
def test_bootstrap_members_train_on_their_own_resamples(tmp_path):
  population = build_population(_config(("population.size", "3"), ("population.bootstrap", "True")))
  resamples = np.asarray(population.resamples)
  n = len(population.experiment.dataset.train.y)
  assert resamples.shape == (3, n)
  unique = [len(np.unique(r)) / n for r in resamples]
  assert all(0.59 < u < 0.67 for u in unique)  # 1 - 1/e = 0.632
  assert len({tuple(r[:50]) for r in resamples}) == 3


@pytest.mark.slow  # whole runs
def test_a_resumed_population_ends_as_the_uninterrupted_one(tmp_path):
  """Two epochs, then a resume to four: every member's state, best epoch and early stopping as four straight."""
  overrides = [("population.size", "3"), ("train.early_stopping.patience", "1"), ("optimizer.learning_rate", "0.05")]
  straight = train_population(_config(*overrides, ("train.epochs", "6")), str(tmp_path / "straight"))
  workdir = str(tmp_path / "resumed")
  train_population(_config(*overrides, ("train.epochs", "3")), workdir)
  with pytest.raises(Exception, match="already holds a run"):
    train_population(_config(*overrides, ("train.epochs", "6")), workdir)
  resumed = train_population(_config(*overrides, ("train.epochs", "6")), workdir, resume=True)
  assert resumed.best_epochs == straight.best_epochs
  assert resumed.stopped_epochs == straight.stopped_epochs
  _assert_same_params(resumed.states.params, straight.states.params)
  lines = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
  assert [r["epoch"] for r in lines] == [r["epoch"] for r in straight.history]
  assert resumed.summary["members"]["test_loss"] == pytest.approx(straight.summary["members"]["test_loss"])


@pytest.mark.slow  # many compiled steps; the fast tier stays under 3 minutes
def test_a_diverging_member_stops_and_the_others_go_on(tmp_path):
  config = _config(("optimizer.name", "sgd"), ("population.sweep.optimizer.learning_rate", "[0.05, 1e6]"),
                   ("train.epochs", "4"))
  with pytest.warns(UserWarning, match="member.s. 1 diverged"):
    result = train_population(config, str(tmp_path / "sweep"))
  assert result.diverged == [1]
  assert result.stopped_epochs[0] == 4 and result.stopped_epochs[1] < 4
  assert result.summary["members"]["test_accuracy"][0] > 0.5
  every = _config(("optimizer.name", "sgd"), ("population.sweep.optimizer.learning_rate", "[1e6, 1e7]"))
  with pytest.raises(TrainingError, match="every member's training loss became non-finite"):
    train_population(every, str(tmp_path / "diverged"))


@pytest.mark.slow  # whole runs
def test_jaxreg_sweep_writes_a_table_and_a_plot(tmp_path):
  workdir = tmp_path / "sweep"
  command = [sys.executable, "-m", "jaxreg", "sweep", "--config", "digits_mlp:smoke", "--workdir", str(workdir),
             "--no-progress", "--config.population.sweep.optimizer.learning_rate=[0.001,0.01]",
             "--config.population.size=2"]
  done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
  assert done.returncode == 0, done.stderr
  rows = (workdir / "sweep.csv").read_text().splitlines()
  assert rows[0].startswith("optimizer.learning_rate,seed,best_epoch") and len(rows) == 5
  summary = json.loads((workdir / "summary.json").read_text())
  assert [float(r.split(",")[0]) for r in rows[1:]] == [0.001, 0.001, 0.01, 0.01]
  assert summary["members"]["val_accuracy"][2] > summary["members"]["val_accuracy"][0]  # 10x the rate, 3 epochs
  assert (workdir / "sweep.png").stat().st_size > 10_000
  assert "| optimizer.learning_rate |" in (workdir / "sweep.md").read_text()
  plotted = subprocess.run([sys.executable, "-m", "jaxreg", "plot", str(workdir)], capture_output=True, text=True,
                           cwd=tmp_path, timeout=300)
  assert plotted.returncode == 0, plotted.stderr
  assert (workdir / "curves.png").exists()


@pytest.mark.slow  # several runs
def test_jaxreg_sweep_sequential_runs_keys_that_change_shapes(tmp_path):
  workdir = tmp_path / "sweep"
  command = [sys.executable, "-m", "jaxreg", "sweep", "--sequential", "--config", "digits_mlp:smoke", "--workdir",
             str(workdir), "--no-progress", "--config.population.sweep.model.hidden_sizes=[[16],[64]]"]
  done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=600)
  assert done.returncode == 0, done.stderr
  assert sorted(os.listdir(workdir)) == ["00-hidden_sizes=_16_", "01-hidden_sizes=_64_", "sweep.csv", "sweep.md",
                                         "sweep.png"]
  rows = (workdir / "sweep.csv").read_text().splitlines()
  assert len(rows) == 3 and rows[1].startswith("[16],0,") and rows[2].startswith("[64],0,")
  single = json.loads((workdir / "01-hidden_sizes=_64_" / "summary.json").read_text())
  assert f"{single['test_accuracy']}" in rows[2]


@pytest.mark.slow  # real processes and a real signal
def test_ctrl_c_stops_a_population_with_a_checkpoint_and_the_printed_resume_ends_as_the_uninterrupted(tmp_path):
  import signal
  import time

  overrides = ["--config.population.size=3", "--config.train.epochs=12", "--config.data.batch_size=16"]

  def command(workdir, *extra):
    return [sys.executable, "-m", "jaxreg", "train", "--workdir", str(workdir), "--no-progress", *extra]

  straight = tmp_path / "straight"
  subprocess.run(command(straight, "--config", "digits_mlp:smoke", *overrides), check=True, timeout=300,
                 capture_output=True)
  workdir = tmp_path / "interrupted"
  proc = subprocess.Popen(command(workdir, "--config", "digits_mlp:smoke", *overrides), stderr=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, text=True)
  deadline = time.monotonic() + 240
  while not (workdir / "checkpoints" / "2").exists():
    assert proc.poll() is None and time.monotonic() < deadline, "the run ended before the signal"
    time.sleep(0.01)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=240)
  assert proc.returncode == 130 and "Traceback" not in err, err
  assert f"jaxreg train --workdir {workdir} --resume" in err
  assert not (workdir / "summary.json").exists()
  subprocess.run(command(workdir, "--resume"), check=True, timeout=300, capture_output=True)  # the advice, followed
  a, b = (json.loads((w / "summary.json").read_text()) for w in (straight, workdir))
  assert b["resumed"] and a["members"] == b["members"] and a["ensemble"] == b["ensemble"]
  lines = [json.loads(line)["epoch"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert lines == list(range(1, 13))


@pytest.mark.slow  # many compiled steps; the fast tier stays under 3 minutes
def test_jaxreg_eval_names_a_population_for_what_it_is(tmp_path, capsys):
  from jaxreg import cli

  workdir = tmp_path / "population"
  train_population(_config(("population.size", "2"), ("train.epochs", "1")), str(workdir))
  assert cli.main(["eval", str(workdir)]) == 2
  err = capsys.readouterr().err
  assert "holds a population of 2 members" in err and "population.size=1" in err


def test_jaxreg_sweep_refuses_a_bad_metric_or_no_sweep_before_training(tmp_path, capsys):
  from jaxreg import cli

  workdir = tmp_path / "sweep"
  assert cli.main(["sweep", "--config", "digits_mlp:smoke", "--workdir", str(workdir), "--metric", "accuracy",
                   "--config.population.sweep.optimizer.learning_rate=[0.001,0.01]"]) == 2
  assert "--metric names a validation or test metric" in capsys.readouterr().err
  assert cli.main(["sweep", "--config", "digits_mlp:smoke", "--workdir", str(workdir)]) == 2
  assert "jaxreg sweep needs population.sweep" in capsys.readouterr().err
  assert not workdir.exists()
