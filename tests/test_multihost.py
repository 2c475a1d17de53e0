"""Multi-host for real: two processes on localhost, JAX's CPU collectives (Gloo), 2 devices each."""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxreg.config import load_config
from jaxreg.experiment import train_and_evaluate
from jaxreg.train import Checkpointer

pytestmark = pytest.mark.slow  # end-to-end: real kernels or processes

WORKER = os.path.join(os.path.dirname(__file__), "multihost_worker.py")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


MODES = ("sharded", "pmap")


def _run_two_processes(output_dir):
  env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
  env.update(XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
  address = f"localhost:{_free_port()}"
  processes = [
      subprocess.Popen(
          [sys.executable, WORKER, address, "2", str(i), str(output_dir), *MODES],
          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      )
      for i in range(2)
  ]
  outputs = []
  try:
    for p in processes:
      outputs.append(p.communicate(timeout=240)[0])
  finally:
    for p in processes:
      p.kill()
  for i, (p, out) in enumerate(zip(processes, outputs, strict=True)):
    assert p.returncode == 0, f"process {i} failed:\n{out[-3000:]}"


def _named(params) -> dict:
  return {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_flatten_with_path(params)[0]}


@pytest.fixture(scope="module")
def single_device_state(tmp_path_factory):
  config, _ = load_config(
      "digits_mlp:smoke", [("train.epochs", "1"), ("model.dropout_rate", "0.0"), ("model.hidden_sizes", "[64]")]
  )
  config.train.progress_bar = False
  return train_and_evaluate(config, str(tmp_path_factory.mktemp("single") / "run")).state


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
  """Both modes, one after the other, in one pair of processes (one start-up of the runtime)."""
  output_dir = tmp_path_factory.mktemp("two_processes")
  _run_two_processes(output_dir)
  return output_dir


@pytest.mark.parametrize("mode", MODES)
def test_two_processes_train_together_and_agree_on_the_parameters(two_process_runs, single_device_state, mode):
  single_device_params = _named(single_device_state.params)
  workdir = two_process_runs / mode
  first, second = (np.load(two_process_runs / f"params_{mode}_{i}.npz") for i in range(2))
  np.testing.assert_array_equal(first["devices"], [4, 2, 2])  # 4 devices in all, 2 per process, 2 processes
  names = [k for k in first.files if k != "devices"]
  assert sorted(names) == sorted(single_device_params)
  for name in names:
    np.testing.assert_array_equal(first[name], second[name])
    # The same global batches as one device, split over 4 devices in 2 processes.
    np.testing.assert_allclose(first[name], single_device_params[name], rtol=1e-5, atol=1e-6)
  # Process 0 alone wrote the run's files; the checkpoint was written once and holds one copy.
  assert sorted(os.listdir(workdir)) == [
      "checkpoints", "config.json", "data_fingerprint.json", "metrics.jsonl", "run.lock", "summary.json",
      "tensorboard"]
  assert len(os.listdir(workdir / "tensorboard")) == 1  # one event file: process 1 wrote none
  assert len((workdir / "metrics.jsonl").read_text().splitlines()) == 1
  # Its checkpoint restores into this single-device process.
  restored = _named(Checkpointer(str(workdir / "checkpoints")).restore(1, like=single_device_state).params)
  for name in names:
    np.testing.assert_array_equal(restored[name], first[name])
