"""Writes ``tests/data/metric_rules_<commit>.json``: a run with the plateau cut and the momentum switch both firing.

The fixture was recorded at commit 34dc471, before the two rules became
metric-driven optax transforms; ``tests/test_momentum_switch.py`` checks that
the current code reproduces it. To record it again (or at another commit):

  git worktree add /tmp/old 34dc471 && cd /tmp/old && pip install -e . --no-deps
  python /path/to/tools/record_metric_rules.py --output /path/to/tests/data/metric_rules_34dc471.json
"""

import argparse
import json
import sys
import tempfile

OVERRIDES = [
    ("train.progress_bar", "False"), ("model.hidden_sizes", "(32,)"), ("optimizer.learning_rate", "0.05"),
    ("optimizer.momentum_off", "{'monitor': 'train_loss', 'min_delta': 0.05, 'patience': 1}"),
    ("optimizer.schedule", "{'name': 'plateau', 'monitor': 'val_loss', 'patience': 1, 'factor': 0.5}"),
    ("train.epochs", "10"),
]
KEYS = ("epoch", "learning_rate", "momentum", "train_loss", "val_loss")


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--output", required=True)
  parser.add_argument("--commit", default="34dc471", help="the commit the checkout is at, for the 'about' field")
  args = parser.parse_args()
  from jaxreg.config import load_config
  from jaxreg.experiment import train_and_evaluate

  config, _ = load_config("digits_optimizers:momentum", OVERRIDES)
  with tempfile.TemporaryDirectory() as workdir:
    result = train_and_evaluate(config, workdir + "/run")
    with open(workdir + "/run/metrics.jsonl") as f:
      records = [{k: json.loads(line)[k] for k in KEYS} for line in f]
  out = {
      "about": f"metrics.jsonl of this run, written by jaxreg at commit {args.commit} with "
               "tools/record_metric_rules.py (see its docstring to record it again)",
      "overrides": OVERRIDES,
      "records": records,
      "momentum_off_after_epoch": result.summary.get("momentum_off_after_epoch"),
  }
  with open(args.output, "w") as f:
    json.dump(out, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
