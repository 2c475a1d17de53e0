"""Build an experiment from a config once, then run it in a work directory.

:func:`build` is the only place (besides ``cli.py``) that reads a config: it
unpacks each section into the keyword arguments of one factory and checks
every value against the real data, before anything is written.
:func:`run` owns the work directory. :func:`train_and_evaluate` is the two.
"""

import contextlib
import copy
import dataclasses
import json
import os
import platform
import shutil
import warnings
import zipfile
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
import optax

from jaxreg.augment import as_batch_transform, make_augmentation, make_tangents
from jaxreg.compilation import count_compilations
from jaxreg.config import config_differences, validate_config, with_defaults
from jaxreg.data import Dataset, make_dataset
from jaxreg.data.preprocess import Preprocessing, fit_preprocessing
from jaxreg.errors import CheckpointError, ConfigError
from jaxreg.models import ModelFns, make_model, mc_dropout_predict, weight_norm_data_init, with_compute_dtype
from jaxreg.optim import Optimizer, make_optimizer, set_learning_rate
from jaxreg.parallel import is_primary_process, make_placement
from jaxreg.regularizers import Regularizers, make_regularizers
from jaxreg.regularizers.adversarial import check_attack
from jaxreg.regularizers.factory import UPDATE_REGULARIZERS
from jaxreg.train import (
    Checkpointer,
    EarlyStopping,
    MetricWriter,
    TrainState,
    create_train_state,
    fit,
    make_eval_step,
    make_objective,
    make_train_step,
    write_json,
)
from jaxreg.train.diagnostics import activation_sparsity
from jaxreg.train.loop import DATA_ON_DEVICE_CHOICES, FitResult
from jaxreg.train.refit import check_strategy, refit
from jaxreg.train.robust import eps_list, robust_accuracy
from jaxreg.train.rundir import RunLock, StopOnSignal
from jaxreg.train.runner import logged_metric_names
from jaxreg.train.tensorboard import TENSORBOARD_SUBDIR, WriteTensorBoard

CHECKPOINT_SUBDIR = "checkpoints"
REFIT_CHECKPOINT_SUBDIR = "checkpoints_refit"
REFIT_METRICS = "metrics_refit.jsonl"
# Keys that may change between an interrupted run and its resume.
RESUMABLE_CHANGES = (
    "train.epochs", "train.progress_bar", "train.log_grad_norm", "train.diagnostics", "train.tensorboard",
    "train.log_every_steps", "train.tensorboard_histograms",
    "train.early_stopping.patience", "train.early_stopping.restore_best", "parallel.mode", "parallel.num_devices",
    "optimizer.learning_rate",  # the explicit way on from a divergence: the restored state gets the new rate
)


class ResumeNotice(UserWarning):
  """A resume goes on with something changed: a setting asked for, or lost statistics fitted again (one line)."""


def committed_epochs(workdir: str) -> list[int]:
  """The epochs with a committed checkpoint folder in ``workdir``, read from the listing alone (no side effects)."""
  directory = os.path.join(workdir, CHECKPOINT_SUBDIR)
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def _clear_unfinished(workdir: str) -> None:
  """Removes what a run that committed no checkpoint left: it holds nothing to resume, so a rerun starts over."""
  for name in ("config.json", "metrics.jsonl", REFIT_METRICS, DATA_FINGERPRINT, PREPROCESSING_FILE):
    path = os.path.join(workdir, name)
    if os.path.exists(path):
      os.remove(path)
  for name in (CHECKPOINT_SUBDIR, REFIT_CHECKPOINT_SUBDIR, TENSORBOARD_SUBDIR):
    shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)


DATA_FINGERPRINT = "data_fingerprint.json"
PREPROCESSING_FILE = "preprocessing.npz"


def resolved_config(config_dict: dict) -> dict:
  """The config as a run saves it: ``data.path`` made absolute, so a resume from any directory finds the data."""
  resolved = copy.deepcopy(config_dict)
  if resolved.get("data", {}).get("path"):
    resolved["data"]["path"] = os.path.abspath(resolved["data"]["path"])
  return resolved


def check_data_fingerprint(workdir: str, dataset: Dataset, resume: bool) -> None:
  """Records the data's fingerprint at a run's start; on a resume, refuses data that is not the same."""
  path = os.path.join(workdir, DATA_FINGERPRINT)
  now = {"fingerprint": dataset.fingerprint(), "dataset": dataset.describe()}
  if resume and os.path.exists(path):
    with open(path) as f:
      before = json.load(f)
    if before.get("fingerprint") != now["fingerprint"]:
      raise CheckpointError(
          f"the data differs from the data the run in {workdir} was trained on (fingerprint "
          f"{before.get('fingerprint')}: {before.get('dataset')}; now {now['fingerprint']}: {now['dataset']}); "
          "resume with the original data, or start a new run in a new --workdir"
      )
    return
  write_json(path, now)


def check_writable(workdir: str) -> None:
  """Refuses a work directory that cannot be created or written, before anything is built."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise CheckpointError(f"--workdir {workdir} is a file, not a directory; choose another --workdir")
  existing = workdir
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise CheckpointError(f"--workdir {workdir} cannot be created: {existing} is a file; choose another --workdir")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise CheckpointError(f"--workdir {workdir} cannot be written ({existing} is not writable); choose another")


def check_workdir(workdir: str, config_dict: dict, resume: bool, *, clear: bool = True) -> dict:
  """Refuses a work directory that cannot take the run; clears one whose run never committed a checkpoint.

  A directory holds a run once a checkpoint has been committed or the run has
  finished (``summary.json``); until then a failed or interrupted run left
  nothing to resume, and a plain rerun starts over in it (``clear``: remove
  what it left; call it only while holding the directory's :class:`RunLock`).

  Returns:
    On a resume, the allowed changes (``RESUMABLE_CHANGES``) as
    ``{key: (saved, now)}``; otherwise ``{}``.
  """
  saved_config = os.path.join(workdir, "config.json")
  finished = os.path.exists(os.path.join(workdir, "summary.json"))
  committed = committed_epochs(workdir)
  if not resume:
    if committed or finished:
      raise CheckpointError(
          f"{workdir} already holds a run; pass --resume to continue it, or choose a new --workdir "
          "(nothing was overwritten)"
      )
    if clear:
      _clear_unfinished(workdir)
    return {}
  if not os.path.exists(saved_config):
    raise CheckpointError(
        f"nothing to resume in {workdir}: it has no config.json; start the run without --resume"
    )
  with open(saved_config) as f:
    saved = with_defaults(json.load(f))  # a key added to jaxreg since the run started has its default
  differences = config_differences(saved, config_dict)
  changed = [k for k in differences if k not in RESUMABLE_CHANGES]
  if changed:
    raise ConfigError(
        f"--resume with a config that differs from the run in {workdir} at: {', '.join(changed)}. "
        f"Resume with the same config (only {', '.join(RESUMABLE_CHANGES)} may change)"
    )
  return {key: (_dotted(saved, key), _dotted(config_dict, key)) for key in differences}


def _dotted(config_dict: dict, key: str):
  for part in key.split("."):
    config_dict = config_dict.get(part) if isinstance(config_dict, dict) else None
  return config_dict


@dataclasses.dataclass(frozen=True)
class RunOptions:
  """How :func:`run` trains a built experiment: the ``data``, ``train`` and ``checkpoint`` settings ``fit`` takes.

  Examples:
    >>> options = build(load_config('digits_mlp:smoke')[0]).options  # doctest: +SKIP
    >>> options.batch_size, options.epochs  # doctest: +SKIP
    (64, 3)
  """

  batch_size: int
  eval_batch_size: int
  data_on_device: str
  epochs: int
  seed: int
  progress: bool
  restore_best: bool
  checkpoint_every: int
  checkpoint_keep: int
  after_early_stopping: str
  mc_dropout_samples: int = 0
  robust_eval: dict | None = None
  tensorboard: bool = True
  log_every_steps: int = 0
  tensorboard_histograms: bool = False


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything :func:`build` makes from a config, checked against the real data; :func:`run` trains it.

  Attributes:
    config: the resolved config, as a plain dict (what ``config.json`` holds).
    dataset: the splits.
    model: the model's ``ModelFns``.
    optimizer: the :class:`~jaxreg.optim.Optimizer` bundle.
    regularizers: the objective and update transforms.
    placement: where the run lives (one device, ``pmap``, sharded).
    early_stopping: what is monitored and when the run stops.
    initial_state: the state the run starts from.
    train_step: the step on the regularized objective.
    diagnostic_step: the step with update ratios for each epoch's last batch, or ``None``.
    eval_step: the evaluation of the unregularized objective.
    options: batch sizes, epochs, checkpoints, what to do after early stopping.
    batch_transform: the training batches' augmentation (``data.augment``), or ``None``.
    preprocessing: the input statistics fitted on the training split
      (``data.preprocess``), already applied to ``dataset``, or ``None``.
    raw_dataset: the splits before preprocessing (``None`` without it).
    sampling_model: the model with dropout sampling at evaluation, for
      ``train.mc_dropout_samples`` (``None`` when off).

  Examples:
    >>> experiment = build(load_config('digits_mlp:smoke')[0])  # doctest: +SKIP
    >>> experiment.dataset.describe(), experiment.optimizer.monitors  # doctest: +SKIP
    >>> result = run(experiment, '/tmp/run')  # doctest: +SKIP
  """

  config: dict
  dataset: Dataset
  model: ModelFns
  optimizer: Optimizer
  regularizers: Regularizers
  placement: object
  early_stopping: EarlyStopping
  initial_state: TrainState
  train_step: Callable
  diagnostic_step: Callable | None
  eval_step: Callable
  options: RunOptions
  batch_transform: Callable | None = None
  preprocessing: Preprocessing | None = None
  raw_dataset: Dataset | None = None
  sampling_model: ModelFns | None = None

  def fit_kwargs(self) -> dict:
    """The keyword arguments of :func:`~jaxreg.train.fit` that the experiment fixes."""
    o = self.options
    return dict(
        train_step=self.train_step, diagnostic_step=self.diagnostic_step, eval_step=self.eval_step,
        eval_batch_size=o.eval_batch_size, shuffle_seed=o.seed, progress=o.progress and is_primary_process(),
        data_on_device=o.data_on_device, optimizer=self.optimizer, placement=self.placement,
        batch_transform=self.batch_transform,
    )


def _mc_dropout_samples(config: ml_collections.ConfigDict) -> int:
  samples = config.train.mc_dropout_samples
  if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
    raise ConfigError(f"train.mc_dropout_samples must be an integer >= 0 (0: off), got {samples!r}")
  return samples


def input_range(config: dict) -> tuple[float, float] | None:
  """The model inputs' valid range when jaxreg knows it: ``(0, 1)`` for (coloured) digits without preprocessing."""
  data = config.get("data", {})
  if data.get("name") in ("digits", "coloured_digits") and data.get("preprocess", "none") == "none":
    return (0.0, 1.0)
  return None


def _robust_eval(config: ml_collections.ConfigDict) -> dict | None:
  """``train.robust_eval`` checked, with its clip filled in from the data; ``None`` without ``eps``."""
  spec = config.train.robust_eval.to_dict()
  if not spec["eps"]:
    return None
  if config.data.task != "classification":
    raise ConfigError("train.robust_eval measures a classifier's accuracy under attack: it needs "
                      "data.task='classification'; set train.robust_eval.eps=[] to turn it off")
  spec["clip"] = input_range(config.to_dict()) if spec["clip"] is None else tuple(spec["clip"])
  try:
    spec["eps"] = eps_list(spec["eps"])
    check_attack(spec["attack"], max(spec["eps"]), spec["steps"], spec["step_size"], spec["clip"])
  except ValueError as e:
    raise ConfigError(f"train.robust_eval.{e}") from None
  return spec


def _run_options(config: ml_collections.ConfigDict) -> RunOptions:
  check_strategy(config.train.after_early_stopping)
  for key in ("data.batch_size", "data.eval_batch_size", "train.epochs"):
    value = config[key.split(".")[0]][key.split(".")[1]]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConfigError(f"{key} must be a positive integer, got {value!r}")
  every = config.train.log_every_steps
  if isinstance(every, bool) or not isinstance(every, int) or every < 0:
    raise ConfigError(f"train.log_every_steps must be an integer >= 0 (0: once per epoch), got {every!r}")
  if config.data.on_device not in DATA_ON_DEVICE_CHOICES:
    raise ConfigError(f"data.on_device must be one of {', '.join(DATA_ON_DEVICE_CHOICES)}, got {config.data.on_device!r}")
  if config.checkpoint.every < 0 or config.checkpoint.keep < 1:
    raise ConfigError(
        "checkpoint.every must be >= 0 (0 turns checkpoints off) and checkpoint.keep >= 1, "
        f"got every={config.checkpoint.every}, keep={config.checkpoint.keep}"
    )
  return RunOptions(
      batch_size=config.data.batch_size, eval_batch_size=config.data.eval_batch_size,
      data_on_device=config.data.on_device, epochs=config.train.epochs, seed=config.train.seed,
      progress=config.train.progress_bar, restore_best=config.train.early_stopping.restore_best,
      checkpoint_every=config.checkpoint.every, checkpoint_keep=config.checkpoint.keep,
      after_early_stopping=config.train.after_early_stopping,
      mc_dropout_samples=_mc_dropout_samples(config),
      robust_eval=_robust_eval(config),
      tensorboard=bool(config.train.tensorboard), log_every_steps=every,
      tensorboard_histograms=bool(config.train.tensorboard_histograms),
  )


def _load_data(config: ml_collections.ConfigDict, options: RunOptions) -> Dataset:
  data_cfg = {k: v for k, v in config.data.items()
              if k not in ("batch_size", "eval_batch_size", "on_device", "augment", "preprocess", "preprocess_eps")}
  dataset = make_dataset(**data_cfg)
  num_train = len(dataset.train.y)
  if options.batch_size > num_train:
    raise ConfigError(
        f"data.batch_size={options.batch_size} is larger than the training split ({num_train} examples); "
        f"use at most {num_train}"
    )
  if options.after_early_stopping != "none" and dataset.val is None:
    raise ConfigError(
        f"train.after_early_stopping={options.after_early_stopping!r} trains on the validation split afterwards, "
        "but the dataset has none; set data.val_fraction > 0"
    )
  return dataset


def _accumulate_steps(optimizer_cfg: dict) -> int:
  k = optimizer_cfg.pop("accumulate_steps", 1)
  if isinstance(k, bool) or not isinstance(k, int) or k < 1:
    raise ConfigError(f"optimizer.accumulate_steps must be a positive integer (1: off), got {k!r}")
  return k


def _optimization(sections: dict, steps_per_epoch: int) -> tuple[Optimizer, Regularizers, optax.GradientTransformation]:
  """The optimizer bundle, the regularizers and the transform the step applies (optimizer, then update regularizers).

  With ``optimizer.accumulate_steps = k > 1`` the whole transform is wrapped
  in ``optax.MultiSteps``: the gradients of ``k`` steps are averaged and
  applied once, so schedules count those updates (``steps_per_epoch // k`` an epoch).
  """
  optimizer_cfg = dict(sections["optimizer"])
  k = _accumulate_steps(optimizer_cfg)
  steps_per_epoch = max(steps_per_epoch // k, 1)
  optimizer = make_optimizer(**optimizer_cfg, steps_per_epoch=steps_per_epoch)
  regularizer_cfg = sections["regularizers"]
  if "prox_l1" in regularizer_cfg and optimizer.learning_rate_on_metric:
    raise ConfigError(
        "regularizers.prox_l1 thresholds by the learning rate, which a plateau schedule changes "
        "inside the optimizer state; use a step or epoch schedule, or weight_decay / l1 instead"
    )
  regularizers = make_regularizers(
      steps_per_epoch=steps_per_epoch, learning_rate=optimizer.learning_rate, **regularizer_cfg
  )
  has_updates = any(name in regularizer_cfg for name in UPDATE_REGULARIZERS)
  tx = optax.chain(optimizer.tx, regularizers.update) if has_updates else optimizer.tx
  return optimizer, regularizers, tx if k == 1 else optax.MultiSteps(tx, every_k_schedule=k).gradient_transformation()


def _preprocessing(config: ml_collections.ConfigDict, dataset: Dataset) -> Preprocessing | None:
  """``data.preprocess`` fitted on the training split (``None`` for ``'none'``)."""
  try:
    return fit_preprocessing(config.data.preprocess, dataset.train.x, eps=config.data.preprocess_eps)
  except ValueError as e:
    raise ConfigError(f"data.{e}") from None


def _augmentation(config: ml_collections.ConfigDict, dataset: Dataset) -> Callable | None:
  """``data.augment`` as the runs' batch transform, checked on the data's example shape (nothing is run)."""
  augmentation = make_augmentation(list(config.data.augment), train_x=dataset.train.x)
  if augmentation is None:
    return None
  transform = as_batch_transform(augmentation)
  sample = {"x": dataset.train.x[:2], "y": dataset.train.y[:2]}
  try:
    jax.eval_shape(transform, sample, jax.random.PRNGKey(0))
  except (ValueError, TypeError) as e:
    raise ConfigError(f"data.augment cannot take the data's examples of shape {dataset.train.x.shape[1:]}: "
                      f"{str(e).splitlines()[0]}") from None
  return transform


def _check_tangents(sections: dict, dataset: Dataset) -> None:
  """``regularizers.tangent_prop``'s tangents tried on the data's examples (shapes only, nothing is run)."""
  spec = sections["regularizers"].get("tangent_prop")
  if not isinstance(spec, dict) or "tangents" not in spec:
    return  # make_regularizers has refused it already
  try:
    jax.eval_shape(make_tangents(spec["tangents"], smoothing=spec.get("smoothing", 0.0)), dataset.train.x[:2])
  except (ValueError, TypeError) as e:
    raise ConfigError(f"regularizers.tangent_prop.tangents cannot take the data's examples of shape "
                      f"{dataset.train.x.shape[1:]}: {str(e).splitlines()[0]}") from None


def _sampling_model(options: RunOptions, dataset: Dataset, placement, model_cfg: dict) -> ModelFns | None:
  """The model with ``mc_dropout=True`` for ``train.mc_dropout_samples > 0`` (classification with a test split)."""
  if options.mc_dropout_samples == 0:
    return None
  if dataset.task != "classification" or dataset.test is None:
    raise ConfigError("train.mc_dropout_samples reports a test accuracy: it needs a classification dataset "
                      "with a test split; set it to 0")
  if model_cfg.get("name") not in ("mlp", "cnn", "rnn", "lstm", "gru"):
    raise ConfigError(f"train.mc_dropout_samples: model {model_cfg.get('name')!r} has no mc_dropout option; "
                      "set it to 0")
  return make_model(num_outputs=dataset.num_outputs, axis_name=placement.axis_name,
                    **{**model_cfg, "mc_dropout": True})


def _mc_dropout_accuracy(experiment: Experiment, result: FitResult) -> dict:
  """The test accuracy of the mean of ``k`` sampled sub-networks' probabilities (Monte-Carlo dropout)."""
  samples, test = experiment.options.mc_dropout_samples, experiment.dataset.test
  variables = {"params": result.state.params, **result.state.model_state}
  predict = jax.jit(lambda v, x, key: mc_dropout_predict(experiment.sampling_model.apply, v, x, key, samples))
  key = jax.random.fold_in(jax.random.PRNGKey(experiment.options.seed), 0x6D63)  # "mc"
  size = experiment.options.eval_batch_size
  correct = sum(int(np.sum(np.argmax(predict(variables, test.x[i:i + size], jax.random.fold_in(key, i)), -1)
                           == test.y[i:i + size])) for i in range(0, len(test.y), size))
  return {"samples": samples, "test_accuracy": correct / len(test.y)}


def _early_stopping(config: ml_collections.ConfigDict) -> EarlyStopping:
  try:
    return EarlyStopping(**{k: v for k, v in config.train.early_stopping.items() if k != "restore_best"})
  except ValueError as e:
    raise ConfigError(f"train.early_stopping.{e}") from None


def _check_monitors(early_stopping: EarlyStopping, optimizer: Optimizer, available: list[str]) -> None:
  """Every monitored metric must be one the run logs."""
  watched = [("train.early_stopping.monitor", early_stopping.monitor)]
  watched += [("optimizer.schedule.monitor or optimizer.momentum_off.monitor", m) for m in optimizer.monitors]
  for key, monitor in watched:
    if monitor not in available:
      raise ConfigError(f"{key}={monitor!r} is not a logged metric; choose one of: {', '.join(available)}")


@dataclasses.dataclass(frozen=True)
class Steps:
  """What :func:`make_steps` builds from a config's ``model``, ``optimizer`` and ``regularizers`` sections.

  Examples:
    >>> config, _ = load_config('digits_mlp:smoke')
    >>> data = load_digits()
    >>> steps = make_steps(config.to_dict(), data, SingleDevice(), steps_per_epoch=19)
    >>> sorted(steps.optimizer.monitors), callable(steps.train_step)
    ([], True)
  """

  model: ModelFns
  optimizer: Optimizer
  regularizers: Regularizers
  tx: optax.GradientTransformation
  train_step: Callable
  diagnostic_step: Callable
  eval_step: Callable


def steps_per_epoch(dataset: Dataset, options: RunOptions) -> int:
  """Full batches per epoch (at least 1: epoch-unit schedules count in them).

  Examples:
    >>> experiment = build(load_config('digits_mlp:smoke')[0])
    >>> steps_per_epoch(experiment.dataset, experiment.options)  # 1257 // 64
    19
  """
  return max(len(dataset.train.y) // options.batch_size, 1)


def make_steps(sections: dict, dataset: Dataset, placement, *, steps_per_epoch: int) -> Steps:
  """The model, optimizer, regularizers and steps of a plain-dict config, for ``dataset`` on ``placement``.

  The part of :func:`build` that a population sweep calls again inside its
  vmapped program with swept values traced (:mod:`jaxreg.populations`), so
  it reads only ``sections`` and builds nothing it does not return.

  Raises:
    ConfigError: for a bad key or value of those sections.

  Examples:
    >>> config, _ = load_config('digits_mlp:smoke', [('regularizers.weight_decay', "{'rate': 0.01}")])
    >>> steps = make_steps(config.to_dict(), load_digits(), SingleDevice(), steps_per_epoch=19)
    >>> sorted(steps.regularizers.names)
    ['l2', 'weight_decay']
  """
  model_cfg = sections["model"]
  model = make_model(num_outputs=dataset.num_outputs, axis_name=placement.axis_name, **model_cfg)
  compute_dtype = sections["train"].get("compute_dtype", "float32")
  try:
    model = with_compute_dtype(model, compute_dtype)
  except ValueError as e:
    raise ConfigError(f"train.{e}") from None
  optimizer, regularizers, tx = _optimization(sections, steps_per_epoch)
  _check_tangents(sections, dataset)
  try:
    base_objective = make_objective(dataset.task, model.apply, task_weights=model_cfg.get("tasks"))
  except ConfigError:
    raise
  except ValueError as e:
    raise ConfigError(f"model.tasks: {e}") from None
  train_objective = regularizers.objective(base_objective)
  step_options = dict(grad_norm=sections["train"]["log_grad_norm"], axis_name=placement.axis_name)
  return Steps(
      model=model, optimizer=optimizer, regularizers=regularizers, tx=tx,
      train_step=make_train_step(train_objective, tx, **step_options),
      diagnostic_step=make_train_step(train_objective, tx, diagnostics=True, **step_options),
      eval_step=make_eval_step(base_objective, params_fn=optimizer.evaluation_params, axis_name=placement.axis_name),
  )


def initial_state(steps: Steps, rng: jax.Array, dataset: Dataset, *, early_stopping_mode: str,
                  data_init_examples: int = 0) -> TrainState:
  """The state a run starts from: the model and optimizer initialized, then optionally the data-dependent init.

  With ``data_init_examples > 0`` the weight-normalized layers' ``g`` and
  biases are set on the first that many training examples
  (:func:`jaxreg.models.weight_norm_data_init`), and the optimizer state is
  made again for them.

  Examples:
    >>> config, _ = load_config('digits_mlp:smoke')
    >>> data = load_digits()
    >>> steps = make_steps(config.to_dict(), data, SingleDevice(), steps_per_epoch=19)
    >>> state = initial_state(steps, jax.random.key(0), data, early_stopping_mode='min')
    >>> int(state.step), sorted(state.params)
    (0, ['dense_0', 'output'])
  """
  state = create_train_state(steps.model, steps.tx, rng=rng, sample_x=dataset.train.x[:1],
                             early_stopping_mode=early_stopping_mode)
  if not data_init_examples:
    return state
  data_init = jax.jit(lambda variables, x: weight_norm_data_init(steps.model, variables, x))  # one program
  variables = data_init({"params": state.params, **state.model_state}, dataset.train.x[:data_init_examples])
  return state.replace(params=variables["params"], opt_state=steps.tx.init(variables["params"]))


def _data_init_examples(config: ml_collections.ConfigDict, model_cfg: dict) -> int:
  examples = config.train.weight_norm_data_init
  if isinstance(examples, bool) or not isinstance(examples, int) or examples < 0:
    raise ConfigError(f"train.weight_norm_data_init must be an integer >= 0 (0: off), got {examples!r}")
  if examples and not model_cfg.get("weight_norm"):
    raise ConfigError("train.weight_norm_data_init initializes weight-normalized layers: set model.weight_norm=True, "
                      "or set it to 0")
  return examples


def build(config: ml_collections.ConfigDict) -> Experiment:
  """Builds everything a config describes, checking each value against the real data; writes nothing.

  Each section is unpacked into one factory (``make_dataset``,
  ``make_model``, ``make_optimizer``, ``make_regularizers``,
  ``make_placement``, ``EarlyStopping``); the data is loaded first, so the
  model's outputs, the steps per epoch and the schedules use the real values.

  Raises:
    ConfigError: for any bad key or value, naming it (``optimizer.b2``).
    DataError: for malformed data.

  Examples:
    >>> experiment = build(load_config('digits_mlp:smoke')[0])  # checks every key against the data; writes nothing
    >>> experiment.dataset.describe()
    'digits (classification; train 1257, val 180, test 360; input shape (64,))'
  """
  validate_config(config)
  options = _run_options(config)
  early_stopping = _early_stopping(config)
  placement = make_placement(**config.parallel)
  placement.check_batch_size(options.batch_size)
  raw_dataset = _load_data(config, options)
  preprocessing = _preprocessing(config, raw_dataset)
  dataset = raw_dataset if preprocessing is None else preprocessing.apply_to(raw_dataset)
  batch_transform = _augmentation(config, dataset)
  steps = make_steps(config.to_dict(), dataset, placement, steps_per_epoch=steps_per_epoch(dataset, options))
  model, optimizer, model_cfg = steps.model, steps.optimizer, config.model.to_dict()
  examples = _data_init_examples(config, model_cfg)
  try:
    state = initial_state(steps, jax.random.PRNGKey(config.train.seed), dataset,
                          early_stopping_mode=early_stopping.mode, data_init_examples=examples)
  except (ValueError, TypeError) as e:  # the model cannot take the data's inputs
    raise ConfigError(f"model {model_cfg.get('name')!r} cannot take the data's examples of shape "
                      f"{dataset.train.x.shape[1:]}: {str(e).splitlines()[0]}") from None
  _check_monitors(early_stopping, optimizer, logged_metric_names(
      placement, steps.train_step, steps.eval_step, state, dataset, options.batch_size))
  return Experiment(
      config=resolved_config(config.to_dict()), dataset=dataset, model=model, optimizer=optimizer,
      regularizers=steps.regularizers,
      placement=placement, early_stopping=early_stopping, initial_state=state,
      train_step=steps.train_step, eval_step=steps.eval_step,
      diagnostic_step=steps.diagnostic_step if config.train.diagnostics else None,
      options=options, batch_transform=batch_transform, preprocessing=preprocessing,
      raw_dataset=None if preprocessing is None else raw_dataset,
      sampling_model=_sampling_model(options, dataset, placement, model_cfg),
  )


def run(experiment: Experiment, workdir: str, *, resume: bool = False, exit_on_second_interrupt: bool = False
        ) -> FitResult:
  """Trains a built experiment in ``workdir`` and writes its artifacts there.

  Writes ``config.json`` (the resolved config), ``metrics.jsonl`` (a line per
  epoch), ``checkpoints/`` (Orbax; the last ``checkpoint.keep`` epochs and
  the best one) and, at the end of a run that was not interrupted by a
  signal, ``summary.json``. With
  ``train.after_early_stopping`` it then trains on train + validation and
  writes ``metrics_refit.jsonl`` and ``checkpoints_refit/``; the summary's
  test metrics are then the refit model's, and ``summary['refit']`` says what
  happened (with the early-stopped model's test metrics).

  In a multi-process run (after :func:`jaxreg.parallel.initialize_distributed`)
  every process calls this with the same experiment and work directory;
  process 0 writes the files, and the checkpoints hold the single-device view
  of the state, so they restore in any mode.

  Args:
    experiment: from :func:`build`.
    workdir: the run's directory; it must not hold a run unless ``resume``.
    resume: continue the run in ``workdir`` from its latest checkpoint.
    exit_on_second_interrupt: a second Ctrl-C ends the process at once (the
      command line) instead of raising ``KeyboardInterrupt`` (see
      :class:`~jaxreg.train.StopOnSignal`).

  Returns:
    The :class:`~jaxreg.train.FitResult`; its summary is also in ``summary.json``.

  Examples:
    >>> result = run(build(load_config('digits_mlp:smoke')[0]), 'runs/smoke')  # doctest: +SKIP
    >>> result.summary['test_accuracy']  # doctest: +SKIP
  """
  workdir, primary = os.path.abspath(workdir), is_primary_process()
  if resume and not os.path.isdir(workdir):
    raise CheckpointError(f"nothing to resume: {workdir} does not exist; start the run without --resume")
  with RunLock(workdir) if primary else contextlib.nullcontext():
    changes = {}
    if primary:
      changes = check_workdir(workdir, experiment.config, resume)
      check_data_fingerprint(workdir, experiment.raw_dataset or experiment.dataset, resume)
    experiment = stored_preprocessing(experiment, workdir, resume, primary)
    return _run_locked(experiment, workdir, resume=resume, exit_at_once=exit_on_second_interrupt, changes=changes)


def stored_preprocessing(experiment: Experiment, workdir: str, resume: bool, primary: bool) -> Experiment:
  """A new run stores its input statistics (``preprocessing.npz``); a resumed one reads them back and uses them."""
  if experiment.preprocessing is None:
    return experiment
  path = os.path.join(workdir, PREPROCESSING_FILE)
  if resume and os.path.exists(path):
    try:
      stored = Preprocessing.load(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
      # The data's fingerprint matched, so fitting again gives the statistics the run started with.
      warnings.warn(f"{path} is unreadable ({e}); the statistics were fitted again on the same training split "
                    "and written anew", ResumeNotice, stacklevel=2)
    else:
      return dataclasses.replace(experiment, preprocessing=stored, dataset=stored.apply_to(experiment.raw_dataset))
  if primary:
    os.makedirs(workdir, exist_ok=True)
    experiment.preprocessing.save(path)
  return experiment


def _on_resume(experiment: Experiment, changes: dict) -> Callable | None:
  """What a resume does to the restored state for the changes it was asked for: a new constant learning rate.

  A rate on a schedule is recomputed from the step count at every update,
  so the newly built optimizer already applies it.
  """
  if "optimizer.learning_rate" not in changes or callable(experiment.optimizer.learning_rate):
    return None
  before, now = changes["optimizer.learning_rate"]

  def set_rate(state: TrainState) -> TrainState:
    warnings.warn(f"going on from step {int(state.step)} with optimizer.learning_rate={now} "
                  f"(the run had {before})", ResumeNotice, stacklevel=2)
    return state.replace(opt_state=set_learning_rate(state.opt_state, float(now)))

  return set_rate


def _run_locked(experiment: Experiment, workdir: str, *, resume: bool, exit_at_once: bool, changes: dict
                ) -> FitResult:
  """The body of :func:`run`, with the work directory checked and locked."""
  primary, options = is_primary_process(), experiment.options
  os.makedirs(workdir, exist_ok=True)
  if primary:
    write_json(os.path.join(workdir, "config.json"), experiment.config, exact=True)
  checkpointer = None
  if options.checkpoint_every > 0:
    checkpointer = Checkpointer(os.path.join(workdir, CHECKPOINT_SUBDIR), keep=options.checkpoint_keep)
  stopper = StopOnSignal(exit_at_once=exit_at_once)  # SIGTERM / Ctrl-C: stop at the epoch's end, checkpointed
  hooks = [stopper] + (tensorboard_hooks(workdir, options) if primary else [])
  result = fit(
      experiment.initial_state, dataset=experiment.dataset, batch_size=options.batch_size, epochs=options.epochs,
      early_stopping=experiment.early_stopping, restore_best=options.restore_best, checkpointer=checkpointer,
      checkpoint_every=max(options.checkpoint_every, 1), resume=resume,
      writer=MetricWriter(workdir) if primary else None, hooks=hooks, on_resume=_on_resume(experiment, changes),
      trace_steps=options.log_every_steps > 0, **experiment.fit_kwargs(),
  )
  if changes:
    result.summary["changed_on_resume"] = {key: list(values) for key, values in changes.items()}
  if stopper.signal_number is not None:
    result.summary["stop_signal"] = stopper.signal_number
  elif options.after_early_stopping != "none":
    result = _refit(experiment, result, workdir)
  result.summary.update(_run_facts(experiment, result, resume))
  if primary and stopper.signal_number is None:  # an interrupted run is not finished: it resumes, or reruns
    write_json(os.path.join(workdir, "summary.json"), result.summary)
  return result


def tensorboard_hooks(workdir: str, options: RunOptions) -> list:
  """The TensorBoard writer hook of ``train.tensorboard`` (none when off), writing to ``workdir/tensorboard``."""
  if not options.tensorboard:
    return []
  return [WriteTensorBoard(os.path.join(workdir, TENSORBOARD_SUBDIR), every_steps=options.log_every_steps,
                           histograms=options.tensorboard_histograms)]


def evaluation_variables(experiment: Experiment, state: TrainState) -> dict:
  """``{'params': ..., **model_state}`` as the run evaluates them: the optimizer's ``evaluation_params`` where it has them."""
  params_fn = experiment.optimizer.evaluation_params
  params = state.params if params_fn is None else params_fn(state.params, state.opt_state)
  return {"params": params, **state.model_state}


def _run_facts(experiment: Experiment, result: FitResult, resume: bool) -> dict:
  """The summary's description of the run: data, hardware, versions, sparsity of the activations."""
  facts = {}
  dataset, placement, model = experiment.dataset, experiment.placement, experiment.model
  sparsity_split = dataset.test if dataset.test is not None else dataset.val
  if sparsity_split is not None and model.captures_intermediates:
    facts["activation_sparsity"] = activation_sparsity(
        model.apply, {"params": result.state.params, **result.state.model_state}, sparsity_split.x
    )
  if experiment.sampling_model is not None:
    facts["mc_dropout"] = _mc_dropout_accuracy(experiment, result)
  spec = experiment.options.robust_eval
  if spec is not None and dataset.test is not None:
    facts["robust"] = {spec["attack"]: {**robust_accuracy(
        model.apply, evaluation_variables(experiment, result.state), dataset.test.x, dataset.test.y,
        batch_size=experiment.options.eval_batch_size, seed=experiment.options.seed, **spec), "split": "test"}}
  facts.update(
      dataset=dataset.describe(),
      device=str(jax.devices()[0].device_kind),
      backend=jax.default_backend(),
      jax_version=jax.__version__,
      python=platform.python_version(),
      resumed=resume,
      parallel={"mode": placement.mode, "num_devices": placement.num_devices, "processes": jax.process_count()},
  )
  return facts


def _refit(experiment: Experiment, first: FitResult, workdir: str) -> FitResult:
  """Phase two: train on train + validation (see :mod:`jaxreg.train.refit`); its files get a ``_refit`` suffix."""
  primary, options = is_primary_process(), experiment.options
  metrics_path = os.path.join(workdir, REFIT_METRICS)
  checkpoint_dir = os.path.join(workdir, REFIT_CHECKPOINT_SUBDIR)
  if primary:  # a resumed run redoes phase two from the early-stopped parameters
    if os.path.exists(metrics_path):
      os.remove(metrics_path)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
  checkpointer = Checkpointer(checkpoint_dir, keep=1) if options.checkpoint_every > 0 else None
  result, report = refit(
      options.after_early_stopping, first, initial_state=experiment.initial_state, dataset=experiment.dataset,
      batch_size=options.batch_size, max_epochs=options.epochs,
      writer=MetricWriter(workdir, REFIT_METRICS) if primary else None,
      checkpointer=checkpointer, checkpoint_every=10**9, **experiment.fit_kwargs(),
  )
  summary = dict(first.summary)
  summary.update({k: result.summary[k] for k in ("test_loss", "test_accuracy") if k in result.summary})
  summary["refit"] = report
  return FitResult(state=result.state, history=first.history, summary=summary)


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, resume: bool = False, exit_on_second_interrupt: bool = False
) -> FitResult:
  """Builds the experiment ``config`` and runs it in ``workdir``: :func:`build` then :func:`run`.

  A work directory that cannot take the run (it holds one and ``resume`` is
  off, or it has none to resume) is refused before anything is built.

  Args:
    config: a config from :func:`jaxreg.config.load_config` or ``get_config()``.
    workdir: the run's directory; it must not hold a run unless ``resume``.
    resume: continue the run in ``workdir`` from its latest checkpoint.
    exit_on_second_interrupt: see :func:`run`.

  A config with a ``population`` section set (``population.size > 1``,
  ``bootstrap`` or a ``sweep``) trains all its members as one program
  instead: :func:`jaxreg.populations.train_population`, which returns a
  :class:`~jaxreg.train.PopulationResult`.

  Returns:
    The :class:`~jaxreg.train.FitResult`; its summary is also in ``summary.json``,
    with ``compilations``: how many XLA programs the run compiled (or loaded
    from JAX's persistent cache) and how long that took.

  Examples:
    >>> config, _ = load_config('digits_mlp:smoke', [('optimizer.learning_rate', '0.003')])  # doctest: +SKIP
    >>> train_and_evaluate(config, 'runs/smoke').summary['test_accuracy']  # doctest: +SKIP
  """
  from jaxreg.populations import is_population, train_population  # a population's runner builds on this module

  validate_config(config)
  if is_population(config):
    return train_population(config, workdir, resume=resume, exit_on_second_interrupt=exit_on_second_interrupt)
  workdir = os.path.abspath(workdir)
  if is_primary_process():
    check_writable(workdir)
    RunLock(workdir).ensure_free()
    check_workdir(workdir, resolved_config(config.to_dict()), resume, clear=False)  # read-only; run() locks
  with count_compilations() as compilations:
    result = run(build(config), workdir, resume=resume, exit_on_second_interrupt=exit_on_second_interrupt)
  result.summary["compilations"] = compilations.as_dict()
  if is_primary_process() and result.summary.get("stop_signal") is None:
    write_json(os.path.join(workdir, "summary.json"), result.summary)
  return result


__all__ = ["Experiment", "RunOptions", "Steps", "build", "initial_state", "make_steps", "run", "steps_per_epoch",
           "train_and_evaluate"]
