"""A loss that stops being finite: the data is checked, a divergence is named, and the run goes on with a smaller rate."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg import cli
from jaxreg.config import load_config
from jaxreg.data import Dataset, Split
from jaxreg.errors import TrainingError
from jaxreg.experiment import train_and_evaluate
from jaxreg.models import make_mlp
from jaxreg.optim import current_learning_rate, make_optimizer, set_learning_rate
from jaxreg.train import (
    Checkpointer,
    classification_objective,
    create_train_state,
    fit,
    make_eval_step,
    make_train_step,
)
from jaxreg.train.diagnostics import non_finite_cause


def _digits_run(optimizer):
  model = make_mlp(num_outputs=10, hidden_sizes=(16,))
  objective = classification_objective(model.apply)
  state = create_train_state(model, optimizer, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 64)))
  return state, make_train_step(objective, optimizer), make_eval_step(objective)


def test_the_nan_guard_blames_the_data_when_the_data_is_to_blame(digits):
  """A Dataset built by hand skips the loader's checks; the guard checks when the loss turns NaN."""
  x = np.array(digits.train.x)
  x[5, 3] = np.nan
  dirty = Dataset("dirty", "classification", Split(x, digits.train.y), digits.val, digits.test, 10)
  state, train_step, eval_step = _digits_run(make_optimizer("sgd", learning_rate=0.1))
  with pytest.raises(TrainingError, match=r"became nan in epoch 1 because x_train holds 1 NaN or infinite value"):
    fit(state, train_step=train_step, eval_step=eval_step, dataset=dirty, batch_size=64, epochs=2, progress=False)


@pytest.mark.parametrize(("split", "expected"), [
    (Split(np.ones((3, 2), np.float32), np.array([0, 1, 2])), "y_train holds 1 label(s) outside [0, 2)"),
    (Split(np.ones((3, 2), np.float32), np.array([0, -1, 1])), "y_train holds 1 label(s) outside [0, 2)"),
    (Split(np.full((3, 2), np.inf, np.float32), np.array([0, 1, 1])), "x_train holds 6 NaN or infinite value(s)"),
    (Split(np.ones((3, 2), np.float32), np.array([0, 1, 1])), None),
])
def test_non_finite_cause_names_inputs_and_labels(split, expected):
  assert non_finite_cause(Dataset("d", "classification", split, None, None, 2)) == expected
  targets = Split(np.ones((2, 2), np.float32), np.array([0.0, np.nan], np.float32))
  assert non_finite_cause(Dataset("r", "regression", targets, None, None, None)) == "y_train holds 1 NaN or infinite target(s)"


def test_set_learning_rate_replaces_the_injected_rate_and_keeps_the_rest():
  params = {"w": jnp.ones(3)}
  for kwargs in (dict(name="momentum", momentum=0.9), dict(name="adam", schedule={"name": "plateau", "patience": 1}),
                 dict(name="nesterov", momentum=0.9, momentum_off={"patience": 1})):
    optimizer = make_optimizer(learning_rate=0.5, **kwargs)
    state = optimizer.init(params)
    _, state = optimizer.update({"w": jnp.full(3, 0.3)}, state, params)
    changed = set_learning_rate(state, 0.125)
    assert current_learning_rate(changed) == 0.125, kwargs
    before, after = jax.tree.leaves(state), jax.tree.leaves(changed)
    assert sum(not np.array_equal(a, b, equal_nan=True) for a, b in zip(before, after, strict=True)) == 1, kwargs
  with pytest.raises(ValueError, match="learning_rate must be a positive number, got 0"):
    set_learning_rate(state, 0)
  with pytest.raises(ValueError, match="holds no injected learning_rate; build the optimizer with make_optimizer"):
    set_learning_rate(make_optimizer("sgd", learning_rate=0.5).tx.init(params).inner_state, 0.1)


@pytest.mark.slow  # trains runs
def test_a_smaller_rate_on_resume_equals_a_run_whose_schedule_drops_there(digits, tmp_path):
  """0.5 for two epochs, then a resume at 0.125, is step for step a piecewise schedule 0.5 -> 0.125 (exact in binary).

  The two are different compiled programs (the rate computed in the step
  from the count, or read from the state), which XLA may fuse and round
  differently: equal to float32 rounding, where the old rate kept would be 4x off.
  """
  spe = len(digits.train.y) // 64
  dropping = make_optimizer("momentum", learning_rate=0.5, momentum=0.9,
                            schedule={"name": "piecewise", "boundaries": [2], "factor": 0.25, "unit": "epoch"},
                            steps_per_epoch=spe)
  state, train_step, eval_step = _digits_run(dropping)
  common = dict(eval_step=eval_step, dataset=digits, batch_size=64, progress=False, restore_best=False)
  reference = fit(state, train_step=train_step, epochs=4, **common)

  constant = make_optimizer("momentum", learning_rate=0.5, momentum=0.9)
  state, train_step, _ = _digits_run(constant)
  checkpointer = Checkpointer(str(tmp_path / "checkpoints"), keep=1)
  fit(state, train_step=train_step, epochs=2, checkpointer=checkpointer, **common)
  checkpointer = Checkpointer(str(tmp_path / "checkpoints"), keep=1)  # fit closes the one it was given
  resumed = fit(state, train_step=train_step, epochs=4, checkpointer=checkpointer, resume=True,
                on_resume=lambda s: s.replace(opt_state=set_learning_rate(s.opt_state, 0.125)), **common)

  assert [r["learning_rate"] for r in resumed.history] == [0.125, 0.125]
  assert [r["learning_rate"] for r in reference.history] == [0.5, 0.5, 0.125, 0.125]
  for a, b in zip(jax.tree.leaves(resumed.state.params), jax.tree.leaves(reference.state.params), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # trains runs
def test_a_diverged_run_goes_on_from_its_last_good_checkpoint_as_the_error_says(tmp_path, capsys):
  """The rate jumps 10^30-fold at epoch 3 (a piecewise schedule): NaN; the advice, followed, finishes the run."""
  workdir = str(tmp_path / "run")
  overrides = ["--config.optimizer.name=sgd", "--config.optimizer.learning_rate=0.1", "--config.train.epochs=4",
               "--config.optimizer.schedule={'name': 'piecewise', 'boundaries': [2], 'factor': 1e30, 'unit': 'epoch'}"]
  assert cli.main(["train", "--config", "digits_mlp:smoke", "--workdir", workdir, "--no-progress", *overrides]) == 2
  err = capsys.readouterr().err
  assert "became nan in epoch 3: the run diverged (the data is finite, with labels in range)" in err, err
  assert "last good checkpoint (epoch 2)" in err and "--resume --config.optimizer.learning_rate=<smaller>" in err
  assert "Traceback" not in err
  assert cli.main(["train", "--workdir", workdir, "--no-progress", "--resume",
                   "--config.optimizer.learning_rate=1e-31"]) == 0
  records = [json.loads(line) for line in open(f"{workdir}/metrics.jsonl")]
  assert [r["epoch"] for r in records] == [1, 2, 3, 4]
  assert all(np.isfinite(r["train_loss"]) for r in records)
  assert records[2]["learning_rate"] == pytest.approx(0.1, rel=1e-5)  # 1e-31 * 1e30: the schedule, recomputed
  summary = json.loads(open(f"{workdir}/summary.json").read())
  assert summary["changed_on_resume"] == {"optimizer.learning_rate": [0.1, 1e-31]}
  assert json.loads(open(f"{workdir}/config.json").read())["optimizer"]["learning_rate"] == 1e-31


@pytest.mark.slow  # trains runs
def test_a_constant_rate_changed_on_resume_is_set_in_the_restored_state(tmp_path):
  workdir = str(tmp_path / "run")
  first = [("optimizer.name", "sgd"), ("optimizer.learning_rate", "0.5"), ("train.epochs", "2"),
           ("train.progress_bar", "False")]
  train_and_evaluate(load_config("digits_mlp:smoke", first)[0], workdir)
  later, _ = load_config("digits_mlp:smoke", first[:1] + [("optimizer.learning_rate", "0.125"),
                                                          ("train.epochs", "3"), ("train.progress_bar", "False")])
  with pytest.warns(UserWarning, match=r"going on from step \d+ with optimizer.learning_rate=0.125 \(the run had 0.5\)"):
    result = train_and_evaluate(later, workdir, resume=True)
  assert [r["learning_rate"] for r in result.history] == [0.5, 0.5, 0.125]
