"""Multitask learning on digits: a shared trunk with a digit head and an auxiliary head.

Command:
  jaxreg train --config digits_multitask:parity    # digit (weight 1) + parity (weight 0.5)
  jaxreg train --config digits_multitask:above_4   # digit + "is the digit above 4?"
  jaxreg train --config digits_multitask:single    # the same network, the digit head only
  python bench/regularizers.py --suite multitask              # all three, 3 seeds, the table

The trunk (64-128-128, ReLU) is one module read by every head, so its
parameters are shared across tasks (Wang 2023, "Parameter Sharing" and
"Multitask Learning"); the loss is sum_t w_t * NLL_t with the weights in
``model.tasks`` (e.g. ``--config.model.tasks.parity=1.0``). Early stopping
watches the digit head's validation loss.

Expected result: test accuracy of the digit head about 0.97 for all three
(see docs/regularizers.md, from bench/regularizers.py).
"""

from jaxreg.config import base_config

AUXILIARY_WEIGHT = 0.5


def get_config(arg=None):
  name = arg or "parity"
  if name not in ("single", "parity", "above_4"):
    raise ValueError(f"unknown variant {name!r}; valid: single, parity, above_4")
  config = base_config()
  config.data.name = "digits"
  config.data.batch_size = 32
  config.data.val_fraction = 0.1
  config.model = dict(
      name="multitask_mlp",
      trunk_sizes=(128, 128),
      tasks={"label": 1.0} if name == "single" else {"label": 1.0, name: AUXILIARY_WEIGHT},
      dropout_rate=0.0,
  )
  config.train.epochs = 60
  config.train.early_stopping.monitor = "val_label_loss"
  return config
