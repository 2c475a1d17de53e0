"""``make_regularizers``: a config's ``regularizers`` section to one objective transform."""

from collections.abc import Mapping

from jaxreg._validation import check_kwargs
from jaxreg.errors import ConfigError
from jaxreg.optim.schedules import make_schedule, schedule_names
from jaxreg.regularizers.objective import ObjectiveTransform, chain, l2

_OBJECTIVE_TRANSFORMS = {"l2": l2}
_SCHEDULE_NAMES = [n for n in schedule_names() if n != "plateau"]


def _scheduled(name: str, alpha, schedule, steps_per_epoch):
  if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
    raise ConfigError(f"regularizers.{name}.schedule needs regularizers.{name}.alpha >= 0 as its initial value")
  schedule = dict(schedule)
  schedule_name = schedule.pop("name", None)
  if schedule_name is None or schedule_name == "plateau":
    raise ConfigError(
        f"regularizers.{name}.schedule.name must be one of {', '.join(_SCHEDULE_NAMES)}, got {schedule_name!r}"
    )
  return make_schedule(schedule_name, init_value=float(alpha), steps_per_epoch=steps_per_epoch, **schedule)


def regularizer_names() -> list[str]:
  """Returns the names accepted as keys of the ``regularizers`` config section."""
  return sorted(_OBJECTIVE_TRANSFORMS)


def make_regularizers(
    steps_per_epoch: int | None = None, **sections: Mapping[str, object]
) -> ObjectiveTransform:
  """Builds the objective transform for ``regularizers.<name>.<arg> = value`` entries.

  Each key names a regularizer; its value holds that regularizer's keyword
  arguments. A name that is absent is off. Transforms are applied in
  alphabetical order of their names, so a config gives the same objective
  whatever order its file lists them in. A ``schedule`` entry
  (``{'name': ..., 'unit': 'step' | 'epoch', ...}``, as for learning rates)
  makes ``alpha`` its initial value and follows the schedule from there.

  Args:
    steps_per_epoch: for schedules counted in epochs (filled in by jaxreg).
    **sections: ``name -> keyword arguments``.

  Example:
    >>> transform = make_regularizers(l2={'alpha': 1e-4})
    >>> decaying = make_regularizers(l2={'alpha': 1e-3, 'schedule': {'name': 'exponential', 'rate': 0.999}})
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
    kwargs = dict(kwargs)
    schedule = kwargs.pop("schedule", None)
    check_kwargs(factory, kwargs, section=f"regularizers.{name}", what=f"regularizer {name!r}")
    if schedule is not None:
      kwargs["alpha"] = _scheduled(name, kwargs.get("alpha"), schedule, steps_per_epoch)
    transforms.append(factory(**kwargs))
  return chain(*transforms)
