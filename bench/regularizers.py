"""Every regularizer on MNIST-1D (and multitask learning on digits), over 3 seeds: the table of docs/regularizers.md.

Command (from the repository root):

  python bench/regularizers.py                   # MNIST-1D, every variant, 3 seeds (about 15 minutes on 2 cores)
  python bench/regularizers.py --suite multitask # digits: single task vs. two auxiliary tasks
  python bench/regularizers.py --data digits     # the MNIST-1D variants on digits
  python bench/regularizers.py --variants none dropout --seeds 1   # a quick look
  python bench/regularizers.py --sweep           # choose each variant's strength on validation accuracy

Runs ``configs/mnist1d_mlp.py:<variant>`` (or ``configs/digits_multitask.py:<variant>``)
for each seed (``train.seed`` and ``data.seed``), checkpoints off, and prints a
Markdown table: test accuracy (mean and standard deviation over seeds), the
difference to the unregularized baseline, the final training accuracy, and the
fraction of exactly-zero hidden activations on the test set. Results also go to
``bench/results/regularizers_<suite>.json``.
"""

import argparse
import json
import os
import platform
import tempfile
import time

import jax
import numpy as np
from tqdm.auto import tqdm

from jaxreg.config import load_config
from jaxreg.experiment import train_and_evaluate

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(HERE, "..", "configs")
SUITES = {
    "mnist1d": ("mnist1d_mlp.py", None),
    "multitask": ("digits_multitask.py", ("single", "parity", "above_4")),
}


def variants_of(suite: str) -> tuple[str, ...]:
  _, variants = SUITES[suite]
  return variants if variants is not None else tuple(config_module(suite).VARIANTS)


def config_module(suite: str):
  import importlib.util

  config_file, _ = SUITES[suite]
  spec = importlib.util.spec_from_file_location("config_module", os.path.join(CONFIGS, config_file))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run(suite: str, variant: str, seed: int, epochs: int | None, extra=(), data: str | None = None) -> dict:
  config_file, _ = SUITES[suite]
  overrides = [
      ("train.seed", str(seed)), ("data.seed", str(seed)), ("checkpoint.every", "0"), ("train.progress_bar", "false"),
      *extra,
  ]
  if epochs is not None:
    overrides.append(("train.epochs", str(epochs)))
  if data is not None:
    overrides.append(("data.name", data))
  config, _ = load_config(f"{os.path.join(CONFIGS, config_file)}:{variant}", overrides)
  with tempfile.TemporaryDirectory() as workdir:
    result = train_and_evaluate(config, workdir)
  sparsity = result.summary.get("activation_sparsity", {}).get("all", {})
  return {
      "variant": variant, "seed": seed,
      "test_accuracy": result.summary["test_accuracy"],
      "val_accuracy": result.summary["val_accuracy"],
      "final_train_accuracy": result.history[-1]["train_accuracy"],
      "best_epoch": result.summary["best_epoch"],
      "zero_activations": sparsity.get("zero_fraction"),
      "seconds": result.summary["wall_seconds"],
  }


def table(runs: list[dict], variants, baseline: str) -> str:
  by_variant = {v: [r for r in runs if r["variant"] == v] for v in variants}
  base = np.mean([r["test_accuracy"] for r in by_variant.get(baseline, [])]) if by_variant.get(baseline) else None
  lines = [
      "| variant | test accuracy (mean +- sd) | vs. " + baseline + " | final train accuracy | zero activations |",
      "|---|---:|---:|---:|---:|",
  ]
  for v in variants:
    rs = by_variant[v]
    if not rs:
      continue
    acc = np.array([r["test_accuracy"] for r in rs])
    delta = "" if base is None or v == baseline else f"{100 * (acc.mean() - base):+.1f} pt"
    zeros = [r["zero_activations"] for r in rs if r["zero_activations"] is not None]
    lines.append(
        f"| {v} | {acc.mean():.4f} +- {acc.std():.4f} | {delta} | "
        f"{np.mean([r['final_train_accuracy'] for r in rs]):.3f} | "
        f"{(f'{np.mean(zeros):.0%}' if zeros else '')} |"
    )
  return "\n".join(lines)


def sweep(suite: str, variants, epochs: int | None) -> None:
  """Each variant's strengths from the config's SWEEP, on seed 0's validation accuracy (never the test split)."""
  grid = config_module(suite).SWEEP
  results = {}
  for variant in variants:
    if variant not in grid:
      continue
    key, values = grid[variant]
    scores = {}
    for value in tqdm(values, desc=variant, unit="run"):
      scores[value] = run(suite, variant, 0, epochs, extra=[(key, repr(value))])["val_accuracy"]
    best = max(scores, key=scores.get)
    results[variant] = {"key": key, "val_accuracy": {str(v): a for v, a in scores.items()}, "best": best}
    print(f"{variant}: {key} " + ", ".join(f"{v}: {a:.4f}" for v, a in scores.items()) + f" -> best {best}")
  output = os.path.join(HERE, "results", f"regularizers_sweep_{suite}.json")
  os.makedirs(os.path.dirname(output), exist_ok=True)
  with open(output, "w") as f:
    json.dump(results, f, indent=1)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--suite", choices=sorted(SUITES), default="mnist1d")
  parser.add_argument("--variants", nargs="*", default=None, help="default: all of the suite's")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=None, help="override train.epochs (quick looks only)")
  parser.add_argument("--output", default=None, help="JSON results (default bench/results/regularizers_<suite>.json)")
  parser.add_argument("--data", default=None, help="run the suite's configs on this dataset instead (e.g. digits)")
  parser.add_argument("--sweep", action="store_true",
                      help="instead: try each variant's strengths (the config's SWEEP) on seed 0's validation split")
  args = parser.parse_args()
  variants = tuple(args.variants) if args.variants else variants_of(args.suite)
  if args.sweep:
    sweep(args.suite, variants, args.epochs)
    return
  baseline = "none" if args.suite == "mnist1d" else "single"
  runs = []
  start = time.perf_counter()
  with tqdm(total=len(variants) * args.seeds, unit="run") as bar:
    for variant in variants:
      for seed in range(args.seeds):
        bar.set_description(f"{variant} seed {seed}")
        runs.append(run(args.suite, variant, seed, args.epochs, data=args.data))
        bar.update(1)
  text = table(runs, variants, baseline)
  suite = args.suite if args.data is None else f"{args.suite} configs on {args.data}"
  header = (
      f"{suite}: {args.seeds} seeds, {jax.default_backend()} ({platform.machine()}), "
      f"{time.perf_counter() - start:.0f} s in all"
  )
  print(header + "\n\n" + text)
  output = args.output or os.path.join(
      HERE, "results", f"regularizers_{args.suite}{'' if args.data is None else '_' + args.data}.json"
  )
  os.makedirs(os.path.dirname(output), exist_ok=True)
  with open(output, "w") as f:
    json.dump({"header": header, "runs": runs, "table": text}, f, indent=1)
  print(f"\nresults: {output}")


if __name__ == "__main__":
  main()
