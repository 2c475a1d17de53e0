"""Single models, dropout, seed ensembles and bagging, over seeds: the table of docs/ensembles.md.

Command (from the repository root):

  python bench/ensembles.py                 # both datasets, 3 seeds (about 15 minutes on 2 cores)
  python bench/ensembles.py --data digits --seeds 1

For each dataset, the packaged configs ``<data>_ensembles:seeds``,
``:bagging`` and ``:dropout`` (``digits_mlp`` with ``model.dropout_rate`` 0
and 0.3; ``mnist1d_mlp:none`` and ``:dropout``), each a population of 5
members (:func:`jaxreg.populations.train_population`: member ``m`` is the
run with ``train.seed = m``, its initialization and data order; checkpoints off):

* **single model**: the members' mean test accuracy (each member is an
  ordinary run of the config);
* **seed ensemble of 5**: the average of the 5 members' probabilities;
* **bagging ensemble of 5**: the same, each member trained on its own
  bootstrap resample of the training split (``population.bootstrap``).

Table seed ``s`` uses ``data.seed = s`` and the members' seeds ``5 s`` to
``5 s + 4``; the table gives mean +- standard deviation over ``s`` = 0, 1, 2.
Results go to ``bench/results/ensembles.json``.
"""

import argparse
import json
import os
import statistics

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "ensembles.json")
MEMBERS = 5
DATA = ("digits", "mnist1d")  # configs/<name>_ensembles.py


def population(config_name: str, seed: int) -> dict:
  import tempfile

  from jaxreg.config import load_config
  from jaxreg.populations import train_population

  config, _ = load_config(config_name, [("data.seed", str(seed)), ("checkpoint.every", "0"),
                                        ("train.progress_bar", "false"), ("population.size", str(MEMBERS)),
                                        ("train.seed", str(MEMBERS * seed))])
  with tempfile.TemporaryDirectory() as workdir:
    summary = train_population(config, workdir).summary
  return {"members": summary["members"], **summary["ensemble"]}


def rows(summaries: dict) -> dict:
  """``row -> [accuracy per table seed]`` from the populations' summaries."""
  single = lambda s: statistics.mean(s["members"]["test_accuracy"])  # noqa: E731
  average = lambda s: s["mean_probabilities"]["accuracy"]  # noqa: E731
  return {
      "single model": [single(s) for s in summaries["plain"]],
      "dropout": [single(s) for s in summaries["dropout"]],
      f"seed ensemble of {MEMBERS}": [average(s) for s in summaries["plain"]],
      f"bagging ensemble of {MEMBERS}": [average(s) for s in summaries["bagging"]],
      f"dropout, seed ensemble of {MEMBERS}": [average(s) for s in summaries["dropout"]],
      f"seed ensemble of {MEMBERS}, geometric mean": [s["geometric_mean"]["accuracy"] for s in summaries["plain"]],
      f"seed ensemble of {MEMBERS}, majority vote": [s["majority_vote"]["accuracy"] for s in summaries["plain"]],
  }


def table(results: dict) -> str:
  names = list(results)
  lines = ["| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
  row_names = list(next(iter(results.values()))["rows"])
  for row in row_names:
    cells = []
    for name in names:
      values = results[name]["rows"][row]
      sd = statistics.stdev(values) if len(values) > 1 else 0.0
      cells.append(f"{statistics.mean(values):.4f} +- {sd:.4f}")
    lines.append(f"| {row} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", nargs="*", default=list(DATA), choices=DATA)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--output", default=RESULTS)
  args = parser.parse_args()
  results = {}
  if os.path.exists(args.output):
    with open(args.output) as f:
      results = json.load(f).get("results", {})
  for name in args.data:
    summaries = {"plain": [], "bagging": [], "dropout": []}
    for seed in range(args.seeds):
      for row, variant in (("plain", "seeds"), ("bagging", "bagging"), ("dropout", "dropout")):
        summaries[row].append(population(f"{name}_ensembles:{variant}", seed))
      print(name, seed, {k: v[-1]["mean_probabilities"]["accuracy"] for k, v in summaries.items()}, flush=True)
    results[name] = {"summaries": summaries, "rows": rows(summaries)}
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
      json.dump({"results": results, "table": table(results)}, f, indent=2)
  print(table(results))


if __name__ == "__main__":
  main()
