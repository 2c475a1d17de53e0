"""Robust evaluation: the library function, train.robust_eval, load_run and ``jaxreg eval``."""

import json
import os

import jax
import numpy as np
import pytest

from jaxreg.cli import main
from jaxreg.config import load_config
from jaxreg.errors import CheckpointError, ConfigError
from jaxreg.experiment import build, run
from jaxreg.regularizers import fgsm
from jaxreg.runs import clean_accuracy, load_run, robust_evaluation
from jaxreg.train.robust import robust_accuracy


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  """A finished digits_mlp:smoke run whose summary holds PGD accuracies (``train.robust_eval``)."""
  workdir = str(tmp_path_factory.mktemp("runs") / "smoke")
  config = load_config("digits_mlp:smoke", [("train.robust_eval.eps", "[0.0, 0.05]"),
                                            ("train.progress_bar", "False")])[0]
  result = run(build(config), workdir)
  return workdir, result


def test_train_robust_eval_puts_pgd_accuracy_in_the_summary(smoke_run):
  workdir, result = smoke_run
  with open(os.path.join(workdir, "summary.json")) as f:
    robust = json.load(f)["robust"]["pgd"]
  assert robust["eps"] == [0.0, 0.05] and robust["clip"] == [0.0, 1.0] and robust["steps"] == 10
  assert robust["accuracy"][0] == pytest.approx(result.summary["test_accuracy"], abs=1e-6)  # eps 0: clean
  assert robust["accuracy"][1] < robust["accuracy"][0]


def test_load_run_reproduces_the_summary_test_accuracy(smoke_run):
  workdir, result = smoke_run
  loaded = load_run(workdir)
  assert loaded.epoch == result.summary["best_epoch"]
  assert clean_accuracy(loaded) == pytest.approx(result.summary["test_accuracy"], abs=1e-6)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_robust_accuracy_is_independent_of_the_batch_size_and_matches_fgsm_by_hand(smoke_run):
  workdir, _ = smoke_run
  loaded = load_run(workdir)
  apply, variables = loaded.experiment.model.apply, loaded.variables
  test = loaded.experiment.dataset.test
  kwargs = dict(eps=[0.03, 0.1], attack="fgsm", clip=(0.0, 1.0))
  big, small = (robust_accuracy(apply, variables, test.x, test.y, batch_size=b, **kwargs) for b in (1024, 7))
  # FGSM per example: the sign of each example's own gradient (padding cannot change it).
  import optax

  def loss_at(x):
    return optax.softmax_cross_entropy_with_integer_labels(apply(variables, x, train=False)[0], test.y).sum()

  x_adv = fgsm(loss_at, test.x, 0.1, clip=(0.0, 1.0))
  by_hand = float(np.mean(np.argmax(apply(variables, x_adv, train=False)[0], -1) == test.y))
  assert big["accuracy"] == small["accuracy"]
  assert big["accuracy"][1] == pytest.approx(by_hand, abs=1e-6)  # the same examples right (float32 mean)
  pgd = robust_accuracy(apply, variables, test.x, test.y, eps=0.1, attack="pgd", steps=10, clip=(0.0, 1.0))
  assert pgd["accuracy"][0] <= big["accuracy"][1]


def test_robust_evaluation_records_each_attack_in_the_summary(smoke_run, tmp_path):
  workdir, _ = smoke_run
  result = robust_evaluation(load_run(workdir), eps=[0.1], attack="fgsm")
  with open(os.path.join(workdir, "summary.json")) as f:
    robust = json.load(f)["robust"]
  assert set(robust) == {"pgd", "fgsm"} and robust["fgsm"]["accuracy"] == result["accuracy"]


def test_jaxreg_eval_prints_the_accuracy_and_plots_the_attack(smoke_run, capsys):
  pytest.importorskip("matplotlib")
  workdir, result = smoke_run
  assert main(["eval", workdir, "--attack", "pgd", "--eps", "0,0.1", "--steps", "3"]) == 0
  out = capsys.readouterr().out
  assert f"test_accuracy: {result.summary['test_accuracy']:.4f}" in out
  assert "PGD, 3 steps, clip [0.0, 1.0]" in out and "eps 0.1" in out
  assert os.path.getsize(os.path.join(workdir, "robust.png")) > 1000


def test_jaxreg_eval_refuses_what_it_cannot_evaluate(smoke_run, tmp_path, capsys):
  workdir, _ = smoke_run
  assert main(["eval", str(tmp_path / "nothing")]) == 2
  assert "is not a run directory" in capsys.readouterr().err
  assert main(["eval", workdir, "--attack", "pgd", "--eps", "0.1,x"]) == 2
  assert "--eps takes numbers separated by commas" in capsys.readouterr().err
  assert main(["eval", workdir, "--attack", "pgd", "--eps", "-0.1"]) == 2
  assert "eps must hold finite numbers >= 0" in capsys.readouterr().err
  unfinished = tmp_path / "unfinished"
  unfinished.mkdir()
  (unfinished / "config.json").write_text(open(os.path.join(workdir, "config.json")).read())
  with pytest.raises(CheckpointError, match="has not finished.*--resume"):
    load_run(str(unfinished))


def test_bad_robust_eval_config_is_refused_before_training():
  for key, value, message in [
      ("train.robust_eval.eps", "[0.1, -1]", "train.robust_eval.eps must hold finite numbers >= 0"),
      ("train.robust_eval.attack", "'cw'", "train.robust_eval.attack must be one of fgsm, pgd"),
      ("train.robust_eval.steps", "0", "train.robust_eval.steps must be an integer >= 1"),
  ]:
    config = load_config("digits_mlp:smoke", [(key, value), ("train.robust_eval.eps", "[0.1]")]
                         if key != "train.robust_eval.eps" else [(key, value)])[0]
    with pytest.raises(ConfigError, match=message):
      build(config)


def test_robust_accuracy_refuses_a_multitask_model():
  from jaxreg.models import make_model

  model = make_model("multitask_mlp", num_outputs=10, trunk_sizes=(8,), tasks={"label": 1.0, "parity": 1.0})
  x = np.zeros((4, 64), np.float32)
  variables = model.init(jax.random.PRNGKey(0), x[:1])
  with pytest.raises(ValueError, match="one array of logits"):
    robust_accuracy(model.apply, variables, x, np.zeros(4, np.int32), eps=0.1, attack="fgsm")
