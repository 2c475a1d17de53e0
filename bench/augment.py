"""Augmentation's cost inside the compiled epoch, and the image pipeline against torchvision.transforms.v2.

Command (from the repository root):

  python bench/augment.py                  # both parts, 5 repeats (a few minutes on 2 cores)
  python bench/augment.py --part overhead  # the step-time overhead only (needs no torch)
  python bench/augment.py --part images    # the throughput comparison only

The comparison needs torchvision, which imports only beside the torch it was
built for: ``pip install torch==2.14.1 torchvision==0.29.1`` (x86-64; see the
README's benchmark note), in a virtual environment of its own, since the test
extras pin torch 2.13.0, whose torchvision does not import beside the CPU
wheel.

Part 1, ``overhead``: steady-state training steps per second of the MNIST-1D
MLP (``configs/mnist1d_mlp.py:none`` against ``:augment``: shift, time
stretch, noise) and of the digits CNN (``configs/digits_cnn.py:plain``
against the default: translation and noise), each through
``train_and_evaluate``, the run a user gets. The overhead is
``plain / augmented - 1`` per repeat (runs interleaved), median and range.

Part 2, ``images``: per-example throughput of one image pipeline, the same
transforms with a fresh draw per image in both libraries: horizontal flip,
affine (rotation 15 degrees, zoom 0.9-1.1, shear 10 degrees, bilinear),
brightness, contrast, saturation and hue, on a batch of 32x32 RGB images.
jaxreg: ``per_example(chain(...))`` jitted over the batch.
torchvision: ``v2.Compose`` called per image (a fresh draw per image; on a
batch tensor v2 draws one set of parameters for the whole batch, reported as
well for reference). Results go to ``bench/results/augment.json``.
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "augment.json")
PAIRS = {  # name -> (config without augmentation, config with it)
    "mnist1d_mlp": ("mnist1d_mlp:none", "mnist1d_mlp:augment"),
    "digits_cnn": ("digits_cnn:plain", "digits_cnn"),
}


def steps_per_second(config_name: str, epochs: int) -> float:
  from jaxreg.config import load_config
  from jaxreg.experiment import train_and_evaluate

  overrides = [("train.epochs", str(epochs)), ("checkpoint.every", "0"), ("train.progress_bar", "false"),
               ("train.early_stopping.restore_best", "false")]
  config, _ = load_config(config_name, overrides)
  with tempfile.TemporaryDirectory() as workdir:
    result = train_and_evaluate(config, workdir)
  return result.summary["steps_per_second"]


def overhead(repeats: int, epochs: int) -> dict:
  results = {}
  for name, (plain, augmented) in PAIRS.items():
    ratios, speeds = [], {"plain": [], "augmented": []}
    for _ in range(repeats):
      a, b = steps_per_second(plain, epochs), steps_per_second(augmented, epochs)
      speeds["plain"].append(a)
      speeds["augmented"].append(b)
      ratios.append(a / b - 1.0)
    results[name] = {"overhead_median": statistics.median(ratios), "overhead_min": min(ratios),
                     "overhead_max": max(ratios), "steps_per_second": speeds}
    print(f"{name}: augmentation adds {100 * statistics.median(ratios):.1f}% to the step time "
          f"(range {100 * min(ratios):.1f}% .. {100 * max(ratios):.1f}%, {repeats} interleaved repeats)")
  return results


def jaxreg_pipeline():
  import jax

  from jaxreg import augment

  pipeline = augment.chain(
      augment.horizontal_flip(0.5), augment.affine(15, (0.9, 1.1), 10),
      augment.brightness(0.2), augment.contrast(0.8, 1.2), augment.saturation(0.8, 1.2), augment.hue(0.05),
  )
  return jax.jit(augment.per_example(pipeline))


def torchvision_pipeline():
  from torchvision.transforms import v2

  return v2.Compose([
      v2.RandomHorizontalFlip(0.5), v2.RandomAffine(degrees=15, scale=(0.9, 1.1), shear=10),
      v2.ColorJitter(brightness=0.2, contrast=(0.8, 1.2), saturation=(0.8, 1.2), hue=0.05),
  ])


def _best_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def images(repeats: int, batch: int) -> dict:
  import jax
  import torch

  rng = np.random.default_rng(0)
  x = rng.uniform(size=(batch, 32, 32, 3)).astype(np.float32)
  ours, theirs = jaxreg_pipeline(), torchvision_pipeline()
  x_jax, x_torch = jax.device_put(x), torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
  key = jax.random.PRNGKey(0)
  ours(key, x_jax).block_until_ready()  # compile
  results = {"batch": batch, "torch_threads": torch.get_num_threads()}
  rows = {
      "jaxreg": lambda: ours(key, x_jax).block_until_ready(),
      "torchvision_per_image": lambda: [theirs(image) for image in x_torch],
      "torchvision_one_draw_per_batch": lambda: theirs(x_torch),
  }
  speeds = {}
  for _ in range(repeats):  # interleaved, best of each
    for name, fn in rows.items():
      speeds.setdefault(name, []).append(batch / _best_seconds(fn, 1))
  for name, values in speeds.items():
    results[name] = max(values)
  results["ratio_per_image"] = results["jaxreg"] / results["torchvision_per_image"]
  results["ratio_one_draw_per_batch"] = results["jaxreg"] / results["torchvision_one_draw_per_batch"]
  import torchvision

  results["versions"] = {"jax": jax.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__}
  print(f"images per second ({batch} images of 32x32x3, best of {repeats}):")
  for name in rows:
    print(f"  {name:32s} {results[name]:12,.0f}")
  print(f"jaxreg / torchvision (a fresh draw per image): {results['ratio_per_image']:.1f}x; "
        f"against one draw per batch: {results['ratio_one_draw_per_batch']:.1f}x")
  return results


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--part", choices=("all", "overhead", "images"), default="all")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--epochs", type=int, default=6, help="epochs per overhead run (the first is compilation)")
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--output", default=RESULTS)
  args = parser.parse_args()
  results = {"machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()}}
  if args.part in ("all", "overhead"):
    results["overhead"] = overhead(args.repeats, args.epochs)
  if args.part in ("all", "images"):
    results["images"] = images(args.repeats, args.batch)
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump(results, f, indent=2)
  print(f"results written to {args.output}")


if __name__ == "__main__":
  main()
