"""Recurrent networks on MNIST-1D read as a sequence of 40 steps of one feature.

Command:
  jaxreg train --config mnist1d_rnn:gru      # or lstm, rnn

One recurrent layer of 128 units (orthogonal recurrent init, LSTM forget
bias 1), the final state read by a linear output; Adam (3e-3), gradients
clipped to global norm 1, batch 100, 3,600 / 400 / 1,000 examples; the
epoch with the best validation accuracy is kept.

Expected result: see docs/recurrent.md (the MNIST-1D paper reports 91% for its GRU).
"""

from jaxreg.config import base_config


def get_config(arg=None):
  cell = arg or "gru"
  if cell not in ("rnn", "lstm", "gru"):
    raise ValueError(f"unknown cell {cell!r}; valid: rnn, lstm, gru")
  config = base_config()
  config.data.name = "mnist1d"
  config.data.batch_size = 100
  config.model = dict(name=cell, hidden_sizes=(128,), output="last")
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.clip_global_norm = 1.0
  config.train.epochs = 100
  config.train.early_stopping.monitor = "val_accuracy"
  config.train.early_stopping.mode = "max"
  config.checkpoint.every = 5
  return config
