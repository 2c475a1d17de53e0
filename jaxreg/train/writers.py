"""Run artifacts: ``metrics.jsonl`` (one line per epoch) and JSON files."""

import json
import math
import os
from typing import Any

from jaxreg.errors import DataError


def _jsonable(value: Any, *, exact: bool = False) -> Any:
  """Converts NumPy/JAX scalars to Python, and NaN/inf to ``None`` (valid JSON) unless ``exact``."""
  if isinstance(value, dict):
    return {k: _jsonable(v, exact=exact) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v, exact=exact) for v in value]
  if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value) and not exact:
    return None
  return value


def write_json(path: str, obj: Any, *, exact: bool = False) -> None:
  """Writes ``obj`` as indented JSON, atomically (write then rename).

  Non-finite floats become ``null`` (strict JSON, for other tools), or with
  ``exact`` stay ``Infinity``/``NaN``, which Python's ``json`` reads back as
  they were (a config must round-trip for a resume to match it).
  """
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(_jsonable(obj, exact=exact), f, indent=2, sort_keys=True)
    f.write("\n")
  os.replace(tmp, path)


def read_metrics(path: str) -> list[dict]:
  """Reads a ``metrics.jsonl`` file (a path to the file or to its work directory).

  A damaged last line (a write cut short by a kill) is left out; a damaged
  line before it raises ``DataError`` naming the line.

  Examples:
    >>> [r['val_accuracy'] for r in read_metrics('runs/digits_mlp/x')]  # doctest: +SKIP
  """
  if os.path.isdir(path):
    path = os.path.join(path, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = [(number, line) for number, line in enumerate(f, 1) if line.strip()]
  records = []
  for position, (number, line) in enumerate(lines):
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError as e:
      if position == len(lines) - 1:  # the line a killed process was writing: its epoch is not checkpointed
        break
      raise DataError(
          f"{path} line {number} is damaged ({e.msg}); delete that line (or the file, to lose the history) and "
          "run again"
      ) from None
  return records


class MetricWriter:
  """Appends one JSON line per epoch to ``<workdir>/metrics.jsonl`` (or ``filename``).

  Each line is flushed as it is written, so a killed run keeps every finished epoch.

  Examples:
    >>> import tempfile
    >>> writer = MetricWriter(tempfile.mkdtemp())
    >>> writer.write({'epoch': 1, 'train_loss': np.float32(0.5)})
    >>> writer.read()
    [{'epoch': 1, 'train_loss': 0.5}]
  """

  def __init__(self, workdir: str, filename: str = "metrics.jsonl"):
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, filename)

  def write(self, record: dict) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(_jsonable(record), sort_keys=True) + "\n")

  def read(self) -> list[dict]:
    return read_metrics(self.path)

  def truncate_after(self, epoch: int) -> list[dict]:
    """Drops the lines of epochs after ``epoch`` (written after the checkpoint a resume starts from)."""
    kept = [r for r in self.read() if r.get("epoch", 0) <= epoch]
    tmp = f"{self.path}.tmp"
    with open(tmp, "w") as f:
      for r in kept:
        f.write(json.dumps(r, sort_keys=True) + "\n")
    os.replace(tmp, self.path)
    return kept
