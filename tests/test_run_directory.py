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


def test_a_work_directory_that_cannot_be_made_is_refused_before_anything_is_built(tmp_path, monkeypatch, capsys):
  from jaxreg import cli
  import jaxreg.experiment as experiment

  blocker = tmp_path / "a_file"
  blocker.write_text("")
  monkeypatch.setattr(experiment, "build", lambda config: pytest.fail("built before the directory was checked"))
  for workdir, message in ((blocker, "is a file, not a directory"), (blocker / "run", "is a file; choose another")):
    code = cli.main(["train", "--config", "digits_mlp:smoke", "--workdir", str(workdir), "--no-progress"])
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow  # three runs
def test_resume_finds_relative_data_from_anywhere_and_refuses_different_data(tmp_path, tiny_npz, monkeypatch):
  import shutil

  npz, arrays = tiny_npz
  data_dir = tmp_path / "data"
  data_dir.mkdir()
  shutil.copy(npz, data_dir / "tiny.npz")
  monkeypatch.chdir(data_dir)
  overrides = [("train.progress_bar", "False"), ("data.name", "npz"), ("data.path", "tiny.npz"),
               ("data.batch_size", "16"), ("train.epochs", "2")]
  config, _ = load_config("digits_mlp:smoke", overrides)
  workdir = tmp_path / "run"
  train_and_evaluate(config, str(workdir))
  assert json.loads((workdir / "config.json").read_text())["data"]["path"] == str(data_dir / "tiny.npz")

  monkeypatch.chdir(tmp_path)  # elsewhere: the saved config names the data by its absolute path
  saved, _ = load_config(str(workdir / "config.json"), [("train.epochs", "3")])
  assert train_and_evaluate(saved, str(workdir), resume=True).summary["epochs_run"] == 3

  changed = {k: v.copy() for k, v in arrays.items()}
  changed["x_train"][0, 0] += 1.0
  np.savez(data_dir / "tiny.npz", **changed)
  saved, _ = load_config(str(workdir / "config.json"), [("train.epochs", "4")])
  with pytest.raises(CheckpointError, match="the data differs from the data the run .* was trained on"):
    train_and_evaluate(saved, str(workdir), resume=True)


@pytest.mark.slow  # two runs
def test_a_full_disk_is_named_and_the_run_resumes_once_there_is_space(tmp_path, monkeypatch, capsys):
  import errno

  from jaxreg import cli

  workdir = tmp_path / "run"
  write = MetricWriter.write

  def full_from_epoch_2(self, record):
    if record["epoch"] >= 2:
      raise OSError(errno.ENOSPC, "No space left on device", self.path)
    write(self, record)

  monkeypatch.setattr(MetricWriter, "write", full_from_epoch_2)
  args = ["train", "--config", "digits_mlp:smoke", "--workdir", str(workdir), "--no-progress"]
  assert cli.main(args) == 2
  err = capsys.readouterr().err
  assert "the disk is full" in err and "continue with --resume" in err and "Traceback" not in err
  monkeypatch.setattr(MetricWriter, "write", write)  # space freed
  assert cli.main(["train", "--workdir", str(workdir), "--no-progress", "--resume"]) == 0
  assert [json.loads(line)["epoch"] for line in open(workdir / "metrics.jsonl")] == [1, 2, 3]


def test_a_saved_config_keeps_non_finite_values_exactly(tmp_path):
  from jaxreg.train import write_json

  config = {"train": {"early_stopping": {"min_delta": float("inf")}}, "x": [float("-inf")]}
  write_json(str(tmp_path / "config.json"), config, exact=True)
  assert json.loads((tmp_path / "config.json").read_text()) == config
  write_json(str(tmp_path / "summary.json"), config)  # other files stay strict JSON
  assert json.loads((tmp_path / "summary.json").read_text())["x"] == [None]


FILESYSTEM_SCRIPT = r"""
set -u
PY=$1; OUT=$2; FULL=$(mktemp -d); RO=$(mktemp -d)
mount -t tmpfs -o size=4m tmpfs "$FULL" && mount -t tmpfs -o size=4m tmpfs "$RO" || exit 99
run() {
  name=$1; shift
  "$PY" -m jaxreg train --no-progress "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"; echo $? > "$OUT/$name.rc"
}
# A read-only file system: a new run under it, then a resume of a run that was made read-only.
run ro-first --config digits_mlp:smoke --workdir "$RO/run" --config.train.epochs=2
mount -o remount,ro "$RO" && run ro-new --config digits_mlp:smoke --workdir "$RO/new"
run ro-resume --workdir "$RO/run" --resume --config.train.epochs=3
mount -o remount,rw "$RO" && run ro-resume-writable --workdir "$RO/run" --resume --config.train.epochs=3
# A disk that fills while the run writes: filled by another writer once the first checkpoint is committed.
"$PY" -m jaxreg train --no-progress --config digits_mlp:smoke --workdir "$FULL/run" --config.train.epochs=40 \
  > "$OUT/full.out" 2> "$OUT/full.err" &
pid=$!
until ls "$FULL/run/checkpoints" 2> /dev/null | grep -qx '[0-9]*'; do sleep 0.05; done
dd if=/dev/zero of="$FULL/filler" bs=64k 2> /dev/null
wait $pid; echo $? > "$OUT/full.rc"
rm "$FULL/filler"
run full-resume --workdir "$FULL/run" --resume
cp "$FULL/run/metrics.jsonl" "$OUT/full-metrics.jsonl"; cp "$FULL/run/summary.json" "$OUT/full-summary.json"
cp "$RO/run/metrics.jsonl" "$OUT/ro-metrics.jsonl"
"""


@pytest.mark.slow  # real file systems: about 30 s
def test_a_real_full_disk_and_a_read_only_file_system(tmp_path):
  """Small tmpfs mounts in a private mount namespace (``unshare``): the disk really fills, the directory really is read-only."""
  import shutil
  import subprocess
  import sys

  if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
    pytest.skip("needs unshare with user and mount namespaces; the full disk is also tested with a mocked ENOSPC")
  script = tmp_path / "filesystems.sh"
  script.write_text(FILESYSTEM_SCRIPT)
  done = subprocess.run(["unshare", "-rm", "sh", str(script), sys.executable, str(tmp_path)], timeout=600,
                        capture_output=True, text=True)
  if done.returncode == 99:
    pytest.skip(f"tmpfs cannot be mounted here: {done.stderr}")

  def result(name):
    return int((tmp_path / f"{name}.rc").read_text()), (tmp_path / f"{name}.err").read_text()

  code, err = result("ro-new")
  assert code == 2 and "cannot be written" in err and "choose another" in err and "Traceback" not in err, err
  code, err = result("ro-resume")
  assert code == 2 and "cannot be written" in err and "Traceback" not in err, err
  assert result("ro-resume-writable")[0] == 0  # once writable again, the resume goes on
  assert [json.loads(line)["epoch"] for line in open(tmp_path / "ro-metrics.jsonl")] == [1, 2, 3]
  code, err = result("full")
  assert code == 2 and err.splitlines() == [err.strip()] and "the disk is full" in err, err  # one line, no traceback
  assert "free some space, then continue with --resume" in err
  assert result("full-resume")[0] == 0
  epochs = [json.loads(line)["epoch"] for line in open(tmp_path / "full-metrics.jsonl")]
  assert epochs == list(range(1, 41))
  assert json.loads((tmp_path / "full-summary.json").read_text())["epochs_run"] == 40
