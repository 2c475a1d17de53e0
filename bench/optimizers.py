"""Benchmark: the update cost of each jaxreg optimizer against its optax counterpart.

Command (from the repository root):

  python bench/optimizers.py            # ~10.5M parameters, prints a Markdown table

A jitted ``update + apply_updates`` (state and parameters donated) on a pytree
of ten 1024x1024 kernels with biases (10.5M float32 parameters) is timed for
each pair, interleaved, ``--repeats`` times; the table gives the median time
per update and jaxreg's time over optax's (the median of the per-round
ratios, since the pair runs back to back). The counterparts compute the same
update where a form exists in optax (the lecture notes' momentum keeps the learning
rate inside the velocity, optax outside: the same cost).
"""

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from jaxreg.optim import transforms as T

LR = 1e-3
PAIRS = {
    "sgd": (lambda: T.sgd(LR), lambda: optax.sgd(LR)),
    "momentum": (lambda: T.momentum(LR, 0.9), lambda: optax.sgd(LR, momentum=0.9)),
    "nesterov": (lambda: T.nesterov(LR, 0.9), lambda: optax.sgd(LR, momentum=0.9, nesterov=True)),
    "adagrad": (lambda: T.adagrad(LR), lambda: optax.adagrad(LR)),
    "rmsprop": (lambda: T.rmsprop(LR), lambda: optax.rmsprop(LR, eps=1e-6)),
    "rmsprop_nesterov": (
        lambda: T.rmsprop_nesterov(LR), lambda: optax.rmsprop(LR, momentum=0.9, nesterov=True, eps=1e-10)
    ),
    "adam": (lambda: T.adam(LR), lambda: optax.adam(LR)),
}


def make_params(layers: int, width: int):
  keys = jax.random.split(jax.random.PRNGKey(0), layers)
  return {
      f"layer_{i}": {"kernel": jax.random.normal(k, (width, width)) * 0.01, "bias": jnp.zeros(width)}
      for i, k in enumerate(keys)
  }


def timer(tx, params, grads, steps):
  @functools.partial(jax.jit, donate_argnums=(0, 1))
  def update(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  params = jax.tree.map(jnp.copy, params)
  state = tx.init(params)
  params, state = update(params, state, grads)
  jax.block_until_ready(params)

  def run():
    nonlocal params, state
    start = time.perf_counter()
    for _ in range(steps):
      params, state = update(params, state, grads)
    jax.block_until_ready(params)
    return (time.perf_counter() - start) / steps

  return run


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--layers", type=int, default=10)
  parser.add_argument("--width", type=int, default=1024)
  parser.add_argument("--steps", type=int, default=10, help="updates per timing")
  parser.add_argument("--repeats", type=int, default=15)
  args = parser.parse_args()
  params = make_params(args.layers, args.width)
  grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3) + 1e-2 * jnp.sin(p), params)
  count = sum(p.size for p in jax.tree.leaves(params))
  print(f"{count / 1e6:.1f}M float32 parameters, {jax.default_backend()} ({jax.devices()[0].device_kind}), "
        f"median of {args.repeats} rounds of {args.steps} updates\n")
  print("| optimizer | jaxreg ms/update | optax ms/update | jaxreg / optax |")
  print("|---|---:|---:|---:|")
  for name, (ours, theirs) in PAIRS.items():
    run_ours, run_theirs = timer(ours(), params, grads, args.steps), timer(theirs(), params, grads, args.steps)
    a, b = [], []
    for _ in range(args.repeats):
      a.append(run_ours())
      b.append(run_theirs())
    ratio = statistics.median(x / y for x, y in zip(a, b, strict=True))
    print(f"| {name} | {1e3 * statistics.median(a):.2f} | {1e3 * statistics.median(b):.2f} | {ratio:.2f}x |")


if __name__ == "__main__":
  main()
