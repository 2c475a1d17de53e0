"""Label smoothing: train on softened targets instead of one-hot ones.

Wang 2023, "Label Smoothing": replace the hard target by
``[1 - eps, eps/(K-1), ..., eps/(K-1)]``, which "prevents the pursuit of hard
probabilities without discouraging correct classification" (softmax outputs
can never reach exactly 0 or 1, so maximum likelihood on hard targets keeps
growing the weights).
"""

import jax
import jax.numpy as jnp

from jaxreg.regularizers.objective import Objective, ObjectiveTransform
from jaxreg._validation import is_traced

FORMS = ("book", "optax")


def smooth_labels(labels: jax.Array, num_classes: int, eps: float, *, form: str = "book") -> jax.Array:
  """Smoothed target vectors for integer ``labels``.

  ``form='book'`` (Goodfellow et al. 2016, section 7.5.1): ``1 - eps`` on the true class and ``eps/(K-1)`` on each
  other class. ``form='optax'``: ``(1 - eps) * onehot + eps/K``, i.e.
  ``1 - eps + eps/K`` and ``eps/K`` (``optax.smooth_labels``, Szegedy et al.
  2016). Both sum to 1.

  Examples:
    >>> smooth_labels(jnp.array([0]), 4, 0.3)
    Array([[0.7, 0.1, 0.1, 0.1]], dtype=float32)
  """
  onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  if form in ("book", "seed"):  # 'seed': the name of 'book' in configs saved by jaxreg 0.1
    return onehot * (1.0 - eps) + (1.0 - onehot) * (eps / (num_classes - 1))
  return onehot * (1.0 - eps) + eps / num_classes


def label_smoothing(eps: float, num_classes: int | None = None, *, form: str = "book") -> ObjectiveTransform:
  """Trains a classification objective on smoothed targets (:func:`smooth_labels`).

  In training, the objective takes its cross-entropy against the smoothed
  vectors (it receives them as ``ctx.soft_targets``); evaluation
  (``ctx.train`` False) and the accuracy keep the hard labels. The reported
  training ``loss`` is the smoothed cross-entropy, the quantity minimised.
  Every classification objective of :mod:`jaxreg.train` takes them, the
  multitask one per task (each with its own number of classes); an objective
  that would ignore them (a regression objective, a wrapped plain loss) is
  refused with a ``ValueError`` when first traced, never trained unsmoothed.

  Source: Wang 2023, "Label Smoothing" (Goodfellow et al., section 7.5.1).

  Args:
    eps: the probability mass moved off the true class, in [0, 1).
    num_classes: ``K``, checked against the model's outputs if given;
      ``None`` takes it from the logits (each task's, for a multitask model).
    form: ``'book'`` (``eps/(K-1)`` on the other classes) or ``'optax'``
      (``eps/K`` on every class).

  Raises:
    ValueError: for ``eps`` outside [0, 1), ``K < 2`` or an unknown form, and
      (when first traced) for an objective that takes no smoothed targets, or
      logits with other than ``num_classes`` classes.

  Examples:
    >>> objective = label_smoothing(0.1)(classification_objective(model.apply))  # doctest: +SKIP
  """
  if not is_traced(eps) and (isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= eps < 1.0):
    raise ValueError(f"eps must be in [0, 1) (the mass moved off the true class), got {eps!r}")
  if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2):
    raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
  form = "book" if form == "seed" else form  # the name in configs saved by jaxreg 0.1
  if form not in FORMS:
    raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")

  def targets(labels, classes: int):
    if num_classes is not None and classes != num_classes:
      raise ValueError(f"label_smoothing: num_classes={num_classes}, but the model's logits have {classes} classes")
    return smooth_labels(labels, classes, eps, form=form)

  def transform(objective: Objective) -> Objective:
    def smoothed(params, batch, ctx):
      if not ctx.train:
        return objective(params, batch, ctx)
      loss, aux = objective(params, batch, ctx._replace(soft_targets=targets))
      if not aux.soft_targets_used:
        raise ValueError(
            "label_smoothing needs a classification objective that trains on ctx.soft_targets "
            "(jaxreg.train.classification_objective or multitask_objective); the objective it wraps "
            "ignored them (a regression objective, or a plain loss lifted by from_loss), so it would "
            "train unsmoothed. Remove label_smoothing, or smooth the targets inside your loss."
        )
      return loss, aux

    return smoothed

  return transform
