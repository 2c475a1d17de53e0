"""The ``jaxreg`` command: the only module that parses command-line arguments.

  jaxreg train                                     # the default experiment (digits_mlp)
  jaxreg train --config digits_mlp:smoke --workdir runs/x
  jaxreg train --config digits_mlp --config.optimizer.learning_rate=0.05
  jaxreg train --workdir runs/x --resume           # continue an interrupted run
  jaxreg train --config.parallel.mode=sharded      # data-parallel over all devices (or =pmap)
  jaxreg train --compilation-cache off             # no persistent compilation cache (default: ~/.cache/jaxreg)
  jaxreg train --workdir runs/x --coordinator-address host0:1234 --num-processes 2 --process-id 0
                                                   # one process of a multi-host run (docs/parallel.md)
  jaxreg train --config digits_mlp --config.population.size=5 --config.population.bootstrap=true
                                                   # 5 bagged members in one vmapped program, and their ensemble
  jaxreg sweep --config digits_mlp --config.population.sweep.optimizer.learning_rate=[1e-3,1e-2]
                                                   # one program; sweep.csv, sweep.md, sweep.png
  jaxreg sweep --sequential --config digits_mlp --config.population.sweep.model.hidden_sizes=[[64],[256]]
  jaxreg plot runs/x                               # runs/x/curves.png, runs/x/curves_diagnostics.png
  jaxreg plot runs/a runs/b runs/c                 # compare.png: the runs' curves, named by what differs
  jaxreg compare runs/a runs/b runs/c              # a table: final metrics and the config keys that differ
  jaxreg eval runs/x                               # the restored model's test accuracy and loss
  jaxreg eval runs/x --data new.npz                # ... on arrays x and y of your own
  jaxreg predict runs/x --input x.npz --output y.npz  # logits, probabilities, labels
  jaxreg export runs/x model.msgpack               # the parameters, readable with flax.serialization alone
  jaxreg eval runs/x --attack pgd --eps 0.05,0.1   # accuracy under attack: summary.json, runs/x/robust.png
  jaxreg configs                                   # list the packaged configs
"""

import argparse
import contextlib
import errno
import logging
import os
import shlex
import signal
import sys
import time
import warnings

from jaxreg.errors import CheckpointError, ConfigError, DataError, TrainingError

_EPILOG = """\
Overrides: any config field can be set with --config.<section>.<field>=<value>
(or --config.<section>.<field> <value>), e.g.
  --config.optimizer.learning_rate=0.05  --config.model.hidden_sizes=[512,512]
  --config.regularizers.l2.alpha=1e-4    --config.train.early_stopping.patience=10
Values are Python literals (numbers, true/false, none, lists, quoted or bare strings).
An unknown key or a value of the wrong type stops the run before training.
"""


def _add_multihost_arguments(train: argparse.ArgumentParser) -> None:
  """The options that start JAX's distributed runtime before a multi-host run."""
  multihost = train.add_argument_group(
      "multi-host", "start JAX's distributed runtime first (each process runs the same command; "
      "JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID are read when the flags are absent)",
  )
  multihost.add_argument("--coordinator-address", default=None, metavar="HOST:PORT",
                         help="address of process 0's coordinator")
  multihost.add_argument("--num-processes", type=int, default=None, help="how many processes take part")
  multihost.add_argument("--process-id", type=int, default=None, help="this process's index, from 0")
  multihost.add_argument("--distributed-auto", action="store_true",
                         help="let JAX detect the cluster (Cloud TPU pod slice, SLURM, Open MPI, Kubernetes)")


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="jaxreg",
      description="Config-driven experiments for jaxreg, regularization and optimization in JAX.",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog="Run 'jaxreg train --help' for the training options.",
  )
  commands = parser.add_subparsers(dest="command", metavar="COMMAND")
  commands.required = True
  train = commands.add_parser(
      "train",
      help="train and evaluate one experiment config",
      description=(
          "Train and evaluate one experiment. Writes config.json, metrics.jsonl, checkpoints/ "
          "and summary.json to the work directory."
      ),
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=_EPILOG,
  )
  train.add_argument(
      "--config", default=None, metavar="FILE[:ARG]",
      help=(
          "packaged config name (digits_mlp; see jaxreg configs) or config file (my_config.py), optionally "
          "with ':ARG' passed to get_config (e.g. ':smoke'). Default: digits_mlp, or on --resume "
          "the config saved in the work directory."
      ),
  )
  train.add_argument(
      "--workdir", default=None,
      help="directory for the run's files (default: runs/<config>/<timestamp>)",
  )
  train.add_argument(
      "--resume", action="store_true",
      help="continue the run in --workdir from its latest checkpoint (error if there is none)",
  )
  train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
  train.add_argument(
      "--compilation-cache", default=None, metavar="DIR|off",
      help=(
          "JAX's persistent compilation cache, which makes reruns start faster: a directory, or "
          "'off'. Default: $JAXREG_COMPILATION_CACHE, else JAX's own $JAX_COMPILATION_CACHE_DIR if "
          "set, else ~/.cache/jaxreg/jax-compilation (under $JAXREG_CACHE_DIR or $XDG_CACHE_HOME if set)"
      ),
  )
  _add_multihost_arguments(train)
  _add_sweep_parser(commands)
  _add_run_parsers(commands)
  commands.add_parser("configs", help="list the packaged experiment configs")
  return parser


def _add_sweep_parser(commands) -> None:
  sweep = commands.add_parser(
      "sweep", help="train a config's population.sweep and tabulate and plot a metric per swept value",
      description=(
          "Train every setting of population.sweep (grid or zip, population.size seeds each) as one vmapped "
          "program, then write sweep.csv, sweep.md and sweep.png to the work directory. Keys that change the "
          "program (layer sizes, names, data settings) need --sequential: one run per setting."
      ),
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=_EPILOG + "\nSweep a key: --config.population.sweep.optimizer.learning_rate=[0.001,0.01]\n",
  )
  sweep.add_argument("--config", default=None, metavar="FILE[:ARG]", help="as for jaxreg train (default: digits_mlp)")
  sweep.add_argument("--workdir", default=None, help="the sweep's directory (default: runs/<config>-sweep/<timestamp>)")
  sweep.add_argument("--resume", action="store_true", help="continue the sweep in --workdir")
  sweep.add_argument("--sequential", action="store_true",
                     help="one run per setting, each in WORKDIR/<NN-key=value...>, for keys that change the program")
  sweep.add_argument("--metric", default=None,
                     help="the metric plotted (default: val_accuracy, else val_loss, else the test split's)")
  sweep.add_argument("--no-progress", action="store_true", help="hide the progress bar")
  sweep.add_argument("--compilation-cache", default=None, metavar="DIR|off", help="as for jaxreg train")


def _add_run_parsers(commands) -> None:
  """The commands that read finished runs: plot, compare, eval, predict, export."""
  plot = commands.add_parser(
      "plot", help="plot a run's learning curves and diagnostics to PNGs, or several runs' curves overlaid",
      description=(
          "Plot loss and accuracy per epoch from WORKDIR/metrics.jsonl to curves.png, and the "
          "update-to-weight ratios, gradient norm and learning rate to curves_diagnostics.png. With several "
          "runs, their curves overlaid in one figure (compare.png), labelled by the config keys they differ in "
          "(needs matplotlib)."
      ),
  )
  plot.add_argument("workdirs", nargs="+", metavar="WORKDIR", help="the run's work directory (or several)")
  plot.add_argument("--output", default=None, help="PNG path (default: WORKDIR/curves.png; several: compare.png)")
  compare = commands.add_parser(
      "compare", help="a table of several runs' final metrics and the config keys they differ in",
      description="Print a Markdown table: one row per run, the config keys the runs differ in, its final metrics.",
  )
  compare.add_argument("workdirs", nargs="+", metavar="WORKDIR", help="the runs' work directories")
  compare.add_argument("--metrics", default=None, metavar="M1,M2,...",
                       help="summary keys to show (default: test_accuracy,test_loss,best_epoch,epochs_run,"
                            "steps_per_second)")
  _add_eval_parser(commands)
  predict = commands.add_parser(
      "predict", help="a finished run's predictions on new inputs",
      description=("Restore a finished run's model and write its outputs on --input (an .npz with an array 'x', "
                   "or an .npy) to --output: logits, and for a classifier probabilities and labels."),
  )
  predict.add_argument("workdir", help="the run's work directory")
  predict.add_argument("--input", required=True, help="x.npz (array 'x') or x.npy, inputs as the run's data has them")
  predict.add_argument("--output", required=True, help="the .npz to write")
  predict.add_argument("--batch-size", type=int, default=None, help="default: the run's data.eval_batch_size")
  predict.add_argument("--epoch", default=None, help="a kept epoch, or 'last' (default: the summary's)")
  export = commands.add_parser(
      "export", help="a finished run's parameters as Flax msgpack (no Orbax needed to read them)",
      description=("Write the restored variables ({'params': ..., 'batch_stats': ...}) with flax.serialization; "
                   "read them with flax.serialization.msgpack_restore(open(path, 'rb').read())."),
  )
  export.add_argument("workdir", help="the run's work directory")
  export.add_argument("output", help="the file to write, e.g. model.msgpack")
  export.add_argument("--epoch", default=None, help="a kept epoch, or 'last' (default: the summary's)")


def _add_eval_parser(commands) -> None:
  evaluate = commands.add_parser(
      "eval", help="evaluate a finished run's model, clean or under adversarial attack",
      description=(
          "Restore the parameters a finished run's summary came from (the best epoch's when kept) and print "
          "their accuracy on a split. With --attack, the accuracy on FGSM or PGD examples at each --eps, "
          "recorded in WORKDIR/summary.json under 'robust' and plotted to WORKDIR/robust.png."
      ),
  )
  evaluate.add_argument("workdir", help="the run's work directory")
  evaluate.add_argument("--data", default=None, metavar="FILE.npz",
                        help="evaluate on these arrays ('x' and 'y', as the run's data has them) instead of a split")
  evaluate.add_argument("--epoch", default=None, help="a kept epoch, or 'last' (default: the summary's)")
  evaluate.add_argument("--split", default="test", choices=("test", "val", "train"), help="default: test")
  evaluate.add_argument("--attack", default=None, choices=("fgsm", "pgd"), help="perturb the inputs first")
  evaluate.add_argument("--eps", default="0.05,0.1", metavar="E1,E2,...",
                        help="perturbation sizes per input feature, in the model's input units (default: 0.05,0.1)")
  evaluate.add_argument("--steps", type=int, default=10, help="PGD's steps (default: 10)")
  evaluate.add_argument("--step-size", type=float, default=None, help="PGD's step (default: 2.5 eps / steps)")
  evaluate.add_argument("--clip", default="auto", metavar="LOW,HIGH|none|auto",
                        help="the inputs' valid range (default auto: (0, 1) for digits without preprocessing)")
  evaluate.add_argument("--seed", type=int, default=0, help="PGD's random starts (default: 0)")


_RUN_COMMANDS = {"plot": "plot", "compare": "compare", "eval": "evaluate", "predict": "predict", "export": "export"}


def _split_overrides(extra: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
  """Separates ``--config.a.b=v`` / ``--config.a.b v`` overrides from unknown arguments."""
  overrides, unknown, i = [], [], 0
  while i < len(extra):
    arg = extra[i]
    if arg.startswith("--config."):
      key, eq, value = arg[len("--config."):].partition("=")
      if not eq:
        if i + 1 >= len(extra):
          raise ConfigError(f"{arg} needs a value: {arg}=VALUE")
        value, i = extra[i + 1], i + 1
      overrides.append((key, value))
    else:
      unknown.append(arg)
    i += 1
  return overrides, unknown


def _train(args, overrides) -> int:
  import json

  import jax

  from jaxreg.config import load_config
  from jaxreg.experiment import train_and_evaluate
  from jaxreg.parallel import initialize_distributed

  _use_compilation_cache(args.compilation_cache)

  distributed = initialize_distributed(
      args.coordinator_address, args.num_processes, args.process_id, auto=args.distributed_auto
  )
  if distributed and not args.workdir:
    raise ConfigError("a multi-process run needs --workdir, the same for every process")
  config_spec = args.config
  if args.resume:
    if not args.workdir:
      raise ConfigError("--resume needs --workdir: the run to continue")
    if config_spec is None:
      config_spec = os.path.join(args.workdir, "config.json")
      if not os.path.isfile(config_spec):
        raise CheckpointError(f"nothing to resume in {args.workdir}: it holds no run (no config.json); start the "
                              "run without --resume, with --config")
  config, name = load_config(config_spec, overrides)
  if args.no_progress:
    config.train.progress_bar = False
  # The second and the process id: runs started together get directories of their own.
  workdir = args.workdir or os.path.join("runs", name, f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
  result = train_and_evaluate(config, workdir, resume=args.resume, exit_on_second_interrupt=True)
  if jax.process_index() != 0:
    return 0  # process 0 reports
  s = result.summary
  if s.get("stop_signal") is not None:
    print(_interrupted_message(s, os.path.abspath(workdir)), file=sys.stderr)
    return 128 + s["stop_signal"]
  print(f"workdir: {os.path.abspath(workdir)}")
  if "population" in s:
    from jaxreg.populations import describe_population

    print(describe_population(s))
  keys = ("test_accuracy", "test_loss", "best_epoch", "epochs_run", "steps_per_second", "member_steps_per_second",
          "wall_seconds")
  print(json.dumps({k: s[k] for k in keys if k in s}, indent=2))
  count = s["compilations"]
  print(f"compiled {count['programs']} XLA programs in {count['seconds']:.1f} s "
        f"({count['cache_hits']} from the persistent cache)")
  for warning in s.get("update_ratio_warnings", []):
    print(f"warning: {warning}", file=sys.stderr)
  return 0


def _sweep(args, overrides) -> int:
  from jaxreg.config import load_config
  from jaxreg.populations import swept_values, train_population
  from jaxreg.sweeps import run_sequential, sweep_rows

  _use_compilation_cache(args.compilation_cache)
  if args.resume and not args.workdir:
    raise ConfigError("--resume needs --workdir: the sweep to continue")
  if args.metric is not None and not args.metric.startswith(("val_", "test_")):
    raise ConfigError(f"--metric names a validation or test metric (val_accuracy, test_loss, ...), got {args.metric!r}")
  spec = args.config
  if args.resume and spec is None and not args.sequential:
    spec = os.path.join(args.workdir, "config.json")
  config, name = load_config(spec, overrides)
  if args.no_progress:
    config.train.progress_bar = False
  workdir = os.path.abspath(args.workdir or os.path.join(
      "runs", f"{name}-sweep", f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"))
  if not swept_values(config):
    raise ConfigError("jaxreg sweep needs population.sweep, e.g. "
                      "--config.population.sweep.optimizer.learning_rate=[0.001,0.01]")
  if args.sequential:
    os.makedirs(workdir, exist_ok=True)
    rows, stop_signal = run_sequential(config, workdir, resume=args.resume, exit_on_second_interrupt=True)
    if stop_signal is not None:
      print(f"jaxreg: interrupted by {signal.Signals(stop_signal).name}; the finished settings and the "
            f"checkpoints are kept in {workdir}: run the same command with --resume --workdir {shlex.quote(workdir)}",
            file=sys.stderr)
      return 128 + stop_signal
  else:
    result = train_population(config, workdir, resume=args.resume, exit_on_second_interrupt=True)
    if result.summary.get("stop_signal") is not None:
      print(_interrupted_message(result.summary, workdir).replace("jaxreg train", "jaxreg sweep"), file=sys.stderr)
      return 128 + result.summary["stop_signal"]
    rows = sweep_rows(result.summary)
  print(f"workdir: {workdir}")
  _write_sweep(rows, workdir, args.metric, name)
  return 0


def _write_sweep(rows: list, workdir: str, metric: str | None, name: str) -> None:
  """``sweep.csv``, ``sweep.md`` (also printed) and ``sweep.png`` in ``workdir``."""
  from jaxreg.sweeps import plot_sweep, write_sweep_table

  for path in write_sweep_table(rows, workdir):
    print(path)
  with open(os.path.join(workdir, "sweep.md")) as f:
    print(f.read(), end="")
  try:
    import matplotlib

    matplotlib.use("Agg")
    output = os.path.join(workdir, "sweep.png")
    plot_sweep(rows, metric=metric, output=output, title=f"{name}: sweep")
    print(output)
  except ImportError:
    print("(no plot: pip install 'jaxreg[plot]' for sweep.png)", file=sys.stderr)
  except ValueError as e:  # the table is written: only the plot is missing
    raise ConfigError(f"--metric: {e}; the table is in {workdir}/sweep.csv") from None


def _interrupted_message(summary: dict, workdir: str) -> str:
  """One line after a signal: where the run stopped, and the command that goes on from there."""
  from jaxreg.experiment import committed_epochs

  name = signal.Signals(summary["stop_signal"]).name
  committed = committed_epochs(workdir)
  if not committed:
    return (f"jaxreg: interrupted by {name} before the first checkpoint; start the run again with the same "
            "command (the same --workdir is fine)")
  return (f"jaxreg: interrupted by {name}; epoch {committed[-1]} is checkpointed; continue with: "
          f"jaxreg train --workdir {shlex.quote(workdir)} --resume")


def _use_compilation_cache(flag: str | None) -> None:
  """Turns on JAX's persistent compilation cache where ``--compilation-cache`` or the environment says."""
  from jaxreg.compilation import enable_persistent_cache, resolve_cache_dir

  directory = resolve_cache_dir(flag)
  if directory is None:
    return
  try:
    enable_persistent_cache(directory)
  except OSError as e:  # an unwritable cache costs only speed
    print(f"jaxreg: warning: no compilation cache ({e}); pass --compilation-cache DIR or off", file=sys.stderr)


def _os_error_message(error: OSError) -> str:
  where = f" ({error.filename})" if error.filename else ""
  if error.errno == errno.ENOSPC:
    return (f"the disk is full{where}; the last committed checkpoint is kept: free some space, then continue "
            "with --resume")
  return f"{error.strerror or error}{where}"


def _format_warning(message, category, filename, lineno, line=None, *, default=warnings.formatwarning) -> str:
  """jaxreg's own notices as one line; other libraries' warnings as Python prints them."""
  if category.__module__.startswith("jaxreg"):
    return f"jaxreg: notice: {message}\n"
  return default(message, category, filename, lineno, line)


def console_main() -> None:
  """The ``jaxreg`` console script and ``python -m jaxreg``: :func:`main`, then the exit.

  After an error the process ends at once (streams flushed, committed
  checkpoints on disk): Orbax's background threads, left mid-write by a
  full disk, would otherwise print tracebacks while the interpreter shuts down.
  """
  code = main()
  if code:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
  sys.exit(code)


@contextlib.contextmanager
def _quiet_library_logs():
  """Silences what Orbax's background threads print when a save fails; the command line reports the failure itself.

  Orbax logs the failure (with tracebacks) via absl, asyncio logs the tasks
  it abandoned, and TensorStore's callbacks into a closed event loop end in
  ``sys.unraisablehook``. The failure itself reaches the main thread as an
  exception, which :func:`main` turns into one line.
  """
  loggers = [logging.getLogger(name) for name in ("absl", "asyncio")]
  levels = [logger.level for logger in loggers]
  hook = sys.unraisablehook
  for logger in loggers:
    logger.setLevel(logging.CRITICAL)
  sys.unraisablehook = lambda unraisable: None
  try:
    yield
  finally:
    sys.unraisablehook = hook
    for logger, level in zip(loggers, levels, strict=True):
      logger.setLevel(level)


def main(argv: list[str] | None = None) -> int:
  """Runs the ``jaxreg`` command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
  warnings.formatwarning = _format_warning
  with _quiet_library_logs():
    return _main(argv)


def _main(argv: list[str] | None) -> int:
  parser = _parser()
  args, extra = parser.parse_known_args(argv)
  try:
    overrides, unknown = _split_overrides(extra)
    if unknown:
      parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if overrides and args.command not in ("train", "sweep"):
      parser.error("--config.<key>=<value> overrides go with 'jaxreg train' or 'jaxreg sweep'")
    if args.command == "train":
      return _train(args, overrides)
    if args.command == "sweep":
      return _sweep(args, overrides)
    if args.command in _RUN_COMMANDS:
      from jaxreg import _run_commands

      return getattr(_run_commands, _RUN_COMMANDS[args.command])(args)
    from jaxreg.config import packaged_configs

    print("\n".join(packaged_configs()))
    return 0
  except (ConfigError, DataError, CheckpointError, TrainingError) as e:
    print(f"jaxreg: error: {e}", file=sys.stderr)
    return 2
  except OSError as e:  # the disk or the file system, not the user's config
    print(f"jaxreg: error: {_os_error_message(e)}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:  # a second Ctrl-C: the epoch in progress is dropped, committed checkpoints stay
    print("jaxreg: interrupted; the last committed checkpoint is kept (continue with --resume)", file=sys.stderr)
    return 130


if __name__ == "__main__":
  console_main()
