"""Time to first result: whole-process wall time of a smoke run, jaxreg against the same PyTorch script.

  pip install -e ".[bench]" && python bench/startup.py            # 7 repeats, bench/results/startup.json
  python bench/startup.py --repeats 3 --output /tmp/startup.json  # a quick look

Each repeat runs, in a shuffled order, four processes from an empty
directory and times each from start to exit:

* **jaxreg cold**: ``jaxreg train --config digits_mlp:smoke`` with an empty
  persistent compilation cache (what the first run on a machine pays);
* **jaxreg warm**: the same command with the cache that an earlier run filled
  (every later run: a researcher rerunning small configs all day);
* **PyTorch**: ``bench/startup_torch.py``, which does what the smoke run does
  (same data and split, MLP, optimizer, epochs, evaluations, checkpoints and
  files) in plain PyTorch;
* **Keras 3**: ``bench/startup_keras.py``, the same in Keras 3 on its JAX
  backend (``fit`` with ``ModelCheckpoint`` and a callback for the files).

The ratios are paired (each repeat's jaxreg time over the same repeat's
PyTorch time), so the shared machine's drift cancels; the table gives their
median and range, and the number of XLA programs one run compiles.
"""

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "results", "startup.json")
JAXREG = [sys.executable, "-m", "jaxreg.cli", "train", "--config", "digits_mlp:smoke", "--no-progress"]
TORCH = [sys.executable, os.path.join(HERE, "startup_torch.py")]
KERAS = [sys.executable, os.path.join(HERE, "startup_keras.py")]
PEERS = ("torch", "keras")


def _timed(command: list[str], cwd: str) -> float:
  env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "JAXREG_COMPILATION_CACHE")}
  env["KERAS_BACKEND"] = "jax"
  start = time.perf_counter()
  subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  return time.perf_counter() - start


def _jaxreg(cache: str, workdir: str, scratch: str) -> tuple[float, dict]:
  seconds = _timed(JAXREG + ["--workdir", workdir, "--compilation-cache", cache], scratch)
  with open(os.path.join(scratch, workdir, "summary.json")) as f:
    summary = json.load(f)
  return seconds, summary["compilations"]


def run_repeat(index: int, scratch: str, warm_cache: str, rng: random.Random) -> dict:
  """One repeat: the four processes in a random order; returns their times and the compilation counts."""
  cold_cache = os.path.join(scratch, f"cold-cache-{index}")
  tasks = {
      "jaxreg_cold": lambda: _jaxreg(cold_cache, f"cold-{index}", scratch),
      "jaxreg_warm": lambda: _jaxreg(warm_cache, f"warm-{index}", scratch),
      "torch": lambda: (_timed(TORCH + [os.path.join(scratch, f"torch-{index}")], scratch), None),
      "keras": lambda: (_timed(KERAS + [os.path.join(scratch, f"keras-{index}")], scratch), None),
  }
  order = list(tasks)
  rng.shuffle(order)
  record = {"order": order}
  for name in order:
    record[name], compilations = tasks[name]()
    if compilations is not None:
      record[f"{name}_compilations"] = compilations
  shutil.rmtree(cold_cache)
  return record


def _stats(values: list[float]) -> dict:
  return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(records: list[dict]) -> dict:
  """Median wall times and the medians and ranges of the paired ratios to PyTorch and to Keras."""
  names = ("jaxreg_cold", "jaxreg_warm", *(peer for peer in PEERS if peer in records[0]))
  out = {name: _stats([r[name] for r in records]) for name in names}
  for name in names:
    for peer in PEERS:
      if peer in records[0] and peer != name:
        out[f"{name}_over_{peer}"] = _stats([r[name] / r[peer] for r in records])
  out["programs_per_run"] = records[0]["jaxreg_cold_compilations"]["programs"]
  out["warm_cache_hits"] = records[0]["jaxreg_warm_compilations"]["cache_hits"]
  return out


def _ratio(summary: dict, name: str, peer: str) -> str:
  ratio = summary.get(f"{name}_over_{peer}")
  return f"{ratio['median']:.2f}x ({ratio['min']:.2f}-{ratio['max']:.2f})" if ratio else "1.00x"


def table(summary: dict) -> str:
  """The README's table: each process's median wall time and its paired ratios to PyTorch and Keras."""
  peers = [peer for peer in PEERS if peer in summary]
  labels = {"torch": "PyTorch", "keras": "Keras 3"}
  rows = ["| process | wall s (median) | " + " | ".join(f"/ {labels[p]} (median of paired ratios, range)"
                                                         for p in peers) + " |",
          "|---|---:|" + "---:|" * len(peers)]
  for name, label in (("jaxreg_cold", "jaxreg, empty compilation cache"),
                      ("jaxreg_warm", "jaxreg, warm compilation cache"), ("torch", "PyTorch script"),
                      ("keras", "Keras 3 script (JAX backend)")):
    if name in summary:
      ratios = " | ".join(_ratio(summary, name, peer) for peer in peers)
      rows.append(f"| {label} | {summary[name]['median']:.2f} | {ratios} |")
  return "\n".join(rows)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=7)
  parser.add_argument("--seed", type=int, default=0, help="seed of the run order")
  parser.add_argument("--output", default=DEFAULT_OUTPUT)
  args = parser.parse_args()
  import jax
  import torch

  os.environ.setdefault("KERAS_BACKEND", "jax")
  import keras

  rng = random.Random(args.seed)
  records = []
  with tempfile.TemporaryDirectory(prefix="jaxreg-startup-") as scratch:
    warm_cache = os.path.join(scratch, "warm-cache")
    _jaxreg(warm_cache, "fill-the-cache", scratch)  # one run fills the warm cache; not timed
    _timed(TORCH + [os.path.join(scratch, "torch-warmup")], scratch)  # and warms the OS file cache alike
    _timed(KERAS + [os.path.join(scratch, "keras-warmup")], scratch)
    for index in range(args.repeats):
      records.append(run_repeat(index, scratch, warm_cache, rng))
      r = records[-1]
      print(f"repeat {index + 1}/{args.repeats}: cold {r['jaxreg_cold']:.2f} s, warm {r['jaxreg_warm']:.2f} s, "
            f"torch {r['torch']:.2f} s, keras {r['keras']:.2f} s", file=sys.stderr)
  summary = summarize(records)
  machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; jax {jax.__version__}, "
             f"torch {torch.__version__}, keras {keras.__version__}, Python {platform.python_version()}")
  print(f"{args.repeats} repeats; {machine}")
  print(table(summary))
  print(f"XLA programs per smoke run: {summary['programs_per_run']} "
        f"(warm: {summary['warm_cache_hits']} from the persistent cache)")
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump({"machine": machine, "repeats": records, "summary": summary}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
