"""Ensembles on MNIST-1D: seed ensembles, bagging and dropout, as populations of 5 (one program each).

Command:
  jaxreg train --config mnist1d_ensembles:seeds     # 5 members differing in initialization and data order
  jaxreg train --config mnist1d_ensembles:bagging   # 5 members, each on its own bootstrap resample
  jaxreg train --config mnist1d_ensembles:dropout   # 5 members with dropout 0.3
  jaxreg sweep --config mnist1d_ensembles:sweep     # dropout rate 0, 0.1, 0.3, 0.5, 2 seeds each: sweep.png
  jaxreg train --config mnist1d_ensembles:smoke     # 3 members, 3 epochs, a few seconds
  python bench/ensembles.py                         # the 3-seed table of docs/ensembles.md

The members are ``mnist1d_mlp:none`` (40-256-256-10, Adam 1e-3, batch 100,
200 epochs, the last epoch kept) or ``mnist1d_mlp:dropout``: member ``m``
is that run with ``train.seed = m``. The summary holds each member's test
accuracy and the ensemble's (averaged probabilities, geometric mean, vote).

Expected result (3 seeds, bench/ensembles.py, docs/ensembles.md): single
members about 0.63; the seed ensemble of 5 about 3 points more; bagging
below the single members (each sees about 63% of the 3,600 examples); the
dropout members about 0.73 and their ensemble about 0.76.
"""

from jaxreg.config import load_config

VARIANTS = ("seeds", "bagging", "dropout", "sweep", "smoke")


def _base_config(arg=None):
  """The packaged ``mnist1d_mlp`` config (with ``:arg``) these rows start from."""
  return load_config(f"mnist1d_mlp:{arg}" if arg else "mnist1d_mlp")[0]


def get_config(arg=None):
  name = arg or "seeds"
  if name not in VARIANTS:
    raise ValueError(f"unknown config argument {arg!r}; valid: {', '.join(VARIANTS)}")
  config = _base_config("dropout" if name == "dropout" else "none")
  config.population.size = 5
  config.population.bootstrap = name == "bagging"
  if name == "sweep":
    config.population.size = 2
    config.population.sweep.model = dict(dropout_rate=(0.0, 0.1, 0.3, 0.5))
  if name == "smoke":
    config.population.size = 3
    config.train.epochs = 3
  return config
