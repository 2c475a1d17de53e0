"""Noise injection: on the inputs (Bishop's closed form for linear regression) and on the weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg import augment, regularizers
from jaxreg.errors import ConfigError
from jaxreg.train import Context, regression_objective


def _linear_apply(variables, x, *, train, rng):
  del train, rng
  return x @ variables["params"]["kernel"], {}


def _regression_problem(n=64, d=5, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, d)).astype(np.float32)
  w = rng.normal(size=(d, 1)).astype(np.float32)
  y = (x @ w + 0.3 * rng.normal(size=(n, 1))).astype(np.float32)
  return {"x": jnp.asarray(x), "y": jnp.asarray(y)}, {"kernel": jnp.asarray(0.7 * w)}


def test_input_noise_adds_sigma_squared_times_the_squared_norm_of_w_to_the_expected_squared_error():
  """Bishop 1995: E[(w.(x+e) - y)^2] = (w.x - y)^2 + sigma^2 ||w||^2, for loss and gradient, exactly."""
  batch, params = _regression_problem()
  sigma, draws = 0.3, 2000
  objective = regression_objective(_linear_apply)
  noisy = augment.as_batch_transform(augment.gaussian_noise(sigma))
  ctx = Context(rng=None, model_state={}, train=True)

  def loss_and_grad(key):
    return jax.value_and_grad(lambda p: objective(p, noisy(batch, key), ctx)[0])(params)

  losses, grads = jax.lax.map(loss_and_grad, jax.random.split(jax.random.PRNGKey(0), draws), batch_size=200)
  clean, clean_grad = jax.value_and_grad(lambda p: objective(p, batch, ctx)[0])(params)
  w = np.asarray(params["kernel"])
  expected = float(clean) + sigma**2 * float(np.sum(w**2))
  standard_error = float(np.std(losses)) / np.sqrt(draws)
  assert abs(float(np.mean(losses)) - expected) < 4 * standard_error, (float(np.mean(losses)), expected)
  assert abs(float(np.mean(losses)) - float(clean)) > 10 * standard_error  # the noise term is really there
  expected_grad = np.asarray(clean_grad["kernel"]) + 2 * sigma**2 * w  # d/dw of sigma^2 ||w||^2
  grad_draws = np.asarray(grads["kernel"])
  grad_error = grad_draws.std(axis=0) / np.sqrt(draws)
  assert np.all(np.abs(grad_draws.mean(axis=0) - expected_grad) < 4 * grad_error + 1e-7)


def _noisy_objective(sigma, mask=None):
  return regularizers.weight_noise(sigma, mask=mask)(regression_objective(_linear_apply))


def test_weight_noise_takes_the_gradient_at_the_perturbed_point_and_evaluates_at_the_clean_one():
  batch, params = _regression_problem()
  params = {**params, "bias": jnp.ones(1)}

  def apply(variables, x, *, train, rng):
    del train, rng
    return x @ variables["params"]["kernel"] + variables["params"]["bias"], {}

  sigma, key = 0.2, jax.random.PRNGKey(7)
  plain = regression_objective(apply)
  noisy = regularizers.weight_noise(sigma)(plain)
  ctx = Context(rng=key, model_state={}, train=True)
  grad = jax.grad(lambda p: noisy(p, batch, ctx)[0])(params)
  perturbed = regularizers.perturb(params, jax.random.split(key)[0], sigma)
  assert not np.allclose(perturbed["kernel"], params["kernel"])
  np.testing.assert_array_equal(perturbed["bias"], params["bias"])  # biases are not perturbed by default
  grad_at_perturbed = jax.grad(lambda p: plain(p, batch, ctx)[0])(perturbed)
  np.testing.assert_allclose(grad["kernel"], grad_at_perturbed["kernel"], rtol=1e-6)
  assert not np.allclose(grad["kernel"], jax.grad(lambda p: plain(p, batch, ctx)[0])(params)["kernel"])
  # A NumPy reference of the gradient at the perturbed point: d/dw mean((Xw + b - y)^2) = 2 X^T r / n.
  x, y = np.asarray(batch["x"], np.float64), np.asarray(batch["y"], np.float64)
  residual = x @ np.asarray(perturbed["kernel"], np.float64) + 1.0 - y
  np.testing.assert_allclose(grad["kernel"], 2 * x.T @ residual / len(x), rtol=1e-4)
  # Fresh noise per key; the clean weights in evaluation.
  other = jax.grad(lambda p: noisy(p, batch, ctx._replace(rng=jax.random.PRNGKey(8)))[0])(params)
  assert not np.allclose(other["kernel"], grad["kernel"])
  evaluation = Context(rng=None, model_state={}, train=False)
  assert float(noisy(params, batch, evaluation)[0]) == float(plain(params, batch, evaluation)[0])


def test_weight_noise_perturbation_has_the_stated_distribution():
  params = {"kernel": jnp.zeros((200, 100)), "bias": jnp.zeros(100)}
  noise = regularizers.perturb(params, jax.random.PRNGKey(0), 0.05)["kernel"]
  assert abs(float(noise.mean())) < 4 * 0.05 / np.sqrt(noise.size)
  assert abs(float(noise.std()) / 0.05 - 1) < 0.02


def test_weight_noise_in_a_config_is_innermost_and_checked():
  regs = regularizers.make_regularizers(l2={"alpha": 1.0}, weight_noise={"sigma": 0.5})
  assert regs.names[0] == "weight_noise"
  batch, params = _regression_problem()
  objective = regs.objective(regression_objective(_linear_apply))
  _, aux = objective(params, batch, Context(rng=jax.random.PRNGKey(1), model_state={}, train=True))
  # The L2 penalty is of the clean weights, not the perturbed ones.
  np.testing.assert_allclose(aux.metrics["l2_penalty"], 0.5 * float(jnp.sum(params["kernel"] ** 2)), rtol=1e-6)
  with pytest.raises(ConfigError, match=r"regularizers.weight_noise.sigma must be a finite number >= 0"):
    regularizers.make_regularizers(weight_noise={"sigma": -1.0})
  with pytest.raises(ValueError, match=r"weight_noise needs a random key"):
    _noisy_objective(0.1)(params, batch, Context(rng=None, model_state={}, train=True))
