"""The CNN: its convolutions against NumPy, the shift equivariance of shared weights, shapes, configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.errors import ConfigError
from jaxreg.models import make_cnn, make_model


def _conv_maps(model, variables, x):
  _, state = model.apply(variables, x, train=False, capture_intermediates=True)
  return np.asarray(state["intermediates"]["hidden_conv_0"][0])


def _numpy_same_correlation(x, kernel, bias):
  """``out[p, o] = b[o] + sum_{d, c} x_pad[p + d, c] k[d, c, o]``, zero 'SAME' padding, over every spatial axis."""
  spatial = kernel.shape[:-2]
  pads = [((k - 1) // 2, k // 2) for k in spatial]
  padded = np.pad(x, [(0, 0), *pads, (0, 0)])
  out = np.zeros((x.shape[0], *x.shape[1:-1], kernel.shape[-1]))
  for offset in np.ndindex(*spatial):
    window = padded[(slice(None), *(slice(o, o + n) for o, n in zip(offset, x.shape[1:-1], strict=True)))]
    out += np.einsum("b...c,co->b...o", window, kernel[offset])
  return out + bias


@pytest.mark.parametrize("dims, shape", [(1, (3, 20, 2)), (2, (3, 8, 8, 3))])
def test_a_conv_layer_is_the_cross_correlation_numpy_computes(dims, shape):
  model = make_cnn(num_outputs=4, channels=(5,), dims=dims, kernel_size=3, pool=1, activation="identity")
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  variables = model.init(jax.random.PRNGKey(1), x)
  conv = variables["params"]["conv_0"]
  expected = _numpy_same_correlation(np.asarray(x), np.asarray(conv["kernel"]), np.asarray(conv["bias"]))
  np.testing.assert_allclose(_conv_maps(model, variables, x), expected, rtol=1e-5, atol=1e-5)


def test_shared_weights_make_the_layer_shift_equivariant_away_from_the_border():
  model = make_cnn(num_outputs=2, channels=(4,), kernel_size=5, pool=1)
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 40, 1))
  variables = model.init(jax.random.PRNGKey(1), x)
  maps, shifted_maps = _conv_maps(model, variables, x), _conv_maps(model, variables, jnp.roll(x, 3, axis=1))
  np.testing.assert_allclose(shifted_maps[:, 8:-8], np.roll(maps, 3, axis=1)[:, 8:-8], rtol=1e-5, atol=1e-6)
  dense_parameters = 40 * 40 * 4  # a dense layer from 40 inputs to the same 40 x 4 maps
  assert variables["params"]["conv_0"]["kernel"].size == 5 * 4 < dense_parameters


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_shapes_pooling_flat_inputs_and_dropout():
  model = make_cnn(num_outputs=10, channels=(8, 16), dims=2, kernel_size=3, pool=2, dense_sizes=(32,),
                   dropout_rate=0.5, input_shape=(8, 8))
  x = jnp.ones((6, 64))
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), x)
  apply = jax.jit(model.apply, static_argnames="train")
  logits, _ = apply(variables, x, train=False)
  assert logits.shape == (6, 10)
  assert variables["params"]["dense_0"]["kernel"].shape == (2 * 2 * 16, 32)  # 8 -> 4 -> 2 after two pools
  train_a, _ = apply(variables, x, train=True, rng=jax.random.PRNGKey(1))
  train_b, _ = apply(variables, x, train=True, rng=jax.random.PRNGKey(2))
  assert not np.allclose(train_a, train_b)


def test_bad_settings_and_inputs_are_named():
  with pytest.raises(ValueError, match="dims must be 1 \\(signals\\) or 2 \\(images\\), got 3"):
    make_cnn(num_outputs=2, dims=3)
  with pytest.raises(ValueError, match="pooling must be 'max' or 'avg'"):
    make_cnn(num_outputs=2, pooling="median")
  with pytest.raises(ValueError, match="kernel_size must be a positive integer, got 0"):
    make_cnn(num_outputs=2, kernel_size=0)
  with pytest.raises(ValueError, match="input_shape=\\(8, 9\\) holds 72 values, but each example has 64"):
    make_cnn(num_outputs=2, dims=2, input_shape=(8, 9)).init(jax.random.PRNGKey(0), jnp.ones((1, 64)))
  with pytest.raises(ValueError, match="a 2-D CNN takes examples shaped \\(height, width, channels\\).*got examples "
                                       "of shape \\(64,\\); set model.dims, or model.input_shape"):
    make_cnn(num_outputs=2, dims=2).init(jax.random.PRNGKey(0), jnp.ones((1, 64)))
  with pytest.raises(ConfigError, match="unknown key\\(s\\) model.hidden_sizes for model 'cnn'"):
    make_model("cnn", num_outputs=2, hidden_sizes=(3,))


@pytest.mark.slow  # a run
def test_the_digits_cnn_config_trains_with_its_augmentation(tmp_path):
  from jaxreg.config import load_config
  from jaxreg.experiment import train_and_evaluate

  config, _ = load_config("digits_cnn:smoke", [("train.progress_bar", "False")])
  assert [a["name"] for a in config.data.augment] == ["translate", "gaussian_noise"]
  result = train_and_evaluate(config, str(tmp_path / "run"))
  assert result.summary["epochs_run"] == 2 and result.summary["test_accuracy"] > 0.3  # chance: 0.1


def test_draws_made_flat_are_jax_randoms_own_values():
  """The flat draws (fast to compile on CPU) give exactly the values of the shaped ones."""
  from jaxreg import _random

  key = jax.random.PRNGKey(3)
  np.testing.assert_array_equal(_random.bernoulli(key, 0.3, (2, 3, 2, 2)), jax.random.bernoulli(key, 0.3, (2, 3, 2, 2)))
  np.testing.assert_array_equal(_random.normal(key, (2, 3, 2, 2)), jax.random.normal(key, (2, 3, 2, 2)))
