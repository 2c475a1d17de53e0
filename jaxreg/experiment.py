"""``train_and_evaluate``: run one config end to end in a work directory.

This is the only place (besides ``cli.py``) that reads a config: it unpacks
each section into the keyword arguments of one factory.
"""

import inspect
import json
import os
import platform
import shutil

import jax
import ml_collections
import optax

from jaxreg.compilation import count_compilations
from jaxreg.config import config_differences, validate_config
from jaxreg.data import make_dataset
from jaxreg.errors import CheckpointError, ConfigError
from jaxreg.models import make_model
from jaxreg.optim import make_optimizer
from jaxreg.parallel import is_primary_process, make_placement
from jaxreg.regularizers import make_regularizers
from jaxreg.regularizers.factory import UPDATE_REGULARIZERS
from jaxreg.train import (
    Checkpointer,
    EarlyStopping,
    MetricWriter,
    create_train_state,
    fit,
    make_eval_step,
    make_objective,
    make_train_step,
    write_json,
)
from jaxreg.train.diagnostics import activation_sparsity
from jaxreg.train.loop import FitResult
from jaxreg.train.refit import check_strategy, refit

CHECKPOINT_SUBDIR = "checkpoints"
REFIT_CHECKPOINT_SUBDIR = "checkpoints_refit"
REFIT_METRICS = "metrics_refit.jsonl"
# Keys that may change between an interrupted run and its resume.
RESUMABLE_CHANGES = (
    "train.epochs", "train.progress_bar", "train.log_grad_norm", "train.diagnostics",
    "train.early_stopping.patience", "parallel.mode", "parallel.num_devices",
)


def _check_workdir(workdir: str, config_dict: dict, resume: bool) -> None:
  saved_config = os.path.join(workdir, "config.json")
  has_run = os.path.exists(saved_config) or os.path.isdir(os.path.join(workdir, CHECKPOINT_SUBDIR))
  if not resume:
    if has_run:
      raise CheckpointError(
          f"{workdir} already holds a run; pass --resume to continue it, or choose a new --workdir "
          "(nothing was overwritten)"
      )
    return
  if not os.path.exists(saved_config):
    raise CheckpointError(
        f"nothing to resume in {workdir}: it has no config.json; start the run without --resume"
    )
  with open(saved_config) as f:
    saved = json.load(f)
  changed = [k for k in config_differences(saved, config_dict) if k not in RESUMABLE_CHANGES]
  if changed:
    raise ConfigError(
        f"--resume with a config that differs from the run in {workdir} at: {', '.join(changed)}. "
        f"Resume with the same config (only {', '.join(RESUMABLE_CHANGES)} may change)"
    )


def _refit(strategy, first, initial_state, dataset, batch_size, config, workdir, steps) -> FitResult:
  """Phase two: train on train + validation (see :mod:`jaxreg.train.refit`); its files get a ``_refit`` suffix."""
  primary = is_primary_process()
  metrics_path = os.path.join(workdir, REFIT_METRICS)
  checkpoint_dir = os.path.join(workdir, REFIT_CHECKPOINT_SUBDIR)
  if primary:  # a resumed run redoes phase two from the early-stopped parameters
    if os.path.exists(metrics_path):
      os.remove(metrics_path)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
  checkpointer = Checkpointer(checkpoint_dir, keep=1) if config.checkpoint.every > 0 else None
  result, report = refit(
      strategy, first, initial_state=initial_state, dataset=dataset, batch_size=batch_size,
      max_epochs=config.train.epochs, writer=MetricWriter(workdir, REFIT_METRICS) if primary else None,
      checkpointer=checkpointer, checkpoint_every=10**9, **steps,
  )
  summary = dict(first.summary)
  summary.update({k: result.summary[k] for k in ("test_loss", "test_accuracy") if k in result.summary})
  summary["refit"] = report
  return FitResult(state=result.state, history=first.history, summary=summary)


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, resume: bool = False
) -> FitResult:
  """Trains and evaluates the experiment ``config``, writing its artifacts to ``workdir``.

  Writes ``config.json`` (the resolved config), ``metrics.jsonl`` (a line per
  epoch), ``checkpoints/`` (Orbax; the last ``checkpoint.keep`` epochs and
  the best one) and, at the end, ``summary.json``. With
  ``train.after_early_stopping`` it then trains on train + validation and
  writes ``metrics_refit.jsonl`` and ``checkpoints_refit/``; the summary's
  test metrics are then the refit model's, and ``summary['refit']`` says what
  happened (with the early-stopped model's test metrics).

  Everything is built (and every config error raised) before the first step.

  ``parallel.mode`` runs the same steps on one device (``'none'``), under
  ``pmap`` or on a sharded mesh (see :mod:`jaxreg.parallel`). In a
  multi-process run (after :func:`jaxreg.parallel.initialize_distributed`)
  every process calls this with the same config and work directory; process
  0 writes ``config.json``, ``metrics.jsonl`` and ``summary.json``, and the
  checkpoints hold the single-device view of the state, so they restore in
  any mode.

  Args:
    config: a config from :func:`jaxreg.config.load_config` or ``get_config()``.
    workdir: the run's directory; it must not hold a run unless ``resume``.
    resume: continue the run in ``workdir`` from its latest checkpoint.

  Returns:
    The :class:`~jaxreg.train.FitResult`; its summary is also in ``summary.json``,
    with ``compilations``: how many XLA programs the run compiled (or loaded
    from JAX's persistent cache) and how long that took.
  """
  with count_compilations() as compilations:
    result = _train_and_evaluate(config, workdir, resume=resume)
  result.summary["compilations"] = compilations.as_dict()
  if is_primary_process():
    write_json(os.path.join(os.path.abspath(workdir), "summary.json"), result.summary)
  return result


def _train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *, resume: bool = False
) -> FitResult:
  """The body of :func:`train_and_evaluate`."""
  validate_config(config)
  config_dict = config.to_dict()
  workdir = os.path.abspath(workdir)
  data_cfg = dict(config.data)
  batch_size = data_cfg.pop("batch_size")
  eval_batch_size = data_cfg.pop("eval_batch_size")
  on_device = data_cfg.pop("on_device")
  es_cfg = dict(config.train.early_stopping)
  restore_best = es_cfg.pop("restore_best")

  # Build everything that can fail on a bad config before touching the disk.
  model_cfg = config.model.to_dict()
  optimizer_cfg = config.optimizer.to_dict()
  make_optimizer(**optimizer_cfg, steps_per_epoch=1)  # a config error stops the run here
  regularizer_cfg = config.regularizers.to_dict()
  if "prox_l1" in regularizer_cfg and (optimizer_cfg.get("schedule") or {}).get("name") == "plateau":
    raise ConfigError(
        "regularizers.prox_l1 thresholds by the learning rate, which a plateau schedule changes "
        "inside the optimizer state; use a step or epoch schedule, or weight_decay / l1 instead"
    )
  # A config error stops the run here (the class count is a stand-in until the data is loaded).
  make_regularizers(
      steps_per_epoch=1, learning_rate=optimizer_cfg["learning_rate"], **regularizer_cfg
  )
  early_stopping = EarlyStopping(**es_cfg)
  placement = make_placement(**config.parallel)
  placement.check_batch_size(batch_size)
  primary = is_primary_process()
  after_early_stopping = config.train.after_early_stopping
  check_strategy(after_early_stopping)
  if config.checkpoint.every < 0 or config.checkpoint.keep < 1:
    raise ConfigError(
        "checkpoint.every must be >= 0 (0 turns checkpoints off) and checkpoint.keep >= 1, "
        f"got every={config.checkpoint.every}, keep={config.checkpoint.keep}"
    )
  if primary:
    _check_workdir(workdir, config_dict, resume)
  dataset = make_dataset(**data_cfg)
  if after_early_stopping != "none" and dataset.val is None:
    raise ConfigError(
        f"train.after_early_stopping={after_early_stopping!r} trains on the validation split afterwards, "
        "but the dataset has none; set data.val_fraction > 0"
    )
  model = make_model(num_outputs=dataset.num_outputs, axis_name=placement.axis_name, **model_cfg)
  steps_per_epoch = max(len(dataset.train.y) // batch_size, 1)
  optimizer = make_optimizer(**optimizer_cfg, steps_per_epoch=steps_per_epoch)
  regularizers = make_regularizers(
      steps_per_epoch=steps_per_epoch,
      learning_rate=optimizer.learning_rate,
      **regularizer_cfg,
  )
  tx = optimizer.tx
  if any(name in regularizer_cfg for name in UPDATE_REGULARIZERS):
    tx = optax.chain(tx, regularizers.update)
  base_objective = make_objective(dataset.task, model.apply, task_weights=model_cfg.get("tasks"))

  rng = jax.random.PRNGKey(config.train.seed)
  state = create_train_state(
      model, tx, rng=rng, sample_x=dataset.train.x[:1], early_stopping_mode=early_stopping.mode
  )
  os.makedirs(workdir, exist_ok=True)
  if primary:
    write_json(os.path.join(workdir, "config.json"), config_dict)
  checkpointer = None
  if config.checkpoint.every > 0:
    checkpointer = Checkpointer(
        os.path.join(workdir, CHECKPOINT_SUBDIR), keep=config.checkpoint.keep,
        monitor=early_stopping.monitor, mode=early_stopping.mode,
    )
  train_objective = regularizers.objective(base_objective)
  grad_norm = config.train.log_grad_norm
  axis_name = placement.axis_name
  steps = dict(
      train_step=make_train_step(train_objective, tx, grad_norm=grad_norm, axis_name=axis_name),
      diagnostic_step=(
          make_train_step(train_objective, tx, grad_norm=grad_norm, diagnostics=True, axis_name=axis_name)
          if config.train.diagnostics else None
      ),
      eval_step=make_eval_step(
          base_objective, params_fn=optimizer.evaluation_params, axis_name=axis_name
      ),
      eval_batch_size=eval_batch_size,
      shuffle_seed=config.train.seed,
      progress=config.train.progress_bar and primary,
      data_on_device=on_device,
      optimizer=optimizer,
      placement=placement,
  )
  result = fit(
      state,
      dataset=dataset,
      batch_size=batch_size,
      epochs=config.train.epochs,
      early_stopping=early_stopping,
      restore_best=restore_best,
      checkpointer=checkpointer,
      checkpoint_every=max(config.checkpoint.every, 1),
      resume=resume,
      writer=MetricWriter(workdir) if primary else None,
      **steps,
  )
  if after_early_stopping != "none":
    result = _refit(after_early_stopping, result, state, dataset, batch_size, config, workdir, steps)
  sparsity_split = dataset.test if dataset.test is not None else dataset.val
  if sparsity_split is not None and "capture_intermediates" in inspect.signature(model.apply).parameters:
    result.summary["activation_sparsity"] = activation_sparsity(
        model.apply, {"params": result.state.params, **result.state.model_state}, sparsity_split.x
    )
  result.summary.update(
      dataset=dataset.describe(),
      device=str(jax.devices()[0].device_kind),
      backend=jax.default_backend(),
      jax_version=jax.__version__,
      python=platform.python_version(),
      resumed=resume,
      parallel={"mode": placement.mode, "num_devices": placement.num_devices, "processes": jax.process_count()},
  )
  return result
