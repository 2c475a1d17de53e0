"""Augmentation's cost inside the compiled epoch, and the image pipeline against torchvision.transforms.v2.

Command (from the repository root):

  python bench/augment.py                  # both parts, 5 repeats (a few minutes on 2 cores)
  python bench/augment.py --part overhead  # the step-time overhead only (needs no torch)
  python bench/augment.py --part images    # the throughput comparison only

The comparison needs torchvision, which imports only beside the torch it was
built for. The test extras pin torch 2.13.0 (CPU wheel), and its torchvision,
0.28.0, fails to import beside that wheel ("operator torchvision::nms does not
exist"); so this part runs in a virtual environment of its own:
``python -m venv /tmp/bench && /tmp/bench/bin/pip install torch==2.14.1
torchvision==0.29.1 -e .`` (x86-64; the recorded numbers come from that).

Part 1, ``overhead``: the time of one training step of the MNIST-1D MLP
(``configs/mnist1d_mlp.py``) and of the digits CNN (``configs/digits_cnn.py``),
built from the configs as ``jaxreg train`` builds them, without and with
their augmentation (``mnist1d_mlp:augment``: shift, time stretch, noise;
``digits_cnn``: translation, noise) as the step's batch transform: 200 steps
in one jitted loop on one batch, the two loops interleaved, the overhead
``augmented / plain - 1`` per repeat (median and range); then each item of
the augmentation alone, to show where the time goes.

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
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "augment.json")
STEPS = 200  # training steps per timed loop
PAIRS = {  # name -> (config without augmentation, config with it)
    "mnist1d_mlp": ("mnist1d_mlp:none", "mnist1d_mlp:augment"),
    "digits_cnn": ("digits_cnn:plain", "digits_cnn"),
}


def _step_loops(config_name: str, specs) -> tuple:
  """Two jitted loops of ``STEPS`` training steps on one batch: without and with ``specs`` as the batch transform."""
  import jax

  from jaxreg.augment import as_batch_transform, make_augmentation
  from jaxreg.config import load_config
  from jaxreg.experiment import build
  from jaxreg.train.step import with_batch_transform

  experiment = build(load_config(config_name)[0])
  size = experiment.options.batch_size
  batch = {"x": jax.device_put(experiment.dataset.train.x[:size]), "y": jax.device_put(experiment.dataset.train.y[:size])}
  augmented = with_batch_transform(
      experiment.train_step, as_batch_transform(make_augmentation(list(specs), train_x=experiment.dataset.train.x)))

  def loop(step):
    return jax.jit(lambda state: jax.lax.fori_loop(0, STEPS, lambda i, s: step(s, batch)[0], state))

  return experiment.initial_state, loop(experiment.train_step), loop(augmented)


def step_overhead(config_name: str, specs, repeats: int) -> dict:
  """Step time without and with the augmentation, interleaved ``repeats`` times: medians and the overhead."""
  import jax

  state, plain, augmented = _step_loops(config_name, specs)
  times = {"plain": [], "augmented": []}
  for f in (plain, augmented):
    jax.block_until_ready(f(state))  # compile
  for _ in range(repeats):
    for name, f in (("plain", plain), ("augmented", augmented)):
      start = time.perf_counter()
      jax.block_until_ready(f(state))
      times[name].append((time.perf_counter() - start) / STEPS)
  ratios = [a / p - 1.0 for p, a in zip(times["plain"], times["augmented"], strict=True)]
  return {"plain_us": 1e6 * statistics.median(times["plain"]),
          "augmented_us": 1e6 * statistics.median(times["augmented"]),
          "overhead_median": statistics.median(ratios), "overhead_min": min(ratios), "overhead_max": max(ratios)}


def overhead(repeats: int) -> dict:
  from jaxreg.config import load_config

  results = {}
  for name, (config_name, augmented_name) in PAIRS.items():
    specs = [dict(s) for s in load_config(augmented_name)[0].data.augment]
    rows = {"all": specs, **({f"only {s['name']}": [s] for s in specs} if len(specs) > 1 else {})}
    results[name] = {}
    for row, row_specs in rows.items():
      r = results[name][row] = step_overhead(config_name, row_specs, repeats)
      print(f"{name:12s} {row:24s} step {r['plain_us']:7.0f} us -> {r['augmented_us']:7.0f} us: "
            f"{100 * r['overhead_median']:+.0f}% (range {100 * r['overhead_min']:+.0f}..{100 * r['overhead_max']:+.0f}%)")
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
      start = time.perf_counter()
      fn()
      speeds.setdefault(name, []).append(batch / (time.perf_counter() - start))
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
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--output", default=RESULTS)
  args = parser.parse_args()
  results = {"machine": {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()}}
  if args.part in ("all", "overhead"):
    results["overhead"] = overhead(args.repeats)
  if args.part in ("all", "images"):
    results["images"] = images(args.repeats, args.batch)
  os.makedirs(os.path.dirname(args.output), exist_ok=True)
  with open(args.output, "w") as f:
    json.dump(results, f, indent=2)
  print(f"results written to {args.output}")


if __name__ == "__main__":
  main()
