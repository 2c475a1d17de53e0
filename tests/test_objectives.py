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
  np.testing.assert_allclose(aux.metrics["accuracy"], np.mean(z.argmax(-1) == y))


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
  assert set(aux.metrics) == {"loss"}


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


def _smoothed_nll(logits, labels, eps):
  """NumPy: cross-entropy against 1 - eps on the label and eps/(K-1) elsewhere (the book's form)."""
  logits = np.asarray(logits, np.float64)
  log_p = logits - logits.max(1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
  k = logits.shape[1]
  targets = np.full(logits.shape, eps / (k - 1))
  targets[np.arange(len(labels)), labels] = 1 - eps
  return -(targets * log_p).sum(1).mean()


def test_label_smoothing_on_the_multitask_objective_smooths_every_task_with_its_own_classes(rng):
  from jaxreg.models import make_multitask_mlp
  from jaxreg.regularizers import label_smoothing
  from jaxreg.train import multitask_objective

  model = make_multitask_mlp(num_outputs=10, tasks={"label": 1.0, "parity": 0.5}, trunk_sizes=(16,))
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 8)))["params"]
  batch = {"x": rng.normal(size=(12, 8)).astype(np.float32), "y": rng.integers(0, 10, size=12)}
  objective = label_smoothing(0.2)(multitask_objective(model.apply, {"label": 1.0, "parity": 0.5}))
  loss, aux = jax.jit(lambda p, b: objective(p, b, Context(rng=None, model_state={}, train=True)))(params, batch)
  outputs, _ = model.apply({"params": params}, batch["x"], train=False)
  label, parity = _smoothed_nll(outputs["label"], batch["y"], 0.2), _smoothed_nll(outputs["parity"], batch["y"] % 2, 0.2)
  np.testing.assert_allclose(aux.metrics["label_loss"], label, rtol=1e-5)
  np.testing.assert_allclose(aux.metrics["parity_loss"], parity, rtol=1e-5)  # 2 classes: 0.8 and 0.2
  np.testing.assert_allclose(loss, label + 0.5 * parity, rtol=1e-5)
  evaluate = jax.jit(lambda objective, p, b: objective(p, b, Context(rng=None, model_state={}, train=False))[0],
                     static_argnums=0)
  eval_loss = evaluate(objective, params, batch)
  plain = evaluate(multitask_objective(model.apply, {"label": 1.0, "parity": 0.5}), params, batch)
  np.testing.assert_allclose(eval_loss, plain)  # evaluation keeps the hard labels


def _mse(params, batch):
  return jnp.mean((batch["x"] @ params["w"] - batch["y"]) ** 2)


def test_a_plain_loss_takes_every_penalty():
  from jaxreg.regularizers import l2
  from jaxreg.train import from_loss

  params = {"w": jnp.array([1.0, -2.0]), "bias": jnp.array([5.0])}
  batch = {"x": jnp.array([[1.0, 0.0], [0.0, 1.0]]), "y": jnp.array([0.0, 0.0])}
  ctx = Context(rng=None, model_state={"keep": 1}, train=True)
  loss, aux = l2(0.5)(from_loss(_mse))(params, batch, ctx)
  np.testing.assert_allclose(loss, 2.5 + 0.25 * 5.0)  # the bias is not penalized
  np.testing.assert_allclose(aux.metrics["loss"], 2.5)
  np.testing.assert_allclose(aux.metrics["l2_penalty"], 1.25)
  assert aux.model_state == {"keep": 1}
  grads = jax.grad(lambda p: l2(0.5)(from_loss(_mse))(p, batch, ctx)[0])(params)
  np.testing.assert_allclose(grads["w"], [1.0 + 0.5, -2.0 - 1.0])


def test_a_plain_loss_with_a_key_and_metrics():
  from jaxreg.train import from_loss

  def noisy(params, batch, rng):
    noise = jax.random.normal(rng, ()) if rng is not None else 0.0
    return _mse(params, batch) + noise, {"noise": noise}

  objective = from_loss(noisy, takes_rng=True, has_aux=True)
  params, batch = {"w": jnp.zeros(2)}, {"x": jnp.ones((2, 2)), "y": jnp.zeros(2)}
  key = jax.random.PRNGKey(3)
  loss, aux = objective(params, batch, Context(rng=key, model_state={}, train=True))
  np.testing.assert_allclose(loss, jax.random.normal(key, ()))
  assert set(aux.metrics) == {"loss", "noise"}


@pytest.mark.parametrize("objective_kind", ["plain loss", "regression"])
def test_label_smoothing_refuses_an_objective_that_would_ignore_it(objective_kind):
  from jaxreg.regularizers import label_smoothing
  from jaxreg.train import from_loss

  if objective_kind == "plain loss":
    objective, params = from_loss(_mse), {"w": jnp.zeros(2)}
  else:
    objective, params = regression_objective(lambda v, x, train, rng: (x @ v["params"]["w"][:, None], {})), {
        "w": jnp.zeros(2)}
  batch = {"x": jnp.ones((2, 2)), "y": jnp.zeros(2)}
  with pytest.raises(ValueError, match="label_smoothing needs a classification objective .* would train unsmoothed"):
    label_smoothing(0.1)(objective)(params, batch, Context(rng=None, model_state={}, train=True))


def test_label_smoothing_checks_a_given_class_count(rng):
  from jaxreg.regularizers import label_smoothing

  apply = lambda variables, x, train, rng: (x @ variables["params"]["w"], {})  # noqa: E731
  params = {"w": jnp.zeros((3, 4))}
  batch = {"x": jnp.ones((2, 3)), "y": jnp.array([0, 1])}
  with pytest.raises(ValueError, match="num_classes=10, but the model's logits have 4 classes"):
    label_smoothing(0.1, num_classes=10)(classification_objective(apply))(
        params, batch, Context(rng=None, model_state={}, train=True))
