"""Shared test setup: 8 fake CPU devices (set before jax is imported), a shared compilation cache.

Many tests compile the same programs (the digits MLP's step, the smoke
config's epoch), in this process, in the other xdist worker, in CLI
subprocesses and in notebook kernels. JAX's persistent compilation cache,
in a directory shared by one test session's processes and removed at its
end, compiles each once: about 20% off the suite's time on 2 cores.
"""

import os
import shutil
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The first process to load this file (the xdist controller) makes the directory; the workers,
# started after it, inherit the variable.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxreg-tests-jax-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def rng():
  return np.random.default_rng(0)


@pytest.fixture
def tiny_npz(tmp_path):
  """A small, valid 3-class classification dataset saved as .npz; returns (path, arrays)."""
  g = np.random.default_rng(1)
  arrays = {
      "x_train": g.normal(size=(120, 5)).astype(np.float32),
      "y_train": np.tile(np.arange(3), 40),
      "x_test": g.normal(size=(30, 5)).astype(np.float32),
      "y_test": np.tile(np.arange(3), 10),
  }
  path = tmp_path / "tiny.npz"
  np.savez(path, **arrays)
  return str(path), arrays


@pytest.fixture
def make_linear():
  """Returns ``make(features) -> ModelFns`` of one linear layer named ``dense`` (logits = x W + b)."""
  import flax.linen as nn

  from jaxreg.models import from_linen

  class Linear(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x, *, train):
      del train  # the module contract takes it; a linear layer has no stochastic parts
      return nn.Dense(self.features, name="dense")(x)

  return lambda features: from_linen(Linear(features))


@pytest.fixture(scope="session")
def digits():
  """scikit-learn's digits in jaxreg's split (seed 0)."""
  from jaxreg.data import load_digits

  return load_digits(seed=0)


@pytest.fixture
def mlp_run():
  """``make(lr=1e-2, hidden=(32,)) -> (state, train_step, eval_step)``: a digits MLP with Adam, unregularized."""
  import jax
  import jax.numpy as jnp
  import optax

  from jaxreg.models import make_mlp
  from jaxreg.train import classification_objective, create_train_state, make_eval_step, make_train_step

  def make(lr=1e-2, hidden=(32,)):
    model = make_mlp(num_outputs=10, hidden_sizes=hidden)
    tx = optax.adam(lr)
    objective = classification_objective(model.apply)
    state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 64)))
    return state, make_train_step(objective, tx), make_eval_step(objective)

  return make


def pytest_sessionfinish(session):
  """The process that made the session's compilation cache removes it."""
  if _OWN_CACHE:
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
