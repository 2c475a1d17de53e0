"""Benchmark: the same MLP on digits with jaxreg, hand-written JAX, PyTorch eager and scikit-learn.

Command (from the repository root, after ``pip install -e ".[bench]"``):

  python bench/mlp_digits.py                 # 12 repeats (about 4 minutes), prints a Markdown table
  python bench/mlp_digits.py --repeats 1 --epochs 5   # quick check
  python bench/mlp_digits.py --optimizer sgd --repeats 1 --output /tmp/sgd.json   # agreement with PyTorch

Keras 3 (``fit`` on its JAX backend, ``steps_per_execution`` a whole epoch)
starts from the same weights but shuffles with its own generator, so its
parameters are not compared.

Every implementation trains a 64-256-256-10 ReLU MLP, no regularization, with
Adam (learning rate 1e-3), batch 128, for 50 epochs on the same
train/validation/test split of scikit-learn's digits (jaxreg's split, seed 0),
and evaluates validation accuracy after every epoch (scikit-learn cannot, so
it does not). The JAX and PyTorch loops drop the last partial batch (9 steps
per epoch); scikit-learn keeps it (10 steps per epoch), and its steps are
counted as such.

jaxreg, the hand-written JAX loop and PyTorch start from the same initial
weights and visit the same batches in the same order, so they run the same
computation: the table reports the largest difference of their final
parameters from jaxreg's. The hand-written JAX loop compiles to the same
arithmetic (difference 0). PyTorch differs by float32 round-off, which Adam
amplifies where a gradient is nearly zero (its step there is about +-lr
whatever the gradient's size): with ``--optimizer sgd`` the same comparison
shows plain float32 round-off (about 1e-5 after 450 steps). scikit-learn initialises its own weights (Glorot
uniform) and shuffles with its own generator.

Speed is steady-state steps per second: the steps of epochs 2..N over their
wall time (the first epoch of the JAX loops includes compilation, reported
separately as "first epoch s"). scikit-learn's time is its whole ``fit``.
Each implementation runs ``--repeats`` times, interleaved with the others in
a rotating order with a pause between runners. The table gives each one's
median speed and jaxreg's speed-up over it: the median (and range) of the
per-repeat ratios, since the runners of one repeat run back to back and the
machine's speed drifts over seconds on a shared host.
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras 3 as a peer runs on JAX, as jaxreg

HIDDEN = (256, 256)
BATCH_SIZE = 128
# The optimizer every implementation uses, and its learning rate (--optimizer).
LEARNING_RATES = {"adam": 1e-3, "sgd": 0.1}
OPTIMIZER = "adam"


def _learning_rate():
  return LEARNING_RATES[OPTIMIZER]


def initial_params(seed):
  """The shared initial weights: Flax's default Dense init (LeCun normal kernels, zero biases)."""
  import flax.linen as nn
  import jax

  layers = [nn.Dense(w, name=f"dense_{i}") for i, w in enumerate(HIDDEN)] + [nn.Dense(10, name="output")]
  params = {}
  for i, (layer, width_in) in enumerate(zip(layers, (64,) + HIDDEN)):
    key = jax.random.fold_in(jax.random.PRNGKey(seed), i)
    params[layer.name] = layer.init(key, np.zeros((1, width_in), np.float32))["params"]
  return params


def run_jaxreg(data, epochs, seed, params):
  import jax

  from jaxreg.models import make_mlp
  from jaxreg.optim import make_optimizer
  from jaxreg.train import classification_objective, create_train_state, fit, make_eval_step, make_train_step

  model = make_mlp(num_outputs=10, hidden_sizes=HIDDEN)
  tx = make_optimizer(OPTIMIZER, learning_rate=_learning_rate())
  objective = classification_objective(model.apply)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(seed), sample_x=data.train.x[:1])
  state = state.replace(params=params, opt_state=tx.init(params))
  result = fit(
      state, train_step=make_train_step(objective, tx), eval_step=make_eval_step(objective),
      dataset=data, batch_size=BATCH_SIZE, epochs=epochs, shuffle_seed=seed,
      restore_best=False, progress=False,
  )
  s = result.summary
  return s["steps_per_second"], s["first_epoch_seconds"], s["test_accuracy"], result.state.params


def run_handwritten_jax(data, epochs, seed, params):
  """A minimal Flax + optax loop, the epoch in one jitted lax.scan, written without jaxreg."""
  import flax.linen as nn
  import jax
  import jax.numpy as jnp
  import optax

  class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
      for i, width in enumerate(HIDDEN):
        x = nn.relu(nn.Dense(width, name=f"dense_{i}")(x))
      return nn.Dense(10, name="output")(x)

  model = MLP()
  tx = getattr(optax, OPTIMIZER)(_learning_rate())
  opt_state = tx.init(params)
  x, y = jnp.asarray(data.train.x), jnp.asarray(data.train.y)
  xv, yv = jnp.asarray(data.val.x), jnp.asarray(data.val.y)
  n, steps = len(y), len(y) // BATCH_SIZE
  shuffle_key = jax.random.PRNGKey(seed)

  def loss_fn(params, xb, yb):
    logits = model.apply({"params": params}, xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

  @jax.jit
  def train_epoch(params, opt_state, epoch):
    perm = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n)[: steps * BATCH_SIZE]

    def step(carry, idx):
      params, opt_state = carry
      loss, grads = jax.value_and_grad(loss_fn)(params, x[idx], y[idx])
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), perm.reshape(steps, BATCH_SIZE))
    return params, opt_state, losses.mean()

  @jax.jit
  def accuracy(params, xs, ys):
    return jnp.mean(jnp.argmax(model.apply({"params": params}, xs), -1) == ys)

  times = []
  for epoch in range(1, epochs + 1):
    start = time.perf_counter()
    params, opt_state, loss = train_epoch(params, opt_state, epoch)
    float(loss)
    times.append(time.perf_counter() - start)
    float(accuracy(params, xv, yv))
  test_accuracy = float(accuracy(params, jnp.asarray(data.test.x), jnp.asarray(data.test.y)))
  return _steady(times, steps), times[0], test_accuracy, params


def run_pytorch(data, epochs, seed, params):
  """PyTorch eager on the CPU, the usual loop (torch.optim.Adam with its defaults)."""
  import jax
  import torch

  from jaxreg.data import epoch_batch_indices

  layers, width_in = [], 64
  for width in HIDDEN:
    layers += [torch.nn.Linear(width_in, width), torch.nn.ReLU()]
    width_in = width
  model = torch.nn.Sequential(*layers, torch.nn.Linear(width_in, 10))
  linears = [m for m in model if isinstance(m, torch.nn.Linear)]
  with torch.no_grad():
    for linear, name in zip(linears, [f"dense_{i}" for i in range(len(HIDDEN))] + ["output"]):
      linear.weight.copy_(torch.from_numpy(np.asarray(params[name]["kernel"]).T.copy()))
      linear.bias.copy_(torch.from_numpy(np.array(params[name]["bias"])))
  optimizer_class = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[OPTIMIZER]
  opt = optimizer_class(model.parameters(), lr=_learning_rate())
  loss_fn = torch.nn.CrossEntropyLoss()
  x, y = torch.from_numpy(data.train.x), torch.from_numpy(data.train.y.astype(np.int64))
  xv, yv = torch.from_numpy(data.val.x), torch.from_numpy(data.val.y.astype(np.int64))
  n, steps = len(y), len(y) // BATCH_SIZE
  # The same batch order as the JAX loops, drawn before timing starts.
  orders = [
      torch.from_numpy(np.asarray(epoch_batch_indices(jax.random.PRNGKey(seed), e, n, BATCH_SIZE)).astype(np.int64))
      for e in range(1, epochs + 1)
  ]
  times = []
  for epoch in range(epochs):
    start = time.perf_counter()
    model.train()
    for idx in orders[epoch]:
      opt.zero_grad(set_to_none=True)
      loss = loss_fn(model(x[idx]), y[idx])
      loss.backward()
      opt.step()
    float(loss.detach())
    times.append(time.perf_counter() - start)
    model.eval()
    with torch.no_grad():
      float((model(xv).argmax(-1) == yv).float().mean())
  with torch.no_grad():
    xt, yt = torch.from_numpy(data.test.x), torch.from_numpy(data.test.y.astype(np.int64))
    test_accuracy = float((model(xt).argmax(-1) == yt).float().mean())
  final = {
      name: {"kernel": linear.weight.detach().numpy().T, "bias": linear.bias.detach().numpy()}
      for linear, name in zip(linears, [f"dense_{i}" for i in range(len(HIDDEN))] + ["output"])
  }
  return _steady(times, steps), times[0], test_accuracy, final


def run_keras(data, epochs, seed, params):
  """Keras 3 on its JAX backend, the usual ``fit``, from the same initial weights.

  ``steps_per_execution`` is a whole epoch (Keras's fastest setting: one
  compiled call per epoch, the analogue of a scanned epoch). Validation runs
  after each epoch with ``evaluate``, outside the timed epoch as in the other
  loops. Keras shuffles with its own generator, so its parameters are not compared.
  """
  import keras

  keras.utils.set_random_seed(seed)
  steps = len(data.train.y) // BATCH_SIZE
  layers = [keras.layers.Dense(w, activation="relu", name=f"dense_{i}") for i, w in enumerate(HIDDEN)]
  model = keras.Sequential([keras.Input((64,)), *layers, keras.layers.Dense(10, name="output")])
  for layer in model.layers:
    layer.set_weights([np.asarray(params[layer.name]["kernel"]), np.asarray(params[layer.name]["bias"])])
  optimizer = {"adam": keras.optimizers.Adam(_learning_rate(), epsilon=1e-8),
               "sgd": keras.optimizers.SGD(_learning_rate())}[OPTIMIZER]
  model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"], steps_per_execution=steps)
  timer = _epoch_timer(keras)
  n = steps * BATCH_SIZE  # full batches only, as the other loops
  for epoch in range(epochs):
    model.fit(data.train.x[:n], data.train.y[:n], batch_size=BATCH_SIZE, initial_epoch=epoch, epochs=epoch + 1,
              shuffle=True, verbose=0, callbacks=[timer])
    model.evaluate(data.val.x, data.val.y, batch_size=1024, verbose=0)
  _, test_accuracy = model.evaluate(data.test.x, data.test.y, batch_size=1024, verbose=0)
  return _steady(timer.times, steps), timer.times[0], float(test_accuracy), None


def _epoch_timer(keras):
  """A Keras callback recording each epoch's wall time, start to end.

  The end's logs hold the epoch's loss as a Python number, so the device
  work is finished (JAX dispatches asynchronously: an earlier point could
  fire before the epoch has run).
  """

  class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
      super().__init__()
      self.times, self.start = [], None

    def on_epoch_begin(self, epoch, logs=None):
      self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      float(logs["loss"])
      self.times.append(time.perf_counter() - self.start)

  return EpochTimer()


def run_sklearn(data, epochs, seed, params):
  del params  # scikit-learn initialises its own weights
  import warnings

  from sklearn.exceptions import ConvergenceWarning
  from sklearn.neural_network import MLPClassifier

  clf = MLPClassifier(
      hidden_layer_sizes=HIDDEN, activation="relu", solver=OPTIMIZER, alpha=0.0, batch_size=BATCH_SIZE,
      learning_rate_init=_learning_rate(), max_iter=epochs, shuffle=True, random_state=seed, tol=0.0,
      n_iter_no_change=epochs + 1, momentum=0.0, nesterovs_momentum=False,
  )
  start = time.perf_counter()
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf.fit(data.train.x, data.train.y)
  seconds = time.perf_counter() - start
  steps = clf.n_iter_ * -(-len(data.train.y) // BATCH_SIZE)
  return steps / seconds, None, float(clf.score(data.test.x, data.test.y)), None


def _max_difference(a, b):
  if a is None or b is None:
    return None
  import jax

  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _cpu_model():
  try:
    with open("/proc/cpuinfo") as f:
      name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    with open("/proc/cpuinfo") as f:
      flags = next(line for line in f if line.startswith("flags"))
    return name + (" with AVX-512" if "avx512f" in flags else "")
  except (OSError, StopIteration):
    return platform.processor() or platform.machine()


def _steady(epoch_seconds, steps_per_epoch):
  later = epoch_seconds[1:] or epoch_seconds
  return steps_per_epoch * len(later) / sum(later)


# Why a runner's final parameters are not compared with jaxreg's.
NOT_COMPARED = {"scikit-learn MLPClassifier": "own init", "Keras 3 fit, JAX backend": "own batch order"}

RUNNERS = {
    "jaxreg fit (scan epoch)": run_jaxreg,
    "hand-written Flax+optax (scan epoch)": run_handwritten_jax,
    "PyTorch eager (CPU)": run_pytorch,
    "Keras 3 fit, JAX backend": run_keras,
    "scikit-learn MLPClassifier": run_sklearn,
}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--epochs", type=int, default=50)
  parser.add_argument("--repeats", type=int, default=12)
  parser.add_argument("--pause", type=float, default=2.0, help="seconds of rest between runners")
  parser.add_argument("--optimizer", choices=sorted(LEARNING_RATES), default="adam",
                      help="adam (1e-3, the benchmark) or sgd (0.1: no Adam amplification of round-off, "
                           "so the parameter difference to PyTorch shows plain float32 round-off)")
  parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "mlp_digits.json"))
  args = parser.parse_args()
  global OPTIMIZER
  OPTIMIZER = args.optimizer

  import jax
  import keras
  import sklearn
  import torch

  from jaxreg.data import load_digits

  data = load_digits(seed=0)
  results = {name: [] for name in RUNNERS}
  differences = {name: [] for name in RUNNERS}
  for repeat in range(args.repeats):
    params = initial_params(repeat)
    outcomes = {}
    # Interleaved, so load on the machine hits all alike; the order rotates every
    # repeat and a pause separates runners, because PyTorch's OpenMP and
    # scikit-learn's BLAS threads keep spinning for a while after their last call
    # and would slow down whichever runner comes next.
    names = list(RUNNERS)
    names = names[repeat % len(names):] + names[:repeat % len(names)]
    for name in names:
      time.sleep(args.pause)
      outcomes[name] = RUNNERS[name](data, args.epochs, seed=repeat, params=params)
      results[name].append(outcomes[name][:3])
    for name in RUNNERS:
      differences[name].append(_max_difference(outcomes[name][3], outcomes["jaxreg fit (scan epoch)"][3]))
  jaxreg_runs = results["jaxreg fit (scan epoch)"]
  rows = []
  for name, runs in results.items():
    speed = statistics.median(r[0] for r in runs)
    first = [r[1] for r in runs if r[1] is not None]
    # Paired: each repeat's ratio, then the median. The machine's speed drifts
    # over seconds, and the runners of one repeat run back to back.
    speedup = statistics.median(j[0] / r[0] for j, r in zip(jaxreg_runs, runs))
    rows.append({
        "implementation": name,
        "steps_per_second": speed,
        "steps_per_second_each_repeat": [r[0] for r in runs],
        "ratio_to_jaxreg": 1.0 / speedup,
        "jaxreg_speedup": speedup,
        "jaxreg_speedup_range": [min(j[0] / r[0] for j, r in zip(jaxreg_runs, runs)),
                                 max(j[0] / r[0] for j, r in zip(jaxreg_runs, runs))],
        "first_epoch_seconds": statistics.median(first) if first else None,
        "test_accuracy_mean": float(np.mean([r[2] for r in runs])),
        "test_accuracy_min": float(np.min([r[2] for r in runs])),
        "max_param_difference_to_jaxreg": (
            None if differences[name][0] is None else max(differences[name])
        ),
    })
  machine = (
      f"{_cpu_model()}, {os.cpu_count()} cores; jax {jax.__version__} "
      f"({jax.default_backend()}), torch {torch.__version__}, keras {keras.__version__}, "
      f"scikit-learn {sklearn.__version__}"
  )
  print(f"MLP 64-256-256-10 on digits, {OPTIMIZER} {_learning_rate()}, batch {BATCH_SIZE}, {args.epochs} epochs, "
        f"median of {args.repeats} runs (seeds 0..{args.repeats - 1}); {machine}\n")
  print("| implementation | steps/s (median) | jaxreg speed-up (median, range) | first epoch s "
        "| test acc (mean, min) | max param diff to jaxreg |")
  print("|---|---:|---:|---:|---:|---:|")
  for r in rows:
    first = f"{r['first_epoch_seconds']:.2f}" if r["first_epoch_seconds"] is not None else "n/a"
    diff = r["max_param_difference_to_jaxreg"]
    diff = NOT_COMPARED.get(r["implementation"], "n/a") if diff is None else f"{diff:.1e}"
    low, high = r["jaxreg_speedup_range"]
    print(f"| {r['implementation']} | {r['steps_per_second']:.0f} | {r['jaxreg_speedup']:.2f}x "
          f"({low:.2f}-{high:.2f}) | {first} | {r['test_accuracy_mean']:.4f}, {r['test_accuracy_min']:.4f} "
          f"| {diff} |")
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump({"machine": machine, "optimizer": OPTIMIZER, "learning_rate": _learning_rate(),
               "epochs": args.epochs, "repeats": args.repeats, "rows": rows}, f, indent=2)
  print(f"\nwritten to {args.output}")


if __name__ == "__main__":
  main()
