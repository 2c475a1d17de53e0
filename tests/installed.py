"""Helpers for testing jaxreg as users get it: a built wheel in a fresh environment.

A fresh environment is a new venv (no pip, no jaxreg) whose ``deps.pth``
names the test environment's site-packages as a plain path, so jaxreg's
dependencies import from there without a download. Plain path lines in a
``.pth`` file are only appended to ``sys.path``; the ``.pth`` files inside
that folder are not run, so the editable install's import hook (which maps
``jaxreg`` to the checkout and would hide a module missing from the wheel)
is not installed. Whatever jaxreg the fresh environment imports comes from
its own site-packages.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import venv

CHECKOUT = pathlib.Path(__file__).resolve().parent.parent
# What a wheel is built from: the package, the configs and the build files.
SOURCE_FILES = ("jaxreg", "configs", "pyproject.toml", "setup.py", "README.md")

# The hand-written package list that shipped a wheel without jaxreg.parallel.
OLD_PYPROJECT_PACKAGES = '''
[tool.setuptools]
packages = ["jaxreg", "jaxreg.data", "jaxreg.models", "jaxreg.optim", "jaxreg.regularizers",
            "jaxreg.train", "jaxreg.configs"]

[tool.setuptools.package-dir]
"jaxreg.configs" = "configs"
'''


def copy_source(destination: pathlib.Path) -> pathlib.Path:
  """Copies what a wheel is built from (no caches, no build leftovers) to ``destination``."""
  ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
  for name in SOURCE_FILES:
    source = CHECKOUT / name
    if source.is_dir():
      shutil.copytree(source, destination / name, ignore=ignore)
    else:
      shutil.copy2(source, destination / name)
  return destination


def build_wheel(source: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  """Builds the wheel of ``source`` offline (the build backend comes from the test extras)."""
  subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
       "--quiet", "-w", str(out), str(source)],
      check=True, capture_output=True, text=True, cwd=source,
  )
  (wheel,) = out.glob("jaxreg-*.whl")
  return wheel


def fresh_env(path: pathlib.Path) -> pathlib.Path:
  """A new venv without pip or jaxreg, seeing the test environment's packages; returns its python."""
  venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(path)
  python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
  purelib = subprocess.run(
      [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
      check=True, capture_output=True, text=True,
  ).stdout.strip()
  ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
  pathlib.Path(purelib, "deps.pth").write_text("\n".join(sorted(ours)) + "\n")
  return python


def env_vars(python: pathlib.Path) -> dict:
  """The environment for commands in a fresh venv: its bin first, no PYTHONPATH, offline pip."""
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
  env["PATH"] = str(python.parent) + os.pathsep + env["PATH"]
  env["PIP_NO_INDEX"] = "1"  # a missing dependency fails the test instead of downloading
  env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
  return env


def install(python: pathlib.Path, wheel: pathlib.Path) -> None:
  """Installs the wheel alone into the fresh venv (its dependencies are already visible)."""
  subprocess.run(
      [str(python), "-m", "pip", "install", "--no-deps", "--quiet", str(wheel)],
      check=True, capture_output=True, text=True, env=env_vars(python),
  )


def checkout_modules() -> list[str]:
  """Every module of the checkout's package, ``jaxreg.configs.*`` included (what a wheel must hold)."""
  names = []
  for file in sorted((CHECKOUT / "jaxreg").rglob("*.py")):
    parts = file.relative_to(CHECKOUT).with_suffix("").parts
    names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
  for file in sorted((CHECKOUT / "configs").glob("*.py")):
    names.append("jaxreg.configs" if file.stem == "__init__" else f"jaxreg.configs.{file.stem}")
  return names


_IMPORT_ALL = """
import importlib, json, sys, traceback
report = {"failed": {}}
for name in json.loads(sys.argv[1]):
  try:
    importlib.import_module(name)
  except Exception as e:
    report["failed"][name] = f"{type(e).__name__}: {e}"
import jaxreg
report["file"] = jaxreg.__file__
report["editable_finders"] = [type(f).__name__ for f in sys.meta_path if "editable" in repr(f).lower()]
print(json.dumps(report))
"""


def import_everything(python: pathlib.Path, cwd: pathlib.Path) -> dict:
  """Imports every checkout module in the fresh venv; returns ``{file, failed, editable_finders}``."""
  result = subprocess.run(
      [str(python), "-c", _IMPORT_ALL, json.dumps(checkout_modules())],
      capture_output=True, text=True, cwd=cwd, env=env_vars(python), timeout=300,
  )
  assert result.returncode == 0, result.stderr
  return json.loads(result.stdout.strip().splitlines()[-1])


def load_install_cell_tool():
  """``tools/install_cell.py`` as a module (the notebooks' install cell and its check)."""
  import importlib.util

  spec = importlib.util.spec_from_file_location("install_cell", CHECKOUT / "tools" / "install_cell.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


_RUN_CELL = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
result = shell.run_cell(sys.stdin.read())
print(json.dumps({"success": result.success, "error": repr(result.error_in_exec or result.error_before_exec)}))
"""


def run_ipython_cell(python: pathlib.Path, code: str, *, cwd: pathlib.Path, env: dict) -> tuple[dict, str]:
  """Runs one notebook cell (magics included) in an IPython shell of the fresh venv."""
  result = subprocess.run(
      [str(python), "-c", _RUN_CELL], input=code, capture_output=True, text=True,
      cwd=cwd, env=env, timeout=300,
  )
  assert result.returncode == 0, result.stderr
  *printed, last = result.stdout.strip().splitlines()
  return json.loads(last), "\n".join(printed) + result.stderr
