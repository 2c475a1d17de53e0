import json
import os

import jax.numpy as jnp
import pytest

from jaxreg import cli
from jaxreg.config import apply_override, base_config, load_config, packaged_configs, validate_config
from jaxreg.errors import ConfigError
from jaxreg.optim import make_optimizer


def test_default_and_smoke_configs_load_and_validate():
  config, name = load_config()
  assert name == "digits_mlp" and config.data.name == "digits"
  smoke, name = load_config("digits_mlp:smoke")
  assert name == "digits_mlp-smoke" and smoke.train.epochs < config.train.epochs
  path_config, _ = load_config(os.path.join(os.path.dirname(__file__), "..", "configs", "digits_mlp.py"))
  assert path_config.to_dict() == config.to_dict()
  assert "digits_mlp" in packaged_configs()


def test_overrides_are_typed():
  config = base_config()
  apply_override(config, "optimizer.learning_rate", "0.05")
  apply_override(config, "optimizer.learning_rate", "1")  # an int is a valid float
  apply_override(config, "model.hidden_sizes", "[512, 128]")
  apply_override(config, "train.early_stopping.patience", "7")
  apply_override(config, "train.progress_bar", "false")
  apply_override(config, "data.path", "my data.npz")
  assert config.optimizer.learning_rate == 1.0
  assert tuple(config.model.hidden_sizes) == (512, 128)
  assert config.train.early_stopping.patience == 7
  assert config.train.progress_bar is False
  assert config.data.path == "my data.npz"


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("optimizer.learning_rate", "fast", "optimizer.learning_rate='fast': expected a value of type float, got str"),
        ("data.batch_size", "12.5", "data.batch_size='12.5': expected a value of type int, got float"),
        ("train.epochs", "[3]", "expected a value of type int"),
        ("data.batchsize", "32", "unknown config key 'data.batchsize'; valid keys in 'data': augment, batch_size"),
        ("trian.epochs", "3", "unknown config key 'trian'"),
        ("train.early_stopping.patient", "3", "unknown config key 'train.early_stopping.patient'"),
        ("train", "3", "unknown config key 'train'|is a section"),
    ],
)
def test_bad_overrides_name_the_key(key, value, message):
  with pytest.raises(ConfigError, match=message):
    apply_override(base_config(), key, value)


def test_open_sections_accept_new_keys_that_the_factories_check():
  config = base_config()
  apply_override(config, "regularizers.l2.alpha", "1e-4")
  apply_override(config, "optimizer.momentum", "0.95")
  assert config.regularizers.l2.alpha == 1e-4
  with pytest.raises(ConfigError, match="optimizer.momentum for optimizer 'adam'; valid keys: b1, b2, delta"):
    make_optimizer(**config.optimizer)
  apply_override(config, "optimizer.name", "momentum")
  make_optimizer(**config.optimizer)


def test_validate_config_refuses_unknown_sections_and_types():
  config = base_config()
  config.trainer = {"epochs": 3}
  with pytest.raises(ConfigError, match="unknown config section 'trainer'"):
    validate_config(config)
  config = base_config()
  config.data.unlock()
  config.data.shuffle_buffer = 10
  with pytest.raises(ConfigError, match="unknown config key 'data.shuffle_buffer'"):
    validate_config(config)
  config = base_config()
  config.regularizers.l2 = 1e-4
  with pytest.raises(ConfigError, match="regularizers.l2 must be a dict of keyword arguments"):
    validate_config(config)


def test_optimizer_factory_names_and_errors():
  for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "rmsprop_nesterov", "adam", "optax.adamw"):
    make_optimizer(name, learning_rate=1e-3).init({"w": jnp.zeros(2)})
  with pytest.raises(ConfigError, match="unknown optimizer 'adamw'; valid names: adagrad, adam, momentum, "
                     "nesterov, rmsprop, rmsprop_nesterov, sgd, or optax.<name>"):
    make_optimizer("adamw", learning_rate=1e-3)
  with pytest.raises(ConfigError, match="'optax.no_such_thing' is not an optax optimizer"):
    make_optimizer("optax.no_such_thing", learning_rate=1e-3)
  with pytest.raises(ConfigError, match="optimizer.betas for optimizer 'optax.adamw'; valid keys: b1, b2"):
    make_optimizer("optax.adamw", learning_rate=1e-3, betas=(0.9, 0.99))
  with pytest.raises(ConfigError, match="learning_rate must be a positive, finite number"):
    make_optimizer("sgd", learning_rate=-1.0)
  with pytest.raises(ConfigError, match="momentum must be in \\[0, 1\\)"):
    make_optimizer("momentum", learning_rate=0.1, momentum=1.5)


def test_cli_help(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["--help"])
  assert exit_info.value.code == 0
  out = capsys.readouterr().out
  assert "train" in out and "plot" in out
  with pytest.raises(SystemExit):
    cli.main(["train", "--help"])
  out = capsys.readouterr().out
  assert "--config.<section>.<field>=<value>" in out and "--resume" in out and "--workdir" in out


@pytest.mark.parametrize(
    "override, message",
    [
        ("--config.optimizer.lr=0.1", "optimizer.lr for optimizer 'adam'; valid keys: b1, b2, delta"),
        ("--config.data.batch_size=big", "data.batch_size='big': expected a value of type int"),
        ("--config.model.name=transformer", "unknown model 'transformer'"),
        ("--config.train.early_stopping.monitor=val_f1", "monitor='val_f1' is not a logged metric; choose one of"),
        ("--config.data.batch_size=5000", "batch_size=5000 is larger than the training split \\(1257 examples\\)"),
        ("--config.data.batch_size=0", "data.batch_size must be a positive integer, got 0"),
        ("--config.train.epochs=0", "train.epochs must be a positive integer, got 0"),
        ("--config.optimizer.learning_rate=true", "expected a number \\(float\\), got a boolean"),
        ("--config.regularizers.l2.alpha=-1.0", "regularizers.l2.alpha must be a finite number >= 0"),
    ],
)
def test_cli_stops_before_training_on_a_bad_config(tmp_path, capsys, override, message):
  workdir = tmp_path / "run"
  code = cli.main(["train", "--config", "digits_mlp:smoke", "--workdir", str(workdir), "--no-progress", override])
  assert code == 2
  err = capsys.readouterr().err
  assert "jaxreg: error:" in err
  import re

  assert re.search(message, err), err
  assert not workdir.exists()  # nothing was written


@pytest.mark.slow
def test_cli_trains_the_smoke_config_with_overrides(tmp_path, capsys):
  workdir = tmp_path / "run"
  code = cli.main([
      "train", "--config", "digits_mlp:smoke", "--workdir", str(workdir), "--no-progress",
      "--config.optimizer.learning_rate=0.003", "--config.train.epochs", "2",
  ])
  assert code == 0
  saved = json.loads((workdir / "config.json").read_text())
  assert saved["optimizer"]["learning_rate"] == 0.003 and saved["train"]["epochs"] == 2
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  assert len(lines) == 2
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["epochs_run"] == 2
  assert cli.main(["plot", str(workdir)]) == 0
  assert (workdir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert cli.main(["plot", str(tmp_path / "nothing-here")]) == 2
  assert "no metrics to plot" in capsys.readouterr().err
  # Running again into the same work directory is refused, and nothing is lost.
  code = cli.main(["train", "--config", "digits_mlp:smoke", "--workdir", str(workdir), "--no-progress"])
  assert code == 2
  assert "already holds a run; pass --resume" in capsys.readouterr().err
  assert len((workdir / "metrics.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "rmsprop_nesterov", "adam"])
def test_every_optimizer_has_a_digits_config(name):
  config, config_name = load_config(f"digits_optimizers:{name}")
  assert config.optimizer.name == name and config_name == f"digits_optimizers-{name}"
  make_optimizer(**config.optimizer).init({"w": jnp.zeros(2)})


@pytest.mark.parametrize("key", ["optimizer.learning_rate", "data.batch_size", "train.epochs"])
def test_a_boolean_is_not_a_number(key):
  """ml_collections would store ``true`` as 1.0 and train at learning rate 1."""
  with pytest.raises(ConfigError, match=f"--config.{key}='true': expected a number .*, got a boolean"):
    load_config("digits_mlp:smoke", [(key, "true")])


def test_config_files_that_fail_are_named_not_a_traceback(tmp_path, capsys):
  syntax = tmp_path / "syntax.py"
  syntax.write_text("def get_config(:\n  pass\n")
  no_arg = tmp_path / "no_arg.py"  # the Flax examples' style: get_config() without an argument
  no_arg.write_text("from jaxreg.config import base_config\n\ndef get_config():\n  config = base_config()\n"
                    "  config.train.epochs = 1\n  return config\n")
  assert load_config(str(no_arg))[0].train.epochs == 1
  cases = [
      (str(syntax), f"config file {syntax} has a syntax error at line 1"),
      (f"{no_arg}:smoke", "has get_config() without an argument, so ':smoke' cannot be passed to it"),
      ("digits_mlp:smok", "config 'digits_mlp': unknown config argument 'smok'; valid: smoke"),
  ]
  for spec, message in cases:
    assert cli.main(["train", "--config", spec, "--workdir", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
  assert not (tmp_path / "run").exists()


def test_a_config_saved_before_a_key_existed_is_completed_with_its_default():
  from jaxreg.config import base_config, config_differences, with_defaults

  saved = base_config().to_dict()
  del saved["data"]["augment"]  # what a run started before data.augment existed saved
  saved["model"]["hidden_sizes"] = [32]
  completed = with_defaults(json.loads(json.dumps(saved)))
  assert completed["data"]["augment"] == () and completed["model"]["hidden_sizes"] == [32]  # open sections as saved
  assert config_differences(completed, {**saved, "data": base_config().to_dict()["data"]}) == []
  on_disk = with_defaults(json.loads(json.dumps({**base_config().to_dict(), "data": {
      **base_config().to_dict()["data"], "augment": [{"name": "shift", "max_shift": 2}]}})))
  assert on_disk["data"]["augment"] == ({"name": "shift", "max_shift": 2},)  # JSON's list, a tuple again


@pytest.mark.parametrize("name", [f"digits_adversarial:{v}" for v in ("mlp_fgsm", "cnn_pgd", "smoke")]
                         + [f"digits_tangent:{v}" for v in ("mlp_tangent", "cnn_augment")] + ["mnist1d_mlp:tangent_prop"])
def test_robustness_configs_build(name):
  from jaxreg.experiment import build

  experiment = build(load_config(name)[0])
  assert experiment.regularizers.names or experiment.batch_transform is not None
  if name.startswith("digits_tangent"):
    assert len(experiment.dataset.train.y) == 126  # 10% of the training split
  if name.startswith("digits_adversarial"):
    assert experiment.options.robust_eval["clip"] == (0.0, 1.0)
