import jax
import optax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.train.objectives import Aux
from jaxreg.errors import ConfigError
from jaxreg.models import make_mlp
from jaxreg.regularizers import chain, exclude_by_name, l2, make_regularizers
from jaxreg.train import Context, classification_objective


@pytest.fixture
def mlp_setup(rng):
  model = make_mlp(num_outputs=3, hidden_sizes=(6,))
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))["params"]
  batch = {"x": rng.normal(size=(10, 4)).astype(np.float32), "y": rng.integers(0, 3, size=10)}
  return model, params, batch


def test_l2_penalty_is_half_alpha_squared_norm_of_kernels_only(mlp_setup):
  model, params, batch = mlp_setup
  alpha = 0.3
  base = classification_objective(model.apply)
  ctx = Context(None, {}, False)
  base_loss, _ = base(params, batch, ctx)
  loss, aux = l2(alpha)(base)(params, batch, ctx)
  kernels = [np.asarray(params[layer]["kernel"]) for layer in ("dense_0", "output")]
  expected = 0.5 * alpha * sum(np.sum(k**2) for k in kernels)
  np.testing.assert_allclose(aux.metrics["l2_penalty"], expected, rtol=1e-6)
  np.testing.assert_allclose(loss, base_loss + expected, rtol=1e-6)
  np.testing.assert_allclose(aux.metrics["loss"], base_loss, rtol=1e-6)  # data term reported alone


def test_l2_gradient_adds_alpha_w_to_kernels_and_nothing_to_biases(mlp_setup):
  model, params, batch = mlp_setup
  alpha = 0.05
  base = classification_objective(model.apply)
  ctx = Context(None, {}, False)
  g_base = jax.grad(lambda p: base(p, batch, ctx)[0])(params)
  g_l2 = jax.grad(lambda p: l2(alpha)(base)(p, batch, ctx)[0])(params)
  for layer in ("dense_0", "output"):
    np.testing.assert_allclose(
        g_l2[layer]["kernel"], g_base[layer]["kernel"] + alpha * params[layer]["kernel"], rtol=1e-5, atol=1e-7
    )
    np.testing.assert_array_equal(g_l2[layer]["bias"], g_base[layer]["bias"])


def test_l2_on_a_quadratic_reaches_the_closed_form(rng):
  """Wang 2023: with Hessian H = Q Lambda Q^T, the L2 optimum is Q (Lambda + alpha I)^-1 Lambda Q^T w*."""
  n, alpha = 5, 0.7
  a = rng.normal(size=(n, n))
  hessian = a @ a.T + 0.5 * np.eye(n)
  w_star = rng.normal(size=n)
  objective = lambda p, batch, ctx: (
      0.5 * (p["kernel"] - w_star) @ hessian @ (p["kernel"] - w_star), Aux({})
  )
  regularized = l2(alpha)(objective)
  grad = jax.jit(jax.grad(lambda p: regularized(p, None, None)[0]))
  params = {"kernel": jnp.zeros(n)}
  lr = 1.0 / (np.linalg.eigvalsh(hessian).max() + alpha)
  for _ in range(5000):
    params = jax.tree.map(lambda p, g: p - lr * g, params, grad(params))
  lam, q = np.linalg.eigh(hessian)
  expected = q @ np.diag(1.0 / (lam + alpha)) @ np.diag(lam) @ q.T @ w_star
  np.testing.assert_allclose(params["kernel"], expected, rtol=1e-4, atol=1e-5)


def test_masks_select_by_name_not_ndim():
  params = {"embed": {"kernel": jnp.ones(3)}, "norm": {"scale": jnp.ones(3)}, "dense": {"bias": jnp.ones(3)}}
  assert exclude_by_name()(params) == {"embed": {"kernel": True}, "norm": {"scale": False}, "dense": {"bias": False}}
  objective = lambda p, b, c: (jnp.zeros(()), Aux({}))
  loss, _ = l2(2.0)(objective)(params, None, None)
  np.testing.assert_allclose(loss, 3.0)  # only the 1-D kernel: 0.5 * 2 * 3
  loss, _ = l2(2.0, mask=lambda p: jax.tree.map(lambda _: True, p))(objective)(params, None, None)
  np.testing.assert_allclose(loss, 9.0)
  with pytest.raises(ValueError, match="mask must be a pytree of bools with the structure of the params"):
    l2(2.0, mask={"embed": {"kernel": True}})(objective)(params, None, None)


def test_chain_applies_in_order_like_optax():
  calls = []
  def tag(name):
    def transform(objective):
      def wrapped(p, b, c):
        calls.append(name)
        return objective(p, b, c)
      return wrapped
    return transform
  base = lambda p, b, c: (jnp.zeros(()), Aux({}))
  chain(tag("a"), tag("b"))(base)(None, None, None)
  assert calls == ["b", "a"]  # b wraps a: outermost runs first


def test_make_regularizers_from_config_sections():
  objective = lambda p, b, c: (jnp.zeros(()), Aux({}))
  loss, aux = make_regularizers(l2={"alpha": 1.0}).objective(objective)({"w": {"kernel": jnp.ones(4)}}, None, None)
  np.testing.assert_allclose(loss, 2.0)
  with pytest.raises(ConfigError, match="unknown regularizer 'l3'.*valid names: activation_l1, adversarial, elastic_net, l1, l2, label_smoothing"):
    make_regularizers(l3={"alpha": 1.0})
  with pytest.raises(ConfigError, match="regularizers.l2.beta.*valid keys: alpha, mask"):
    make_regularizers(l2={"beta": 1.0})
  with pytest.raises(ValueError, match="^alpha must be a finite number >= 0 or a schedule, got -1.0"):
    l2(-1.0)


def test_scheduled_alpha_follows_the_optimizer_step(mlp_setup):
  """Baskin et al. 2018's trick: lower the regularization coefficient near convergence."""
  from jaxreg.train import create_train_state, make_train_step

  model, params, batch = mlp_setup
  tx = optax.sgd(0.0)  # weights stay put, so only alpha changes the penalty
  transform = make_regularizers(
      steps_per_epoch=4, l2={"alpha": 0.2, "schedule": {"name": "exponential", "rate": 0.5, "unit": "epoch"}}
  ).objective
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=batch["x"][:1])
  step = jax.jit(make_train_step(transform(classification_objective(model.apply)), tx))
  sq_norm = sum(float(np.sum(np.square(state.params[layer]["kernel"]))) for layer in ("dense_0", "output"))
  for t in range(10):
    state, metrics = step(state, batch)
    expected_alpha = 0.2 * 0.5 ** (t // 4)  # the step's count t, in epochs of 4 steps
    np.testing.assert_allclose(metrics["l2_penalty"], 0.5 * expected_alpha * sq_norm, rtol=1e-5)


def test_scheduled_alpha_errors():
  with pytest.raises(ConfigError, match="regularizers.l2.schedule needs regularizers.l2.alpha"):
    make_regularizers(l2={"schedule": {"name": "exponential", "rate": 0.5}})
  with pytest.raises(ConfigError, match="regularizers.l2.schedule.name must be one of constant"):
    make_regularizers(l2={"alpha": 0.1, "schedule": {"name": "plateau"}})
  with pytest.raises(ConfigError, match="schedule 'linear' needs regularizers.l2.schedule.tau"):
    make_regularizers(l2={"alpha": 0.1, "schedule": {"name": "linear"}})
  with pytest.raises(ConfigError, match=r"regularizers.l2.schedule.rate must be in \(0, 1\]"):
    make_regularizers(l2={"alpha": 0.1, "schedule": {"name": "exponential", "rate": 2.0}})
  with pytest.raises(ConfigError, match="unknown key.*regularizers.l2.schedule.decay"):
    make_regularizers(l2={"alpha": 0.1, "schedule": {"name": "exponential", "decay": 0.5}})
