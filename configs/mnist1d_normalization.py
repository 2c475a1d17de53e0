"""The notes' normalization table on MNIST-1D's CNN: plain, weight norm, mean-only BN, BN, weight norm + mean-only BN.

Command:
  jaxreg train --config mnist1d_normalization:plain          # or weight_norm, mean_only, batch_norm,
  jaxreg train --config mnist1d_normalization:wn_mean_only   # (weight norm + mean-only batch norm)
  jaxreg train --config mnist1d_normalization:smoke          # 2 epochs of wn_mean_only, a few seconds
  python bench/normalization.py --part results               # every row, 3 seeds: docs/normalization.md

The lecture notes end their normalization lecture with Salimans and Kingma's
(2016) CIFAR-10 table (test error): plain 8.43%, weight norm 8.46%, mean-only
batch norm 8.52%, batch norm 8.05%, weight norm + mean-only batch norm 7.31%.
Here the rows are ``mnist1d_cnn:plain`` (three conv blocks of 32 channels,
kernel 5, max-pooling by 2, Adam 1e-3, batch 100, 100 epochs, the epoch of
the best validation accuracy kept) with one change each: ``weight_norm``
(every conv and dense layer ``w = g v / ||v||``, with the data-dependent
initialization on 500 training examples), ``mean_only`` (the batch mean
subtracted before each nonlinearity), ``batch_norm`` (the notes' batch norm,
unbiased running variance), and weight norm with mean-only batch norm.

On a CPU the runs stream their batches (``data.on_device='auto'`` does so
for a convolutional model): XLA runs convolutions inside a loop body (the
scanned epoch) about 12x slower than in a jitted step (jax-ml/jax#12868;
measured here 22 ms against 1.9 ms per step).

Expected result: the table in docs/normalization.md (bench/normalization.py).
"""

from jaxreg.config import load_config

ROWS = {
    "plain": {},
    "weight_norm": {"weight_norm": True},
    "mean_only": {"normalization": "mean_only"},
    "batch_norm": {"normalization": "batch_norm"},
    "wn_mean_only": {"weight_norm": True, "normalization": "mean_only"},
}


def _base_config(arg=None):
  """The packaged ``mnist1d_cnn`` config (with ``:arg``) these rows start from."""
  return load_config(f"mnist1d_cnn:{arg}" if arg else "mnist1d_cnn")[0]


def get_config(arg=None):
  name = arg or "plain"
  if name not in (*ROWS, "smoke"):
    raise ValueError(f"unknown config argument {arg!r}; valid: {', '.join(ROWS)}, smoke")
  config = _base_config("plain")
  change = ROWS["wn_mean_only" if name == "smoke" else name]
  for key, value in change.items():
    config.model[key] = value
  if change.get("weight_norm"):
    config.train.weight_norm_data_init = 500
  if name == "smoke":
    config.train.epochs = 2
  return config
