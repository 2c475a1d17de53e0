"""The notebooks' first cell, which installs jaxreg where it is not importable yet (Colab).

The source comes from one place, ``[project.urls] Repository`` in
``pyproject.toml``; ``JAXREG_SOURCE`` overrides it with a local wheel, a
local folder or another pip URL (docs/colab.md). ``tests/test_install.py``
checks that every notebook starts with this cell and runs it against a
freshly built wheel.

  python tools/install_cell.py          # rewrite the first code cell of every notebook
  python tools/install_cell.py --check  # exit 1 if a notebook's cell differs
"""

import argparse
import json
import pathlib
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent

CELL = '''\
# Installs jaxreg where it is not importable yet (Colab, a fresh kernel); skipped where it is.
# JAXREG_SOURCE may name a local wheel or folder, or another pip URL (see docs/colab.md).
import importlib.util
import os
import pathlib

if importlib.util.find_spec("jaxreg") is None:
    source = os.environ.get("JAXREG_SOURCE", "git+{url}")
    if "://" not in source:  # a local wheel or folder
        source = pathlib.Path(source).expanduser().resolve().as_uri()
    %pip install -q "jaxreg[plot] @ {{source}}"
else:
    print("jaxreg is installed:", importlib.util.find_spec("jaxreg").origin)'''


def repository_url() -> str:
  """``[project.urls] Repository`` from pyproject.toml."""
  with open(ROOT / "pyproject.toml", "rb") as f:
    return tomllib.load(f)["project"]["urls"]["Repository"]


def install_cell() -> str:
  """The text of the install cell, with the repository URL filled in."""
  return CELL.format(url=repository_url())


def notebook_cells() -> dict[pathlib.Path, str]:
  """Each notebook's first code cell, as text."""
  cells = {}
  for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
    notebook = json.loads(path.read_text())
    first = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    cells[path] = "".join(first["source"])
  return cells


def _rewrite(path: pathlib.Path, text: str) -> None:
  notebook = json.loads(path.read_text())
  first = next(c for c in notebook["cells"] if c["cell_type"] == "code")
  lines = text.split("\n")
  first["source"] = [line + "\n" for line in lines[:-1]] + [lines[-1]]
  first["outputs"], first["execution_count"] = [], None
  path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--check", action="store_true", help="only report notebooks whose cell differs")
  args = parser.parse_args()
  expected = install_cell()
  stale = [path for path, text in notebook_cells().items() if text != expected]
  if args.check:
    for path in stale:
      print(f"{path.relative_to(ROOT)}: the install cell differs; run python tools/install_cell.py")
    return 1 if stale else 0
  for path in stale:
    _rewrite(path, expected)
    print(f"rewrote {path.relative_to(ROOT)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
