"""The documentation site builds in strict mode (a broken reference, a page left out of the navigation or a docstring
mkdocstrings cannot read fails it), every API page is there, and every public name has a docstring with an example."""

import importlib
import inspect
import pathlib
import subprocess
import sys
import typing

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from api_reference import PACKAGES  # noqa: E402


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_the_site_builds_in_strict_mode_without_a_warning(tmp_path):
  pytest.importorskip("mkdocstrings")
  done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr
  assert "WARNING" not in done.stderr, done.stderr
  page = (tmp_path / "site" / "reference" / "optim" / "index.html").read_text()
  assert "make_optimizer" in page and "Algorithm 8.4" in page  # the docstrings are on the pages


def test_every_documented_package_has_a_reference_page_in_the_navigation():
  navigation = (ROOT / "mkdocs.yml").read_text()
  for package in PACKAGES:
    page = f"reference/{package.split('.', 1)[1]}.md"
    assert (ROOT / "docs" / page).read_text().strip().endswith(f"::: {package}"), page
    assert page in navigation, page


def _public_callables():
  seen = set()
  for package in PACKAGES:
    module = importlib.import_module(package)
    for name in module.__all__:
      obj = getattr(module, name)
      if callable(obj) and typing.get_origin(obj) is None and id(obj) not in seen:
        seen.add(id(obj))
        yield f"{package}.{name}", obj


def test_every_public_name_has_a_docstring_with_an_example():
  missing = [name for name, obj in _public_callables() if ">>>" not in (inspect.getdoc(obj) or "")]
  assert not missing, f"no example in the docstrings of: {', '.join(missing)}"
