"""Learning curves from ``metrics.jsonl`` (needs matplotlib: ``pip install jaxreg[plot]``)."""

from jaxreg.train.diagnostics import HEALTHY_UPDATE_RATIO, LAST_GRAD_NORM, UPDATE_RATIO_PREFIX
from jaxreg.train.writers import read_metrics


def _pyplot():
  """pyplot, as the caller's matplotlib is set up: the library never switches the backend
  (a notebook keeps its inline one; without a display matplotlib picks a headless one itself)."""
  try:
    import matplotlib.pyplot as plt
  except ImportError:
    raise ImportError("plotting needs matplotlib: pip install 'jaxreg[plot]'") from None
  return plt


def plot_learning_curves(run, *, output: str | None = None, title: str | None = None):
  """Plots loss and accuracy per epoch for the train, validation and test splits.

  Args:
    run: a work directory, a ``metrics.jsonl`` path, or a list of records.
    output: save the figure to this PNG path if given.
    title: the figure's title (default: the work directory).

  Returns:
    The matplotlib ``Figure``.

  Examples:
    >>> fig = plot_learning_curves('runs/digits_mlp/20261122-101500')  # doctest: +SKIP
  """
  plt = _pyplot()
  records = run if isinstance(run, list) else read_metrics(run)
  if not records:
    raise ValueError(f"no metrics to plot in {run!r}")
  if is_population(records):
    return plot_population_curves(records, output=output, title=title or (run if isinstance(run, str) else None))
  epochs = [r["epoch"] for r in records]
  panels = [("loss", "loss (NLL)"), ("accuracy", "accuracy")]
  panels = [(m, label) for m, label in panels if any(f"val_{m}" in r or f"train_{m}" in r for r in records)]
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
  val_losses = [(r["val_loss"], r["epoch"]) for r in records if r.get("val_loss") is not None]
  best_epoch = min(val_losses)[1] if val_losses else None
  for ax, (metric, label) in zip(axes[0], panels):
    if best_epoch is not None:
      ax.axvline(best_epoch, color="gray", linestyle=":", label=f"lowest val loss (epoch {best_epoch})")
    for split, style in (("train", "-"), ("val", "-"), ("test", "--")):
      values = [r.get(f"{split}_{metric}") for r in records]
      if any(v is not None for v in values):
        ax.plot(epochs, values, style, label=split)
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    if metric == "loss":
      ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(title or (run if isinstance(run, str) else "learning curves"))
  fig.tight_layout()
  if output is not None:
    fig.savefig(output, dpi=100)
  return fig


def is_population(records: list[dict]) -> bool:
  """Whether the records are a population's (a list of values per metric, one per member)."""
  return bool(records) and isinstance(records[0].get("train_loss"), list)


def plot_population_curves(run, *, output: str | None = None, title: str | None = None):
  """A population's curves: each member's validation (or test) curve thin, the ensemble's thick, the train mean dashed.

  A member's curve ends where it stopped early. The ensemble's curve
  (averaged probabilities) is there when the run recorded it (a population
  of one setting, for classification).

  Examples:
    >>> fig = plot_population_curves('runs/digits_mlp/pop')  # doctest: +SKIP
  """
  plt = _pyplot()
  records = run if isinstance(run, list) else read_metrics(run)
  split = "val" if "val_loss" in records[0] else "test"
  panels = [m for m in ("loss", "accuracy") if f"{split}_{m}" in records[0]]
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
  count = len(records[0]["train_loss"])
  for ax, metric in zip(axes[0], panels, strict=True):
    for m in range(count):
      trained = [r for r in records if r["active"][m]]
      ax.plot([r["epoch"] for r in trained], [r[f"{split}_{metric}"][m] for r in trained], "-", lw=0.8, alpha=0.5,
              color="tab:blue", label=f"{split}, each member" if m == 0 else None)
    if f"train_{metric}" in records[0]:
      ax.plot([r["epoch"] for r in records], [_mean_of_active(r, f"train_{metric}") for r in records], "--",
              color="tab:gray", label="train, mean of members training")
    for ensemble_split, color in (("val", "tab:red"), ("test", "tab:orange")):
      key = f"{ensemble_split}_ensemble_{metric}"
      if key in records[0]:
        ax.plot([r["epoch"] for r in records], [r[key] for r in records], "-", lw=2.2, color=color,
                label=f"{ensemble_split}, ensemble (mean probabilities)")
    ax.set(xlabel="epoch", ylabel=metric)
    if metric == "loss":
      ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
  fig.suptitle(title or f"population of {count}")
  fig.tight_layout()
  if output is not None:
    fig.savefig(output, dpi=100)
  return fig


def _mean_of_active(record: dict, key: str) -> float:
  values = [v for v, active in zip(record[key], record["active"], strict=True) if active and v is not None]
  return sum(values) / len(values) if values else float("nan")


def has_diagnostics(records: list[dict]) -> bool:
  """Whether the records hold the per-epoch diagnostics of :mod:`jaxreg.train.diagnostics`."""
  return any(k.startswith(UPDATE_RATIO_PREFIX) for r in records for k in r)


def plot_diagnostics(run, *, output: str | None = None, title: str | None = None):
  """Plots the training health checks per epoch ("tricks of the trade" of Baskin et al. 2018).

  Three panels: ``||dW||/||W||`` of each weight matrix on the epoch's last
  step against the healthy band [1e-4, 1e-2] (shaded) and the notes' target
  1e-3 (dotted); the gradient's global norm on that step; the learning rate
  (and the momentum, if it is logged).

  Args:
    run: a work directory, a ``metrics.jsonl`` path, or a list of records.
    output: save the figure to this PNG path if given.
    title: the figure's title (default: the work directory).

  Returns:
    The matplotlib ``Figure``.

  Raises:
    ValueError: if the records hold no diagnostics (``train.diagnostics=False``).

  Examples:
    >>> fig = plot_diagnostics('runs/digits_mlp/20261122-101500')  # doctest: +SKIP
  """
  plt = _pyplot()
  records = run if isinstance(run, list) else read_metrics(run)
  if not has_diagnostics(records):
    raise ValueError(f"no diagnostics to plot in {run!r}; train with train.diagnostics=True")
  epochs = [r["epoch"] for r in records]
  fig, (ratio_ax, norm_ax, lr_ax) = plt.subplots(1, 3, figsize=(16, 4))
  low, high = HEALTHY_UPDATE_RATIO
  ratio_ax.axhspan(low, high, color="tab:green", alpha=0.08, label="healthy band")
  ratio_ax.axhline(1e-3, color="gray", linestyle=":", label="target 1e-3 (Baskin et al. 2018)")
  layers = sorted({k for r in records for k in r if k.startswith(UPDATE_RATIO_PREFIX)})
  for key in layers:
    ratio_ax.plot(epochs, [r.get(key) for r in records], label=key[len(UPDATE_RATIO_PREFIX):])
  ratio_ax.set(yscale="log", xlabel="epoch", ylabel="||dW|| / ||W|| (last step)", title="update-to-weight ratio")
  ratio_ax.legend(loc="lower left", fontsize="small")
  norm_ax.plot(epochs, [r.get(LAST_GRAD_NORM) for r in records], label="last step")
  if any("train_grad_norm" in r for r in records):
    norm_ax.plot(epochs, [r.get("train_grad_norm") for r in records], "--", label="epoch mean")
  norm_ax.set(yscale="log", xlabel="epoch", ylabel="||g||_2", title="gradient global norm")
  norm_ax.legend(fontsize="small")
  lr_ax.plot(epochs, [r.get("learning_rate") for r in records], color="tab:blue", label="learning rate")
  lr_ax.set(yscale="log", xlabel="epoch", ylabel="learning rate", title="learning rate and momentum")
  if any("momentum" in r for r in records):
    momentum_ax = lr_ax.twinx()
    momentum_ax.plot(epochs, [r.get("momentum") for r in records], color="tab:orange", label="momentum")
    momentum_ax.set(ylabel="momentum", ylim=(-0.05, 1.05))
    momentum_ax.legend(loc="lower left", fontsize="small")
  lr_ax.legend(loc="upper right", fontsize="small")
  for ax in (ratio_ax, norm_ax, lr_ax):
    ax.grid(alpha=0.3)
  fig.suptitle(title or (run if isinstance(run, str) else "training diagnostics"))
  fig.tight_layout()
  if output is not None:
    fig.savefig(output, dpi=100)
  return fig
