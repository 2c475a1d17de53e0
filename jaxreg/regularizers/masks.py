"""Select parameters by path, as optax's ``mask=`` does.

Penalties and decay apply to weights, not to biases or normalization scales.
The choice is made by the parameter's name in the pytree (its last path key),
never by ``ndim``: a 1-D weight (e.g. an embedding row) is still a weight.
"""

from collections.abc import Callable, Iterable
from typing import Any

import jax
import jax.numpy as jnp

from jaxreg._tree import path_keys, path_name

# Leaf names excluded from norm penalties and weight decay by default.
DEFAULT_EXCLUDED_NAMES = ("bias", "scale")

Mask = Any  # a pytree of bools with the structure of the params, or a callable returning one
MaskSpec = Mask | Callable[[Any], Mask] | None


def _leaf_name(path) -> str:
  keys = path_keys(path)
  return keys[-1] if keys else "None"


def exclude_by_name(names: Iterable[str] = DEFAULT_EXCLUDED_NAMES) -> Callable[[Any], Mask]:
  """Returns a mask function that is False for leaves called one of ``names``.

  Examples:
    >>> params = {'dense': {'kernel': jnp.ones((2, 2)), 'bias': jnp.ones(2)}}
    >>> exclude_by_name()(params)
    {'dense': {'bias': False, 'kernel': True}}
  """
  excluded = frozenset(names)
  return lambda params: jax.tree_util.tree_map_with_path(
      lambda path, _: _leaf_name(path) not in excluded, params
  )


def by_path(
    include: Iterable[str] | None = None, *, exclude_names: Iterable[str] = DEFAULT_EXCLUDED_NAMES
) -> Callable[[Any], Mask]:
  """A mask function selecting the leaves under the path prefixes ``include`` (all if ``None``).

  A path is the ``'/'``-joined keys, e.g. ``'dense_1/kernel'``; a prefix
  such as ``'dense_1'`` selects the whole layer. Leaves called one of
  ``exclude_names`` (biases and scales by default) are never selected.

  Examples:
    >>> params = {'dense_0': {'kernel': 1, 'bias': 2}, 'output': {'kernel': 3}}
    >>> by_path(['dense_0'])(params)
    {'dense_0': {'bias': False, 'kernel': True}, 'output': {'kernel': False}}
  """
  prefixes = None if include is None else tuple(p.strip("/") for p in include)
  excluded = frozenset(exclude_names)

  def mask(params):
    def keep(path, _):
      name = path_name(path)
      under = prefixes is None or any(name == p or name.startswith(p + "/") for p in prefixes)
      return under and _leaf_name(path) not in excluded

    return jax.tree_util.tree_map_with_path(keep, params)

  return mask


def resolve_mask(mask: MaskSpec, params: Any) -> Mask:
  """Turns a mask spec into a pytree of bools for ``params``.

  ``None`` means the default (every leaf except biases and scales); a callable
  is applied to ``params``; a pytree of bools is returned as it is.

  Examples:
    >>> resolve_mask(None, {'dense': {'kernel': jnp.zeros((2, 2)), 'bias': jnp.zeros(2)}})
    {'dense': {'bias': False, 'kernel': True}}
  """
  if mask is None:
    mask = exclude_by_name()
  return mask(params) if callable(mask) else mask


def _is_float_array(leaf) -> bool:
  return hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.inexact)


def flat_selection(params: Any, mask: MaskSpec) -> tuple[list, Any, list[bool]]:
  """``(leaves, treedef, selected)``: ``params`` flattened, and whether ``mask`` selects each floating-point leaf.

  Raises:
    ValueError: if the mask does not have the structure of the params.
  """
  flags = resolve_mask(mask, params)
  leaves, treedef = jax.tree.flatten(params)
  try:
    keep = treedef.flatten_up_to(flags)
  except (ValueError, TypeError) as e:
    raise ValueError(
        f"mask must be a pytree of bools with the structure of the params, or a function "
        f"returning one: {e}"
    ) from None
  return leaves, treedef, [bool(k) and _is_float_array(p) for p, k in zip(leaves, keep, strict=True)]


def masked_leaves(params: Any, mask: MaskSpec) -> list[jax.Array]:
  """Returns the floating-point array leaves of ``params`` that ``mask`` selects.

  Other leaves (an Equinox model's activation functions, integer counters)
  are never selected, so a whole Equinox module can be passed as ``params``.

  Raises:
    ValueError: if the mask does not have the structure of the params.
  """
  leaves, _, selected = flat_selection(params, mask)
  return [p for p, k in zip(leaves, selected, strict=True) if k]
