"""Parameter sharing through module reuse: a shared trunk with two heads, trained on a weighted sum of task losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.config import load_config
from jaxreg.experiment import train_and_evaluate
from jaxreg.models import make_multitask_mlp
from jaxreg.train import Context, multitask_objective


@pytest.fixture
def setup(rng):
  model = make_multitask_mlp(num_outputs=10, tasks={"label": 1.0, "parity": 0.5}, trunk_sizes=(16,))
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8)))["params"]
  batch = {"x": rng.normal(size=(12, 8)).astype(np.float32), "y": rng.integers(0, 10, size=12)}
  return model, params, batch


CTX = Context(rng=None, model_state={}, train=True)


def _nll(logits, labels):
  logits = np.asarray(logits, np.float64)
  log_p = logits - logits.max(1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
  return -log_p[np.arange(len(labels)), labels].mean()


def test_loss_is_the_weighted_sum_of_task_nlls(setup):
  model, params, batch = setup
  loss, aux = multitask_objective(model.apply, {"label": 1.0, "parity": 0.5})(params, batch, CTX)
  outputs, _ = model.apply({"params": params}, batch["x"], train=False)
  label_nll, parity_nll = _nll(outputs["label"], batch["y"]), _nll(outputs["parity"], batch["y"] % 2)
  np.testing.assert_allclose(aux.metrics["label_loss"], label_nll, rtol=1e-5)
  np.testing.assert_allclose(aux.metrics["parity_loss"], parity_nll, rtol=1e-5)
  np.testing.assert_allclose(loss, label_nll + 0.5 * parity_nll, rtol=1e-5)
  np.testing.assert_allclose(aux.metrics["accuracy"], aux.metrics["label_accuracy"])


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_the_trunk_is_shared_and_the_heads_are_not(setup):
  model, params, batch = setup
  grad = lambda weights: jax.grad(lambda p: multitask_objective(model.apply, weights)(p, batch, CTX)[0])(params)
  both, label_only, parity_only = grad({"label": 1.0, "parity": 0.5}), grad({"label": 1.0, "parity": 0.0}), grad({"label": 0.0, "parity": 1.0})
  # The shared trunk's gradient pools both tasks ...
  np.testing.assert_allclose(
      both["trunk_0"]["kernel"], label_only["trunk_0"]["kernel"] + 0.5 * parity_only["trunk_0"]["kernel"], rtol=1e-4, atol=1e-7
  )
  assert np.abs(parity_only["trunk_0"]["kernel"]).sum() > 0
  # ... each head learns from its own task only.
  np.testing.assert_array_equal(label_only["head_parity"]["kernel"], 0.0)
  np.testing.assert_array_equal(parity_only["head_label"]["kernel"], 0.0)
  assert set(params) == {"trunk_0", "head_label", "head_parity"}  # one trunk, not one per task


@pytest.mark.slow
def test_multitask_config_trains_and_reports_each_task(tmp_path):
  config, _ = load_config("digits_multitask:parity", [("train.epochs", "3"), ("train.progress_bar", "False")])
  result = train_and_evaluate(config, str(tmp_path / "run"))
  for key in ("test_label_accuracy", "test_parity_accuracy", "val_label_loss"):
    assert key in result.history[-1]
  assert result.history[-1]["test_parity_accuracy"] > 0.7


@pytest.mark.parametrize(
    "tasks, message",
    [({"label": 1.0, "colour": 1.0}, "unknown task 'colour'"), ({"label": -1.0}, "a task.s loss weight, must be a number >= 0"), ({}, "must map task names")],
)
def test_bad_tasks_are_refused(tasks, message):
  with pytest.raises(ValueError, match=message):
    model = make_multitask_mlp(num_outputs=10, tasks=tasks, trunk_sizes=(4,))
    multitask_objective(model.apply, tasks)
