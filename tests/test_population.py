"""Populations: each member trains as the same run alone; bootstrap resamples; ensemble combinations."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxreg.data import make_dataset
from jaxreg.models import make_model
from jaxreg.train import classification_objective, create_train_state, make_scan_epoch, make_train_step
from jaxreg.train.ensemble import combine, ensemble_metrics, expected_average_error, squared_errors
from jaxreg.train.population_fit import fit_population
from jaxreg.train.population import (
    bootstrap_indices,
    bootstrap_population,
    create_population,
    evaluate_ensemble,
    make_population_epoch,
    member,
    member_count,
    member_predictions,
    shuffle_keys,
)

SEEDS = (0, 3, 7)
BATCH = 32


@pytest.fixture(scope="module")
def setup():
  data = make_dataset("digits")
  model = make_model("mlp", num_outputs=10, hidden_sizes=(32,), dropout_rate=0.2)
  tx = optax.adam(1e-3)
  step = make_train_step(classification_objective(model.apply), tx)
  return data, model, tx, step


def _solo(data, model, tx, step, seed, x, y, epochs):
  state = create_train_state(model, tx, rng=jax.random.PRNGKey(seed), sample_x=data.train.x[:1])
  run = make_scan_epoch(step, shuffle_key=jax.random.PRNGKey(seed), num_examples=len(y), batch_size=BATCH)
  for epoch in range(1, epochs + 1):  # numbered from 1, as fit numbers them
    state, _ = run(state, x, y, epoch)
  return state


@pytest.mark.slow  # many compiled steps; the fast tier stays under 3 minutes
@pytest.mark.parametrize("bootstrap", [False, True])
def test_each_member_equals_the_same_run_alone_after_100_steps(setup, bootstrap):
  data, model, tx, step = setup
  x, y = jnp.asarray(data.train.x), jnp.asarray(data.train.y)
  n, epochs = len(y), 3  # 3 x 39 = 117 steps
  states = create_population(model, tx, seeds=SEEDS, sample_x=data.train.x[:1])
  assert member_count(states) == len(SEEDS)
  resamples = bootstrap_population(jax.random.PRNGKey(42), len(SEEDS), n) if bootstrap else None
  run = make_population_epoch(step, num_examples=n, batch_size=BATCH)
  for epoch in range(1, epochs + 1):
    states, metrics = run(states, shuffle_keys(SEEDS), resamples, x, y, epoch)
  assert metrics["loss"].shape == (len(SEEDS),)
  assert int(states.step[0]) >= 100
  for m, seed in enumerate(SEEDS):
    xs, ys = (x[resamples[m]], y[resamples[m]]) if bootstrap else (x, y)
    alone = _solo(data, model, tx, step, seed, xs, ys, epochs)
    for got, want in zip(jax.tree.leaves(member(states, m).params), jax.tree.leaves(alone.params), strict=True):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  first, second = (jax.tree.leaves(member(states, m).params)[0] for m in (0, 1))
  assert not np.allclose(first, second)  # the members differ


def test_create_population_compiles_the_initialization_once_and_each_member_is_its_seeds_state(setup, monkeypatch):
  import jaxreg.train.state

  data, model, tx, _ = setup
  seeds = (0, 3, 7, 11, 19)
  compiled, compile_once = [], jaxreg.train.state._compiled_once
  monkeypatch.setattr(jaxreg.train.state, "_compiled_once", lambda *a: compiled.append(a) or compile_once(*a))
  states = create_population(model, tx, seeds=seeds, sample_x=data.train.x[:1])
  assert len(compiled) == 1  # one program for all members (it was one per member: 32 members, 17 s on 2 cores)
  monkeypatch.undo()
  for m, seed in enumerate(seeds):
    alone = create_train_state(model, tx, rng=jax.random.PRNGKey(seed), sample_x=data.train.x[:1])
    for got, want in zip(jax.tree.leaves(member(states, m)), jax.tree.leaves(alone), strict=True):
      np.testing.assert_array_equal(got, want)  # bit for bit


def test_bootstrap_counts_are_binomial_and_about_63_percent_unique():
  n, draws = 500, 400
  resamples = np.asarray(bootstrap_population(jax.random.PRNGKey(0), draws, n))
  counts = np.stack([np.bincount(r, minlength=n) for r in resamples])  # (draws, n)
  assert counts.sum(1).tolist() == [n] * draws
  # Each example's count ~ Binomial(n, 1/n): mean 1, variance (1 - 1/n); P(0) = (1 - 1/n)^n.
  all_counts = counts.ravel()
  fourth = np.mean((all_counts - 1.0) ** 4)
  se_var = np.sqrt((fourth - all_counts.var() ** 2) / all_counts.size)  # the sample variance's standard error
  assert abs(all_counts.var() - (1 - 1 / n)) < 5 * se_var
  p_zero = (1 - 1 / n) ** n
  for value, expected in ((0, p_zero), (1, p_zero * n / (n - 1)), (2, 0.5 * p_zero * n / (n - 1))):
    observed = np.mean(all_counts == value)
    assert abs(observed - expected) < 5 * np.sqrt(expected * (1 - expected) / all_counts.size), value
  unique = (counts > 0).mean(1)
  assert abs(unique.mean() - (1 - p_zero)) < 5 * unique.std() / np.sqrt(draws)
  assert len({tuple(r[:20]) for r in resamples}) == draws  # members differ
  np.testing.assert_array_equal(bootstrap_indices(jax.random.fold_in(jax.random.PRNGKey(0), 5), n), resamples[5])


def test_combinations_against_numpy_by_hand():
  logits = np.array([[[2.0, 1.0, 0.0], [0.0, 0.0, 3.0]],
                     [[0.0, 2.5, 0.0], [1.0, 0.0, 0.0]],
                     [[1.0, 0.0, 0.5], [0.0, 2.0, 0.0]]])
  p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  combined = combine(logits)
  np.testing.assert_allclose(combined["mean_probabilities"], p.mean(0))
  geometric = np.prod(p, 0) ** (1 / 3)
  np.testing.assert_allclose(combined["geometric_mean"], geometric / geometric.sum(-1, keepdims=True))
  np.testing.assert_allclose(combined["majority_vote"], [[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3]])
  report = ensemble_metrics(logits, np.array([0, 2]))
  assert report["members"]["accuracy"] == [1.0, 0.0, 0.5]
  assert report["majority_vote"]["accuracy"] == 0.5  # example 2: a three-way tie goes to class 0
  np.testing.assert_allclose(report["mean_probabilities"]["loss"],
                             -np.mean(np.log(p.mean(0)[[0, 1], [0, 2]])))


@pytest.mark.parametrize(("k", "c"), [(1, 0.0), (4, 0.0), (4, 0.5), (10, 0.2), (10, 1.0)])
def test_the_average_of_k_members_has_error_v_over_k_plus_covariance_term(k, c):
  v, n = 1.0, 200_000
  g = np.random.default_rng(k * 10 + int(c * 10))
  covariance = np.full((k, k), c) + np.eye(k) * (v - c)
  errors = g.multivariate_normal(np.zeros(k), covariance, size=n).T  # (k, n)
  targets = g.normal(size=n)
  measured = squared_errors(targets[None] + errors, targets)
  expected = expected_average_error(v, c, k)
  se = np.std(errors.mean(0) ** 2) / np.sqrt(n)
  assert abs(measured["average"] - expected) < 4 * se + 1e-12
  np.testing.assert_allclose(measured["members"], v, atol=5 * np.sqrt(2 * v**2 / n))


def test_member_predictions_stack_every_member(setup):
  data, model, tx, _ = setup
  states = create_population(model, tx, seeds=SEEDS, sample_x=data.train.x[:1])
  logits = member_predictions(model.apply, states, data.test.x, batch_size=100)
  assert logits.shape == (len(SEEDS), len(data.test.y), 10)
  alone = model.apply({"params": member(states, 1).params}, data.test.x, train=False)[0]
  np.testing.assert_allclose(logits[1], alone, rtol=1e-5, atol=1e-6)
  report = ensemble_metrics(logits, data.test.y)
  assert len(report["members"]["accuracy"]) == len(SEEDS)


@pytest.mark.slow  # many compiled steps; the fast tier stays under 3 minutes
def test_a_masked_member_keeps_its_state_while_the_others_train(setup):
  data, model, tx, step = setup
  x, y = jnp.asarray(data.train.x), jnp.asarray(data.train.y)
  states = create_population(model, tx, seeds=SEEDS, sample_x=data.train.x[:1])
  run = make_population_epoch(step, num_examples=len(y), batch_size=BATCH)
  states, _ = run(states, shuffle_keys(SEEDS), None, x, y, 1)
  active = jnp.array([True, False, True])
  for epoch in (2, 3):
    states, _ = run(states, shuffle_keys(SEEDS), None, x, y, epoch, active)
  for m, epochs in enumerate((3, 1, 3)):
    alone = _solo(data, model, tx, step, SEEDS[m], x, y, epochs)
    assert int(member(states, m).step) == int(alone.step)
    for got, want in zip(jax.tree.leaves(member(states, m).params), jax.tree.leaves(alone.params), strict=True):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # end-to-end: whole runs
def test_fit_population_stops_each_member_on_its_own_and_keeps_its_best(setup):
  from jaxreg.train import EarlyStopping, make_eval_step

  data, model, _, _ = setup
  tx = optax.adam(1e-2)  # fast to overfit: members run out of patience at different epochs
  step = make_train_step(classification_objective(model.apply), tx)
  eval_step = make_eval_step(classification_objective(model.apply))
  seeds = (1, 2, 5, 9)
  states = create_population(model, tx, seeds=seeds, sample_x=data.train.x[:1])
  early = EarlyStopping(monitor="val_loss", mode="min", patience=2)
  result = fit_population(states, train_step=step, eval_step=eval_step, dataset=data, batch_size=BATCH,
                          epochs=25, seeds=seeds, early_stopping=early, restore_best=False)
  last = fit_population(states, train_step=step, eval_step=eval_step, dataset=data, batch_size=BATCH,
                        epochs=25, seeds=seeds, early_stopping=early, restore_best=True)
  x, y = jnp.asarray(data.train.x), jnp.asarray(data.train.y)
  assert all(s < 25 for s in result.stopped_epochs)
  for m, seed in enumerate(seeds):
    losses = [r["val_loss"][m] for r in result.history[:result.stopped_epochs[m]]]
    assert result.best_epochs[m] == 1 + int(np.argmin(losses))
    assert result.stopped_epochs[m] == result.best_epochs[m] + 2  # patience 2
    for kept, epochs in ((result, result.stopped_epochs[m]), (last, last.best_epochs[m])):
      alone = _solo(data, model, tx, step, seed, x, y, epochs)
      for got, want in zip(jax.tree.leaves(member(kept.states, m).params), jax.tree.leaves(alone.params), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  report = evaluate_ensemble(model.apply, last.states, data.test.x, data.test.y)
  assert len(report["members"]["accuracy"]) == len(seeds)
  # -log of the mean probability is at most the members' mean -log (convexity): always.
  assert report["mean_probabilities"]["loss"] <= np.mean(report["members"]["loss"])
  # Members that differ only in initialization and data order: the average beats the mean member here.
  assert report["mean_probabilities"]["accuracy"] >= np.mean(report["members"]["accuracy"])


@pytest.mark.slow  # many compiled steps; the fast tier stays under 3 minutes
def test_a_sweep_member_equals_the_run_with_its_hyperparameters_alone(setup):
  """Learning rate and L2 strength differ per member, traced inside one vmapped program."""
  from jaxreg.optim import adam
  from jaxreg.regularizers import l2

  data, model, _, _ = setup
  objective = classification_objective(model.apply)
  rates, alphas = jnp.array([1e-3, 3e-3, 1e-2]), jnp.array([0.0, 1e-3, 1e-2])

  def step_for(h):
    return make_train_step(l2(lambda step: h["l2"])(objective), adam(lambda count: h["lr"]))

  tx = adam(lambda count: 1e-3)  # the sweep's optimizer state: a schedule's, whatever the rate
  states = create_population(model, tx, seeds=SEEDS, sample_x=data.train.x[:1])
  run = make_population_epoch(step_for, num_examples=len(data.train.y), batch_size=BATCH, sweep=True)
  x, y = jnp.asarray(data.train.x), jnp.asarray(data.train.y)
  for epoch in range(1, 4):
    states, metrics = run(states, shuffle_keys(SEEDS), None, x, y, epoch, hyperparameters={"lr": rates, "l2": alphas})
  assert np.all(np.diff(np.asarray(metrics["l2_penalty"])) > 0)  # the penalty follows each member's alpha
  for m, seed in enumerate(SEEDS):
    alone_tx = adam(float(rates[m]))
    alone_step = make_train_step(l2(float(alphas[m]))(objective), alone_tx)
    alone = _solo(data, model, alone_tx, alone_step, seed, x, y, 3)
    for got, want in zip(jax.tree.leaves(member(states, m).params), jax.tree.leaves(alone.params), strict=True):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="needs hyperparameters"):
    run(states, shuffle_keys(SEEDS), None, x, y, 0)


@pytest.mark.slow  # end-to-end: whole runs
def test_the_docs_example_runs():
  import pathlib
  import re

  text = (pathlib.Path(__file__).parent.parent / "docs" / "ensembles.md").read_text()
  code = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0].replace("epochs=50", "epochs=2")
  namespace = {}
  exec(compile(code, "docs/ensembles.md", "exec"), namespace)
  assert len(namespace["result"].best_epochs) == 8
