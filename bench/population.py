"""K models at once: a jaxreg population (one vmapped program) against K sequential runs, jaxreg and PyTorch.

Command (from the repository root; needs the ``bench`` extra's torch):

  python bench/population.py                 # K = 8, widths 256 and 32, 3 repeats (a few minutes on 2 cores)
  python bench/population.py --members 4 --widths 64

The task: K digits MLPs 64-W-W-10 (ReLU), Adam (1e-3), batch 64, one epoch
each (the 1,257 training images), every member with its own initialization
and data order. Four ways, timed after compilation, interleaved ``--repeats`` times:

* ``population``: :func:`jaxreg.train.make_population_epoch`, all K members
  in one vmapped ``lax.scan`` per epoch;
* ``sequential jaxreg``: K runs of :func:`jaxreg.train.make_scan_epoch`, one
  after another (one compiled epoch, reused by the K runs);
* ``sequential PyTorch``: K ordinary PyTorch training loops, one after another;
* ``torch.func``: the K PyTorch models stacked (``stack_module_state``) and
  trained by ``vmap(grad(functional_call))`` with a hand-written Adam on the
  stacked parameters (PyTorch's optimizers do not take stacked states).

Printed: the examples per second of each (K x training examples /
seconds), their ratios to the population, the rate of the matrix products
in GFLOP/s (3 x 2 (64 W + W^2 + 10 W) per example: is the machine the
limit?), the population's compile time and how many XLA programs it
compiled. Then the bound: the rate of one member's ``(64, W) x (W, W)``
product and of the K members' batched product, each in a compiled loop of
2,000 products (the most a step made of them could reach). Results go to
``bench/results/population.json``.
"""

import argparse
import json
import os
import platform
import statistics
import time


HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "population.json")
BATCH = 64


def _jaxreg_runs(members: int, width: int, data):
  """``(population(), sequential())``: each trains every member for one epoch and blocks until done."""
  import jax
  import optax

  from jaxreg.models import make_model
  from jaxreg.train import classification_objective, create_population, make_scan_epoch, make_train_step, member
  from jaxreg.train.population import make_population_epoch, shuffle_keys

  model = make_model("mlp", num_outputs=10, hidden_sizes=(width, width))
  tx = optax.adam(1e-3)
  step = make_train_step(classification_objective(model.apply), tx)
  seeds = list(range(members))
  x, y = jax.device_put(data.train.x), jax.device_put(data.train.y)
  states = create_population(model, tx, seeds=seeds, sample_x=data.train.x[:1])
  epoch = make_population_epoch(step, num_examples=len(y), batch_size=BATCH)
  keys = shuffle_keys(seeds)
  solo_states = [member(states, m) for m in range(members)]
  solo_epoch = make_scan_epoch(step, shuffle_key=keys[0], num_examples=len(y), batch_size=BATCH)

  def population():
    jax.block_until_ready(epoch(states, keys, None, x, y, 0))

  def sequential():
    for state in solo_states:  # one compiled epoch reused; the data order is not what is timed
      jax.block_until_ready(solo_epoch(state, x, y, 0))

  return population, sequential


def _torch_runs(members: int, width: int, data):
  import torch
  from torch import nn
  from torch.func import functional_call, grad, stack_module_state, vmap

  torch.set_num_threads(os.cpu_count() or 1)
  x, y = torch.tensor(data.train.x), torch.tensor(data.train.y, dtype=torch.long)
  n = len(y) // BATCH * BATCH

  def make():
    return nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))

  models = [make() for _ in range(members)]
  optimizers = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]

  def sequential():
    for m, (model, opt) in enumerate(zip(models, optimizers, strict=True)):
      order = torch.randperm(len(y), generator=torch.Generator().manual_seed(m))[:n].view(-1, BATCH)
      for idx in order:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()

  params, buffers = stack_module_state(models)
  base = make().to("meta")
  moments = [{k: torch.zeros_like(v) for k, v in params.items()} for _ in range(2)]

  def loss(p, b, xb, yb):
    return nn.functional.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

  gradient = vmap(grad(loss))  # every argument batched on its leading (member) axis

  def vmapped():
    orders = torch.stack([torch.randperm(len(y), generator=torch.Generator().manual_seed(m))[:n].view(-1, BATCH)
                          for m in range(members)])  # (members, steps, batch)
    with torch.no_grad():
      for t in range(orders.shape[1]):
        idx = orders[:, t]
        grads = gradient(params, buffers, x[idx], y[idx])
        for k in params:  # Adam, as torch.optim.Adam's defaults
          moments[0][k].mul_(0.9).add_(grads[k], alpha=0.1)
          moments[1][k].mul_(0.999).addcmul_(grads[k], grads[k], value=0.001)
          m_hat = moments[0][k] / (1 - 0.9 ** (t + 1))
          v_hat = moments[1][k] / (1 - 0.999 ** (t + 1))
          params[k].sub_(1e-3 * m_hat / (v_hat.sqrt() + 1e-8))

  return sequential, vmapped


def measure(members: int, width: int, repeats: int) -> dict:
  from jaxreg.compilation import count_compilations
  from jaxreg.data import make_dataset

  data = make_dataset("digits")
  population, sequential = _jaxreg_runs(members, width, data)
  with count_compilations() as compiled:  # the population's epoch: the first call compiles it
    start = time.perf_counter()
    population()
    first = time.perf_counter() - start
  sequential()  # compile
  torch_sequential, torch_vmapped = _torch_runs(members, width, data)
  ways = {"population": population, "sequential jaxreg": sequential,
          "sequential PyTorch": torch_sequential, "torch.func vmap": torch_vmapped}
  seconds = {name: [] for name in ways}
  for _ in range(repeats):
    for name, run in ways.items():
      time.sleep(0.5)  # PyTorch's OpenMP threads spin for a while after their work; let them sleep first
      start = time.perf_counter()
      run()
      seconds[name].append(time.perf_counter() - start)
  examples = members * (len(data.train.y) // BATCH * BATCH)
  # Matrix-product FLOPs of a training step per example: forward 2 (64 W + W^2 + 10 W), backward twice that.
  flops = 3 * 2 * (64 * width + width * width + 10 * width)
  report = {name: {"examples_per_second": examples / statistics.median(times),
                   "matmul_gflops": examples * flops / statistics.median(times) / 1e9}
            for name, times in seconds.items()}
  for name in report:
    report[name]["population_speedup"] = report["population"]["examples_per_second"] / report[name][
        "examples_per_second"]
  report["population_compile"] = {"programs": compiled.as_dict()["programs"],
                                   "first_epoch_seconds": first}
  return report


def product_rates(members: int, width: int, loops: int = 2000) -> dict:
  """GFLOP/s of one member's layer product and of the K members' batched product, in compiled loops."""
  import jax
  import jax.numpy as jnp

  def rate(fn, x, w, flops):
    fn(x, w).block_until_ready()
    best = 0.0
    for _ in range(5):
      start = time.perf_counter()
      fn(x, w).block_until_ready()
      best = max(best, flops / (time.perf_counter() - start) / 1e9)
    return best

  key = jax.random.PRNGKey(0)
  one = jax.jit(lambda x, w: jax.lax.fori_loop(0, loops, lambda i, h: jnp.tanh(h @ w), x))
  stacked = jax.jit(lambda x, w: jax.lax.fori_loop(
      0, loops // members, lambda i, h: jnp.tanh(jnp.einsum("kbi,kio->kbo", h, w)), x))
  flops = 2 * BATCH * width * width * loops
  return {
      "one_member_gflops": rate(one, jax.random.normal(key, (BATCH, width)),
                                0.01 * jax.random.normal(key, (width, width)), flops),
      "batched_members_gflops": rate(stacked, jax.random.normal(key, (members, BATCH, width)),
                                     0.01 * jax.random.normal(key, (members, width, width)),
                                     2 * BATCH * width * width * (loops // members) * members),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--members", type=int, default=8)
  parser.add_argument("--widths", type=int, nargs="*", default=[256, 32])
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--output", default=RESULTS)
  args = parser.parse_args()
  import jax

  results = {"members": args.members, "batch": BATCH, "device": jax.devices()[0].device_kind,
             "cpus": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__, "widths": {}}
  for width in args.widths:
    results["widths"][str(width)] = measure(args.members, width, args.repeats)
    print(f"MLP 64-{width}-{width}-10, K = {args.members}: examples/s, and the population's speed-up over each")
    for name, r in results["widths"][str(width)].items():
      if name != "population_compile":
        print(f"  {name:20s} {r['examples_per_second']:10.0f}   x{r['population_speedup']:.2f}   "
              f"{r['matmul_gflops']:6.1f} GFLOP/s in matrix products")
    print(f"  population compiled {results['widths'][str(width)]['population_compile']}")
    bound = results["widths"][str(width)]["products"] = product_rates(args.members, width)
    print(f"  the layer's product alone: one member {bound['one_member_gflops']:.1f} GFLOP/s, "
          f"{args.members} members batched {bound['batched_members_gflops']:.1f} GFLOP/s")
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump(results, f, indent=2)


if __name__ == "__main__":
  main()
