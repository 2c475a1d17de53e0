"""Initializers by name: the lecture notes' bounds and variances, sparse(k), orthogonality, config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.errors import ConfigError
from jaxreg.models import get_initializer, initializer_names, make_mlp

M, N = 400, 300  # fan-in, fan-out: large enough for tight sample statistics


def _sample(spec, shape=(M, N)):
  return np.asarray(get_initializer(spec)(jax.random.PRNGKey(0), shape), np.float64)


def test_uniform_fan_in_is_symmetric_with_bound_one_over_sqrt_m():
  w = _sample("uniform_fan_in")
  bound = 1 / np.sqrt(M)
  assert w.max() <= bound and w.min() >= -bound
  assert w.max() > 0.99 * bound and w.min() < -0.99 * bound  # fills [-b, b], not [0, b)
  np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.02)


def test_glorot_uniform_uses_sqrt_6_over_m_plus_n():
  w = _sample("glorot_uniform")
  bound = np.sqrt(6 / (M + N))  # the notes' printed 6/sqrt(m+n) would be 0.227, over 2x wider
  assert w.max() <= bound and w.max() > 0.99 * bound and w.min() < -0.99 * bound
  np.testing.assert_allclose(w.var(), 2 / (M + N), rtol=0.02)


@pytest.mark.parametrize("name, variance", [("glorot_normal", 2 / (M + N)), ("he_normal", 2 / M)])
def test_normal_initializers_have_the_published_variance(name, variance):
  np.testing.assert_allclose(_sample(name).var(), variance, rtol=0.02)


@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_orthogonal_columns_are_orthonormal_times_gain(gain):
  w = _sample({"name": "orthogonal", "gain": gain}, (N, M // 2))
  np.testing.assert_allclose(w.T @ w, gain**2 * np.eye(M // 2), atol=1e-5)


@pytest.mark.parametrize("k", [1, 15, 64])
def test_sparse_has_exactly_k_nonzeros_per_unit(k):
  w = _sample({"name": "sparse", "k": k}, (64, 50))
  np.testing.assert_array_equal((w != 0).sum(axis=0), k)
  if k < 64:  # the chosen inputs differ between units
    assert len({tuple(np.flatnonzero(col)) for col in w.T}) > 25  # k=1: about 35 of 50 expected
  nonzero = w[w != 0]
  assert abs(nonzero.mean()) < 0.2 and 0.8 < nonzero.std() < 1.2  # N(0, 1) values


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_sparse_in_a_model_from_a_config_mapping():
  model = make_mlp(num_outputs=10, hidden_sizes=(32,), kernel_init={"name": "sparse", "k": 15})
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64)))["params"]
  np.testing.assert_array_equal((np.asarray(params["dense_0"]["kernel"]) != 0).sum(0), 15)
  np.testing.assert_array_equal((np.asarray(params["output"]["kernel"]) != 0).sum(0), 15)


@pytest.mark.parametrize(
    "spec, error, message",
    [
        ("xavier", ConfigError, "unknown kernel initializer 'xavier'; valid names: glorot_normal, glorot_uniform"),
        ({"name": "sparse", "k": 0}, ValueError, "^kernel_init: sparse's k must be a positive integer"),
        ({"name": "sparse", "kk": 3}, ConfigError, "model.kernel_init.kk"),
        ({"name": "orthogonal", "gain": -1.0}, ValueError, "^kernel_init: orthogonal's gain must be a number > 0"),
        ({"k": 3}, ConfigError, "unknown kernel initializer None"),
    ],
)
def test_bad_initializer_specs_are_refused(spec, error, message):
  with pytest.raises(error, match=message):
    get_initializer(spec)


def test_a_bad_initializer_value_in_a_config_names_its_key():
  from jaxreg.models import make_model

  with pytest.raises(ConfigError, match="^model.kernel_init: orthogonal's gain must be a number > 0"):
    make_model("mlp", num_outputs=2, kernel_init={"name": "orthogonal", "gain": -1.0})


def test_sparse_k_larger_than_fan_in_is_refused():
  with pytest.raises(ValueError, match="larger than the fan-in 8"):
    get_initializer({"name": "sparse", "k": 15})(jax.random.PRNGKey(0), (8, 4))


def test_every_name_builds_a_kernel():
  for name in initializer_names():
    assert _sample(name, (16, 8)).shape == (16, 8)
