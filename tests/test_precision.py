"""Gradient accumulation equals one large batch; bfloat16 compute keeps float32 parameters and the float32 accuracy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.config import load_config
from jaxreg.errors import ConfigError
from jaxreg.experiment import build, initial_state, make_steps, train_and_evaluate
from jaxreg.models import make_mlp, with_compute_dtype
from jaxreg.train import SingleDevice


def _steps(digits, k, batch_size):
  config, _ = load_config("digits_mlp:smoke", [
      ("model.dropout_rate", "0.0"), ("optimizer.name", "momentum"), ("optimizer.learning_rate", "0.2"),
      ("optimizer.momentum", "0.9"), ("optimizer.accumulate_steps", str(k)),
      ("optimizer.schedule", "{'name': 'exponential', 'rate': 0.8}"),  # counts updates, not mini-steps
      ("regularizers.weight_decay", "{'rate': 0.01}"),  # an update regularizer: applied once per update
      ("data.batch_size", str(batch_size)),
  ])
  steps = make_steps(config.to_dict(), digits, SingleDevice(), steps_per_epoch=len(digits.train.y) // batch_size)
  state = initial_state(steps, jax.random.PRNGKey(0), digits, early_stopping_mode="min")
  return jax.jit(steps.train_step), state


@pytest.mark.slow  # the fast tier stays under 3 minutes
@pytest.mark.parametrize("k", [2, 4])
def test_k_accumulated_steps_of_batch_b_equal_one_step_of_batch_k_times_b(digits, k):
  b, updates = 16, 5
  accumulated, state_k = _steps(digits, k, b)
  single, state_1 = _steps(digits, 1, k * b)
  x, y = digits.train.x[: updates * k * b], digits.train.y[: updates * k * b]
  for u in range(updates):
    for i in range(k):
      rows = slice((u * k + i) * b, (u * k + i + 1) * b)
      state_k, _ = accumulated(state_k, {"x": x[rows], "y": y[rows]})
    rows = slice(u * k * b, (u + 1) * k * b)
    state_1, _ = single(state_1, {"x": x[rows], "y": y[rows]})
    for a, c in zip(jax.tree.leaves(state_k.params), jax.tree.leaves(state_1.params), strict=True):
      np.testing.assert_allclose(a, c, atol=2e-6, rtol=1e-5)
  assert int(state_k.step) == k * int(state_1.step) == k * updates
  moved = jax.tree.leaves(jax.tree.map(lambda p, q: float(jnp.abs(p - q).max()), state_1.params,
                                       initial_state_params(digits)))
  assert max(moved) > 0.05  # the runs went somewhere, so the equality says something


def initial_state_params(digits):
  return _steps(digits, 1, 16)[1].params


def test_accumulate_steps_is_checked():
  config, _ = load_config("digits_mlp:smoke", [("optimizer.accumulate_steps", "0")])
  with pytest.raises(ConfigError, match=r"optimizer.accumulate_steps must be a positive integer \(1: off\), got 0"):
    build(config)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_bfloat16_computes_in_bfloat16_with_float32_parameters_gradients_and_outputs():
  model = with_compute_dtype(make_mlp(num_outputs=10, hidden_sizes=(32,)), "bfloat16")
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64)))
  x = jax.random.uniform(jax.random.PRNGKey(1), (8, 64))
  jaxpr = str(jax.make_jaxpr(lambda v: model.apply(v, x, train=False)[0])(variables))
  assert "bf16[8,32] = dot_general" in jaxpr and "bf16[8,10] = dot_general" in jaxpr  # both layers' products
  logits, _ = model.apply(variables, x, train=False)
  grads = jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x, train=False)[0]))(variables["params"])
  assert logits.dtype == jnp.float32
  assert {leaf.dtype for leaf in jax.tree.leaves((variables, grads))} == {jnp.dtype(jnp.float32)}
  full, _ = make_mlp(num_outputs=10, hidden_sizes=(32,)).apply(variables, x, train=False)
  np.testing.assert_allclose(logits, full, atol=0.05)  # bfloat16's 8 bits of mantissa
  assert not np.array_equal(logits, full)
  with pytest.raises(ValueError, match="compute_dtype must be one of float32, bfloat16, float16"):
    with_compute_dtype(model, "int8")


def test_a_bad_compute_dtype_in_a_config_is_refused():
  config, _ = load_config("digits_mlp:smoke", [("train.compute_dtype", "bf16")])
  with pytest.raises(ConfigError, match="train.compute_dtype must be one of float32, bfloat16, float16, got 'bf16'"):
    build(config)


@pytest.mark.slow
def test_a_bfloat16_run_reaches_the_float32_runs_accuracy_on_digits(tmp_path):
  accuracies = {}
  for dtype in ("float32", "bfloat16"):
    config, _ = load_config("digits_mlp", [("train.compute_dtype", dtype), ("train.epochs", "20"),
                                           ("train.progress_bar", "False"), ("checkpoint.every", "0")])
    result = train_and_evaluate(config, str(tmp_path / dtype))
    accuracies[dtype] = result.summary["test_accuracy"]
  assert accuracies["float32"] > 0.96
  assert accuracies["bfloat16"] >= accuracies["float32"] - 0.01, accuracies
