"""Base objectives: what a model is trained to minimise, before regularization.

An objective is ``objective(params, batch, ctx) -> (loss, aux)``:

* ``batch`` is a dict with ``'x'`` (inputs), ``'y'`` (targets) and optionally
  ``'mask'`` (1 for real examples, 0 for padding; used by evaluation).
* ``ctx`` is a :class:`Context` carrying the rng, the model state, the train
  flag, the step and what the objective transforms ask of the objective
  (hidden activations, smoothed targets).
* ``aux`` is an :class:`Aux`: the metrics, the updated model state, the
  hidden activations, the output tangents, and whether smoothed targets were used.

:func:`from_loss` lifts a plain ``loss(params, batch)`` to an objective, so
every objective transform applies to it.
"""

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxreg.errors import ConfigError
from jaxreg.regularizers.objective import masked_mean


@struct.dataclass
class Aux:
  """What an objective returns beside its loss.

  Attributes:
    metrics: scalar means over the batch's real examples; ``'loss'`` is the
      data term (penalties add their own entries and ``'objective'``).
    model_state: the updated non-parameter collections, e.g. ``{'batch_stats': ...}``.
    intermediates: hidden activations, when ``ctx.capture_intermediates``.
    soft_targets_used: whether the loss was taken against ``ctx.soft_targets``
      (a static flag: :func:`jaxreg.regularizers.label_smoothing` refuses an
      objective that would ignore them).
    output_tangents: when ``ctx.input_tangents`` is set, the directional
      derivatives of the model's outputs along each input tangent,
      ``J_f(x) v_k``, stacked on a leading axis of ``k`` (a pytree like the
      outputs); else ``None``.

  Examples:
    >>> aux = Aux(metrics={'loss': jnp.asarray(0.5)})
    >>> aux.with_metrics(accuracy=jnp.asarray(0.9)).metrics.keys()
    dict_keys(['loss', 'accuracy'])
  """

  metrics: dict
  model_state: dict = struct.field(default_factory=dict)
  intermediates: dict = struct.field(default_factory=dict)
  soft_targets_used: bool = struct.field(pytree_node=False, default=False)
  output_tangents: Any = None

  def with_metrics(self, **metrics) -> "Aux":
    """A copy with ``metrics`` added to (or replacing entries of) :attr:`metrics`."""
    return self.replace(metrics={**self.metrics, **metrics})


class Context(NamedTuple):
  """What an objective needs besides params and batch.

  Attributes:
    rng: key for dropout and noise (``None`` in evaluation).
    model_state: non-parameter collections, e.g. ``{'batch_stats': ...}``.
    train: whether stochastic layers are active and state is updated.
    step: the optimizer step, for coefficients that follow a schedule.
    capture_intermediates: ask the model for its hidden activations (set by
      activity penalties); the base objective returns them as
      ``aux.intermediates``.
    soft_targets: ``fn(labels, num_classes) -> probabilities`` to train a
      classification loss against instead of the one-hot labels (set by
      label smoothing), or ``None``.
    input_tangents: ``fn(x) -> v`` giving ``k`` tangent vectors per input,
      shaped ``(k, *x.shape)`` (set by tangent propagation), or ``None``; the
      base objectives then return ``aux.output_tangents``, computed in the
      same forward pass as the outputs (forward-mode, ``jax.linearize``).

  Examples:
    >>> ctx = Context(rng=jax.random.key(0), model_state={}, train=True)
    >>> ctx.train, ctx.step
    (True, 0)
  """

  rng: jax.Array | None
  model_state: Any
  train: bool
  step: jax.Array | int = 0
  capture_intermediates: bool = False
  soft_targets: Callable | None = None
  input_tangents: Callable | None = None


class ModelOutput(NamedTuple):
  """What :func:`apply_model` returns: the outputs, the new model state, the hidden activations, the output tangents."""

  outputs: Any
  model_state: dict
  intermediates: dict
  output_tangents: Any = None


def apply_model(apply: Callable, params, x, ctx: Context) -> ModelOutput:
  """Runs ``apply`` for an objective.

  ``intermediates`` is ``{}`` unless ``ctx.capture_intermediates``; it is
  split off the model state so it is never carried between steps. With
  ``ctx.input_tangents``, the model is linearized at ``x`` (one forward pass
  that also keeps what the tangent map needs) and the map is applied to each
  of the ``k`` tangents by ``vmap``: ``output_tangents[j] = J_f(x) v_j``,
  without finite differences and without the Jacobian.
  """
  variables = {"params": params, **ctx.model_state}
  extra = {"capture_intermediates": True} if getattr(ctx, "capture_intermediates", False) else {}

  def forward(inputs):
    return apply(variables, inputs, train=ctx.train, rng=ctx.rng, **extra)

  output_tangents = None
  if getattr(ctx, "input_tangents", None) is None:
    outputs, state = forward(x)
  else:
    tangents = jax.lax.stop_gradient(ctx.input_tangents(x))
    outputs, tangent_map, state = jax.linearize(forward, x, has_aux=True)
    output_tangents = jax.vmap(tangent_map)(tangents)
  state = dict(state)
  intermediates = state.pop("intermediates", {})
  return ModelOutput(outputs, state, intermediates, output_tangents)


def _class_nll(logits: jax.Array, labels: jax.Array, ctx: Context) -> jax.Array:
  """Per-example cross-entropy against the labels, or against ``ctx.soft_targets`` of them in training."""
  if ctx.soft_targets is None or not ctx.train:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  return optax.softmax_cross_entropy(logits, ctx.soft_targets(labels, logits.shape[-1]))


def _is_top1(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Whether ``argmax(logits) == label``; ties go to the first class (constant logits are right only for 0).

  On the digits MLP an epoch with ``argmax`` takes as long as one with the
  tie-blind ``label_logit >= max(logits)`` it replaced (paired ratio 1.00
  over 30 epochs, CPU).
  """
  return jnp.argmax(logits, axis=-1) == labels.astype(jnp.int32)


def _smoothing(ctx: Context) -> bool:
  return ctx.soft_targets is not None and ctx.train


def classification_objective(apply: Callable) -> Callable:
  """Softmax cross-entropy on integer labels: the negative log-likelihood of the lecture notes.

  ``E_nll(y, t) = -log softmax(F(x))_{c_t}``, averaged over the batch.
  Source: Baskin et al. 2018, "Objective and Loss functions" (cross-entropy with an
  indicator target reduces to the negative log-likelihood).

  Args:
    apply: the model's ``apply(variables, x, *, train, rng)``.

  Returns:
    An objective whose metrics are ``loss`` (the mean NLL) and ``accuracy``.

  Examples:
    >>> model = make_mlp(num_outputs=3, hidden_sizes=(4,))
    >>> params = model.init(jax.random.key(0), jnp.zeros((1, 2)))['params']
    >>> loss, aux = classification_objective(model.apply)(
    ...     params, {'x': jnp.zeros((4, 2)), 'y': jnp.array([0, 1, 2, 0])}, Context(rng=None, model_state={}, train=False))
    >>> sorted(aux.metrics)
    ['accuracy', 'loss']
  """

  def objective(params, batch, ctx: Context):
    logits, model_state, intermediates, tangents = apply_model(apply, params, batch["x"], ctx)
    nll = _class_nll(logits, batch["y"], ctx)
    correct = _is_top1(logits, batch["y"]).astype(nll.dtype)
    mask = batch.get("mask")
    loss = masked_mean(nll, mask)
    metrics = {"loss": loss, "accuracy": masked_mean(correct, mask)}
    return loss, Aux(metrics, model_state, intermediates, soft_targets_used=_smoothing(ctx), output_tangents=tangents)

  return objective


def regression_objective(apply: Callable) -> Callable:
  """Mean squared error ``mean_i mean_k (F(x_i)_k - y_ik)^2``.

  Args:
    apply: the model's ``apply(variables, x, *, train, rng)``.

  Returns:
    An objective whose only metric is ``loss`` (the MSE).

  Examples:
    >>> apply = lambda v, x, *, train, rng=None: (x @ v['params']['w'], {})
    >>> loss, _ = regression_objective(apply)({'w': jnp.ones((2, 1))}, {'x': jnp.ones((3, 2)), 'y': jnp.zeros((3, 1))},
    ...                                       Context(rng=None, model_state={}, train=False))
    >>> float(loss)  # mean of (2 - 0)^2
    4.0
  """

  def objective(params, batch, ctx: Context):
    outputs, model_state, intermediates, tangents = apply_model(apply, params, batch["x"], ctx)
    targets = batch["y"].reshape(outputs.shape)
    per_example = jnp.mean(jnp.square(outputs - targets).reshape(outputs.shape[0], -1), axis=-1)
    loss = masked_mean(per_example, batch.get("mask"))
    return loss, Aux({"loss": loss}, model_state, intermediates, output_tangents=tangents)

  return objective


def multitask_objective(apply: Callable, task_weights: Mapping[str, float]) -> Callable:
  """Weighted sum of per-task negative log-likelihoods for a multi-head model.

  ``J = sum_t w_t * E_nll(y_t, F_t(x))``, where the model returns
  ``{task: logits}`` and each task's labels are derived from the dataset's
  labels (:mod:`jaxreg.data.tasks`). Wang 2023, "Multitask Learning".

  Args:
    apply: the model's ``apply``, returning a dict of logits per task.
    task_weights: ``{task: weight >= 0}``; the first task in sorted order
      named ``'label'`` (or else the first) gives the reported ``accuracy``.

  Returns:
    An objective whose metrics are ``loss`` (the weighted sum), ``accuracy``
    (of the main task) and ``<task>_loss`` / ``<task>_accuracy`` per task.

  Examples:
    >>> module = MultiTaskMLP(trunk_sizes=(8,), heads={'label': 10, 'parity': 2})  # tasks derived from the labels
    >>> objective = multitask_objective(from_linen(module).apply, {'label': 1.0, 'parity': 0.5})
  """
  from jaxreg.data.tasks import get_task

  weights = dict(task_weights)
  for name, weight in weights.items():
    get_task(name)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
      raise ValueError(f"task_weights[{name!r}], a task's loss weight, must be a number >= 0, got {weight!r}")
  main = "label" if "label" in weights else sorted(weights)[0]

  def objective(params, batch, ctx: Context):
    outputs, model_state, intermediates, tangents = apply_model(apply, params, batch["x"], ctx)
    mask = batch.get("mask")
    metrics, total = {}, 0.0
    for name in sorted(weights):
      labels = get_task(name).labels(batch["y"])
      nll = _class_nll(outputs[name], labels, ctx)
      metrics[f"{name}_loss"] = masked_mean(nll, mask)
      metrics[f"{name}_accuracy"] = masked_mean(_is_top1(outputs[name], labels).astype(nll.dtype), mask)
      total = total + weights[name] * metrics[f"{name}_loss"]
    metrics["loss"] = total
    metrics["accuracy"] = metrics[f"{main}_accuracy"]
    return total, Aux(metrics, model_state, intermediates, soft_targets_used=_smoothing(ctx),
                      output_tangents=tangents)

  return objective


_OBJECTIVES = {"classification": classification_objective, "regression": regression_objective}


def make_objective(task: str, apply: Callable, *, task_weights: Mapping[str, float] | None = None) -> Callable:
  """Returns the base objective for ``task`` (``'classification'`` or ``'regression'``).

  With ``task_weights`` (a multitask model's ``tasks``), the
  :func:`multitask_objective` of those tasks (classification only).

  Examples:
    >>> objective = make_objective('regression', make_mlp(num_outputs=1, hidden_sizes=(4,)).apply)
  """
  if task not in _OBJECTIVES:
    raise ConfigError(f"unknown task {task!r}; valid tasks: {', '.join(sorted(_OBJECTIVES))}")
  if task_weights is not None:
    if task != "classification":
      raise ConfigError("a multitask model derives classification tasks from integer labels; data.task must be classification")
    return multitask_objective(apply, task_weights)
  return _OBJECTIVES[task](apply)


def from_loss(loss: Callable, *, takes_rng: bool = False, has_aux: bool = False) -> Callable:
  """Lifts a plain loss function to an objective, so every objective transform applies to it.

  ``from_loss(loss)(params, batch, ctx) -> (loss(params, batch), Aux({'loss': ...}))``.
  With ``takes_rng`` the loss is called as ``loss(params, batch, rng)`` with
  the step's key (``None`` in evaluation); with ``has_aux`` it returns
  ``(loss, metrics)`` and the metrics are reported beside ``'loss'``. The
  model state is left as it is. Penalties on the parameters (:func:`~jaxreg.regularizers.l2`, ...)
  apply; :func:`~jaxreg.regularizers.label_smoothing` is refused with an
  error, since a plain loss cannot take smoothed targets.

  Examples:
    >>> def mse(params, batch):
    ...   return jnp.mean((batch['x'] @ params['w'] - batch['y']) ** 2)
    >>> objective = l2(1e-3)(from_loss(mse))  # doctest: +SKIP
  """

  def objective(params, batch, ctx: Context):
    out = loss(params, batch, ctx.rng) if takes_rng else loss(params, batch)
    value, metrics = out if has_aux else (out, {})
    return value, Aux({**metrics, "loss": value}, ctx.model_state)

  return objective
