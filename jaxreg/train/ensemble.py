"""Combining the members of an ensemble: averaged probabilities, majority vote, geometric mean.

The notes' argument for model averaging (Goodfellow et al., section 7.11):
if member ``i`` makes the error ``e_i`` with ``E[e_i^2] = v`` and
``E[e_i e_j] = c``, the average of ``k`` members makes the expected squared
error ``v / k + (k - 1) c / k``: ``v / k`` for independent errors, ``v`` for
perfectly correlated ones. Dropout's weight-scaling rule approximates the
renormalized **geometric** mean of its sub-networks (section 7.12); bagging
usually averages probabilities or votes.
"""

import numpy as np


def expected_average_error(variance: float, covariance: float, k: int) -> float:
  """``v / k + (k - 1) c / k``: the expected squared error of the average of ``k`` members' predictions.

  Examples:
    >>> expected_average_error(variance=1.0, covariance=0.0, k=4)  # independent errors: v/k
    0.25
    >>> expected_average_error(variance=1.0, covariance=1.0, k=4)  # perfectly correlated: no gain
    1.0
  """
  if k < 1:
    raise ValueError(f"k must be at least 1, got {k!r}")
  return variance / k + (k - 1) * covariance / k


def _softmax(logits: np.ndarray) -> np.ndarray:
  shifted = logits - logits.max(-1, keepdims=True)
  e = np.exp(shifted)
  return e / e.sum(-1, keepdims=True)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
  shifted = logits - logits.max(-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def combine(logits: np.ndarray) -> dict[str, np.ndarray]:
  """The ensemble's class probabilities ``(n, classes)`` from the members' logits ``(k, n, classes)``, three ways.

  * ``mean_probabilities``: ``(1/k) sum_i p_i(y | x)`` (bagging's average);
  * ``geometric_mean``: ``(prod_i p_i(y | x))^(1/k)``, renormalized over the
    classes (what dropout's weight-scaling rule approximates);
  * ``majority_vote``: the share of members whose top class is ``y`` (ties
    go to the lowest class when an argmax is taken).
  """
  logits = np.asarray(logits, np.float64)
  k, _, classes = logits.shape
  votes = np.eye(classes)[np.argmax(logits, -1)].sum(0) / k
  return {
      "mean_probabilities": _softmax(logits).mean(0),
      "geometric_mean": _softmax(_log_softmax(logits).mean(0)),
      "majority_vote": votes,
  }


def ensemble_metrics(logits: np.ndarray, labels: np.ndarray) -> dict:
  """Each member's accuracy and loss, and the accuracy of each way of combining them (:func:`combine`).

  Args:
    logits: ``(k, n, classes)``, the members' outputs.
    labels: ``(n,)`` integer labels.

  Returns:
    ``{'members': {'accuracy': [...], 'loss': [...]}, 'mean_probabilities':
    {'accuracy', 'loss'}, 'geometric_mean': {'accuracy', 'loss'},
    'majority_vote': {'accuracy'}}``; a loss is the mean negative
    log-likelihood of the labels.

  Examples:
    >>> logits = np.array([[[2.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [2.0, 0.0]]])  # 2 members, 2 examples
    >>> metrics = ensemble_metrics(logits, np.array([0, 1]))
    >>> metrics['members']['accuracy'], metrics['mean_probabilities']['accuracy']
    ([1.0, 0.5], 0.5)
  """
  logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
  if logits.ndim != 3 or logits.shape[1] != len(labels):
    raise ValueError(f"logits must be (members, examples, classes) with {len(labels)} examples, got {logits.shape}")
  rows = np.arange(len(labels))
  log_p = _log_softmax(logits)
  report = {"members": {"accuracy": [float(np.mean(np.argmax(m, -1) == labels)) for m in logits],
                        "loss": [float(-np.mean(m[rows, labels])) for m in log_p]}}
  for name, probabilities in combine(logits).items():
    report[name] = {"accuracy": float(np.mean(np.argmax(probabilities, -1) == labels))}
    if name != "majority_vote":
      report[name]["loss"] = float(-np.mean(np.log(np.maximum(probabilities[rows, labels], 1e-300))))
  return report


def squared_errors(predictions: np.ndarray, targets: np.ndarray) -> dict:
  """Mean squared errors of each member ``(k, n, ...)`` and of their average, against ``targets``."""
  predictions, targets = np.asarray(predictions, np.float64), np.asarray(targets, np.float64)
  members = np.mean((predictions - targets[None]) ** 2, axis=tuple(range(1, predictions.ndim)))
  average = np.mean((predictions.mean(0) - targets) ** 2)
  return {"members": members.tolist(), "average": float(average)}
