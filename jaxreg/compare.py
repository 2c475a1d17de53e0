"""Several runs side by side: the config keys they differ in, a table of their final metrics, overlaid curves.

``jaxreg compare RUN...`` prints :func:`comparison_table`; ``jaxreg plot RUN1
RUN2 ...`` draws :func:`plot_runs`. Each run is named by the values of the
keys in which the runs' configs differ (e.g. ``optimizer.learning_rate=0.01,
regularizers.l2.alpha=0.0001``), so a legend says what changed.

Examples:
  >>> print(comparison_table(['runs/a', 'runs/b']))  # doctest: +SKIP
  | run | optimizer.name | test_accuracy | test_loss | best_epoch | epochs_run |
  |---|---|---|---|---|---|
  | runs/a | adam | 0.9722 | 0.0915 | 12 | 20 |
  | runs/b | momentum | 0.9611 | 0.1214 | 18 | 20 |
"""

import json
import os

from jaxreg.config import config_differences, with_defaults
from jaxreg.errors import CheckpointError
from jaxreg.train.writers import read_metrics

METRICS = ("test_accuracy", "test_loss", "best_epoch", "epochs_run", "steps_per_second")
# Keys that differ between runs without changing what is trained: how it is logged and shown.
IGNORED_KEYS = ("train.progress_bar", "train.tensorboard", "train.log_every_steps", "train.tensorboard_histograms",
                "checkpoint.every", "checkpoint.keep")


def _read_json(workdir: str, name: str) -> dict | None:
  path = os.path.join(workdir, name)
  if not os.path.isfile(path):
    return None
  with open(path) as f:
    return json.load(f)


def read_config(workdir: str) -> dict:
  """A run's ``config.json``, completed with the defaults of keys added since it ran.

  Raises:
    CheckpointError: if ``workdir`` holds no run.

  Examples:
    >>> read_config('runs/a')['optimizer']  # doctest: +SKIP
    {'learning_rate': 0.001, 'name': 'adam'}
  """
  config = _read_json(workdir, "config.json")
  if config is None:
    raise CheckpointError(f"{workdir} holds no run (no config.json); pass the --workdir of a jaxreg train run")
  return with_defaults(config)


def _value(config: dict, key: str):
  for part in key.split("."):
    config = config.get(part) if isinstance(config, dict) else None
  return config


def differing_keys(configs: list[dict]) -> list[str]:
  """The dotted config keys whose values are not the same in every one of ``configs``.

  Examples:
    >>> differing_keys([{'optimizer': {'learning_rate': 0.1}}, {'optimizer': {'learning_rate': 0.01}}])
    ['optimizer.learning_rate']
  """
  keys = set()
  for other in configs[1:]:
    keys.update(config_differences(configs[0], other))
  return sorted(k for k in keys if k not in IGNORED_KEYS)


def run_labels(workdirs: list[str]) -> list[str]:
  """Each run's name: ``key=value`` of the keys the runs differ in (its directory when they differ in none).

  Examples:
    >>> run_labels(['runs/lr-0.1', 'runs/lr-0.01'])  # doctest: +SKIP
    ['optimizer.learning_rate=0.1', 'optimizer.learning_rate=0.01']
  """
  configs = [read_config(w) for w in workdirs]
  keys = differing_keys(configs)
  if not keys:
    return [os.path.normpath(w) for w in workdirs]
  return [", ".join(f"{k}={_value(c, k)}" for k in keys) for c in configs]


def comparison_rows(workdirs: list[str], metrics=METRICS) -> list[dict]:
  """One row per run: ``run`` (its directory), the differing keys' values, and ``metrics`` from ``summary.json``.

  A run that has not finished (no ``summary.json``) has its last epoch's
  ``test_*`` metrics from ``metrics.jsonl`` and ``finished: False``.

  Examples:
    >>> rows = comparison_rows(['runs/a', 'runs/b'], metrics=('test_accuracy',))  # doctest: +SKIP
    >>> rows[0]  # doctest: +SKIP
    {'run': 'runs/a', 'optimizer.learning_rate': 0.001, 'test_accuracy': 0.9722, 'finished': True}
  """
  configs = [read_config(w) for w in workdirs]
  keys = differing_keys(configs)
  rows = []
  for workdir, config in zip(workdirs, configs, strict=True):
    summary = _read_json(workdir, "summary.json")
    finished = summary is not None
    if summary is None:
      records = read_metrics(workdir)
      summary = {**(records[-1] if records else {}), "epochs_run": len(records)}
    row = {"run": os.path.normpath(workdir), **{k: _value(config, k) for k in keys}}
    row.update({m: summary.get(m) for m in metrics})
    row["finished"] = finished
    rows.append(row)
  return rows


def _cell(value) -> str:
  if isinstance(value, float):
    return f"{value:.4g}" if abs(value) >= 1000 or value == 0 else f"{value:.4f}"
  return "" if value is None else str(value)


def comparison_table(workdirs: list[str], metrics=METRICS) -> str:
  """:func:`comparison_rows` as a Markdown table (unfinished runs marked ``*``).

  Examples:
    >>> print(comparison_table(['runs/a', 'runs/b']))  # doctest: +SKIP
  """
  rows = comparison_rows(workdirs, metrics)
  columns = [c for c in rows[0] if c != "finished"]
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for row in rows:
    cells = [_cell(row[c]) + ("*" if c == "run" and not row["finished"] else "") for c in columns]
    lines.append("| " + " | ".join(cells) + " |")
  if not all(row["finished"] for row in rows):
    lines.append("\n* not finished: the last epoch's metrics")
  return "\n".join(lines)


def plot_runs(workdirs: list[str], *, output: str | None = None, title: str | None = None):
  """Overlays the runs' learning curves (loss, and accuracy where logged), labelled by :func:`run_labels`.

  Solid lines are validation (or test), dashed training. Needs matplotlib.

  Returns:
    The matplotlib figure (also written to ``output`` if given).

  Examples:
    >>> figure = plot_runs(['runs/a', 'runs/b'], output='compare.png')  # doctest: +SKIP
  """
  from jaxreg.train.plotting import _pyplot

  plt = _pyplot()
  labels = run_labels(workdirs)
  histories = [read_metrics(w) for w in workdirs]
  for workdir, records in zip(workdirs, histories, strict=True):
    if not records:
      raise ValueError(f"no metrics to plot in {workdir} (it has no metrics.jsonl lines)")
  panels = ["loss"] + (["accuracy"] if any("val_accuracy" in r[0] or "test_accuracy" in r[0] for r in histories)
                       else [])
  fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), squeeze=False)
  for ax, metric in zip(axes[0], panels, strict=True):
    for i, (label, records) in enumerate(zip(labels, histories, strict=True)):
      color = f"C{i % 10}"
      epochs = [r["epoch"] for r in records]
      held_out = "val" if f"val_{metric}" in records[0] else "test"
      ax.plot(epochs, [r.get(f"{held_out}_{metric}") for r in records], color=color, label=label)
      if f"train_{metric}" in records[0]:
        ax.plot(epochs, [r.get(f"train_{metric}") for r in records], color=color, linestyle="--", alpha=0.6)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(f"{metric} (solid: held out, dashed: train)")
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=8)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  if output:
    fig.savefig(output, dpi=120)
    plt.close(fig)
  return fig


__all__ = ["METRICS", "comparison_rows", "comparison_table", "differing_keys", "plot_runs", "read_config",
           "run_labels"]
