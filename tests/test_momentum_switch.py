"""Switching momentum off when the validation metric flat-lines (a trick of the lecture notes (Baskin et al. 2018)), against NumPy."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.config import load_config
from jaxreg.errors import ConfigError
from jaxreg.experiment import train_and_evaluate
from jaxreg.optim import make_evaluation_params, make_optimizer, momentum, momentum_off_on_plateau, observe
from jaxreg.optim.momentum_switch import injected_momentum, momentum_off_after


def reference_off_after(values, *, mode, patience, min_delta):
  """The evaluation (1-based) after which the notes' switch turns momentum off, or None."""
  best, bad = None, 0
  for i, v in enumerate(values, start=1):
    if best is None or (v < best - min_delta if mode == "min" else v > best + min_delta):
      best, bad = v, 0
    else:
      bad += 1
    if bad >= patience:
      return i
  return None


@pytest.mark.parametrize(
    "values, mode",
    [
        ([1.0, 0.8, 0.7, 0.69, 0.695, 0.689, 0.3, 0.2], "min"),  # flat-lines at evaluation 5
        ([-0.1, -0.5, -0.9, -0.91, -0.905, -0.92, -0.9], "min"),  # negative, lower is better
        ([0.5, 0.7, 0.9, 0.9, 0.91, 0.905, 0.99], "max"),  # accuracy-like, higher is better
        ([1.0, 0.5, 0.25, 0.12, 0.06], "min"),  # never flat-lines
    ],
)
def test_switch_evaluation_matches_numpy(values, mode):
  inner = optax.inject_hyperparams(momentum)(learning_rate=0.1, momentum=0.9)
  rule = momentum_off_on_plateau(inner, mode=mode, patience=2, min_delta=0.02)
  state = rule.init({"w": jnp.zeros(2)})
  record = jax.jit(lambda state, v: observe(rule, state, v))
  off_after = []
  for v in values:
    state = record(state, v)
    off_after.append(int(state.off_after))
    assert float(injected_momentum(state)) == (0.0 if state.off_after else pytest.approx(0.9))
  expected = reference_off_after(values, mode=mode, patience=2, min_delta=0.02)
  assert (off_after[-1] or None) == expected
  if expected is not None:  # once off, it stays off (the later improvements do not turn it on)
    assert off_after[expected - 1:] == [expected] * (len(values) - expected + 1)
    assert set(off_after[:expected - 1]) == {0}


def _numpy_momentum_run(grads, lr, alpha, switch_at):
  """Seed form v <- alpha*v - eps*g; theta <- theta + v, with alpha = 0 from update switch_at on."""
  theta, v, out = np.zeros_like(grads[0]), np.zeros_like(grads[0]), []
  for t, g in enumerate(grads):
    a = 0.0 if t >= switch_at else alpha
    v = a * v - lr * g
    theta = theta + v
    out.append(theta.copy())
  return out


def test_after_the_switch_momentum_is_plain_sgd(rng):
  grads = rng.normal(size=(12, 5)).astype(np.float32)
  tx = make_optimizer("momentum", 0.1, momentum=0.9, momentum_off={"monitor": "val_loss", "patience": 1})
  assert tx.monitors == ("val_loss",)
  params = {"w": jnp.zeros(5)}
  state = tx.init(params)
  thetas = []
  for t, g in enumerate(grads):
    if t == 5:  # two evaluations: the second is no better, so patience=1 switches momentum off
      state = tx.observe(tx.observe(state, {"val_loss": 1.0}), {"val_loss": 1.0})
      assert float(injected_momentum(state)) == 0.0 and momentum_off_after(state) == 2
    updates, state = tx.update({"w": jnp.asarray(g)}, state, params)
    params = jax.tree.map(jnp.add, params, updates)
    thetas.append(np.asarray(params["w"]))
  expected = _numpy_momentum_run(grads, 0.1, 0.9, switch_at=5)
  np.testing.assert_allclose(thetas, expected, rtol=1e-6, atol=1e-7)


def test_nesterov_evaluates_at_the_held_point_once_momentum_is_off():
  tx = make_optimizer("nesterov", 0.1, momentum=0.9, momentum_off={"patience": 1})
  params_fn = make_evaluation_params("nesterov", 0.1, momentum=0.9, momentum_off={"patience": 1})
  params = {"w": jnp.zeros(3)}
  state = tx.init(params)
  updates, state = tx.update({"w": jnp.ones(3)}, state, params)
  params = jax.tree.map(jnp.add, params, updates)
  # With momentum on, theta = theta~ - alpha*v differs from the held interim point ...
  assert not np.allclose(params_fn(params, state)["w"], params["w"])
  state = tx.observe(tx.observe(state, {"val_loss": 1.0}), {"val_loss": 1.0})
  # ... once it is off the method is plain SGD, whose iterate is the held point.
  np.testing.assert_array_equal(params_fn(params, state)["w"], params["w"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(name="adam", momentum_off={"patience": 2}), "needs an optimizer with momentum"),
        (dict(name="optax.sgd", momentum_off={"patience": 2}), "positive optimizer.momentum"),
        (dict(name="momentum", momentum_off={"patiense": 2}), "optimizer.momentum_off.patiense"),
        (dict(name="momentum", momentum_off={"patience": 0}), "positive integer"),
        (dict(name="momentum", momentum_off={"mode": "up"}), "'min' or 'max'"),
        (dict(name="momentum", momentum_off=3), "must be a mapping"),
    ],
)
def test_bad_switch_configs_are_refused(kwargs, message):
  with pytest.raises(ConfigError, match=message):
    make_optimizer(learning_rate=0.1, **kwargs)


def test_the_switch_needs_an_injected_momentum():
  with pytest.raises(ValueError, match="needs an inner optimizer with an injected momentum"):
    momentum_off_on_plateau(optax.sgd(0.1, momentum=0.9)).init({"w": jnp.zeros(2)})
  with pytest.raises(ValueError, match="^patience must be a positive integer, got 0$"):
    momentum_off_on_plateau(optax.sgd(0.1), patience=0)


def test_optax_sgd_with_momentum_can_be_switched_off():
  tx = make_optimizer("optax.sgd", 0.1, momentum=0.5, momentum_off={"patience": 1})
  assert float(injected_momentum(tx.init({"w": jnp.zeros(2)}))) == 0.5


@pytest.mark.slow
def test_switch_from_a_config_end_to_end(tmp_path):
  config, _ = load_config("digits_optimizers:momentum", [
      ("train.epochs", "12"), ("train.progress_bar", "False"), ("model.hidden_sizes", "(32,)"),
      ("optimizer.momentum_off", "{'monitor': 'train_loss', 'mode': 'min', 'patience': 1, 'min_delta': 10.0}"),
  ])
  result = train_and_evaluate(config, str(tmp_path / "run"))
  # min_delta=10 means no evaluation ever improves on the first: momentum goes after evaluation 2.
  assert result.summary["momentum_off_after_epoch"] == 2
  records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
  assert [r["momentum"] for r in records[:2]] == pytest.approx([0.9, 0.9])
  assert {r["momentum"] for r in records[2:]} == {0.0}


@pytest.mark.slow
def test_rules_resume_exactly(tmp_path):
  """A run with a plateau schedule and the momentum switch, stopped and resumed, equals an uninterrupted one."""
  overrides = [
      ("train.progress_bar", "False"), ("model.hidden_sizes", "(32,)"), ("optimizer.learning_rate", "0.05"),
      ("optimizer.momentum_off", "{'monitor': 'train_loss', 'min_delta': 0.05, 'patience': 1}"),
      ("optimizer.schedule", "{'name': 'plateau', 'monitor': 'val_loss', 'patience': 1, 'factor': 0.5}"),
  ]
  config, _ = load_config("digits_optimizers:momentum", overrides + [("train.epochs", "10")])
  full = train_and_evaluate(config, str(tmp_path / "full"))
  config, _ = load_config("digits_optimizers:momentum", overrides + [("train.epochs", "5")])
  train_and_evaluate(config, str(tmp_path / "parts"))
  config.train.epochs = 10
  resumed = train_and_evaluate(config, str(tmp_path / "parts"), resume=True)

  def curves(run):
    records = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
    return [(r["learning_rate"], r["momentum"], r["val_loss"]) for r in records]

  assert curves("parts") == curves("full")
  lrs = [lr for lr, _, _ in curves("full")]
  assert min(lrs) < 0.05 and 0.0 in [m for _, m, _ in curves("full")]  # both rules fired during the run
  for a, b in zip(jax.tree.leaves(full.state), jax.tree.leaves(resumed.state), strict=True):
    np.testing.assert_array_equal(a, b)
  assert 5 < resumed.summary["momentum_off_after_epoch"] == full.summary["momentum_off_after_epoch"] < 10


@pytest.mark.slow
def test_rules_match_the_rules_they_replaced(tmp_path):
  """The plateau cut and the momentum switch as optax transforms, on the run that the host-side rules logged.

  ``tests/data/metric_rules_34dc471.json`` holds that run's records, written
  before the rules became transforms: the same epochs see the same cut and
  switch, and the losses agree to float32 round-off.
  """
  old = json.loads(open(os.path.join(os.path.dirname(__file__), "data", "metric_rules_34dc471.json")).read())
  config, _ = load_config("digits_optimizers:momentum", [tuple(o) for o in old["overrides"]])
  result = train_and_evaluate(config, str(tmp_path / "run"))
  records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
  assert [r["epoch"] for r in records] == [r["epoch"] for r in old["records"]]
  for new, before in zip(records, old["records"], strict=True):
    assert new["learning_rate"] == before["learning_rate"] and new["momentum"] == before["momentum"]
    assert new["train_loss"] == pytest.approx(before["train_loss"], rel=1e-4)
    assert new["val_loss"] == pytest.approx(before["val_loss"], rel=1e-4)
  assert result.summary["momentum_off_after_epoch"] == old["momentum_off_after_epoch"] == 6
