"""Regularization transforms: objective transforms and (later) update transforms.

See ``DESIGN.md``: objective transforms map ``objective -> objective``; update
transforms are ``optax.GradientTransformation``s.
"""

from jaxreg.regularizers.factory import make_regularizers, regularizer_names
from jaxreg.regularizers.masks import DEFAULT_EXCLUDED_NAMES, exclude_by_name, resolve_mask
from jaxreg.regularizers.objective import Objective, ObjectiveTransform, add_penalty, chain, l2

__all__ = [
    "DEFAULT_EXCLUDED_NAMES",
    "Objective",
    "ObjectiveTransform",
    "add_penalty",
    "chain",
    "exclude_by_name",
    "l2",
    "make_regularizers",
    "regularizer_names",
    "resolve_mask",
]
