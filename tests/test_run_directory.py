"""A run directory's lifecycle: the best checkpoint survives resumes, a stopped run stays stopped, no advice loops."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.config import load_config
from jaxreg.errors import CheckpointError
from jaxreg.experiment import train_and_evaluate
from jaxreg.train import Checkpointer, EarlyStopping, MetricWriter, fit


def test_the_best_checkpoint_survives_a_reopened_manager(tmp_path):
  """Orbax keeps the best checkpoint only if it knows the old checkpoints' metrics after a restart."""
  directory = str(tmp_path / "checkpoints")
  checkpointer = Checkpointer(directory, keep=1, monitor="val_loss", mode="min")
  for epoch, val_loss in [(1, 0.5), (2, 0.1), (3, 0.4)]:
    checkpointer.save(epoch, {"w": jnp.full(2, float(epoch))}, {"val_loss": val_loss})
  checkpointer.close()
  for epoch, val_loss in [(4, 0.45), (5, 0.3)]:  # two resumes, each saving a worse checkpoint
    checkpointer = Checkpointer(directory, keep=1, monitor="val_loss", mode="min")
    checkpointer.save(epoch, {"w": jnp.full(2, float(epoch))}, {"val_loss": val_loss})
    checkpointer.close()
  checkpointer = Checkpointer(directory, keep=1, monitor="val_loss", mode="min")
  assert checkpointer.epochs() == [2, 5]
  np.testing.assert_array_equal(checkpointer.restore(2, like={"w": jnp.zeros(2)})["w"], [2.0, 2.0])


def _fit(state, train_step, eval_step, digits, workdir, *, epochs, resume=False, patience=None):
  return fit(
      state, train_step=train_step, eval_step=eval_step, dataset=digits, batch_size=128, epochs=epochs,
      progress=False, checkpointer=Checkpointer(str(workdir / "checkpoints"), keep=1),
      writer=MetricWriter(str(workdir)), resume=resume,
      early_stopping=EarlyStopping(monitor="val_loss", patience=patience, min_delta=10.0),
  )


def test_a_run_that_stopped_early_stays_stopped_and_keeps_its_best_model(digits, mlp_run, tmp_path):
  state, train_step, eval_step = mlp_run()
  # min_delta=10: no epoch after the first improves, so patience 2 stops the run after epoch 3.
  first = _fit(state, train_step, eval_step, digits, tmp_path, epochs=20, patience=2)
  assert first.summary["epochs_run"] == 3 and first.summary["best_epoch"] == 1
  for _ in range(2):
    again = _fit(state, train_step, eval_step, digits, tmp_path, epochs=20, patience=2, resume=True)
    assert again.summary["epochs_run"] == 3 and again.summary["steps"] == first.summary["steps"]
    assert again.summary["stop_reason"].startswith("early stopping: val_loss did not improve")
    assert [r["epoch"] for r in again.history] == [1, 2, 3]
  assert 1 in Checkpointer(str(tmp_path / "checkpoints")).epochs()  # the best model is still on disk
  for a, b in zip(jax.tree.leaves(again.state.params), jax.tree.leaves(first.state.params), strict=True):
    np.testing.assert_array_equal(a, b)


def test_resuming_with_fewer_epochs_than_were_trained_is_refused(digits, mlp_run, tmp_path):
  state, train_step, eval_step = mlp_run()
  _fit(state, train_step, eval_step, digits, tmp_path, epochs=3)
  with pytest.raises(CheckpointError, match=r"latest checkpoint .* is epoch 3, past epochs=2: resume with epochs >= 3"):
    _fit(state, train_step, eval_step, digits, tmp_path, epochs=2, resume=True)
  assert _fit(state, train_step, eval_step, digits, tmp_path, epochs=3, resume=True).summary["epochs_run"] == 3


def test_a_run_that_committed_no_checkpoint_can_be_rerun_as_the_error_says(tmp_path):
  """What a run killed in its first epoch leaves (config.json, a partial metrics file, an empty checkpoint folder)."""
  workdir = tmp_path / "run"
  config, _ = load_config("digits_mlp:smoke", [("train.progress_bar", "False"), ("train.epochs", "1")])
  workdir.mkdir()
  (workdir / "config.json").write_text(json.dumps(config.to_dict()))
  (workdir / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 9.0}\n{"epo')
  (workdir / "checkpoints").mkdir()
  with pytest.raises(CheckpointError, match="start the run without --resume") as error:
    train_and_evaluate(config, str(workdir), resume=True)
  assert "nothing to resume" in str(error.value)
  result = train_and_evaluate(config, str(workdir))  # the advice, followed
  assert result.summary["epochs_run"] == 1
  assert [json.loads(line)["epoch"] for line in open(workdir / "metrics.jsonl")] == [1]
  with pytest.raises(CheckpointError, match="already holds a run"):
    train_and_evaluate(config, str(workdir))
  assert os.path.exists(workdir / "summary.json")


def test_the_run_lock_names_its_holder_and_is_taken_over_after_it_dies(tmp_path):
  import subprocess
  import sys
  import warnings

  from jaxreg.train.rundir import RunLock

  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time\nfrom jaxreg.train.rundir import RunLock\n"
       f"with RunLock({str(tmp_path)!r}):\n  print('locked', flush=True)\n  time.sleep(60)"],
      stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(CheckpointError, match=f"in use by another jaxreg run \\(process {holder.pid}\\)"):
      with RunLock(str(tmp_path)):
        pass
  finally:
    holder.kill()
    holder.wait()
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    with RunLock(str(tmp_path)):
      pass
  assert any(f"took over from a run (process {holder.pid})" in str(w.message) for w in caught)
  with RunLock(str(tmp_path)):  # a clean exit leaves nothing to take over
    pass


def test_the_metrics_file_drops_a_cut_last_line_and_names_a_damaged_one(tmp_path):
  from jaxreg.errors import DataError

  writer = MetricWriter(str(tmp_path))
  for epoch in (1, 2, 3):
    writer.write({"epoch": epoch, "train_loss": 1.0 / epoch})
  with open(writer.path, "a") as f:
    f.write('{"epoch": 4, "train_lo')  # a kill in the middle of a write
  assert [r["epoch"] for r in writer.truncate_after(2)] == [1, 2]
  assert [r["epoch"] for r in writer.read()] == [1, 2]
  lines = open(writer.path).read().splitlines()
  with open(writer.path, "w") as f:
    f.write("\n".join([lines[0], "{garbage", lines[1]]) + "\n")
  with pytest.raises(DataError, match="line 2 is damaged .* delete that line"):
    writer.read()
