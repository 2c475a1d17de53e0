"""FGSM, PGD and adversarial training, against NumPy and closed forms (Goodfellow et al. 2015; Madry et al. 2018)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.errors import ConfigError
from jaxreg.models import make_model
from jaxreg.regularizers import adversarial, fgsm, l2, make_regularizers, pgd
from jaxreg.train import Context, classification_objective, from_loss

EPS = 0.1


def _softmax_regression(seed=0, n=32, d=12, k=4):
  """A linear softmax model with its parameters, inputs in (0, 1) and labels."""
  g = np.random.default_rng(seed)
  w = g.normal(size=(d, k)).astype(np.float32)
  b = g.normal(size=k).astype(np.float32) * 0.1
  x = g.uniform(0.05, 0.95, size=(n, d)).astype(np.float32)
  y = g.integers(0, k, size=n).astype(np.int32)
  return {"w": w, "b": b}, x, y


def _mean_nll(params, x, y):
  logits = x @ params["w"] + params["b"]
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def _numpy_input_gradient(params, x, y):
  """d/dx of the mean cross-entropy of a linear softmax model: (p - onehot(y)) W^T / n, in NumPy."""
  logits = x.astype(np.float64) @ params["w"] + params["b"]
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  p[np.arange(len(y)), y] -= 1.0
  return p @ params["w"].T.astype(np.float64) / len(y)


def test_fgsm_moves_every_feature_by_eps_and_equals_numpy_from_the_same_gradient():
  params, x, y = _softmax_regression()
  x_adv = np.asarray(fgsm(lambda v: _mean_nll(params, v, y), x, EPS))
  gradient = _numpy_input_gradient(params, x, y)
  assert np.min(np.abs(gradient)) > 1e-6  # every sign is well defined
  np.testing.assert_allclose(x_adv, x + EPS * np.sign(gradient), rtol=0, atol=1e-7)
  np.testing.assert_allclose(np.max(np.abs(x_adv - x), axis=1), EPS, rtol=1e-6)  # ||x_adv - x||_inf == eps
  np.testing.assert_allclose(np.abs(x_adv - x), EPS, rtol=1e-5)  # every feature moved by eps


def test_fgsm_clips_after_the_step():
  params, x, y = _softmax_regression()
  x[:, 0], x[:, 1] = 0.02, 0.97  # near the edges of [0, 1]
  x_adv = np.asarray(fgsm(lambda v: _mean_nll(params, v, y), x, EPS, clip=(0.0, 1.0)))
  expected = np.clip(x + EPS * np.sign(_numpy_input_gradient(params, x, y)), 0.0, 1.0)
  np.testing.assert_allclose(x_adv, expected, atol=1e-7)
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
  assert np.any(x_adv == 0.0) and np.any(x_adv == 1.0)  # the clip did act
  assert np.max(np.abs(x_adv - x)) <= EPS + 1e-7


@functools.lru_cache(maxsize=1)
def _trained_mlp():
  """A digits MLP trained for 300 Adam steps (a few seconds): model, variables and the test inputs."""
  from jaxreg.data import make_dataset

  data = make_dataset("digits")
  model = make_model("mlp", num_outputs=10, hidden_sizes=(64,))
  variables = model.init(jax.random.PRNGKey(0), data.train.x[:1])
  tx = optax.adam(3e-3)
  train_x, train_y = jnp.asarray(data.train.x), jnp.asarray(data.train.y)  # device arrays: indexed in the scan

  def loss(params, x, y):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": params}, x, train=False)[0], y))

  @jax.jit
  def train(params):
    def step(carry, i):
      params, opt_state = carry
      idx = jax.random.choice(jax.random.PRNGKey(i), len(data.train.y), (64,))
      grads = jax.grad(loss)(params, train_x[idx], train_y[idx])
      updates, opt_state = tx.update(grads, opt_state)
      return (optax.apply_updates(params, updates), opt_state), None

    return jax.lax.scan(step, (params, tx.init(params)), jnp.arange(300))[0][0]

  params = train(variables["params"])
  return model, params, loss, data.test.x[:200], data.test.y[:200]


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_fgsm_raises_the_loss_of_a_trained_model_and_pgd_is_at_least_as_strong():
  model, params, loss, x, y = _trained_mlp()
  loss_at = lambda v: loss(params, v, y)  # noqa: E731
  accuracy = lambda v: float(np.mean(np.argmax(model.apply({"params": params}, v, train=False)[0], -1) == y))  # noqa: E731
  x_fgsm = fgsm(loss_at, x, EPS, clip=(0.0, 1.0))
  x_pgd = pgd(loss_at, x, EPS, steps=10, key=jax.random.PRNGKey(0), clip=(0.0, 1.0))
  clean, after_fgsm, after_pgd = float(loss_at(x)), float(loss_at(x_fgsm)), float(loss_at(x_pgd))
  assert accuracy(x) > 0.9
  assert after_fgsm > clean + 0.5
  assert after_pgd >= after_fgsm
  assert accuracy(x_pgd) <= accuracy(x_fgsm) < accuracy(x)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_pgd_stays_inside_the_ball_and_the_valid_range():
  model, params, loss, x, y = _trained_mlp()
  for key in (None, jax.random.PRNGKey(3)):
    x_adv = np.asarray(pgd(lambda v: loss(params, v, y), x, EPS, steps=7, step_size=0.05, key=key, clip=(0.0, 1.0)))
    assert np.max(np.abs(x_adv - x)) <= EPS + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert np.max(np.abs(x_adv - x)) > 0.9 * EPS  # it went to the edge of the ball somewhere


def test_pgd_with_one_step_of_eps_from_x_is_fgsm():
  params, x, y = _softmax_regression(seed=2)
  loss_at = lambda v: _mean_nll(params, v, y)  # noqa: E731
  np.testing.assert_allclose(pgd(loss_at, x, EPS, steps=1, step_size=EPS), fgsm(loss_at, x, EPS), atol=1e-7)


def _linear_objective():
  def loss(params, batch):
    return _mean_nll(params, batch["x"], batch["y"])

  return from_loss(loss)


def test_adversarial_objective_is_the_mix_and_its_gradient_treats_x_adv_as_a_constant():
  params, x, y = _softmax_regression(seed=4)
  batch = {"x": x, "y": y}
  ctx = Context(rng=jax.random.PRNGKey(0), model_state={}, train=True)
  alpha = 0.3
  objective = adversarial(EPS, alpha)(_linear_objective())
  (value, aux), grads = jax.value_and_grad(objective, has_aux=True)(params, batch, ctx)
  x_adv = (x + EPS * np.sign(_numpy_input_gradient(params, x, y))).astype(np.float32)
  expected = alpha * _mean_nll(params, x, y) + (1 - alpha) * _mean_nll(params, x_adv, y)
  np.testing.assert_allclose(value, expected, rtol=1e-6)
  np.testing.assert_allclose(aux.metrics["adversarial_loss"], _mean_nll(params, x_adv, y), rtol=1e-6)
  np.testing.assert_allclose(aux.metrics["clean_loss"], _mean_nll(params, x, y), rtol=1e-6)
  expected_grads = jax.grad(lambda p: alpha * _mean_nll(p, x, y) + (1 - alpha) * _mean_nll(p, x_adv, y))(params)
  for name in params:
    np.testing.assert_allclose(grads[name], expected_grads[name], rtol=1e-5, atol=1e-7)


def test_adversarial_is_off_in_evaluation_and_at_eps_zero():
  params, x, y = _softmax_regression()
  batch = {"x": x, "y": y}
  clean = float(_mean_nll(params, x, y))
  evaluation = Context(rng=None, model_state={}, train=False)
  assert float(adversarial(EPS)(_linear_objective())(params, batch, evaluation)[0]) == pytest.approx(clean)
  training = Context(rng=jax.random.PRNGKey(0), model_state={}, train=True)
  assert float(adversarial(0.0)(_linear_objective())(params, batch, training)[0]) == pytest.approx(clean)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_adversarial_pgd_training_on_a_model_with_dropout_reports_its_parts():
  model = make_model("mlp", num_outputs=4, hidden_sizes=(16,), dropout_rate=0.3)
  _, x, y = _softmax_regression()
  params = model.init(jax.random.PRNGKey(0), x[:1])["params"]
  objective = adversarial(EPS, 0.5, attack="pgd", steps=3, clip=(0.0, 1.0))(classification_objective(model.apply))
  ctx = Context(rng=jax.random.PRNGKey(1), model_state={}, train=True)
  loss, aux = jax.jit(lambda p, b: objective(p, b, ctx))(params, {"x": x, "y": y})
  m = aux.metrics
  np.testing.assert_allclose(loss, 0.5 * m["clean_loss"] + 0.5 * m["adversarial_loss"], rtol=1e-6)
  assert m["adversarial_loss"] > m["clean_loss"]
  assert {"accuracy", "adversarial_accuracy"} <= set(m)
  with pytest.raises(ValueError, match="needs a random key"):
    objective(params, {"x": x, "y": y}, ctx._replace(rng=None))


def test_config_puts_adversarial_inside_the_penalties():
  params, x, y = _softmax_regression()
  batch = {"x": x, "y": y}
  ctx = Context(rng=jax.random.PRNGKey(0), model_state={}, train=True)
  regs = make_regularizers(l2={"alpha": 0.01}, adversarial={"eps": EPS, "alpha": 0.5})
  assert regs.names == ("adversarial", "l2")
  by_config = regs.objective(_linear_objective())(params, batch, ctx)
  by_hand = l2(0.01)(adversarial(EPS, 0.5)(_linear_objective()))(params, batch, ctx)
  np.testing.assert_allclose(by_config[0], by_hand[0], rtol=1e-7)
  np.testing.assert_allclose(by_config[1].metrics["l2_penalty"], by_hand[1].metrics["l2_penalty"], rtol=1e-7)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"eps": -0.1}, "eps must be a finite number >= 0"),
    ({"eps": 0.1, "alpha": 1.5}, r"alpha, the clean loss's weight, must be a number in \[0, 1\]"),
    ({"eps": 0.1, "attack": "cw"}, "attack must be one of fgsm, pgd"),
    ({"eps": 0.1, "attack": "pgd", "steps": 0}, "steps must be an integer >= 1"),
    ({"eps": 0.1, "clip": (1.0, 0.0)}, r"clip must be \(low, high\) with low < high"),
    ({"eps": 0.1, "step_size": 0.0}, "step_size must be a finite number > 0"),
])
def test_bad_arguments_are_named(kwargs, message):
  with pytest.raises(ValueError, match=message):
    adversarial(**kwargs)
  with pytest.raises(ConfigError, match=r"regularizers.adversarial\b.*" + message):
    make_regularizers(adversarial=kwargs)
