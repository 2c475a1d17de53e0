"""Populations from configs: many members of one experiment trained as one vmapped program.

A config's ``population`` section turns a run into a population:

* ``size``: members per setting, with seeds ``train.seed``, ``train.seed + 1``, ...;
  member ``m`` with seed ``s`` trains exactly as ``--config.train.seed=s`` alone
  (initialization, dropout keys and data order; tested to 1e-5);
* ``bootstrap``: each member trains on its own bootstrap resample of the
  training split (bagging; the resample is drawn from the member's seed);
* ``sweep`` and ``sweep_mode``: members that differ in hyperparameters, every
  combination (``'grid'``) or the i-th value of each key (``'zip'``), each
  with the ``size`` seeds.

Every member's config is built on its own first (:func:`jaxreg.experiment.build`:
its values checked for real, its initial state made); the swept values then
reach the one compiled step as traced scalars: the step is built again
inside the vmapped program from the config with each swept key set to the
member's value (:func:`jaxreg.experiment.make_steps`). A key whose value
decides the program's structure or shapes (a layer size, a model name, an
on/off switch) cannot be traced: it is refused, with the command that runs
the settings one after another instead (``jaxreg sweep --sequential``).

Source: Goodfellow et al., Deep Learning, section 7.11 (bagging and other
ensemble methods); Breiman 1996 (bagging).
"""

import copy
import dataclasses
import itertools
import os
import platform
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxreg.compilation import count_compilations
from jaxreg.config import validate_config
from jaxreg.errors import CheckpointError, ConfigError
from jaxreg.experiment import (
    CHECKPOINT_SUBDIR,
    Experiment,
    check_data_fingerprint,
    check_workdir,
    check_writable,
    build,
    evaluation_variables,
    initial_state,
    make_steps,
    resolved_config,
    steps_per_epoch,
    stored_preprocessing,
    tensorboard_hooks,
)
from jaxreg.train import Checkpointer, MetricWriter, write_json
from jaxreg.train.ensemble import ensemble_metrics, squared_errors
from jaxreg.train.population import bootstrap_indices
from jaxreg.train.population_fit import PopulationResult, fit_population
from jaxreg.train.rundir import RunLock, StopOnSignal

SWEEPABLE_SECTIONS = ("model", "optimizer", "regularizers")
BOOTSTRAP_STREAM = 0x626F6F74  # "boot": member m's resample is drawn from fold_in(PRNGKey(its seed), this)


def swept_values(config: ml_collections.ConfigDict) -> dict[str, tuple]:
  """The sweep as ``{dotted key: values}``, in the order the config lists them.

  Examples:
    >>> config, _ = load_config('digits_mlp:smoke', [('population.sweep.optimizer.learning_rate', '[0.001,0.01]')])
    >>> swept_values(config)
    {'optimizer.learning_rate': (0.001, 0.01)}
  """

  def leaves(node, prefix):
    for key in node.keys():
      value, path = node[key], f"{prefix}{key}"
      if isinstance(value, ml_collections.ConfigDict):
        yield from leaves(value, path + ".")
      else:
        yield path, value

  swept = {}
  for key, values in leaves(config.population.sweep, ""):
    if not isinstance(values, (list, tuple)) or not values:
      raise ConfigError(f"population.sweep.{key} must be a non-empty list of values, e.g. "
                        f"--config.population.sweep.{key}=[0.001,0.01]; got {values!r}")
    swept[key] = tuple(values)
  return swept


def is_population(config: ml_collections.ConfigDict) -> bool:
  """Whether the config asks for a population: ``size > 1``, ``bootstrap`` or a sweep.

  Examples:
    >>> is_population(load_config('digits_mlp:smoke', [('population.size', '3')])[0])
    True
    >>> is_population(load_config('digits_mlp:smoke')[0])
    False
  """
  p = config.population
  return p.size != 1 or bool(p.bootstrap) or bool(swept_values(config))


def sweep_settings(config: ml_collections.ConfigDict) -> list[dict]:
  """The sweep's settings, ``[{dotted key: value}, ...]``: every combination (grid) or the i-th values (zip).

  Examples:
    >>> config, _ = load_config('digits_mlp:smoke', [('population.sweep.optimizer.learning_rate', '[0.001,0.01]')])
    >>> sweep_settings(config)
    [{'optimizer.learning_rate': 0.001}, {'optimizer.learning_rate': 0.01}]
  """
  swept = swept_values(config)
  mode = config.population.sweep_mode
  if mode not in ("grid", "zip"):
    raise ConfigError(f"population.sweep_mode must be 'grid' or 'zip', got {mode!r}")
  keys = list(swept)
  if mode == "zip":
    lengths = {key: len(values) for key, values in swept.items()}
    if len(set(lengths.values())) > 1:
      raise ConfigError(f"population.sweep_mode='zip' takes the i-th value of every key, so each list needs the "
                        f"same length; got {lengths}. Use sweep_mode='grid' for every combination")
    return [dict(zip(keys, values, strict=True)) for values in zip(*swept.values(), strict=True)]
  return [dict(zip(keys, values, strict=True)) for values in itertools.product(*swept.values())]


@dataclasses.dataclass(frozen=True)
class Member:
  """One member of a population: its seed, its swept values and its replicate index within its setting.

  Examples:
    >>> config, _ = load_config('digits_mlp:smoke', [('population.size', '2')])
    >>> population_members(config)[1]
    Member(seed=1, setting={}, replicate=1)
  """

  seed: int
  setting: dict
  replicate: int


def population_members(config: ml_collections.ConfigDict) -> list[Member]:
  """Every member: for each setting of the sweep, ``population.size`` seeds from ``train.seed``.

  Examples:
    >>> config, _ = load_config('digits_mlp:smoke', [('population.sweep.optimizer.learning_rate', '[0.001,0.01]'),
    ...                                              ('population.size', '2')])
    >>> [(m.seed, m.setting['optimizer.learning_rate']) for m in population_members(config)]
    [(0, 0.001), (1, 0.001), (0, 0.01), (1, 0.01)]
  """
  size = config.population.size
  if isinstance(size, bool) or not isinstance(size, int) or size < 1:
    raise ConfigError(f"population.size must be a positive integer (members per setting), got {size!r}")
  return [Member(seed=config.train.seed + r, setting=setting, replicate=r)
          for setting in sweep_settings(config) for r in range(size)]


def set_dotted(tree, dotted: str, value) -> None:
  """Sets ``tree.<dotted>`` in a ConfigDict or a plain dict, making the open sections' missing levels.

  Examples:
    >>> config = {'regularizers': {}}
    >>> set_dotted(config, 'regularizers.l2.alpha', 1e-4)
    >>> config
    {'regularizers': {'l2': {'alpha': 0.0001}}}
  """
  parts = dotted.split(".")
  node = tree
  for part in parts[:-1]:
    if part not in node:
      node[part] = ml_collections.ConfigDict() if isinstance(tree, ml_collections.ConfigDict) else {}
    node = node[part]
  if isinstance(node, ml_collections.ConfigDict) and parts[-1] in node:
    del node[parts[-1]]  # a swept value may change type (an int given for a float)
  node[parts[-1]] = value


def with_values(sections, values: dict):
  """A copy of a config (``ConfigDict`` or plain dict) with ``values`` (``{dotted key: value}``) set.

  Examples:
    >>> with_values({'optimizer': {'learning_rate': 0.1}}, {'optimizer.learning_rate': 0.5})
    {'optimizer': {'learning_rate': 0.5}}
  """
  copied = copy.deepcopy(sections)
  for dotted, value in values.items():
    set_dotted(copied, dotted, value)
  return copied


def member_config(config: ml_collections.ConfigDict, member: Member) -> ml_collections.ConfigDict:
  """The config of ``member`` trained alone: its seed and values set, the ``population`` section off.

  Examples:
    >>> config, _ = load_config('digits_mlp:smoke', [('population.sweep.optimizer.learning_rate', '[0.001,0.01]')])
    >>> alone = member_config(config, population_members(config)[1])
    >>> alone.optimizer.learning_rate, alone.population.size
    (0.01, 1)
  """
  alone = with_values(config, member.setting)
  alone.train.seed = member.seed
  alone.population = ml_collections.ConfigDict(dict(size=1, bootstrap=False, sweep=ml_collections.ConfigDict(),
                                                    sweep_mode="grid"))
  return alone


@dataclasses.dataclass(frozen=True)
class Population:
  """A population built from a config: what :func:`run_population` trains.

  Attributes:
    config: the resolved config, population section included (``config.json``).
    experiment: the first member's experiment (data, model, early stopping, options).
    members: each member's seed and swept values.
    states: the members' initial states, stacked.
    train_step: one member's step, or with a sweep its factory ``fn(h) -> step``.
    eval_step: one member's evaluation step, or its factory.
    hyperparameters: ``{dotted key: (members,) float32}`` of the traced sweep, or ``None``.
    resamples: ``(members, n)`` bootstrap indices, or ``None``.

  Examples:
    >>> population = build_population(load_config('digits_ensembles:smoke')[0])  # doctest: +SKIP
    >>> len(population.members)  # doctest: +SKIP
  """

  config: dict
  experiment: Experiment
  members: list
  states: object
  train_step: object
  eval_step: object
  hyperparameters: dict | None
  resamples: object


def _refuse_untraceable(config, swept: dict) -> None:
  """Keys outside the step's sections, or with values other than numbers, cannot be vmapped."""
  how = ("run the settings one after another instead: jaxreg sweep --sequential --config ... "
         "(each a run of its own)")
  for key, values in swept.items():
    if key.split(".")[0] not in SWEEPABLE_SECTIONS:
      raise ConfigError(f"population.sweep.{key}: only model, optimizer and regularizers values can differ "
                        f"between the members of one compiled program ({key.split('.')[0]} settings change the "
                        f"data or the loop); {how}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
      raise ConfigError(f"population.sweep.{key}={list(values)}: only numbers can differ between the members of "
                        f"one compiled program (a name, a switch or a list changes the program itself); {how}")


def _traced_steps(experiment: Experiment, swept: Sequence[str]):
  """Factories ``fn(h) -> step`` building the member's step with ``h[key]`` (traced) at every swept key."""
  base, dataset, placement = experiment.config, experiment.dataset, experiment.placement
  per_epoch = steps_per_epoch(dataset, experiment.options)

  def steps_for(h):
    return make_steps(with_values(base, {key: h[key] for key in swept}), dataset, placement,
                      steps_per_epoch=per_epoch)

  return (lambda h: steps_for(h).train_step), (lambda h: steps_for(h).eval_step)


def _check_traceable(experiment: Experiment, swept: Sequence[str]) -> None:
  """Traces the step with each swept key alone traced (shapes only, nothing runs); refuses a key that fails."""
  train = experiment.dataset.train
  batch = {"x": train.x[:2], "y": train.y[:2]}
  scalar = jax.ShapeDtypeStruct((), jnp.float32)
  for key in swept:
    step_for, _ = _traced_steps(experiment, [key])

    def one_step(value, key=key, step_for=step_for):
      return step_for({key: value})(experiment.initial_state, batch)

    try:
      jax.eval_shape(one_step, scalar)
    except Exception as e:  # noqa: BLE001  whatever the factories or the model raise on a traced value
      first = str(e).splitlines()[0] if str(e) else type(e).__name__
      raise ConfigError(
          f"population.sweep.{key} cannot differ between the members of one compiled program: building the step "
          f"with its value traced fails ({type(e).__name__}: {first[:200]}). Its value decides the program's "
          "structure; run the settings one after another: jaxreg sweep --sequential --config ...") from None


def _check_supported(config: ml_collections.ConfigDict) -> None:
  """Settings a population does not take yet, refused with what to change."""
  refused = {
      "parallel.mode": (config.parallel.mode != "none", "a population runs its members vmapped on one device; "
                        "set parallel.mode=none"),
      "train.after_early_stopping": (config.train.after_early_stopping != "none",
                                     "a population does not refit on train + validation; set it to none"),
      "train.mc_dropout_samples": (config.train.mc_dropout_samples != 0, "not for populations; set it to 0"),
      "train.robust_eval.eps": (bool(config.train.robust_eval.eps),
                                "evaluate a member's run alone (jaxreg eval); set it to []"),
  }
  for key, (bad, why) in refused.items():
    if bad:
      raise ConfigError(f"{key}: {why}")


def _check_settings(first: Experiment, members: list) -> None:
  """Builds every other setting's model, optimizer and regularizers from its real values (nothing is compiled)."""
  per_epoch = steps_per_epoch(first.dataset, first.options)
  checked = {tuple(sorted(members[0].setting.items()))}
  for member in members:
    key = tuple(sorted(member.setting.items()))
    if key in checked:
      continue
    checked.add(key)
    try:
      make_steps(with_values(first.config, member.setting), first.dataset, first.placement, steps_per_epoch=per_epoch)
    except ConfigError as e:
      raise ConfigError(f"population.sweep setting {member.setting}: {e}") from None


def _initial_states(first: Experiment, members: list, swept: Sequence[str], hyperparameters):
  """Every member's initial state, the one ``build`` makes for its seed and values, as one compiled program."""
  per_epoch = steps_per_epoch(first.dataset, first.options)
  keys = jnp.stack([jax.random.PRNGKey(m.seed) for m in members])

  def init(rng, h):  # the member's values, traced: its injected learning rate among them
    sections = with_values(first.config, {key: h[key] for key in swept})
    steps = make_steps(sections, first.dataset, first.placement, steps_per_epoch=per_epoch)
    return initial_state(steps, rng, first.dataset, early_stopping_mode=first.early_stopping.mode,
                         data_init_examples=first.config["train"]["weight_norm_data_init"])

  return jax.jit(jax.vmap(init))(keys, hyperparameters)


def build_population(config: ml_collections.ConfigDict) -> Population:
  """Builds every member of the config's population (checking each one's values for real); writes nothing.

  The first member's config is built whole (:func:`jaxreg.experiment.build`:
  data, model, checks against the data); every other setting's sections
  are built from its real values, and all initial states come from one
  compiled program, each the state its run alone starts from.

  Raises:
    ConfigError: for a bad population section, a swept key that cannot be
      traced (with the sequential alternative), or any member's bad value.

  Examples:
    >>> population = build_population(load_config('digits_ensembles:smoke')[0])  # doctest: +SKIP
    >>> result = run_population(population, 'runs/ensemble')  # doctest: +SKIP
  """
  validate_config(config)
  _check_supported(config)
  members = population_members(config)
  swept = swept_values(config)
  _refuse_untraceable(config, swept)
  first = build(member_config(config, members[0]))
  _check_settings(first, members)
  train_step, eval_step, hyperparameters = first.train_step, first.eval_step, None
  if swept:
    _check_traceable(first, list(swept))
    train_step, eval_step = _traced_steps(first, list(swept))
    hyperparameters = {key: jnp.asarray([m.setting[key] for m in members], jnp.float32) for key in swept}
  resamples = None
  if config.population.bootstrap:
    n = len(first.dataset.train.y)
    resamples = jnp.stack([bootstrap_indices(jax.random.fold_in(jax.random.PRNGKey(m.seed), BOOTSTRAP_STREAM), n)
                           for m in members])
  return Population(config=resolved_config(config.to_dict()), experiment=first, members=members,
                    states=_initial_states(first, members, list(swept), hyperparameters), train_step=train_step,
                    eval_step=eval_step, hyperparameters=hyperparameters, resamples=resamples)


def member_logits_fn(experiment: Experiment):
  """``fn(states, x) -> (members, n, outputs)``: every member's evaluation-mode outputs, in batches."""

  @jax.jit
  def predict(states, xb):
    def one(state):
      return experiment.model.apply(evaluation_variables(experiment, state), xb, train=False, rng=None)[0]

    return jax.vmap(one)(states)

  size = experiment.options.eval_batch_size

  def logits(states, x):
    x = np.asarray(x)
    return np.concatenate([np.asarray(predict(states, x[i:i + size])) for i in range(0, len(x), size)], axis=1)

  return logits


def _ensemble(population: Population, result: PopulationResult) -> dict | None:
  """The test split's ensemble of the kept members: three combinations (classification) or the mean (regression)."""
  experiment = population.experiment
  test = experiment.dataset.test
  if test is None or population.hyperparameters is not None:
    return None  # the members of a sweep are different models, not an ensemble
  outputs = member_logits_fn(experiment)(result.states, test.x)
  if experiment.dataset.task == "classification":
    report = ensemble_metrics(outputs, test.y)
    report.pop("members")
    return report
  if experiment.dataset.task == "regression":
    errors = squared_errors(outputs, test.y.reshape(outputs.shape[1:]))
    return {"mean_prediction": {"loss": errors["average"]}}
  return None


def population_summary(population: Population, result: PopulationResult) -> dict:
  """``summary.json`` of a population: the members' metrics (lists), the ensemble's, and the run's facts.

  Examples:
    >>> summary = population_summary(population, fit_population(...))  # doctest: +SKIP
    >>> summary['ensemble']['mean_probabilities']['accuracy']  # doctest: +SKIP
  """
  members = population.members
  s = result.summary
  member_metrics = {k: v for k, v in s.items() if k.startswith(("val_", "test_")) and isinstance(v, list)}
  summary = {
      "population": {
          "members": len(members), "size": population.config["population"]["size"],
          "bootstrap": population.resamples is not None, "swept": list(population.hyperparameters or {}),
          "sweep_mode": population.config["population"]["sweep_mode"],
          "seeds": [m.seed for m in members], "settings": [m.setting for m in members],
      },
      "members": {**member_metrics, "best_epoch": result.best_epochs, "stopped_epoch": result.stopped_epochs},
      "diverged": result.diverged,
      **{k: v for k, v in s.items() if k not in member_metrics and "_ensemble_" not in k},
  }
  ensemble = _ensemble(population, result)
  if ensemble is not None:
    summary["ensemble"] = ensemble
    headline = ensemble.get("mean_probabilities") or ensemble.get("mean_prediction")
    summary.update({f"test_{k}": v for k, v in headline.items()})  # what `jaxreg train` prints
  dataset = population.experiment.dataset
  summary.update(dataset=dataset.describe(), device=str(jax.devices()[0].device_kind), backend=jax.default_backend(),
                 jax_version=jax.__version__, python=platform.python_version())
  return summary


def describe_population(summary: dict) -> str:
  """A population's summary as a few lines: each member's setting, seed and test (or validation) metrics, the ensemble's.

  Examples:
    >>> print(describe_population(json.load(open('runs/ensemble/summary.json'))))  # doctest: +SKIP
  """
  population, members = summary["population"], summary["members"]
  split = "test" if "test_loss" in members else "val"
  metrics = [k for k in (f"{split}_accuracy", f"{split}_loss") if k in members]
  lines = [f"{population['members']} members" + (" on bootstrap resamples" if population["bootstrap"] else "")
           + (f", sweeping {', '.join(population['swept'])}" if population["swept"] else "") + ":"]
  diverged = set(summary.get("diverged", []))
  for m, (seed, setting) in enumerate(zip(population["seeds"], population["settings"], strict=True)):
    values = " ".join(f"{k}={members[k][m]:.4f}" for k in metrics if members[k][m] is not None)
    where = " ".join(f"{k}={v}" for k, v in setting.items())
    lines.append(f"  member {m:>2} seed {seed:<3} {where} {values} best_epoch={members['best_epoch'][m]}"
                 + (" (diverged)" if m in diverged else ""))
  for name, report in summary.get("ensemble", {}).items():
    lines.append(f"  ensemble ({name}): " + " ".join(f"test_{k}={v:.4f}" for k, v in report.items()))
  return "\n".join(lines)


def run_population(population: Population, workdir: str, *, resume: bool = False,
                   exit_on_second_interrupt: bool = False) -> PopulationResult:
  """Trains a built population in ``workdir``: ``config.json``, ``metrics.jsonl``, ``checkpoints/``, ``summary.json``.

  The work directory is handled as :func:`jaxreg.experiment.run` handles a
  single run's: refused if it holds a run (unless ``resume``), locked, the
  data's fingerprint checked on a resume; a signal stops at the epoch's end
  with a checkpoint. Each checkpoint holds every member's state and best
  state, so a resume goes on with every member's early stopping intact.

  Returns:
    The :class:`~jaxreg.train.PopulationResult`; its summary (the members'
    metrics, the ensemble's, the settings) is also in ``summary.json``.

  Examples:
    >>> result = run_population(build_population(load_config('digits_ensembles:smoke')[0]), 'runs/e')  # doctest: +SKIP
  """
  workdir = os.path.abspath(workdir)
  if resume and not os.path.isdir(workdir):
    raise CheckpointError(f"nothing to resume: {workdir} does not exist; start the run without --resume")
  with RunLock(workdir):
    changes = check_workdir(workdir, population.config, resume)
    if "optimizer.learning_rate" in changes:
      raise ConfigError("a population resumes with the learning rates it started with; sweep "
                        "optimizer.learning_rate in a new run instead")
    experiment = population.experiment
    check_data_fingerprint(workdir, experiment.raw_dataset or experiment.dataset, resume)
    experiment = stored_preprocessing(experiment, workdir, resume, True)
    return _run_locked(dataclasses.replace(population, experiment=experiment), workdir, resume,
                       exit_on_second_interrupt)


def _run_locked(population: Population, workdir: str, resume: bool, exit_at_once: bool) -> PopulationResult:
  experiment, options = population.experiment, population.experiment.options
  os.makedirs(workdir, exist_ok=True)
  write_json(os.path.join(workdir, "config.json"), population.config, exact=True)
  checkpointer = None
  if options.checkpoint_every > 0:
    checkpointer = Checkpointer(os.path.join(workdir, CHECKPOINT_SUBDIR), keep=options.checkpoint_keep, monitor=None)
  stopper = StopOnSignal(exit_at_once=exit_at_once)
  wall = time.perf_counter()
  ensemble_each_epoch = population.hyperparameters is None and experiment.dataset.task == "classification"
  result = fit_population(
      population.states, train_step=population.train_step, eval_step=population.eval_step,
      dataset=experiment.dataset, batch_size=options.batch_size, epochs=options.epochs,
      seeds=[m.seed for m in population.members], resamples=population.resamples,
      hyperparameters=population.hyperparameters, early_stopping=experiment.early_stopping,
      restore_best=options.restore_best, eval_batch_size=options.eval_batch_size, checkpointer=checkpointer,
      checkpoint_every=max(options.checkpoint_every, 1), resume=resume, writer=MetricWriter(workdir),
      progress=options.progress, hooks=[stopper, *tensorboard_hooks(workdir, options)],
      batch_transform=experiment.batch_transform,
      member_logits=member_logits_fn(experiment) if ensemble_each_epoch else None)
  summary = population_summary(population, result)
  summary.update(wall_seconds=time.perf_counter() - wall, resumed=resume)
  if stopper.signal_number is not None:
    summary["stop_signal"] = stopper.signal_number
  else:
    write_json(os.path.join(workdir, "summary.json"), summary)
  result.summary = summary
  return result


def train_population(config: ml_collections.ConfigDict, workdir: str, *, resume: bool = False,
                     exit_on_second_interrupt: bool = False) -> PopulationResult:
  """Builds the config's population and trains it in ``workdir``: :func:`build_population` then :func:`run_population`.

  ``jaxreg train`` calls this for a config with a ``population`` section set.

  Examples:
    >>> config = load_config('digits_mlp:smoke', [('population.size', '5')])[0]  # doctest: +SKIP
    >>> result = train_population(config, '/tmp/pop')  # doctest: +SKIP
    >>> result.summary['ensemble']['mean_probabilities']['accuracy']  # doctest: +SKIP
  """
  workdir = os.path.abspath(workdir)
  validate_config(config)
  check_writable(workdir)
  RunLock(workdir).ensure_free()
  check_workdir(workdir, resolved_config(config.to_dict()), resume, clear=False)
  with count_compilations() as compilations:
    result = run_population(build_population(config), workdir, resume=resume,
                            exit_on_second_interrupt=exit_on_second_interrupt)
  result.summary["compilations"] = compilations.as_dict()
  if result.summary.get("stop_signal") is None:
    write_json(os.path.join(workdir, "summary.json"), result.summary)
  return result

__all__ = [
    "Member",
    "Population",
    "build_population",
    "describe_population",
    "is_population",
    "member_config",
    "population_members",
    "population_summary",
    "run_population",
    "set_dotted",
    "sweep_settings",
    "swept_values",
    "train_population",
    "with_values",
]
