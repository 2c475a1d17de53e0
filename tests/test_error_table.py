"""Every user error the command line can meet: one ``jaxreg: error:`` line naming it, never a traceback.

The table holds the config, data, work-directory and usage errors that the
rest of the suite checks one by one, and the edges a careless user reaches
(the issue's list). Each case says what the failed command may leave behind:
nothing (the error came before anything was written), or a directory that
holds no run, in which the plain rerun that the message asks for succeeds.

``test_the_error_table_in_process`` calls ``jaxreg.cli.main`` on every case
(fast tier); ``test_the_error_table_in_real_processes`` runs the cases whose
path differs from the others as ``python -m jaxreg`` from another directory
(every case but the config-value overrides and the malformed data files, which
take one path each; four of each stand for them) and follows every "rerun"
case's advice for real (slow tier).
"""

import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from jaxreg import cli

GOOD = ("train", "--config", "digits_mlp:smoke", "--workdir", "{w}", "--no-progress", "--config.train.epochs=1")
NOTHING, RERUN, UNTOUCHED = "nothing is written", "a plain rerun succeeds", "the file is untouched"


@dataclasses.dataclass(frozen=True)
class Case:
  """A command that must fail with ``message``, and what it may leave (``NOTHING``, ``RERUN`` or ``UNTOUCHED``)."""

  name: str
  args: tuple[str, ...]
  message: str
  leaves: str = NOTHING


def _override(name, override, message, leaves=NOTHING):
  return Case(name, GOOD + (override,), message, leaves)


def _data(name, file, message, config="digits_mlp:smoke"):
  args = ("train", "--config", config, "--workdir", "{w}", "--no-progress", "--config.train.epochs=1",
          "--config.data.batch_size=8", "--config.data.name=npz", f"--config.data.path={{d}}/{file}")
  return Case(name, args, message)


CASES = [
    # The config's values.
    _override("unknown-optimizer-key", "--config.optimizer.lr=0.1", r"optimizer\.lr for optimizer 'adam'; valid keys"),
    _override("text-for-a-number", "--config.data.batch_size=big", r"data\.batch_size='big': expected a value of type int"),
    _override("unknown-model", "--config.model.name=transformer", r"unknown model 'transformer'"),
    _override("monitor-not-logged", "--config.train.early_stopping.monitor=val_f1",
              r"monitor='val_f1' is not a logged metric; choose one of"),
    _override("batch-larger-than-data", "--config.data.batch_size=5000",
              r"batch_size=5000 is larger than the training split \(1257 examples\); use at most 1257"),
    _override("batch-zero", "--config.data.batch_size=0", r"data\.batch_size must be a positive integer, got 0"),
    _override("eval-batch-zero", "--config.data.eval_batch_size=0", r"data\.eval_batch_size must be a positive integer"),
    _override("epochs-zero", "--config.train.epochs=0", r"train\.epochs must be a positive integer, got 0"),
    _override("epochs-not-integer", "--config.train.epochs=2.5", r"train\.epochs='2\.5': expected a value of type int"),
    _override("sizes-not-integer", "--config.model.hidden_sizes=(32.5,)",
              r"model\.hidden_sizes must be a non-empty list of positive integers, got \(32\.5,\)"),
    _override("boolean-for-a-number", "--config.optimizer.learning_rate=true", r"expected a number \(float\), got a boolean"),
    _override("learning-rate-zero", "--config.optimizer.learning_rate=0",
              r"optimizer\.learning_rate must be a positive, finite number, got 0"),
    _override("learning-rate-infinite", "--config.optimizer.learning_rate=inf",
              r"optimizer\.learning_rate must be a positive, finite number, got inf"),
    _override("negative-penalty", "--config.regularizers.l2.alpha=-1.0", r"regularizers\.l2\.alpha must be a finite number >= 0"),
    _override("infinite-penalty", "--config.regularizers.l2.alpha=inf",
              r"regularizers\.l2\.alpha must be a finite number >= 0 or a schedule, got inf"),
    _override("infinite-weight-decay", "--config.regularizers.weight_decay.rate=inf",
              r"regularizers\.weight_decay\.rate must be a finite number >= 0"),
    _override("nan-setting", "--config.regularizers.l2.alpha=nan", r"regularizers\.l2\.alpha is NaN, which no setting accepts"),
    _override("dropout-one", "--config.model.dropout_rate=1.0", r"model\.dropout_rate must be in \[0, 1\), got 1\.0"),
    _override("fraction-above-one", "--config.data.val_fraction=1.5", r"data\.val_fraction must be a number in \[0, 1\)"),
    _override("keep-zero", "--config.checkpoint.keep=0", r"checkpoint\.keep >= 1, got every=1, keep=0"),
    _override("unknown-parallel-mode", "--config.parallel.mode=bogus", r"parallel\.mode must be one of none, pmap, sharded"),
    _override("devices-without-mode", "--config.parallel.num_devices=3", r"parallel\.num_devices=3 needs parallel\.mode"),
    _override("unknown-schedule", "--config.optimizer.schedule={{'name': 'bogus'}}", r"unknown schedule 'bogus'; valid names"),
    _override("unknown-mode", "--config.train.early_stopping.mode=maximize", r"early_stopping\.mode must be 'min' or 'max'"),
    _override("negative-patience", "--config.train.early_stopping.patience=-1",
              r"early_stopping\.patience must be a positive integer or None"),
    _override("unknown-section", "--config.nonexistent.key=1", r"unknown config key 'nonexistent' in --config\.nonexistent\.key"),
    _override("unknown-optimizer", "--config.optimizer.name=adamw", r"unknown optimizer 'adamw'; valid names"),
    _override("keys-of-another-model", "--config.model.name=gru", r"unknown key\(s\) model\.activation for model 'gru'"),
    _override("clip-zero", "--config.optimizer.clip_global_norm=0", r"optimizer\.clip_global_norm must be a positive number"),
    _override("override-without-value", "--config.train.epochs", r"--config\.train\.epochs needs a value"),
    _override("unknown-dropout-kind", "--config.model.dropout_kind=alpha",
              r"model\.dropout_kind must be one of bernoulli, gaussian, got 'alpha'"),
    _override("dropout-rates-per-layer-miscounted", "--config.model.dropout_rate=(0.1,0.2,0.3)",
              r"model\.dropout_rate must be one rate or 1 rates \(one per layer\), got 3"),
    _override("unknown-preprocessing", "--config.data.preprocess=whiten",
              r"data\.preprocess must be one of none, standardize, pca_whiten, zca_whiten, got 'whiten'"),
    _override("image-augmentation-on-flat-data", "--config.data.augment=[{{'name': 'affine', 'max_rotation': 10}}]",
              r"data\.augment cannot take the data's examples of shape \(64,\): image augmentations take one image"),
    _override("upsample-flat-data", "--config.data.upsample=2", r"data\.upsample enlarges images"),
    _override("image-tangents-on-flat-data", "--config.regularizers.tangent_prop={{'alpha': 0.1, 'tangents': ['rotate']}}",
              r"regularizers\.tangent_prop\.tangents cannot take the data's examples of shape \(64,\).*data\.example_shape"),
    _override("unknown-tangent", "--config.regularizers.tangent_prop={{'alpha': 0.1, 'tangents': ['spin']}}",
              r"unknown tangent 'spin'; valid tangents: translate_x"),
    _override("adversarial-clip-reversed", "--config.regularizers.adversarial={{'eps': 0.1, 'clip': [1, 0]}}",
              r"regularizers\.adversarial\b.*clip must be \(low, high\) with low < high"),
    _override("robust-eval-negative-eps", "--config.train.robust_eval.eps=[-0.1]",
              r"train\.robust_eval\.eps must hold finite numbers >= 0"),
    _override("train-fraction-zero", "--config.data.train_fraction=0", r"data\.train_fraction must be a number in \(0, 1\]"),
    # A run that diverges in its first epoch committed nothing: the advice is a plain rerun (with a smaller rate).
    Case("diverges-in-epoch-one", GOOD + ("--config.optimizer.name=sgd", "--config.optimizer.learning_rate=1e30"),
         r"became nan in epoch 1: the run diverged.*nothing was checkpointed: start the run again with a smaller",
         RERUN),
    # Config files.
    Case("unknown-config-argument", ("train", "--config", "digits_mlp:smok", "--workdir", "{w}"),
         r"unknown config argument 'smok'; valid: smoke"),
    Case("config-syntax-error", ("train", "--config", "{d}/syntax.py", "--workdir", "{w}"),
         r"config file .*syntax\.py has a syntax error at line 1"),
    Case("config-file-missing", ("train", "--config", "{d}/none.py", "--workdir", "{w}"), r"config file .*none\.py' does not exist"),
    # Data files.
    _data("data-file-missing", "none.npz", r"data file .*none\.npz' does not exist"),
    _data("data-not-an-npz", "corrupt.npz", r"corrupt\.npz' is not an \.npz file \(not a zip archive of arrays"),
    _data("data-of-python-objects", "objects.npz", r"objects\.npz' holds an array of Python objects"),
    _data("data-with-nan", "nan.npz", r"x_train contains 5 NaN or infinite value\(s\), the first at index \(0, 0\)"),
    _data("data-complex", "complex.npz", r"x_train is complex \(complex64\); pass its real part"),
    _data("data-labels-out-of-range", "labels.npz", r"y_train has 1 label\(s\) outside \[0, 2\) \(e\.g\. -1 at index 0\)"),
    _data("data-wrong-keys", "keys.npz", r"has unexpected key\(s\) \['x', 'y'\]; valid keys: x_train"),
    _data("data-lengths-differ", "lengths.npz", r"x_train and y_train have different lengths \(40 vs 39\)"),
    _data("data-not-numeric", "strings.npz", r"x_train must be numeric, got dtype <U1"),
    _data("gru-flat-input-not-divisible", "flat.npz",
          r"model 'gru' cannot take the data's examples of shape \(5,\): flat inputs of 5 features cannot be read as "
          r"sequence_length=8 steps", config="digits_rnn:gru"),
    _data("gru-input-with-too-many-axes", "seq4.npz",
          r"model 'gru' cannot take the data's examples of shape \(5, 3, 2\): a recurrent model takes inputs shaped "
          r"\(examples, time, features\)", config="digits_rnn:gru"),
    # Work directories.
    Case("workdir-is-a-file", GOOD[:4] + ("{d}/afile",) + GOOD[5:],
         r"--workdir .*afile is a file, not a directory; choose another --workdir", UNTOUCHED),
    Case("workdir-under-a-file", GOOD[:4] + ("{d}/afile/run",) + GOOD[5:],
         r"--workdir .*afile/run cannot be created: .*afile is a file; choose another --workdir", UNTOUCHED),
    Case("resume-what-does-not-exist", GOOD + ("--resume",),
         r"nothing to resume in .*: it has no config\.json; start the run without --resume"),
    Case("resume-without-config-or-run", ("train", "--workdir", "{w}", "--resume"),
         r"nothing to resume in .*: it holds no run \(no config\.json\); start the run without --resume, with --config"),
    # Usage.
    Case("unknown-argument", GOOD + ("--bogus",), r"unrecognized arguments: --bogus"),
    Case("override-for-plot", ("plot", "{w}", "--config.train.epochs=2"), r"overrides go with 'jaxreg train'"),
    Case("plot-of-no-run", ("plot", "{w}"), r"cannot plot .*: no metrics to plot"),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
  """The broken inputs of the table, written once."""
  d = tmp_path_factory.mktemp("bad_inputs")
  ones, labels = np.ones((40, 5), np.float32), np.arange(40) % 2
  np.savez(d / "nan.npz", x_train=np.where(np.eye(40, 5) > 0, np.nan, 1.0), y_train=labels)
  np.savez(d / "complex.npz", x_train=ones * 1j, y_train=labels)
  np.savez(d / "labels.npz", x_train=ones, y_train=np.concatenate([[-1], labels[1:]]))
  np.savez(d / "keys.npz", x=ones, y=labels)
  np.savez(d / "lengths.npz", x_train=ones, y_train=labels[:39])
  np.savez(d / "strings.npz", x_train=np.full((40, 5), "a"), y_train=labels)
  np.savez(d / "objects.npz", x_train=np.array([{"a": 1}] * 40, dtype=object), y_train=labels)
  np.savez(d / "flat.npz", x_train=ones, y_train=labels)
  np.savez(d / "seq4.npz", x_train=np.ones((40, 5, 3, 2), np.float32), y_train=labels)
  (d / "corrupt.npz").write_bytes(np.random.default_rng(0).bytes(300))
  (d / "syntax.py").write_text("def get_config(:\n  pass\n")
  (d / "afile").write_text("not a directory")
  return d


def _argv(case: Case, workdir, data_dir) -> list[str]:  # {w}: the work directory, {d}: the bad inputs' directory
  return [arg.format(w=workdir, d=data_dir) for arg in case.args]


def _check_message(case: Case, code, err: str) -> None:
  assert code == 2, (case.name, code, err)
  assert "Traceback" not in err, (case.name, err)
  lines = [line for line in err.splitlines() if line.startswith("jaxreg: error: ")]
  assert len(lines) == 1 and re.search(case.message, lines[0]), (case.name, err)


def _check_left(case: Case, workdir: str, data_dir) -> None:
  if case.leaves == NOTHING:
    assert not os.path.exists(workdir), (case.name, os.listdir(workdir))
  elif case.leaves == UNTOUCHED:
    assert (data_dir / "afile").read_text() == "not a directory"
  else:  # a directory that holds no run: no committed checkpoint, no summary
    checkpoints = os.path.join(workdir, "checkpoints")
    assert not os.path.exists(os.path.join(workdir, "summary.json")), case.name
    assert not [n for n in os.listdir(checkpoints) if n.isdigit()] if os.path.isdir(checkpoints) else True


@pytest.mark.parametrize("case", [  # the one case that trains (6 s) runs in the full suite only
    pytest.param(c, marks=pytest.mark.slow) if c.name == "diverges-in-epoch-one" else c for c in CASES],
    ids=[c.name for c in CASES])
def test_the_error_table_in_process(case, bad_files, tmp_path, capsys):
  workdir = str(tmp_path / "run")
  try:
    code = cli.main(_argv(case, workdir, bad_files))
  except SystemExit as e:  # argparse's own usage errors
    code = e.code
  _check_message(case, code, capsys.readouterr().err)
  _check_left(case, workdir, bad_files)


def test_the_table_covers_the_errors_the_issue_lists():
  names = {c.name for c in CASES}
  assert len(names) == len(CASES)
  for listed in ("batch-zero", "workdir-is-a-file", "config-syntax-error", "unknown-config-argument",
                 "gru-flat-input-not-divisible", "infinite-penalty", "boolean-for-a-number", "data-complex",
                 "sizes-not-integer", "learning-rate-zero", "diverges-in-epoch-one"):
    assert listed in names


def _jaxreg(argv, cwd) -> subprocess.CompletedProcess:
  env = {k: v for k, v in os.environ.items() if not k.startswith("XLA_")}
  return subprocess.run([sys.executable, "-m", "jaxreg", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                        timeout=300)


# The config-value overrides all fail in one place (validation before anything is written), and so do the
# malformed data files (the loader's checks): these stand for them.
_OVERRIDES_IN_PROCESSES = ("unknown-optimizer-key", "text-for-a-number", "nan-setting", "override-without-value")
_DATA_IN_PROCESSES = ("data-file-missing", "data-not-an-npz", "data-with-nan", "gru-flat-input-not-divisible")


def _is_config_override(case: Case) -> bool:
  return len(case.args) == len(GOOD) + 1 and case.args[:-1] == GOOD and case.args[-1].startswith("--config.")


def _is_data_case(case: Case) -> bool:
  return any(arg.startswith("--config.data.path=") for arg in case.args)


PROCESS_CASES = [c for c in CASES if (not _is_config_override(c) or c.name in _OVERRIDES_IN_PROCESSES)
                 and (not _is_data_case(c) or c.name in _DATA_IN_PROCESSES)]


@pytest.mark.slow  # a process per case (about 2 s each)
def test_the_error_table_in_real_processes(bad_files, tmp_path):
  """``python -m jaxreg`` from another directory: one error line per case; every "rerun" advice, followed, works."""
  assert 15 <= len(PROCESS_CASES) < len(CASES)
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  for case in PROCESS_CASES:
    workdir = str(tmp_path / case.name)
    failed = _jaxreg(_argv(case, workdir, bad_files), elsewhere)
    _check_message(case, failed.returncode, failed.stderr)
    _check_left(case, workdir, bad_files)
    if case.leaves == RERUN:
      rerun = _jaxreg([a.format(w=workdir) for a in GOOD], elsewhere)
      assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, (case.name, rerun.stderr)
      assert json.loads(open(os.path.join(workdir, "summary.json")).read())["epochs_run"] == 1
  fresh = str(tmp_path / "unknown-optimizer-key")  # a case that wrote nothing: the same command, corrected
  assert _jaxreg([a.format(w=fresh) for a in GOOD], elsewhere).returncode == 0
