"""The README's code example runs as written (at 2 epochs)."""

import pathlib
import re

import pytest


@pytest.mark.slow
def test_readme_python_example_runs():
  readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
  assert blocks, "README has no python example"
  code = blocks[0].replace("epochs=50", "epochs=2")
  namespace = {}
  exec(compile(code, "README.md", "exec"), namespace)
  result = namespace["result"]
  assert result.summary["epochs_run"] == 2
  assert 0.0 <= result.summary["test_accuracy"] <= 1.0
  assert "l2_penalty" in namespace["metrics"]
  # The later examples continue in the same namespace, as a reader would run them.
  for block in blocks[1:]:
    exec(compile(block, "README.md", "exec"), namespace)
  assert float(namespace["metrics"]["activation_l1_penalty"]) > 0
