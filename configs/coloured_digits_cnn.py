"""A small 2-D CNN on coloured digits, whose test split is in colours the training split never shows.

Command:
  jaxreg train --config coloured_digits_cnn:plain      # no augmentation
  jaxreg train --config coloured_digits_cnn:colour     # hue (any rotation) and saturation jitter
  jaxreg train --config coloured_digits_cnn:fancy_pca  # Fancy PCA (Krizhevsky et al. 2012) with hue
  jaxreg train --config coloured_digits_cnn:smoke      # 2 epochs, a few seconds

The digits' foregrounds have hues in [0, 0.5) turns in training and
validation and [0.5, 1) in the test split (``jaxreg.data.load_coloured_digits``).
The CNN is ``digits_cnn``'s (conv 32 and 64, 3x3, max-pooling, dense 128,
dropout 0.3); Adam (1e-3), batch 64, 60 epochs, the epoch with the lowest
validation loss kept. Colour augmentation should close part of the gap that
the colour shift opens.

Expected result (3 seeds, ``python bench/data_regularizers.py``, docs/augmentation.md):
test accuracy 0.2759 +- 0.0738 plain, 0.9574 +- 0.0058 with ``:colour``,
0.9593 +- 0.0070 with ``:fancy_pca``.
"""

from jaxreg.config import base_config

AUGMENTATIONS = {
    "plain": (),
    "colour": ({"name": "hue", "max_delta": 0.5}, {"name": "saturation", "lower": 0.5, "upper": 1.5}),
    "fancy_pca": ({"name": "fancy_pca", "std": 1.0}, {"name": "hue", "max_delta": 0.5}),
}


def get_config(arg=None):
  name = "plain" if arg in (None, "smoke") else arg
  if name not in AUGMENTATIONS:
    raise ValueError(f"unknown config argument {arg!r}; valid: smoke, {', '.join(AUGMENTATIONS)}")
  config = base_config()
  config.data.name = "coloured_digits"
  config.data.batch_size = 64
  config.data.augment = AUGMENTATIONS[name]
  config.model = dict(name="cnn", channels=(32, 64), dims=2, kernel_size=3, pool=2, dense_sizes=(128,),
                      dropout_rate=0.3)
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.train.epochs = 2 if arg == "smoke" else 60
  config.train.early_stopping.monitor = "val_loss"
  config.train.early_stopping.mode = "min"
  config.checkpoint.every = 0
  return config
