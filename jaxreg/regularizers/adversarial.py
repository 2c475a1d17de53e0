"""Adversarial examples and adversarial training: the notes' local-constancy regularizer.

A network that is locally linear in its input with large weights changes its
output a lot under a perturbation of size ``eps`` per feature aligned with
the sign of its gradient (Goodfellow et al. 2015's explanation of Szegedy et
al. 2014's adversarial examples). Training on such perturbed inputs
encourages the network to be locally constant around the training data.

The attacks here take any scalar ``loss_fn(x)`` (the batch's mean loss at
inputs ``x``) and return the perturbed inputs; :func:`adversarial` is the
objective transform that trains on them, and :mod:`jaxreg.train.robust`
evaluates a trained model under them.

Source: Goodfellow et al., Deep Learning, section 7.13 ("Adversarial
Training"); Goodfellow, Shlens & Szegedy 2015 (FGSM); Madry et al. 2018 (PGD).
"""

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxreg.regularizers.objective import Objective, ObjectiveTransform

ATTACKS = ("fgsm", "pgd")


def _project(x_adv: jax.Array, x: jax.Array, eps, clip) -> jax.Array:
  """``x_adv`` moved into the L-infinity ball of radius ``eps`` about ``x``, then into ``clip``."""
  x_adv = jnp.clip(x_adv, x - eps, x + eps)
  return x_adv if clip is None else jnp.clip(x_adv, clip[0], clip[1])


def fgsm(loss_fn: Callable[[jax.Array], jax.Array], x: jax.Array, eps, *, clip=None) -> jax.Array:
  """The fast gradient sign method: ``x + eps * sign(grad_x loss_fn(x))``, then clipped to ``clip``.

  Every feature moves by exactly ``eps`` (where its gradient is not 0), the
  largest increase of the linearized loss in the L-infinity ball of radius
  ``eps``. Source: Goodfellow, Shlens & Szegedy 2015, eq. (3).

  Args:
    loss_fn: the scalar loss as a function of the inputs.
    x: the inputs.
    eps: the perturbation's size per feature, in the inputs' units (may be traced).
    clip: ``(low, high)``, the inputs' valid range, or ``None``.

  Examples:
    >>> x_adv = fgsm(lambda x: jnp.sum(x ** 2), jnp.array([1.0, -2.0]), 0.1)
    >>> x_adv
    Array([ 1.1, -2.1], dtype=float32)
  """
  gradient = jax.grad(loss_fn)(x)
  x_adv = x + eps * jnp.sign(gradient)
  return x_adv if clip is None else jnp.clip(x_adv, clip[0], clip[1])


def pgd(loss_fn: Callable[[jax.Array], jax.Array], x: jax.Array, eps, *, steps: int = 10, step_size=None,
        key: jax.Array | None = None, clip=None) -> jax.Array:
  """Projected gradient descent on the loss (ascent): ``steps`` FGSM steps of ``step_size``, each projected.

  ``x_0 = x + U(-eps, eps)`` (with ``key``; ``x`` without),
  ``x_{t+1} = P(x_t + step_size * sign(grad_x loss_fn(x_t)))``, with ``P``
  the projection onto the L-infinity ball of radius ``eps`` about ``x``
  and onto ``clip``. Source: Madry et al. 2018 (the random start and
  ``step_size = 2.5 eps / steps``, the default).

  Args:
    loss_fn: the scalar loss as a function of the inputs.
    x: the inputs.
    eps: the ball's radius per feature, in the inputs' units (may be traced).
    steps: the number of gradient steps (>= 1), a Python int.
    step_size: each step's size; ``None`` for ``2.5 * eps / steps``.
    key: the random start's key, or ``None`` to start at ``x``.
    clip: ``(low, high)``, the inputs' valid range, or ``None``.

  Examples:
    >>> loss_fn = lambda x: jnp.sum(x ** 2)
    >>> x_adv = pgd(loss_fn, jnp.array([0.5, -0.5]), eps=0.1, steps=5, clip=(0.0, 1.0))
    >>> x_adv.tolist()  # pushed away from 0 by eps, then clipped to [0, 1]
    [0.6000000238418579, 0.0]
  """
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
    raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
  step_size = 2.5 * eps / steps if step_size is None else step_size
  start = x if key is None else _project(x + jax.random.uniform(key, x.shape, x.dtype, -1.0, 1.0) * eps, x, eps, clip)
  gradient = jax.grad(loss_fn)

  def ascend(_, x_adv):
    return _project(x_adv + step_size * jnp.sign(gradient(x_adv)), x, eps, clip)

  return jax.lax.fori_loop(0, steps, ascend, start)


def check_attack(attack: str, eps, steps: int, step_size, clip) -> None:
  """Raises ``ValueError`` naming the argument for an impossible attack setting."""
  if attack not in ATTACKS:
    raise ValueError(f"attack must be one of {', '.join(ATTACKS)}, got {attack!r}")
  if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= eps < math.inf:
    raise ValueError(f"eps must be a finite number >= 0 (in the inputs' units), got {eps!r}")
  if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
    raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
  if step_size is not None and (isinstance(step_size, bool) or not isinstance(step_size, (int, float))
                                or not 0.0 < step_size < math.inf):
    raise ValueError(f"step_size must be a finite number > 0, or None for 2.5 * eps / steps; got {step_size!r}")
  if clip is not None:
    if (not isinstance(clip, (tuple, list)) or len(clip) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in clip) or not clip[0] < clip[1]):
      raise ValueError(f"clip must be (low, high) with low < high, the inputs' valid range, or None; got {clip!r}")


def perturb_inputs(loss_fn, x, eps, *, attack: str = "fgsm", steps: int = 10, step_size=None, key=None, clip=None):
  """The adversarial inputs of ``attack`` (``'fgsm'`` or ``'pgd'``), never differentiated through."""
  if attack == "fgsm":
    x_adv = fgsm(loss_fn, x, eps, clip=clip)
  else:
    x_adv = pgd(loss_fn, x, eps, steps=steps, step_size=step_size, key=key, clip=clip)
  return jax.lax.stop_gradient(x_adv)


def adversarial(eps: float, alpha: float = 0.5, *, attack: str = "fgsm", steps: int = 10, step_size=None,
                random_start: bool = True, clip=None) -> ObjectiveTransform:
  """Adversarial training: ``alpha J(theta, x, y) + (1 - alpha) J(theta, x_adv, y)``.

  ``x_adv`` is the attack's perturbation of the batch's inputs against the
  objective it wraps at the current parameters (the same dropout key):
  FGSM, ``x + eps sign(grad_x J)`` (Goodfellow et al. 2015, eq. (3)'s
  objective with their ``alpha = 0.5``), or ``steps`` of PGD (Madry et al.
  2018; ``alpha = 0`` is their min-max form). ``x_adv`` is a constant for
  the parameter gradient. Only training is affected (``ctx.train``); a
  wrapped plain loss (:func:`jaxreg.train.from_loss`) works too, as
  ``batch['x']`` is what is perturbed.

  Metrics: ``loss`` is the mixed data term (the quantity minimised),
  ``clean_loss`` and ``adversarial_loss`` its two parts, and
  ``adversarial_accuracy`` beside the clean ``accuracy`` when the objective
  reports one. The model state (batch statistics) and hidden activations
  are the clean pass's. Put it innermost (the config does, after
  ``weight_noise``): penalties outside are then added once.

  Source: Goodfellow et al., Deep Learning, section 7.13; Goodfellow, Shlens
  & Szegedy 2015; Madry et al. 2018.

  Args:
    eps: the perturbation's size per feature, in the units of the model's
      inputs (after ``data.preprocess``).
    alpha: the clean term's weight, in [0, 1].
    attack: ``'fgsm'`` or ``'pgd'``.
    steps: PGD's steps.
    step_size: PGD's step, ``None`` for ``2.5 * eps / steps``.
    random_start: PGD starts at a uniform point of the ball (a fresh key each step).
    clip: ``(low, high)``, the inputs' valid range (e.g. ``(0, 1)`` for
      pixels), or ``None``.

  Examples:
    >>> objective = adversarial(0.1, attack='pgd', steps=5, clip=(0.0, 1.0))(base_objective)  # doctest: +SKIP
  """
  check_attack(attack, eps, steps, step_size, clip)
  if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
    raise ValueError(f"alpha, the clean loss's weight, must be a number in [0, 1], got {alpha!r}")
  clip = None if clip is None else (float(clip[0]), float(clip[1]))

  def transform(objective: Objective) -> Objective:
    def adversarially(params, batch, ctx):
      if not ctx.train or eps == 0.0:
        return objective(params, batch, ctx)
      attack_key = None
      if attack == "pgd" and random_start:
        if ctx.rng is None:
          raise ValueError("adversarial PGD with random_start needs a random key in training (ctx.rng), got None")
        attack_key = jax.random.fold_in(ctx.rng, 0x616476)  # "adv": the objective keeps ctx.rng for dropout
      frozen = jax.lax.stop_gradient(params)
      plain_ctx = ctx._replace(capture_intermediates=False, input_tangents=None)

      def loss_at(x):
        return objective(frozen, {**batch, "x": x}, plain_ctx)[0]

      x_adv = perturb_inputs(loss_at, batch["x"], eps, attack=attack, steps=steps, step_size=step_size,
                             key=attack_key, clip=clip)
      clean, aux = objective(params, batch, ctx)
      adv, adv_aux = objective(params, {**batch, "x": x_adv}, plain_ctx)
      mixed = alpha * clean + (1.0 - alpha) * adv
      metrics = {"loss": mixed, "clean_loss": aux.metrics.get("loss", clean),
                 "adversarial_loss": adv_aux.metrics.get("loss", adv)}
      if "accuracy" in adv_aux.metrics:
        metrics["adversarial_accuracy"] = adv_aux.metrics["accuracy"]
      if "objective" in aux.metrics:
        metrics["objective"] = alpha * aux.metrics["objective"] + (1.0 - alpha) * adv_aux.metrics["objective"]
      return mixed, aux.with_metrics(**metrics)

    return adversarially

  return transform
