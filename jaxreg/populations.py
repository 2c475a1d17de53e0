"""A config's experiment trained as a population: member ``m`` is the run ``--config.train.seed=seeds[m]``.

:func:`build_population` builds the experiment once per seed and stacks
the initial states; :func:`train_population` trains them as one vmapped
program (:func:`jaxreg.train.fit_population`, optionally on bootstrap
resamples) and reports each member's test metrics and the ensemble's.
"""

import copy
from collections.abc import Sequence

import jax
import ml_collections

from jaxreg.experiment import Experiment, build, evaluation_variables
from jaxreg.train.ensemble import ensemble_metrics
from jaxreg.train.population import (
    PopulationResult,
    bootstrap_population,
    fit_population,
    member_predictions,
    stack,
)


def build_population(config: ml_collections.ConfigDict, seeds: Sequence[int]) -> tuple[Experiment, object]:
  """The experiment of ``config`` and the stacked initial states of the runs with ``train.seed = seeds[m]``.

  Each member's initialization and step key are exactly those of its run
  alone; its data order too, once trained with ``seeds`` as shuffle seeds.
  The experiment returned is built with the first of them (its step, evaluation and
  data are the same for every seed).
  """
  seeds = list(seeds)
  if not seeds:
    raise ValueError("seeds must name at least one member, e.g. range(5)")
  experiments = []
  for seed in seeds:
    member_config = copy.deepcopy(config)
    member_config.train.seed = seed
    experiments.append(build(member_config))
  return experiments[0], stack([e.initial_state for e in experiments])


def train_population(experiment: Experiment, states, seeds: Sequence[int], *, bootstrap_seed: int | None = None
                     ) -> tuple[PopulationResult, dict]:
  """Trains the population for the config's epochs, each member with the config's early stopping.

  Args:
    experiment: from :func:`build_population`.
    states: its stacked states.
    seeds: the members' seeds (their shuffle seeds).
    bootstrap_seed: train member ``m`` on the bootstrap resample
      ``fold_in(PRNGKey(bootstrap_seed), m)`` (bagging), or on the whole
      training split (``None``).

  Returns:
    The :class:`~jaxreg.train.population.PopulationResult` and a summary:
    ``{'members': {...}, 'mean_probabilities': {...}, 'geometric_mean':
    {...}, 'majority_vote': {...}, 'best_epochs', 'stopped_epochs'}`` on the
    test split (:func:`jaxreg.train.ensemble_metrics`).
  """
  options, dataset = experiment.options, experiment.dataset
  resamples = None
  if bootstrap_seed is not None:
    resamples = bootstrap_population(jax.random.PRNGKey(bootstrap_seed), len(list(seeds)), len(dataset.train.y))
  result = fit_population(
      states, train_step=experiment.train_step, eval_step=experiment.eval_step, dataset=dataset,
      batch_size=options.batch_size, epochs=options.epochs, seeds=seeds, resamples=resamples,
      early_stopping=experiment.early_stopping, restore_best=options.restore_best,
      eval_batch_size=options.eval_batch_size)
  evaluated = jax.vmap(lambda state: evaluation_variables(experiment, state))(result.states)
  logits = member_predictions(experiment.model.apply, result.states.replace(params=evaluated["params"]),
                              dataset.test.x, batch_size=options.eval_batch_size)
  summary = ensemble_metrics(logits, dataset.test.y)
  summary.update(best_epochs=result.best_epochs, stopped_epochs=result.stopped_epochs,
                 bootstrap=bootstrap_seed is not None)
  return result, summary


__all__ = ["build_population", "train_population"]
