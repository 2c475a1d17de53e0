"""Every example in jaxreg's docstrings runs and prints what it shows (``# doctest: +SKIP`` marks the few that
need a finished run or a file of the user's)."""

import doctest
import importlib
import pkgutil

import pytest

import jaxreg

MODULES = ["jaxreg"] + sorted(m.name for m in pkgutil.walk_packages(jaxreg.__path__, "jaxreg."))
# Modules whose examples build models or warp images eagerly (2-16 s each on 2 cores): the full suite runs them.
SLOW = ("jaxreg.models", "jaxreg.augment.", "jaxreg.experiment", "jaxreg.train.objectives")


def _globals() -> dict:
  """What an example may use without importing it: the usual aliases and the subpackages' public names."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  from flax import nnx

  from jaxreg import augment, data, models, optim, regularizers, train

  from jaxreg.config import load_config

  names = dict(jax=jax, jnp=jnp, np=np, optax=optax, nn=nn, nnx=nnx, jaxreg=jaxreg, load_config=load_config)
  for package in (augment, data, models, train, optim, regularizers):  # regularizers.chain over augment.chain
    names.update({name: getattr(package, name) for name in package.__all__})
  return names


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name.startswith(SLOW) else name for name in MODULES])
def test_the_examples_run(name):
  module = importlib.import_module(name)
  names = {**_globals(), **vars(module)}  # the module's own names first
  tests = [t for t in doctest.DocTestFinder(exclude_empty=True).find(module, globs=names) if t.examples]
  failures = []
  for test in tests:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report = []
    if runner.run(test, out=report.append).failed:
      failures.append("".join(report))
  assert not failures, "\n".join(failures)
