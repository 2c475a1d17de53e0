"""Normalization layers against NumPy re-implementations of the notes' equations, closed forms and Flax."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.models import (
    BatchNorm,
    MeanOnlyBatchNorm,
    WeightNormConv,
    WeightNormDense,
    fold_batch_norm,
    make_cnn,
    make_mlp,
    weight_norm_data_init,
)
from jaxreg.train import classification_objective, create_train_state, make_train_step


@pytest.fixture
def rng():
  return np.random.default_rng(0)


def test_biased_batch_norm_equals_flax_in_training_and_evaluation(rng):
  x = rng.normal(loc=1.0, scale=2.0, size=(32, 4, 6)).astype(np.float32)
  ours, flax_bn = BatchNorm(variance="biased", momentum=0.7), nn.BatchNorm(momentum=0.7)
  variables = ours.init(jax.random.PRNGKey(0), x, train=False)
  y, updates = ours.apply(variables, x, train=True, mutable=["batch_stats"])
  want, want_updates = flax_bn.apply(variables, x, use_running_average=False, mutable=["batch_stats"])
  np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
  for key in ("mean", "var"):
    np.testing.assert_allclose(updates["batch_stats"][key], want_updates["batch_stats"][key], rtol=1e-5, atol=1e-6)
  trained = {**variables, **updates}
  np.testing.assert_allclose(ours.apply(trained, x, train=False), flax_bn.apply(trained, x, use_running_average=True),
                             rtol=1e-5, atol=1e-5)


def test_mean_only_batch_norm_matches_numpy(rng):
  x = rng.normal(loc=3.0, size=(16, 5)).astype(np.float32)
  layer = MeanOnlyBatchNorm(momentum=0.6)
  variables = layer.init(jax.random.PRNGKey(0), x, train=False)
  beta = rng.normal(size=5).astype(np.float32)
  variables = {"params": {"bias": beta}, "batch_stats": variables["batch_stats"]}
  y, updates = layer.apply(variables, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(y, x - x.mean(0) + beta, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(updates["batch_stats"]["mean"], 0.4 * x.mean(0), rtol=1e-5)
  assert set(updates["batch_stats"]) == {"mean"}  # no variance: the scale is left alone
  evaluated = layer.apply({**variables, **updates}, x, train=False)
  np.testing.assert_allclose(evaluated, x - 0.4 * x.mean(0) + beta, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale_init", ["norm", "one"])
def test_weight_norm_forward_is_g_v_over_norm_v_and_starts_as_the_plain_layer(rng, scale_init):
  x = rng.normal(size=(8, 5)).astype(np.float32)
  layer = WeightNormDense(3, scale_init=scale_init)
  variables = layer.init(jax.random.PRNGKey(1), x)
  v = np.asarray(variables["params"]["kernel"])
  norms = np.linalg.norm(v, axis=0)
  np.testing.assert_allclose(variables["params"]["scale"], norms if scale_init == "norm" else np.ones(3), rtol=1e-6)
  start = layer.apply(variables, x)
  np.testing.assert_allclose(start, x @ v if scale_init == "norm" else x @ (v / norms), rtol=1e-5, atol=1e-5)
  g, b = rng.uniform(0.5, 2.0, size=3).astype(np.float32), rng.normal(size=3).astype(np.float32)
  y = layer.apply({"params": {"kernel": v, "scale": g, "bias": b}}, x)
  np.testing.assert_allclose(y, x @ (g * v / norms) + b, rtol=1e-5, atol=1e-5)


def test_weight_norm_gradients_are_the_notes_closed_forms(rng):
  """grad_g = grad_w . v / ||v||;  grad_v = (g / ||v||) grad_w - (g grad_g / ||v||^2) v (Salimans and Kingma)."""
  x, c = rng.normal(size=(8, 5)), rng.normal(size=(8, 3))
  v, g = rng.normal(size=(5, 3)), rng.uniform(0.5, 2.0, size=3)
  layer = WeightNormDense(3, use_bias=False, param_dtype=jnp.float64)
  with jax.enable_x64(True):
    loss = lambda p: jnp.sum(layer.apply({"params": p}, jnp.asarray(x)) * c)  # noqa: E731
    grads = jax.grad(loss)({"kernel": jnp.asarray(v), "scale": jnp.asarray(g)})
  grad_w = x.T @ c  # dL/dw for y = x w
  norms = np.linalg.norm(v, axis=0)
  grad_g = np.sum(grad_w * v, axis=0) / norms
  grad_v = g / norms * grad_w - g * grad_g / norms**2 * v
  np.testing.assert_allclose(grads["scale"], grad_g, rtol=1e-10)
  np.testing.assert_allclose(grads["kernel"], grad_v, rtol=1e-10)
  np.testing.assert_allclose(np.sum(np.asarray(grads["kernel"]) * v, axis=0), 0.0, atol=1e-12)  # orthogonal to v


@pytest.mark.parametrize("a", [0.1, 3.0, 17.0])
def test_batch_norm_is_invariant_to_the_scale_of_the_weights_and_its_gradient_scales_by_one_over_a(rng, a):
  """BN((aW)u) = BN(Wu) and d BN((aW)u)/d(aW) = (1/a) d BN(Wu)/dW (eps = 0 makes it exact)."""
  u, w, c = rng.normal(size=(16, 5)), rng.normal(size=(5, 4)), rng.normal(size=(16, 4))
  layer = BatchNorm(epsilon=0.0, param_dtype=jnp.float64)
  with jax.enable_x64(True):
    variables = layer.init(jax.random.PRNGKey(0), jnp.zeros((2, 4), jnp.float64), train=False)

    def loss(kernel):
      y, _ = layer.apply(variables, jnp.asarray(u) @ kernel, train=True, mutable=["batch_stats"])
      return jnp.sum(y * c)

    np.testing.assert_allclose(loss(a * w), loss(w), rtol=1e-10)
    np.testing.assert_allclose(jax.grad(loss)(a * w), jax.grad(loss)(w) / a, rtol=1e-8, atol=1e-12)


def test_weight_norm_conv_matches_a_plain_conv_with_the_normalized_kernel(rng):
  x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
  layer = WeightNormConv(4, kernel_size=(3, 3), strides=(1, 1))
  variables = layer.init(jax.random.PRNGKey(0), x)
  p = jax.tree.map(np.asarray, variables["params"])
  p["scale"] = rng.uniform(0.5, 2.0, size=4).astype(np.float32)
  w = p["kernel"] * p["scale"] / np.linalg.norm(p["kernel"].reshape(-1, 4), axis=0)
  want = nn.Conv(4, (3, 3), padding="SAME").apply({"params": {"kernel": w, "bias": p["bias"]}}, x)
  np.testing.assert_allclose(layer.apply({"params": p}, x), want, rtol=1e-5, atol=1e-5)


def _trained(model, x, y, steps=5):
  """A few SGD steps, so the running statistics and the scales are not their starting values."""
  tx = optax.sgd(0.05)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=x[:1])
  step = jax.jit(make_train_step(classification_objective(model.apply), tx))
  for _ in range(steps):
    state, _ = step(state, {"x": x, "y": y})
  return {"params": state.params, **state.model_state}


FUSABLE = {
    "mlp batch norm, unbiased": (make_mlp, dict(hidden_sizes=(8, 8), normalization="batch_norm"),
                                 [("dense_0", "batch_norm_0"), ("dense_1", "batch_norm_1")]),
    "mlp batch norm, biased": (make_mlp, dict(hidden_sizes=(8,), batch_norm=True, batch_norm_variance="biased"),
                               [("dense_0", "batch_norm_0")]),
    "mlp weight norm + mean-only": (make_mlp, dict(hidden_sizes=(8,), normalization="mean_only", weight_norm=True),
                                    [("dense_0", "batch_norm_0")]),
    "cnn batch norm": (make_cnn, dict(channels=(4,), dims=2, kernel_size=3, pool=2, dense_sizes=(8,),
                                      input_shape=(6, 6), normalization="batch_norm"),
                       [("conv_0", "conv_batch_norm_0"), ("dense_0", "batch_norm_0")]),
}


@pytest.mark.slow  # trains or compiles whole models
@pytest.mark.parametrize("name", list(FUSABLE))
def test_fused_inference_equals_the_unfused_model(rng, name):
  make, kwargs, pairs = FUSABLE[name]
  x = rng.normal(loc=1.0, size=(32, 36)).astype(np.float32)
  y = rng.integers(0, 3, size=32)
  model = make(num_outputs=3, **kwargs)
  variables = _trained(model, x, y)
  plain = make(num_outputs=3, **{**kwargs, "normalization": "none", "batch_norm": False, "weight_norm": False})
  folded = {"params": fold_batch_norm(variables["params"], variables["batch_stats"], pairs)}
  if kwargs.get("weight_norm"):  # the output layer is weight-normalized too: a plain kernel for the plain model
    out = folded["params"]["output"]
    folded["params"]["output"] = {"kernel": out["kernel"] * out["scale"] / np.linalg.norm(out["kernel"], axis=0),
                                  "bias": out["bias"]}
  want, _ = model.apply(variables, x, train=False)
  got, _ = plain.apply(folded, x, train=False)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_data_dependent_init_gives_each_unit_zero_mean_and_unit_variance(rng):
  x = rng.normal(loc=2.0, scale=3.0, size=(256, 10)).astype(np.float32)
  model = make_mlp(num_outputs=4, hidden_sizes=(16, 16), weight_norm=True, activation="tanh")
  variables = weight_norm_data_init(model, model.init(jax.random.PRNGKey(0), x[:1]), x)
  captured = _pre_activations(model, variables, x)
  for name, t in captured.items():
    np.testing.assert_allclose(t.mean(0), 0.0, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(t.std(0), 1.0, rtol=1e-3, err_msg=name)
  with pytest.raises(ValueError, match="no weight-normalized layer"):
    plain = make_mlp(num_outputs=4, hidden_sizes=(16,))
    weight_norm_data_init(plain, plain.init(jax.random.PRNGKey(0), x[:1]), x)


def _pre_activations(model, variables, x) -> dict:
  """Every weight-normalized layer's outputs on ``x`` (Flax's captured intermediates)."""
  _, state = model.module.apply(variables, x, train=False, capture_intermediates=True, mutable=["intermediates"])
  inter = state["intermediates"]
  return {name: np.asarray(inter[name]["__call__"][0]) for name in inter if name.startswith(("dense_", "output"))}


@pytest.mark.slow  # trains or compiles whole models
def test_batch_norm_between_recurrent_layers_uses_the_real_steps_only(rng):
  """Statistics over the batch and the steps before each sequence's end; padding changes nothing."""
  from jaxreg.models import make_model

  x = rng.normal(loc=1.5, size=(6, 7, 3)).astype(np.float32)
  lengths = np.array([7, 5, 3, 7, 2, 6])
  model = make_model("gru", num_outputs=2, hidden_sizes=(5, 4), normalization="batch_norm", output="mean")
  variables = model.init(jax.random.PRNGKey(0), x[:1])
  assert set(variables["batch_stats"]) == {"batch_norm_0"}  # between the two layers only
  module = model.module

  def run(inputs):
    _, state = module.apply(variables, inputs, train=True, lengths=lengths, mutable=["batch_stats", "intermediates"],
                            capture_intermediates=True)
    return state

  state = run(x)
  hidden = np.asarray(state["intermediates"]["hidden_0"][0])
  real = np.concatenate([hidden[i, :n] for i, n in enumerate(lengths)])
  kept = real.var(0) * len(real) / (len(real) - 1)
  np.testing.assert_allclose(state["batch_stats"]["batch_norm_0"]["mean"], 0.1 * real.mean(0), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(state["batch_stats"]["batch_norm_0"]["var"], 0.9 + 0.1 * kept, rtol=1e-4)
  padded = x.copy()
  for i, n in enumerate(lengths):
    padded[i, n:] = 100.0  # garbage after the end
  np.testing.assert_allclose(run(padded)["batch_stats"]["batch_norm_0"]["var"],
                             state["batch_stats"]["batch_norm_0"]["var"], rtol=1e-5)


@pytest.mark.slow  # trains or compiles whole models
def test_a_config_asks_for_the_data_dependent_init_and_a_population_gets_it_too():
  from jaxreg.config import load_config
  from jaxreg.experiment import build
  from jaxreg.populations import build_population

  overrides = [("model.weight_norm", "True"), ("train.weight_norm_data_init", "256"), ("train.progress_bar", "False")]
  experiment = build(load_config("digits_mlp:smoke", overrides)[0])
  x = experiment.dataset.train.x[:256]
  variables = {"params": experiment.initial_state.params, **experiment.initial_state.model_state}
  t = _pre_activations(experiment.model, variables, x)["dense_0"]
  np.testing.assert_allclose(t.mean(0), 0.0, atol=1e-4)
  np.testing.assert_allclose(t.std(0), 1.0, rtol=1e-3)
  population = build_population(load_config("digits_mlp:smoke", overrides + [("population.size", "2")])[0])
  first = jax.tree.map(lambda leaf: leaf[0], population.states.params)
  for got, want in zip(jax.tree.leaves(first), jax.tree.leaves(experiment.initial_state.params), strict=True):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
