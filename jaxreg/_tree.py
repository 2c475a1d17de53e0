"""Pytree paths as readable names."""

import jax


def path_keys(path) -> list[str]:
  """The keys of a pytree key path as strings, without the ``.value`` of a Flax NNX variable.

  A parameter of an ``nnx.State`` sits at ``('dense', 'kernel', .value)``; its
  name is ``kernel``, as in a Linen dict or an Equinox module.

  Examples:
    >>> path_keys((jax.tree_util.DictKey('dense'), jax.tree_util.DictKey('bias'), jax.tree_util.GetAttrKey('value')))
    ['dense', 'bias']
  """
  keys = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        keys.append(str(getattr(key, attr)))
        break
    else:
      keys.append(str(key))
  if len(path) > 1 and isinstance(path[-1], jax.tree_util.GetAttrKey) and path[-1].name == "value":
    keys.pop()  # nnx.Variable's leaf, not a name of the model's
  return keys


def path_name(path) -> str:
  """``'Dense_0/kernel'`` for the key path of ``params['Dense_0']['kernel']`` (or of an ``nnx.State``'s).

  Examples:
    >>> [path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path({'a': {'b': 1}})]
    ['a/b']
  """
  return "/".join(path_keys(path))


def named_leaves(tree) -> dict[str, jax.Array]:
  """``{path_name: leaf}`` for every leaf of ``tree``, in flattening order."""
  return {path_name(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
