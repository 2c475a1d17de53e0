"""Checks shared by the factories that turn config sections into objects."""

import inspect
from collections.abc import Callable, Iterable, Mapping

from jaxreg.errors import ConfigError


def accepted_kwargs(fn: Callable, exclude: Iterable[str] = ()) -> list[str]:
  """Names of the keyword arguments ``fn`` accepts, less ``exclude``."""
  excluded = set(exclude)
  return [
      name
      for name, p in inspect.signature(fn).parameters.items()
      if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name not in excluded
  ]


def check_kwargs(
    fn: Callable,
    kwargs: Mapping[str, object],
    *,
    section: str,
    what: str | None = None,
    exclude: Iterable[str] = (),
) -> None:
  """Raises ``ConfigError`` if ``kwargs`` holds a name ``fn`` does not accept.

  Args:
    fn: the factory the keyword arguments are for.
    kwargs: the arguments, usually one config section.
    section: the config section's name, used in the message (``'model'``).
    what: how to name ``fn`` in the message, e.g. ``"optimizer 'adam'"``.
    exclude: accepted names that a config must not set (filled in by jaxreg).
  """
  valid = accepted_kwargs(fn, exclude)
  unknown = sorted(set(kwargs) - set(valid))
  if unknown:
    raise ConfigError(
        f"unknown key(s) {', '.join(f'{section}.{k}' for k in unknown)} for "
        f"{what or getattr(fn, '__name__', fn)}; valid keys: {', '.join(sorted(valid)) or '(none)'}"
    )


def check_layer_sizes(key: str, sizes) -> tuple[int, ...]:
  """``sizes`` as a tuple of ints, or ``ValueError`` naming the argument ``key`` if it is not a non-empty list of positive integers."""
  sizes = tuple(sizes)
  if not sizes or any(isinstance(w, bool) or int(w) != w or w <= 0 for w in sizes):
    raise ValueError(f"{key} must be a non-empty list of positive integers, got {sizes!r}")
  return tuple(int(w) for w in sizes)


def check_positive_int(key: str, value) -> int:
  """``value``, or ``ValueError`` naming the argument ``key`` if it is not a positive integer (booleans are not)."""
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{key} must be a positive integer, got {value!r}")
  return value


def is_traced(value) -> bool:
  """Whether ``value`` is a traced JAX value (a population sweep's member value inside its compiled program).

  Checks are made on real values (each member's config is built once with
  them) and skipped on traced ones, which cannot be compared in Python.
  """
  import jax  # imported here: the checks of plain numbers load nothing

  return isinstance(value, jax.core.Tracer)


def check_rate(key: str, rate) -> float:
  """``rate`` as a float, or ``ValueError`` naming the argument ``key`` if it is outside [0, 1); a traced rate as it is."""
  if is_traced(rate):
    return rate
  if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
    raise ValueError(f"{key} must be in [0, 1), got {rate!r}")
  return float(rate)
