"""What users read mentions only what users have: no internal files, no private names, no missing paths."""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Read by users: the README and docs, the notebooks, the package's docstrings and messages,
# the configs they run and the benchmarks they rerun.
USER_FILES = sorted(
    [ROOT / "README.md", ROOT / "pyproject.toml"]
    + list((ROOT / "docs").glob("*.md"))
    + list((ROOT / "notebooks").glob("*.ipynb"))
    + list((ROOT / "jaxreg").rglob("*.py"))
    + list((ROOT / "configs").glob("*.py"))
    + list((ROOT / "bench").glob("*.py"))
)
# Names from the project's own workspace, which no user has.
PRIVATE = re.compile(r"DESIGN\.md|shared/|\bseeds?\s+0\d\d\b|\bseeds'|\bthe seeds\b|\bseed's\b", re.I)
DOCS = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
REPO_PATH = re.compile(r"`((?:docs|bench|configs|notebooks|tests|tools|jaxreg)/[\w./-]+?)(?::\w+)?`")


def _text(path: pathlib.Path) -> str:
  if path.suffix == ".ipynb":
    return "\n".join("".join(cell["source"]) for cell in json.loads(path.read_text())["cells"])
  return path.read_text()


@pytest.mark.parametrize("path", USER_FILES, ids=[str(p.relative_to(ROOT)) for p in USER_FILES])
def test_no_private_names(path):
  hits = [f"line {n}: {line.strip()}" for n, line in enumerate(_text(path).splitlines(), 1) if PRIVATE.search(line)]
  assert not hits, "\n".join(hits)


def test_every_repository_path_in_the_docs_exists():
  missing = []
  for doc in DOCS:
    for path in REPO_PATH.findall(_text(doc)):
      if not (ROOT / path.rstrip("/.")).exists():
        missing.append(f"{doc.name}: {path}")
  assert not missing, missing


def test_readme_commands_name_packaged_configs():
  """``--config NAME[:ARG]`` names a packaged config (a user's own ``file.py`` is theirs)."""
  readme = _text(ROOT / "README.md")
  packaged = {p.stem for p in (ROOT / "configs").glob("*.py") if not p.stem.startswith("_")}
  specs = re.findall(r"jaxreg train[^\n]*?--config (\S+)", readme)
  names = {spec.partition(":")[0] for spec in specs if not spec.partition(":")[0].endswith(".py")}
  assert names and names <= packaged, names - packaged


def test_readme_startup_table_is_the_recorded_benchmark():
  """The README's start-up numbers are bench/startup.py's last recorded run, not typed in."""
  import importlib.util

  spec = importlib.util.spec_from_file_location("startup", ROOT / "bench" / "startup.py")
  startup = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(startup)
  recorded = json.loads((ROOT / "bench" / "results" / "startup.json").read_text())
  readme = _text(ROOT / "README.md")
  section = readme[readme.index("<!-- startup-table -->"):readme.index("<!-- /startup-table -->")]
  assert startup.table(startup.summarize(recorded["repeats"])) in section
  assert f"{len(recorded['repeats'])} repeats" in section and recorded["summary"]["programs_per_run"] == 6


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_the_api_reference_is_every_public_name_with_its_docstring():
  """``docs/api.md`` is generated from each subpackage's ``__all__``: the documented API is the exported one."""
  import subprocess
  import sys

  run = subprocess.run([sys.executable, str(ROOT / "tools" / "api_reference.py"), "--check"], capture_output=True,
                       text=True, timeout=300)
  assert run.returncode == 0, run.stderr
  page = (ROOT / "docs" / "api.md").read_text()
  undocumented = [line for line in page.splitlines() if line.startswith("| `") and line.endswith("|  |")]
  assert not undocumented, undocumented
  for name in ("fit", "Hook", "build", "reduce_on_plateau", "from_loss", "l2", "make_mlp", "Pmap"):
    assert f"| `{name}` |" in page
