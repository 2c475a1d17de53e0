"""jaxreg: regularization and optimization for deep learning as composable pure JAX functions.

Subpackages: ``jaxreg.models`` (``ModelFns``, MLP, RNN/LSTM/GRU),
``jaxreg.optim`` (optimizers as optax transforms, schedules),
``jaxreg.regularizers`` (objective transforms such as ``l2``, update
transforms such as ``max_norm``), ``jaxreg.data`` (digits, MNIST-1D,
``.npz``), ``jaxreg.train`` (``TrainState``, objectives, steps, ``fit`` and its hooks, checkpoints),
``jaxreg.parallel`` (pmap and sharded placements, multi-host),
``jaxreg.compilation`` (counting compiled programs, the persistent cache) and
``jaxreg.experiment`` (``build`` and ``run`` an experiment from a config, ``train_and_evaluate``).

References (cited by these short names in the docstrings):

* Goodfellow et al. 2016: I. Goodfellow, Y. Bengio and A. Courville, *Deep
  Learning*, MIT Press, chapters 7 (regularization) and 8 (optimization).
* Baskin et al. 2018: C. Baskin, A. Bronstein, A. Mendelson and A. Rosenberg,
  *Deep Learning on Computational Accelerators, Tutorial 4: Training Neural
  Networks*, Technion, 2018 (objectives, regularization, tricks of the trade).
* Wang 2023: L. Wang, *Deep Learning Lecture 6: Regularization and
  Optimization*, CRIPAC, Institute of Automation, Chinese Academy of Sciences,
  2023 (norm penalties, sparse representations, dropout, the optimizers).
* Sokolov: E. Sokolov, *Regularizing Neural Networks*, Deep|Bayes summer
  school lecture (HSE and Yandex) (normalization, early stopping as L2).
* Kang: U Kang, *Large Scale Data Analysis Using Deep Learning: Regularization
  for Deep Learning 2*, Seoul National University (tying and sharing,
  bagging, dropout, adversarial training, tangent propagation).
"""

__version__ = "0.1.0"
