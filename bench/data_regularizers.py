"""The data regularizers' results over seeds: the table of docs/augmentation.md.

Command (from the repository root):

  python bench/data_regularizers.py                       # every row, 3 seeds (about 40 minutes on 2 cores)
  python bench/data_regularizers.py --rows mnist1d_cnn --seeds 1   # a quick look at some rows

Each row is a config (``configs/<file>.py:<argument>``) run as ``jaxreg train``
runs it, for seeds 0, 1, 2 (``train.seed`` and ``data.seed``: the
initialization, the data order and the train/validation split; MNIST-1D's
generator seed stays 42), checkpoints off. The table gives the test accuracy
(mean +- standard deviation over seeds) and the validation accuracy of the
kept epoch. Results go to ``bench/results/data_regularizers.json``.
"""

import argparse
import json
import os
import statistics
import tempfile

from tqdm.auto import tqdm

from jaxreg.config import load_config
from jaxreg.experiment import train_and_evaluate

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "data_regularizers.json")
# row -> (group, config); rows of a group are compared with each other.
ROWS = {
    "mnist1d_mlp": ("MNIST-1D, MLP 40-256-256-10", "mnist1d_mlp:none"),
    "mnist1d_mlp_augment_dropout": ("MNIST-1D, MLP 40-256-256-10", "mnist1d_mlp:augment_dropout"),
    "mnist1d_cnn_plain": ("MNIST-1D, 1-D CNN", "mnist1d_cnn:plain"),
    "mnist1d_cnn": ("MNIST-1D, 1-D CNN", "mnist1d_cnn"),
    "digits_cnn_plain": ("digits 8x8, 2-D CNN", "digits_cnn:plain"),
    "digits_cnn": ("digits 8x8, 2-D CNN", "digits_cnn"),
    "coloured_plain": ("coloured digits (test colours shifted), 2-D CNN", "coloured_digits_cnn:plain"),
    "coloured_colour": ("coloured digits (test colours shifted), 2-D CNN", "coloured_digits_cnn:colour"),
    "coloured_fancy_pca": ("coloured digits (test colours shifted), 2-D CNN", "coloured_digits_cnn:fancy_pca"),
}


def run(config_name: str, seed: int) -> dict:
  overrides = [("train.seed", str(seed)), ("data.seed", str(seed)), ("checkpoint.every", "0"),
               ("train.progress_bar", "false")]
  config, _ = load_config(config_name, overrides)
  with tempfile.TemporaryDirectory() as workdir:
    summary = train_and_evaluate(config, workdir).summary
  return {"test_accuracy": summary["test_accuracy"], "best_epoch": summary.get("best_epoch"),
          "augment": [dict(a) for a in config.data.augment]}


def table(results: dict) -> str:
  lines = ["| data, model | config | test accuracy (mean +- sd) | seeds |", "|---|---|---|---|"]
  for row, (group, config_name) in ROWS.items():
    if not results.get(row):
      continue
    accuracies = [r["test_accuracy"] for r in results[row]]
    sd = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    lines.append(f"| {group} | `{config_name}` | {statistics.mean(accuracies):.4f} +- {sd:.4f} | {len(accuracies)} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", nargs="*", default=list(ROWS), choices=list(ROWS))
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--output", default=RESULTS)
  args = parser.parse_args()
  results = {}
  if os.path.exists(args.output):
    with open(args.output) as f:
      results = json.load(f).get("runs", {})
  jobs = [(row, seed) for row in args.rows for seed in range(args.seeds)]
  for row in args.rows:
    results[row] = []
  for row, seed in tqdm(jobs, desc="runs"):
    results[row].append({"seed": seed, **run(ROWS[row][1], seed)})
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
      json.dump({"runs": results, "table": table(results)}, f, indent=2)
  print(table(results))


if __name__ == "__main__":
  main()
