"""Step decay on plateau: against a NumPy statement of the rule, for negative and higher-is-better metrics."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.errors import ConfigError
from jaxreg.optim import current_learning_rate, make_optimizer, observe, reduce_on_plateau


def reference(values, *, mode, factor, patience, min_delta, cooldown=0, min_scale=0.0):
  """The rule written out in NumPy: the scale in force after each evaluation."""
  best, bad, cool, scale, out = None, 0, 0, 1.0, []
  for v in values:
    improved = best is None or (v < best - min_delta if mode == "min" else v > best + min_delta)
    if improved:
      best, bad = v, 0
    elif cool > 0:
      bad = 0
    else:
      bad += 1
    cool = max(cool - 1, 0)
    if bad >= patience:
      scale, bad, cool = max(scale * factor, min_scale), 0, cooldown
    out.append(scale)
  return out


def run_rule(rule, values):
  """The scale after each evaluation, each one passed as ``update(..., value=v)`` under jit."""
  state = rule.init({"w": jnp.zeros(2)})
  record = jax.jit(lambda state, v: observe(rule, state, v))
  scales = []
  for v in values:
    state = record(state, v)
    scales.append(float(state.scale))
  return scales


def test_negative_metric_lower_is_better():
  # A loss-like metric below zero (e.g. a negative log-likelihood of a density): improvements stall.
  values = [-0.5, -1.0, -1.5, -1.52, -1.51, -1.55, -1.6, -1.59, -1.61, -2.2, -2.21, -2.2, -2.19, -2.2]
  rule = reduce_on_plateau(optax.sgd(0.1), mode="min", factor=0.5, patience=2, min_delta=0.05)
  expected = reference(values, mode="min", factor=0.5, patience=2, min_delta=0.05)
  assert run_rule(rule, values) == pytest.approx(expected)
  assert expected[-1] < 1.0 and expected[2] == 1.0  # it did cut, and not while improving
  # -1.52 and -1.51 do not beat -1.5 by min_delta, so the second of them cuts the rate. A relative
  # threshold best*(1 - rtol) would have read -1.52 < -1.5*(1 - 0.01) = -1.485 as an improvement
  # and reset the count, so no cut would happen there.
  assert run_rule(rule, values)[3:5] == [1.0, 0.5]


def test_higher_is_better_metric_with_cooldown_and_floor():
  values = [0.5, 0.7, 0.8, 0.8, 0.79, 0.8, 0.81, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
  rule = reduce_on_plateau(optax.sgd(0.1), mode="max", factor=0.1, patience=2, min_delta=0.005, cooldown=2,
                           min_scale=1e-3)
  expected = reference(values, mode="max", factor=0.1, patience=2, min_delta=0.005, cooldown=2, min_scale=1e-3)
  assert run_rule(rule, values) == pytest.approx(expected)
  assert min(expected) == pytest.approx(1e-3)  # floored at min_value / learning_rate
  assert expected.count(0.1) >= 1


def test_nan_never_counts_as_an_improvement():
  rule = reduce_on_plateau(optax.sgd(0.1), mode="min", factor=0.5, patience=1)
  assert run_rule(rule, [1.0, float("nan"), float("nan")]) == [1.0, 0.5, 0.25]


def test_plateau_scale_multiplies_the_updates_and_the_logged_rate():
  tx = make_optimizer("sgd", learning_rate=0.1, schedule={"name": "plateau", "patience": 1, "factor": 0.5})
  assert tx.monitors == ("val_loss",)
  params = {"w": jnp.ones(2)}
  state = tx.init(params)
  state = tx.observe(state, {"val_loss": 1.0, "train_loss": 9.0})
  state = tx.observe(state, {"val_loss": 2.0, "train_loss": 0.0})  # worse: cut
  updates, state = tx.update({"w": jnp.ones(2)}, state, params)
  np.testing.assert_allclose(updates["w"], [-0.05, -0.05])
  assert float(current_learning_rate(state)) == pytest.approx(0.05)
  assert tx.logged(state) == {"learning_rate": pytest.approx(0.05)}


def test_an_evaluation_takes_no_optimizer_step():
  """``update(..., value=)`` records an evaluation: the inner optimizer's state (Adam's moments, count) stays."""
  tx = reduce_on_plateau(optax.adam(0.1), patience=1)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  _, state = tx.update({"w": jnp.ones(3)}, state, params)
  updates, observed = tx.update({"w": jnp.full(3, 7.0)}, state, params, value=1.0)
  np.testing.assert_array_equal(updates["w"], jnp.full(3, 7.0))
  for a, b in zip(jax.tree.leaves(state.inner), jax.tree.leaves(observed.inner), strict=True):
    np.testing.assert_array_equal(a, b)
  assert float(observed.best) == 1.0 and float(state.best) != 1.0


def test_a_mapping_of_metrics_needs_the_monitor():
  tx = reduce_on_plateau(optax.sgd(0.1), monitor="val_accuracy", mode="max", patience=1)
  state = observe(tx, tx.init({"w": jnp.zeros(1)}), {"val_accuracy": 0.5, "val_loss": 3.0})
  assert float(state.best) == 0.5
  with pytest.raises(ValueError, match="monitor is None; pass monitor= one of them"):
    observe(reduce_on_plateau(optax.sgd(0.1)), state, {"val_loss": 3.0})


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(factor=1.5), ValueError, r"^factor must be in \(0, 1\), got 1.5$"),
        (dict(patience=0), ValueError, r"^patience must be a positive integer, got 0$"),
        (dict(patience=2.5), TypeError, r"^patience must be a positive integer, got 2.5$"),
        (dict(mode="up"), ValueError, r"^mode must be 'min' or 'max', got 'up'$"),
        (dict(cooldown=-1), ValueError, r"^cooldown must be an integer >= 0"),
        (dict(min_scale=2.0), ValueError, r"^min_scale must be in \[0, 1\]"),
    ],
)
def test_library_errors_name_the_argument_not_a_config_key(kwargs, error, message):
  with pytest.raises(error, match=message):
    reduce_on_plateau(optax.sgd(0.1), **kwargs)


def test_bad_plateau_configs():
  with pytest.raises(ConfigError, match="optimizer.schedule.patient for schedule 'plateau'; valid keys: cooldown"):
    make_optimizer("sgd", learning_rate=0.1, schedule={"name": "plateau", "patient": 3})
  with pytest.raises(ConfigError, match="factor must be in \\(0, 1\\)"):
    make_optimizer("sgd", learning_rate=0.1, schedule={"name": "plateau", "factor": 2.0})


@pytest.mark.slow
def test_plateau_from_the_command_line(tmp_path):
  from jaxreg import cli

  workdir = tmp_path / "run"
  code = cli.main([
      "train", "--config", "digits_mlp:smoke", "--workdir", str(workdir), "--no-progress",
      "--config.train.epochs=8", "--config.optimizer.learning_rate=0.05",
      "--config.optimizer.schedule.name=plateau", "--config.optimizer.schedule.monitor=val_accuracy",
      "--config.optimizer.schedule.mode=max", "--config.optimizer.schedule.patience=1",
      "--config.optimizer.schedule.factor=0.5", "--config.optimizer.schedule.min_delta=0.5",
  ])
  assert code == 0
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  # min_delta=0.5 makes every evaluation after the first a non-improvement, so each one from
  # epoch 2 on halves the rate. The logged rate is the one an epoch trained with: the cut
  # after epoch 2's evaluation shows from epoch 3.
  rates = [l["learning_rate"] for l in lines]
  np.testing.assert_allclose(rates, [0.05 * 0.5 ** max(i - 1, 0) for i in range(8)], rtol=1e-6)
