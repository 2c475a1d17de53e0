"""The Keras 3 script (JAX backend) that bench/startup.py times against ``jaxreg train --config digits_mlp:smoke``.

It does what the smoke run does, the way a Keras user would: scikit-learn's
digits with the same stratified 70/10/20 split, a 64-32-10 ReLU MLP with
dropout 0.3, Adam (1e-3) with an L2 penalty of 1e-4 on the weight matrices
(``L2(0.5e-4)``: Keras adds ``l2 * sum(w^2)``), batch 64, 3 epochs, validation
and test evaluation after every epoch, a checkpoint per epoch
(``ModelCheckpoint``), the best epoch's weights kept, metrics.jsonl and
summary.json in the work directory, and the summary printed.

  KERAS_BACKEND=jax python bench/startup_keras.py WORKDIR
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


class WriteMetrics(keras.callbacks.Callback):
  """A line of metrics.jsonl per epoch, with the test split's metrics."""

  def __init__(self, path, test):
    super().__init__()
    self.path, self.test = path, test

  def on_epoch_end(self, epoch, logs=None):
    test_loss, test_accuracy = self.model.evaluate(*self.test, verbose=0)
    record = dict(epoch=epoch + 1, val_loss=logs["val_loss"], val_accuracy=logs["val_accuracy"],
                  test_loss=test_loss, test_accuracy=test_accuracy)
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")


def main(workdir: str) -> None:
  keras.utils.set_random_seed(0)
  digits = load_digits()
  x, y = (digits.data / 16.0).astype("float32"), digits.target
  x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
  x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.1, random_state=0, stratify=y_rest)
  l2 = keras.regularizers.L2(0.5e-4)
  model = keras.Sequential([
      keras.Input((64,)), keras.layers.Dense(32, activation="relu", kernel_regularizer=l2), keras.layers.Dropout(0.3),
      keras.layers.Dense(10, kernel_regularizer=l2),
  ])
  model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  os.makedirs(os.path.join(workdir, "checkpoints"))
  checkpoints = keras.callbacks.ModelCheckpoint(os.path.join(workdir, "checkpoints", "{epoch}.weights.h5"),
                                                save_weights_only=True)
  best = keras.callbacks.ModelCheckpoint(os.path.join(workdir, "best.weights.h5"), save_weights_only=True,
                                         save_best_only=True, monitor="val_loss")
  history = model.fit(x_train, y_train, batch_size=64, epochs=3, validation_data=(x_val, y_val), verbose=0,
                      callbacks=[checkpoints, best, WriteMetrics(os.path.join(workdir, "metrics.jsonl"),
                                                                 (x_test, y_test))])
  model.load_weights(os.path.join(workdir, "best.weights.h5"))
  test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
  val_losses = history.history["val_loss"]
  summary = dict(test_accuracy=test_accuracy, test_loss=test_loss, epochs_run=3,
                 best_epoch=1 + val_losses.index(min(val_losses)))
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f)
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  main(sys.argv[1])
