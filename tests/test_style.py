"""House rules checked on the source: functions that fit on a screen."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "jaxreg"
MAX_LINES = 60


def code_lines(lines: list[str], node: ast.AST) -> int:
  """Lines of a function that hold code: its signature and body, less its docstring, blank lines and comments."""
  first = node.body[0]
  docstring = (
      range(first.lineno, first.end_lineno + 1)
      if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
      else range(0)
  )
  return sum(
      1 for number in range(node.lineno, node.end_lineno + 1)
      if number not in docstring and lines[number - 1].strip() and not lines[number - 1].strip().startswith("#")
  )


def function_lengths() -> dict[str, int]:
  lengths = {}
  for path in sorted(PACKAGE.rglob("*.py")):
    source = path.read_text()
    for node in ast.walk(ast.parse(source)):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        lengths[f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}"] = code_lines(source.splitlines(), node)
  return lengths


def test_no_function_is_longer_than_a_screen():
  lengths = function_lengths()
  assert len(lengths) > 300  # the scan found the package's functions
  too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
  assert not too_long, f"functions over {MAX_LINES} lines of code: {too_long}"


def test_the_fit_loop_is_well_under_a_screen():
  lengths = function_lengths()
  (loop,) = [n for name, n in lengths.items() if name.endswith(" run_loop") and "train/loop.py" in name]
  assert loop <= 30


def test_the_counter_counts_code_not_docstrings():
  source = 'def f(x):\n  """Doc.\n\n  More.\n  """\n  # a comment\n\n  return x\n'
  node = ast.parse(source).body[0]
  assert code_lines(source.splitlines(), node) == 2
