"""Adversarial training and tangent propagation: their cost per step, and their results over seeds.

Command (from the repository root):

  python bench/robustness.py --part cost              # step times, side by side (a few minutes on 2 cores)
  python bench/robustness.py --part results           # every row, 3 seeds (about an hour on 2 cores)
  python bench/robustness.py --part results --rows tangent --seeds 1   # some rows

Part ``cost``: one training step of the digits MLP and CNN
(``configs/digits_adversarial.py``: ``mlp`` and ``cnn``, inputs read as 8x8
images in every variant), built from the config as ``jaxreg train`` builds
it, then with one regularizer added:
tangent propagation with one tangent (``translate_x``) and with two, FGSM
training, PGD training with 5 steps. Each is ``STEPS`` steps in one jitted
loop on one batch; the loops run interleaved, ``--repeats`` times, and each
repeat gives the ratio to the plain step (median and range reported).

Part ``results``: each row is a config (``configs/<file>.py:<argument>``)
run as ``jaxreg train`` runs it, for seeds 0, 1, 2 (``train.seed`` and
``data.seed``), checkpoints off: the test accuracy and, where the config
asks for it (``train.robust_eval``), the test accuracy under PGD at each eps.
Two rows are not trained: the 1-nearest-neighbour classifier on the same 10%
of digits, with the Euclidean distance and with the one-sided tangent
distance (translations, rotation, scale;
:mod:`jaxreg.models.tangent_distance`), the notes' baseline for tangent
propagation.

Results go to ``bench/results/robustness.json``.
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "robustness.json")
STEPS = 100
VARIANTS = {  # name -> the regularizers section added to the config (None: as the config is)
    "plain": None,
    "tangent_prop (1 tangent)": {"tangent_prop": {"alpha": 0.01, "tangents": ["translate_x"]}},
    "tangent_prop (2 tangents)": {"tangent_prop": {"alpha": 0.01, "tangents": ["translate_x", "translate_y"]}},
    "adversarial FGSM": {"adversarial": {"eps": 0.1, "clip": (0.0, 1.0)}},
    "adversarial PGD, 5 steps": {"adversarial": {"eps": 0.1, "attack": "pgd", "steps": 5, "clip": (0.0, 1.0)}},
}
MODELS = {"digits MLP 64-512-512-10": "digits_adversarial:mlp", "digits CNN 32-64 conv, 128 dense": "digits_adversarial:cnn"}
ROWS = {  # row -> (group, config)
    "adv_mlp": ("adversarial", "digits_adversarial:mlp"),
    "adv_mlp_fgsm": ("adversarial", "digits_adversarial:mlp_fgsm"),
    "adv_mlp_pgd": ("adversarial", "digits_adversarial:mlp_pgd"),
    "adv_cnn": ("adversarial", "digits_adversarial:cnn"),
    "adv_cnn_fgsm": ("adversarial", "digits_adversarial:cnn_fgsm"),
    "adv_cnn_pgd": ("adversarial", "digits_adversarial:cnn_pgd"),
    "tangent_mlp": ("tangent", "digits_tangent:mlp"),
    "tangent_mlp_tangent": ("tangent", "digits_tangent:mlp_tangent"),
    "tangent_mlp_augment": ("tangent", "digits_tangent:mlp_augment"),
    "tangent_cnn": ("tangent", "digits_tangent:cnn"),
    "tangent_cnn_tangent": ("tangent", "digits_tangent:cnn_tangent"),
    "tangent_cnn_augment": ("tangent", "digits_tangent:cnn_augment"),
    "nn_euclidean": ("tangent", "nearest_neighbour:euclidean"),
    "nn_tangent_distance": ("tangent", "nearest_neighbour:tangent_distance"),
    "tangent_mnist1d": ("tangent", "mnist1d_mlp:none"),
    "tangent_mnist1d_tangent": ("tangent", "mnist1d_mlp:tangent_prop"),
}


def _step_loop(config_name: str, regularizers):
  """A jitted loop of ``STEPS`` training steps on one batch, and the state it starts from."""
  import jax

  from jaxreg.config import load_config
  from jaxreg.experiment import build

  config = load_config(config_name)[0]
  config.data.example_shape = (8, 8, 1)  # images, for the tangents (the MLP flattens them), in every variant
  for name, kwargs in (regularizers or {}).items():
    config.regularizers[name] = kwargs
  config.train.diagnostics = False
  experiment = build(config)
  size = experiment.options.batch_size
  batch = {"x": jax.device_put(experiment.dataset.train.x[:size]), "y": jax.device_put(experiment.dataset.train.y[:size])}
  step = experiment.train_step
  loop = jax.jit(lambda state: jax.lax.fori_loop(0, STEPS, lambda i, s: step(s, batch)[0], state))
  return experiment.initial_state, loop


def step_cost(config_name: str, repeats: int) -> dict:
  """Each variant's step time and its ratio to the plain step, interleaved ``repeats`` times."""
  import jax

  loops = {name: _step_loop(config_name, regs) for name, regs in VARIANTS.items()}
  for state, loop in loops.values():
    jax.block_until_ready(loop(state))  # compile
  seconds = {name: [] for name in loops}
  for _ in range(repeats):
    for name, (state, loop) in loops.items():
      start = time.perf_counter()
      jax.block_until_ready(loop(state))
      seconds[name].append((time.perf_counter() - start) / STEPS)
  report = {}
  for name, times in seconds.items():
    ratios = [t / p for t, p in zip(times, seconds["plain"], strict=True)]
    report[name] = {"step_us": 1e6 * statistics.median(times), "ratio": statistics.median(ratios),
                    "ratio_range": [min(ratios), max(ratios)]}
  return report


def nearest_neighbour(distance: str, seed: int) -> dict:
  """1-nearest neighbour on digits_tangent's 10% training split: Euclidean or the one-sided tangent distance."""
  import numpy as np

  from jaxreg.augment import make_tangents
  from jaxreg.config import load_config
  from jaxreg.data import make_dataset
  from jaxreg.models.tangent_distance import fit_tangent_distance, predict_tangent_distance

  data_cfg = load_config("digits_tangent:mlp", [("data.seed", str(seed))])[0].data
  data = make_dataset("digits", seed=seed, train_fraction=data_cfg.train_fraction,
                      example_shape=tuple(data_cfg.example_shape))
  names = ["translate_x", "translate_y", "rotate", "scale"] if distance == "tangent_distance" else []
  if names:
    predicted = predict_tangent_distance(fit_tangent_distance(data.train.x, data.train.y, make_tangents(names)),
                                         data.test.x)
  else:
    train, test = data.train.x.reshape(len(data.train.x), -1), data.test.x.reshape(len(data.test.x), -1)
    predicted = data.train.y[np.argmin(((test[:, None] - train[None]) ** 2).sum(-1), axis=1)]
  return {"test_accuracy": float(np.mean(predicted == data.test.y)), "tangents": names}


def run_row(config_name: str, seed: int) -> dict:
  from jaxreg.config import load_config

  if config_name.startswith("nearest_neighbour:"):
    return nearest_neighbour(config_name.partition(":")[2], seed)
  from jaxreg.experiment import train_and_evaluate

  overrides = [("train.seed", str(seed)), ("data.seed", str(seed)), ("checkpoint.every", "0"),
               ("train.progress_bar", "false")]
  config, _ = load_config(config_name, overrides)
  with tempfile.TemporaryDirectory() as workdir:
    summary = train_and_evaluate(config, workdir).summary
  row = {"test_accuracy": summary["test_accuracy"], "best_epoch": summary.get("best_epoch"),
         "wall_seconds": summary.get("wall_seconds")}
  if "robust" in summary:
    row["pgd"] = {"eps": summary["robust"]["pgd"]["eps"], "accuracy": summary["robust"]["pgd"]["accuracy"]}
  return row


def _mean_sd(values) -> str:
  sd = statistics.stdev(values) if len(values) > 1 else 0.0
  return f"{statistics.mean(values):.4f} +- {sd:.4f}"


def tables(runs: dict) -> str:
  lines = []
  adversarial = [r for r in ROWS if ROWS[r][0] == "adversarial" and runs.get(r)]
  if adversarial:
    eps = runs[adversarial[0]][0]["pgd"]["eps"]
    lines += ["| config | clean test accuracy | " + " | ".join(f"PGD eps {e:g}" for e in eps) + " | seeds |",
              "|---|---|" + "---|" * len(eps) + "---|"]
    for row in adversarial:
      results = runs[row]
      pgd = [_mean_sd([r["pgd"]["accuracy"][i] for r in results]) for i in range(len(eps))]
      lines.append(f"| `{ROWS[row][1]}` | {_mean_sd([r['test_accuracy'] for r in results])} | "
                   + " | ".join(pgd) + f" | {len(results)} |")
    lines.append("")
  tangent = [r for r in ROWS if ROWS[r][0] == "tangent" and runs.get(r)]
  if tangent:
    lines += ["| config | test accuracy | seeds |", "|---|---|---|"]
    for row in tangent:
      lines.append(f"| `{ROWS[row][1]}` | {_mean_sd([r['test_accuracy'] for r in runs[row]])} | {len(runs[row])} |")
  return "\n".join(lines)


def cost_table(cost: dict) -> str:
  lines = ["| model | step | time per step (us) | ratio to plain (median, range) |", "|---|---|---|---|"]
  for model, variants in cost.items():
    for name, r in variants.items():
      lines.append(f"| {model} | {name} | {r['step_us']:.0f} | {r['ratio']:.2f} "
                   f"({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f}) |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--part", choices=("cost", "results", "all"), default="all")
  parser.add_argument("--rows", nargs="*", default=list(ROWS),
                      help="row names, or 'adversarial' / 'tangent' for a group")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--output", default=RESULTS)
  args = parser.parse_args()
  saved = {}
  if os.path.exists(args.output):
    with open(args.output) as f:
      saved = json.load(f)

  def save():
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as f:
      json.dump(saved, f, indent=2)

  if args.part in ("cost", "all"):
    import jax

    saved["cost"] = {model: step_cost(config, args.repeats) for model, config in MODELS.items()}
    saved["cost_machine"] = {"device": jax.devices()[0].device_kind, "cpus": os.cpu_count(),
                             "python": platform.python_version(), "jax": jax.__version__, "steps": STEPS,
                             "repeats": args.repeats}
    saved["cost_table"] = cost_table(saved["cost"])
    save()
    print(saved["cost_table"])
  if args.part in ("results", "all"):
    from tqdm.auto import tqdm

    rows = [r for r in ROWS if r in args.rows or ROWS[r][0] in args.rows]
    runs = saved.setdefault("runs", {})
    for row in rows:
      runs[row] = []
    for row, seed in tqdm([(row, seed) for row in rows for seed in range(args.seeds)], desc="runs"):
      runs[row].append({"seed": seed, **run_row(ROWS[row][1], seed)})
      saved["table"] = tables(runs)
      save()
    print(saved["table"])


if __name__ == "__main__":
  main()
