"""Every seed optimizer on digits: test accuracy and steps to 95% validation accuracy.

Command (from the repository root):

  python bench/optimizers_digits.py              # 3 seeds, about 3 minutes on 2 CPU cores

Runs ``configs/digits_optimizers.py:<optimizer>`` for each optimizer and seed
(checkpoints off) and prints a Markdown table: the test accuracy of the
best-validation epoch (mean and spread over seeds) and the optimizer steps
until the validation accuracy first reached 0.95 (median over seeds).
"""

import argparse
import os
import statistics
import tempfile

import numpy as np

from jaxreg.config import load_config
from jaxreg.experiment import train_and_evaluate

CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "digits_optimizers.py")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "rmsprop_nesterov", "adam")


def steps_to(history, key, threshold):
  for record in history:
    if record[key] >= threshold:
      return record["step"]
  return None


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--threshold", type=float, default=0.95)
  args = parser.parse_args()
  rows = []
  for name in OPTIMIZERS:
    accuracies, steps = [], []
    for seed in range(args.seeds):
      config, _ = load_config(f"{CONFIG}:{name}", [
          ("train.seed", str(seed)), ("checkpoint.every", "0"), ("train.progress_bar", "false"),
      ])
      with tempfile.TemporaryDirectory() as workdir:
        result = train_and_evaluate(config, workdir)
      accuracies.append(result.summary["test_accuracy"])
      steps.append(steps_to(result.history, "val_accuracy", args.threshold))
    reached = [s for s in steps if s is not None]
    rows.append((name, config.optimizer.learning_rate, np.mean(accuracies), np.std(accuracies),
                 statistics.median(reached) if reached else None, len(reached)))
  print(f"digits, 64-256-256-10 MLP, batch 64, 30 epochs, {args.seeds} seeds "
        f"(configs/digits_optimizers.py)\n")
  print(f"| optimizer | learning rate | test accuracy (mean +- sd) | steps to {args.threshold:.0%} val accuracy (median) |")
  print("|---|---:|---:|---:|")
  for name, lr, mean, sd, median_steps, hits in rows:
    reached = "not reached" if median_steps is None else f"{median_steps:.0f}"
    if median_steps is not None and hits < args.seeds:
      reached += f" ({hits}/{args.seeds} seeds)"
    print(f"| {name} | {lr:g} | {mean:.4f} +- {sd:.4f} | {reached} |")


if __name__ == "__main__":
  main()
