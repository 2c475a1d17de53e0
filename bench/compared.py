"""docs/compared.md's table: jaxreg against Keras 3, optax + Flax, PyTorch and scikit-learn, every cell checked here.

  pip install -e ".[bench]" && python bench/compared.py          # prints the table
  python bench/compared.py --write                               # and puts it into docs/compared.md

Each cell is the result of running the library: a numeric check against the
lecture notes' formula (AdaGrad, label smoothing, batch norm's running
variance, max-norm), or a call of the feature's API that must work (early
stopping that restores weights, gradient accumulation, bagging, TensorBoard
without TensorFlow, bfloat16 compute over float32 weights). "no" means the
check failed or the library has no such option (the note says which); "by
hand" means the library gives the primitive and the user writes the rest.
``tests/test_compared.py`` reruns this and compares with the page.
"""

import argparse
import inspect
import os
import pathlib
import sys
import tempfile

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")

LIBRARIES = ("jaxreg", "Keras 3", "optax + Flax", "PyTorch", "scikit-learn")
PAGE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "compared.md"
BEGIN, END = "<!-- compared-table -->", "<!-- /compared-table -->"


def _close(a, b, tol=1e-5) -> bool:
  return bool(np.allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=tol, atol=tol))


# AdaGrad (Algorithm 8.4): r <- r + g^2 from r = 0, step -eps g / (delta + sqrt(r)). A gradient of the size
# of delta tells where delta is: outside the root 0.1 * 1e-3 / 2e-3 = 0.05, inside 0.1 * 1e-3 / sqrt(1.001e-3).
G, EPS, DELTA = 1e-3, 0.1, 1e-3
ADAGRAD_STEP = -EPS * G / (DELTA + abs(G))


def adagrad_jaxreg():
  import jax.numpy as jnp

  from jaxreg.optim import adagrad

  tx = adagrad(EPS, delta=DELTA)
  step, _ = tx.update({"w": jnp.array([G])}, tx.init({"w": jnp.zeros(1)}))
  return _close(step["w"], ADAGRAD_STEP), "Algorithm 8.4 by default"


def adagrad_keras():
  import keras

  w = keras.Variable(np.zeros(1, np.float32))
  keras.optimizers.Adagrad(EPS, initial_accumulator_value=0.0, epsilon=DELTA).apply([np.array([G], np.float32)], [w])
  return _close(np.asarray(w), ADAGRAD_STEP), "delta inside the root, even with initial_accumulator_value=0"


def adagrad_optax():
  import jax.numpy as jnp
  import optax

  tx = optax.adagrad(EPS, initial_accumulator_value=0.0, eps=DELTA)
  step, _ = tx.update({"w": jnp.array([G])}, tx.init({"w": jnp.zeros(1)}))
  return _close(step["w"], ADAGRAD_STEP), "delta inside the root; no option for the notes' form"


def adagrad_torch():
  import torch

  w = torch.zeros(1, requires_grad=True)
  opt = torch.optim.Adagrad([w], lr=EPS, eps=DELTA)
  w.grad = torch.tensor([G])
  opt.step()
  return _close(w.detach().numpy(), ADAGRAD_STEP), "Algorithm 8.4 by default"


def adagrad_sklearn():
  from sklearn.neural_network import MLPClassifier

  solvers = inspect.signature(MLPClassifier).parameters["solver"].default
  return False, f"solvers sgd, adam, lbfgs (default {solvers!r}): no AdaGrad"


# Label smoothing as the notes: targets 1 - eps and eps / (K - 1); the libraries' eps / K differ.
LOGITS, LABEL, SMOOTH = np.array([[2.0, 0.5, 0.0, -1.0]], np.float32), 0, 0.3


def _notes_smoothed_loss():
  log_p = LOGITS[0] - np.log(np.sum(np.exp(LOGITS[0])))
  targets = np.full(4, SMOOTH / 3)
  targets[LABEL] = 1 - SMOOTH
  return -float(np.sum(targets * log_p))


def smoothing_jaxreg():
  import jax.numpy as jnp

  from jaxreg.regularizers import label_smoothing
  from jaxreg.train import Context, classification_objective

  objective = label_smoothing(SMOOTH)(classification_objective(lambda v, x, *, train, rng=None: (x, {})))
  loss, _ = objective({}, {"x": jnp.asarray(LOGITS), "y": jnp.array([LABEL])}, Context(None, {}, True))
  return _close(loss, _notes_smoothed_loss()), "the notes' targets by default"


def smoothing_keras():
  import keras

  loss = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=SMOOTH)
  value = float(loss(np.eye(4, dtype=np.float32)[[LABEL]], LOGITS))
  return _close(value, _notes_smoothed_loss()), "targets 1 - eps + eps/K, eps/K"


def smoothing_optax():
  import jax.numpy as jnp
  import optax

  targets = optax.smooth_labels(jnp.eye(4)[jnp.array([LABEL])], SMOOTH)
  value = optax.softmax_cross_entropy(jnp.asarray(LOGITS), targets)[0]
  return _close(value, _notes_smoothed_loss()), "optax.smooth_labels: 1 - eps + eps/K, eps/K"


def smoothing_torch():
  import torch

  value = torch.nn.CrossEntropyLoss(label_smoothing=SMOOTH)(torch.from_numpy(LOGITS), torch.tensor([LABEL]))
  return _close(float(value), _notes_smoothed_loss()), "targets 1 - eps + eps/K, eps/K"


def smoothing_sklearn():
  from sklearn.neural_network import MLPClassifier

  return "label_smoothing" in inspect.signature(MLPClassifier).parameters, "MLPClassifier has no such option"


# Batch norm's running variance after one step of a batch of m = 4 (momentum off): the notes keep the
# unbiased m/(m - 1) var_B for inference.
BATCH = np.array([[1.0], [2.0], [3.0], [6.0]], np.float32)
UNBIASED = float(np.var(BATCH, ddof=1))


def batch_norm_jaxreg():
  import jax

  from jaxreg.models import BatchNorm

  norm = BatchNorm(momentum=0.0)
  variables = norm.init(jax.random.key(0), BATCH, train=False)
  _, state = norm.apply(variables, BATCH, train=True, mutable=["batch_stats"])
  return _close(state["batch_stats"]["var"], UNBIASED), "unbiased by default; variance='biased' as Flax"


def batch_norm_keras():
  import keras

  layer = keras.layers.BatchNormalization(momentum=0.0)
  layer(BATCH, training=True)
  return _close(np.asarray(layer.moving_variance), UNBIASED), "keeps the biased var_B"


def batch_norm_flax():
  import flax.linen as nn
  import jax

  norm = nn.BatchNorm(momentum=0.0)
  variables = norm.init(jax.random.key(0), BATCH, use_running_average=False)
  _, state = norm.apply(variables, BATCH, use_running_average=False, mutable=["batch_stats"])
  return _close(state["batch_stats"]["var"], UNBIASED), "flax.linen.BatchNorm keeps the biased var_B"


def batch_norm_torch():
  import torch

  norm = torch.nn.BatchNorm1d(1, momentum=1.0)
  norm(torch.from_numpy(BATCH))
  return _close(norm.running_var.numpy(), UNBIASED), "unbiased, as the notes"


def batch_norm_sklearn():
  return False, "no batch normalization"


# Max-norm: after a step, every unit's incoming weights have norm <= c, and units within it are unchanged.
KERNEL = np.array([[3.0, 0.3], [4.0, 0.4]], np.float32)  # column norms 5 and 0.5
MAX_NORMED = np.array([[1.8, 0.3], [2.4, 0.4]], np.float32)  # c = 3: the first column rescaled, the second kept


def max_norm_jaxreg():
  import jax.numpy as jnp
  import optax

  from jaxreg.regularizers import max_norm

  params = {"dense": {"kernel": jnp.zeros((2, 2))}}
  tx = max_norm(3.0)
  updates, _ = tx.update({"dense": {"kernel": jnp.asarray(KERNEL)}}, tx.init(params), params)
  return _close(optax.apply_updates(params, updates)["dense"]["kernel"], MAX_NORMED), "regularizers.max_norm"


def max_norm_keras():
  import keras

  return _close(keras.constraints.MaxNorm(3.0, axis=0)(KERNEL), MAX_NORMED), "keras.constraints.MaxNorm"


def max_norm_optax():
  import jax.numpy as jnp
  import optax

  projected = optax.projections.projection_l2_ball(jnp.asarray(KERNEL), 3.0)  # the nearest optax has
  return _close(projected, MAX_NORMED), "projections act on a whole array, not per unit"


def max_norm_torch():
  import torch

  renormed = torch.renorm(torch.from_numpy(KERNEL), p=2, dim=1, maxnorm=3.0)  # per column
  return ("by hand" if _close(renormed.numpy(), MAX_NORMED) else False), "torch.renorm, called after each step"


def max_norm_sklearn():
  return False, "no weight constraints"


# Early stopping that gives back the best epoch's weights.
def early_stopping_jaxreg():
  from jaxreg.train import fit

  return "restore_best" in inspect.signature(fit).parameters, "fit(restore_best=True), the default"


def early_stopping_keras():
  import keras

  return keras.callbacks.EarlyStopping(restore_best_weights=True).restore_best_weights, \
      "EarlyStopping(restore_best_weights=True)"


def early_stopping_flax():
  from flax.training.early_stopping import EarlyStopping

  keeps_weights = any("param" in name or "state" in name for name in EarlyStopping.__dataclass_fields__)
  return keeps_weights, "flax.training.early_stopping tracks the metric, keeps no weights"


def early_stopping_torch():
  import torch

  found = [n for n in dir(torch.optim) + dir(torch.nn) if "EarlyStop" in n]
  return bool(found), "none in torch"


def early_stopping_sklearn():
  from sklearn.datasets import load_digits
  from sklearn.neural_network import MLPClassifier

  import warnings

  x, y = load_digits(return_X_y=True)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # 30 iterations do not converge
    clf = MLPClassifier((16,), early_stopping=True, max_iter=30, random_state=0).fit(x / 16.0, y)
  restored = all(np.array_equal(a, b) for a, b in zip(clf.coefs_, clf._best_coefs, strict=True))
  return restored, "MLPClassifier(early_stopping=True) ends with the best weights"


# Gradient accumulation as a setting: k steps of batch b make one update.
def accumulation_jaxreg():
  from jaxreg.config import load_config
  from jaxreg.experiment import build

  experiment = build(load_config("digits_mlp:smoke", [("optimizer.accumulate_steps", "4")])[0])
  return "MultiSteps" in type(experiment.initial_state.opt_state).__name__, "optimizer.accumulate_steps"


def accumulation_keras():
  import keras

  return keras.optimizers.Adam(gradient_accumulation_steps=4).gradient_accumulation_steps == 4, \
      "optimizer(gradient_accumulation_steps=k)"


def accumulation_optax():
  import jax.numpy as jnp
  import optax

  tx = optax.MultiSteps(optax.sgd(0.1), every_k_schedule=4)
  return int(tx.init({"w": jnp.zeros(1)}).mini_step) == 0, "optax.MultiSteps"


def accumulation_torch():
  import torch

  has = any("accumulat" in name for name in inspect.signature(torch.optim.Adam).parameters)
  return ("by hand" if not has else True), "call backward k times before step()"


def accumulation_sklearn():
  return False, "no option"


# Bagging: members trained on bootstrap resamples, and their average.
def bagging_jaxreg():
  from jaxreg.config import load_config
  from jaxreg.populations import is_population

  config, _ = load_config("digits_mlp:smoke", [("population.size", "5"), ("population.bootstrap", "True")])
  return is_population(config), "population.bootstrap: every member in one vmapped program"


def bagging_keras():
  import keras

  return bool([n for n in dir(keras.models) + dir(keras.utils) if "Bagg" in n or "Ensemble" in n]), "none"


def bagging_optax():
  import flax.training
  import optax

  found = bool([n for n in dir(optax) + dir(flax.training) if "bagg" in n.lower()])
  return found or "by hand", "jax.vmap over stacked states and resampling, written by hand"


def bagging_torch():
  import torch.func

  return ("by hand" if hasattr(torch.func, "stack_module_state") else False), \
      "torch.func.stack_module_state + vmap, resampling by hand"


def bagging_sklearn():
  from sklearn.ensemble import BaggingClassifier

  return BaggingClassifier(n_estimators=5).n_estimators == 5, "BaggingClassifier (separate fits)"


# TensorBoard event files from training, without TensorFlow installed.
def _tensorflow_missing() -> bool:
  import importlib.util

  return importlib.util.find_spec("tensorflow") is None


def tensorboard_jaxreg():
  from jaxreg.train import read_scalars
  from jaxreg.train.hooks import EpochEnd
  from jaxreg.train.tensorboard import WriteTensorBoard

  logdir = tempfile.mkdtemp()
  hook = WriteTensorBoard(logdir)
  hook.before_run(0)
  hook.after_epoch(EpochEnd(1, {"epoch": 1, "step": 10, "train_loss": 0.5}, None))
  hook.close()
  return read_scalars(logdir)["train/loss"] == [(10, 0.5)], "train.tensorboard"


def tensorboard_keras():
  import keras

  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  model.compile("sgd", "mse")
  try:
    model.fit(np.zeros((4, 2)), np.zeros((4, 1)), verbose=0, callbacks=[keras.callbacks.TensorBoard(tempfile.mkdtemp())])
  except ImportError:
    return False, "the TensorBoard callback needs TensorFlow"
  return True, "the TensorBoard callback"


def tensorboard_optax():
  try:
    import flax.metrics.tensorboard  # noqa: F401
  except ImportError:
    return False, "flax.metrics.tensorboard needs TensorFlow"
  return True, "flax.metrics.tensorboard"


def tensorboard_torch():
  from torch.utils.tensorboard import SummaryWriter

  writer = SummaryWriter(tempfile.mkdtemp())
  writer.add_scalar("loss", 0.5, 1)
  writer.close()
  return "by hand", "torch.utils.tensorboard.SummaryWriter, called in your loop"


def tensorboard_sklearn():
  return False, "no training logs"


# bfloat16 computation over float32 weights (mixed precision).
def bf16_jaxreg():
  import jax
  import jax.numpy as jnp

  from jaxreg.models import make_mlp, with_compute_dtype

  model = with_compute_dtype(make_mlp(num_outputs=2, hidden_sizes=(4,)), "bfloat16")
  variables = model.init(jax.random.key(0), jnp.zeros((1, 3)))
  jaxpr = str(jax.make_jaxpr(lambda v: model.apply(v, jnp.ones((2, 3)), train=False)[0])(variables))
  return "bf16[2,4] = dot_general" in jaxpr and variables["params"]["dense_0"]["kernel"].dtype == jnp.float32, \
      "train.compute_dtype='bfloat16'"


def bf16_keras():
  import keras

  layer = keras.layers.Dense(4, dtype="mixed_bfloat16")
  layer.build((None, 3))
  return layer.compute_dtype == "bfloat16" and layer.kernel.dtype == "float32", "dtype policy 'mixed_bfloat16'"


def bf16_flax():
  import flax.linen as nn
  import jax
  import jax.numpy as jnp

  layer = nn.Dense(4, dtype=jnp.bfloat16, param_dtype=jnp.float32)
  variables = layer.init(jax.random.key(0), jnp.ones((1, 3)))
  out = layer.apply(variables, jnp.ones((1, 3)))
  return out.dtype == jnp.bfloat16 and variables["params"]["kernel"].dtype == jnp.float32, \
      "nn.Dense(dtype=bfloat16, param_dtype=float32), layer by layer"


def bf16_torch():
  import torch

  linear = torch.nn.Linear(3, 4)
  with torch.autocast("cpu", dtype=torch.bfloat16):
    out = linear(torch.ones(1, 3))
  return out.dtype == torch.bfloat16 and linear.weight.dtype == torch.float32, "torch.autocast"


def bf16_sklearn():
  return False, "float32 and float64 only"


ROWS = {
    "AdaGrad as Algorithm 8.4 (r from 0, delta outside the root)": "adagrad",
    "Label smoothing with the notes' targets (1 - eps, eps/(K-1))": "smoothing",
    "Batch norm keeps the unbiased variance m/(m-1) for inference": "batch_norm",
    "Max-norm constraint per unit": "max_norm",
    "Early stopping that restores the best weights": "early_stopping",
    "Gradient accumulation as a setting": "accumulation",
    "Bagging (bootstrap members and their average)": "bagging",
    "TensorBoard files without TensorFlow": "tensorboard",
    "bfloat16 compute over float32 weights": "bf16",
}
SUFFIXES = {"jaxreg": "jaxreg", "Keras 3": "keras", "optax + Flax": ("optax", "flax"), "PyTorch": "torch",
            "scikit-learn": "sklearn"}


def _probe(row: str, library: str) -> str:
  """The cell: 'yes', 'no' or 'by hand', with the probe's note (or why it could not run)."""
  suffixes = SUFFIXES[library]
  suffixes = suffixes if isinstance(suffixes, tuple) else (suffixes,)
  fn = next(globals()[f"{row}_{s}"] for s in suffixes if f"{row}_{s}" in globals())
  try:
    result, note = fn()
  except ImportError as e:
    return f"not installed ({e.name})"
  mark = result if isinstance(result, str) else ("yes" if result else "no")
  return f"{mark}: {note}"


def table() -> str:
  """The Markdown table: one row per feature, one column per library."""
  lines = ["| | " + " | ".join(LIBRARIES) + " |", "|---|" + "---|" * len(LIBRARIES)]
  for title, row in ROWS.items():
    lines.append(f"| {title} | " + " | ".join(_probe(row, library) for library in LIBRARIES) + " |")
  return "\n".join(lines)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--write", action="store_true", help=f"put the table into {PAGE.name}")
  args = parser.parse_args()
  text = table()
  print(text)
  if args.write:
    page = PAGE.read_text()
    start, end = page.index(BEGIN) + len(BEGIN), page.index(END)
    PAGE.write_text(page[:start] + "\n" + text + "\n" + page[end:])
  return 0


if __name__ == "__main__":
  sys.exit(main())
