"""The base experiment config, its validation, and loading configs with overrides.

Every experiment config has the same top-level sections, so any field can be
overridden as ``--config.<section>.<field>=value``:

* ``data``: ``make_dataset`` arguments plus ``batch_size``, ``eval_batch_size``, ``on_device``.
* ``model``: ``make_model`` arguments (``name`` and the model's own).
* ``optimizer``: ``make_optimizer`` arguments (``name``, ``learning_rate``, the optimizer's own).
* ``regularizers``: ``{name: {argument: value}}``; an absent name is off.
* ``train``: ``seed``, ``epochs``, ``early_stopping``, ``progress_bar``, ``tensorboard``,
  ``log_every_steps``, ``tensorboard_histograms`` (:mod:`jaxreg.train.tensorboard`),
  ``compute_dtype`` (``'float32'`` or ``'bfloat16'``: mixed precision), ``log_grad_norm``,
  ``diagnostics`` (update-to-weight ratios and gradient norm of each epoch's last step),
  ``after_early_stopping`` (``'none'``, ``'retrain_steps'``, ``'retrain_epochs'`` or
  ``'continue'``: train on train + validation afterwards, see :mod:`jaxreg.train.refit`),
  ``weight_norm_data_init`` (``n > 0``: the weight-normalized layers' data-dependent
  initialization on the first ``n`` training examples, :func:`jaxreg.models.weight_norm_data_init`),
  ``mc_dropout_samples`` (``k > 0``: the summary adds the test accuracy of the mean of
  ``k`` sampled sub-networks, :func:`jaxreg.models.mc_dropout_predict`), ``robust_eval``
  (``attack``, ``eps``, ``steps``, ``step_size``, ``clip``: with ``eps`` listed, the summary
  adds the test accuracy under that attack, :func:`jaxreg.train.robust.robust_accuracy`).
* ``checkpoint``: ``every`` (0 turns checkpoints off), ``keep``.
* ``parallel``: ``mode`` (``'none'``, ``'pmap'`` or ``'sharded'``: data-parallel over
  ``num_devices`` devices, all by default; see :mod:`jaxreg.parallel`).
* ``population``: ``size`` (members per setting, seeds ``train.seed``, ``train.seed + 1``, ...),
  ``bootstrap`` (each member trains on its own bootstrap resample: bagging), ``sweep``
  (a tree of the config's keys, each leaf a list of values: ``sweep.optimizer.learning_rate =
  [1e-3, 1e-2]``, or :func:`sweep_over` of dotted keys) and ``sweep_mode`` (``'grid'`` or
  ``'zip'``). Any of them set, the run trains every member in one vmapped program
  (:mod:`jaxreg.populations`).

``model``, ``optimizer`` and ``regularizers`` are open: their keys depend on
the chosen name and are checked by the factories. The other sections are
closed: an unknown key is an error.
"""

import ast
import importlib.util
import inspect
import json
import math
import os
from typing import Any

import ml_collections
from ml_collections import config_dict

from jaxreg.errors import ConfigError

OPEN_SECTIONS = ("model", "optimizer", "regularizers")
SWEEP = ("population", "sweep")  # an open tree inside a closed section: its keys are the config's own


def base_config() -> ml_collections.ConfigDict:
  """The defaults every experiment config starts from (``get_config`` updates them)."""
  c = ml_collections.ConfigDict()
  c.data = ml_collections.ConfigDict(dict(
      name="digits",
      path=config_dict.placeholder(str),
      task="classification",
      num_classes=config_dict.placeholder(int),
      seed=0,
      val_fraction=0.1,
      test_fraction=0.2,
      batch_size=128,
      eval_batch_size=1024,
      on_device="auto",
      sequence_length=config_dict.placeholder(int),
      num_examples=config_dict.placeholder(int),
      example_shape=config_dict.placeholder(tuple),  # e.g. (8, 8, 1): digits as images
      upsample=1,  # enlarge images by this factor (bilinear)
      train_fraction=1.0,  # train on this share of the training split (a small-data experiment)
      augment=(),  # [{'name': 'shift', 'max_shift': 4}, ...]: jaxreg.augment.make_augmentation
      preprocess="none",  # 'standardize', 'pca_whiten', 'zca_whiten': fitted on the training split
      preprocess_eps=1e-2,
  ))
  c.model = ml_collections.ConfigDict(dict(
      name="mlp",
      hidden_sizes=(256, 256),
      activation="relu",
      dropout_rate=0.0,
      kernel_init="lecun_normal",
  ))
  c.optimizer = ml_collections.ConfigDict(dict(name="adam", learning_rate=1e-3))
  c.regularizers = ml_collections.ConfigDict()
  c.train = train_defaults()
  c.checkpoint = ml_collections.ConfigDict(dict(every=1, keep=3))
  c.parallel = ml_collections.ConfigDict(dict(mode="none", num_devices=config_dict.placeholder(int)))
  c.population = population_defaults()
  return c


def train_defaults() -> ml_collections.ConfigDict:
  """The ``train`` section's defaults: the loop, what it logs, early stopping, evaluation extras."""
  return ml_collections.ConfigDict(dict(
      seed=0,
      epochs=50,
      progress_bar=True,  # a bar on a terminal or in a notebook; one line per epoch in a log file
      tensorboard=True,  # event files in WORKDIR/tensorboard beside metrics.jsonl (jaxreg.train.tensorboard)
      log_every_steps=0,  # > 0: TensorBoard also gets the training metrics of every N-th step
      tensorboard_histograms=False,  # TensorBoard also gets a histogram of every parameter array per epoch
      compute_dtype="float32",  # 'bfloat16': the model computes in bf16; parameters and the loss stay float32
      log_grad_norm=False,
      diagnostics=True,
      mc_dropout_samples=0,  # > 0: also report the test accuracy of Monte-Carlo dropout with this many samples
      weight_norm_data_init=0,  # > 0: Salimans and Kingma's data-dependent init on this many training examples
      # eps non-empty: the summary adds the test accuracy under this attack (jaxreg.train.robust)
      robust_eval=ml_collections.ConfigDict(dict(
          attack="pgd",
          eps=(),
          steps=10,
          step_size=config_dict.placeholder(float),
          clip=config_dict.placeholder(tuple),  # None: the data's valid range where known ((0, 1) for digits)
      )),
      after_early_stopping="none",
      early_stopping=ml_collections.ConfigDict(dict(
          monitor="val_loss",
          mode="min",
          patience=config_dict.placeholder(int),
          min_delta=0.0,
          restore_best=True,
      )),
  ))


def population_defaults() -> ml_collections.ConfigDict:
  """The ``population`` section's defaults: one member, no bootstrap, no sweep (a single run)."""
  return ml_collections.ConfigDict(dict(
      size=1,  # members per setting of the sweep, seeds train.seed, train.seed + 1, ...
      bootstrap=False,  # each member trains on its own bootstrap resample of the training split (bagging)
      sweep=ml_collections.ConfigDict(),  # e.g. {'optimizer': {'learning_rate': [1e-3, 1e-2]}}: see sweep_over
      sweep_mode="grid",  # 'grid': every combination of the swept values; 'zip': the i-th value of each
  ))


def sweep_over(values: dict) -> ml_collections.ConfigDict:
  """A ``population.sweep`` tree from dotted config keys: ``{'optimizer.learning_rate': [1e-3, 1e-2]}``.

  ``ConfigDict`` keys cannot hold dots, so a sweep is stored as the
  config's own tree with a list of values at each swept key.

  Examples:
    >>> config.population.sweep = sweep_over({'optimizer.learning_rate': [1e-3, 1e-2],
    ...                                        'regularizers.l2.alpha': [0.0, 1e-4]})  # doctest: +SKIP
  """
  tree = ml_collections.ConfigDict()
  for dotted, swept in values.items():
    node, parts = tree, str(dotted).split(".")
    if not all(parts):
      raise ConfigError(f"population.sweep: malformed key {dotted!r}; write it as 'section.key', "
                        "e.g. 'optimizer.learning_rate'")
    for part in parts[:-1]:
      if part not in node:
        node[part] = ml_collections.ConfigDict()
      node = node[part]
    node[parts[-1]] = tuple(swept) if isinstance(swept, (list, tuple)) else swept
  return tree


def _number_and_sequence(current, value) -> bool:
  """Whether one of ``current`` and ``value`` is a number and the other a list or tuple."""
  def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)

  def is_sequence(v):
    return isinstance(v, (list, tuple))

  return (is_number(current) and is_sequence(value)) or (is_sequence(current) and is_number(value))


def _type_name(value: Any) -> str:
  return type(value).__name__


def _check_against(config: ml_collections.ConfigDict, reference: ml_collections.ConfigDict, prefix: str) -> None:
  """Checks that a closed section has only the reference's keys, with compatible types."""
  for key in config.keys():
    path = f"{prefix}.{key}"
    if tuple(path.split(".")) == SWEEP:
      if not isinstance(config[key], ml_collections.ConfigDict):
        raise ConfigError(f"{path} must be a tree of config keys with lists of values, e.g. "
                          f"--config.{path}.optimizer.learning_rate=[1e-3,1e-2]; got {config[key]!r}")
      continue  # its keys are the config's own: jaxreg.populations checks them
    if key not in reference:
      raise ConfigError(
          f"unknown config key {path!r}; valid keys in {prefix!r}: {', '.join(sorted(reference.keys()))}"
      )
    value, ref = config[key], reference[key]
    if isinstance(ref, ml_collections.ConfigDict):
      if not isinstance(value, ml_collections.ConfigDict):
        raise ConfigError(f"config key {path!r} must be a section (dict), got {value!r}")
      _check_against(value, ref, path)
      continue
    expected = reference.get_type(key)
    if value is None:
      if ref is None:  # a placeholder field (e.g. data.path): None means unset
        continue
      raise ConfigError(f"config key {path!r} must not be None (expected {expected.__name__})")
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    ok = ok or (expected is float and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
      raise ConfigError(
          f"config key {path!r} must be of type {expected.__name__}, got {value!r} ({_type_name(value)})"
      )


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks a config's structure before anything is built.

  Raises:
    ConfigError: for an unknown top-level section, an unknown key in a closed
      section, a value of the wrong type, or an open section that is not a dict.
      The factories check the open sections' keys and all values' ranges.
  """
  reference = base_config()
  for section in config.keys():
    if section not in reference:
      raise ConfigError(
          f"unknown config section {section!r}; valid sections: {', '.join(sorted(reference.keys()))}"
      )
  for section in reference.keys():
    if section not in config:
      raise ConfigError(f"the config has no {section!r} section; start from jaxreg.config.base_config()")
    if not isinstance(config[section], ml_collections.ConfigDict):
      raise ConfigError(f"config section {section!r} must be a dict, got {config[section]!r}")
    if section not in OPEN_SECTIONS:
      _check_against(config[section], reference[section], section)
  nan_keys = _nan_keys(config.to_dict())
  if nan_keys:
    raise ConfigError(f"{', '.join(nan_keys)} is NaN, which no setting accepts; give a number")
  for name in config.regularizers.keys():
    if not isinstance(config.regularizers[name], ml_collections.ConfigDict):
      raise ConfigError(
          f"regularizers.{name} must be a dict of keyword arguments "
          f"(e.g. --config.regularizers.{name}.alpha=1e-4), got {config.regularizers[name]!r}"
      )


def _nan_keys(tree, prefix: str = "") -> list[str]:
  """The dotted keys of a plain-dict config whose value is (or holds) a float NaN."""
  if isinstance(tree, dict):
    return [k for key, value in tree.items() for k in _nan_keys(value, f"{prefix}{key}.")]
  if isinstance(tree, (list, tuple)):
    return [prefix.rstrip(".")] if any(_nan_keys(item, prefix) for item in tree) else []
  return [prefix.rstrip(".")] if isinstance(tree, float) and math.isnan(tree) else []


def _parse_value(raw: str) -> Any:
  """Parses an override's text: Python literals, true/false/none, inf/nan, else the string itself."""
  lowered = raw.strip().lower()
  if lowered in ("true", "false"):
    return lowered == "true"
  if lowered in ("none", "null"):
    return None
  if lowered.lstrip("+-") in ("inf", "infinity", "nan"):
    return float(lowered)
  try:
    return ast.literal_eval(raw)
  except (ValueError, SyntaxError):
    return raw


def apply_override(config: ml_collections.ConfigDict, dotted_key: str, raw_value: str) -> None:
  """Sets ``config.<dotted_key>`` from the text ``raw_value``, type-checked.

  In closed sections the key must exist and the value must have its type (an
  int is accepted for a float). In the open sections (``model``,
  ``optimizer``, ``regularizers``) new keys may be added, and a whole
  section may be given as a dict (``--config.model="{'name': ..., ...}"``),
  replacing it; the factories check them before training.

  Raises:
    ConfigError: naming the key, for an unknown key or a value of the wrong type.
  """
  parts = dotted_key.split(".")
  if not all(parts):
    raise ConfigError(f"malformed override key --config.{dotted_key}")
  value = _parse_value(raw_value)
  if _replaces_section(config, parts, value):
    return
  node = config
  in_sweep = tuple(parts[:2]) == SWEEP
  for depth, part in enumerate(parts[:-1]):
    here = ".".join(parts[: depth + 1])
    if part not in node:
      if (parts[0] in OPEN_SECTIONS and depth > 0) or (in_sweep and depth > 1):
        node[part] = ml_collections.ConfigDict()
      else:
        valid = ", ".join(sorted(node.keys()))
        raise ConfigError(f"unknown config key {here!r} in --config.{dotted_key}; valid keys here: {valid}")
    node = node[part]
    if not isinstance(node, ml_collections.ConfigDict):
      raise ConfigError(f"--config.{dotted_key}: {here!r} is a value, not a section")
  key = parts[-1]
  if in_sweep:
    _set_sweep(node, parts, value, raw_value)
    return
  if key not in node:
    if parts[0] not in OPEN_SECTIONS or len(parts) < 2:
      parent = ".".join(parts[:-1]) or "config"
      raise ConfigError(
          f"unknown config key {dotted_key!r}; valid keys in {parent!r}: {', '.join(sorted(node.keys()))}"
      )
    node[key] = value
    return
  if parts[0] in OPEN_SECTIONS and len(parts) >= 2 and (
      isinstance(value, dict) or isinstance(node[key], ml_collections.ConfigDict)
  ):
    # A value may change between a name and a mapping (kernel_init='sparse' ->
    # {'name': 'sparse', 'k': 15}), or a sub-section be given whole; the
    # factories check what it holds.
    del node[key]
    node[key] = tuple(value) if isinstance(value, list) else value
    return
  if parts[0] in OPEN_SECTIONS and len(parts) >= 2 and _number_and_sequence(node[key], value):
    # One rate for every layer, or one per layer (model.dropout_rate=(0.2, 0.5)): the factories check it.
    del node[key]
    node[key] = tuple(value) if isinstance(value, list) else value
    return
  if isinstance(node[key], ml_collections.ConfigDict):
    raise ConfigError(f"--config.{dotted_key} is a section; set one of its keys: {', '.join(sorted(node[key].keys()))}")
  if isinstance(value, list):
    value = tuple(value)
  current = node[key]
  if isinstance(value, bool) and isinstance(current, (int, float)) and not isinstance(current, bool):
    # ml_collections would store True as 1.0: a boolean is never a number here.
    raise ConfigError(
        f"--config.{dotted_key}={raw_value!r}: expected a number ({type(current).__name__}), got a boolean"
    )
  if value is None and isinstance(node[key], str) and not isinstance(node._fields[key], config_dict.FieldReference):
    value = raw_value  # a string field that cannot be None: 'none' is the word (parallel.mode=none)
  try:
    node[key] = value
  except TypeError:
    expected = node.get_type(key).__name__
    raise ConfigError(
        f"--config.{dotted_key}={raw_value!r}: expected a value of type {expected}, got {_type_name(value)}"
    ) from None


def _replaces_section(config: ml_collections.ConfigDict, parts: list[str], value) -> bool:
  """Sets a whole open section given as a dict (``--config.model="{'name': 'my_pkg.models:build', ...}"``)."""
  if len(parts) == 1 and parts[0] in OPEN_SECTIONS and isinstance(value, dict):
    config[parts[0]] = ml_collections.ConfigDict(value)
    return True
  return False


def _set_sweep(node: ml_collections.ConfigDict, parts: list[str], value, raw_value: str) -> None:
  """``--config.population.sweep=<dict>`` (the whole sweep) or ``--config.population.sweep.<key>=<values>``."""
  key = parts[-1]
  if len(parts) == len(SWEEP):
    if not isinstance(value, dict):
      raise ConfigError(f"--config.population.sweep takes a dict of dotted keys and lists, e.g. "
                        f"\"{{'optimizer.learning_rate': [1e-3, 1e-2]}}\", or set one key: "
                        f"--config.population.sweep.optimizer.learning_rate=[1e-3,1e-2]; got {raw_value!r}")
    node[key] = sweep_over(value)
    return
  if key in node:
    del node[key]
  node[key] = tuple(value) if isinstance(value, list) else value


def load_config(spec: str | None = None, overrides: list[tuple[str, str]] = ()) -> tuple[ml_collections.ConfigDict, str]:
  """Loads ``get_config(arg)`` from a config file or a packaged config, then applies overrides.

  Args:
    spec: ``'configs/digits_mlp.py'``, ``'configs/digits_mlp.py:smoke'``, the
      name of a packaged config (``'digits_mlp'``, ``'digits_mlp:smoke'``), a
      run's saved ``config.json``, or ``None`` for the default experiment.
    overrides: ``(dotted_key, raw_value)`` pairs, applied in order.

  Returns:
    The validated config and a short name for it (e.g. ``'digits_mlp-smoke'``).
  """
  spec = spec or "digits_mlp"
  if spec.endswith(".json"):
    return _load_saved_config(spec, overrides), os.path.basename(os.path.dirname(os.path.abspath(spec)))
  target, _, arg = spec.partition(":")
  arg = arg or None
  if target.endswith(".py") or os.sep in target:
    if not os.path.isfile(target):
      raise ConfigError(f"config file {target!r} does not exist")
    module = _load_module(target)
  else:
    path = os.path.join(_configs_folder(), f"{target}.py")
    if not os.path.isfile(path):
      raise ConfigError(
          f"no packaged config named {target!r}; pass the path of a config file (ending in .py) "
          f"or one of: {', '.join(packaged_configs())}"
      )
    module = _load_module(path)
  if not hasattr(module, "get_config"):
    raise ConfigError(f"config {target!r} defines no get_config(arg=None) function")
  config = _call_get_config(module.get_config, arg, target)
  for key, raw in overrides:
    apply_override(config, key, raw)
  validate_config(config)
  name = os.path.splitext(os.path.basename(target))[0] + (f"-{arg}" if arg else "")
  return config, name


def with_defaults(saved: dict) -> dict:
  """A saved plain-dict config completed with the defaults of what was added since (sections, closed-section keys).

  JSON has no tuples: a list saved for a closed-section field that holds a
  tuple (``data.augment``) becomes a tuple again.
  """
  completed = dict(saved)
  for section, defaults in base_config().items():
    if section not in completed:  # a section added after the run was saved
      completed[section] = defaults.to_dict()
    elif section not in OPEN_SECTIONS and isinstance(completed[section], dict):
      completed[section] = _completed(completed[section], defaults)
  return completed


def _completed(saved: dict, defaults: ml_collections.ConfigDict) -> dict:
  """One closed section (and its closed subsections) completed with ``defaults``, lists of tuple fields as tuples."""
  completed = {**defaults.to_dict(), **saved}
  for key in defaults.keys():
    if isinstance(defaults[key], ml_collections.ConfigDict) and isinstance(completed[key], dict):
      completed[key] = _completed(completed[key], defaults[key])
    elif defaults.get_type(key) is tuple and isinstance(completed[key], list):
      completed[key] = tuple(completed[key])
  return completed


def _load_saved_config(path: str, overrides) -> ml_collections.ConfigDict:
  """Loads a run's resolved ``config.json`` (what a resume starts from)."""
  if not os.path.exists(path):
    raise ConfigError(f"config file {path!r} does not exist")
  with open(path) as f:
    try:
      saved = json.load(f)
    except json.JSONDecodeError as e:
      raise ConfigError(f"{path} is not valid JSON ({e}); it may be damaged") from None
  config = ml_collections.ConfigDict(with_defaults(saved))
  for key, raw in overrides:
    apply_override(config, key, raw)
  validate_config(config)
  return config


def _load_module(path: str):
  name = "jaxreg_config_" + os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ConfigError(f"config file {path} has a syntax error at line {e.lineno}: {e.msg}") from None
  except Exception as e:  # the file is the user's code: say where it failed, not a traceback of ours
    raise ConfigError(f"config file {path} failed to load: {type(e).__name__}: {e}") from None
  return module


def _call_get_config(get_config, arg: str | None, target: str) -> ml_collections.ConfigDict:
  """``get_config(arg)``; also a Flax-examples ``get_config()`` without an argument when none is given."""
  takes_arg = bool(inspect.signature(get_config).parameters)
  if arg is not None and not takes_arg:
    raise ConfigError(f"config {target!r} has get_config() without an argument, so ':{arg}' cannot be passed to it")
  try:
    config = get_config(arg) if takes_arg else get_config()
  except (ValueError, TypeError, KeyError) as e:  # e.g. an unknown ':arg'
    raise ConfigError(f"config {target!r}: {e}") from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"config {target!r}: get_config must return an ml_collections.ConfigDict, got {type(config).__name__}")
  return config


def _configs_folder() -> str:
  """Where the packaged configs are: ``jaxreg.configs`` when installed, else the checkout's ``configs/``.

  Python finds the source tree's ``jaxreg/`` first when it runs from the
  repository root, and there ``configs/`` sits beside the package.
  """
  try:
    import jaxreg.configs

    return os.path.dirname(jaxreg.configs.__file__)
  except ModuleNotFoundError:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def packaged_configs() -> list[str]:
  """Names of the configs shipped in ``jaxreg.configs`` (the repository's ``configs/``)."""
  folder = _configs_folder()
  return sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_"))


def config_differences(a: dict, b: dict, prefix: str = "") -> list[str]:
  """Dotted keys whose values differ between two plain-dict configs."""
  out = []
  for key in sorted(set(a) | set(b)):
    path = f"{prefix}{key}"
    va, vb = a.get(key), b.get(key)
    if isinstance(va, dict) and isinstance(vb, dict):
      out += config_differences(va, vb, path + ".")
    elif (list(va) if isinstance(va, (list, tuple)) else va) != (list(vb) if isinstance(vb, (list, tuple)) else vb):
      out.append(path)
  return out
