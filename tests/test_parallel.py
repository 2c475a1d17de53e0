"""Data parallelism on 8 simulated CPU devices (conftest): pmap and sharded runs against one device."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.config import load_config
from jaxreg.data import load_digits
from jaxreg.errors import ConfigError
from jaxreg.experiment import train_and_evaluate
from jaxreg.models import make_cnn, make_mlp, make_model
from jaxreg.parallel import (
    Pmap,
    Sharded,
    SingleDevice,
    initialize_distributed,
    make_mesh,
    make_placement,
    pmap_step,
    put_replicated,
    put_sharded,
    replicate,
    sharded_step,
    split_batch,
    unreplicate,
)
from jaxreg.train import classification_objective, create_train_state, fit, make_eval_step, make_train_step


@pytest.fixture(scope="module")
def digits():
  return load_digits(seed=0)


def _fit(digits, placement, *, dropout=0.0, steps=100, seed=0, batch_size=64, **kwargs):
  """Trains a 64-32-10 MLP with Adam for ``steps`` steps of batch 64 under ``placement``."""
  axis_name = placement.axis_name
  model = make_mlp(num_outputs=10, hidden_sizes=(32,), dropout_rate=dropout)
  tx = optax.adam(1e-2)
  objective = classification_objective(model.apply)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(seed), sample_x=jnp.zeros((1, 64)))
  return fit(
      state, train_step=make_train_step(objective, tx, axis_name=axis_name),
      eval_step=make_eval_step(objective, axis_name=axis_name), dataset=digits, batch_size=batch_size, epochs=100,
      max_steps=steps, eval_batch_size=100, progress=False, restore_best=False, placement=placement, **kwargs,
  )


def _max_relative_difference(a_tree, b_tree) -> float:
  return max(
      float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(a))))
      for a, b in zip(jax.tree.leaves(a_tree), jax.tree.leaves(b_tree), strict=True)
  )


@pytest.fixture(scope="module")
def single_run(digits):
  return _fit(digits, SingleDevice())


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["pmap", "sharded"])
def test_data_parallel_runs_end_with_the_single_device_parameters(digits, single_run, mode):
  """Same seed, global batch 64 over 8 devices, no dropout: the same parameters after 100 steps."""
  result = _fit(digits, make_placement(mode))
  assert int(result.state.step) == int(single_run.state.step) == 100
  assert _max_relative_difference(single_run.state.params, result.state.params) < 1e-5
  # The 360 test examples are split into padded batches of 104 (a multiple of 8): none is lost or doubled.
  for key in ("test_loss", "test_accuracy", "val_loss"):
    assert result.summary[key] == pytest.approx(single_run.summary[key], rel=1e-5)
  assert result.history[-1]["train_loss"] == pytest.approx(single_run.history[-1]["train_loss"], rel=1e-5)
  assert isinstance(result.state.params["dense_0"]["kernel"], jax.Array)
  assert len(result.state.params["dense_0"]["kernel"].devices()) == 1  # the single-device view


@pytest.fixture(scope="module")
def single_run_38(digits):
  return _fit(digits, SingleDevice(), steps=38)


@pytest.mark.slow  # the fast tier stays under 3 minutes
@pytest.mark.parametrize("mode", ["pmap", "sharded"])
def test_streaming_path_matches_the_single_device_run(digits, single_run_38, mode):
  """Batches fed from the host (data.on_device='never') take the same steps as the compiled epoch."""
  result = _fit(digits, make_placement(mode), steps=38, data_on_device="never")
  assert result.summary["train_path"] == "streaming"
  assert _max_relative_difference(single_run_38.state.params, result.state.params) < 1e-5


def _fit_with_rules(digits, placement):
  """A momentum run whose plateau cut and momentum switch both fire, with noisy inputs, under ``placement``."""
  from jaxreg.optim import make_optimizer

  axis_name = placement.axis_name
  model = make_mlp(num_outputs=10, hidden_sizes=(32,))
  optimizer = make_optimizer(
      "momentum", 0.05, momentum=0.9, momentum_off={"monitor": "train_loss", "patience": 1, "min_delta": 10.0},
      schedule={"name": "plateau", "monitor": "val_loss", "patience": 1, "factor": 0.5, "min_delta": 10.0},
  )
  objective = classification_objective(model.apply)
  state = create_train_state(model, optimizer, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 64)))
  noise = lambda batch, key: {**batch, "x": batch["x"] + 0.1 * jax.random.normal(key, batch["x"].shape)}  # noqa: E731
  return fit(
      state, train_step=make_train_step(objective, optimizer, axis_name=axis_name),
      eval_step=make_eval_step(objective, axis_name=axis_name), dataset=digits, batch_size=64, epochs=4,
      eval_batch_size=100, progress=False, restore_best=False, placement=placement, optimizer=optimizer,
      batch_transform=noise,
  )


@pytest.mark.slow
def test_metric_driven_optimizer_and_batch_transform_under_every_placement(digits):
  """The rules' compiled end-of-epoch call runs on each placement's state; the sharded run equals one device.

  (pmap folds the device index into the batch transform's key, so its noise differs: only its schedule is compared.)
  """
  runs = {mode: _fit_with_rules(digits, make_placement(mode)) for mode in ("none", "pmap", "sharded")}
  for run in runs.values():  # min_delta=10: no evaluation after the first improves, so both rules fire at 2
    assert [r["learning_rate"] for r in run.history] == pytest.approx([0.05, 0.05, 0.025, 0.0125])
    assert [r["momentum"] for r in run.history] == pytest.approx([0.9, 0.9, 0.0, 0.0])
    assert run.summary["momentum_off_after_epoch"] == 2
  assert _max_relative_difference(runs["none"].state.params, runs["sharded"].state.params) < 1e-5
  assert _max_relative_difference(runs["none"].state.params, runs["pmap"].state.params) > 1e-3


@pytest.mark.slow
def test_with_dropout_runs_with_the_same_seed_are_identical(digits):
  """pmap folds the device index into the dropout key, so its masks differ from one device's; the
  sharded path draws the single device's masks for the whole batch, so it follows a single-device run."""
  runs = {
      name: _fit(digits, placement, dropout=0.3, steps=19, seed=seed)  # one epoch: one compiled scan
      for name, placement, seed in [
          ("pmap", make_placement("pmap"), 0), ("pmap again", make_placement("pmap"), 0),
          ("pmap seed 1", make_placement("pmap"), 1), ("sharded", make_placement("sharded"), 0),
          ("single", SingleDevice(), 0),
      ]
  }
  for a, b in zip(jax.tree.leaves(runs["pmap"].state.params), jax.tree.leaves(runs["pmap again"].state.params),
                  strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert _max_relative_difference(runs["pmap"].state.params, runs["pmap seed 1"].state.params) > 1e-2
  assert _max_relative_difference(runs["single"].state.params, runs["pmap"].state.params) > 1e-2
  assert _max_relative_difference(runs["single"].state.params, runs["sharded"].state.params) < 1e-5


NORMALIZED_MODELS = {  # every model with batch statistics: their sync under pmap
    "mlp": lambda axis: make_mlp(num_outputs=3, hidden_sizes=(16, 16), batch_norm=True, batch_norm_axis_name=axis),
    "mlp_mean_only": lambda axis: make_mlp(num_outputs=3, hidden_sizes=(16,), normalization="mean_only",
                                           weight_norm=True, batch_norm_axis_name=axis),
    "cnn": lambda axis: make_cnn(num_outputs=3, channels=(4,), dims=1, kernel_size=3, pool=1, dense_sizes=(8,),
                                 batch_norm=True, batch_norm_axis_name=axis),
    "gru": lambda axis: make_model("gru", num_outputs=3, hidden_sizes=(4, 4), normalization="batch_norm",
                                   sequence_length=5, axis_name=axis),  # between the two recurrent layers
}


def _batch_norm_setup(rng, axis_name=None, name="mlp"):
  model = NORMALIZED_MODELS[name](axis_name)
  tx = optax.sgd(0.1)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 5)))
  objective = classification_objective(model.apply)
  # Shards with different means, so per-shard statistics differ from the global batch's.
  x = (rng.normal(size=(64, 5)) + np.repeat(np.arange(8), 8)[:, None]).astype(np.float32)
  return state, objective, tx, {"x": x, "y": rng.integers(0, 3, size=64)}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(NORMALIZED_MODELS))
def test_batch_norm_under_pmap_uses_the_global_batch_statistics(rng, name):
  state, objective, tx, batch = _batch_norm_setup(rng, name=name)
  single, _ = jax.jit(make_train_step(objective, tx))(state, batch)

  synced_state, synced_objective, _, _ = _batch_norm_setup(rng, axis_name="batch", name=name)
  step = pmap_step(make_train_step(synced_objective, tx, axis_name="batch"))
  synced, _ = step(replicate(synced_state), split_batch(batch, 8))
  synced = unreplicate(synced)
  assert _max_relative_difference(single.params, synced.params) < 1e-5
  assert _max_relative_difference(single.model_state, synced.model_state) < 1e-5

  # Control: without the axis name each device normalizes by its own shard, and the step differs.
  local, _ = pmap_step(make_train_step(objective, tx, axis_name="batch"))(replicate(state), split_batch(batch, 8))
  assert _max_relative_difference(single.params, unreplicate(local).params) > 1e-3


def test_batch_norm_on_the_sharded_path_uses_the_global_batch_statistics(rng):
  state, objective, tx, batch = _batch_norm_setup(rng)
  single, _ = jax.jit(make_train_step(objective, tx))(state, batch)
  mesh = make_mesh()
  sharded, _ = sharded_step(make_train_step(objective, tx), mesh)(put_replicated(state, mesh), put_sharded(batch, mesh))
  assert sharded.params["dense_0"]["kernel"].sharding.is_fully_replicated
  assert _max_relative_difference(single.params, sharded.params) < 1e-5
  assert _max_relative_difference(single.model_state, sharded.model_state) < 1e-5


def test_make_model_passes_the_pmap_axis_to_batch_norm_only():
  model = make_model("mlp", num_outputs=3, hidden_sizes=(4,), batch_norm=True, axis_name="batch")
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros((2, 5)))
  assert "batch_stats" in variables
  with pytest.raises(ConfigError, match="batch_norm_axis_name"):
    make_model("mlp", num_outputs=3, batch_norm_axis_name="batch")  # set by jaxreg, not by configs
  make_model("gru", num_outputs=3, hidden_sizes=(4,), axis_name="batch")  # no batch norm: ignored


def test_replicate_and_unreplicate_round_trip():
  tree = {"a": jnp.arange(6.0).reshape(2, 3), "b": jnp.asarray(3, jnp.int32)}
  replicated = replicate(tree)
  assert replicated["a"].shape == (8, 2, 3) and len(replicated["a"].devices()) == 8
  back = unreplicate(replicated)
  np.testing.assert_array_equal(back["a"], tree["a"])
  assert back["b"].shape == () and int(back["b"]) == 3


@pytest.mark.parametrize("mode", ["pmap", "sharded"])
def test_a_batch_the_devices_do_not_divide_is_refused(digits, mode):
  with pytest.raises(ConfigError, match=r"data.batch_size=100 cannot be split evenly over 8 devices.*96 or 104"):
    _fit(digits, make_placement(mode), batch_size=100)


def test_bad_parallel_settings_get_clear_errors():
  with pytest.raises(ConfigError, match="parallel.mode must be one of none, pmap, sharded, got 'pmapp'"):
    make_placement("pmapp")
  with pytest.raises(ConfigError, match=r"num_devices=16, but only 8 cpu device\(s\) are present; use at most 8"):
    make_placement("sharded", 16)
  with pytest.raises(ConfigError, match="num_devices=4 needs parallel.mode='pmap' or 'sharded'"):
    make_placement("none", 4)
  with pytest.raises(ConfigError, match="positive integer"):
    make_placement("pmap", 0)
  with pytest.raises(ConfigError, match="cannot be split evenly over 8 devices"):
    split_batch({"x": np.zeros((12, 3))}, 8)
  with pytest.raises(ConfigError, match="needs --num-processes and --process-id"):
    initialize_distributed("localhost:1234")
  with pytest.raises(ConfigError, match="without a coordinator address"):
    initialize_distributed(num_processes=2, process_id=1)
  assert initialize_distributed() is False  # no address, nothing in the environment: one process


def test_fewer_devices_than_present_are_used_when_asked(digits, single_run_38):
  placement = Pmap(4)
  assert placement.num_devices == 4 and len(placement.local_devices) == 4
  result = _fit(digits, placement, steps=38)
  assert _max_relative_difference(single_run_38.state.params, result.state.params) < 1e-5
  assert Sharded(2).mesh.size == 2


def _run_config(tmp_path, name, overrides, resume=False):
  config, _ = load_config("digits_mlp:smoke", [("model.dropout_rate", "0.0"), *overrides])
  config.train.progress_bar = False
  return train_and_evaluate(config, str(tmp_path / name), resume=resume)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  """Three epochs of the smoke config on one device, without dropout."""
  return _run_config(tmp_path_factory.mktemp("straight"), "run", [("train.epochs", "3")])


@pytest.mark.slow
@pytest.mark.parametrize(("first", "second"), [("pmap", "none"), ("none", "sharded")])
def test_checkpoints_move_between_single_device_and_data_parallel_runs(tmp_path, straight, first, second):
  """Two epochs in one mode, resumed to three in another, end where three epochs in one go end."""
  _run_config(tmp_path, "moved", [("train.epochs", "2"), ("parallel.mode", first)])
  moved = _run_config(tmp_path, "moved", [("train.epochs", "3"), ("parallel.mode", second)], resume=True)
  assert moved.summary["parallel"]["mode"] == second
  assert _max_relative_difference(straight.state.params, moved.state.params) < 1e-5
  lines = [json.loads(line) for line in (tmp_path / "moved" / "metrics.jsonl").read_text().splitlines()]
  assert [line["epoch"] for line in lines] == [1, 2, 3]
  assert lines[-1]["val_loss"] == pytest.approx(straight.history[-1]["val_loss"], rel=1e-5)


@pytest.mark.parametrize("mode", ["pmap", "sharded"])
def test_a_state_with_a_typed_prng_key_is_placed_and_recovered(mode):
  model = make_mlp(num_outputs=3, hidden_sizes=(4,))
  state = create_train_state(model, optax.sgd(0.1), rng=jax.random.key(0), sample_x=jnp.zeros((1, 5)))
  placement = make_placement(mode)
  back = placement.get_state(placement.put_state(state))
  assert jax.dtypes.issubdtype(back.rng.dtype, jax.dtypes.prng_key)
  np.testing.assert_array_equal(jax.random.key_data(back.rng), jax.random.key_data(state.rng))
  np.testing.assert_array_equal(back.params["dense_0"]["kernel"], state.params["dense_0"]["kernel"])


def test_pmap_refuses_steps_built_without_the_axis_name(digits):
  """Without axis_name each device would follow its own shard; fit stops after the first epoch and says why."""
  model = make_mlp(num_outputs=10, hidden_sizes=(8,))
  tx = optax.sgd(0.1)
  objective = classification_objective(model.apply)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 64)))
  with pytest.raises(ConfigError, match=r"does not average its gradients.*axis_name='batch'"):
    fit(state, train_step=make_train_step(objective, tx), eval_step=make_eval_step(objective, axis_name="batch"),
        dataset=digits, batch_size=64, epochs=1, progress=False, placement=make_placement("pmap"))


@pytest.mark.parametrize("mode", ["none", "pmap", "sharded"])
def test_every_placement_is_a_placement(mode):
  from jaxreg.train import Placement

  placement = make_placement(mode)
  assert isinstance(placement, Placement)
  assert placement.mode == mode
