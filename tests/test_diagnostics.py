"""The per-epoch health checks: ||dW||/||W|| of the last step, the gradient norm, flags and plots."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg import cli
from jaxreg.data import load_digits
from jaxreg.models import make_mlp
from jaxreg.train import Context, classification_objective, create_train_state, fit, make_eval_step, make_train_step
from jaxreg.train.diagnostics import summarize_update_ratios, update_ratios


@pytest.fixture(scope="module")
def digits():
  return load_digits(seed=0)


def _state_and_steps(lr=1e-2):
  model = make_mlp(num_outputs=10, hidden_sizes=(16,))
  tx = optax.adam(lr)
  objective = classification_objective(model.apply)
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(0), sample_x=jnp.zeros((1, 64)))
  return state, make_train_step(objective, tx), make_train_step(objective, tx, diagnostics=True), objective


def test_update_ratios_match_numpy_and_skip_vectors(rng):
  params = {"a": {"kernel": rng.normal(size=(4, 3)), "bias": rng.normal(size=3)}, "b": rng.normal(size=(2, 2, 2))}
  updates = jax.tree.map(lambda p: 1e-3 * rng.normal(size=p.shape), params)
  ratios = update_ratios(params, updates)
  assert sorted(ratios) == ["update_ratio/a/kernel", "update_ratio/b"]
  expected = np.linalg.norm(updates["a"]["kernel"]) / np.linalg.norm(params["a"]["kernel"])
  assert float(ratios["update_ratio/a/kernel"]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow  # an end-to-end run: in the full suite, out of the fast tier
def test_diagnostic_step_takes_the_same_step_and_measures_it(digits):
  state, step, diagnostic_step, objective = _state_and_steps()
  batch = {"x": jnp.asarray(digits.train.x[:64]), "y": jnp.asarray(digits.train.y[:64])}
  plain, plain_metrics = jax.jit(step)(state, batch)
  measured, metrics = jax.jit(diagnostic_step)(state, batch)
  for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(measured.params), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert metrics["loss"] == pytest.approx(float(plain_metrics["loss"]), rel=1e-6)
  for name in ("dense_0", "output"):
    before = np.asarray(state.params[name]["kernel"], np.float64)
    after = np.asarray(measured.params[name]["kernel"], np.float64)
    expected = np.linalg.norm(after - before) / np.linalg.norm(before)
    assert float(metrics[f"update_ratio/{name}/kernel"]) == pytest.approx(expected, rel=1e-3)
  ctx = Context(rng=jax.random.PRNGKey(1), model_state=state.model_state, train=True, step=state.step)
  grads = jax.grad(lambda p: objective(p, batch, ctx)[0])(state.params)  # no dropout: the rng is unused
  expected_norm = np.sqrt(sum(np.sum(np.square(np.asarray(g, np.float64))) for g in jax.tree.leaves(grads)))
  assert float(metrics["last_grad_norm"]) == pytest.approx(expected_norm, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("on_device", ["always", "never"])
def test_fit_logs_diagnostics_without_changing_the_training(digits, on_device):
  state, step, diagnostic_step, objective = _state_and_steps()
  kwargs = dict(train_step=step, eval_step=make_eval_step(objective), dataset=digits, batch_size=128, epochs=3,
                progress=False, restore_best=False, data_on_device=on_device)
  plain = fit(state, **kwargs)
  measured = fit(state, diagnostic_step=diagnostic_step, **kwargs)
  for a, b in zip(jax.tree.leaves(plain.state.params), jax.tree.leaves(measured.state.params), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  for p, m in zip(plain.history, measured.history, strict=True):
    assert m["train_loss"] == pytest.approx(p["train_loss"], rel=1e-5)  # still the mean over all steps
    assert "last_grad_norm" not in p and m["last_grad_norm"] > 0
  keys = sorted(k for k in measured.history[0] if k.startswith("update_ratio/"))
  assert keys == ["update_ratio/dense_0/kernel", "update_ratio/output/kernel"]
  medians = measured.summary["update_ratio_median"]
  assert medians["output/kernel"] == pytest.approx(np.median([r["update_ratio/output/kernel"] for r in measured.history]))
  assert "update_ratio_median" in plain.summary and plain.summary["update_ratio_median"] == {}


def test_summary_flags_layers_outside_the_healthy_band():
  history = [
      {"update_ratio/slow/kernel": r1, "update_ratio/fine/kernel": r2, "update_ratio/fast/kernel": r3}
      for r1, r2, r3 in [(1e-6, 1e-3, 0.5), (2e-6, 2e-3, 0.3), (1e-3, 5e-4, 0.2)]
  ]
  summary = summarize_update_ratios(history)
  assert summary["update_ratio_median"]["slow/kernel"] == pytest.approx(2e-6)
  warnings = summary["update_ratio_warnings"]
  assert len(warnings) == 2
  assert any(w.startswith("slow/kernel") and "below" in w for w in warnings)
  assert any(w.startswith("fast/kernel") and "above" in w for w in warnings)


def test_a_non_finite_ratio_is_divergence_not_a_low_learning_rate():
  history = [{"update_ratio/dense/kernel": r} for r in (0.5, float("nan"), float("nan"))]
  (warning,) = summarize_update_ratios(history)["update_ratio_warnings"]
  assert "diverged" in warning and "too low" not in warning


def test_a_far_too_small_learning_rate_is_flagged(digits):
  state, step, diagnostic_step, objective = _state_and_steps(lr=1e-7)
  result = fit(state, train_step=step, diagnostic_step=diagnostic_step, eval_step=make_eval_step(objective),
               dataset=digits, batch_size=128, epochs=2, progress=False)
  flagged = {w.split(":")[0] for w in result.summary["update_ratio_warnings"]}
  assert flagged == {"dense_0/kernel", "output/kernel"}


def test_plot_command_draws_the_diagnostics(tmp_path, capsys):
  import json

  records = [
      {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "learning_rate": 0.1, "momentum": 0.9 if e < 3 else 0.0,
       "last_grad_norm": 1.0 / e, "update_ratio/dense_0/kernel": 1e-3 / e}
      for e in range(1, 5)
  ]
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
  assert cli.main(["plot", str(tmp_path)]) == 0
  out = capsys.readouterr().out.split()
  assert out == [str(tmp_path / "curves.png"), str(tmp_path / "curves_diagnostics.png")]
  for path in out:
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_plotting_keeps_the_callers_matplotlib_backend(tmp_path):
  """A notebook's backend stays as it is after jaxreg draws (and saves) a figure."""
  import subprocess
  import sys

  code = (
      "import matplotlib\n"
      "matplotlib.use('svg')\n"
      "from jaxreg.train.plotting import plot_learning_curves\n"
      "records = [{'epoch': e, 'train_loss': 1.0 / e, 'val_loss': 1.2 / e} for e in (1, 2, 3)]\n"
      f"plot_learning_curves(records, output={str(tmp_path / 'curves.png')!r})\n"
      "print(matplotlib.get_backend())\n"
  )
  run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert run.returncode == 0, run.stderr
  assert run.stdout.strip() == "svg"
  assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
