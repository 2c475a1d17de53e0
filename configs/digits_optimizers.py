"""The lecture notes' optimizers on digits: one config, the optimizer as its argument.

Command:
  jaxreg train --config digits_optimizers:adam      # or sgd, momentum, nesterov,
                                                               # adagrad, rmsprop, rmsprop_nesterov
  python bench/optimizers_digits.py                            # all of them, 3 seeds, the table

Expected result: every optimizer reaches 95% validation accuracy within 30
epochs (in 57 to 266 steps) and a test accuracy of 0.96-0.98 (3 seeds); the
table in the README (from bench/optimizers_digits.py) lists each one.

The model is the 64-256-256-10 ReLU MLP, no regularization, batch 64, 30
epochs. Learning rates are the usual starting points for each method (the
momentum methods' rate is 10x smaller than SGD's, since their steady-state
step is eps/(1 - alpha) = 10 eps).
"""

from jaxreg.config import base_config

LEARNING_RATES = {
    "sgd": 0.1,
    "momentum": 0.01,
    "nesterov": 0.01,
    "adagrad": 0.01,
    "rmsprop": 1e-3,
    "rmsprop_nesterov": 1e-4,
    "adam": 1e-3,
}


def get_config(arg=None):
  name = arg or "adam"
  if name not in LEARNING_RATES:
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(LEARNING_RATES)}")
  config = base_config()
  config.data.batch_size = 64
  config.model.hidden_sizes = (256, 256)
  config.optimizer.name = name
  config.optimizer.learning_rate = LEARNING_RATES[name]
  config.train.epochs = 30
  return config
