"""``data.augment`` of a config: a list of ``{'name': ..., <arguments>}`` to one augmentation."""

from collections.abc import Mapping, Sequence

from jaxreg._registry import Registry
from jaxreg.augment import colour, images, signals
from jaxreg.augment.compose import chain, random_apply
from jaxreg.errors import ConfigError

_AUGMENTATIONS = Registry("augmentation", {
    "shift": signals.shift,
    "time_stretch": signals.time_stretch,
    "scale_amplitude": signals.scale_amplitude,
    "gaussian_noise": signals.gaussian_noise,
    "compress_dynamic_range": signals.compress_dynamic_range,
    "background_mix": signals.background_mix_from_data,
    "horizontal_flip": images.horizontal_flip,
    "translate": images.translate,
    "affine": images.affine,
    "elastic": images.elastic,
    "brightness": colour.brightness,
    "contrast": colour.contrast,
    "saturation": colour.saturation,
    "hue": colour.hue,
    "fancy_pca": colour.fancy_pca_from_data,
})
# Fitted once on the training inputs, which jaxreg passes as ``train_x``.
_FITTED = frozenset({"background_mix", "fancy_pca"})


def augmentation_names() -> list[str]:
  """The names ``data.augment`` accepts.

  Examples:
    >>> 'translate' in augmentation_names() and 'time_stretch' in augmentation_names()
    True
  """
  return _AUGMENTATIONS.names()


def make_augmentation(specs: Sequence[Mapping], *, train_x=None, section: str = "data.augment"):
  """One augmentation from a config's list: each item ``{'name': ..., 'p': ..., <arguments>}``, applied in order.

  ``p`` (optional) applies that item with probability ``p``
  (:func:`~jaxreg.augment.random_apply`). An empty list gives ``None`` (no
  augmentation). ``fancy_pca`` and ``background_mix`` are fitted on
  ``train_x``, the training split's inputs (never the validation or test
  splits).

  Raises:
    ConfigError: naming the item (``data.augment[1].max_shift``) for an
      unknown name or argument, or a value the augmentation refuses.

  Examples:
    >>> aug = make_augmentation([{'name': 'shift', 'max_shift': 4}, {'name': 'gaussian_noise', 'sigma': 0.05}])
  """
  if isinstance(specs, Mapping) or isinstance(specs, str) or not isinstance(specs, Sequence):
    raise ConfigError(f"{section} must be a list such as [{{'name': 'shift', 'max_shift': 4}}], got {specs!r}")
  built = []
  for index, spec in enumerate(specs):
    where = f"{section}[{index}]"
    if not isinstance(spec, Mapping) or "name" not in spec:
      raise ConfigError(f"{where} must be a mapping with a 'name' (one of {', '.join(augmentation_names())}), "
                        f"got {spec!r}")
    kwargs = {k: v for k, v in spec.items() if k not in ("name", "p")}
    filled = None
    if spec["name"] in _FITTED:
      if train_x is None:
        raise ConfigError(f"{where} ({spec['name']}) is fitted on the training inputs: pass train_x")
      filled = {"train_x": train_x}
    augmentation = _AUGMENTATIONS.build(spec["name"], kwargs, section=where, filled=filled)
    if "p" in spec:
      try:
        augmentation = random_apply(augmentation, spec["p"])
      except ValueError as e:
        raise ConfigError(f"{where}.{e}") from None
    built.append(augmentation)
  if not built:
    return None
  return built[0] if len(built) == 1 else chain(*built)
