"""``make_regularizers``: a config's ``regularizers`` section to an objective transform and an update transform."""

from collections.abc import Mapping
from typing import NamedTuple

import optax

from jaxreg._registry import Registry
from jaxreg.augment.tangents import make_tangents
from jaxreg.errors import ConfigError
from jaxreg.optim.schedules import make_schedule, schedule_names
from jaxreg.regularizers import activity, noise, penalties, targets, updates
from jaxreg.regularizers.adversarial import adversarial
from jaxreg.regularizers.masks import by_path
from jaxreg.regularizers.objective import ObjectiveTransform, chain
from jaxreg.regularizers.tangent import tangent_prop


def _tangent_prop(alpha, tangents, smoothing: float = 0.0) -> ObjectiveTransform:
  """``tangent_prop`` from a config: ``tangents`` names built-in generators (:func:`jaxreg.augment.make_tangents`)."""
  return tangent_prop(alpha, make_tangents(tangents, smoothing=smoothing))


# Objective transforms, innermost first: weight noise (penalties see the clean weights), adversarial
# training (penalties outside it are added once), then alphabetical.
_INNERMOST = ("weight_noise", "adversarial")
OBJECTIVE_REGULARIZERS = {
    "weight_noise": noise.weight_noise,
    "adversarial": adversarial,
    "activation_l1": activity.activation_l1,
    "elastic_net": penalties.elastic_net,
    "l1": penalties.l1,
    "l2": penalties.l2,
    "label_smoothing": targets.label_smoothing,
    "tangent_prop": _tangent_prop,
    "tying": penalties.tying,
}
# Update transforms, chained after the optimizer in this order (projections last).
UPDATE_REGULARIZERS = {
    "weight_decay": updates.weight_decay,
    "prox_l1": updates.prox_l1,
    "max_norm": updates.max_norm,
}
# The argument a ``schedule`` entry drives.
_SCHEDULED_ARGUMENT = {
    "activation_l1": "alpha", "l1": "alpha", "l2": "alpha", "tying": "alpha", "tangent_prop": "alpha",
    "weight_decay": "rate", "prox_l1": "alpha",
}
_SCHEDULE_NAMES = [n for n in schedule_names() if n != "plateau"]
_OBJECTIVE_REGISTRY = Registry("regularizer", OBJECTIVE_REGULARIZERS)
_UPDATE_REGISTRY = Registry("regularizer", UPDATE_REGULARIZERS)


class Regularizers(NamedTuple):
  """What a ``regularizers`` config section builds.

  Attributes:
    objective: the objective transform (identity if there is none).
    update: the update transform to chain after the optimizer (identity if none).
    names: the regularizers that are on, objective ones first.

  Examples:
    >>> regs = make_regularizers(l2={'alpha': 1e-4}, max_norm={'max_value': 3.0})
    >>> objective = regs.objective(classification_objective(make_mlp(num_outputs=10, hidden_sizes=(8,)).apply))
    >>> tx = optax.chain(optax.sgd(0.1), regs.update)  # the update regularizers after the optimizer
  """

  objective: ObjectiveTransform
  update: optax.GradientTransformation
  names: tuple[str, ...]


def regularizer_names() -> list[str]:
  """Returns the names accepted as keys of the ``regularizers`` config section.

  Examples:
    >>> 'l2' in regularizer_names() and 'max_norm' in regularizer_names()
    True
  """
  return sorted({**OBJECTIVE_REGULARIZERS, **UPDATE_REGULARIZERS})


def _scheduled(name: str, argument: str, initial, schedule, steps_per_epoch):
  if isinstance(initial, bool) or not isinstance(initial, (int, float)) or not initial >= 0:
    raise ConfigError(
        f"regularizers.{name}.schedule needs regularizers.{name}.{argument} >= 0 as its initial value"
    )
  schedule = dict(schedule)
  schedule_name = schedule.pop("name", None)
  if schedule_name is None or schedule_name == "plateau":
    raise ConfigError(
        f"regularizers.{name}.schedule.name must be one of {', '.join(_SCHEDULE_NAMES)}, got {schedule_name!r}"
    )
  return make_schedule(
      schedule_name, init_value=float(initial), steps_per_epoch=steps_per_epoch,
      section=f"regularizers.{name}.schedule", **schedule,
  )


def _config_mask(name: str, mask):
  """A config's ``mask``: a list of path prefixes (``['dense_0', 'output/kernel']``)."""
  if mask is None or callable(mask):
    return mask
  if isinstance(mask, str):
    mask = [mask]
  if not isinstance(mask, (list, tuple)) or not all(isinstance(p, str) for p in mask):
    raise ConfigError(
        f"regularizers.{name}.mask must be a list of parameter path prefixes such as "
        f"['dense_0', 'output/kernel'], got {mask!r}"
    )
  return by_path(mask)


def make_regularizers(
    steps_per_epoch: int | None = None,
    learning_rate=None,
    **sections: Mapping[str, object],
) -> Regularizers:
  """Builds the regularizers of ``regularizers.<name>.<arg> = value`` entries.

  Each key names a regularizer (:func:`regularizer_names`); its value holds
  that regularizer's keyword arguments. A name that is absent is off.
  Objective transforms (``l2``, ``l1``, ``elastic_net``, ``activation_l1``,
  ``tying``, ``label_smoothing``, ``tangent_prop``) are applied in
  alphabetical order, after ``weight_noise`` (innermost, so penalties see the
  clean weights) and ``adversarial`` (next, so penalties are added once): a
  config gives the same objective whatever order it lists them in; update
  transforms are chained as ``weight_decay``, ``prox_l1``, ``max_norm``
  (projections last). A ``schedule`` entry (``{'name': ..., 'unit': 'step' |
  'epoch', ...}``, as for learning rates) makes the coefficient (``alpha``,
  or ``rate`` for ``weight_decay``) its initial value. ``mask`` is a list of
  parameter path prefixes (biases and scales stay excluded).
  ``tangent_prop.tangents`` is a list of built-in tangent names
  (:func:`jaxreg.augment.tangents.tangent_names`), with an optional
  ``smoothing``.

  Args:
    steps_per_epoch: for schedules counted in epochs (filled in by jaxreg).
    learning_rate: the optimizer's rate or schedule, the step of ``prox_l1``
      (filled in from the optimizer section).
    **sections: ``name -> keyword arguments``.

  Raises:
    ConfigError: for an unknown name or argument, or an impossible value.

  Examples:
    >>> regs = make_regularizers(l2={'alpha': 1e-4}, max_norm={'max_value': 3.0})
    >>> objective = regs.objective(base_objective)  # doctest: +SKIP
    >>> tx = optax.chain(optimizer, regs.update)  # doctest: +SKIP
  """
  objective_transforms, update_transforms = {}, {}
  innermost_first = {name: i for i, name in enumerate(_INNERMOST)}
  for name in sorted(sections, key=lambda n: (innermost_first.get(n, len(_INNERMOST)), n)):
    if name in _OBJECTIVE_REGISTRY:
      registry, into = _OBJECTIVE_REGISTRY, objective_transforms
    elif name in _UPDATE_REGISTRY:
      registry, into = _UPDATE_REGISTRY, update_transforms
    else:
      raise ConfigError(
          f"unknown regularizer {name!r} in regularizers.{name}; valid names: {', '.join(regularizer_names())}"
      )
    kwargs = sections[name]
    if not isinstance(kwargs, Mapping):
      raise ConfigError(
          f"regularizers.{name} must be a dict of keyword arguments, e.g. "
          f"regularizers.{name}.alpha=1e-4; got {kwargs!r}"
      )
    kwargs = dict(kwargs)
    schedule = kwargs.pop("schedule", None)
    filled = {}
    if name == "prox_l1" and "learning_rate" not in kwargs:
      if learning_rate is None:
        raise ConfigError("regularizers.prox_l1 needs the optimizer's learning_rate (its threshold is eps*alpha)")
      filled["learning_rate"] = learning_rate
    if "mask" in kwargs:
      kwargs["mask"] = _config_mask(name, kwargs["mask"])
    if schedule is not None:
      if name not in _SCHEDULED_ARGUMENT:
        raise ConfigError(f"regularizers.{name} takes no schedule")
      argument = _SCHEDULED_ARGUMENT[name]
      kwargs[argument] = _scheduled(name, argument, kwargs.get(argument), schedule, steps_per_epoch)
    into[name] = registry.build(name, kwargs, section=f"regularizers.{name}", filled=filled)
  ordered_updates = [update_transforms[n] for n in UPDATE_REGULARIZERS if n in update_transforms]
  return Regularizers(
      objective=chain(*objective_transforms.values()),
      update=optax.chain(*ordered_updates) if ordered_updates else optax.identity(),
      names=tuple(objective_transforms) + tuple(n for n in UPDATE_REGULARIZERS if n in update_transforms),
  )
