"""The notes' normalization table on MNIST-1D's CNN, over seeds, and the cost of each normalization per step.

Command (from the repository root):

  python bench/normalization.py --part results   # 5 rows x 3 seeds (about 5 minutes on 2 cores)
  python bench/normalization.py --part cost      # the CNN step with BN, WN, WN + mean-only BN against plain
  python bench/normalization.py                  # both

``results``: each row of ``configs/mnist1d_normalization.py`` trained with
``train.seed`` 0, 1, 2 (single runs, streaming their batches: on a CPU a
population's scanned epoch runs convolutions about 12x slower, see the
config), its test accuracy mean +- sd over the three runs, and the mean
validation accuracy per epoch (the learning curves, drawn to
``docs/normalization_curves.png``).

``cost``: one jitted training step of each row's CNN on a batch of 100,
timed after compilation, the rows interleaved ``--repeats`` times; the
ratio of each median to the plain CNN's, measured in the same run.

Results go to ``bench/results/normalization.json``.
"""

import argparse
import json
import os
import statistics
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "normalization.json")
CURVES = os.path.join(os.path.dirname(HERE), "docs", "normalization_curves.png")
ROWS = ("plain", "weight_norm", "mean_only", "batch_norm", "wn_mean_only")
LABELS = {"plain": "plain", "weight_norm": "weight norm", "mean_only": "mean-only BN", "batch_norm": "batch norm",
          "wn_mean_only": "weight norm + mean-only BN"}


def results(seeds: int, epochs: int | None) -> dict:
  from jaxreg.config import load_config
  from jaxreg.experiment import train_and_evaluate

  report = {}
  for row in ROWS:
    runs = []
    for seed in range(seeds):
      overrides = [("train.seed", str(seed)), ("train.progress_bar", "False")]
      overrides += [("train.epochs", str(epochs))] if epochs else []
      config, _ = load_config(f"mnist1d_normalization:{row}", overrides)
      with tempfile.TemporaryDirectory() as workdir:
        runs.append(train_and_evaluate(config, workdir))
    accuracy = [r.summary["test_accuracy"] for r in runs]
    report[row] = {
        "test_accuracy": accuracy, "mean": statistics.mean(accuracy),
        "sd": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
        "best_epochs": [r.summary["best_epoch"] for r in runs],
        "val_accuracy_curve": [statistics.mean(v) for v in zip(*[[h["val_accuracy"] for h in r.history]
                                                                  for r in runs], strict=True)],
        "train_loss_curve": [statistics.mean(v) for v in zip(*[[h["train_loss"] for h in r.history]
                                                               for r in runs], strict=True)],
    }
    print(f"{LABELS[row]:28s} {report[row]['mean']:.4f} +- {report[row]['sd']:.4f}  {accuracy}", flush=True)
  return report


def cost(repeats: int) -> dict:
  import jax
  import numpy as np

  from jaxreg.config import load_config
  from jaxreg.experiment import build

  steps, batch = {}, None
  for row in ("plain", "batch_norm", "weight_norm", "wn_mean_only"):
    experiment = build(load_config(f"mnist1d_normalization:{row}", [("train.progress_bar", "False")])[0])
    train = experiment.dataset.train
    batch = {"x": jax.device_put(train.x[:100]), "y": jax.device_put(train.y[:100])}
    step = jax.jit(experiment.train_step)
    state = experiment.initial_state
    jax.block_until_ready(step(state, batch))
    steps[row] = (step, state)
  seconds = {row: [] for row in steps}
  for _ in range(repeats):
    for row, (step, state) in steps.items():
      start = time.perf_counter()
      for _ in range(20):
        state, metrics = step(state, batch)
      jax.block_until_ready(metrics)
      seconds[row].append((time.perf_counter() - start) / 20)
  medians = {row: float(np.median(s)) for row, s in seconds.items()}
  return {row: {"step_ms": 1e3 * medians[row], "vs_plain": medians[row] / medians["plain"]} for row in medians}


def plot_curves(report: dict, output: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for row, r in report.items():
    epochs = range(1, len(r["val_accuracy_curve"]) + 1)
    axes[0].plot(epochs, r["train_loss_curve"], label=LABELS[row])
    axes[1].plot(epochs, r["val_accuracy_curve"], label=f"{LABELS[row]} (test {r['mean']:.3f})")
  axes[0].set(yscale="log", xlabel="epoch", ylabel="training loss (mean over seeds)")
  axes[1].set(xlabel="epoch", ylabel="validation accuracy (mean over seeds)", ylim=(0.5, 1.0))
  for ax in axes:
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize="small")
  fig.suptitle("MNIST-1D CNN: the notes' normalization rows")
  fig.tight_layout()
  fig.savefig(output, dpi=100)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--part", choices=("results", "cost", "all"), default="all")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=None, help="override the configs' 100 epochs (a quick look)")
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--output", default=RESULTS)
  args = parser.parse_args()
  saved = {}
  if os.path.exists(args.output):
    with open(args.output) as f:
      saved = json.load(f)
  if args.part in ("cost", "all"):
    saved["cost"] = cost(args.repeats)
    for row, r in saved["cost"].items():
      print(f"{LABELS[row]:28s} {r['step_ms']:7.2f} ms per step   x{r['vs_plain']:.3f} of plain")
  if args.part in ("results", "all"):
    saved["results"] = results(args.seeds, args.epochs)
    if args.epochs is None:
      plot_curves(saved["results"], CURVES)
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump(saved, f, indent=2)


if __name__ == "__main__":
  main()
