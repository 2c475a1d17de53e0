"""jaxreg as users install it: the built wheel in a fresh environment, from another directory.

The rest of the suite imports the checkout (an editable install), whose
import hook finds a module even when the wheel would lack it. These tests
build the wheel, install it alone into a fresh venv (see ``installed.py``)
and run it from a directory outside the checkout.
"""

import json
import pathlib
import subprocess
import sys

import pytest

from installed import (
    CHECKOUT, OLD_PYPROJECT_PACKAGES, build_wheel, checkout_modules, copy_source, env_vars,
    fresh_env, import_everything, install, load_install_cell_tool, run_ipython_cell,
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
  """The wheel built from the checkout, once for this file."""
  source = copy_source(tmp_path_factory.mktemp("source"))
  return build_wheel(source, tmp_path_factory.mktemp("dist"))


def _jaxreg(python, *args, cwd, timeout=300):
  return subprocess.run(
      [str(python.parent / "jaxreg"), *args],
      capture_output=True, text=True, cwd=cwd, env=env_vars(python), timeout=timeout,
  )


def test_the_module_list_covers_every_subpackage():
  modules = checkout_modules()
  subpackages = {p.name for p in (CHECKOUT / "jaxreg").iterdir() if (p / "__init__.py").exists()}
  assert subpackages >= {"data", "models", "optim", "parallel", "regularizers", "train"}
  assert {f"jaxreg.{name}" for name in subpackages} <= set(modules)
  assert "jaxreg.configs.digits_mlp" in modules and "jaxreg.cli" in modules


@pytest.mark.slow
def test_installed_wheel_imports_everything_and_trains(wheel, tmp_path):
  python = fresh_env(tmp_path / "env")
  install(python, wheel)
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()

  report = import_everything(python, cwd=elsewhere)
  assert report["failed"] == {}
  assert pathlib.Path(report["file"]).is_relative_to(tmp_path / "env"), report["file"]
  assert report["editable_finders"] == []  # the checkout's import hook is not in play

  listed = _jaxreg(python, "configs", cwd=elsewhere)
  assert listed.returncode == 0, listed.stderr
  expected = sorted(p.stem for p in (CHECKOUT / "configs").glob("*.py") if not p.stem.startswith("_"))
  assert listed.stdout.split() == expected

  run = _jaxreg(python, "train", "--config", "digits_mlp:smoke", "--workdir", "run", "--no-progress",
                cwd=elsewhere)
  assert run.returncode == 0, run.stderr
  assert f"workdir: {elsewhere / 'run'}" in run.stdout
  summary = json.loads((elsewhere / "run" / "summary.json").read_text())
  assert summary["epochs_run"] == 3 and 0.5 < summary["test_accuracy"] <= 1.0
  assert f'"test_accuracy": {summary["test_accuracy"]}' in run.stdout


@pytest.mark.slow
def test_the_wheel_test_fails_on_the_old_package_list(tmp_path):
  """The checks above catch today's bug: a wheel built from the hand-written list lacks jaxreg.parallel."""
  source = copy_source(tmp_path / "source")
  (source / "setup.py").unlink()
  pyproject = source / "pyproject.toml"
  pyproject.write_text(pyproject.read_text() + OLD_PYPROJECT_PACKAGES)
  python = fresh_env(tmp_path / "env")
  install(python, build_wheel(source, tmp_path / "dist"))
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()

  report = import_everything(python, cwd=elsewhere)
  parallel = {name for name in checkout_modules() if name.startswith("jaxreg.parallel")}
  assert parallel and parallel <= set(report["failed"])
  assert "No module named 'jaxreg.parallel'" in report["failed"]["jaxreg.parallel"]
  run = _jaxreg(python, "train", "--config", "digits_mlp:smoke", cwd=elsewhere)
  assert run.returncode != 0 and "No module named 'jaxreg." in run.stderr  # the first subpackage it lacks


def test_every_notebook_starts_with_the_install_cell_from_pyproject():
  tool = load_install_cell_tool()
  url = tool.repository_url()
  assert url.startswith("https://") and f"git+{url}" in tool.install_cell()
  differing = [path.name for path, text in tool.notebook_cells().items() if text != tool.install_cell()]
  assert not differing, f"run python tools/install_cell.py to update: {differing}"


def _colab_cell_installs(python, source, tmp_path, extra_env=()):
  cell = load_install_cell_tool().install_cell()
  env = dict(env_vars(python), JAXREG_SOURCE=str(source), **dict(extra_env))
  elsewhere = tmp_path / "content"
  elsewhere.mkdir()
  first, printed = run_ipython_cell(python, cell, cwd=elsewhere, env=env)
  assert first["success"], first["error"] + printed
  report = import_everything(python, cwd=elsewhere)
  assert report["failed"] == {} and pathlib.Path(report["file"]).is_relative_to(tmp_path / "env")
  again, printed = run_ipython_cell(python, cell, cwd=elsewhere, env=env)
  assert again["success"] and "jaxreg is installed:" in printed, printed  # skipped: no second install


@pytest.mark.slow
def test_colab_install_cell_installs_a_local_wheel_in_a_fresh_env(wheel, tmp_path):
  python = fresh_env(tmp_path / "env")
  _colab_cell_installs(python, wheel, tmp_path)


@pytest.mark.slow
def test_colab_install_cell_installs_a_local_folder_in_a_fresh_env(tmp_path):
  source = copy_source(tmp_path / "jaxreg-source")
  python = fresh_env(tmp_path / "env")
  # pip builds the folder; offline, its build backend comes from the test environment.
  _colab_cell_installs(python, source, tmp_path, extra_env={"PIP_NO_BUILD_ISOLATION": "0"})


def test_declared_dependencies_are_what_the_package_imports():
  """pyproject's dependencies are exactly the third-party modules jaxreg imports (and the extras, theirs)."""
  import ast
  import re
  import tomllib

  project = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]
  import_name = {"orbax-checkpoint": "orbax", "scikit-learn": "sklearn", "dm-pix": "dm_pix"}
  declared = {import_name.get(d, d) for d in (re.split(r"[<>=!~ \[;]", r)[0] for r in project["dependencies"])}
  imported = set()
  for file in (CHECKOUT / "jaxreg").rglob("*.py"):
    for node in ast.walk(ast.parse(file.read_text())):
      if isinstance(node, ast.Import):
        imported |= {alias.name.split(".")[0] for alias in node.names}
      elif isinstance(node, ast.ImportFrom) and node.level == 0:
        imported.add(node.module.split(".")[0])
  third_party = {name for name in imported if name not in sys.stdlib_module_names and name != "jaxreg"}
  # filelock is imported by JAX itself, for the size-capped compilation cache the CLI turns on.
  assert declared - {"filelock"} == third_party - {"matplotlib", "tensorboard"}
  assert project["optional-dependencies"]["plot"] == ["matplotlib>=3.8"] and "matplotlib" in third_party
  # Reading event files back (jaxreg.train.read_scalars) uses TensorBoard's own reader; writing needs nothing.
  assert project["optional-dependencies"]["tensorboard"] == ["tensorboard>=2.16"] and "tensorboard" in third_party


def test_the_library_imports_no_heavy_module_it_does_not_use(tmp_path):
  """``import jaxreg.optim`` / ``jaxreg.train`` leave Orbax, tqdm and matplotlib to the code that uses them."""
  code = ("import sys, jaxreg.optim, jaxreg.train, jaxreg.regularizers, jaxreg.models\n"
          "print(sorted(m for m in ('orbax', 'tqdm', 'matplotlib', 'sklearn') if m in sys.modules))")
  run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
  assert run.returncode == 0, run.stderr
  assert run.stdout.strip() == "[]"
