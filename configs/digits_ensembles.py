"""Ensembles on scikit-learn's digits: seed ensembles, bagging and dropout, as populations of 5.

Command:
  jaxreg train --config digits_ensembles:seeds     # 5 members differing in initialization and data order
  jaxreg train --config digits_ensembles:bagging   # 5 members, each on its own bootstrap resample
  jaxreg train --config digits_ensembles:dropout   # 5 members with dropout 0.3 (digits_mlp as it is)
  jaxreg sweep --config digits_ensembles:sweep     # learning rate x L2 strength, 2 seeds each, one program
  jaxreg train --config digits_ensembles:smoke     # 3 members, 3 epochs, a few seconds
  python bench/ensembles.py                        # the 3-seed table of docs/ensembles.md

The members are ``digits_mlp`` (64-512-512-10, L2 1e-4, Adam, 100 epochs,
the epoch of the lowest validation loss kept) without dropout, or with its
dropout 0.3: member ``m`` is that run with ``train.seed = m``.

Expected result (3 seeds, bench/ensembles.py, docs/ensembles.md): every
variant within about half a point of 0.98: a single member is already at
97.9%, and the ensembles' gains are inside the seed-to-seed spread.
"""

from jaxreg.config import load_config

VARIANTS = ("seeds", "bagging", "dropout", "sweep", "smoke")


def _base_config(arg=None):
  """The packaged ``digits_mlp`` config (with ``:arg``) these rows start from."""
  return load_config(f"digits_mlp:{arg}" if arg else "digits_mlp")[0]


def get_config(arg=None):
  name = arg or "seeds"
  if name not in VARIANTS:
    raise ValueError(f"unknown config argument {arg!r}; valid: {', '.join(VARIANTS)}")
  config = _base_config("smoke" if name == "smoke" else None)
  if name != "dropout":
    config.model.dropout_rate = 0.0
  config.population.size = 3 if name == "smoke" else 5
  config.population.bootstrap = name == "bagging"
  if name == "sweep":
    config.population.size = 2
    config.population.sweep.optimizer = dict(learning_rate=(3e-4, 1e-3, 3e-3))
    config.population.sweep.regularizers = dict(l2=dict(alpha=(1e-5, 1e-4, 1e-3)))
  return config
