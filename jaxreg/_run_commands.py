"""What the ``jaxreg`` commands that read finished runs do: ``eval``, ``predict``, ``export``, ``plot``, ``compare``.

:mod:`jaxreg.cli` parses the arguments and calls these with them; each
returns the exit code and raises jaxreg's errors, which the command line
prints as one line.
"""

import os
import sys

import numpy as np

from jaxreg.errors import ConfigError, DataError


def _matplotlib_headless() -> None:
  try:
    import matplotlib

    matplotlib.use("Agg")  # this process only writes PNGs: no window, whatever the display
  except ImportError:
    pass  # plotting raises the error that says how to install matplotlib


def plot(args) -> int:
  """``jaxreg plot RUN``: curves.png (and curves_diagnostics.png); with several runs, their curves overlaid."""
  _matplotlib_headless()
  if len(args.workdirs) > 1:
    return _plot_several(args)
  from jaxreg.train.plotting import has_diagnostics, plot_diagnostics, plot_learning_curves
  from jaxreg.train.writers import read_metrics

  workdir = args.workdirs[0]
  output = args.output or os.path.join(workdir, "curves.png")
  diagnostics_output = os.path.splitext(output)[0] + "_diagnostics.png"
  try:
    records = read_metrics(workdir)
    if not records:
      raise ValueError(f"no metrics to plot in {workdir} (it has no metrics.jsonl lines)")
    plot_learning_curves(records, output=output, title=workdir)
    print(output)
    if has_diagnostics(records):
      plot_diagnostics(records, output=diagnostics_output, title=workdir)
      print(diagnostics_output)
  except (ValueError, ImportError, OSError) as e:
    raise DataError(f"cannot plot {workdir}: {e}") from None
  return 0


def _plot_several(args) -> int:
  from jaxreg.compare import plot_runs

  output = args.output or "compare.png"
  try:
    plot_runs(args.workdirs, output=output)
  except (ValueError, ImportError, OSError) as e:
    raise DataError(f"cannot plot {', '.join(args.workdirs)}: {e}") from None
  print(output)
  return 0


def compare(args) -> int:
  """``jaxreg compare RUN...``: a Markdown table of the runs' final metrics and the config keys they differ in."""
  from jaxreg.compare import METRICS, comparison_table

  metrics = tuple(m for m in args.metrics.split(",") if m) if args.metrics else METRICS
  print(comparison_table(args.workdirs, metrics))
  return 0


def _numbers(flag: str, text: str) -> list[float]:
  try:
    return [float(part) for part in text.split(",") if part.strip()]
  except ValueError:
    raise ConfigError(f"{flag} takes numbers separated by commas, e.g. 0.05,0.1; got {text!r}") from None


def _clip(text: str):
  if text in ("auto", "none"):
    return None if text == "none" else "auto"
  values = _numbers("--clip", text)
  if len(values) != 2:
    raise ConfigError(f"--clip takes LOW,HIGH (e.g. 0,1), 'none' or 'auto'; got {text!r}")
  return tuple(values)


def _epoch(text: str | None):
  if text is None or text == "last":
    return text
  try:
    return int(text)
  except ValueError:
    raise ConfigError(f"--epoch takes an epoch number or 'last', got {text!r}") from None


def read_arrays(path: str, *, need_y: bool) -> tuple[np.ndarray, np.ndarray | None]:
  """``x`` (and ``y``) from an ``.npz`` file (arrays named ``x`` and ``y``) or an ``.npy`` file (``x`` alone)."""
  if not os.path.isfile(path):
    raise DataError(f"{path} does not exist; pass an .npz file with arrays 'x' and 'y' (np.savez(path, x=x, y=y))")
  try:
    loaded = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise DataError(f"{path} is not a NumPy file ({e}); write it with np.savez(path, x=x, y=y)") from None
  if isinstance(loaded, np.ndarray):
    arrays = {"x": loaded}
  else:
    with loaded:
      arrays = {name: loaded[name] for name in loaded.files}
  missing = [name for name in ("x", "y")[:2 if need_y else 1] if name not in arrays]
  if missing:
    raise DataError(f"{path} has no array named {missing[0]!r} (it has: {', '.join(arrays) or 'none'}); "
                    "write it with np.savez(path, x=x, y=y)")
  return arrays["x"], arrays.get("y")


def evaluate(args) -> int:
  """``jaxreg eval RUN``: the restored model's metrics on a split or on ``--data``; ``--attack`` adds robustness."""
  from jaxreg import inference
  from jaxreg.runs import load_run

  run = load_run(args.workdir, epoch=_epoch(args.epoch))
  print(f"{run.workdir}: epoch {run.epoch}, {run.experiment.dataset.describe()}")
  x, y = read_arrays(args.data, need_y=True) if args.data else (None, None)
  try:
    if args.data:
      metrics, name = inference.evaluate(run, x, y), os.path.basename(args.data)
    else:
      metrics, name = inference.evaluate_split(run, args.split), args.split
  except ValueError as e:
    raise DataError(f"jaxreg eval: {e}") from None
  for key, value in sorted(metrics.items()):
    print(f"{name}_{key}: {value:.4f}")
  if args.attack is None:
    return 0
  if args.data:
    raise ConfigError("--attack evaluates one of the run's splits (--split), not --data")
  return _attack(run, args)


def _attack(run, args) -> int:
  from jaxreg.runs import robust_evaluation

  try:
    result = robust_evaluation(run, eps=_numbers("--eps", args.eps), attack=args.attack, steps=args.steps,
                               step_size=args.step_size, clip=_clip(args.clip), split=args.split, seed=args.seed)
  except ValueError as e:
    raise ConfigError(f"jaxreg eval: {e}") from None
  steps = f", {result['steps']} steps" if args.attack == "pgd" else ""
  print(f"{args.attack.upper()}{steps}, clip {result['clip']}:")
  for eps, acc in zip(result["eps"], result["accuracy"], strict=True):
    print(f"  eps {eps:<8g} {args.split}_accuracy {acc:.4f}")
  _plot_robust(run.workdir)
  return 0


def _plot_robust(workdir: str) -> None:
  """``robust.png``: every attack recorded in the run's summary, accuracy against eps."""
  import json

  try:
    import matplotlib

    matplotlib.use("Agg")  # this process only writes PNGs
  except ImportError:
    print("(no plot: pip install 'jaxreg[plot]' for robust.png)", file=sys.stderr)
    return
  from jaxreg.train.robust import plot_robust_accuracy

  with open(os.path.join(workdir, "summary.json")) as f:
    recorded = json.load(f)["robust"]
  output = os.path.join(workdir, "robust.png")
  plot_robust_accuracy({attack.upper(): result for attack, result in sorted(recorded.items())}, output=output,
                       title=f"{os.path.basename(workdir)}: accuracy under attack")
  print(output)


def predict(args) -> int:
  """``jaxreg predict RUN --input x.npz --output y.npz``: logits, probabilities and labels (a regression: outputs)."""
  from jaxreg import inference
  from jaxreg.runs import load_run

  run = load_run(args.workdir, epoch=_epoch(args.epoch))
  x, _ = read_arrays(args.input, need_y=False)
  try:
    logits = inference.predict(run, x, batch_size=args.batch_size)
  except ValueError as e:
    raise DataError(f"jaxreg predict: {e}") from None
  arrays = {"logits": logits}
  if run.config.get("data", {}).get("task", "classification") == "classification":
    arrays.update(probabilities=np.asarray(inference.softmax(logits)), labels=logits.argmax(-1))
  temporary = args.output + ".tmp.npz"
  np.savez(temporary, **arrays)
  os.replace(temporary, args.output)
  print(f"{args.output}: {', '.join(f'{k} {v.shape}' for k, v in arrays.items())}")
  return 0


def export(args) -> int:
  """``jaxreg export RUN out.msgpack``: the evaluation variables as Flax msgpack (no Orbax needed to read them)."""
  from jaxreg.inference import export as export_variables
  from jaxreg.runs import load_run

  run = load_run(args.workdir, epoch=_epoch(args.epoch))
  export_variables(run, args.output)
  print(f"{args.output}: the variables of epoch {run.epoch} ({os.path.getsize(args.output)} bytes); read with "
        "flax.serialization.msgpack_restore(open(path, 'rb').read())")
  return 0
