"""MLP on MNIST-1D, unregularized or with one regularizer: the argument names it.

Command:
  jaxreg train --config configs/mnist1d_mlp.py:none      # or l2, dropout, ... (see VARIANTS)
  python bench/regularizers.py                           # every variant, 3 seeds, the table

Expected result: see the table in docs/regularizers.md (from bench/regularizers.py).
"""

from jaxreg.config import base_config

VARIANTS = ("none", "l2", "dropout", "early_stopping")


def get_config(arg=None):
  name = arg or "none"
  if name not in VARIANTS:
    raise ValueError(f"unknown variant {name!r}; valid: {', '.join(VARIANTS)}")
  config = base_config()
  config.data.name = "mnist1d"
  config.data.batch_size = 100
  config.model.hidden_sizes = (100, 100)
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.train.epochs = 200
  config.train.early_stopping.restore_best = False
  config.checkpoint.every = 0
  if name == "l2":
    config.regularizers.l2 = dict(alpha=1e-3)
  elif name == "dropout":
    config.model.dropout_rate = 0.3
  elif name == "early_stopping":
    config.train.early_stopping.restore_best = True
    config.train.early_stopping.monitor = "val_accuracy"
    config.train.early_stopping.mode = "max"
  return config
