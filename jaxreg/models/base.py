"""The model contract: ``ModelFns(init, apply)``.

The rest of jaxreg sees a model only through these two pure functions, so any
Flax Linen module (or hand-written function pair) plugs into the train step.
"""

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax

Variables = Any  # a pytree: {'params': ..., other collections ...}
ModelState = Any  # the non-parameter collections, e.g. {'batch_stats': ...}

# Collections that hold diagnostics, never state to carry between steps.
_DIAGNOSTIC_COLLECTIONS = ("intermediates",)


class ModelFns(NamedTuple):
  """A model as two pure functions.

  Attributes:
    init: ``init(rng, sample_x) -> variables``, a dict with ``'params'`` and
      any state collections (for example ``'batch_stats'``).
    apply: ``apply(variables, x, *, train, rng) -> (outputs, new_model_state)``.
      ``rng`` feeds dropout and noise (it may be ``None`` when ``train`` is
      False); ``new_model_state`` holds the updated non-parameter collections
      (an empty dict for a stateless model). Models that expose hidden
      activations also take ``capture_intermediates=True``, which adds them
      to ``new_model_state['intermediates']`` (the base objectives move them
      to ``aux.intermediates``; they are never carried as state).
    captures_intermediates: whether ``apply`` takes ``capture_intermediates``
      (every :func:`from_linen` model does).
    module: the Linen module of a :func:`from_linen` model (for what needs
      more of Flax than ``apply``, e.g.
      :func:`~jaxreg.models.weight_norm_data_init`), else ``None``.

  Examples:
    >>> model = ModelFns(init=lambda rng, x: {'params': {'w': jnp.ones(x.shape[-1])}},
    ...                  apply=lambda v, x, *, train, rng=None: (x @ v['params']['w'], {}))
    >>> model.apply(model.init(None, jnp.zeros((1, 3))), jnp.ones((2, 3)), train=False)[0].tolist()
    [3.0, 3.0]
  """

  init: Callable[[jax.Array, jax.Array], Variables]
  apply: Callable[..., tuple[jax.Array, ModelState]]
  captures_intermediates: bool = False
  module: nn.Module | None = None


def from_linen(module: nn.Module) -> ModelFns:
  """Wraps a Linen module whose ``__call__(x, *, train)`` into ``ModelFns``.

  Dropout and noise draw from the ``'dropout'`` rng stream, which ``apply``
  feeds from its ``rng`` argument; no key is hidden in the module.

  Examples:
    >>> model = from_linen(MLP(hidden_sizes=(32,), num_outputs=10, dropout_rate=0.1))
    >>> variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 64)))
    >>> logits, state = model.apply(variables, x, train=True, rng=jax.random.PRNGKey(1))  # doctest: +SKIP
  """

  def init(rng, sample_x):
    params_rng, dropout_rng = jax.random.split(rng)
    variables = module.init(
        {"params": params_rng, "dropout": dropout_rng}, sample_x, train=False
    )
    return {k: v for k, v in variables.items() if k not in _DIAGNOSTIC_COLLECTIONS}

  def apply(variables, x, *, train, rng=None, capture_intermediates=False):
    state_collections = [k for k in variables if k != "params"]
    rngs = {"dropout": rng} if rng is not None else {}
    mutable = (state_collections if train else []) + (list(_DIAGNOSTIC_COLLECTIONS) if capture_intermediates else [])
    if mutable:
      outputs, updated = module.apply(variables, x, train=train, rngs=rngs, mutable=mutable)
      new_state = {k: variables[k] for k in state_collections}
      new_state.update(updated)
      return outputs, new_state
    outputs = module.apply(variables, x, train=train, rngs=rngs)
    return outputs, {k: variables[k] for k in state_collections}

  return ModelFns(init=init, apply=apply, captures_intermediates=True, module=module)
