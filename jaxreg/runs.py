"""A finished run, read back from its work directory, and its robust evaluation.

:func:`load_run` rebuilds the experiment from the run's ``config.json`` and
restores the parameters its summary's test metrics came from (the best
epoch's when the run kept it, else the last; the refit's after
``train.after_early_stopping``). :func:`robust_evaluation` measures them
under attack and records the result in ``summary.json``.
"""

import dataclasses
import json
import os

import numpy as np

from jaxreg.config import load_config
from jaxreg.errors import CheckpointError, ConfigError
from jaxreg.experiment import (
    CHECKPOINT_SUBDIR,
    REFIT_CHECKPOINT_SUBDIR,
    Experiment,
    build,
    evaluation_variables,
    input_range,
    stored_preprocessing,
)
from jaxreg.train.robust import robust_accuracy
from jaxreg.train.writers import write_json

SUMMARY_FILE = "summary.json"


@dataclasses.dataclass(frozen=True)
class Run:
  """A finished run: its experiment (rebuilt from ``config.json``), restored state and summary.

  Attributes:
    workdir: the run's directory.
    experiment: :func:`jaxreg.experiment.build` of the run's config, with the
      run's stored input statistics.
    state: the restored :class:`~jaxreg.train.TrainState`.
    epoch: the epoch of the restored checkpoint.
    summary: ``summary.json``.
    config: the run's ``config.json`` as saved (the rebuilt experiment
      evaluates on one device, whatever ``parallel.mode`` the run trained with).

  A run unpacks as ``model, variables, config = load_run(workdir)``.

  Examples:
    >>> run = load_run('runs/digits_mlp/x')  # doctest: +SKIP
    >>> run.epoch, run.summary['test_accuracy'], run.config['optimizer']['name']  # doctest: +SKIP
  """

  workdir: str
  experiment: Experiment
  state: object
  epoch: int
  summary: dict
  config: dict = dataclasses.field(default_factory=dict)

  @property
  def model(self):
    """The model's ``ModelFns`` (``init``, ``apply``)."""
    return self.experiment.model

  def __iter__(self):
    """``(model, variables, config)``, so that ``model, variables, config = load_run(workdir)``."""
    return iter((self.model, self.variables, self.config))

  @property
  def variables(self) -> dict:
    """``{'params': ..., **model_state}``, what the model's ``apply`` takes: the parameters evaluation uses.

    Those are the optimizer's ``evaluation_params`` where it has them (the
    notes' ``theta`` of a Nesterov run), as the run's own evaluation.
    """
    return evaluation_variables(self.experiment, self.state)


def _read_summary(workdir: str) -> dict:
  path = os.path.join(workdir, SUMMARY_FILE)
  if not os.path.isdir(workdir):
    raise CheckpointError(f"{workdir} is not a run directory (it does not exist)")
  if not os.path.isfile(os.path.join(workdir, "config.json")):
    raise CheckpointError(f"{workdir} holds no run (no config.json); pass the --workdir of a jaxreg train run")
  if not os.path.isfile(path):
    raise CheckpointError(f"the run in {workdir} has not finished (no {SUMMARY_FILE}); finish it first with "
                          f"jaxreg train --workdir {workdir} --resume")
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise CheckpointError(f"{path} cannot be read ({e}); rerun the run, or restore the file") from None


def _checkpoint_of(workdir: str, summary: dict) -> tuple[str, int | None]:
  """The checkpoint folder and epoch the summary's test metrics came from (``None``: the latest)."""
  if "refit" in summary:
    return os.path.join(workdir, REFIT_CHECKPOINT_SUBDIR), None
  directory = os.path.join(workdir, CHECKPOINT_SUBDIR)
  return directory, int(summary["best_epoch"]) if summary.get("restored_best") else None


def load_run(workdir: str, epoch: int | str | None = None) -> Run:
  """Reads a finished run back: its experiment, and the state its summary's test metrics came from.

  Args:
    workdir: the run's directory.
    epoch: the checkpoint to restore: ``None`` for the one the summary's
      test metrics came from (the best epoch's when the run restored it),
      ``'last'`` for the latest, or an epoch number that was kept.

  Raises:
    CheckpointError: if ``workdir`` holds no finished run, or its
      checkpoint cannot be read (the message says what to do).
    ConfigError: if the saved config no longer builds.

  Examples:
    >>> model, variables, config = load_run('runs/digits_mlp/x')  # doctest: +SKIP
    >>> logits, _ = model.apply(variables, x, train=False, rng=None)  # doctest: +SKIP
  """
  from jaxreg.train.checkpoint import Checkpointer

  workdir = os.path.abspath(workdir)
  summary = _read_summary(workdir)
  if "population" in summary:
    members = summary["population"]["members"]
    raise ConfigError(f"{workdir} holds a population of {members} members, not one run: its summary.json has "
                      "each member's metrics ('members') and the ensemble's ('ensemble'); to evaluate one member "
                      "alone, train it alone (--config.train.seed=<its seed>, population.size=1)")
  config, _ = load_config(os.path.join(workdir, "config.json"), [])
  saved = config.to_dict()
  config.train.progress_bar = False
  config.parallel.mode, config.parallel.num_devices = "none", None  # checkpoints hold the one-device view
  experiment = stored_preprocessing(build(config), workdir, resume=True, primary=False)
  directory, chosen = _checkpoint_of(workdir, summary)
  epoch = chosen if epoch is None else (None if epoch == "last" else epoch)
  if not os.path.isdir(directory):
    raise CheckpointError(f"the run in {workdir} kept no checkpoints ({directory} is missing; checkpoint.every=0?), "
                          "so its parameters cannot be restored; train it again with checkpoint.every >= 1")
  checkpointer = Checkpointer(directory, keep=max(len(os.listdir(directory)), 1))
  try:
    epoch = checkpointer.latest_epoch() if epoch is None else epoch
    if epoch is None:
      raise CheckpointError(f"no checkpoint in {directory}; train the run again")
    if epoch not in checkpointer.epochs():
      kept = ", ".join(map(str, checkpointer.epochs()))
      raise CheckpointError(f"the run in {workdir} kept no checkpoint of epoch {epoch!r}; kept epochs: {kept} "
                            "(or 'last', or leave it out for the one its summary used)")
    state = checkpointer.restore(epoch, like=experiment.initial_state)
  finally:
    checkpointer.close()
  return Run(workdir=workdir, experiment=experiment, state=state, epoch=epoch, summary=summary, config=saved)


def _split(run: Run, split: str):
  splits = run.experiment.dataset.splits()
  if split not in splits:
    raise ConfigError(f"split must be one of {', '.join(splits)} (the run's data has these), got {split!r}")
  return splits[split]


def robust_evaluation(run: Run, *, eps, attack: str = "pgd", steps: int = 10, step_size=None, clip="auto",
                      split: str = "test", seed: int = 0, save: bool = True) -> dict:
  """The run's accuracy on ``split`` under ``attack`` at each ``eps`` (:func:`jaxreg.train.robust.robust_accuracy`).

  With ``save``, the result goes into ``summary.json`` under
  ``robust[<attack>]`` (with the split's name), replacing an earlier one.

  Args:
    run: from :func:`load_run`.
    eps: the perturbation sizes, in the model's input units.
    attack, steps, step_size, seed: as :func:`~jaxreg.train.robust.robust_accuracy`.
    clip: the inputs' valid range; ``'auto'`` for the data's valid range where jaxreg knows it
      (:func:`jaxreg.experiment.input_range`: ``(0, 1)`` for digits).
    split: ``'test'``, ``'val'`` or ``'train'``.
    save: record the result in the run's ``summary.json``.

  Examples:
    >>> result = robust_evaluation(load_run('runs/digits_mlp/x'), eps=[0.05, 0.1], attack='pgd')  # doctest: +SKIP
    >>> result['accuracy']  # one per eps, also in summary.json under 'robust'  # doctest: +SKIP
  """
  data = _split(run, split)
  clip = input_range(run.experiment.config) if clip == "auto" else clip
  result = robust_accuracy(
      run.experiment.model.apply, run.variables, data.x, data.y, eps=eps, attack=attack, steps=steps,
      step_size=step_size, clip=clip, batch_size=run.experiment.options.eval_batch_size, seed=seed,
  )
  result["split"] = split
  if save:
    summary = _read_summary(run.workdir)
    summary.setdefault("robust", {})[attack] = result
    write_json(os.path.join(run.workdir, SUMMARY_FILE), summary)
  return result


def clean_accuracy(run: Run, split: str = "test") -> float:
  """The run's accuracy on ``split``, from its restored parameters (evaluation mode).

  Examples:
    >>> clean_accuracy(load_run('runs/digits_mlp/x'), 'val')  # doctest: +SKIP
  """
  import jax

  data = _split(run, split)
  apply = jax.jit(lambda v, x: run.experiment.model.apply(v, x, train=False, rng=None)[0])
  size = run.experiment.options.eval_batch_size
  correct = sum(int(np.sum(np.argmax(apply(run.variables, data.x[i:i + size]), -1) == data.y[i:i + size]))
                for i in range(0, len(data.y), size))
  return correct / len(data.y)


__all__ = ["Run", "clean_accuracy", "load_run", "robust_evaluation"]
