"""Pytree paths as readable names."""

import jax


def path_name(path) -> str:
  """``'Dense_0/kernel'`` for the key path of ``params['Dense_0']['kernel']``.

  Example:
    >>> [path_name(p) for p, _ in jax.tree_util.tree_leaves_with_path({'a': {'b': 1}})]
    ['a/b']
  """
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def named_leaves(tree) -> dict[str, jax.Array]:
  """``{path_name: leaf}`` for every leaf of ``tree``, in flattening order."""
  return {path_name(path): leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)}
