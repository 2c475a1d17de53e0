"""MLP on MNIST-1D, unregularized or with one regularizer: the argument names it.

Command:
  jaxreg train --config mnist1d_mlp:none        # the unregularized baseline
  jaxreg train --config mnist1d_mlp:dropout     # or any name in VARIANTS
  python bench/regularizers.py                             # every variant, 3 seeds, the table

MNIST-1D (generated locally by the mnist1d package, generator seed 42):
3,600 training, 400 validation and 1,000 test examples of 40 features. The
network is 40-256-256-10 (ReLU), Adam (1e-3), batch 100, 200 epochs. Without
regularization it fits the training set exactly and generalizes poorly (the
MNIST-1D paper reports about 68% test accuracy for its MLP); every variant
changes one thing (``dropout_max_norm`` two), with the strength that had the
best validation accuracy on seed 0 among those in SWEEP
(``python bench/regularizers.py --sweep``; the test split is never used to choose).

Expected result: the table in docs/regularizers.md (from bench/regularizers.py):
the unregularized MLP reaches 100% training and about 64% test accuracy;
``:augment_dropout`` 0.8310 +- 0.0087 (docs/augmentation.md, bench/data_regularizers.py);
``:tangent_prop`` (shift tangents) 0.6940 +- 0.0060 against 0.6437 +- 0.0092 without (docs/adversarial.md,
bench/robustness.py).
"""

from jaxreg.config import base_config
from jaxreg.data.mnist1d import AUGMENTATION

# name -> what changes from the unregularized baseline
VARIANTS = {
    "none": {},
    "early_stopping": {"early_stopping": True},
    "l2": {"regularizers": {"l2": {"alpha": 3e-3}}},
    "l1": {"regularizers": {"l1": {"alpha": 3e-4}}},
    "elastic_net": {"regularizers": {"elastic_net": {"l1_alpha": 1e-4, "l2_alpha": 1e-3}}},
    "weight_decay": {"regularizers": {"weight_decay": {"rate": 1e-4}}},
    "prox_l1": {"regularizers": {"prox_l1": {"alpha": 1e-2}}},
    "max_norm": {"regularizers": {"max_norm": {"max_value": 4.0}}},
    "activation_l1": {"regularizers": {"activation_l1": {"alpha": 3e-3}}},
    "label_smoothing": {"regularizers": {"label_smoothing": {"eps": 0.2}}},
    "dropout": {"dropout_rate": 0.3},
    "dropout_max_norm": {"dropout_rate": 0.3, "regularizers": {"max_norm": {"max_value": 3.0}}},
    # Issue 14: the data regularizers. MNIST-1D's digits are templates shifted, scaled and noised, so
    # shifts, time stretch and noise are label-preserving; with dropout on the hidden units. Augmented
    # data takes longer to fit: 400 epochs (at 200 the validation accuracy was still rising).
    "augment": {"augment": AUGMENTATION, "epochs": 400},
    "augment_dropout": {"augment": AUGMENTATION, "dropout_rate": 0.3, "epochs": 400},
    # Issue 15: tangent propagation along the shift of the signal (Simard et al. 1992), the
    # infinitesimal form of the shift augmentation. (Adding the time-stretch tangent hurt on seed 0's
    # validation split: 0.61 at alpha 0.01, 0.45 at 0.1.)
    "tangent_prop": {"regularizers": {"tangent_prop": {"alpha": 0.1, "tangents": ("shift",)}}},
}


# The strengths tried by `python bench/regularizers.py --sweep` (validation accuracy, seed 0);
# VARIANTS holds the winners.
SWEEP = {
    "l2": ("regularizers.l2.alpha", (1e-3, 3e-3, 1e-2, 3e-2)),
    "l1": ("regularizers.l1.alpha", (1e-4, 3e-4, 1e-3, 3e-3)),
    "elastic_net": ("regularizers.elastic_net.l1_alpha", (3e-5, 1e-4, 3e-4, 1e-3)),
    "weight_decay": ("regularizers.weight_decay.rate", (3e-5, 1e-4, 3e-4, 1e-3)),
    "prox_l1": ("regularizers.prox_l1.alpha", (1e-3, 3e-3, 1e-2, 3e-2)),
    "max_norm": ("regularizers.max_norm.max_value", (0.5, 1.0, 2.0, 4.0, 8.0)),
    "activation_l1": ("regularizers.activation_l1.alpha", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)),
    "label_smoothing": ("regularizers.label_smoothing.eps", (0.05, 0.1, 0.2, 0.3)),
    "dropout": ("model.dropout_rate", (0.2, 0.3, 0.5, 0.6)),
    "dropout_max_norm": ("regularizers.max_norm.max_value", (1.0, 2.0, 3.0, 4.0)),
    "tangent_prop": ("regularizers.tangent_prop.alpha", (0.01, 0.1, 1.0)),
}


def get_config(arg=None):
  name = arg or "none"
  if name not in VARIANTS:
    raise ValueError(f"unknown variant {name!r}; valid: {', '.join(VARIANTS)}")
  change = VARIANTS[name]
  config = base_config()
  config.data.name = "mnist1d"
  config.data.batch_size = 100
  config.model.hidden_sizes = (256, 256)
  config.model.dropout_rate = change.get("dropout_rate", 0.0)
  config.data.augment = change.get("augment", ())
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  for regularizer, kwargs in change.get("regularizers", {}).items():
    config.regularizers[regularizer] = kwargs
  config.train.epochs = change.get("epochs", 200)
  # Without early stopping the run keeps its last epoch; with it, the epoch of the best validation accuracy.
  config.train.early_stopping.monitor = "val_accuracy"
  config.train.early_stopping.mode = "max"
  config.train.early_stopping.restore_best = bool(change.get("early_stopping", False))
  config.checkpoint.every = 0
  return config
