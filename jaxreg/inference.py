"""Using a finished run: predictions on new inputs, its metrics on any arrays, its parameters exported.

All three start from :func:`jaxreg.runs.load_run`. Inputs are taken as the
run's data gives them (e.g. digits' pixels in ``[0, 1]``): a run that
preprocessed its data (``data.preprocess``) applies its stored statistics
first, as it did in training.

Examples:
  >>> run = load_run('runs/digits_mlp/x')  # doctest: +SKIP
  >>> labels = predict(run, x_new, output='labels')  # doctest: +SKIP
  >>> evaluate(run, x_test, y_test)['accuracy']  # doctest: +SKIP
  >>> export(run, 'digits_mlp.msgpack')  # doctest: +SKIP
"""

import os

import jax
import numpy as np

from jaxreg.data.iterators import eval_layout, padded_batches
from jaxreg.runs import Run

OUTPUTS = ("logits", "probabilities", "labels")


def model_inputs(run: Run, x) -> np.ndarray:
  """``x`` as the run's model takes it: float32, preprocessed with the run's stored statistics if it had any.

  Raises:
    ValueError: if ``x``'s example shape is not the run's.

  Examples:
    >>> x = model_inputs(load_run('runs/x'), raw_x)  # standardized as the run's training data was  # doctest: +SKIP
  """
  x = np.asarray(x, dtype=np.float32)
  expected = run.experiment.dataset.train.x.shape[1:]
  if x.ndim == 0 or len(x) == 0:
    raise ValueError(f"x holds no examples (shape {x.shape}); pass an array of shape (n, {', '.join(map(str, expected))})")
  if x.shape[1:] != expected:
    raise ValueError(f"x has examples of shape {x.shape[1:]}, but the run's model takes {expected} "
                     f"(pass an array of shape (n, {', '.join(map(str, expected))}))")
  preprocessing = run.experiment.preprocessing
  return x if preprocessing is None else preprocessing.apply(x)


def predict(run: Run, x, *, batch_size: int | None = None, output: str = "logits") -> np.ndarray:
  """The run's model on ``x`` in evaluation mode (no dropout, running statistics), in batches.

  Args:
    run: from :func:`~jaxreg.runs.load_run`.
    x: inputs, ``(n, ...)`` as the run's data gives them.
    batch_size: examples per compiled call (default: the run's ``data.eval_batch_size``).
    output: ``'logits'`` (the model's outputs; a regression's predictions),
      ``'probabilities'`` (softmax) or ``'labels'`` (argmax).

  Returns:
    A host array with one row per example.

  Examples:
    >>> probabilities = predict(load_run(workdir), x, output='probabilities')  # doctest: +SKIP
  """
  if output not in OUTPUTS:
    raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
  if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
    raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
  x = model_inputs(run, x)
  size = batch_size or run.experiment.options.eval_batch_size
  apply = jax.jit(lambda v, xb: run.experiment.model.apply(v, xb, train=False, rng=None)[0])
  variables = run.variables
  outputs = np.concatenate([np.asarray(apply(variables, x[i:i + size])) for i in range(0, len(x), size)])
  if output == "probabilities":
    return softmax(outputs)
  return outputs.argmax(-1) if output == "labels" else outputs


def softmax(logits) -> np.ndarray:
  """Class probabilities from logits, in float32 on the host.

  Examples:
    >>> softmax(np.array([[0.0, 0.0], [np.log(3.0), 0.0]])).round(2).tolist()
    [[0.5, 0.5], [0.75, 0.25]]
  """
  return np.asarray(jax.nn.softmax(np.asarray(logits, np.float32), axis=-1))


def evaluate(run: Run, x, y, *, layout: int | None = None) -> dict[str, float]:
  """The run's evaluation metrics (``loss``, ``accuracy`` for a classifier) on ``(x, y)``.

  The same compiled evaluation as the run's own (the unregularized
  objective, the optimizer's evaluation parameters), so a split evaluated
  with the run's ``layout`` gives its summary's numbers to the bit.

  Args:
    run: from :func:`~jaxreg.runs.load_run`.
    x, y: inputs (as the run's data gives them) and targets.
    layout: the number of examples the padded batches are laid out for (the
      run lays out validation and test for the larger of the two); default ``len(y)``.

  Examples:
    >>> evaluate(run, x_test, y_test)  # doctest: +SKIP
    {'accuracy': 0.9694, 'loss': 0.1031}
  """
  from jaxreg.train.epochs import make_evaluate

  x, y = model_inputs(run, x), np.asarray(y)
  if len(y) != len(x):
    raise ValueError(f"x and y must hold the same number of examples, got {len(x)} and {len(y)}")
  size, num_batches = eval_layout(run.experiment.options.eval_batch_size, max(layout or len(y), len(y)))
  batches = jax.device_put(padded_batches(x, y.astype(run.experiment.dataset.train.y.dtype), size, num_batches))
  metrics = make_evaluate(run.experiment.eval_step)(run.state, batches)
  return {k: float(v) for k, v in jax.device_get(metrics).items()}


def evaluate_split(run: Run, split: str = "test") -> dict[str, float]:
  """The run's metrics on one of its own splits, laid out as the run laid them out (its summary's numbers).

  Examples:
    >>> evaluate_split(load_run(workdir))['accuracy'] == run.summary['test_accuracy']  # doctest: +SKIP
    True
  """
  dataset = run.experiment.raw_dataset or run.experiment.dataset
  splits = {"train": dataset.train, "val": dataset.val, "test": dataset.test}
  if splits.get(split) is None:
    have = ", ".join(name for name, s in splits.items() if s is not None)
    raise ValueError(f"split must be one of {have} (the run's data has these), got {split!r}")
  layout = max((len(s.y) for name, s in splits.items() if name != "train" and s is not None), default=None)
  return evaluate(run, splits[split].x, splits[split].y, layout=None if split == "train" else layout)


def export(run: Run, path: str) -> str:
  """Writes the run's evaluation variables (``{'params': ..., 'batch_stats': ...}``) as Flax msgpack.

  Parameters only: no optimizer state, no Orbax. Read them back without
  jaxreg or Orbax with ``flax.serialization.msgpack_restore(open(path,
  'rb').read())`` (nested dicts of NumPy arrays), or into a template with
  ``flax.serialization.from_bytes(template, data)``.

  Returns:
    ``path``.

  Examples:
    >>> export(load_run(workdir), 'model.msgpack')  # doctest: +SKIP
    >>> variables = flax.serialization.msgpack_restore(open('model.msgpack', 'rb').read())  # doctest: +SKIP
  """
  from flax import serialization

  data = serialization.msgpack_serialize(jax.device_get(serialization.to_state_dict(run.variables)))
  temporary = f"{path}.tmp"
  with open(temporary, "wb") as f:
    f.write(data)
  os.replace(temporary, path)
  return path


__all__ = ["OUTPUTS", "evaluate", "evaluate_split", "export", "model_inputs", "predict", "softmax"]
