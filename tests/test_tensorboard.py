"""TensorBoard event files hold what metrics.jsonl holds (read back by TensorBoard's own reader); progress lines."""

import io
import shutil

import numpy as np
import pytest

from jaxreg.config import load_config
from jaxreg.experiment import train_and_evaluate
from jaxreg.train import Checkpointer, read_metrics, read_scalars, tensorboard_tag
from jaxreg.train.hooks import EpochEnd, ProgressBar
from jaxreg.train.tensorboard import WriteTensorBoard


def _config(*overrides):
  config, _ = load_config("digits_mlp:smoke", [("train.progress_bar", "False"), *overrides])
  return config


def _scalar_keys(record):
  return [k for k, v in record.items()
          if k not in ("epoch", "step") and isinstance(v, (int, float)) and not isinstance(v, bool)]


def _assert_same(workdir):
  records, scalars = read_metrics(str(workdir)), read_scalars(str(workdir / "tensorboard"))
  assert records
  for key in _scalar_keys(records[0]):
    logged = scalars[tensorboard_tag(key)]
    assert [step for step, _ in logged] == [r["step"] for r in records], key
    np.testing.assert_array_equal([value for _, value in logged], np.float32([r[key] for r in records]), err_msg=key)
  return records, scalars


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_the_event_files_hold_every_number_of_metrics_jsonl_and_every_nth_step(tmp_path):
  result = train_and_evaluate(_config(("train.log_every_steps", "5")), str(tmp_path))
  records, scalars = _assert_same(tmp_path)
  assert {"train/loss", "val/accuracy", "test/loss", "learning_rate", "epoch"} <= set(scalars)
  steps = [step for step, _ in scalars["steps/loss"]]
  assert steps == list(range(5, result.summary["steps"] + 1, 5))
  assert [v for _, v in scalars["epoch"]] == [r["epoch"] for r in records]


@pytest.mark.slow  # the fast tier stays under 3 minutes
@pytest.mark.parametrize("on_device", ["always", "never"])
def test_every_step_averages_to_the_epochs_training_loss(tmp_path, on_device):
  train_and_evaluate(_config(("train.log_every_steps", "1"), ("data.on_device", on_device)), str(tmp_path))
  records, scalars = read_metrics(str(tmp_path)), read_scalars(str(tmp_path / "tensorboard"))
  steps = dict(scalars["steps/loss"])
  assert sorted(steps) == list(range(1, records[-1]["step"] + 1))
  for before, record in zip([{"step": 0}, *records], records):
    losses = [steps[s] for s in range(before["step"] + 1, record["step"] + 1)]
    np.testing.assert_allclose(np.mean(losses), record["train_loss"], rtol=1e-5)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_a_resume_purges_the_epochs_it_trains_again(tmp_path):
  """A run resumed from epoch 2 writes epoch 3 again; TensorBoard drops the first run's epoch 3, as metrics.jsonl does."""
  train_and_evaluate(_config(("checkpoint.keep", "5")), str(tmp_path))
  first = read_scalars(str(tmp_path / "tensorboard"))["val/loss"]
  checkpointer = Checkpointer(str(tmp_path / "checkpoints"))
  assert checkpointer.epochs() == [1, 2, 3]
  checkpointer.close()
  shutil.rmtree(tmp_path / "checkpoints" / "3")  # as if the run had been killed before epoch 3's checkpoint
  (tmp_path / "summary.json").unlink()
  train_and_evaluate(_config(("checkpoint.keep", "5")), str(tmp_path), resume=True)
  records, scalars = _assert_same(tmp_path)
  assert len(list((tmp_path / "tensorboard").glob("events.*"))) == 2
  assert [r["epoch"] for r in records] == [1, 2, 3]
  assert scalars["val/loss"] == first  # the same epochs again, each once


def test_off_writes_no_event_files(tmp_path):
  train_and_evaluate(_config(("train.tensorboard", "False")), str(tmp_path))
  assert not (tmp_path / "tensorboard").exists() and read_metrics(str(tmp_path))


def test_histograms_of_the_weights(tmp_path):
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

  train_and_evaluate(_config(("train.tensorboard_histograms", "True")), str(tmp_path))
  accumulator = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"histograms": 0})
  accumulator.Reload()
  assert "params/dense_0/kernel" in accumulator.Tags()["histograms"]
  assert len(accumulator.Histograms("params/output/bias")) == 3


def test_a_histogram_counts_the_finite_values_only(tmp_path):
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

  from jaxreg.train.event_file import EventFileWriter

  writer = EventFileWriter(str(tmp_path))
  writer.histogram("diverged", np.array([1.0, np.nan, 3.0, np.inf, 2.0]), step=1)
  writer.histogram("all_nan", np.full(4, np.nan), step=1)
  writer.close()
  accumulator = EventAccumulator(str(tmp_path), size_guidance={"histograms": 0})
  accumulator.Reload()
  diverged = accumulator.Histograms("diverged")[0].histogram_value
  assert (diverged.min, diverged.max, diverged.num, diverged.sum, diverged.sum_squares) == (1.0, 3.0, 3.0, 6.0, 14.0)
  assert sum(diverged.bucket) == 3
  assert accumulator.Histograms("all_nan")[0].histogram_value.num == 0


@pytest.mark.parametrize("every", [-1, 1.5, True])
def test_bad_every_steps_is_refused(every):
  with pytest.raises(ValueError, match="every_steps must be an integer >= 0"):
    WriteTensorBoard("/tmp/x", every_steps=every)


def test_tags():
  assert [tensorboard_tag(k) for k in ("train_loss", "val_accuracy", "test_loss", "learning_rate", "trainer_x")] == [
      "train/loss", "val/accuracy", "test/loss", "learning_rate", "trainer_x"]


def test_progress_is_one_plain_line_per_epoch_when_the_output_is_not_a_terminal():
  stream = io.StringIO()
  bar = ProgressBar(2, "digits", stream=stream)
  bar.before_run(0)
  for epoch in (1, 2):
    bar.after_epoch(EpochEnd(epoch, {"train_loss": 0.5 / epoch, "val_accuracy": 0.9, "seconds": 0.25}, None))
  bar.close()
  assert stream.getvalue() == ("digits epoch 1/2: train_loss 0.5000 val_accuracy 0.9000 (0.2 s)\n"
                               "digits epoch 2/2: train_loss 0.2500 val_accuracy 0.9000 (0.2 s)\n")
  assert bar.bar is None and "\r" not in stream.getvalue()


def test_a_terminal_gets_the_bar():
  class Terminal(io.StringIO):
    def isatty(self):
      return True

  assert not ProgressBar(2, stream=Terminal()).lines
  assert ProgressBar(2, stream=Terminal(), style="lines").lines
  with pytest.raises(ValueError, match="style must be"):
    ProgressBar(2, style="fancy")


@pytest.mark.slow  # the fast tier stays under 3 minutes
@pytest.mark.parametrize("mode,on_device", [("pmap", "always"), ("pmap", "never"), ("sharded", "always")])
def test_data_parallel_runs_trace_their_steps_too(tmp_path, mode, on_device):
  overrides = (("train.log_every_steps", "1"), ("data.on_device", on_device), ("parallel.mode", mode),
               ("parallel.num_devices", "2"), ("train.epochs", "1"))
  train_and_evaluate(_config(*overrides), str(tmp_path))
  records, scalars = read_metrics(str(tmp_path)), read_scalars(str(tmp_path / "tensorboard"))
  losses = [v for _, v in scalars["steps/loss"]]
  assert len(losses) == records[-1]["step"]
  np.testing.assert_allclose(np.mean(losses), records[-1]["train_loss"], rtol=1e-5)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_a_population_writes_each_members_metrics(tmp_path):
  train_and_evaluate(_config(("population.size", "2")), str(tmp_path))
  records, scalars = read_metrics(str(tmp_path)), read_scalars(str(tmp_path / "tensorboard"))
  for member in (0, 1):
    logged = scalars[f"val/accuracy/member_{member}"]
    assert [s for s, _ in logged] == [max(r["step"]) for r in records]
    np.testing.assert_array_equal([v for _, v in logged], np.float32([r["val_accuracy"][member] for r in records]))
  assert not any(tag.startswith("active") for tag in scalars)
