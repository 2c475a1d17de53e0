import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.config import load_config
from jaxreg.data import Dataset, Split, load_digits
from jaxreg.errors import TrainingError
from jaxreg.experiment import train_and_evaluate
from jaxreg.models import make_mlp
from jaxreg.regularizers import l2
from jaxreg.train import (
    Checkpointer,
    EarlyStopping,
    MetricWriter,
    classification_objective,
    create_train_state,
    fit,
    make_eval_step,
    make_train_step,
)


@pytest.fixture(scope="module")
def digits():
  return load_digits(seed=0)


def _setup(dropout=0.0, lr=1e-2, hidden=(32,)):
  model = make_mlp(num_outputs=10, hidden_sizes=hidden, dropout_rate=dropout)
  tx = optax.adam(lr)
  objective = classification_objective(model.apply)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 64)))
  return state, make_train_step(l2(1e-4)(objective), tx), make_eval_step(objective)


@pytest.mark.slow  # an end-to-end run: in the full suite, out of the fast tier
def test_scan_and_streaming_paths_take_the_same_steps(digits):
  state, train_step, eval_step = _setup(dropout=0.3)
  kwargs = dict(train_step=train_step, eval_step=eval_step, dataset=digits, batch_size=100, epochs=3,
                progress=False, restore_best=False)
  scan = fit(state, data_on_device="always", **kwargs)
  stream = fit(state, data_on_device="never", **kwargs)
  assert scan.summary["train_path"] == "scan" and stream.summary["train_path"] == "streaming"
  assert int(scan.state.step) == int(stream.state.step) == 3 * (1257 // 100)
  for a, b in zip(jax.tree.leaves(scan.state.params), jax.tree.leaves(stream.state.params), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(scan.history[-1]["val_loss"], stream.history[-1]["val_loss"], rtol=1e-4)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_a_convolutional_model_streams_on_a_cpu_unless_asked_to_scan(digits):
  """XLA:CPU's convolutions in a loop body are slow (jax-ml/jax#12868): 'auto' streams a CNN's batches there."""
  from jaxreg.models import make_cnn
  from jaxreg.train.loop import convolves_on_cpu

  model = make_cnn(num_outputs=10, channels=(4,), dims=2, kernel_size=3, pool=2, input_shape=(8, 8))
  tx = optax.sgd(0.1)
  objective = classification_objective(model.apply)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 64)))
  assert convolves_on_cpu(state) == (jax.default_backend() == "cpu")
  assert not convolves_on_cpu(_setup()[0])  # an MLP's kernels are matrices
  kwargs = dict(train_step=make_train_step(objective, tx), eval_step=make_eval_step(objective), dataset=digits,
                batch_size=100, epochs=1, progress=False, restore_best=False)
  auto, scanned = fit(state, **kwargs), fit(state, data_on_device="always", **kwargs)
  assert auto.summary["train_path"] == ("streaming" if jax.default_backend() == "cpu" else "scan")
  assert scanned.summary["train_path"] == "scan"
  for a, b in zip(jax.tree.leaves(auto.state.params), jax.tree.leaves(scanned.state.params), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_evaluation_matches_a_direct_computation(digits):
  state, train_step, eval_step = _setup()
  result = fit(state, train_step=train_step, eval_step=eval_step, dataset=digits, batch_size=128, epochs=2,
               eval_batch_size=100, progress=False, restore_best=False)  # 360 test examples: padded batches
  model = make_mlp(num_outputs=10, hidden_sizes=(32,))
  # Validation (180) is laid out like test (360): 4 batches of 100, the last 2 all padding, skipped.
  for split, name in ((digits.test, "test"), (digits.val, "val")):
    logits, _ = model.apply({"params": result.state.params}, split.x, train=False)
    accuracy = float(np.mean(np.argmax(logits, -1) == split.y))
    log_probs = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
    loss = float(-np.mean(np.take_along_axis(np.asarray(log_probs), split.y[:, None], axis=-1)))
    assert result.summary[f"{name}_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert result.history[-1][f"{name}_accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert result.summary[f"{name}_loss"] == pytest.approx(loss, rel=1e-5)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_early_stopping_and_restore_best(tmp_path, digits):
  # Train on 60 examples with a large learning rate so validation loss rises soon.
  small = Dataset("tiny", "classification", Split(digits.train.x[:60], digits.train.y[:60]), digits.val,
                  digits.test, 10)
  state, train_step, eval_step = _setup(lr=3e-2, hidden=(128,))
  es = EarlyStopping(monitor="val_loss", mode="min", patience=3)
  ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=1, monitor="val_loss", mode="min")
  result = fit(state, train_step=train_step, eval_step=eval_step, dataset=small, batch_size=20, epochs=200,
               early_stopping=es, checkpointer=ckpt, progress=False)
  history = result.history
  best = min(history, key=lambda r: r["val_loss"])
  assert result.summary["best_epoch"] == best["epoch"]
  assert result.summary["epochs_run"] == best["epoch"] + 3 < 200
  assert "early stopping" in result.summary["stop_reason"]
  # restore_best returned the best epoch's parameters: the same as its checkpoint (kept beside the latest).
  ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=1, monitor="val_loss", mode="min")
  assert set(ckpt.epochs()) == {best["epoch"], history[-1]["epoch"]}
  restored = ckpt.restore(best["epoch"], like=state)
  for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(result.state.params), strict=True):
    np.testing.assert_array_equal(a, b)
  assert result.summary["val_loss"] == pytest.approx(best["val_loss"], rel=1e-6)


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoints(tmp_path, digits):
  model = make_mlp(num_outputs=10, hidden_sizes=(16,))
  tx = optax.sgd(0.1)
  base = classification_objective(model.apply)

  def nan_from_step_30(objective):  # 19 steps per epoch: epoch 2 turns NaN
    def wrapped(params, batch, ctx):
      loss, aux = objective(params, batch, ctx)
      loss = loss + jnp.where(ctx.step >= 30, jnp.nan, 0.0)
      return loss, aux.with_metrics(loss=loss)
    return wrapped

  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 64)))
  ckpt = Checkpointer(str(tmp_path / "ckpt"), keep=2)
  writer = MetricWriter(str(tmp_path))
  with pytest.raises(TrainingError, match="the training loss became nan in epoch 2: the run diverged .*Lower optimizer.learning_rate"
                     ".*the last good checkpoint \\(epoch 1\\) is kept"):
    fit(state, train_step=make_train_step(nan_from_step_30(base), tx), eval_step=make_eval_step(base),
        dataset=digits, batch_size=64, epochs=20, checkpointer=ckpt, writer=writer, progress=False)
  assert Checkpointer(str(tmp_path / "ckpt")).epochs() == [1]
  assert [r["epoch"] for r in writer.read()] == [1]


@pytest.mark.slow
def test_run_artifacts(tmp_path):
  config, _ = load_config("digits_mlp:smoke", [("train.progress_bar", "false")])
  result = train_and_evaluate(config, str(tmp_path))
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["epoch"] for l in lines] == [1, 2, 3]
  for key in ("epoch", "train_loss", "val_loss", "val_accuracy", "learning_rate", "seconds"):
    assert all(isinstance(l[key], (int, float)) for l in lines), key
  assert lines[0]["learning_rate"] == pytest.approx(1e-3)
  summary = json.loads((tmp_path / "summary.json").read_text())
  for key in ("test_accuracy", "test_loss", "best_epoch", "epochs_run", "steps_per_second", "wall_seconds"):
    assert summary[key] is not None, key
  assert summary == json.loads(json.dumps(result.summary))
  assert json.loads((tmp_path / "config.json").read_text()) == config.to_dict() | {  # JSON's lists for tuples
      "model": {**config.model.to_dict(), "hidden_sizes": list(config.model.hidden_sizes)},
      "data": {**config.data.to_dict(), "augment": []},
      "train": {**config.train.to_dict(), "robust_eval": {**config.train.robust_eval.to_dict(), "eps": []}},
  }
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [1, 2, 3]
