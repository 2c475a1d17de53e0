"""Experiment configs: one file per experiment, each with ``get_config(arg=None)``.

Installed as ``jaxreg.configs``, so ``jaxreg train --config digits_mlp`` works
from any directory; ``--config digits_mlp`` loads the file itself.
"""
