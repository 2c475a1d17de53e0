"""Regularization transforms, of two kinds.

* Objective transforms map ``objective -> objective``: :func:`l2`, :func:`l1`,
  :func:`elastic_net`, :func:`tying` (penalties on the weights),
  :func:`activation_l1` (on the hidden activations), :func:`label_smoothing`
  (on the targets), :func:`weight_noise` (the objective at perturbed
  weights). Compose them with :func:`chain`. Noise on the inputs is an
  augmentation (:func:`jaxreg.augment.gaussian_noise`).
* Update transforms are ``optax.GradientTransformation``s chained after the
  optimizer: :func:`weight_decay`, :func:`prox_l1`, :func:`max_norm`.

:func:`make_regularizers` builds both from a config's ``regularizers`` section.
"""

from jaxreg.regularizers.activity import activation_l1
from jaxreg.regularizers.adversarial import adversarial, fgsm, pgd
from jaxreg.regularizers.factory import Regularizers, make_regularizers, regularizer_names
from jaxreg.regularizers.masks import DEFAULT_EXCLUDED_NAMES, by_path, exclude_by_name, resolve_mask
from jaxreg.regularizers.noise import perturb, weight_noise
from jaxreg.regularizers.objective import Objective, ObjectiveTransform, add_penalty, chain
from jaxreg.regularizers.penalties import elastic_net, l1, l2, tying
from jaxreg.regularizers.tangent import tangent_prop
from jaxreg.regularizers.targets import label_smoothing, smooth_labels
from jaxreg.regularizers.updates import max_norm, prox_l1, weight_decay

__all__ = [
    "DEFAULT_EXCLUDED_NAMES",
    "Objective",
    "ObjectiveTransform",
    "Regularizers",
    "activation_l1",
    "add_penalty",
    "adversarial",
    "by_path",
    "chain",
    "elastic_net",
    "exclude_by_name",
    "fgsm",
    "l1",
    "l2",
    "label_smoothing",
    "make_regularizers",
    "max_norm",
    "perturb",
    "pgd",
    "prox_l1",
    "regularizer_names",
    "resolve_mask",
    "smooth_labels",
    "tangent_prop",
    "tying",
    "weight_decay",
    "weight_noise",
]
