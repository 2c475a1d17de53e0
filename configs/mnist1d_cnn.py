"""A small 1-D CNN on MNIST-1D, with or without augmentation: the argument names the variant.

Command:
  jaxreg train --config mnist1d_cnn             # with augmentation
  jaxreg train --config mnist1d_cnn:plain       # the same CNN without it
  jaxreg train --config mnist1d_cnn:smoke       # 2 epochs, a few seconds

Three conv blocks of 32 channels (kernel 5, 'SAME' padding, ReLU, max-pooling
by 2), then the output layer; Adam (1e-3), batch 100, 100 epochs, the epoch
with the best validation accuracy kept. The MNIST-1D paper's CNN (three conv
layers of 25 channels) reaches about 94% test accuracy. The augmentation is
``mnist1d_mlp``'s: shifts of up to 8 steps, time stretch, Gaussian noise.

Expected result (3 seeds, ``python bench/data_regularizers.py``, docs/augmentation.md):
0.9480 +- 0.0066 test accuracy with the augmentation, 0.9083 +- 0.0015 without.
"""

from jaxreg.config import base_config
from jaxreg.data.mnist1d import AUGMENTATION


def get_config(arg=None):
  if arg not in (None, "smoke", "plain"):
    raise ValueError(f"unknown config argument {arg!r}; valid: smoke, plain")
  config = base_config()
  config.data.name = "mnist1d"
  config.data.batch_size = 100
  config.data.augment = () if arg == "plain" else AUGMENTATION
  config.model = dict(name="cnn", channels=(32, 32, 32), dims=1, kernel_size=5, pool=2)
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.train.epochs = 2 if arg == "smoke" else 100
  config.train.early_stopping.monitor = "val_accuracy"
  config.train.early_stopping.mode = "max"
  config.checkpoint.every = 0
  return config
