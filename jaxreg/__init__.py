"""jaxreg: regularization and optimization for deep learning as composable pure JAX functions.

Subpackages: ``jaxreg.models`` (``ModelFns``, MLP), ``jaxreg.optim``
(optimizers as optax transforms), ``jaxreg.regularizers`` (objective
transforms such as ``l2``), ``jaxreg.data`` (digits, ``.npz``), ``jaxreg.train``
(``TrainState``, steps, ``fit``, checkpoints) and ``jaxreg.experiment``
(``train_and_evaluate`` for configs).
"""

__version__ = "0.1.0"
