"""Resume after a kill, and clear errors for missing or corrupt checkpoints."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from jaxreg import cli
from jaxreg.config import load_config
from jaxreg.errors import CheckpointError
from jaxreg.train import Checkpointer
from jaxreg.train.checkpoint import RecoveryWarning
from jaxreg.experiment import train_and_evaluate

# A run long enough to be killed in the middle; dropout makes the rng stream matter.
OVERRIDES = [
    "--config.train.epochs=12", "--config.model.hidden_sizes=[64]", "--config.model.dropout_rate=0.3",
    "--config.data.batch_size=16", "--config.checkpoint.keep=2",
]


pytestmark = pytest.mark.slow  # end-to-end: full runs, resumed in real processes

def _command(workdir, *extra):
  return [sys.executable, "-m", "jaxreg.cli", "train", "--workdir", str(workdir), "--no-progress", *extra]


def _final_params(workdir):
  from jaxreg.train import Checkpointer

  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"))
  epoch = ckpt.latest_epoch()
  like = _template()
  return epoch, ckpt.restore(epoch, like=like)


def _template():
  """A TrainState with the run's structure, built the way the experiment builds it."""
  import jax.numpy as jnp

  from jaxreg.models import make_model
  from jaxreg.optim import make_optimizer
  from jaxreg.train import create_train_state

  config, _ = load_config("digits_mlp:smoke", [tuple(o[len("--config."):].split("=")) for o in OVERRIDES])
  model = make_model(num_outputs=10, **config.model)
  return create_train_state(model, make_optimizer(**config.optimizer), rng=jax.random.PRNGKey(0),
                            sample_x=jnp.zeros((1, 64)))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
  subprocess.run(_command(workdir, "--config", "digits_mlp:smoke", *OVERRIDES), check=True, timeout=300)
  return workdir


def test_a_killed_run_resumes_to_the_same_parameters(tmp_path, uninterrupted):
  workdir = tmp_path / "run"
  proc = subprocess.Popen(_command(workdir, "--config", "digits_mlp:smoke", *OVERRIDES))
  deadline = time.monotonic() + 240
  while not (workdir / "checkpoints" / "3").exists():
    assert proc.poll() is None, "the run ended before it could be killed"
    assert time.monotonic() < deadline
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  assert not (workdir / "summary.json").exists()
  killed_at = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert 3 <= killed_at < 12

  # --resume with no --config continues from the config saved in the work directory.
  subprocess.run(_command(workdir, "--resume"), check=True, timeout=300)

  epoch_a, state_a = _final_params(uninterrupted)
  epoch_b, state_b = _final_params(workdir)
  assert epoch_a == epoch_b == 12
  for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
    np.testing.assert_array_equal(a, b)
  lines_a = [json.loads(l) for l in (uninterrupted / "metrics.jsonl").read_text().splitlines()]
  lines_b = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [l["epoch"] for l in lines_b] == list(range(1, 13))
  assert [l["val_loss"] for l in lines_a] == [l["val_loss"] for l in lines_b]
  summary_a = json.loads((uninterrupted / "summary.json").read_text())
  summary_b = json.loads((workdir / "summary.json").read_text())
  assert summary_b["resumed"] is True
  for key in ("test_accuracy", "test_loss", "best_epoch", "epochs_run"):
    assert summary_a[key] == summary_b[key], key


def _start_and_wait_for(workdir, epoch, *extra):
  proc = subprocess.Popen(_command(workdir, "--config", "digits_mlp:smoke", *OVERRIDES, *extra),
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
  deadline = time.monotonic() + 240
  while not (workdir / "checkpoints" / str(epoch)).exists():
    assert proc.poll() is None, "the run ended before the signal"
    assert time.monotonic() < deadline
    time.sleep(0.01)
  return proc


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_at_the_epoch_end_with_a_checkpoint_and_the_resume_command(tmp_path, uninterrupted, sig, code):
  workdir = tmp_path / "run"
  proc = _start_and_wait_for(workdir, 2)
  proc.send_signal(sig)
  _, err = proc.communicate(timeout=240)
  assert proc.returncode == code, err
  assert "Traceback" not in err
  assert f"interrupted by {signal.Signals(sig).name}" in err
  assert f"jaxreg train --workdir {workdir} --resume" in err
  stopped = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert 2 <= stopped < 12
  assert [json.loads(l)["epoch"] for l in (workdir / "metrics.jsonl").read_text().splitlines()] == list(
      range(1, stopped + 1))
  subprocess.run(_command(workdir, "--resume"), check=True, timeout=300)  # the printed advice, followed
  for a, b in zip(jax.tree.leaves(_final_params(uninterrupted)[1]), jax.tree.leaves(_final_params(workdir)[1]),
                  strict=True):
    np.testing.assert_array_equal(a, b)


def test_a_second_ctrl_c_exits_at_once_and_keeps_the_committed_checkpoints(tmp_path):
  workdir = tmp_path / "run"
  proc = _start_and_wait_for(workdir, 2)
  proc.send_signal(signal.SIGINT)
  time.sleep(0.05)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=240)
  assert proc.returncode == 130, err
  assert "Traceback" not in err and "interrupted" in err
  epoch, state = _final_params(workdir)  # the newest committed checkpoint restores
  assert epoch >= 2 and jax.tree.leaves(state)
  subprocess.run(_command(workdir, "--resume"), check=True, timeout=300)


def test_two_runs_cannot_share_a_directory(tmp_path):
  workdir = tmp_path / "run"
  first = _start_and_wait_for(workdir, 1, "--config.train.epochs=1000")  # still running when the second starts
  second = subprocess.run(_command(workdir, "--config", "digits_mlp:smoke", *OVERRIDES), capture_output=True,
                          text=True, timeout=240)
  assert first.poll() is None
  assert second.returncode == 2
  assert f"is in use by another jaxreg run (process {first.pid})" in second.stderr
  first.send_signal(signal.SIGKILL)
  first.wait()
  latest = max(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  resumed = subprocess.run(_command(workdir, "--resume", f"--config.train.epochs={latest + 1}"), capture_output=True,
                           text=True, timeout=300)
  assert resumed.returncode == 0, resumed.stderr
  assert f"jaxreg: notice: {workdir}: took over from a run (process {first.pid})" in resumed.stderr


def _epochs_logged(workdir) -> int:
  path = workdir / "metrics.jsonl"
  return len(path.read_text().splitlines()) if path.exists() else 0


def test_ten_kills_at_random_moments_end_like_an_uninterrupted_run(tmp_path, uninterrupted):
  """kill -9 at random moments (start-up, first epoch, mid-run, during a checkpoint write), then go on as advised.

  Each kill waits for a random point of progress (the run's k-th epoch line, k rising; k = 0 is a random moment
  of start-up) plus a random fraction of a second, so kills land at every stage whatever the machine's speed.
  """
  import random

  workdir, chance = tmp_path / "run", random.Random(0)
  targets = sorted(chance.sample(range(0, 11), 10))  # the last epoch lines are 11 and 12: always time to kill
  kills = 0
  while not (workdir / "summary.json").exists():
    committed = (workdir / "checkpoints").is_dir() and any(
        p.name.isdigit() for p in (workdir / "checkpoints").iterdir())
    # With a committed checkpoint the run continues with --resume; before one, a plain rerun starts over.
    extra = ("--resume",) if committed else ("--config", "digits_mlp:smoke", *OVERRIDES)
    proc = subprocess.Popen(_command(workdir, *extra), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    if kills < len(targets):
      target = targets[kills]
      deadline = time.monotonic() + (chance.uniform(0.3, 3.0) if target == 0 else 240)
      while proc.poll() is None and time.monotonic() < deadline and (target == 0 or _epochs_logged(workdir) < target):
        time.sleep(0.005)
      time.sleep(chance.uniform(0.0, 0.2))
      if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        kills += 1
    _, err = proc.communicate(timeout=300)
    assert proc.returncode in (0, -signal.SIGKILL), err
  assert kills == 10
  epoch_a, state_a = _final_params(uninterrupted)
  epoch_b, state_b = _final_params(workdir)
  assert epoch_a == epoch_b == 12
  for a, b in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b), strict=True):
    np.testing.assert_array_equal(a, b)
  lines = [[json.loads(l) for l in (w / "metrics.jsonl").read_text().splitlines()] for w in (uninterrupted, workdir)]
  assert [l["val_loss"] for l in lines[0]] == [l["val_loss"] for l in lines[1]]
  summaries = [json.loads((w / "summary.json").read_text()) for w in (uninterrupted, workdir)]
  for key in ("test_accuracy", "test_loss", "best_epoch", "epochs_run"):
    assert summaries[0][key] == summaries[1][key], key
  assert summaries[1]["best_epoch"] in [int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()]


def test_resume_refuses_a_changed_config(tmp_path, uninterrupted, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted, workdir)
  code = cli.main(["train", "--workdir", str(workdir), "--resume", "--no-progress", "--config.model.dropout_rate=0.1"])
  assert code == 2
  err = capsys.readouterr().err
  assert "differs from the run in" in err and "at: model.dropout_rate" in err  # the learning rate may change


def _tamper(directory, epoch):
  """Rewrites a checkpoint's arrays with one value changed, keeping its saved metrics and checksum: bytes that
  still decode, as a flipped bit in an uncompressed chunk would leave them."""
  import orbax.checkpoint as ocp

  from jaxreg.train import Checkpointer

  checkpointer = Checkpointer(str(directory))
  state = checkpointer.restore(epoch, like=_template())
  metrics = checkpointer._manager.metrics(epoch)
  checkpointer.close()
  tampered = state.replace(params=jax.tree.map(lambda a: a.at[(0,) * a.ndim].add(1.0), state.params))
  shutil.rmtree(directory / str(epoch))
  manager = ocp.CheckpointManager(str(directory), options=ocp.CheckpointManagerOptions(best_fn=lambda m: 0))
  manager.save(epoch, args=ocp.args.StandardSave(tampered), metrics=metrics)
  manager.wait_until_finished()
  manager.close()


def _corrupt(folder):
  for root, _, files in os.walk(folder):
    for name in files:
      with open(os.path.join(root, name), "wb") as f:
        f.write(b"\x00garbage" * 8)


@pytest.mark.parametrize("damaged, message", [
    ("", "checkpoint 12 is damaged .* moved it to .*corrupt-12"),  # everything, its metrics included
    ("default", "checkpoint 12 could not be used .* resumed from epoch 11 instead, and moved it to .*corrupt-12"),
    (None, "checkpoint 12 could not be used .*do not match the checksum saved with them.* resumed from epoch 11"),
], ids=["whole", "arrays", "arrays-that-still-decode"])
def test_a_corrupt_checkpoint_is_set_aside_and_the_run_resumes_from_the_newest_intact_one(
    tmp_path, uninterrupted, damaged, message):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted, workdir)
  (workdir / "metrics.jsonl").write_text((workdir / "metrics.jsonl").read_text() + '{"epoch": 13, "train_lo')
  if damaged is None:
    _tamper(workdir / "checkpoints", 12)
  else:
    _corrupt(workdir / "checkpoints" / "12" / damaged)
  with pytest.warns(RecoveryWarning, match=message):
    code = cli.main(["train", "--workdir", str(workdir), "--resume", "--no-progress", "--config.train.epochs=14"])
  assert code == 0
  assert (workdir / "checkpoints" / "corrupt-12").is_dir()  # set aside, not deleted
  # The damaged last line (a write cut short) is dropped, the history cut back to epoch 11, then continued.
  assert [json.loads(l)["epoch"] for l in (workdir / "metrics.jsonl").read_text().splitlines()] == list(range(1, 15))


def test_when_no_checkpoint_can_be_read_the_error_says_so(tmp_path, uninterrupted, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted, workdir)
  for folder in (workdir / "checkpoints").iterdir():
    _corrupt(folder)
  with pytest.warns(RecoveryWarning):
    code = cli.main(["train", "--workdir", str(workdir), "--resume", "--no-progress", "--config.train.epochs=14"])
  assert code == 2
  err = capsys.readouterr().err
  assert "can be read (set aside:" in err and "start the run again in a new --workdir" in err
  assert len((workdir / "metrics.jsonl").read_text().splitlines()) == 12  # nothing lost


def test_the_advice_for_an_unreadable_best_checkpoint_works(tmp_path, capsys):
  workdir = tmp_path / "run"
  # min_delta=100: only the first epoch counts as an improvement, so epoch 1 is the best, kept beside the latest.
  first = ["train", "--config", "digits_mlp:smoke", "--workdir", str(workdir), "--no-progress",
           "--config.train.epochs=4", "--config.checkpoint.keep=1", "--config.train.early_stopping.min_delta=100.0"]
  assert cli.main(first) == 0
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [1, 4]
  _corrupt(workdir / "checkpoints" / "1")
  args = ["train", "--workdir", str(workdir), "--resume", "--no-progress", "--config.train.epochs=5"]
  with pytest.warns(RecoveryWarning, match="checkpoint 1 is damaged"):
    assert cli.main(args) == 2
  err = capsys.readouterr().err
  assert "best epoch (1)" in err and "--config.train.early_stopping.restore_best=False" in err
  assert cli.main(args + ["--config.train.early_stopping.restore_best=False"]) == 0  # the advice, followed


def test_resume_without_checkpoints_is_an_error_not_a_fresh_start(tmp_path, uninterrupted, capsys):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted, workdir)
  shutil.rmtree(workdir / "checkpoints")
  code = cli.main(["train", "--workdir", str(workdir), "--resume", "--no-progress", "--config.train.epochs=14"])
  assert code == 2
  assert "nothing to resume: no checkpoint in" in capsys.readouterr().err
  code = cli.main(["train", "--workdir", str(tmp_path / "empty"), "--resume", "--no-progress"])
  assert code == 2
  assert "nothing to resume in" in capsys.readouterr().err


def test_resume_can_extend_a_finished_run(tmp_path, uninterrupted):
  workdir = tmp_path / "run"
  shutil.copytree(uninterrupted, workdir)
  config, _ = load_config(str(workdir / "config.json"), [("train.epochs", "13")])
  result = train_and_evaluate(config, str(workdir), resume=True)
  assert result.summary["epochs_run"] == 13
  assert [json.loads(l)["epoch"] for l in (workdir / "metrics.jsonl").read_text().splitlines()] == list(range(1, 14))
  with pytest.raises(CheckpointError, match="already holds a run"):
    train_and_evaluate(config, str(workdir), resume=False)


STREAMING = ("--config.data.on_device=never", "--config.data.batch_size=1", "--config.train.epochs=2")


def test_a_signal_on_the_streaming_path_drops_the_epoch_in_progress_and_the_resume_redoes_it(tmp_path):
  """Data streamed from the host: the signal stops the run at the next step, not at the end of a long epoch."""
  reference = tmp_path / "reference"
  subprocess.run(_command(reference, "--config", "digits_mlp:smoke", *STREAMING), check=True, timeout=300)
  epoch_seconds = json.loads((reference / "metrics.jsonl").read_text().splitlines()[1])["train_seconds"]

  workdir = tmp_path / "run"
  proc = subprocess.Popen(_command(workdir, "--config", "digits_mlp:smoke", *STREAMING), stderr=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, text=True)
  deadline = time.monotonic() + 240
  while not (workdir / "checkpoints" / "1").exists():  # committed after epoch 1: epoch 2 is under way
    assert proc.poll() is None and time.monotonic() < deadline
    time.sleep(0.005)
  sent = time.monotonic()
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=240)
  stopped_after = time.monotonic() - sent
  assert proc.returncode == 143 and "Traceback" not in err, err
  assert f"interrupted by SIGTERM; epoch 1 is checkpointed; continue with: jaxreg train --workdir {workdir} --resume" in err
  assert [json.loads(l)["epoch"] for l in (workdir / "metrics.jsonl").read_text().splitlines()] == [1]
  assert not (workdir / "summary.json").exists()  # not finished: it resumes
  print(f"stopped {stopped_after:.2f} s after the signal; an epoch trains for {epoch_seconds:.2f} s")

  subprocess.run(_command(workdir, "--resume"), check=True, timeout=300)
  expected = Checkpointer(str(reference / "checkpoints")).restore(2, like=_streaming_template())
  resumed = Checkpointer(str(workdir / "checkpoints")).restore(2, like=_streaming_template())
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(resumed), strict=True):
    np.testing.assert_array_equal(a, b)


def _streaming_template():
  import jax.numpy as jnp

  from jaxreg.models import make_model
  from jaxreg.optim import make_optimizer
  from jaxreg.train import create_train_state

  config, _ = load_config("digits_mlp:smoke")
  return create_train_state(make_model(num_outputs=10, **config.model), make_optimizer(**config.optimizer),
                            rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 64)))
