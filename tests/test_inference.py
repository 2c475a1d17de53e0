"""Inference from a finished run: load_run + predict/evaluate reproduce the summary, export round-trips, the commands."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import serialization

from jaxreg.cli import main
from jaxreg.config import load_config
from jaxreg.errors import CheckpointError
from jaxreg.experiment import train_and_evaluate
from jaxreg.inference import evaluate, evaluate_split, export, predict
from jaxreg.compare import comparison_rows, comparison_table, differing_keys, run_labels
from jaxreg.runs import load_run


pytestmark = pytest.mark.slow  # every test here reads two finished runs (10 s to train); the fast tier stays short


def _train(workdir, *overrides):
  config, _ = load_config("digits_mlp:smoke", [("train.progress_bar", "False"), *overrides])
  return train_and_evaluate(config, str(workdir)).summary


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Two finished runs: standardized inputs + Nesterov (evaluated at theta); batch norm (variables with batch_stats)."""
  root = tmp_path_factory.mktemp("runs")
  first = _train(root / "nesterov", ("data.preprocess", "standardize"), ("optimizer.name", "nesterov"),
                 ("optimizer.learning_rate", "0.05"), ("optimizer.momentum", "0.9"), ("checkpoint.keep", "5"))
  second = _train(root / "bn", ("model.batch_norm", "True"), ("optimizer.learning_rate", "0.003"))
  return {"nesterov": (str(root / "nesterov"), first), "bn": (str(root / "bn"), second)}


def _raw_test(run):
  return (run.experiment.raw_dataset or run.experiment.dataset).test


@pytest.mark.parametrize("name", ["nesterov", "bn"])
def test_load_run_and_predict_reproduce_the_summarys_test_accuracy(runs, name):
  workdir, summary = runs[name]
  run = load_run(workdir)
  metrics = evaluate_split(run, "test")
  assert metrics["accuracy"] == summary["test_accuracy"] and metrics["loss"] == summary["test_loss"]  # to the bit
  test = _raw_test(run)  # the inputs as the data gives them: predict applies the run's statistics
  labels = predict(run, test.x, output="labels", batch_size=97)
  correct = int(np.sum(labels == test.y))
  assert correct == round(summary["test_accuracy"] * len(test.y))
  np.testing.assert_allclose(correct / len(test.y), summary["test_accuracy"], rtol=1e-6)
  probabilities = predict(run, test.x, output="probabilities")
  np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
  assert (probabilities.argmax(-1) == labels).all()


def test_a_run_unpacks_as_model_variables_config(runs):
  workdir, summary = runs["nesterov"]
  model, variables, config = load_run(workdir)
  assert config["optimizer"]["name"] == "nesterov" and config["data"]["preprocess"] == "standardize"
  run = load_run(workdir)
  x = run.experiment.dataset.test.x  # already standardized
  logits, _ = model.apply(variables, x, train=False, rng=None)
  assert np.mean(np.argmax(logits, -1) == run.experiment.dataset.test.y) == pytest.approx(summary["test_accuracy"])


def test_evaluate_on_arrays_matches_the_split(runs):
  run = load_run(runs["bn"][0])
  test = _raw_test(run)
  on_arrays = evaluate(run, test.x, test.y)
  np.testing.assert_allclose(on_arrays["accuracy"], runs["bn"][1]["test_accuracy"], rtol=1e-6)
  with pytest.raises(ValueError, match=r"x has examples of shape \(8, 8\), but the run's model takes \(64,\)"):
    predict(run, test.x.reshape(-1, 8, 8))
  with pytest.raises(ValueError, match="same number of examples"):
    evaluate(run, test.x, test.y[:-1])
  with pytest.raises(ValueError, match="output must be one of"):
    predict(run, test.x, output="scores")
  with pytest.raises(ValueError, match=r"x holds no examples \(shape \(0, 64\)\); pass an array of shape \(n, 64\)"):
    predict(run, test.x[:0])
  with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
    predict(run, test.x, batch_size=0)
  np.testing.assert_array_equal(predict(run, test.x, batch_size=7, output="labels"), predict(run, test.x, output="labels"))


def test_a_chosen_checkpoint(runs):
  workdir, summary = runs["nesterov"]
  assert load_run(workdir, epoch="last").epoch == summary["epochs_run"]
  first = load_run(workdir, epoch=1)
  assert first.epoch == 1 and int(first.state.step) == summary["steps"] // summary["epochs_run"]
  with pytest.raises(CheckpointError, match="kept no checkpoint of epoch 9; kept epochs: 1, 2, 3"):
    load_run(workdir, epoch=9)


def test_export_round_trips_to_identical_parameters_without_orbax(runs, tmp_path):
  run = load_run(runs["bn"][0])
  path = export(run, str(tmp_path / "model.msgpack"))
  with open(path, "rb") as f:
    data = f.read()
  restored = serialization.msgpack_restore(data)
  assert set(restored) == {"params", "batch_stats"}
  expected = jax.device_get(run.variables)
  assert jax.tree.structure(restored) == jax.tree.structure(serialization.to_state_dict(expected))
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(expected), strict=True):
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
  into = serialization.from_bytes(run.variables, data)  # into a template, as Flax users do
  logits, _ = run.model.apply(into, run.experiment.dataset.test.x, train=False, rng=None)
  np.testing.assert_array_equal(np.argmax(logits, -1), predict(run, _raw_test(run).x, output="labels"))


def test_compare_names_the_differing_keys(runs, tmp_path):
  workdirs = [runs["nesterov"][0], runs["bn"][0]]
  keys = differing_keys([json.load(open(os.path.join(w, "config.json"))) for w in workdirs])
  assert "optimizer.name" in keys and "model.batch_norm" in keys and "train.progress_bar" not in keys
  assert run_labels(workdirs)[0].startswith("data.preprocess=standardize")
  rows = comparison_rows(workdirs)
  assert rows[1]["test_accuracy"] == runs["bn"][1]["test_accuracy"] and rows[0]["optimizer.name"] == "nesterov"
  table = comparison_table(workdirs, ("test_accuracy",))
  assert table.splitlines()[0].startswith("| run | data.preprocess |") and f"{rows[0]['test_accuracy']:.4f}" in table


def test_the_commands_report_what_the_library_computes(runs, tmp_path, capsys):
  workdir, summary = runs["bn"]
  assert main(["eval", workdir]) == 0
  out = capsys.readouterr().out
  assert f"test_accuracy: {summary['test_accuracy']:.4f}" in out and f"test_loss: {summary['test_loss']:.4f}" in out
  run = load_run(workdir)
  test = _raw_test(run)
  np.savez(tmp_path / "x.npz", x=test.x, y=test.y)
  assert main(["eval", workdir, "--data", str(tmp_path / "x.npz")]) == 0
  assert f"x.npz_accuracy: {summary['test_accuracy']:.4f}" in capsys.readouterr().out
  assert main(["predict", workdir, "--input", str(tmp_path / "x.npz"), "--output", str(tmp_path / "y.npz")]) == 0
  with np.load(tmp_path / "y.npz") as written:
    np.testing.assert_array_equal(written["labels"], predict(run, test.x, output="labels"))
    assert written["probabilities"].shape == written["logits"].shape == (len(test.y), 10)
  np.savez(tmp_path / "bad.npz", inputs=test.x)
  assert main(["eval", workdir, "--data", str(tmp_path / "bad.npz")]) == 2
  assert "has no array named 'x' (it has: inputs); write it with np.savez" in capsys.readouterr().err
  assert main(["compare", workdir, runs["nesterov"][0]]) == 0
  assert "| run | data.preprocess |" in capsys.readouterr().out


def test_export_from_the_command_line_reads_back_in_a_process_without_jaxreg_or_orbax(runs, tmp_path):
  workdir, _ = runs["nesterov"]
  path = tmp_path / "model.msgpack"
  subprocess.run([sys.executable, "-m", "jaxreg", "export", workdir, str(path)], check=True, capture_output=True)
  check = ("import sys, flax.serialization as s; v = s.msgpack_restore(open(sys.argv[1], 'rb').read()); "
           "assert 'jaxreg' not in sys.modules and 'orbax' not in sys.modules; print(sorted(v['params']))")
  out = subprocess.run([sys.executable, "-c", check, str(path)], check=True, capture_output=True, text=True).stdout
  assert out.strip() == "['dense_0', 'output']"
  expected = load_run(workdir).variables["params"]
  restored = serialization.msgpack_restore(path.read_bytes())["params"]
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(expected), strict=True):
    np.testing.assert_array_equal(a, b)
