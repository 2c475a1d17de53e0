"""Update-transform regularizers: weight decay, proximal L1, max-norm, against closed forms and optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.train.objectives import Aux
from jaxreg.data import load_digits
from jaxreg.models import make_mlp
from jaxreg.optim import adam, sgd
from jaxreg.regularizers import by_path, l2, max_norm, prox_l1, weight_decay
from jaxreg.train import classification_objective, create_train_state, make_train_step


def _run(tx, grad_fn, params, steps):
  state = tx.init(params)
  history = []
  for _ in range(steps):
    updates, state = tx.update(grad_fn(params), state, params)
    params = optax.apply_updates(params, updates)
    history.append(params)
  return params, history


def test_prox_l1_reaches_the_seed_closed_form_with_exact_zeros(rng):
  """Wang 2023: on J = 1/2 sum_i H_ii (w_i - w*_i)^2 + alpha ||w||_1, w_i = sign(w*_i) max(|w*_i| - alpha/H_ii, 0)."""
  n, alpha, eps = 12, 0.3, 0.2
  h = rng.uniform(0.5, 2.0, size=n)
  w_star = rng.normal(size=n)
  w_star[:4] = alpha / h[:4] * rng.uniform(-0.9, 0.9, size=4)  # inside the threshold: the answer is exactly 0
  grad = jax.jit(lambda p: {"kernel": h * (p["kernel"] - w_star)})
  tx = optax.chain(sgd(eps), prox_l1(alpha, learning_rate=eps))
  params, _ = _run(tx, grad, {"kernel": jnp.ones(n)}, 400)
  expected = np.sign(w_star) * np.maximum(np.abs(w_star) - alpha / h, 0.0)
  assert (expected == 0).sum() >= 4
  np.testing.assert_array_equal(np.asarray(params["kernel"])[expected == 0], 0.0)  # exact zeros
  np.testing.assert_allclose(params["kernel"], expected, rtol=1e-5, atol=1e-6)


def test_l1_subgradient_descent_does_not_reach_exact_zeros(rng):
  """The contrast the lecture notes draw: the same problem with an l1 penalty in the objective only oscillates around 0."""
  from jaxreg.regularizers import l1

  n, alpha, eps = 12, 0.3, 0.2
  h = rng.uniform(0.5, 2.0, size=n)
  w_star = alpha / h * rng.uniform(-0.9, 0.9, size=n)
  quadratic = lambda p, batch, ctx: (0.5 * jnp.sum(h * (p["kernel"] - w_star) ** 2), Aux({}))
  grad = jax.jit(jax.grad(lambda p: l1(alpha)(quadratic)(p, None, None)[0]))
  params, _ = _run(sgd(eps), grad, {"kernel": jnp.ones(n)}, 400)
  assert np.count_nonzero(np.asarray(params["kernel"])) > n // 2
  assert np.max(np.abs(params["kernel"])) < 0.15  # it went from 1 to near 0, but does not stop there


def test_weight_decay_with_sgd_equals_the_l2_penalty(rng):
  """Wang 2023: with SGD, decoupled decay at rate eps*alpha is the L2 step w <- (1 - eps*alpha) w - eps*g."""
  eps, alpha = 0.1, 0.05
  target = jnp.asarray(rng.normal(size=(4, 3)))
  data_loss = lambda p, batch, ctx: (0.5 * jnp.sum((p["kernel"] - target) ** 2), Aux({}))
  start = {"kernel": jnp.asarray(rng.normal(size=(4, 3)))}
  decayed, _ = _run(optax.chain(sgd(eps), weight_decay(eps * alpha)), jax.grad(lambda p: data_loss(p, 0, 0)[0]), start, 30)
  penalized, _ = _run(sgd(eps), jax.grad(lambda p: l2(alpha)(data_loss)(p, 0, 0)[0]), start, 30)
  np.testing.assert_allclose(decayed["kernel"], penalized["kernel"], rtol=1e-5)


def test_weight_decay_after_adam_matches_optax_adamw(rng):
  lr, wd = 1e-2, 1e-2
  params = {"dense": {"kernel": jnp.asarray(rng.normal(size=(5, 4)), jnp.float32), "bias": jnp.zeros(4)}}
  grads = [jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params) for _ in range(20)]
  ours = optax.chain(adam(lr), weight_decay(lr * wd, mask=by_path(None, exclude_names=())))
  peer = optax.adamw(lr, weight_decay=wd)
  p1, p2, s1, s2 = params, params, ours.init(params), peer.init(params)
  for g in grads:
    u1, s1 = ours.update(g, s1, p1)
    u2, s2 = peer.update(g, s2, p2)
    p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_weight_decay_leaves_biases_alone_by_default():
  params = {"dense": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)}}
  tx = weight_decay(0.1)
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
  np.testing.assert_allclose(updates["dense"]["kernel"], -0.1)
  np.testing.assert_array_equal(updates["dense"]["bias"], 0.0)


def test_max_norm_holds_after_every_step():
  data = load_digits(seed=0)
  model = make_mlp(num_outputs=10, hidden_sizes=(32,))
  c = 1.0
  tx = optax.chain(sgd(0.5), max_norm(c))  # a large rate: the unconstrained columns would grow past c
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=data.train.x[:1])
  step = jax.jit(make_train_step(classification_objective(model.apply), tx))
  unconstrained_state = create_train_state(model, sgd(0.5), rng=jax.random.PRNGKey(0), sample_x=data.train.x[:1])
  free_step = jax.jit(make_train_step(classification_objective(model.apply), sgd(0.5)))
  for i in range(40):
    batch = {"x": data.train.x[i * 30:(i + 1) * 30], "y": data.train.y[i * 30:(i + 1) * 30]}
    state, _ = step(state, batch)
    unconstrained_state, _ = free_step(unconstrained_state, batch)
    for layer in ("dense_0", "output"):
      norms = np.linalg.norm(np.asarray(state.params[layer]["kernel"], np.float64), axis=0)
      assert norms.max() <= c * (1 + 1e-6), (i, layer, norms.max())
  free = np.linalg.norm(np.asarray(unconstrained_state.params["output"]["kernel"]), axis=0)
  assert free.max() > 1.5 * c  # the constraint was active
  # Biases are not constrained.
  assert np.abs(np.asarray(state.params["output"]["bias"])).max() > 0


def test_max_norm_projects_only_the_long_columns():
  kernel = jnp.asarray([[3.0, 0.3], [4.0, 0.4]])  # column norms 5 and 0.5
  tx = max_norm(2.0)
  params = {"k": {"kernel": kernel}}
  updates, _ = tx.update({"k": {"kernel": jnp.zeros((2, 2))}}, tx.init(params), params)
  new = np.asarray(optax.apply_updates(params, updates)["k"]["kernel"])
  np.testing.assert_allclose(new[:, 0], [1.2, 1.6], rtol=1e-6)
  np.testing.assert_allclose(new[:, 1], [0.3, 0.4], rtol=1e-6)


@pytest.mark.parametrize("factory", [lambda: prox_l1(0.1, learning_rate=0.1), lambda: max_norm(1.0)])
def test_projections_need_the_params(factory):
  tx = factory()
  params = {"w": {"kernel": jnp.ones((2, 2))}}
  with pytest.raises(ValueError, match="needs the parameters"):
    tx.update(params, tx.init(params))
