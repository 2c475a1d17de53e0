"""Peer checks on identical gradients: jaxreg's optimizers against PyTorch and optax.

A fixed random sequence of gradients (with a zero and a sign-flipping stretch)
is fed to each implementation; the parameter trajectories must agree to
round-off in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.optim import transforms as T

torch = pytest.importorskip("torch")  # installed by the test extras (torch==2.13.0, CPU)

STEPS, DIM = 60, 7


def _gradients():
  g = np.random.default_rng(0).normal(size=(STEPS, DIM))
  g[5] = 0.0  # a zero gradient (division by sqrt(r) must stay finite)
  g[20:30] *= np.where(np.arange(10) % 2, -1.0, 1.0)[:, None] * 3.0  # sign flips, larger scale
  return g


def _jaxreg_trajectory(tx, theta0, grads):
  with jax.enable_x64(True):
    params = jnp.asarray(theta0)
    state = tx.init(params)
    out = []
    for g in grads:
      updates, state = tx.update(jnp.asarray(g), state, params)
      params = optax.apply_updates(params, updates)
      out.append(np.asarray(params))
  return np.array(out)


def _torch_trajectory(make_optimizer, theta0, grads):
  param = torch.nn.Parameter(torch.tensor(theta0, dtype=torch.float64))
  opt = make_optimizer([param])
  out = []
  for g in grads:
    param.grad = torch.tensor(g, dtype=torch.float64)
    opt.step()
    out.append(param.detach().numpy().copy())
  return np.array(out)


THETA0 = np.random.default_rng(1).normal(size=DIM)


@pytest.mark.parametrize("ours, theirs", [
    (lambda: T.adagrad(0.1, delta=1e-10),
     lambda p: torch.optim.Adagrad(p, lr=0.1, eps=1e-10, initial_accumulator_value=0.0)),
    (lambda: T.adam(0.01, b1=0.9, b2=0.999, delta=1e-8),
     lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
    (lambda: T.rmsprop(0.01, decay=0.9, delta=1e-8, delta_inside_sqrt=False),
     lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8)),
    (lambda: T.momentum(0.05, 0.9, form="optax"),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
], ids=["adagrad-vs-torch", "adam-vs-torch", "rmsprop-pytorch-form-vs-torch", "momentum-optax-form-vs-torch"])
def test_matches_pytorch_on_identical_gradients(ours, theirs):
  grads = _gradients()
  np.testing.assert_allclose(
      _jaxreg_trajectory(ours(), THETA0, grads), _torch_trajectory(theirs, THETA0, grads), rtol=1e-10, atol=1e-12
  )


@pytest.mark.parametrize("ours, theirs", [
    (lambda: T.adagrad(0.1, delta=1e-7, form="optax"), lambda: optax.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-7)),
    (lambda: T.momentum(0.05, 0.9, form="optax"), lambda: optax.sgd(0.05, momentum=0.9)),
    (lambda: T.adam(0.01), lambda: optax.adam(0.01)),
    (lambda: T.rmsprop(0.01, decay=0.9, delta=1e-6), lambda: optax.rmsprop(0.01, decay=0.9, eps=1e-6)),
], ids=["adagrad-optax-form", "momentum-optax-form", "adam", "rmsprop"])
def test_matches_optax_on_identical_gradients(ours, theirs):
  grads = _gradients()
  np.testing.assert_allclose(
      _jaxreg_trajectory(ours(), THETA0, grads), _jaxreg_trajectory(theirs(), THETA0, grads), rtol=1e-12, atol=1e-14
  )
