import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.models import from_linen, make_mlp
from jaxreg.regularizers import l2
from jaxreg.train import classification_objective, create_train_state, make_eval_step, make_train_step


def _softmax(z):
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def test_sgd_step_with_l2_matches_the_closed_form_gradient(rng, make_linear):
  """Softmax regression: dJ/dW = X^T (softmax(XW + b) - onehot(y)) / B, plus alpha W from L2."""
  model = make_linear(3)
  lr, alpha = 0.5, 0.1
  tx = optax.sgd(lr)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 4)))
  x = rng.normal(size=(16, 4)).astype(np.float32)
  y = rng.integers(0, 3, size=16)
  step = jax.jit(make_train_step(l2(alpha)(classification_objective(model.apply)), tx, grad_norm=True))
  new_state, metrics = step(state, {"x": x, "y": y})

  w = np.asarray(state.params["dense"]["kernel"])
  b = np.asarray(state.params["dense"]["bias"])
  delta = (_softmax(x @ w + b) - np.eye(3)[y]) / len(y)
  grad_w, grad_b = x.T @ delta + alpha * w, delta.sum(axis=0)
  np.testing.assert_allclose(new_state.params["dense"]["kernel"], w - lr * grad_w, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new_state.params["dense"]["bias"], b - lr * grad_b, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics["grad_norm"], np.sqrt(np.sum(grad_w**2) + np.sum(grad_b**2)), rtol=1e-5)
  assert int(new_state.step) == 1
  _, plain_metrics = make_train_step(classification_objective(model.apply), tx)(state, {"x": x, "y": y})
  assert "grad_norm" not in plain_metrics  # opt-in: it costs ~10% of a small step on a CPU


def test_step_keys_differ_per_step_and_are_reproducible(rng):
  model = make_mlp(num_outputs=3, hidden_sizes=(32,), dropout_rate=0.5)
  tx = optax.sgd(0.0)  # no movement: only the dropout masks change the loss
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 4)))
  batch = {"x": rng.normal(size=(8, 4)).astype(np.float32), "y": rng.integers(0, 3, size=8)}
  step = jax.jit(make_train_step(classification_objective(model.apply), tx))
  s1, m1 = step(state, batch)
  _, m2 = step(s1, batch)
  _, m1_again = step(state, batch)
  assert float(m1["loss"]) != float(m2["loss"])
  assert float(m1["loss"]) == float(m1_again["loss"])


@pytest.mark.slow  # 10 s of compiling on 2 cores: in the full suite, out of the fast tier
def test_pmap_step_averages_gradients_like_one_big_batch(rng):
  """With axis_name, 8 devices on 8 shards take the same step as one device on the whole batch."""
  devices = jax.local_devices()
  assert len(devices) == 8, "conftest sets 8 fake CPU devices"
  model = make_mlp(num_outputs=3, hidden_sizes=(16,))
  tx = optax.adam(1e-2)
  objective = classification_objective(model.apply)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 5)))
  x = rng.normal(size=(64, 5)).astype(np.float32)
  y = rng.integers(0, 3, size=64)

  single, single_metrics = jax.jit(make_train_step(objective, tx))(state, {"x": x, "y": y})
  replicated = jax.tree.map(lambda a: jnp.broadcast_to(a, (8,) + a.shape), state)
  shards = {"x": x.reshape(8, 8, 5), "y": y.reshape(8, 8)}
  parallel, parallel_metrics = jax.pmap(make_train_step(objective, tx, axis_name="batch"), axis_name="batch")(
      replicated, shards
  )
  for device in (0, 7):
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[device], parallel.params), single.params, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(parallel_metrics["loss"][0], single_metrics["loss"], rtol=1e-5)

  eval_single = make_eval_step(objective)(state, {"x": x, "y": y})
  eval_parallel = jax.pmap(make_eval_step(objective, axis_name="batch"), axis_name="batch")(replicated, shards)
  np.testing.assert_allclose(eval_parallel["accuracy"][0], eval_single["accuracy"], rtol=1e-6)
  np.testing.assert_allclose(eval_parallel["count"][0], 64)


@pytest.mark.slow  # 10 s of compiling on 2 cores: in the full suite, out of the fast tier
def test_vmapped_steps_train_an_ensemble(rng):
  model = make_mlp(num_outputs=3, hidden_sizes=(8,))
  tx = optax.sgd(0.1)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  states = jax.vmap(lambda k: create_train_state(model, tx, rng=k, sample_x=jnp.zeros((1, 5))))(keys)
  batch = {"x": rng.normal(size=(8, 5)).astype(np.float32), "y": rng.integers(0, 3, size=8)}
  new_states, metrics = jax.vmap(make_train_step(classification_objective(model.apply), tx), in_axes=(0, None))(
      states, batch
  )
  assert metrics["loss"].shape == (4,)
  assert len(set(np.round(np.asarray(metrics["loss"]), 6))) == 4  # members differ
  np.testing.assert_array_equal(new_states.step, [1, 1, 1, 1])


class _Linear(nn.Module):
  @nn.compact
  def __call__(self, x, *, train):
    del train
    return nn.Dense(3, name="dense")(x)


class StepVariantsTest(chex.TestCase):
  """The step is a pure function: jitted or not, it takes the closed-form step of NumPy."""

  @chex.variants(with_jit=True, without_jit=True)
  def test_step_is_the_closed_form_with_and_without_jit(self):
    model = from_linen(_Linear())
    lr, alpha = 0.5, 0.1
    tx = optax.sgd(lr)
    state = create_train_state(model, tx, rng=jax.random.PRNGKey(1), sample_x=jnp.zeros((1, 4)))
    g = np.random.default_rng(2)
    x, y = g.normal(size=(16, 4)).astype(np.float32), g.integers(0, 3, size=16)
    step = self.variant(make_train_step(l2(alpha)(classification_objective(model.apply)), tx))
    new_state, metrics = step(state, {"x": x, "y": y})

    w, b = (np.asarray(state.params["dense"][k]) for k in ("kernel", "bias"))
    delta = (_softmax(x @ w + b) - np.eye(3)[y]) / len(y)
    expected = {"dense": {"kernel": w - lr * (x.T @ delta + alpha * w), "bias": b - lr * delta.sum(axis=0)}}
    chex.assert_trees_all_close(new_state.params, expected, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
    chex.assert_tree_all_finite(metrics)
