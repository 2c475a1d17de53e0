"""``make_regularizers``: a config's ``regularizers`` section to one objective transform."""

from collections.abc import Mapping

from jaxreg._validation import check_kwargs
from jaxreg.errors import ConfigError
from jaxreg.regularizers.objective import ObjectiveTransform, chain, l2

_OBJECTIVE_TRANSFORMS = {"l2": l2}


def regularizer_names() -> list[str]:
  """Returns the names accepted as keys of the ``regularizers`` config section."""
  return sorted(_OBJECTIVE_TRANSFORMS)


def make_regularizers(**sections: Mapping[str, object]) -> ObjectiveTransform:
  """Builds the objective transform for ``regularizers.<name>.<arg> = value`` entries.

  Each key names a regularizer; its value holds that regularizer's keyword
  arguments. A name that is absent is off. Transforms are applied in
  alphabetical order of their names, so a config gives the same objective
  whatever order its file lists them in.

  Example:
    >>> transform = make_regularizers(l2={'alpha': 1e-4})
  """
  transforms = []
  for name in sorted(sections):
    if name not in _OBJECTIVE_TRANSFORMS:
      raise ConfigError(
          f"unknown regularizer {name!r} in regularizers.{name}; "
          f"valid names: {', '.join(regularizer_names())}"
      )
    kwargs = sections[name]
    if not isinstance(kwargs, Mapping):
      raise ConfigError(
          f"regularizers.{name} must be a dict of keyword arguments, e.g. "
          f"regularizers.{name}.alpha=1e-4; got {kwargs!r}"
      )
    factory = _OBJECTIVE_TRANSFORMS[name]
    check_kwargs(factory, kwargs, section=f"regularizers.{name}", what=f"regularizer {name!r}")
    transforms.append(factory(**kwargs))
  return chain(*transforms)
