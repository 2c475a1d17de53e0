"""docs/compared.md's table is what bench/compared.py finds by running each library now."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_comparison_table_is_what_the_libraries_do():
  # Keras is a test dependency: a missing one fails here (bench/compared.py says "not installed"), never skips.
  env = {**os.environ, "KERAS_BACKEND": "jax"}
  done = subprocess.run([sys.executable, str(ROOT / "bench" / "compared.py")], capture_output=True, text=True,
                        env=env, timeout=600, cwd=ROOT)
  assert done.returncode == 0, done.stderr
  page = (ROOT / "docs" / "compared.md").read_text()
  block = page[page.index("<!-- compared-table -->"):page.index("<!-- /compared-table -->")]
  assert done.stdout.strip() in block
  assert "not installed" not in done.stdout
