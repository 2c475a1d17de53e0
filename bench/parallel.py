"""Benchmark: training steps per second on 1, 2, 4 and 8 devices, pmap and sharded, side by side.

Command (from the repository root):

  python bench/parallel.py                     # 8 simulated CPU devices on a CPU machine
  python bench/parallel.py --repeats 1 --epochs 3   # quick check
  python bench/parallel.py --devices 1 2 4 8 --batch 256

On a CPU the devices are simulated (``--xla_force_host_platform_device_count``,
set here before JAX starts): they share the machine's cores, so more devices
cannot be faster, and the table measures the *overhead* of splitting a batch
(per-device dispatch, the all-reduce of the gradients, smaller matrix
products). On a machine with several GPUs or TPU cores the same command
measures the speed-up.

Every row trains the same problem: a 64-512-512-10 MLP (the default
experiment's) on scikit-learn's digits, Adam, a global batch of ``--batch``
examples split over the devices, a whole epoch as one compiled ``lax.scan``
(``placement.make_epoch``, as ``fit`` runs it). The reference is the
single-device placement (``parallel.mode='none'``). Runners are interleaved
in a rotating order; the table gives median steps per second and the median
(and range) of the per-repeat ratios to the reference.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

SIMULATED = 8
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={SIMULATED}"
  ).strip()

import jax  # noqa: E402
import optax  # noqa: E402

from jaxreg.data import load_digits  # noqa: E402
from jaxreg.models import make_mlp  # noqa: E402
from jaxreg.parallel import SingleDevice, make_placement  # noqa: E402
from jaxreg.train import classification_objective, create_train_state, make_train_step  # noqa: E402


def make_runner(placement, batch: int, epochs: int):
  """``run() -> (seconds, steps)`` for ``epochs`` compiled epochs under ``placement`` (compiled by a warm-up)."""
  data = load_digits(seed=0)
  model = make_mlp(num_outputs=10, hidden_sizes=(512, 512))
  tx = optax.adam(1e-3)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=data.train.x[:1])
  step = make_train_step(classification_objective(model.apply), tx, axis_name=placement.axis_name)
  num_examples = len(data.train.y)
  run_epoch = placement.make_epoch(
      step, on_device=True, shuffle_key=jax.random.PRNGKey(0), num_examples=num_examples, batch_size=batch
  )
  x, y = placement.put_train_data(data.train.x, data.train.y, True)
  placed = placement.put_state(state)
  for epoch in (-1, 0):  # warm-up: compiles, and runs once more on the epoch's own output
    placed, _ = run_epoch(placed, x, y, epoch)
  jax.block_until_ready(placed)

  def run():
    nonlocal placed
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
      placed, metrics = run_epoch(placed, x, y, epoch)
    jax.block_until_ready((placed, metrics))
    return time.perf_counter() - start, epochs * (num_examples // batch)

  return run


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--devices", type=int, nargs="*", default=[1, 2, 4, 8])
  parser.add_argument("--modes", nargs="*", default=["pmap", "sharded"])
  parser.add_argument("--batch", type=int, default=128, help="global batch (a multiple of every device count)")
  parser.add_argument("--epochs", type=int, default=10, help="epochs per timed run (9 steps each at batch 128)")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--output", default=os.path.join(os.path.dirname(__file__), "results", "parallel.json"))
  args = parser.parse_args(argv)
  available = jax.device_count()
  counts = [n for n in args.devices if n <= available]
  if len(counts) < len(args.devices):
    print(f"only {available} devices: skipping {sorted(set(args.devices) - set(counts))}", file=sys.stderr)

  runners = {"one device (mode none)": make_runner(SingleDevice(), args.batch, args.epochs)}
  for mode in args.modes:
    for n in counts:
      runners[f"{mode}, {n} device{'s' if n > 1 else ''}"] = make_runner(make_placement(mode, n), args.batch, args.epochs)
  names = list(runners)
  speeds = {name: [] for name in names}
  for repeat in range(args.repeats):
    order = names[repeat % len(names):] + names[:repeat % len(names)]
    for name in order:
      seconds, steps = runners[name]()
      speeds[name].append(steps / seconds)

  reference = "one device (mode none)"
  device = jax.devices()[0]
  header = (
      f"{platform.machine()}, {os.cpu_count()} CPUs, JAX {jax.__version__} ({device.platform}: "
      f"{device.device_kind}, {available} devices{' simulated' if device.platform == 'cpu' else ''}), "
      f"MLP 64-512-512-10, global batch {args.batch}, {args.repeats} repeats x {args.epochs} epochs"
  )
  lines = [header, "", "| run | steps/s (median) | vs one device (median, range) |", "|---|---:|---:|"]
  for name in names:
    ratios = [a / b for a, b in zip(speeds[name], speeds[reference], strict=True)]
    ratio = "" if name == reference else f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
    lines.append(f"| {name} | {statistics.median(speeds[name]):.1f} | {ratio} |")
  table = "\n".join(lines)
  print(table)
  if device.platform == "cpu":
    print("\nSimulated CPU devices share the same cores: these ratios are the cost of splitting the batch, "
          "not a speed-up.")
  if args.output:
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
      json.dump({"table": table, "speeds": speeds}, f, indent=1)


if __name__ == "__main__":
  main()
