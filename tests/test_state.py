"""create_train_state: one cheaply compiled program, bit for bit the eager initialization."""

import jax
import numpy as np
import optax
import pytest

from jaxreg.models import make_model
from jaxreg.train import create_train_state

CASES = [
    ("mlp", dict(hidden_sizes=(64, 32), dropout_rate=0.3)),
    ("mlp", dict(hidden_sizes=(16,), kernel_init="glorot_uniform", batch_norm=True)),
    ("mlp", dict(hidden_sizes=(16,), kernel_init={"name": "orthogonal"})),
    ("mlp", dict(hidden_sizes=(16,), kernel_init={"name": "sparse", "k": 3})),
    ("mlp", dict(hidden_sizes=(16,), kernel_init="uniform_fan_in")),
    ("lstm", dict(hidden_sizes=(8,), sequence_length=4)),
    ("gru", dict(hidden_sizes=(8,), sequence_length=4)),
]


# The first case in the fast tier; the rest (each about 6 s of op-by-op initialization) in the full suite.
PARAMS = [pytest.param(name, kwargs, id=f"{name}-{i}", marks=() if i == 0 else pytest.mark.slow)
          for i, (name, kwargs) in enumerate(CASES)]


@pytest.mark.parametrize("name,kwargs", PARAMS)
def test_compiled_initialization_equals_the_eager_one(name, kwargs):
  model = make_model(name=name, num_outputs=5, **kwargs)
  tx = optax.adam(1e-3)
  x = np.zeros((1, 16), np.float32)
  rng = jax.random.PRNGKey(7)
  state = create_train_state(model, tx, rng=rng, sample_x=x)
  init_rng, train_rng = jax.random.split(rng)
  variables = model.init(init_rng, x)  # op by op, as create_train_state did before it compiled one program
  for ours, eager in zip(jax.tree.leaves(state.params), jax.tree.leaves(variables["params"]), strict=True):
    np.testing.assert_array_equal(ours, eager)
  np.testing.assert_array_equal(jax.random.key_data(state.rng) if jax.dtypes.issubdtype(state.rng.dtype, jax.dtypes.prng_key)
                                else state.rng, train_rng)
  assert int(state.step) == 0 and float(state.early_stopping.best_value) == np.inf
