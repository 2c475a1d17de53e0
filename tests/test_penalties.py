"""Objective-transform regularizers against NumPy and the lecture notes' closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.train.objectives import Aux
from jaxreg.errors import ConfigError
from jaxreg.models import make_mlp
from jaxreg.optim import sgd
from jaxreg.regularizers import (
    activation_l1,
    by_path,
    elastic_net,
    l1,
    l2,
    label_smoothing,
    make_regularizers,
    smooth_labels,
    tying,
)
from jaxreg.train import Context, classification_objective, regression_objective


@pytest.fixture
def mlp_setup(rng):
  model = make_mlp(num_outputs=3, hidden_sizes=(6, 6))
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))["params"]
  batch = {"x": rng.normal(size=(10, 4)).astype(np.float32), "y": rng.integers(0, 3, size=10)}
  return model, params, batch


CTX = Context(rng=None, model_state={}, train=True)


def _kernels(params):
  return [np.asarray(params[layer]["kernel"], np.float64) for layer in ("dense_0", "dense_1", "output")]


def test_l1_value_and_subgradient_is_alpha_sign_w(mlp_setup):
  model, params, batch = mlp_setup
  alpha = 0.05
  base = classification_objective(model.apply)
  loss, aux = l1(alpha)(base)(params, batch, CTX)
  expected = alpha * sum(np.abs(k).sum() for k in _kernels(params))
  np.testing.assert_allclose(aux.metrics["l1_penalty"], expected, rtol=1e-6)
  g_base = jax.grad(lambda p: base(p, batch, CTX)[0])(params)
  g_l1 = jax.grad(lambda p: l1(alpha)(base)(p, batch, CTX)[0])(params)
  for layer in ("dense_0", "output"):
    np.testing.assert_allclose(
        g_l1[layer]["kernel"] - g_base[layer]["kernel"], alpha * np.sign(params[layer]["kernel"]), atol=1e-6
    )
    np.testing.assert_array_equal(g_l1[layer]["bias"], g_base[layer]["bias"])  # biases are not penalized


def test_elastic_net_is_l1_plus_l2(mlp_setup):
  model, params, batch = mlp_setup
  base = classification_objective(model.apply)
  _, aux = elastic_net(0.01, 0.2)(base)(params, batch, CTX)
  kernels = _kernels(params)
  expected = 0.01 * sum(np.abs(k).sum() for k in kernels) + 0.1 * sum((k**2).sum() for k in kernels)
  np.testing.assert_allclose(aux.metrics["elastic_net_penalty"], expected, rtol=1e-6)


def test_masks_select_by_path(mlp_setup):
  model, params, batch = mlp_setup
  base = classification_objective(model.apply)
  _, aux = l2(1.0, mask=by_path(["dense_1"]))(base)(params, batch, CTX)
  np.testing.assert_allclose(aux.metrics["l2_penalty"], 0.5 * (_kernels(params)[1] ** 2).sum(), rtol=1e-6)
  regs = make_regularizers(l1={"alpha": 1.0, "mask": ["output/kernel"]})
  _, aux = regs.objective(base)(params, batch, CTX)
  np.testing.assert_allclose(aux.metrics["l1_penalty"], np.abs(_kernels(params)[2]).sum(), rtol=1e-6)


def test_l2_on_a_quadratic_reaches_the_seed_closed_form(rng):
  """Wang 2023: with H = Q Lambda Q^T, gradient descent on J + (alpha/2)||w||^2 converges to Q (Lambda + alpha I)^-1 Lambda Q^T w*."""
  n, alpha = 6, 0.4
  a = rng.normal(size=(n, n))
  hessian = a @ a.T / n + 0.1 * np.eye(n)
  w_star = rng.normal(size=n)

  def quadratic(params, batch, ctx):
    d = params["kernel"] - w_star
    return 0.5 * d @ hessian @ d, Aux({})

  grad = jax.jit(jax.grad(lambda p: l2(alpha)(quadratic)(p, None, None)[0]))
  tx = sgd(0.3)
  params = {"kernel": jnp.zeros(n)}
  state = tx.init(params)
  for _ in range(3000):
    updates, state = tx.update(grad(params), state)
    params = optax.apply_updates(params, updates)
  eigenvalues, q = np.linalg.eigh(hessian)
  expected = q @ np.diag(eigenvalues / (eigenvalues + alpha)) @ q.T @ w_star
  np.testing.assert_allclose(params["kernel"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_early_stopping_approximates_l2_with_alpha_one_over_tau_eps(rng):
  """Sokolov's lecture / Goodfellow 7.8: tau steps of gradient descent from 0 on linear least squares ~ L2 with alpha = 1/(tau*eps).

  Along each eigenvector of the Hessian, early stopping keeps the fraction
  1 - (1 - eps*lambda)^tau of w*, and L2 keeps lambda/(lambda + alpha); for
  eps*lambda << 1 these agree when alpha = 1/(tau*eps).
  """
  n, d = 400, 8
  x = rng.normal(size=(n, d)) * np.geomspace(0.02, 1.0, d)  # eigenvalues of X^T X / n from 4e-4 to 1
  w_true = rng.normal(size=d)
  y = x @ w_true + 0.1 * rng.normal(size=n)
  objective = lambda p, batch, ctx: (0.5 * jnp.mean((batch["x"] @ p["w"] - batch["y"]) ** 2), Aux({}))
  batch = {"x": jnp.asarray(x, jnp.float32), "y": jnp.asarray(y, jnp.float32)}
  eps, tau = 0.05, 200

  def descend(obj, steps, lr):
    grad = jax.jit(jax.grad(lambda p: obj(p, batch, None)[0]))
    tx, params = sgd(lr), {"w": jnp.zeros(d)}
    state = tx.init(params)
    for _ in range(steps):
      updates, state = tx.update(grad(params), state)
      params = optax.apply_updates(params, updates)
    return np.asarray(params["w"], np.float64)

  early = descend(objective, tau, eps)
  alpha = 1.0 / (tau * eps)
  ridge = descend(l2(alpha)(objective), 5000, 0.5)  # run the L2 problem to convergence
  w_star = np.linalg.lstsq(x, y, rcond=None)[0]
  # The distance between the two solutions is small next to how far each is from the unregularized optimum ...
  gap = np.linalg.norm(early - ridge)
  assert gap < 0.15 * np.linalg.norm(w_star - ridge) and gap < 0.15 * np.linalg.norm(w_star - early)
  # ... and much smaller than with an alpha 10x off in either direction.
  for wrong in (alpha / 10, alpha * 10):
    assert gap < 0.3 * np.linalg.norm(early - descend(l2(wrong)(objective), 5000, 0.5))


def test_tying_penalty_and_gradient(mlp_setup):
  model, params, batch = mlp_setup
  base = classification_objective(model.apply)
  tied = tying(0.3, "dense_0/kernel", "dense_0/kernel", reference=jax.tree.map(jnp.zeros_like, params))
  _, aux = tied(base)(params, batch, CTX)
  np.testing.assert_allclose(aux.metrics["tying_penalty"], 0.3 * (_kernels(params)[0] ** 2).sum(), rtol=1e-6)
  # Two layers of one model (same shapes): penalty alpha*||A - B||^2, gradient 2 alpha (A - B) and its negative.
  within = tying(0.3, "dense_1", "dense_1", reference=params)
  _, aux = within(base)(params, batch, CTX)
  np.testing.assert_allclose(aux.metrics["tying_penalty"], 0.0, atol=1e-7)
  reference = jax.tree.map(lambda p: p + 1.0, params)
  g = jax.grad(lambda p: tying(0.3, "dense_1", "dense_1", reference=reference)(base)(p, batch, CTX)[0])(params)
  g0 = jax.grad(lambda p: base(p, batch, CTX)[0])(params)
  np.testing.assert_allclose(g["dense_1"]["kernel"] - g0["dense_1"]["kernel"], -0.6 * np.ones((6, 6)), atol=1e-5)
  np.testing.assert_allclose(g["dense_1"]["bias"] - g0["dense_1"]["bias"], -0.6 * np.ones(6), atol=1e-5)


def test_tying_two_layers_of_one_model(rng):
  params = {"a": {"kernel": jnp.asarray(rng.normal(size=(3, 3)))}, "b": {"kernel": jnp.asarray(rng.normal(size=(3, 3)))}}
  objective = lambda p, batch, ctx: (jnp.zeros(()), Aux({}))
  penalized = tying(0.5, "a", "b")(objective)
  loss, _ = penalized(params, None, CTX)
  np.testing.assert_allclose(loss, 0.5 * np.sum((params["a"]["kernel"] - params["b"]["kernel"]) ** 2), rtol=1e-6)
  g = jax.grad(lambda p: penalized(p, None, CTX)[0])(params)
  np.testing.assert_allclose(g["a"]["kernel"], -g["b"]["kernel"], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(path_a="dense_0", path_b="nowhere"), "path_b 'nowhere' names no parameters"),
        (dict(path_a="dense_0/kernel", path_b="output/kernel"), "has shape"),
        (dict(path_a="dense_0", path_b="dense_0"), "the same subtree"),
    ],
)
def test_tying_errors(mlp_setup, kwargs, message):
  model, params, batch = mlp_setup
  with pytest.raises(ValueError, match=message):
    tying(0.1, **kwargs)(classification_objective(model.apply))(params, batch, CTX)


def test_smoothed_labels_equal_the_seed_vector():
  k, eps = 5, 0.2
  seed = np.asarray(smooth_labels(jnp.array([2]), k, eps))[0]
  np.testing.assert_allclose(seed, [eps / (k - 1)] * 2 + [1 - eps] + [eps / (k - 1)] * 2, rtol=1e-6)
  optax_form = np.asarray(smooth_labels(jnp.array([2]), k, eps, form="optax"))[0]
  np.testing.assert_allclose(optax_form, optax.smooth_labels(jax.nn.one_hot(2, k), eps), rtol=1e-6)
  np.testing.assert_allclose(optax_form, [eps / k] * 2 + [1 - eps + eps / k] + [eps / k] * 2, rtol=1e-6)


def test_label_smoothing_loss_is_cross_entropy_with_the_smoothed_vector(mlp_setup):
  model, params, batch = mlp_setup
  base = classification_objective(model.apply)
  loss, aux = label_smoothing(0.1, num_classes=3)(base)(params, batch, CTX)
  logits, _ = model.apply({"params": params}, batch["x"], train=False)
  log_p = np.asarray(jax.nn.log_softmax(logits), np.float64)
  targets = np.full((10, 3), 0.05)
  targets[np.arange(10), batch["y"]] = 0.9
  np.testing.assert_allclose(loss, -(targets * log_p).sum(-1).mean(), rtol=1e-5)
  # Evaluation keeps the hard labels.
  eval_ctx = Context(rng=None, model_state={}, train=False)
  np.testing.assert_allclose(label_smoothing(0.1, 3)(base)(params, batch, eval_ctx)[0], base(params, batch, eval_ctx)[0])


@pytest.mark.parametrize("eps", [-0.1, 1.0, 1.5, "0.1", True])
def test_label_smoothing_rejects_eps_outside_zero_one(eps):
  with pytest.raises(ValueError, match=r"eps must be in \[0, 1\)"):
    label_smoothing(eps, num_classes=10)


def test_activation_l1_penalizes_the_hidden_activations(mlp_setup):
  model, params, batch = mlp_setup
  base = classification_objective(model.apply)
  _, aux = activation_l1(0.5, layers=["hidden_1"])(base)(params, batch, CTX)
  h0 = np.maximum(batch["x"] @ np.asarray(params["dense_0"]["kernel"]) + np.asarray(params["dense_0"]["bias"]), 0)
  h1 = np.maximum(h0 @ np.asarray(params["dense_1"]["kernel"]) + np.asarray(params["dense_1"]["bias"]), 0)
  np.testing.assert_allclose(aux.metrics["activation_l1_penalty"], 0.5 * np.abs(h1).sum(1).mean(), rtol=1e-5)
  _, aux = activation_l1(0.5)(base)(params, batch, CTX)  # all layers
  np.testing.assert_allclose(
      aux.metrics["activation_l1_penalty"], 0.5 * (np.abs(h0).sum(1) + np.abs(h1).sum(1)).mean(), rtol=1e-5
  )
  with pytest.raises(ValueError, match="no layer"):
    activation_l1(0.5, layers=["hidden_7"])(base)(params, batch, CTX)


def test_activation_l1_needs_a_model_that_sows(make_linear, rng):
  model = make_linear(3)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))["params"]
  batch = {"x": rng.normal(size=(5, 4)).astype(np.float32), "y": rng.normal(size=(5, 3)).astype(np.float32)}
  with pytest.raises(ValueError, match="exposes none"):
    activation_l1(0.1)(regression_objective(model.apply))(params, batch, CTX)


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"l1": {}}, "regularizers.l1 needs regularizers.l1.alpha"),
        ({"l1": {"alpha": -1.0}}, r"^regularizers\.l1\.alpha must be a finite number >= 0"),
        ({"max_norm": {"max_value": 0.0}}, r"^regularizers\.max_norm\.max_value must be a number > 0"),
        ({"weight_decay": {"rate": "big"}}, r"^regularizers\.weight_decay\.rate must be a finite number >= 0"),
        ({"l2": {"alpha": float("inf")}}, r"^regularizers\.l2\.alpha must be a finite number >= 0 .*got inf"),
        ({"weight_decay": {"rate": float("inf")}}, r"^regularizers\.weight_decay\.rate must be a finite number"),
        ({"label_smoothing": {"eps": 1.0}}, r"^regularizers\.label_smoothing\.eps must be in \[0, 1\)"),
        ({"l2": {"alpha": 1e-4, "mask": 3}}, "mask must be a list of parameter path prefixes"),
        ({"elastic_net": {"l1_alpha": 0.1, "l2_alpha": 0.1, "schedule": {"name": "constant"}}}, "takes no schedule"),
        ({"dropout": {"rate": 0.5}}, "unknown regularizer 'dropout'"),
    ],
)
def test_bad_regularizer_configs_are_refused(sections, message):
  with pytest.raises(ConfigError, match=message):
    make_regularizers(learning_rate=0.1, **sections)


def test_l2_is_the_same_on_linen_nnx_and_attribute_modules():
  """Kernels only, by name, on every parameter container: a Linen dict, an nnx.State, attribute modules, Equinox."""
  import dataclasses

  from flax import nnx

  from jaxreg.regularizers import l2
  from jaxreg.train import Context

  class Two(nnx.Module):
    def __init__(self, rngs):
      self.dense_0 = nnx.Linear(3, 4, rngs=rngs)
      self.norm = nnx.LayerNorm(4, rngs=rngs)
      self.dense_1 = nnx.Linear(4, 2, rngs=rngs)

  state = nnx.state(Two(nnx.Rngs(0)), nnx.Param)
  linen = nnx.to_pure_dict(state)  # the same arrays as a plain nested dict, as Linen holds them
  for layer in ("dense_0", "dense_1", "norm"):  # non-zero biases and scales: penalizing them would show
    linen[layer] = {k: v + 1.0 for k, v in linen[layer].items()}
  nnx.replace_by_pure_dict(state, linen)

  @jax.tree_util.register_dataclass
  @dataclasses.dataclass
  class Linear:  # flattened by attribute name, as Equinox modules are
    weight: jax.Array
    bias: jax.Array

  @jax.tree_util.register_dataclass
  @dataclasses.dataclass
  class Model:
    layers: list

  attribute_model = Model([Linear(linen["dense_0"]["kernel"], linen["dense_0"]["bias"]),
                           Linear(linen["dense_1"]["kernel"], linen["dense_1"]["bias"])])
  expected = 0.5 * 0.1 * sum(float(jnp.sum(linen[k]["kernel"] ** 2)) for k in ("dense_0", "dense_1"))

  import equinox as eqx

  mlp = eqx.nn.MLP(3, 2, width_size=4, depth=1, key=jax.random.PRNGKey(0))  # its activation is a leaf too
  for i, name in enumerate(("dense_0", "dense_1")):  # Equinox stores W as (out, in)
    mlp = eqx.tree_at(lambda m, i=i: (m.layers[i].weight, m.layers[i].bias), mlp,
                      (linen[name]["kernel"].T, linen[name]["bias"]))
  arrays, _ = eqx.partition(mlp, eqx.is_inexact_array)
  expected = 0.5 * 0.1 * sum(float(jnp.sum(linen[k]["kernel"] ** 2)) for k in ("dense_0", "dense_1"))

  objective = lambda params, batch, ctx: (jnp.zeros(()), Aux({}))  # noqa: E731
  ctx = Context(rng=None, model_state={}, train=True, step=0)
  containers = (linen, state, attribute_model, mlp, arrays)
  penalties = [float(l2(0.1)(objective)(params, {}, ctx)[0]) for params in containers]
  np.testing.assert_allclose(penalties, [expected] * len(containers), rtol=1e-6)
  assert float(jnp.sum(linen["norm"]["scale"] ** 2)) > 0  # a scale was there to be (wrongly) penalized
