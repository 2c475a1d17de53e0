"""Compilation: programs per run, and the CLI's persistent compilation cache."""

import json
import os
import re
import subprocess
import sys

import jax
import pytest

from jaxreg.compilation import CACHE_ENV, count_compilations, default_compilation_cache_dir, resolve_cache_dir

SMOKE = ["train", "--config", "digits_mlp:smoke", "--no-progress"]
# What one smoke run compiles: the two programs of PRNGKey(seed), the state's
# initialization, the scanned epoch, one evaluation for validation and test, and
# the activation-sparsity forward pass.
SMOKE_PROGRAMS = 6


def _cli_env(tmp_path, **changes):
  """The CLI's environment with no cache settings inherited from the test session, and a private cache home."""
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAX_COMPILATION_CACHE_DIR", CACHE_ENV, "JAXREG_CACHE_DIR")}
  env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
  env.update(changes)
  return env


def _run(args, cwd, env, log_compiles=False):
  env = dict(env, JAX_LOG_COMPILES="1") if log_compiles else env
  return subprocess.run([sys.executable, "-m", "jaxreg.cli", *args], capture_output=True, text=True,
                        cwd=cwd, env=env, timeout=600)


def test_count_compilations_counts_programs_and_stops_listening():
  from jax._src import monitoring  # the listener lists have no public getter

  listeners = (len(monitoring.get_event_duration_listeners()), len(monitoring.get_event_listeners()))
  with count_compilations() as count:
    jax.jit(lambda x: x * 3.0 + 1.0)(2.0)  # a new function: one program
  assert count.programs == 1 and count.seconds > 0
  with count_compilations() as again:
    pass
  assert again.programs == 0
  jax.jit(lambda x: x - 1.0)(2.0)  # outside the block: not counted
  assert count.programs == 1
  assert (len(monitoring.get_event_duration_listeners()), len(monitoring.get_event_listeners())) == listeners


@pytest.mark.slow
def test_a_smoke_run_compiles_each_program_once(tmp_path):
  env = _cli_env(tmp_path)
  counts = {}
  for epochs in (3, 6):
    run = _run(SMOKE + ["--workdir", f"run{epochs}", "--compilation-cache", "off",
                        f"--config.train.epochs={epochs}"], tmp_path, env, log_compiles=True)
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / f"run{epochs}" / "summary.json").read_text())
    counts[epochs] = summary["compilations"]["programs"]
    names = re.findall(r"Compiling (\S+) with", run.stderr)
    assert len(names) == counts[epochs], names
    assert names.count("jit(evaluate)") == 1  # validation and test share one program
    assert names.count("jit(run_epoch)") == 1  # no recompilation after the first epoch
    assert f"compiled {counts[epochs]} XLA programs" in run.stdout
  assert counts == {3: SMOKE_PROGRAMS, 6: SMOKE_PROGRAMS}


@pytest.mark.slow
def test_the_cli_caches_compilations_by_default_and_can_be_told_not_to(tmp_path):
  env = _cli_env(tmp_path)
  default_dir = tmp_path / "xdg-cache" / "jaxreg" / "jax-compilation"
  first = _run(SMOKE + ["--workdir", "a"], tmp_path, env)
  assert first.returncode == 0, first.stderr
  assert any(default_dir.iterdir())  # the user's cache directory, beside MNIST-1D's
  second = _run(SMOKE + ["--workdir", "b"], tmp_path, env)
  compilations = json.loads((tmp_path / "b" / "summary.json").read_text())["compilations"]
  assert compilations["cache_hits"] == compilations["programs"] == SMOKE_PROGRAMS
  assert f"({SMOKE_PROGRAMS} from the persistent cache)" in second.stdout

  moved = tmp_path / "moved"
  third = _run(SMOKE + ["--workdir", "c"], tmp_path, dict(env, **{CACHE_ENV: str(moved)}))
  assert third.returncode == 0 and any(moved.iterdir())
  offs = [subprocess.Popen([sys.executable, "-m", "jaxreg.cli", *SMOKE, "--workdir", f"off{len(how)}", *how],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env_off)
          for how, env_off in ((["--compilation-cache", "off"], env), ([], dict(env, **{CACHE_ENV: "off"})))]
  for off in offs:  # the flag and the variable, run side by side
    out, err = off.communicate(timeout=600)
    assert off.returncode == 0, err
    assert "(0 from the persistent cache)" in out


@pytest.mark.slow
def test_runs_started_together_share_an_empty_cache(tmp_path):
  env = _cli_env(tmp_path, **{CACHE_ENV: str(tmp_path / "shared")})
  runs = [subprocess.Popen([sys.executable, "-m", "jaxreg.cli", *SMOKE, "--workdir", f"run{i}"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
          for i in range(3)]
  outputs = [run.communicate(timeout=600) for run in runs]
  assert [run.returncode for run in runs] == [0, 0, 0], [err for _, err in outputs]
  assert not any("Error reading persistent compilation cache" in err for _, err in outputs)
  summaries = [json.loads((tmp_path / f"run{i}" / "summary.json").read_text()) for i in range(3)]
  assert len({s["test_accuracy"] for s in summaries}) == 1 and len({s["test_loss"] for s in summaries}) == 1
  after = _run(SMOKE + ["--workdir", "after"], tmp_path, env)
  assert after.returncode == 0
  assert json.loads((tmp_path / "after" / "summary.json").read_text())["compilations"]["cache_hits"] == SMOKE_PROGRAMS


@pytest.mark.slow
def test_the_library_changes_no_jax_setting(tmp_path):
  code = (
      "import jax\n"
      "from jaxreg.config import load_config\n"
      "from jaxreg.experiment import train_and_evaluate\n"
      "before = {k: getattr(jax.config, k) for k in ('jax_compilation_cache_dir', "
      "'jax_persistent_cache_min_compile_time_secs', 'jax_compilation_cache_max_size')}\n"
      "config, _ = load_config('digits_mlp:smoke')\n"
      "config.train.progress_bar = False\n"
      "train_and_evaluate(config, 'run')\n"
      "after = {k: getattr(jax.config, k) for k in before}\n"
      "assert before == after and after['jax_compilation_cache_dir'] is None, (before, after)\n"
  )
  run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env=_cli_env(tmp_path), timeout=600)
  assert run.returncode == 0, run.stderr
  assert not (tmp_path / "xdg-cache" / "jaxreg" / "jax-compilation").exists()


def test_resolve_cache_dir(monkeypatch, tmp_path):
  for name in ("JAX_COMPILATION_CACHE_DIR", CACHE_ENV, "JAXREG_CACHE_DIR"):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert resolve_cache_dir(None) == default_compilation_cache_dir() == str(tmp_path / "jaxreg" / "jax-compilation")
  assert resolve_cache_dir("off") is None and resolve_cache_dir("OFF") is None
  assert resolve_cache_dir("~/x") == os.path.expanduser("~/x")
  monkeypatch.setenv(CACHE_ENV, "off")
  assert resolve_cache_dir(None) is None
  assert resolve_cache_dir(str(tmp_path / "flag")) == str(tmp_path / "flag")  # the flag wins
  monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
  assert resolve_cache_dir(None) == str(tmp_path / "env")
  monkeypatch.delenv(CACHE_ENV)
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
  assert resolve_cache_dir(None) is None  # JAX's own setting is left to JAX
