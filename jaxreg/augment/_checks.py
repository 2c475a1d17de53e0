"""Argument checks shared by the augmentations (each names the argument)."""

import math

PAD_MODES = ("circular", "constant", "edge")


def number(name: str, value, *, low: float | None = None, high: float | None = None, low_open: bool = False) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    raise ValueError(f"{name} must be a finite number, got {value!r}")
  if low is not None and (value < low or (low_open and value == low)):
    raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
  if high is not None and value > high:
    raise ValueError(f"{name} must be <= {high}, got {value!r}")
  return float(value)


def non_negative_int(name: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < 0:
    raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
  return value


def interval(low_name: str, low, high_name: str, high, *, minimum: float = 0.0, low_open: bool = False) -> None:
  number(low_name, low, low=minimum, low_open=low_open)
  number(high_name, high, low=minimum, low_open=low_open)
  if low > high:
    raise ValueError(f"{low_name} must be <= {high_name}, got {low} > {high}")


def pad_mode(value) -> str:
  if value not in PAD_MODES:
    raise ValueError(f"mode must be one of {', '.join(PAD_MODES)}, got {value!r}")
  return value
