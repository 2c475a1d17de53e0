"""The fit kernel's extension points: user hooks between epochs, the batch transform inside the compiled epoch."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.train import Checkpointer, Hook, MetricWriter, fit, make_scan_epoch, read_metrics
from jaxreg.train.step import batch_transform_key, with_batch_transform


class RecordEpochs(Hook):
  def __init__(self):
    self.calls = []

  def before_run(self, start_epoch):
    self.calls.append(("before_run", start_epoch))

  def after_epoch(self, end):
    self.calls.append(("after_epoch", end.epoch, end.record["val_loss"], int(end.state.step)))
    end.record["my_metric"] = 10.0 * end.epoch

  def close(self):
    self.calls.append(("close",))


def test_a_user_hook_sees_every_epoch_and_adds_to_the_written_record(digits, tmp_path, mlp_run):
  state, train_step, eval_step = mlp_run()
  hook, plain = RecordEpochs(), []
  result = fit(state, train_step=train_step, eval_step=eval_step, dataset=digits, batch_size=128, epochs=3,
               progress=False, writer=MetricWriter(str(tmp_path)), hooks=[hook, lambda end: plain.append(end.epoch)])
  steps = len(digits.train.y) // 128
  assert hook.calls == [("before_run", 0)] + [
      ("after_epoch", e, r["val_loss"], e * steps) for e, r in zip((1, 2, 3), result.history, strict=True)
  ] + [("close",)]
  assert plain == [1, 2, 3]
  assert [r["my_metric"] for r in read_metrics(str(tmp_path))] == [10.0, 20.0, 30.0]


def test_a_hook_that_stops_the_run_is_checkpointed_at_that_epoch(digits, tmp_path, mlp_run):
  state, train_step, eval_step = mlp_run()
  checkpointer = Checkpointer(str(tmp_path / "ckpt"), keep=5)

  def stop_at_two(end):
    if end.epoch == 2:
      end.stop("the user's rule")

  result = fit(state, train_step=train_step, eval_step=eval_step, dataset=digits, batch_size=128, epochs=10,
               progress=False, checkpointer=checkpointer, checkpoint_every=5, hooks=[stop_at_two])
  assert result.summary["stop_reason"] == "the user's rule" and result.summary["epochs_run"] == 2
  assert Checkpointer(str(tmp_path / "ckpt")).epochs() == [2]


def test_state_a_hook_replaces_is_what_the_next_epoch_trains(digits, mlp_run):
  """A hook resets the parameters after epoch 1; epoch 2 must start from them on the device."""
  state, train_step, eval_step = mlp_run()
  kwargs = dict(train_step=train_step, eval_step=eval_step, dataset=digits, batch_size=128, progress=False,
                restore_best=False)
  after_one = fit(state, epochs=1, **kwargs).state

  def reset(end):
    if end.epoch == 1:
      end.state = end.state.replace(params=state.params)

  result = fit(state, epochs=2, hooks=[reset], **kwargs)
  epoch = make_scan_epoch(train_step, shuffle_key=jax.random.PRNGKey(0), num_examples=len(digits.train.y),
                          batch_size=128)
  expected, _ = epoch(after_one.replace(params=state.params), digits.train.x, digits.train.y, 2)
  for a, b in zip(jax.tree.leaves(result.state.params), jax.tree.leaves(expected.params), strict=True):
    np.testing.assert_array_equal(a, b)
  assert not np.allclose(jax.tree.leaves(result.state.params)[0], jax.tree.leaves(after_one.params)[0])


def test_a_hook_that_is_neither_an_object_nor_a_function_is_refused(digits, mlp_run):
  state, train_step, eval_step = mlp_run()
  with pytest.raises(TypeError, match="a hook must have before_run/after_epoch/close methods"):
    fit(state, train_step=train_step, eval_step=eval_step, dataset=digits, batch_size=128, epochs=1,
        progress=False, hooks=[3])


def test_the_batch_transform_reaches_the_step_with_its_own_key_per_step(mlp_run):
  """A step that reports the first input it trained on: the transform's draw with the documented key."""

  def step(state, batch):
    return state.replace(step=state.step + 1), {"loss": batch["x"][0, 0]}

  def uniform_inputs(batch, key):
    return {**batch, "x": jax.random.uniform(key, batch["x"].shape)}

  state, _, _ = mlp_run()
  x, y = np.zeros((40, 3), np.float32), np.zeros(40, np.int32)
  epoch = make_scan_epoch(with_batch_transform(step, uniform_inputs), shuffle_key=jax.random.PRNGKey(0),
                          num_examples=40, batch_size=10)
  _, metrics = epoch(state.replace(step=jnp.asarray(7)), x, y, 1)
  draws = [jax.random.uniform(batch_transform_key(state.replace(step=jnp.asarray(s))), (10, 3))[0, 0]
           for s in range(7, 11)]
  assert len(set(np.asarray(draws).tolist())) == 4  # a fresh key per step
  np.testing.assert_allclose(metrics["loss"], np.mean(draws), rtol=1e-6)
  dropout_key = jax.random.fold_in(state.rng, 7)
  assert not np.array_equal(jax.random.key_data(batch_transform_key(state.replace(step=jnp.asarray(7)))),
                            jax.random.key_data(dropout_key))


def test_fit_trains_on_transformed_batches_and_evaluates_on_plain_ones(digits, mlp_run):
  """Every training label becomes 0: the model learns to answer 0, so test accuracy is class 0's share."""
  state, train_step, eval_step = mlp_run(lr=3e-2)
  result = fit(state, train_step=train_step, eval_step=eval_step, dataset=digits, batch_size=128, epochs=3,
               progress=False, restore_best=False, batch_transform=lambda batch, key: {**batch, "y": 0 * batch["y"]})
  assert result.history[-1]["train_loss"] < 0.01
  assert result.summary["test_accuracy"] == pytest.approx(np.mean(digits.test.y == 0))


def _optimized_hlo(epoch, *args) -> str:
  """The optimized program without its name and source locations."""
  text = epoch.lower(*args).compile().as_text()
  tables = ("FileNames", "FunctionNames", "FileLocations", "StackFrames")  # where the ops came from
  text = "\n\n".join(block for block in text.split("\n\n") if not block.startswith(tables))
  assert "fusion" in text  # the program itself is still there
  text = re.sub(r", metadata=\{[^}]*\}", "", text)
  return re.sub(r"HloModule \S+", "", text)


def test_the_identity_transform_compiles_to_the_same_program(mlp_run):
  state, train_step, _ = mlp_run()
  x, y = np.zeros((256, 64), np.float32), np.zeros(256, np.int32)
  kwargs = dict(shuffle_key=jax.random.PRNGKey(0), num_examples=256, batch_size=64)
  plain = make_scan_epoch(train_step, **kwargs)
  identity = make_scan_epoch(with_batch_transform(train_step, lambda batch, key: batch), **kwargs)
  assert _optimized_hlo(plain, state, x, y, 1) == _optimized_hlo(identity, state, x, y, 1)

