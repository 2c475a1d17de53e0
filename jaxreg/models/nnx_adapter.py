"""Flax NNX models as ``ModelFns``: :func:`from_nnx`.

An NNX module holds its parameters, batch statistics and random streams as
attributes. :func:`from_nnx` splits them out, so that the rest of jaxreg sees
the same pure pair as for Linen: ``init(rng, x) -> {'params': ...,
'batch_stats': ...}`` and ``apply(variables, x, *, train, rng) -> (outputs,
new_model_state)``. Inside ``apply`` the module is merged from the variables,
switched to training or evaluation (``module.train()`` / ``module.eval()``:
dropout on or off, batch statistics or running averages), and its random
streams are reseeded from ``rng`` (``nnx.reseed``), so no key is hidden
between steps and the same ``rng`` gives the same dropout masks.
"""

from collections.abc import Callable

import jax

from jaxreg.models.base import ModelFns


def _streams(module) -> list[str]:
  """The names of the module's random streams (``'dropout'``, ...), which ``apply`` reseeds from its ``rng``."""
  from flax import nnx

  return sorted({node.tag for _, node in nnx.iter_graph(module) if isinstance(node, nnx.RngStream)})


def from_nnx(module_or_factory: "nnx.Module | Callable[..., nnx.Module]") -> ModelFns:
  """Wraps an NNX module, or a factory ``fn(*, rngs) -> module`` (e.g. the module's class), whose ``__call__(x)`` gives the outputs, into ``ModelFns``.

  With a factory, ``init(rng, x)`` builds the module from ``nnx.Rngs(rng)``,
  so the run's seed sets the weights; with a module, ``init`` returns its
  current weights (whatever ``rng``). Parameters are the module's
  ``nnx.Param`` variables, the model state its ``nnx.BatchStat`` ones
  (``'batch_stats'``); random streams are reseeded from ``apply``'s ``rng``
  at every call.

  Linen and NNX draw dropout masks differently from the same key, so an
  NNX model and its Linen twin train alike but not to the bit once dropout
  is on (without dropout they do: see ``tests/test_nnx.py``).

  Examples:
    >>> class Net(nnx.Module):
    ...   def __init__(self, rngs):
    ...     self.hidden = nnx.Linear(64, 32, rngs=rngs)
    ...     self.dropout = nnx.Dropout(0.2, rngs=rngs)
    ...     self.out = nnx.Linear(32, 10, rngs=rngs)
    ...   def __call__(self, x):
    ...     return self.out(self.dropout(jax.nn.relu(self.hidden(x))))
    >>> model = from_nnx(Net)
    >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 64)))
    >>> logits, _ = model.apply(variables, jnp.zeros((5, 64)), train=True, rng=jax.random.key(1))
    >>> logits.shape
    (5, 10)
  """
  from flax import nnx  # imported here: ``import jaxreg.models`` does not load NNX

  factory = None if isinstance(module_or_factory, nnx.Module) else module_or_factory
  if factory is not None and not callable(factory):
    raise TypeError(f"from_nnx takes an nnx.Module or a factory fn(*, rngs) -> nnx.Module, got {module_or_factory!r}")
  template = module_or_factory if factory is None else factory(rngs=nnx.Rngs(0))
  if not isinstance(template, nnx.Module):
    raise TypeError(f"the factory passed to from_nnx returned {type(template).__name__}, not an nnx.Module")
  graphdef, params_template, stats_template, rest = nnx.split(template, nnx.Param, nnx.BatchStat, ...)
  has_stats = bool(jax.tree.leaves(stats_template))
  streams = _streams(template)

  def variables_of(module) -> dict:
    _, params, stats, _ = nnx.split(module, nnx.Param, nnx.BatchStat, ...)
    return {"params": nnx.to_pure_dict(params), **({"batch_stats": nnx.to_pure_dict(stats)} if has_stats else {})}

  def init(rng, sample_x):
    del sample_x  # NNX modules are built with their shapes
    return variables_of(template if factory is None else factory(rngs=nnx.Rngs(rng)))

  def apply(variables, x, *, train, rng=None):
    params, stats = nnx.clone(params_template), nnx.clone(stats_template)
    nnx.replace_by_pure_dict(params, variables["params"])
    if has_stats:
      nnx.replace_by_pure_dict(stats, variables["batch_stats"])
    module = nnx.merge(graphdef, params, stats, nnx.clone(rest))
    module.train() if train else module.eval()
    if rng is not None and streams:
      nnx.reseed(module, **{name: jax.random.fold_in(rng, i) for i, name in enumerate(streams)})
    outputs = module(x)
    return outputs, ({"batch_stats": variables_of(module)["batch_stats"]} if has_stats else {})

  return ModelFns(init=init, apply=apply)


__all__ = ["from_nnx"]
