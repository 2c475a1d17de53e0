"""Robust evaluation: a classifier's accuracy on adversarial examples, at several perturbation sizes.

Each batch of inputs is perturbed against the model's own cross-entropy at
the true labels (evaluation mode: no dropout, running batch statistics) by
:func:`jaxreg.regularizers.fgsm` or :func:`jaxreg.regularizers.pgd`, and
classified. ``eps`` is an argument of the compiled function, so a list of
sizes costs one compilation.
"""

import math
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxreg.regularizers.adversarial import check_attack, perturb_inputs


def eps_list(eps) -> list[float]:
  """``eps`` (a number or a list) as a non-empty list of finite numbers >= 0, or ``ValueError``."""
  values = [eps] if isinstance(eps, (int, float)) and not isinstance(eps, bool) else list(eps)
  if not values:
    raise ValueError("eps must list at least one perturbation size, e.g. [0.05, 0.1]")
  for value in values:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < math.inf:
      raise ValueError(f"eps must hold finite numbers >= 0 (in the inputs' units), got {value!r}")
  return [float(v) for v in values]


def make_attacked_counter(apply: Callable, *, attack: str, steps: int, step_size, clip):
  """A jitted ``count(variables, x, y, mask, eps, key) -> number of correct predictions on attacked inputs``."""

  def count(variables, x, y, mask, eps, key):
    def loss_at(inputs):
      logits = apply(variables, inputs, train=False, rng=None)[0]
      if not isinstance(logits, jax.Array):
        raise ValueError("robust evaluation needs a model with one array of logits (not a multitask model)")
      return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, y) * mask)

    x_adv = perturb_inputs(loss_at, x, eps, attack=attack, steps=steps, step_size=step_size,
                           key=key if attack == "pgd" else None, clip=clip)
    logits = apply(variables, x_adv, train=False, rng=None)[0]
    return jnp.sum((jnp.argmax(logits, axis=-1) == y) * mask)

  return jax.jit(count)


def robust_accuracy(apply: Callable, variables, x: np.ndarray, y: np.ndarray, *, eps: Sequence[float] | float,
                    attack: str = "pgd", steps: int = 10, step_size=None, clip=None, batch_size: int = 512,
                    seed: int = 0, random_start: bool = True) -> dict:
  """The accuracy of ``apply`` on ``(x, y)`` perturbed by ``attack`` at each ``eps``.

  Args:
    apply: the model's ``apply(variables, x, *, train, rng) -> (logits, state)``.
    variables: ``{'params': ..., **model_state}``.
    x, y: inputs and integer labels (host arrays).
    eps: one size or a list, per feature, in the inputs' units; 0 gives the clean accuracy.
    attack: ``'fgsm'`` or ``'pgd'``.
    steps: PGD's steps.
    step_size: PGD's step (``None``: ``2.5 eps / steps``).
    clip: ``(low, high)``, the inputs' valid range, or ``None``.
    batch_size: examples per compiled call (the last batch is padded).
    seed: the key of PGD's random starts.
    random_start: PGD starts at a uniform point of the ball.

  Returns:
    ``{'attack', 'steps', 'step_size', 'clip', 'eps': [...], 'accuracy': [...]}``.

  Examples:
    >>> robust_accuracy(model.apply, variables, x_test, y_test, eps=[0.05, 0.1], attack='pgd', clip=(0, 1))  # doctest: +SKIP
    {'attack': 'pgd', 'eps': [0.05, 0.1], 'accuracy': [0.91, 0.62], ...}
  """
  eps_values = eps_list(eps)
  check_attack(attack, max(eps_values), steps, step_size, clip)
  if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
  x, y = np.asarray(x), np.asarray(y).astype(np.int32)
  if len(x) != len(y) or len(y) == 0:
    raise ValueError(f"x and y must hold the same number (> 0) of examples, got {len(x)} and {len(y)}")
  counter = make_attacked_counter(apply, attack=attack, steps=steps, step_size=step_size,
                                  clip=None if clip is None else (float(clip[0]), float(clip[1])))
  size = min(batch_size, len(y))
  key = jax.random.PRNGKey(seed)
  accuracies = []
  for eps_value in eps_values:
    correct = 0
    for index, start in enumerate(range(0, len(y), size)):
      xb, yb = x[start:start + size], y[start:start + size]
      pad = size - len(yb)
      mask = np.concatenate([np.ones(len(yb), np.float32), np.zeros(pad, np.float32)])
      xb = np.concatenate([xb, np.zeros((pad, *xb.shape[1:]), xb.dtype)]) if pad else xb
      yb = np.concatenate([yb, np.zeros(pad, np.int32)]) if pad else yb
      batch_key = jax.random.fold_in(key, index) if random_start else None
      correct += int(counter(variables, xb, yb, mask, jnp.float32(eps_value), batch_key))
    accuracies.append(correct / len(y))
  return {"attack": attack, "steps": steps if attack == "pgd" else 1,
          "step_size": step_size, "clip": None if clip is None else [float(clip[0]), float(clip[1])],
          "eps": eps_values, "accuracy": accuracies}


def plot_robust_accuracy(curves: Mapping[str, Mapping], *, output: str | None = None, title: str | None = None):
  """Accuracy against ``eps``, one line per entry of ``curves`` (label -> :func:`robust_accuracy`'s result).

  Returns the figure; with ``output``, also saves it there (PNG).

  Examples:
    >>> curves = {'plain': {'eps': [0.0, 0.1], 'accuracy': [0.97, 0.40]},
    ...           'adversarial': {'eps': [0.0, 0.1], 'accuracy': [0.96, 0.80]}}
    >>> figure = plot_robust_accuracy(curves, title='digits')  # doctest: +SKIP
  """
  from jaxreg.train.plotting import _pyplot

  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for label, result in curves.items():
    ax.plot(result["eps"], result["accuracy"], marker="o", label=label)
  ax.set_xlabel("eps (per input feature)")
  ax.set_ylabel("accuracy")
  ax.set_ylim(0.0, 1.02)
  ax.grid(alpha=0.3)
  ax.legend()
  ax.set_title(title or "Accuracy under attack")
  fig.tight_layout()
  if output is not None:
    fig.savefig(output, dpi=120)
  return fig
