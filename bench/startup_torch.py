"""The PyTorch script that bench/startup.py times against ``jaxreg train --config digits_mlp:smoke``.

It does what the smoke run does, in plain PyTorch: scikit-learn's digits with
the same stratified 70/10/20 split, a 64-32-10 ReLU MLP with dropout 0.3, Adam
(1e-3) with an L2 penalty of 1e-4 on the weight matrices, batch 64, 3 epochs,
validation and test evaluation after every epoch, a checkpoint per epoch, the
best epoch's parameters kept, metrics.jsonl and summary.json in the work
directory, and the summary printed.

  python bench/startup_torch.py WORKDIR
"""

import json
import os
import sys

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def main(workdir: str) -> None:
  torch.manual_seed(0)
  digits = load_digits()
  x, y = torch.tensor(digits.data / 16.0, dtype=torch.float32), torch.tensor(digits.target)
  x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
  x_train, x_val, y_train, y_val = train_test_split(
      x_rest, y_rest, test_size=0.1, random_state=0, stratify=y_rest)
  model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                              torch.nn.Linear(32, 10))
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  kernels = [p for name, p in model.named_parameters() if name.endswith("weight")]
  os.makedirs(os.path.join(workdir, "checkpoints"))

  def evaluate(xs, ys):
    model.eval()
    with torch.no_grad():
      logits = model(xs)
    return torch.nn.functional.cross_entropy(logits, ys).item(), (logits.argmax(1) == ys).float().mean().item()

  best = (float("inf"), 0, None)
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as metrics:
    for epoch in range(1, 4):
      model.train()
      order = torch.randperm(len(y_train))
      for i in range(len(y_train) // 64):
        idx = order[i * 64:(i + 1) * 64]
        loss = torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
        loss = loss + 0.5e-4 * sum((k ** 2).sum() for k in kernels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
      (val_loss, val_acc), (test_loss, test_acc) = evaluate(x_val, y_val), evaluate(x_test, y_test)
      record = dict(epoch=epoch, val_loss=val_loss, val_accuracy=val_acc, test_loss=test_loss, test_accuracy=test_acc)
      metrics.write(json.dumps(record) + "\n")
      torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
                 os.path.join(workdir, "checkpoints", f"{epoch}.pt"))
      if val_loss < best[0]:
        best = (val_loss, epoch, {k: v.clone() for k, v in model.state_dict().items()})
  model.load_state_dict(best[2])
  test_loss, test_acc = evaluate(x_test, y_test)
  summary = dict(test_accuracy=test_acc, test_loss=test_loss, best_epoch=best[1], epochs_run=3)
  with open(os.path.join(workdir, "summary.json"), "w") as f:
    json.dump(summary, f)
  print(json.dumps(summary, indent=2))


if __name__ == "__main__":
  main(sys.argv[1])
