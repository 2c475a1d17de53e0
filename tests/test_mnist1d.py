"""MNIST-1D: generated locally by the mnist1d package (never downloaded), cached, split 3,600/400/1,000."""

import os
import random

import numpy as np
import pytest

from jaxreg.config import load_config
from jaxreg.data import make_dataset
from jaxreg.data.mnist1d import generate_mnist1d, load_mnist1d
from jaxreg.errors import ConfigError


@pytest.fixture
def cache(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXREG_CACHE_DIR", str(tmp_path / "cache"))
  return tmp_path / "cache"


@pytest.mark.slow
def test_generated_split_cached_and_deterministic(cache):
  import mnist1d.data  # noqa: F401  (imported first: an import may itself draw from the global RNGs)
  import sklearn.model_selection  # noqa: F401

  np.random.seed(123)
  random.seed(123)
  before = (np.random.get_state()[1].copy(), random.getstate())
  data = load_mnist1d()
  assert (len(data.train.y), len(data.val.y), len(data.test.y)) == (3600, 400, 1000)
  assert data.train.x.shape[1:] == (40,) and data.num_classes == 10 and data.train.x.dtype == np.float32
  assert np.bincount(data.test.y, minlength=10).min() > 80  # all ten classes in the test split
  # The generator seeds the global RNGs; jaxreg puts them back.
  np.testing.assert_array_equal(np.random.get_state()[1], before[0])
  assert random.getstate() == before[1]
  (cached,) = list(cache.iterdir())
  again = load_mnist1d()  # from the cache file this time
  np.testing.assert_array_equal(again.train.x, data.train.x)
  np.testing.assert_array_equal(again.test.y, data.test.y)
  # The published generator output (seed 42): its test split is the last 1,000 generated examples.
  fresh = generate_mnist1d()
  np.testing.assert_array_equal(fresh["x_test"], data.test.x)
  assert os.path.getsize(cached) > 0


@pytest.mark.slow
def test_a_corrupt_cache_file_is_regenerated(cache):
  data = load_mnist1d()
  (cached,) = list(cache.iterdir())
  cached.write_bytes(b"not an npz")
  np.testing.assert_array_equal(load_mnist1d().train.x, data.train.x)


def test_mnist1d_config_errors():
  with pytest.raises(ConfigError, match="leave data.path"):
    make_dataset("mnist1d", path="x.npz")


@pytest.mark.parametrize("variant", ["none", "dropout_max_norm", "prox_l1", "activation_l1", "label_smoothing"])
def test_every_mnist1d_variant_is_a_valid_config(variant):
  from jaxreg.config import validate_config
  from jaxreg.regularizers import make_regularizers

  config, _ = load_config(f"mnist1d_mlp:{variant}")
  validate_config(config)
  make_regularizers(learning_rate=1e-3, **config.regularizers.to_dict())
