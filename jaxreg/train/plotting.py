"""Learning curves from ``metrics.jsonl`` (needs matplotlib: ``pip install jaxreg[plot]``)."""

from jaxreg.train.writers import read_metrics


def plot_learning_curves(run, *, output: str | None = None, title: str | None = None):
  """Plots loss and accuracy per epoch for the train, validation and test splits.

  Args:
    run: a work directory, a ``metrics.jsonl`` path, or a list of records.
    output: save the figure to this PNG path if given.
    title: the figure's title (default: the work directory).

  Returns:
    The matplotlib ``Figure``.

  Example:
    >>> fig = plot_learning_curves('runs/digits_mlp/20261122-101500')  # doctest: +SKIP
  """
  try:
    import matplotlib

    if output is not None:
      matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
  except ImportError:
    raise ImportError("plotting needs matplotlib: pip install 'jaxreg[plot]'") from None
  records = run if isinstance(run, list) else read_metrics(run)
  if not records:
    raise ValueError(f"no metrics to plot in {run!r}")
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
