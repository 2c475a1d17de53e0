"""One process of the two-process localhost test (tests/test_multihost.py); not a test itself.

  python tests/multihost_worker.py ADDRESS NUM_PROCESSES PROCESS_ID OUTPUT_DIR MODE [MODE ...]

Starts JAX's distributed runtime and, for each MODE (``pmap``, ``sharded``),
trains one epoch of ``digits_mlp:smoke`` (no dropout, one hidden layer of
64) data-parallel with the other processes in ``OUTPUT_DIR/<MODE>``, then
saves the final parameters this process holds to
``OUTPUT_DIR/params_<MODE>_<PROCESS_ID>.npz``.
"""

import os
import sys


def main(address, num_processes, process_id, output_dir, *modes):
  from jaxreg.parallel import initialize_distributed

  initialize_distributed(address, int(num_processes), int(process_id))
  import jax
  import numpy as np

  from jaxreg.config import load_config
  from jaxreg.experiment import train_and_evaluate

  for mode in modes:
    config, _ = load_config("digits_mlp:smoke", [
        ("train.epochs", "1"), ("model.dropout_rate", "0.0"), ("model.hidden_sizes", "[64]"), ("parallel.mode", mode),
    ])
    config.train.progress_bar = False
    result = train_and_evaluate(config, os.path.join(output_dir, mode))
    leaves = jax.tree_util.tree_flatten_with_path(result.state.params)[0]
    np.savez(
        os.path.join(output_dir, f"params_{mode}_{process_id}.npz"),
        **{jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves},
        devices=np.asarray([jax.device_count(), jax.local_device_count(), jax.process_count()]),
    )


if __name__ == "__main__":
  main(*sys.argv[1:])
