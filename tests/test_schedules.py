"""Each schedule against its formula (the lecture notes (Baskin et al. 2018; Wang 2023)), in steps and in epochs, and from configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.errors import ConfigError
from jaxreg.optim import current_learning_rate, make_optimizer
from jaxreg.optim.factory import learning_rate_schedule
from jaxreg.optim.schedules import make_schedule

T = np.arange(0, 200)


@pytest.mark.parametrize("name, kwargs, formula", [
    ("constant", {}, lambda t: 0.1 + 0 * t),
    ("exponential", {"rate": 0.97}, lambda t: 0.97**t * 0.1),
    ("inverse_time", {"k": 0.05}, lambda t: 0.1 / (1 + 0.05 * t)),
    ("linear", {"tau": 120, "final_fraction": 0.01},
     lambda t: np.where(t <= 120, (1 - np.minimum(t, 120) / 120) * 0.1 + (np.minimum(t, 120) / 120) * 0.001, 0.001)),
    ("piecewise", {"boundaries": (50, 150), "factor": 0.1},
     lambda t: 0.1 * 0.1 ** ((t >= 50).astype(int) + (t >= 150).astype(int))),
    ("cosine", {"decay_steps": 150, "alpha": 0.05},
     lambda t: 0.1 * ((1 - 0.05) * 0.5 * (1 + np.cos(np.pi * np.minimum(t, 150) / 150)) + 0.05)),
    ("cosine", {"decay_steps": 150, "warmup": 20},  # a linear warm-up from 0, then the cosine from its own start
     lambda t: np.where(t < 20, 0.1 * t / 20, 0.1 * 0.5 * (1 + np.cos(np.pi * np.minimum(t - 20, 150) / 150)))),
    ("exponential", {"rate": 0.97, "warmup": 10, "warmup_start": 0.1},
     lambda t: np.where(t < 10, 0.1 * (0.1 + 0.9 * t / 10), 0.97 ** (t - 10) * 0.1)),
    ("optax.polynomial_schedule", {"end_value": 0.01, "power": 2, "transition_steps": 100},
     lambda t: (0.1 - 0.01) * (1 - np.minimum(t, 100) / 100) ** 2 + 0.01),
    ("optax.warmup_cosine_decay_schedule", {"init_value": 0.0, "peak_value": 0.2, "warmup_steps": 30,
                                            "decay_steps": 180},
     lambda t: np.where(t < 30, 0.2 * t / 30,
                        0.2 * 0.5 * (1 + np.cos(np.pi * np.minimum(t - 30, 150) / 150)))),
])
def test_schedule_matches_its_formula(name, kwargs, formula):
  with jax.enable_x64(True):  # float64, so the comparison tests the formula, not float32 round-off
    schedule = learning_rate_schedule(0.1, {"name": name, **kwargs})  # as from a config's optimizer section
    values = np.array([float(schedule(jnp.asarray(t))) for t in T])
  np.testing.assert_allclose(values, formula(T.astype(np.float64)), rtol=1e-12, atol=1e-15)


def test_a_warmup_alone_ramps_to_the_constant_rate_and_counts_epochs_with_the_schedule():
  tx = make_optimizer("sgd", learning_rate=0.1, schedule={"warmup": 4})
  np.testing.assert_allclose([float(tx.learning_rate(t)) for t in range(6)], [0, 0.025, 0.05, 0.075, 0.1, 0.1])
  schedule = make_schedule("cosine", init_value=0.1, decay_steps=10, warmup=2, unit="epoch", steps_per_epoch=5)
  np.testing.assert_allclose([float(schedule(t)) for t in (0, 4, 5, 9, 10)], [0, 0, 0.05, 0.05, 0.1])


def test_epoch_unit_counts_whole_epochs():
  schedule = make_schedule("exponential", init_value=0.1, rate=0.5, unit="epoch", steps_per_epoch=10)
  values = [float(schedule(jnp.asarray(t))) for t in (0, 9, 10, 19, 20, 35)]
  np.testing.assert_allclose(values, [0.1, 0.1, 0.05, 0.05, 0.025, 0.0125], rtol=1e-6)


def test_make_optimizer_follows_the_schedule_and_logs_the_rate():
  tx = make_optimizer("momentum", learning_rate=0.1, schedule={"name": "inverse_time", "k": 1.0})
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  rates = []
  for _ in range(4):
    _, state = tx.update({"w": jnp.ones(3)}, state, params)
    rates.append(float(current_learning_rate(state)))
  # inject_hyperparams stores the rate used by the latest update: eps_0/(1+k*t) for t = 0..3.
  np.testing.assert_allclose(rates, [0.1 / 1, 0.1 / 2, 0.1 / 3, 0.1 / 4][:4], rtol=1e-6)


@pytest.mark.parametrize("schedule, message", [
    ({"name": "cosin"}, "unknown schedule 'cosin'; valid names: constant, cosine, exponential, inverse_time, linear, "
                        "piecewise, or optax.<name>"),
    ({"name": "cosine"}, "schedule 'cosine' needs optimizer.schedule.decay_steps"),
    ({"name": "cosine", "decay_steps": 10, "warmup": -1}, "optimizer.schedule.warmup must be a positive number"),
    ({"name": "optax.adamw"}, "'optax.adamw' is not an optax schedule"),
    ({"name": "optax.exponential_decay", "transition_steps": 5},
     "optimizer.schedule.decay_rate is needed for optax.exponential_decay; its arguments: init_value"),
    ({"name": "optax.exponential_decay", "transition_steps": 5, "decay_rate": 0.5, "rate": 1},
     "unknown key optimizer.schedule.rate for optax.exponential_decay"),
    ({"rate": 0.9}, "optimizer.schedule needs a name"),
    ({"name": "exponential"}, "schedule 'exponential' needs optimizer.schedule.rate"),
    ({"name": "exponential", "rate": 1.5}, "rate must be in \\(0, 1\\]"),
    ({"name": "linear", "tau": 10, "gamma": 2}, "optimizer.schedule.gamma for schedule 'linear'"),
    ({"name": "piecewise", "boundaries": (30, 10)}, "boundaries must be increasing positive integers"),
    ({"name": "constant", "unit": "batch"}, "unit must be 'step' or 'epoch'"),
    ({"name": "constant", "unit": "epoch"}, "needs steps_per_epoch"),
])
def test_bad_schedules_are_refused(schedule, message):
  with pytest.raises(ConfigError, match=message):
    make_optimizer("sgd", learning_rate=0.1, schedule=schedule)


@pytest.mark.slow
def test_schedule_from_the_command_line(tmp_path):
  import json

  from jaxreg import cli

  workdir = tmp_path / "run"
  code = cli.main([
      "train", "--config", "digits_mlp:smoke", "--workdir", str(workdir), "--no-progress",
      "--config.optimizer.schedule.name=exponential", "--config.optimizer.schedule.rate=0.5",
      "--config.optimizer.schedule.unit=epoch",
  ])
  assert code == 0
  rates = [json.loads(line)["learning_rate"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  # The rate logged after epoch e is the one its last step used: epoch index e-1.
  np.testing.assert_allclose(rates, [1e-3, 5e-4, 2.5e-4], rtol=1e-6)


def test_gradient_clipping_by_global_norm():
  tx = make_optimizer("sgd", learning_rate=0.1, clip_global_norm=1.0)
  params = {"a": jnp.zeros(3), "b": jnp.zeros(4)}
  state = tx.init(params)
  big = {"a": jnp.full(3, 10.0), "b": jnp.full(4, -10.0)}
  updates, state = tx.update(big, state, params)
  norm = float(np.sqrt(sum(np.sum(np.square(u)) for u in updates.values())))
  np.testing.assert_allclose(norm, 0.1 * 1.0, rtol=1e-6)  # lr * clip: the direction kept, the norm capped
  np.testing.assert_allclose(updates["a"] / np.linalg.norm(updates["a"]), np.full(3, -1 / np.sqrt(3)), rtol=1e-6)
  small = {"a": jnp.full(3, 0.01), "b": jnp.zeros(4)}
  updates, _ = tx.update(small, state, params)
  np.testing.assert_allclose(updates["a"], -0.1 * 0.01, rtol=1e-6)  # below the cap: untouched
  assert float(current_learning_rate(state)) == pytest.approx(0.1)
  with pytest.raises(ConfigError, match="clip_global_norm must be a positive number"):
    make_optimizer("sgd", learning_rate=0.1, clip_global_norm=0.0)
