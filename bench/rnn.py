"""Benchmark: LSTM and GRU training steps per second, jaxreg vs PyTorch (eager) vs Flax's stock cells.

Command (from the repository root, after ``pip install -e ".[bench]"``):

  python bench/rnn.py                       # 5 repeats, prints a Markdown table
  python bench/rnn.py --repeats 1 --steps 20   # quick check
  python bench/rnn.py --unroll 1 2 4 8 16   # choose jaxreg's scan unrolling by measurement
  python bench/rnn.py --hoist --no-torch    # input projections inside the scan vs hoisted out of it

Every implementation trains the same problem: batch 100, sequences of 40
steps of 1 feature (MNIST-1D's shape), one recurrent layer of 128 units, the
final state read by a linear layer to 10 classes, softmax cross-entropy,
Adam (1e-3). A "step" is forward, backward and the Adam update.

* jaxreg: ``SequenceModel`` (gates fused into one matrix product per step,
  input projections per step by default since hoisting them out of the
  recurrence measured slower on XLA:CPU, ``--hoist`` times that variant;
  ``lax.scan`` unroll chosen by ``--unroll``) with ``make_train_step``, the steps of a run inside one compiled
  ``lax.scan`` as in ``fit``.
* Flax: ``nn.RNN(nn.OptimizedLSTMCell(128))`` / ``nn.RNN(nn.GRUCell(128))``,
  the same train step and the same compiled loop.
* PyTorch: ``nn.LSTM`` / ``nn.GRU`` (batch_first) and ``torch.optim.Adam``,
  an eager loop (oneDNN kernels on a CPU; cuDNN on a GPU).

Each runner trains ``--steps`` steps per repeat after a warm-up (which
compiles); runners are interleaved in a rotating order. The table gives the
median steps per second and jaxreg's speed-up: the median (and range) of the
per-repeat ratios, since the machine's speed drifts on a shared host.
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

BATCH, TIME, FEATURES, HIDDEN, CLASSES = 100, 40, 1, 128, 10
LEARNING_RATE = 1e-3


def batches(num: int, seed: int = 0):
  g = np.random.default_rng(seed)
  x = g.normal(size=(num, BATCH, TIME, FEATURES)).astype(np.float32)
  y = g.integers(0, CLASSES, size=(num, BATCH)).astype(np.int32)
  return x, y


def jax_runner(model, steps: int):
  """A function ``run() -> seconds`` for ``steps`` training steps of ``model`` (ModelFns) in one compiled scan."""
  import jax

  from jaxreg.optim import adam
  from jaxreg.train import classification_objective, create_train_state, make_train_step

  tx = adam(LEARNING_RATE)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=np.zeros((1, TIME, FEATURES), np.float32))
  step = make_train_step(classification_objective(model.apply), tx)
  x, y = batches(steps)
  x, y = jax.device_put(x), jax.device_put(y)

  @jax.jit
  def run_steps(state, x, y):
    def body(state, batch):
      state, metrics = step(state, {"x": batch[0], "y": batch[1]})
      return state, metrics["loss"]

    return jax.lax.scan(body, state, (x, y))

  holder = {"state": state}
  jax.block_until_ready(run_steps(state, x, y))  # compile

  def run():
    start = time.perf_counter()
    holder["state"], losses = run_steps(holder["state"], x, y)
    jax.block_until_ready(losses)
    return time.perf_counter() - start

  return run


def jaxreg_runner(cell: str, steps: int, unroll: int, hoist_inputs: bool = False):
  from jaxreg.models import SequenceModel, from_linen

  module = SequenceModel(cell=cell, hidden_sizes=(HIDDEN,), num_outputs=CLASSES, unroll=unroll, hoist_inputs=hoist_inputs)
  return jax_runner(from_linen(module), steps)


def flax_runner(cell: str, steps: int):
  import flax.linen as nn

  from jaxreg.models import from_linen

  class StockRNN(nn.Module):
    @nn.compact
    def __call__(self, x, *, train):
      del train
      rnn_cell = nn.OptimizedLSTMCell(HIDDEN) if cell == "lstm" else nn.GRUCell(HIDDEN)
      carry, _ = nn.RNN(rnn_cell, return_carry=True)(x)
      h = carry[1] if cell == "lstm" else carry  # OptimizedLSTMCell's carry is (c, h)
      return nn.Dense(CLASSES)(h)

  return jax_runner(from_linen(StockRNN()), steps)


def torch_runner(cell: str, steps: int, device: str):
  import torch

  torch.manual_seed(0)

  class Net(torch.nn.Module):
    def __init__(self):
      super().__init__()
      rnn = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
      self.rnn = rnn(FEATURES, HIDDEN, batch_first=True)
      self.out = torch.nn.Linear(HIDDEN, CLASSES)

    def forward(self, x):
      _, h = self.rnn(x)
      h = h[0] if cell == "lstm" else h
      return self.out(h[-1])

  net = Net().to(device)
  opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
  x, y = batches(steps)
  xs = [torch.from_numpy(b).to(device) for b in x]
  ys = [torch.from_numpy(b).long().to(device) for b in y]
  loss_fn = torch.nn.CrossEntropyLoss()

  def train(n):
    for i in range(n):
      opt.zero_grad(set_to_none=True)
      loss = loss_fn(net(xs[i]), ys[i])
      loss.backward()
      opt.step()
    if device != "cpu":
      torch.cuda.synchronize()

  train(min(5, steps))  # warm-up

  def run():
    start = time.perf_counter()
    train(steps)
    return time.perf_counter() - start

  return run


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--steps", type=int, default=50, help="training steps per timed run")
  parser.add_argument("--cells", nargs="*", default=["lstm", "gru"])
  parser.add_argument("--unroll", type=int, nargs="*", default=None,
                      help="jaxreg scan unrolls to compare (default: the model's default only)")
  parser.add_argument("--hoist", action="store_true",
                      help="also time jaxreg with the input projections hoisted out of the scan")
  parser.add_argument("--no-torch", action="store_true")
  parser.add_argument("--pause", type=float, default=1.0)
  parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "rnn.json"))
  args = parser.parse_args()

  import inspect

  import jax

  from jaxreg.models import make_sequence_model

  default_unroll = inspect.signature(make_sequence_model).parameters["unroll"].default
  unrolls = args.unroll or [default_unroll]
  torch_device = "cpu"
  if not args.no_torch:
    import torch

    torch_device = "cuda" if (jax.default_backend() == "gpu" and torch.cuda.is_available()) else "cpu"
  results = {}
  for cell in args.cells:
    runners = {f"jaxreg (unroll {u})": jaxreg_runner(cell, args.steps, u) for u in unrolls}
    if args.hoist:
      runners["jaxreg (hoisted inputs)"] = jaxreg_runner(cell, args.steps, unrolls[0], hoist_inputs=True)
    runners["flax nn.RNN"] = flax_runner(cell, args.steps)
    if not args.no_torch:
      runners[f"pytorch nn.{cell.upper()}"] = torch_runner(cell, args.steps, torch_device)
    names = list(runners)
    speeds = {n: [] for n in names}
    for repeat in range(args.repeats):
      order = names[repeat % len(names):] + names[:repeat % len(names)]
      for name in order:
        time.sleep(args.pause)
        speeds[name].append(args.steps / runners[name]())
    results[cell] = speeds
  lines = [
      f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, JAX {jax.__version__} "
      f"({jax.default_backend()}), batch {BATCH}, T={TIME}, hidden {HIDDEN}, {args.repeats} repeats x {args.steps} steps",
      "",
      "| cell | implementation | steps/s (median) | jaxreg speed-up (median, range) |",
      "|---|---|---:|---:|",
  ]
  for cell, speeds in results.items():
    best = max((n for n in speeds if n.startswith("jaxreg")), key=lambda n: statistics.median(speeds[n]))
    for name, values in speeds.items():
      ratios = [a / b for a, b in zip(speeds[best], values, strict=True)]
      ratio = "" if name == best else (
          f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
      )
      lines.append(f"| {cell} | {name} | {statistics.median(values):.1f} | {ratio} |")
  print("\n".join(lines))
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump({"table": "\n".join(lines), "speeds": results}, f, indent=1)


if __name__ == "__main__":
  main()
