"""A user's own model or dataset named by import path in a config: ``'my_pkg.models:build'``."""

import importlib
import os
import sys
from collections.abc import Callable

from jaxreg.errors import ConfigError


def is_import_path(name) -> bool:
  """Whether a config's ``name`` is an import path ``'module.path:attribute'`` rather than a packaged name."""
  return isinstance(name, str) and ":" in name


def import_object(spec: str, key: str) -> Callable:
  """The callable ``attribute`` of ``module.path`` in ``'module.path:attribute'``.

  The module is looked up on ``sys.path`` and, failing that, in the
  current directory (as ``python -m`` does), so ``jaxreg train`` finds a
  ``my_pkg/`` folder next to where it runs.

  Raises:
    ConfigError: naming ``key`` (``model.name``) if the module cannot be
      imported or has no such callable, with what to do.
  """
  module_name, _, attribute = spec.partition(":")
  if not module_name or not attribute:
    raise ConfigError(f"{key} {spec!r} is not an import path; write 'module.path:function', e.g. 'my_pkg.models:build'")
  try:
    module = _import(module_name)
  except ImportError as e:
    raise ConfigError(f"{key} {spec!r}: cannot import {module_name} ({e}); run from the folder that holds it, "
                      "add that folder to PYTHONPATH, or pip install its package") from None
  target = getattr(module, attribute, None)
  if not callable(target):
    have = ", ".join(n for n in sorted(vars(module)) if not n.startswith("_") and callable(getattr(module, n)))
    raise ConfigError(f"{key} {spec!r}: {module_name} has no callable {attribute!r} (it has: {have or 'none'})")
  return target


def _import(module_name: str):
  try:
    return importlib.import_module(module_name)
  except ModuleNotFoundError as e:
    here = os.getcwd()
    if here in sys.path or not (e.name and module_name.startswith(e.name)):
      raise
    sys.path.append(here)  # what `python -m` would have on its path: the user's folder
    return importlib.import_module(module_name)
