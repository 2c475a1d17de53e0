import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.errors import ConfigError
from jaxreg.models import get_initializer, initializer_names, make_mlp, make_model


def test_mlp_shapes_and_parameter_names():
  model = make_mlp(num_outputs=10, hidden_sizes=(32, 16))
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64)))
  params = variables["params"]
  assert set(params) == {"dense_0", "dense_1", "output"}
  assert params["dense_0"]["kernel"].shape == (64, 32)
  assert params["dense_1"]["kernel"].shape == (32, 16)
  assert params["output"]["kernel"].shape == (16, 10)
  assert "intermediates" not in variables  # diagnostics are not model state
  logits, state = model.apply(variables, jnp.ones((7, 64)), train=False)
  assert logits.shape == (7, 10)
  assert state == {}


def test_mlp_forward_matches_numpy():
  model = make_mlp(num_outputs=3, hidden_sizes=(4,), activation="tanh")
  variables = model.init(jax.random.PRNGKey(1), jnp.zeros((1, 5)))
  p = jax.tree.map(np.asarray, variables["params"])
  x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
  expected = np.tanh(x @ p["dense_0"]["kernel"] + p["dense_0"]["bias"]) @ p["output"]["kernel"] + p["output"]["bias"]
  logits, _ = model.apply(variables, x, train=True)  # no dropout configured: train == eval
  np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_dropout_is_inverted_bernoulli_and_off_in_eval():
  model = make_mlp(num_outputs=2, hidden_sizes=(64,), dropout_rate=0.5, activation="identity")
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
  x = jnp.ones((1, 3))
  eval_a, _ = model.apply(variables, x, train=False)
  eval_b, _ = model.apply(variables, x, train=False)
  np.testing.assert_array_equal(eval_a, eval_b)
  train_a, _ = model.apply(variables, x, train=True, rng=jax.random.PRNGKey(1))
  train_b, _ = model.apply(variables, x, train=True, rng=jax.random.PRNGKey(2))
  assert not np.allclose(train_a, train_b)
  # Inverted dropout scales kept units by 1/(1 - rate) in training, so with a
  # linear network the mean output over many masks equals the eval output.
  keys = jax.random.split(jax.random.PRNGKey(3), 4000)
  outs = jax.vmap(lambda k: model.apply(variables, x, train=True, rng=k)[0])(keys)
  standard_error = outs.std(axis=0) / np.sqrt(len(keys))
  assert np.all(np.abs(outs.mean(axis=0) - eval_a) < 5 * standard_error)
  assert np.all(outs.std(axis=0) > 0)


def test_kernel_initializer_by_name():
  model = make_mlp(num_outputs=10, hidden_sizes=(300,), kernel_init="glorot_uniform")
  kernel = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 100)))["params"]["dense_0"]["kernel"]
  bound = np.sqrt(6.0 / (100 + 300))  # Glorot and Bengio's bound, sqrt(6 / (m + n))
  assert np.max(np.abs(kernel)) <= bound
  assert np.max(np.abs(kernel)) > 0.95 * bound
  np.testing.assert_allclose(np.var(kernel), bound**2 / 3, rtol=0.05)


def test_unknown_names_are_refused_with_the_valid_ones():
  with pytest.raises(ConfigError, match="unknown kernel initializer 'xavier'.*glorot_uniform"):
    get_initializer("xavier")
  with pytest.raises(ConfigError, match="unknown activation 'relu6'.*tanh"):
    make_mlp(num_outputs=2, activation="relu6")
  with pytest.raises(ConfigError, match="unknown model 'transformer'; valid names: mlp, .*, cnn"):
    make_model("transformer", num_outputs=2)
  with pytest.raises(ConfigError, match="model.widths.*valid keys: activation, batch_norm, batch_norm_momentum, batch_norm_variance, dropout_inference"):
    make_model("mlp", num_outputs=2, widths=(3,))
  with pytest.raises(ValueError, match="^dropout_rate must be in \\[0, 1\\)"):  # the library's words
    make_mlp(num_outputs=2, dropout_rate=1.0)
  with pytest.raises(ConfigError, match="^model.dropout_rate must be in \\[0, 1\\)"):  # the config's, from the factory
    make_model("mlp", num_outputs=2, dropout_rate=1.0)
  with pytest.raises(ValueError, match="^hidden_sizes must be a non-empty list"):
    make_mlp(num_outputs=2, hidden_sizes=(0,))
  assert "he_normal" in initializer_names()


@pytest.mark.parametrize("variance", ["unbiased", "biased"])
def test_batch_norm_matches_the_seeds_equations_in_numpy(rng, variance):
  """Training: gamma (a - mu_B) / sqrt(var_B + eps) + beta with the batch variance; the running averages move
  by (1 - momentum), the variance as m/(m-1) var_B (the notes' inference rule) or var_B (Flax's); evaluation
  uses them (Wang 2023, Ioffe and Szegedy 2015)."""
  model = make_mlp(num_outputs=3, hidden_sizes=(6,), activation="identity", batch_norm=True, batch_norm_momentum=0.8,
                   batch_norm_variance=variance)
  x = rng.normal(loc=2.0, scale=3.0, size=(16, 5)).astype(np.float32)
  variables = model.init(jax.random.PRNGKey(0), x[:1])
  params = jax.tree.map(np.asarray, variables["params"])
  assert "bias" not in params["dense_0"]  # beta takes the bias's place
  params["batch_norm_0"]["scale"] = rng.uniform(0.5, 2.0, size=6).astype(np.float32)
  params["batch_norm_0"]["bias"] = rng.normal(size=6).astype(np.float32)
  variables = {"params": params, "batch_stats": variables["batch_stats"]}

  def numpy_forward(h_norm):
    return h_norm @ params["output"]["kernel"] + params["output"]["bias"]

  a = x @ params["dense_0"]["kernel"]
  mu, var = a.mean(axis=0), ((a - a.mean(axis=0)) ** 2).mean(axis=0)
  gamma, beta = params["batch_norm_0"]["scale"], params["batch_norm_0"]["bias"]
  expected = numpy_forward(gamma * (a - mu) / np.sqrt(var + 1e-5) + beta)
  logits, new_state = model.apply(variables, x, train=True)
  np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
  stats = new_state["batch_stats"]["batch_norm_0"]
  np.testing.assert_allclose(stats["mean"], 0.2 * mu, rtol=1e-4, atol=1e-5)  # from 0
  kept = var * 16 / 15 if variance == "unbiased" else var
  np.testing.assert_allclose(stats["var"], 0.8 * 1.0 + 0.2 * kept, rtol=1e-4)  # from 1

  eval_logits, _ = model.apply({"params": params, **new_state}, x, train=False)
  running = gamma * (a - stats["mean"]) / np.sqrt(stats["var"] + 1e-5) + beta
  np.testing.assert_allclose(eval_logits, numpy_forward(running), rtol=1e-4, atol=1e-4)
