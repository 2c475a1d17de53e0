"""NNX models through from_nnx: fit equals the Linen twin on the same weights, the train flag, dropout keys and batch
statistics follow the ModelFns contract, and a user's module and dataset run from the command line by import path."""

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxreg.cli import main
from jaxreg.errors import ConfigError
from jaxreg.models import from_nnx, make_mlp, make_model
from jaxreg.regularizers import make_regularizers
from jaxreg.train import classification_objective, create_train_state, fit, make_eval_step, make_train_step


class MLP(nnx.Module):
  """The NNX twin of ``make_mlp(hidden_sizes=(32,), dropout_rate=rate)``: dense, relu, dropout, dense."""

  def __init__(self, rate=0.0, *, rngs):
    self.dense_0 = nnx.Linear(64, 32, rngs=rngs)
    self.dropout = nnx.Dropout(rate, rngs=rngs)
    self.output = nnx.Linear(32, 10, rngs=rngs)

  def __call__(self, x):
    return self.output(self.dropout(jax.nn.relu(self.dense_0(x))))


class WithBatchNorm(nnx.Module):
  def __init__(self, *, rngs):
    self.dense = nnx.Linear(64, 16, rngs=rngs)
    self.norm = nnx.BatchNorm(16, rngs=rngs)
    self.output = nnx.Linear(16, 10, rngs=rngs)

  def __call__(self, x):
    return self.output(jax.nn.relu(self.norm(self.dense(x))))


def _fit(model, variables, digits, *, epochs=4):
  tx = optax.sgd(0.1, momentum=0.9)
  regularizers = make_regularizers(l2={"alpha": 1e-3})
  objective = classification_objective(model.apply)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(7), sample_x=jnp.zeros((1, 64)))
  state = state.replace(params=variables["params"], opt_state=tx.init(variables["params"]))
  return fit(state, train_step=make_train_step(regularizers.objective(objective), tx),
             eval_step=make_eval_step(objective), dataset=digits, batch_size=64, epochs=epochs, progress=False)


def _twins(rate):
  linen = make_mlp(num_outputs=10, hidden_sizes=(32,), dropout_rate=rate)
  variables = linen.init(jax.random.PRNGKey(0), jnp.zeros((1, 64)))
  module = MLP(rate, rngs=nnx.Rngs(0))
  for name in ("dense_0", "output"):  # the Linen weights, into the NNX module
    getattr(module, name).kernel[...] = variables["params"][name]["kernel"]
    getattr(module, name).bias[...] = variables["params"][name]["bias"]
  nnx_model = from_nnx(module)
  return linen, variables, nnx_model, nnx_model.init(jax.random.PRNGKey(1), None)


def test_an_nnx_mlp_trained_by_fit_with_l2_equals_the_linen_mlp(digits):
  linen, variables, nnx_model, nnx_variables = _twins(rate=0.0)
  a = _fit(linen, variables, digits)
  b = _fit(nnx_model, nnx_variables, digits)
  assert a.summary["steps"] == b.summary["steps"] > 50
  for name in ("dense_0", "output"):
    for leaf in ("kernel", "bias"):
      np.testing.assert_allclose(b.state.params[name][leaf], a.state.params[name][leaf], atol=1e-5)
  np.testing.assert_allclose([r["train_l2_penalty"] for r in b.history],
                             [r["train_l2_penalty"] for r in a.history], rtol=1e-5)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_with_dropout_the_masks_differ_but_the_training_matches(digits):
  """Linen and NNX draw masks differently from one key, so the two runs are compared by their curves."""
  linen, variables, nnx_model, nnx_variables = _twins(rate=0.3)
  a = _fit(linen, variables, digits, epochs=6)
  b = _fit(nnx_model, nnx_variables, digits, epochs=6)
  assert b.history[-1]["train_loss"] < 0.5 * b.history[0]["train_loss"]
  np.testing.assert_allclose([r["val_loss"] for r in b.history], [r["val_loss"] for r in a.history], rtol=0.15)
  assert abs(b.summary["test_accuracy"] - a.summary["test_accuracy"]) < 0.03
  assert b.state.params["dense_0"]["kernel"].tolist() != a.state.params["dense_0"]["kernel"].tolist()


def test_dropout_keys_come_from_rng_only():
  model = from_nnx(lambda rngs: MLP(0.5, rngs=rngs))
  variables = model.init(jax.random.PRNGKey(0), None)
  x = jax.random.normal(jax.random.PRNGKey(1), (16, 64))
  apply = jax.jit(lambda v, x, rng: model.apply(v, x, train=True, rng=rng)[0])
  first, again = apply(variables, x, jax.random.PRNGKey(2)), apply(variables, x, jax.random.PRNGKey(2))
  np.testing.assert_array_equal(first, again)  # no hidden stream state advances between calls
  assert not np.allclose(first, apply(variables, x, jax.random.PRNGKey(3)))
  evaluation, _ = model.apply(variables, x, train=False)
  np.testing.assert_array_equal(evaluation, model.apply(variables, x, train=False)[0])
  assert not np.allclose(first, evaluation)


def test_batch_statistics_update_in_training_and_are_used_in_evaluation():
  model = from_nnx(WithBatchNorm)
  variables = model.init(jax.random.PRNGKey(0), None)
  assert set(variables) == {"params", "batch_stats"}
  x = 3.0 + jax.random.normal(jax.random.PRNGKey(1), (32, 64))
  _, state = model.apply(variables, x, train=True, rng=jax.random.PRNGKey(2))
  mean = jnp.mean(x @ variables["params"]["dense"]["kernel"] + variables["params"]["dense"]["bias"], axis=0)
  np.testing.assert_allclose(state["batch_stats"]["norm"]["mean"], 0.01 * mean, rtol=1e-4)  # momentum 0.99
  _, unchanged = model.apply(variables, x, train=False)
  np.testing.assert_array_equal(unchanged["batch_stats"]["norm"]["mean"], variables["batch_stats"]["norm"]["mean"])


def test_a_factory_takes_the_runs_seed():
  model = from_nnx(lambda rngs: MLP(rngs=rngs))
  a, b = (model.init(jax.random.PRNGKey(s), None)["params"]["dense_0"]["kernel"] for s in (0, 1))
  assert not np.allclose(a, b)
  with pytest.raises(TypeError, match="returned int, not an nnx.Module"):
    from_nnx(lambda rngs: 3)


USER_PACKAGE = {
    "models.py": '''
        import jax
        from flax import nnx

        class Net(nnx.Module):
          def __init__(self, width, num_outputs, rate, rngs):
            self.hidden = nnx.Linear(64, width, rngs=rngs)
            self.dropout = nnx.Dropout(rate, rngs=rngs)
            self.out = nnx.Linear(width, num_outputs, rngs=rngs)

          def __call__(self, x):
            return self.out(self.dropout(jax.nn.relu(self.hidden(x))))

        def build(num_outputs, width=32, rate=0.1, *, rngs):
          return Net(width, num_outputs, rate, rngs)
    ''',
    "data.py": '''
        from sklearn.datasets import load_digits

        def load(seed=0):
          digits = load_digits()
          return {"x_train": digits.data[:1200] / 16.0, "y_train": digits.target[:1200],
                  "x_test": digits.data[1200:] / 16.0, "y_test": digits.target[1200:]}
    ''',
}


@pytest.fixture
def user_package(tmp_path):
  package = tmp_path / "my_pkg"
  package.mkdir()
  (package / "__init__.py").write_text("")
  for name, source in USER_PACKAGE.items():
    (package / name).write_text(textwrap.dedent(source))
  return tmp_path


@pytest.mark.slow
def test_a_users_nnx_model_and_dataset_run_from_the_command_line_by_import_path(user_package):
  workdir = user_package / "run"
  command = [sys.executable, "-m", "jaxreg", "train", "--config", "digits_mlp:smoke", "--workdir", str(workdir),
             "--config.model={'name': 'my_pkg.models:build', 'width': 48}", "--config.data.name=my_pkg.data:load",
             "--config.regularizers.l2.alpha=1e-4", "--config.train.epochs=4", "--no-progress"]
  env = {**os.environ, "PYTHONPATH": ""}
  done = subprocess.run(command, cwd=user_package, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  import json

  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["test_accuracy"] > 0.6 and summary["dataset"].startswith("load (classification; train")
  config = json.loads((workdir / "config.json").read_text())
  assert config["model"] == {"name": "my_pkg.models:build", "width": 48}


def test_import_path_errors_say_what_to_do(user_package, monkeypatch):
  monkeypatch.chdir(user_package)
  monkeypatch.syspath_prepend(str(user_package))
  with pytest.raises(ConfigError, match=r"cannot import nowhere \(No module named 'nowhere'\); run from the folder"):
    make_model("nowhere:build", num_outputs=10)
  with pytest.raises(ConfigError, match=r"my_pkg.models has no callable 'bulid' \(it has: Net, build\)"):
    make_model("my_pkg.models:bulid", num_outputs=10)
  with pytest.raises(ConfigError, match=r"unknown key\(s\) model.depth for model 'my_pkg.models:build'"):
    make_model("my_pkg.models:build", num_outputs=10, depth=3)
  model = make_model("my_pkg.models:build", num_outputs=10, width=8)
  assert model.init(jax.random.PRNGKey(0), None)["params"]["hidden"]["kernel"].shape == (64, 8)


def test_the_train_command_reports_a_bad_import_path(capsys):
  assert main(["train", "--config", "digits_mlp:smoke", "--config.data.name=nowhere_pkg:load"]) == 2
  assert "data.name 'nowhere_pkg:load': cannot import nowhere_pkg" in capsys.readouterr().err


@pytest.mark.slow
def test_the_docs_page_trains_an_nnx_model_with_jaxregs_regularizers():
  """The Python block of docs/nnx.md runs as written and reaches the accuracy it states."""
  import pathlib
  import re

  page = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "nnx.md").read_text()
  code = re.search(r"```python\n(.*?)```", page, re.S).group(1)
  namespace = {}
  exec(compile(code, "docs/nnx.md", "exec"), namespace)
  assert namespace["result"].summary["test_accuracy"] > 0.95
