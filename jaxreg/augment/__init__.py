"""Data augmentation as pure functions of a key and one example, run inside the compiled step.

An augmentation is ``fn(key, x) -> x`` on **one example** (a signal of shape
``(length,)`` or ``(length, channels)``, an image ``(height, width,
channels)``), deterministic given its key. They compose (:func:`chain`,
:func:`random_apply`, :func:`one_of`), and :func:`as_batch_transform` turns
one into the ``batch_transform`` of :func:`jaxreg.train.fit`: vmapped over
the batch with a key per example, applied to ``batch['x']`` only (labels are
never touched), on training batches only.

From a config: ``data.augment = [{'name': 'shift', 'max_shift': 4}, ...]``
(:func:`make_augmentation`).
"""

from jaxreg.augment.compose import as_batch_transform, chain, one_of, per_example, random_apply
from jaxreg.augment.colour import brightness, contrast, fancy_pca, fit_fancy_pca, hue, saturation
from jaxreg.augment.factory import augmentation_names, make_augmentation
from jaxreg.augment.images import affine, elastic, horizontal_flip, translate, warp_affine
from jaxreg.augment.tangents import make_tangents, tangent_names
from jaxreg.augment.signals import (
    background_mix,
    compress_dynamic_range,
    gaussian_noise,
    scale_amplitude,
    shift,
    time_stretch,
)

__all__ = [
    "affine",
    "as_batch_transform",
    "augmentation_names",
    "background_mix",
    "brightness",
    "chain",
    "compress_dynamic_range",
    "contrast",
    "elastic",
    "fancy_pca",
    "fit_fancy_pca",
    "gaussian_noise",
    "horizontal_flip",
    "hue",
    "make_augmentation",
    "make_tangents",
    "one_of",
    "per_example",
    "random_apply",
    "saturation",
    "scale_amplitude",
    "shift",
    "tangent_names",
    "time_stretch",
    "translate",
    "warp_affine",
]
