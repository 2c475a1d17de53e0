"""The lecture notes' optimizers against NumPy implementations written from the pseudocode (Wang 2023, 8.1-8.7).

Each runs 100 steps on a random non-quadratic problem with a learning rate that
changes every step, in float64, and must match to 1e-6 relative. The Nesterov
variants are compared on the sequence of points where gradients are evaluated.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.errors import ConfigError
from jaxreg.optim import transforms as T

STEPS = 100
DIM = 6


def _problem(seed=0):
  g = np.random.default_rng(seed)
  a = g.normal(size=(DIM, DIM))
  hessian = a @ a.T / DIM + 0.1 * np.eye(DIM)
  b = g.normal(size=DIM)
  theta0 = g.normal(size=DIM)

  def grad_np(theta):  # L = 0.5 t'Ht + b't + 0.25 sum t^4
    return hessian @ theta + b + theta**3

  def grad_jax(theta):
    return jnp.asarray(hessian) @ theta + jnp.asarray(b) + theta**3

  return theta0, grad_np, grad_jax


def lr_at(k):
  """A learning rate that changes at every step (exponential decay with a wiggle)."""
  return 0.05 * 0.98**k * (1.0 + 0.3 * np.sin(k))


def lr_schedule(count):
  return 0.05 * 0.98**count * (1.0 + 0.3 * jnp.sin(count))


# --- NumPy, line by line from the lecture notes' pseudocode ---------------------------------

def np_sgd(theta, grad, steps):
  points = []
  for k in range(steps):
    points.append(theta.copy())
    theta = theta - lr_at(k) * grad(theta)
  return points, theta


def np_momentum(theta, grad, steps, alpha=0.9):
  v, points = np.zeros_like(theta), []
  for k in range(steps):
    points.append(theta.copy())
    v = alpha * v - lr_at(k) * grad(theta)
    theta = theta + v
  return points, theta


def np_momentum_optax_form(theta, grad, steps, alpha=0.9):
  v, points = np.zeros_like(theta), []
  for k in range(steps):
    points.append(theta.copy())
    v = alpha * v + grad(theta)
    theta = theta - lr_at(k) * v
  return points, theta


def np_nesterov(theta, grad, steps, alpha=0.9):
  """Algorithm 3: the gradient at theta~ = theta + alpha v. Returns the theta~ sequence."""
  v, points = np.zeros_like(theta), []
  for k in range(steps):
    theta_interim = theta + alpha * v
    points.append(theta_interim.copy())
    v = alpha * v - lr_at(k) * grad(theta_interim)
    theta = theta + v
  return points, theta


def np_adagrad(theta, grad, steps, delta=1e-7):
  r, points = np.zeros_like(theta), []
  for k in range(steps):
    points.append(theta.copy())
    g = grad(theta)
    r = r + g * g
    theta = theta - lr_at(k) / (delta + np.sqrt(r)) * g  # descent: the book's sign (see adagrad's docstring)
  return points, theta


def np_rmsprop(theta, grad, steps, rho=0.9, delta=1e-6, inside=True):
  r, points = np.zeros_like(theta), []
  for k in range(steps):
    points.append(theta.copy())
    g = grad(theta)
    r = rho * r + (1 - rho) * g * g
    scale = 1 / np.sqrt(delta + r) if inside else 1 / (delta + np.sqrt(r))
    theta = theta - lr_at(k) * scale * g
  return points, theta


def np_rmsprop_nesterov(theta, grad, steps, rho=0.9, alpha=0.9, delta=1e-10):
  r, v, points = np.zeros_like(theta), np.zeros_like(theta), []
  for k in range(steps):
    theta_interim = theta + alpha * v
    points.append(theta_interim.copy())
    g = grad(theta_interim)
    r = rho * r + (1 - rho) * g * g
    v = alpha * v - lr_at(k) / np.sqrt(r + delta) * g
    theta = theta + v
  return points, theta


def np_adam(theta, grad, steps, rho1=0.9, rho2=0.999, delta=1e-8):
  s, r, t, points = np.zeros_like(theta), np.zeros_like(theta), 0, []
  for k in range(steps):
    points.append(theta.copy())
    g = grad(theta)
    t += 1
    s = rho1 * s + (1 - rho1) * g
    r = rho2 * r + (1 - rho2) * g * g
    s_hat, r_hat = s / (1 - rho1**t), r / (1 - rho2**t)
    theta = theta - lr_at(k) * s_hat / (np.sqrt(r_hat) + delta)
  return points, theta


def assert_relative(actual, expected, rtol=1e-6):
  """Norm-wise relative error of each point (row): ||a - b|| / ||b|| <= rtol."""
  actual, expected = np.atleast_2d(np.asarray(actual)), np.atleast_2d(np.asarray(expected))
  errors = np.linalg.norm(actual - expected, axis=-1) / np.linalg.norm(expected, axis=-1)
  assert np.all(errors <= rtol), f"max relative error {errors.max():.2e} at step {int(errors.argmax())}"


def _run_jax(tx, theta0, grad_jax, steps):
  params = jnp.asarray(theta0)
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    updates, state = tx.update(grad_jax(params), state, params)
    return optax.apply_updates(params, updates), state

  points = []
  for _ in range(steps):
    points.append(np.asarray(params))
    params, state = step(params, state)
  return points, params, state


CASES = {
    "sgd (8.1/8.2)": (lambda: T.sgd(lr_schedule), np_sgd),
    "momentum": (lambda: T.momentum(lr_schedule, 0.9), np_momentum),
    "momentum, optax form": (lambda: T.momentum(lr_schedule, 0.9, form="optax"), np_momentum_optax_form),
    "nesterov (8.3)": (lambda: T.nesterov(lr_schedule, 0.9), np_nesterov),
    "adagrad (8.4)": (lambda: T.adagrad(lr_schedule), np_adagrad),
    "rmsprop (8.5)": (lambda: T.rmsprop(lr_schedule), np_rmsprop),
    "rmsprop, delta outside": (
        lambda: T.rmsprop(lr_schedule, delta_inside_sqrt=False),
        lambda th, g, n: np_rmsprop(th, g, n, inside=False),
    ),
    "rmsprop_nesterov (8.6)": (lambda: T.rmsprop_nesterov(lr_schedule), np_rmsprop_nesterov),
    "adam (8.7)": (lambda: T.adam(lr_schedule), np_adam),
}


@pytest.mark.parametrize("name", list(CASES))
def test_optimizer_matches_the_seed_pseudocode(name):
  make_tx, reference = CASES[name]
  theta0, grad_np, grad_jax = _problem()
  expected_points, expected_final = reference(theta0.copy(), grad_np, STEPS)
  with jax.enable_x64(True):
    points, final, _ = _run_jax(make_tx(), theta0, grad_jax, STEPS)
  # Every point where a gradient was evaluated (for Nesterov: theta~ = theta + alpha v).
  assert_relative(points, expected_points)
  if "nesterov" not in name:
    assert_relative(final, expected_final)
  # The run moved: a test on a stuck optimizer would prove nothing.
  assert np.linalg.norm(expected_points[-1] - theta0) > 0.1


@pytest.mark.parametrize("make_tx, reference", [
    (lambda: T.nesterov(lr_schedule, 0.9), np_nesterov),
    (lambda: T.rmsprop_nesterov(lr_schedule, momentum=0.9), np_rmsprop_nesterov),
])
def test_nesterov_theta_recovers_the_seed_parameters(make_tx, reference):
  theta0, grad_np, grad_jax = _problem(1)
  _, expected_theta = reference(theta0.copy(), grad_np, STEPS)
  with jax.enable_x64(True):
    _, interim, state = _run_jax(make_tx(), theta0, grad_jax, STEPS)
    theta = T.nesterov_theta(interim, state, 0.9)
  assert_relative(theta, expected_theta)
  with pytest.raises(ValueError, match="holds 0 velocities.*not a Nesterov optimizer"):
    T.nesterov_theta(interim, T.adam(1e-3).init(interim), 0.9)


def test_momentum_forms_agree_at_a_constant_rate_and_differ_when_it_changes():
  theta0, grad_np, _ = _problem(2)
  a = np_momentum(theta0, grad_np, 20)[1]
  b = np_momentum_optax_form(theta0, grad_np, 20)[1]
  assert not np.allclose(a, b)  # lr_at changes every step
  with jax.enable_x64(True):
    seed_form = _run_jax(T.momentum(0.01, 0.9), theta0, _problem(2)[2], 20)[1]
    optax_form = _run_jax(T.momentum(0.01, 0.9, form="optax"), theta0, _problem(2)[2], 20)[1]
  np.testing.assert_allclose(seed_form, optax_form, rtol=1e-9)


def test_adagrad_optax_form_is_optax_adagrad():
  theta0, _, grad_jax = _problem(3)
  with jax.enable_x64(True):
    ours = _run_jax(T.adagrad(0.1, delta=1e-7, form="optax"), theta0, grad_jax, 50)[1]
    theirs = _run_jax(optax.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-7), theta0, grad_jax, 50)[1]
  np.testing.assert_allclose(ours, theirs, rtol=1e-9)


def test_adagrad_matches_pytorch_form():
  """PyTorch's Adagrad (r from 0, eps outside the root) is the notes' form; checked in NumPy terms."""
  theta0, grad_np, grad_jax = _problem(4)
  with jax.enable_x64(True):
    ours = _run_jax(T.adagrad(0.1, delta=1e-10), theta0, grad_jax, 30)[1]
  theta, r = theta0.copy(), np.zeros(DIM)
  for _ in range(30):  # torch.optim.Adagrad's update with lr_decay=0, initial_accumulator_value=0
    g = grad_np(theta)
    r += g * g
    theta = theta - 0.1 * g / (np.sqrt(r) + 1e-10)
  np.testing.assert_allclose(ours, theta, rtol=1e-9)


@pytest.mark.parametrize("call, error, message", [
    (lambda: T.momentum(0.1, momentum=1.0), ValueError, "^momentum must be in \\[0, 1\\)"),
    (lambda: T.momentum(0.1, form="pytorch"), ValueError, "^form must be one of book, optax"),
    (lambda: T.adagrad(0.1, delta=0.0), ValueError, "^delta must be a positive number"),
    (lambda: T.rmsprop(0.1, decay=1.5), ValueError, "^decay must be in \\[0, 1\\)"),
    (lambda: T.adam(0.1, b2=1.0), ValueError, "^b2 must be in \\[0, 1\\), got 1.0"),
    (lambda: T.adam(0.1, b1="0.9"), TypeError, "^b1 must be a number"),
])
def test_invalid_arguments(call, error, message):
  """The library names the argument and knows nothing of configs (a notebook has none)."""
  with pytest.raises(error, match=message) as raised:
    call()
  assert not isinstance(raised.value, ConfigError)


def test_the_factory_adds_the_config_path():
  from jaxreg.optim import make_optimizer

  with pytest.raises(ConfigError, match="^optimizer.b2 must be in \\[0, 1\\), got 1.0"):
    make_optimizer("adam", learning_rate=0.1, b2=1.0)
  with pytest.raises(ConfigError, match="^optimizer.form must be one of book, optax"):
    make_optimizer("momentum", learning_rate=0.1, form="pytorch")


# Every optimizer with every numeric hyperparameter injected (optax.inject_hyperparams).
INJECTED = {
    "sgd": (T.sgd, dict(learning_rate=0.1)),
    "momentum": (T.momentum, dict(learning_rate=0.05, momentum=0.8)),
    "momentum-optax": (functools.partial(T.momentum, form="optax"), dict(learning_rate=0.05, momentum=0.8)),
    "nesterov": (T.nesterov, dict(learning_rate=0.05, momentum=0.8)),
    "adagrad": (T.adagrad, dict(learning_rate=0.5, delta=1e-7)),
    "adagrad-optax": (functools.partial(T.adagrad, form="optax"), dict(learning_rate=0.5, delta=1e-7)),
    "rmsprop": (T.rmsprop, dict(learning_rate=0.01, decay=0.9, delta=1e-6)),
    "rmsprop_nesterov": (T.rmsprop_nesterov, dict(learning_rate=0.005, decay=0.9, momentum=0.5, delta=1e-10)),
    "adam": (T.adam, dict(learning_rate=0.05, b1=0.9, b2=0.999, delta=1e-8)),
}


@pytest.mark.parametrize("name", list(INJECTED))
def test_every_hyperparameter_can_be_injected_under_jit(name):
  """inject_hyperparams with all numeric hyperparameters as arrays, traced under jit, solves a quadratic
  exactly as the optimizer built with numbers does."""
  factory, hyperparams = INJECTED[name]
  curvature, target = jnp.asarray([1.0, 4.0, 0.25]), jnp.asarray([1.0, -2.0, 0.5])
  grad = lambda w: curvature * (w - target)  # noqa: E731  of 0.5 sum(c (w - target)^2)

  def solve(tx):
    @jax.jit
    def run(w):
      def step(carry, _):
        w, state = carry
        updates, state = tx.update(grad(w), state, w)
        return (optax.apply_updates(w, updates), state), None
      return jax.lax.scan(step, (w, tx.init(w)), None, length=400)[0][0]
    return run(jnp.zeros(3))

  injected = optax.inject_hyperparams(factory)(**hyperparams)
  assert set(injected.init(jnp.zeros(3)).hyperparams) == set(hyperparams)
  plain = solve(factory(**hyperparams))
  np.testing.assert_allclose(solve(injected), plain, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(solve(injected), target, atol=0.05)


@pytest.mark.parametrize("name", list(INJECTED))
def test_update_accepts_extra_keyword_arguments(name):
  """optax's chains pass extra arguments (e.g. ``value=`` for reduce_on_plateau) to every transform."""
  factory, hyperparams = INJECTED[name]
  tx = factory(**hyperparams)
  params = {"w": jnp.ones(3)}
  plain, _ = tx.update(params, tx.init(params), params)
  extra, _ = tx.update(params, tx.init(params), params, value=jnp.asarray(1.0))
  np.testing.assert_array_equal(plain["w"], extra["w"])
  chained = optax.chain(tx, optax.contrib.reduce_on_plateau())
  chained.update(params, chained.init(params), params, value=jnp.asarray(1.0))


def test_nesterov_runs_are_evaluated_at_theta_not_at_the_interim_point(rng):
  from jaxreg.models import make_mlp
  from jaxreg.optim import make_evaluation_params, make_optimizer
  from jaxreg.train import Context, classification_objective, create_train_state, make_eval_step, make_train_step

  model = make_mlp(num_outputs=3, hidden_sizes=(8,))
  objective = classification_objective(model.apply)
  tx = make_optimizer("nesterov", learning_rate=0.5, momentum=0.9)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 4)))
  batch = {"x": rng.normal(size=(16, 4)).astype(np.float32), "y": rng.integers(0, 3, size=16)}
  step = jax.jit(make_train_step(objective, tx))
  for _ in range(5):
    state, _ = step(state, batch)
  theta = T.nesterov_theta(state.params, state.opt_state, 0.9)
  at_theta = objective(theta, batch, Context(None, {}, False))[1].metrics["loss"]
  at_interim = objective(state.params, batch, Context(None, {}, False))[1].metrics["loss"]
  assert abs(float(at_theta) - float(at_interim)) > 1e-4  # the two points differ
  evaluated = make_eval_step(objective, params_fn=make_evaluation_params("nesterov", 0.5, momentum=0.9))(state, batch)
  np.testing.assert_allclose(evaluated["loss"], at_theta, rtol=1e-6)
  assert make_evaluation_params("adam", 1e-3) is None


def test_form_seed_from_older_configs_is_the_book_form():
  """Configs saved by jaxreg 0.1 say form='seed' for what is now form='book'."""
  from jaxreg.regularizers.targets import smooth_labels

  grads = {"w": jnp.asarray([0.5, -1.0, 2.0])}
  params = {"w": jnp.zeros(3)}
  for make in (lambda form: T.momentum(0.1, 0.9, form=form), lambda form: T.adagrad(0.1, form=form)):
    old, new = make("seed"), make("book")
    state_old, state_new = old.init(params), new.init(params)
    for _ in range(3):
      u_old, state_old = old.update(grads, state_old, params)
      u_new, state_new = new.update(grads, state_new, params)
      np.testing.assert_array_equal(u_old["w"], u_new["w"])
  labels = jnp.asarray([0, 2])
  np.testing.assert_array_equal(smooth_labels(labels, 4, 0.3, form="seed"), smooth_labels(labels, 4, 0.3, form="book"))


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "rmsprop_nesterov", "adam"])
@pytest.mark.parametrize("rate", [0.0, -0.1, float("inf"), float("nan")])
def test_a_learning_rate_that_is_not_positive_is_refused(name, rate):
  """A negative rate would climb the loss; the library says so (and how to ask for ascent) rather than train uphill."""
  import jaxreg.optim

  with pytest.raises(ValueError, match=f"^learning_rate must be a positive, finite number, got {rate} "
                                       r"\(for gradient ascent, negate the objective or chain optax.scale\(-1.0\)"):
    getattr(jaxreg.optim, name)(rate)
