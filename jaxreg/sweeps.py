"""Sweeps: a table (CSV and Markdown) and a plot of a metric against each swept value, from a population's summary.

``jaxreg sweep --config ...`` trains the config's ``population.sweep`` as one
population (:mod:`jaxreg.populations`) and writes ``sweep.csv``,
``sweep.md`` and ``sweep.png`` beside its ``summary.json``. Keys that cannot
differ inside one compiled program (a layer size, a model name, a data
setting) run with ``--sequential``: one run per setting, each in its own
sub-directory, and the same table over all of them (:func:`run_sequential`).
"""

import csv
import math
import os
import re

import ml_collections
import numpy as np

from jaxreg.config import validate_config
from jaxreg.errors import ConfigError

MEMBER_COLUMNS = ("seed", "best_epoch", "stopped_epoch", "diverged")


def sweep_rows(summary: dict) -> list[dict]:
  """One row per member of a population's summary: its swept values, seed, epochs and metrics.

  Examples:
    >>> summary = {'population': dict(seeds=[0, 1], settings=[{'optimizer.learning_rate': 0.1}] * 2),
    ...            'members': {'best_epoch': [3, 4], 'stopped_epoch': [5, 5], 'val_accuracy': [0.9, 0.92]}}
    >>> sweep_rows(summary)[1]
    {'optimizer.learning_rate': 0.1, 'seed': 1, 'best_epoch': 4, 'stopped_epoch': 5, 'diverged': False, 'val_accuracy': 0.92}
  """
  population, members = summary["population"], summary["members"]
  metrics = sorted(k for k in members if k.startswith(("val_", "test_")))
  diverged = set(summary.get("diverged", []))
  rows = []
  for m, (seed, setting) in enumerate(zip(population["seeds"], population["settings"], strict=True)):
    row = {**setting, "seed": seed, "best_epoch": members["best_epoch"][m],
           "stopped_epoch": members["stopped_epoch"][m], "diverged": m in diverged}
    row.update({k: members[k][m] for k in metrics})
    rows.append(row)
  return rows


def _cell(value) -> str:
  if isinstance(value, float):
    return "nan" if math.isnan(value) else f"{value:.4g}"
  return str(value)


def write_sweep_table(rows: list[dict], directory: str, name: str = "sweep") -> tuple[str, str]:
  """Writes ``<name>.csv`` and ``<name>.md`` (one row per member) in ``directory``; returns their paths.

  Examples:
    >>> import tempfile
    >>> csv_path, md_path = write_sweep_table([{'optimizer.learning_rate': 0.1, 'val_accuracy': 0.9}], tempfile.mkdtemp())
    >>> open(md_path).read().splitlines()[2]
    '| 0.1 | 0.9 |'
  """
  if not rows:
    raise ValueError("no rows to write: the sweep has no members")
  columns = list(dict.fromkeys(k for row in rows for k in row))
  csv_path, md_path = os.path.join(directory, f"{name}.csv"), os.path.join(directory, f"{name}.md")
  with open(csv_path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
  with open(md_path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return csv_path, md_path


def default_metric(rows: list[dict]) -> str:
  """The metric a sweep is read by: validation accuracy where there is one, else validation (or test) loss.

  Examples:
    >>> default_metric([{'optimizer.learning_rate': 0.1, 'val_loss': 0.3, 'val_accuracy': 0.9}])
    'val_accuracy'
  """
  for name in ("val_accuracy", "val_loss", "test_accuracy", "test_loss"):
    if rows and name in rows[0]:
      return name
  raise ValueError("the rows hold no val_ or test_ metric to plot")


def swept_keys(rows: list[dict]) -> list[str]:
  """The columns that are swept config keys (dotted names)."""
  return [k for k in rows[0] if "." in k] if rows else []


def plot_sweep(rows: list[dict], *, metric: str | None = None, output: str | None = None, title: str | None = None):
  """One panel per swept key: ``metric`` against its values, a line per setting of the other keys (mean over seeds).

  Each member is a dot; a logarithmic axis is used for positive values
  spanning more than a factor of 10.

  Returns:
    The matplotlib ``Figure``.

  Examples:
    >>> fig = plot_sweep(sweep_rows(summary), metric='val_accuracy', output='sweep.png')  # doctest: +SKIP
  """
  from jaxreg.train.plotting import _pyplot

  plt = _pyplot()
  keys = swept_keys(rows)
  if not keys:
    raise ValueError("nothing to plot: no key was swept")
  metric = metric or default_metric(rows)
  if metric not in rows[0]:
    raise ValueError(f"metric {metric!r} is not in the sweep's table; choose one of: "
                     f"{', '.join(k for k in rows[0] if k.startswith(('val_', 'test_')))}")
  fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4), squeeze=False)
  for ax, key in zip(axes[0], keys, strict=True):
    numeric = all(isinstance(r[key], (int, float)) and not isinstance(r[key], bool) for r in rows)
    labels = list(dict.fromkeys(str(r[key]) for r in rows))  # a name or a list of sizes: one tick each, in order
    x_of = (lambda v: v) if numeric else (lambda v: labels.index(str(v)))  # noqa: E731
    others = [k for k in keys if k != key]
    groups = {}
    for row in rows:
      groups.setdefault(tuple(str(row[k]) for k in others), []).append(row)
    for group, members in groups.items():
      xs = sorted({x_of(r[key]) for r in members})
      means = [np.nanmean([_number(r[metric]) for r in members if x_of(r[key]) == x]) for x in xs]
      label = ", ".join(f"{k.split('.')[-1]}={g}" for k, g in zip(others, group, strict=True)) or None
      line, = ax.plot(xs, means, "-o", label=label)
      ax.plot([x_of(r[key]) for r in members], [_number(r[metric]) for r in members], ".", color=line.get_color(),
              alpha=0.4)
    if numeric:
      positive = [r[key] for r in rows if r[key] > 0]
      if len(positive) == len(rows) and max(positive) / min(positive) > 10:
        ax.set_xscale("log")
    else:
      ax.set_xticks(range(len(labels)), labels)
    ax.set(xlabel=key, ylabel=metric)
    ax.grid(alpha=0.3)
    if len(groups) > 1:
      ax.legend(fontsize="small")
  fig.suptitle(title or f"{metric} per swept value")
  fig.tight_layout()
  if output is not None:
    fig.savefig(output, dpi=100)
  return fig


def _number(value) -> float:
  return float("nan") if value is None else float(value)


def _folder_name(index: int, setting: dict) -> str:
  """A sub-directory name for one setting: ``03-learning_rate=0.01-hidden_sizes=64_64``."""
  parts = [f"{key.split('.')[-1]}={value}" for key, value in setting.items()]
  return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join([f"{index:02d}", *parts]))


def run_sequential(config: ml_collections.ConfigDict, workdir: str, *, resume: bool = False,
                   exit_on_second_interrupt: bool = False) -> tuple[list[dict], int | None]:
  """Runs each setting of ``config``'s sweep as a run of its own (``workdir/<NN-key=value...>``).

  For keys that cannot be traced (layer sizes, model names, data
  settings). Each setting's run is a population of ``population.size``
  seeds (or one run); a setting whose directory already holds a finished
  run is read, not trained again, so an interrupted sweep goes on where it
  stopped (with ``resume``, an interrupted setting resumes from its checkpoint).

  Returns:
    The rows of every finished setting, and the signal that stopped the
    sweep (SIGINT, SIGTERM; the setting in progress is checkpointed) or ``None``.

  Examples:
    >>> config, _ = load_config('digits_mlp:smoke', [('population.sweep.model.hidden_sizes', '[[32],[64]]')])  # doctest: +SKIP
    >>> rows, stop_signal = run_sequential(config, 'runs/widths')  # doctest: +SKIP
  """
  import json

  from jaxreg.experiment import train_and_evaluate
  from jaxreg.populations import sweep_settings, with_values

  validate_config(config)
  settings = sweep_settings(config)
  if not settings or not settings[0]:
    raise ConfigError("jaxreg sweep needs population.sweep: e.g. --config.population.sweep.optimizer.learning_rate="
                      "[0.001,0.01]")
  rows = []
  for index, setting in enumerate(settings):
    one = with_values(config, {key: tuple(v) if isinstance(v, list) else v for key, v in setting.items()})
    one.population.sweep = ml_collections.ConfigDict()
    folder = os.path.join(workdir, _folder_name(index, setting))
    summary_path = os.path.join(folder, "summary.json")
    if not os.path.exists(summary_path):
      result = train_and_evaluate(one, folder, resume=resume and os.path.isdir(os.path.join(folder, "checkpoints")),
                                  exit_on_second_interrupt=exit_on_second_interrupt)
      if result.summary.get("stop_signal") is not None:
        return rows, result.summary["stop_signal"]
    with open(summary_path) as f:
      summary = json.load(f)
    rows += _setting_rows(setting, summary, one.train.seed)
  return rows, None


def _setting_rows(setting: dict, summary: dict, seed: int) -> list[dict]:
  """The rows of one sequential setting: its population's members, or its single run."""
  if "population" in summary:
    return [{**setting, **{k: v for k, v in row.items() if "." not in k}} for row in sweep_rows(summary)]
  row = {**setting, "seed": seed, "best_epoch": summary.get("best_epoch"), "stopped_epoch": summary.get("epochs_run"),
         "diverged": False}
  row.update({k: v for k, v in summary.items() if k.startswith(("val_", "test_")) and isinstance(v, (int, float))})
  return [row]


__all__ = ["default_metric", "plot_sweep", "run_sequential", "sweep_rows", "write_sweep_table"]
