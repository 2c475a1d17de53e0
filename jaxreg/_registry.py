"""One way from a config's ``name`` and keyword arguments to what a factory builds.

Models, datasets, optimizers, regularizers and schedules each keep a
:class:`Registry`. It is where a config section meets the library: unknown
names and keys are refused with the valid choices, and a library error
(``ValueError``/``TypeError`` naming its argument, e.g. ``b2 must be in
[0, 1)``) gets its config path (``optimizer.b2 must be in [0, 1)``) here,
once.
"""

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jaxreg._validation import accepted_kwargs, check_kwargs
from jaxreg.errors import ConfigError, DataError


class Registry:
  """Named factories of one kind.

  Args:
    kind: what the factories build, for messages (``'model'``).
    factories: ``name -> factory``.
    prefix: names starting with it (``'optax.'``) are outside the table and
      go to ``from_prefix(name) -> factory``, which raises ``ConfigError``
      for a bad one.
    from_prefix: see ``prefix``.

  Examples:
    >>> registry = Registry('schedule', {'constant': constant})  # doctest: +SKIP
    >>> registry.build('constant', {}, section='optimizer.schedule', filled={'init_value': 0.1})  # doctest: +SKIP
  """

  def __init__(self, kind: str, factories: Mapping[str, Callable], *, prefix: str | None = None,
               from_prefix: Callable[[str], Callable] | None = None):
    self.kind = kind
    self._factories = dict(factories)
    self._prefix = prefix
    self._from_prefix = from_prefix

  def names(self) -> list[str]:
    """The registered names, in the order they were registered."""
    return list(self._factories)

  def __contains__(self, name: str) -> bool:
    return name in self._factories

  def get(self, name: str) -> Callable:
    """The factory called ``name``, or ``ConfigError`` listing the valid names."""
    if name in self._factories:
      return self._factories[name]
    if self._prefix is not None and isinstance(name, str) and name.startswith(self._prefix):
      return self._from_prefix(name)
    choices = ", ".join(self.names()) + (f", or {self._prefix}<name>" if self._prefix else "")
    raise ConfigError(f"unknown {self.kind} {name!r}; valid names: {choices}")

  def build(self, name: str, kwargs: Mapping[str, Any], *, section: str,
            filled: Mapping[str, Any] | None = None) -> Any:
    """Calls the factory ``name`` with a config section's ``kwargs`` and the values jaxreg fills in.

    Args:
      name: the factory's name.
      kwargs: the config section's keyword arguments.
      section: the section's path, for messages (``'optimizer'``).
      filled: arguments jaxreg fills in (a config must not set them).

    Raises:
      ConfigError: for an unknown name or key, a missing required key, or a
        value the factory refuses (its message, with the config path).
    """
    factory = self.get(name)
    filled = dict(filled or {})
    what = f"{self.kind} {name!r}"
    check_kwargs(factory, kwargs, section=section, what=what, exclude=filled)
    missing = [key for key in required_kwargs(factory) if key not in kwargs and key not in filled]
    if missing:
      needs = ", ".join(f"{section}.{key}" for key in missing)
      raise ConfigError(f"{section if section.endswith('.' + name) else what} needs {needs}")
    try:
      return factory(**kwargs, **filled)
    except (ConfigError, DataError):  # already in a config's or the data's words
      raise
    except (ValueError, TypeError) as error:
      raise config_error(error, section, accepted_kwargs(factory), what) from None


def required_kwargs(factory: Callable) -> list[str]:
  """The keyword arguments ``factory`` has no default for."""
  return [
      p.name for p in inspect.signature(factory).parameters.values()
      if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
  ]


def config_error(error: Exception, section: str, arguments: Iterable[str], what: str) -> ConfigError:
  """A library error as a config error: ``'<section>.<argument> ...'`` when it starts with an argument's name."""
  message = str(error)
  first = message.split(" ", 1)[0].rstrip(":")
  if first in set(arguments):
    return ConfigError(f"{section}.{message}")
  return ConfigError(f"{section} ({what}): {message}")
