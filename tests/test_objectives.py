import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.errors import ConfigError
from jaxreg.train import Context, classification_objective, make_objective, regression_objective


def _log_softmax(z):
  z = z - z.max(axis=-1, keepdims=True)
  return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


@pytest.fixture
def linear(make_linear):
  model = make_linear(4)
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
  return model, variables["params"]["dense"]


def test_classification_objective_is_the_mean_nll(linear, rng):
  model, params = linear
  x = rng.normal(size=(8, 3)).astype(np.float32)
  y = rng.integers(0, 4, size=8)
  loss, aux = classification_objective(model.apply)({"dense": params}, {"x": x, "y": y}, Context(None, {}, False))
  z = x @ np.asarray(params["kernel"]) + np.asarray(params["bias"])
  nll = -_log_softmax(z)[np.arange(8), y]  # E_nll = -log y_{c_t} (Baskin et al. 2018)
  np.testing.assert_allclose(loss, nll.mean(), rtol=1e-6)
  np.testing.assert_allclose(aux["metrics"]["accuracy"], np.mean(z.argmax(-1) == y))


def test_mask_excludes_padding_from_the_means(linear, rng):
  model, params = linear
  x = rng.normal(size=(6, 3)).astype(np.float32)
  y = rng.integers(0, 4, size=6)
  objective = classification_objective(model.apply)
  ctx = Context(None, {}, False)
  full, _ = objective({"dense": params}, {"x": x[:4], "y": y[:4]}, ctx)
  mask = np.array([1, 1, 1, 1, 0, 0], np.float32)
  masked, _ = objective({"dense": params}, {"x": x, "y": y, "mask": mask}, ctx)
  np.testing.assert_allclose(masked, full, rtol=1e-6)


def test_regression_objective_is_the_mse(linear, rng):
  model, params = linear
  x = rng.normal(size=(5, 3)).astype(np.float32)
  y = rng.normal(size=(5, 4)).astype(np.float32)
  loss, aux = regression_objective(model.apply)({"dense": params}, {"x": x, "y": y}, Context(None, {}, False))
  z = x @ np.asarray(params["kernel"]) + np.asarray(params["bias"])
  np.testing.assert_allclose(loss, np.mean((z - y) ** 2), rtol=1e-6)
  assert set(aux["metrics"]) == {"loss"}


def test_unknown_task():
  with pytest.raises(ConfigError, match="unknown task 'ranking'"):
    make_objective("ranking", lambda *a, **k: None)


def test_accuracy_is_argmax_with_ties_to_the_first_class():
  from jaxreg.train.objectives import _is_top1

  g = np.random.default_rng(3)
  logits = g.integers(0, 3, size=(500, 5)).astype(np.float32)  # many exact ties
  labels = g.integers(0, 5, size=500)
  np.testing.assert_array_equal(np.asarray(_is_top1(jnp.asarray(logits), jnp.asarray(labels))),
                                np.argmax(logits, axis=-1) == labels)
  constant = jnp.zeros((4, 3))
  np.testing.assert_array_equal(_is_top1(constant, jnp.asarray([0, 1, 2, 0])), [True, False, False, True])
