"""Input preprocessing fitted on the training split: standardization, PCA and ZCA whitening.

The lecture notes' first trick: centre and scale the inputs (and, further,
decorrelate them) so that gradient descent sees a better-conditioned problem.
The statistics come from the training split only and are then applied,
unchanged, to every split; a run stores them in its work directory
(``preprocessing.npz``), so evaluation and a resumed run use the same ones.

With ``x`` an example flattened to ``d`` features, ``mu`` the training mean
and ``C = U diag(lambda) U^T`` the training covariance:

* ``'standardize'``: ``(x - mu) / sqrt(var + eps)`` per feature;
* ``'pca_whiten'``: ``diag(lambda + eps)^(-1/2) U^T (x - mu)``: decorrelated
  features of unit variance, in the principal axes (order: largest first);
* ``'zca_whiten'``: ``U diag(lambda + eps)^(-1/2) U^T (x - mu)``: whitened, and
  rotated back to the input's axes, so the result still looks like the input
  (Bell and Sejnowski 1997; Krizhevsky 2009 for images).

``eps`` keeps directions of almost no variance from being blown up (the
constant border pixels of digits have none).
"""

import dataclasses
import os

import numpy as np

from jaxreg.data.datasets import Dataset, Split

METHODS = ("none", "standardize", "pca_whiten", "zca_whiten")


@dataclasses.dataclass(frozen=True)
class Preprocessing:
  """Fitted statistics: ``apply(x) = ((flatten(x) - mean) @ matrix) * scale``, back in ``x``'s shape.

  Attributes:
    method: one of ``METHODS`` (not ``'none'``).
    mean: the training mean, ``(d,)``.
    matrix: ``(d, d)`` for the whitenings, ``None`` for ``'standardize'``.
    scale: ``(d,)`` per-feature factors (``'standardize'``), else ``None``.

  Examples:
    >>> train_x = np.random.default_rng(0).normal(3.0, 2.0, size=(500, 4))
    >>> standardize = fit_preprocessing('standardize', train_x)
    >>> z = standardize.apply(train_x)
    >>> bool(np.allclose(z.mean(0), 0.0, atol=1e-5)), np.round(z.std(0), 2).tolist()
    (True, [1.0, 1.0, 1.0, 1.0])
  """

  method: str
  mean: np.ndarray
  matrix: np.ndarray | None = None
  scale: np.ndarray | None = None

  def apply(self, x) -> np.ndarray:
    """``x`` (``(n, ...)``) preprocessed, as float32 of the same shape."""
    x = np.asarray(x)
    flat = x.reshape(len(x), -1).astype(np.float64) - self.mean
    if self.matrix is not None:
      flat = flat @ self.matrix
    if self.scale is not None:
      flat = flat * self.scale
    return flat.reshape(x.shape).astype(np.float32)

  def apply_to(self, dataset: Dataset) -> Dataset:
    """``dataset`` with every split's inputs preprocessed (labels and order kept)."""
    def each(split: Split | None) -> Split | None:
      return None if split is None else split._replace(x=self.apply(split.x))

    return dataclasses.replace(dataset, train=each(dataset.train), val=each(dataset.val), test=each(dataset.test))

  def save(self, path: str) -> None:
    """Writes the statistics as an ``.npz`` (written to a temporary name, then moved into place)."""
    arrays = {"method": np.asarray(self.method), "mean": self.mean}
    arrays.update({k: v for k, v in (("matrix", self.matrix), ("scale", self.scale)) if v is not None})
    temporary = path + ".tmp.npz"
    np.savez(temporary, **arrays)
    os.replace(temporary, path)

  @classmethod
  def load(cls, path: str) -> "Preprocessing":
    """The statistics :meth:`save` wrote."""
    with np.load(path, allow_pickle=False) as f:
      return cls(method=str(f["method"]), mean=f["mean"], matrix=f["matrix"] if "matrix" in f else None,
                 scale=f["scale"] if "scale" in f else None)


def fit_preprocessing(method: str, train_x, *, eps: float = 1e-2) -> Preprocessing | None:
  """Fits ``method`` on the training inputs ``train_x`` (``(n, ...)``); ``'none'`` gives ``None``.

  Args:
    method: ``'none'``, ``'standardize'``, ``'pca_whiten'`` or ``'zca_whiten'``.
    train_x: the training split's inputs only.
    eps: added to each variance (eigenvalue) before the inverse square root, ``> 0``.

  Examples:
    >>> pre = fit_preprocessing('zca_whiten', dataset.train.x, eps=0.1)  # doctest: +SKIP
    >>> dataset = pre.apply_to(dataset)  # doctest: +SKIP
  """
  if method not in METHODS:
    raise ValueError(f"preprocess must be one of {', '.join(METHODS)}, got {method!r}")
  if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < float("inf"):
    raise ValueError(f"preprocess_eps must be a positive, finite number, got {eps!r}")
  if method == "none":
    return None
  flat = np.asarray(train_x).reshape(len(train_x), -1).astype(np.float64)
  mean = flat.mean(axis=0)
  if method == "standardize":
    return Preprocessing(method, mean, scale=1.0 / np.sqrt(flat.var(axis=0) + eps))
  if flat.shape[1] > 4096:
    raise ValueError(f"preprocess={method!r} needs a {flat.shape[1]}x{flat.shape[1]} covariance; "
                     "whiten inputs of at most 4,096 features, or use 'standardize'")
  eigenvalues, eigenvectors = np.linalg.eigh(np.cov(flat - mean, rowvar=False, bias=True))
  order = np.argsort(eigenvalues)[::-1]
  eigenvalues, eigenvectors = np.maximum(eigenvalues[order], 0.0), eigenvectors[:, order]
  inverse_sqrt = eigenvectors / np.sqrt(eigenvalues + eps)  # U diag(lambda + eps)^(-1/2)
  return Preprocessing(method, mean, matrix=inverse_sqrt if method == "pca_whiten" else inverse_sqrt @ eigenvectors.T)
