"""Sequential digits: each 8x8 image read row by row, 8 steps of 8 pixels.

Command:
  jaxreg train --config digits_rnn:gru      # or lstm, rnn

One recurrent layer of 128 units, the final state read by a linear output;
Adam (3e-3), gradients clipped to global norm 1, batch 64, 60 epochs, the
epoch with the best validation accuracy kept.

Expected result: test accuracy about 0.97-0.98 for the GRU and LSTM (docs/recurrent.md).
"""

from jaxreg.config import base_config


def get_config(arg=None):
  cell = arg or "gru"
  if cell not in ("rnn", "lstm", "gru"):
    raise ValueError(f"unknown cell {cell!r}; valid: rnn, lstm, gru")
  config = base_config()
  config.data.name = "digits"
  config.data.batch_size = 64
  config.model = dict(name=cell, hidden_sizes=(128,), output="last", sequence_length=8)
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.clip_global_norm = 1.0
  config.train.epochs = 60
  config.train.early_stopping.monitor = "val_accuracy"
  config.train.early_stopping.mode = "max"
  config.checkpoint.every = 5
  return config
