"""Optimizer changes driven by a monitored metric: the contract both of jaxreg's rules follow.

A *metric-driven* transform wraps an optimizer and changes it when a
monitored metric (e.g. the validation loss) stops improving. It is an
``optax.GradientTransformationExtraArgs`` whose ``update`` has two uses:

* ``update(updates, state, params)``: an ordinary optimizer step (the inner
  optimizer's step, with the rule's effect, e.g. a reduced scale);
* ``update(updates, state, params, value=v)``: one *evaluation* of the
  monitored metric. The rule's bookkeeping advances, ``updates`` come back
  unchanged and the inner optimizer takes no step (a wrapped metric-driven
  inner transform sees the same evaluation). ``v`` is the metric itself, or a
  mapping of logged metrics from which the rule takes its ``monitor``.

This is the ``value=`` extra argument of ``optax.contrib.reduce_on_plateau``,
with one difference: the metric arrives once per evaluation (an epoch), not
with every step, so an evaluation is its own call. :func:`observe` makes that
call; :func:`jaxreg.train.fit` makes it once per epoch, compiled, on the
placed state.
"""

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax

MODES = ("min", "max")


class MetricDriven(optax.GradientTransformationExtraArgs):
  """An ``optax.GradientTransformationExtraArgs`` that records evaluations through ``update(..., value=)``.

  Examples:
    >>> tx = make_optimizer('sgd', learning_rate=0.1, schedule={'name': 'plateau', 'patience': 2}).tx
    >>> state = tx.init({'w': jnp.zeros(3)})
    >>> updates, state = tx.update({'w': jnp.ones(3)}, state, value=jnp.asarray(0.5))  # an evaluation of the monitor
  """


def observe(tx: optax.GradientTransformation, opt_state, value):
  """The optimizer state after one evaluation of the monitored metric (pure, jit-safe).

  Args:
    tx: the optimizer; if it is not :class:`MetricDriven` the state is returned as is.
    opt_state: its state.
    value: the metric, or a mapping of metrics holding every rule's ``monitor``.

  Examples:
    >>> tx = reduce_on_plateau(optax.sgd(0.1), patience=1)  # doctest: +SKIP
    >>> opt_state = observe(tx, opt_state, 0.37)  # doctest: +SKIP
  """
  if not isinstance(tx, MetricDriven):
    return opt_state
  _, opt_state = tx.update({}, opt_state, None, value=value)
  return opt_state


def monitored_value(value, monitor: str | None, rule: str) -> jax.Array:
  """The float32 metric a rule watches: ``value`` itself, or ``value[monitor]`` from a mapping."""
  if isinstance(value, Mapping):
    if monitor is None or monitor not in value:
      raise ValueError(
          f"{rule} got a mapping of metrics ({', '.join(sorted(value))}) but its monitor is {monitor!r}; "
          "pass monitor= one of them, or pass the metric itself as value="
      )
    value = value[monitor]
  return jnp.asarray(value, jnp.float32)


def is_improvement(value: jax.Array, best: jax.Array, *, mode: str, min_delta: float) -> jax.Array:
  """Whether ``value`` beats ``best`` by more than ``min_delta`` (jit-safe).

  The first value (``best`` is NaN) always improves; a NaN value never does.
  ``min_delta`` is absolute, so the test reads the same for negative metrics.
  """
  better = value < best - min_delta if mode == "min" else value > best + min_delta
  return (jnp.isnan(best) | better) & ~jnp.isnan(value)


def check_rule_arguments(*, mode: str, patience: int, min_delta: float) -> None:
  """Raises ``ValueError``/``TypeError`` naming the argument; checks Python values only (never traced ones)."""
  if mode not in MODES:
    raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
  if isinstance(patience, bool) or not isinstance(patience, int):
    raise TypeError(f"patience must be a positive integer, got {patience!r}")
  if patience < 1:
    raise ValueError(f"patience must be a positive integer, got {patience!r}")
  if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) or not min_delta >= 0:
    raise ValueError(f"min_delta must be a number >= 0, got {min_delta!r}")


def find_states(opt_state, kind: type) -> list:
  """Every state of type ``kind`` in an optimizer state, wrapped ones included (outermost first).

  For reading what a state holds (the logged learning rate, the momentum);
  the rules never look for each other's states.
  """
  found = []
  for leaf in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, kind)):
    if isinstance(leaf, kind):
      found.append(leaf)
      found.extend(find_states(getattr(leaf, "inner", ()), kind))
  return found
