"""Augmentations: properties of every transform, NumPy references for the hand-written ones, and configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg import augment
from jaxreg.errors import ConfigError

KEYS = jax.random.split(jax.random.PRNGKey(0), 64)
SIGNAL = jnp.asarray(np.random.default_rng(0).normal(size=(40, 2)), jnp.float32)
IMAGE = jnp.asarray(np.random.default_rng(1).uniform(size=(8, 8, 3)), jnp.float32)
BANK = jnp.asarray(np.random.default_rng(2).normal(size=(5, 40, 2)), jnp.float32)
EIGEN = augment.fit_fancy_pca(np.random.default_rng(3).uniform(size=(6, 8, 8, 3)) * [1.0, 0.5, 0.2])

SIGNAL_AUGMENTATIONS = {
    "shift": augment.shift(4), "shift-constant": augment.shift(4, mode="constant"),
    "shift-edge": augment.shift(4, mode="edge"), "time_stretch": augment.time_stretch(0.8, 1.2),
    "scale_amplitude": augment.scale_amplitude(0.5, 2.0), "gaussian_noise": augment.gaussian_noise(0.1),
    "compress_dynamic_range": augment.compress_dynamic_range(0.3, 1.5),
    "background_mix": augment.background_mix(np.asarray(BANK), 0.0, 20.0),
}
IMAGE_AUGMENTATIONS = {
    "horizontal_flip": augment.horizontal_flip(), "translate": augment.translate(2),
    "translate-edge": augment.translate(2, mode="edge"), "translate-circular": augment.translate(2, mode="circular"),
    "brightness": augment.brightness(0.2), "contrast": augment.contrast(0.5, 1.5),
    "saturation": augment.saturation(0.5, 1.5), "hue": augment.hue(0.2),
    "gaussian_noise-clipped": augment.gaussian_noise(0.1, clip=(0.0, 1.0)),
    "affine": augment.affine(20, (0.8, 1.2), 10), "affine-nearest": augment.affine(20, mode="nearest"),
    "elastic": augment.elastic(3.0, 1.5), "elastic-constant": augment.elastic(3.0, 1.5, mode="constant"),
    "fancy_pca": augment.fancy_pca(*EIGEN, std=0.3),
}
ALL = [(name, fn, SIGNAL) for name, fn in SIGNAL_AUGMENTATIONS.items()]
ALL += [(name, fn, IMAGE) for name, fn in IMAGE_AUGMENTATIONS.items()]


@pytest.mark.parametrize(("name", "fn", "x"), ALL, ids=[a[0] for a in ALL])
def test_same_key_same_output_shape_and_dtype_kept_and_keys_matter(name, fn, x):
  fn = jax.jit(fn)
  outputs = [np.asarray(fn(key, x)) for key in KEYS[:8]]
  np.testing.assert_array_equal(outputs[0], np.asarray(fn(KEYS[0], x)))
  assert all(o.shape == x.shape and o.dtype == x.dtype for o in outputs), name
  assert any(not np.array_equal(outputs[0], o) for o in outputs[1:]), name  # the key decides


IDENTITIES = [
    ("shift", augment.shift(0), SIGNAL), ("time_stretch", augment.time_stretch(1.0, 1.0), SIGNAL),
    ("scale_amplitude", augment.scale_amplitude(1.0, 1.0), SIGNAL), ("noise", augment.gaussian_noise(0.0), SIGNAL),
    ("flip", augment.horizontal_flip(p=0.0), IMAGE), ("translate", augment.translate(0), IMAGE),
    ("brightness", augment.brightness(0.0), IMAGE), ("contrast", augment.contrast(1.0, 1.0), IMAGE),
    ("saturation", augment.saturation(1.0, 1.0), IMAGE), ("hue", augment.hue(0.0), IMAGE),
    ("random_apply-0", augment.random_apply(augment.gaussian_noise(1.0), 0.0), SIGNAL),
    ("compress_dynamic_range", augment.compress_dynamic_range(1.0, 1.0), SIGNAL),
    ("affine", augment.affine(0.0), IMAGE), ("elastic", augment.elastic(0.0, 1.0), IMAGE),
    ("fancy_pca", augment.fancy_pca(*EIGEN, std=0.0), IMAGE),
]


@pytest.mark.parametrize(("name", "fn", "x"), IDENTITIES, ids=[a[0] for a in IDENTITIES])
def test_identity_parameters_give_the_identity(name, fn, x):
  outputs = jax.jit(jax.vmap(fn, in_axes=(0, None)))(KEYS[:4], x)
  for out in outputs:
    np.testing.assert_allclose(out, x, atol=1e-5, err_msg=name)  # hue: RGB -> HSV -> RGB rounding


def test_a_flip_twice_is_the_identity_and_once_mirrors():
  flip = augment.horizontal_flip(p=1.0)
  np.testing.assert_array_equal(flip(KEYS[0], IMAGE), IMAGE[:, ::-1])
  np.testing.assert_array_equal(flip(KEYS[1], flip(KEYS[0], IMAGE)), IMAGE)


def _numpy_shift(x, s, mode):
  """``out[t] = x[t - s]``, padded as ``mode`` says: the reference, written from the definition."""
  n = len(x)
  out = np.empty_like(x)
  for t in range(n):
    source = t - s
    if mode == "circular":
      out[t] = x[source % n]
    elif 0 <= source < n:
      out[t] = x[source]
    else:
      out[t] = x[min(max(source, 0), n - 1)] if mode == "edge" else 0.0
  return out


@pytest.mark.parametrize("mode", ["circular", "constant", "edge"])
def test_shift_is_one_of_the_numpy_shifts_and_uses_them_all(mode):
  x = np.asarray(SIGNAL)
  candidates = {s: _numpy_shift(x, s, mode) for s in range(-3, 4)}
  seen = set()
  shifted = jax.jit(augment.shift(3, mode=mode))
  for key in KEYS:
    out = np.asarray(shifted(key, SIGNAL))
    matches = [s for s, c in candidates.items() if np.array_equal(out, c)]
    assert matches, mode
    seen.update(matches)
  assert seen == set(candidates)


def test_translate_moves_both_axes_by_whole_pixels_like_numpy():
  x = np.asarray(IMAGE)
  seen = set()
  translated = jax.jit(augment.translate(1, mode="circular"))
  for key in KEYS:
    out = np.asarray(translated(key, IMAGE))
    matches = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
               if np.array_equal(out, np.roll(np.roll(x, dy, axis=0), dx, axis=1))]
    assert len(matches) == 1
    seen.add(matches[0])
  assert len(seen) == 9
  padded = np.asarray(augment.translate(3)(KEYS[0], IMAGE))
  assert set(np.unique(padded)) <= set(np.unique(x)) | {0.0}  # values from the image, or the fill


def test_time_stretch_is_linear_resampling_about_the_centre():
  x = np.asarray(SIGNAL)
  t = np.arange(40.0)
  for rate in (0.7, 1.3):
    where = 19.5 + rate * (t - 19.5)
    expected = np.stack([np.interp(where, t, x[:, c]) for c in range(2)], axis=1)
    np.testing.assert_allclose(augment.time_stretch(rate, rate)(KEYS[0], SIGNAL), expected, atol=1e-5)
  inside = augment.time_stretch(0.5, 0.5, mode="constant", fill=7.0)(KEYS[0], SIGNAL)  # reads [9.75, 29.25] only
  np.testing.assert_array_equal(inside, augment.time_stretch(0.5, 0.5)(KEYS[0], SIGNAL))
  outside = np.asarray(augment.time_stretch(2.0, 2.0, mode="constant", fill=7.0)(KEYS[0], SIGNAL))
  assert (outside[0] == 7.0).all() and (outside[-1] == 7.0).all()  # 19.5 - 2 * 19.5 < 0: the fill


def test_scale_amplitude_and_noise_have_the_stated_distributions():
  np.testing.assert_allclose(augment.scale_amplitude(2.5, 2.5)(KEYS[0], SIGNAL), 2.5 * SIGNAL)
  zeros = jnp.zeros((200, 200))
  noise = np.asarray(augment.gaussian_noise(0.3)(KEYS[0], zeros))
  standard_error = 0.3 / 200
  assert abs(noise.mean()) < 4 * standard_error
  assert abs(noise.std() - 0.3) < 4 * 0.3 / np.sqrt(2 * noise.size)
  clipped = np.asarray(augment.gaussian_noise(0.5, clip=(0.0, 1.0))(KEYS[0], IMAGE))
  assert clipped.min() >= 0.0 and clipped.max() <= 1.0


def test_random_apply_and_one_of_choose_per_example():
  batch = jnp.zeros((2000, 3))
  applied = jax.jit(augment.per_example(augment.random_apply(augment.gaussian_noise(1.0), 0.3)))(KEYS[0], batch)
  fraction = float(jnp.mean(jnp.any(applied != 0, axis=1)))
  assert abs(fraction - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 2000)
  add_one = lambda key, x: x + 1.0  # noqa: E731
  add_two = lambda key, x: x + 2.0  # noqa: E731
  chosen = jax.jit(augment.per_example(augment.one_of(add_one, add_two)))(KEYS[0], batch)[:, 0]
  assert set(np.unique(chosen)) == {1.0, 2.0} and abs(float(jnp.mean(chosen == 1.0)) - 0.5) < 0.05
  both = augment.chain(add_one, augment.scale_amplitude(3.0, 3.0))(KEYS[0], jnp.zeros(2))
  np.testing.assert_array_equal(both, [3.0, 3.0])  # in order: (0 + 1) * 3


def test_the_batch_transform_augments_each_example_with_its_own_key_and_leaves_labels_alone():
  transform = augment.as_batch_transform(augment.gaussian_noise(1.0))
  batch = {"x": jnp.zeros((4, 5)), "y": jnp.arange(4)}
  out = jax.jit(transform)(batch, KEYS[0])
  np.testing.assert_array_equal(out["y"], batch["y"])
  assert out["x"].dtype == batch["x"].dtype
  rows = np.asarray(out["x"])
  assert len({tuple(r) for r in rows}) == 4  # no two examples share a draw


def test_configs_build_augmentations_and_refuse_bad_ones_by_their_path():
  aug = augment.make_augmentation([{"name": "shift", "max_shift": 2}, {"name": "gaussian_noise", "sigma": 0.1, "p": 0.5}])
  assert aug(KEYS[0], SIGNAL).shape == SIGNAL.shape
  assert augment.make_augmentation([]) is None
  with pytest.raises(ConfigError, match=r"unknown augmentation 'rotate'; valid names: shift, time_stretch"):
    augment.make_augmentation([{"name": "rotate"}])
  with pytest.raises(ConfigError, match=r"data.augment\[1\].max_shift must be an integer >= 0, got -1"):
    augment.make_augmentation([{"name": "gaussian_noise", "sigma": 0.1}, {"name": "shift", "max_shift": -1}])
  with pytest.raises(ConfigError, match=r"unknown key\(s\) data.augment\[0\].sigmaa"):
    augment.make_augmentation([{"name": "gaussian_noise", "sigmaa": 0.1}])
  with pytest.raises(ConfigError, match=r"data.augment\[0\].p must be a probability in \[0, 1\], got 2"):
    augment.make_augmentation([{"name": "gaussian_noise", "sigma": 0.1, "p": 2}])
  with pytest.raises(ConfigError, match=r"data.augment must be a list"):
    augment.make_augmentation({"name": "shift"})


def test_a_config_with_augmentation_trains_and_a_mismatched_one_is_refused_before_anything_is_written(tmp_path):
  from jaxreg.config import load_config
  from jaxreg.experiment import build

  config, _ = load_config("digits_mlp:smoke", [("data.augment", "[{'name': 'hue', 'max_delta': 0.1}]")])
  with pytest.raises(ConfigError, match=r"data.augment cannot take the data's examples of shape \(64,\): image "
                                        r"augmentations take one image"):
    build(config)
  config, _ = load_config("digits_mlp:smoke", [("data.augment", "[{'name': 'gaussian_noise', 'sigma': 0.2}]")])
  experiment = build(config)
  assert experiment.batch_transform is not None and experiment.fit_kwargs()["batch_transform"] is not None


@pytest.mark.parametrize(("name", "fn"), [
    ("affine", augment.affine(30, (0.7, 1.3), 20)), ("elastic", augment.elastic(4.0, 1.0, mode="constant")),
    ("fancy_pca", augment.fancy_pca(*EIGEN, std=1.0)), ("gaussian_noise", augment.gaussian_noise(0.5, clip=(0, 1))),
    ("brightness", augment.brightness(0.5)),
])
def test_images_in_range_stay_in_range(name, fn):
  outputs = jax.jit(jax.vmap(fn, in_axes=(0, None)))(KEYS[:16], IMAGE)
  if name == "brightness":  # dm-pix adds the delta without clipping: the docs say so; clip after it
    assert float(outputs.max()) > 1.0
    return
  assert 0.0 <= float(outputs.min()) and float(outputs.max()) <= 1.0, name


def test_affine_equals_scipy_with_the_same_matrix_and_turns_counter_clockwise():
  ndimage = pytest.importorskip("scipy.ndimage")
  image = np.random.default_rng(4).uniform(size=(9, 11, 3)).astype(np.float32)
  matrix_of = jax.jit(augment.images.affine_matrix)
  matrix = np.asarray(matrix_of(0.3, 1.2, 0.2))
  centre = np.array([4.0, 5.0])
  warp = jax.jit(augment.warp_affine, static_argnames=("mode", "fill"))
  for mode in ("constant", "nearest"):
    out = warp(jnp.asarray(image), jnp.asarray(matrix), mode=mode, fill=0.5)
    reference = np.stack([ndimage.affine_transform(image[..., c], matrix, offset=centre - matrix @ centre, order=1,
                                                   mode=mode, cval=0.5) for c in range(3)], -1)
    np.testing.assert_allclose(out, reference, atol=1e-5, err_msg=mode)
  dot = np.zeros((9, 9, 1), np.float32)
  dot[4, 7] = 1.0  # right of the centre
  turned = warp(jnp.asarray(dot), jnp.asarray(matrix_of(np.pi / 2, 1.0, 0.0)), mode="constant", fill=0.0)
  assert np.argwhere(np.asarray(turned)[..., 0] > 0.5).tolist() == [[1, 4]]  # now above it
  # The random parameters stay in their ranges: a 90-degree bound turns the dot at most to straight up.
  moved = jax.jit(jax.vmap(augment.affine(max_rotation=30), in_axes=(0, None)))(KEYS[:32], jnp.asarray(dot))
  rows = [np.unravel_index(np.argmax(m), m.shape)[0] for m in np.asarray(moved)]
  assert min(rows) >= 4 - 3 * np.sin(np.radians(30)) - 1 and len(set(rows)) > 1


def test_elastic_equals_simards_recipe_in_scipy_on_the_same_noise():
  ndimage = pytest.importorskip("scipy.ndimage")
  key, alpha, sigma = jax.random.PRNGKey(3), 4.0, 1.5
  image = np.asarray(IMAGE)
  out = jax.jit(augment.elastic(alpha, sigma))(key, IMAGE)
  # Simard et al. 2003: uniform(-1, 1) displacement fields, Gaussian-smoothed, times alpha (dm-pix's draws).
  noise = [np.asarray(jax.random.uniform(k, (8, 8, 1)) * 2 - 1)[..., 0] for k in jax.random.split(key)]
  radius = int((((sigma - 0.8) / 0.3 + 1) / 0.5 + 1) / 2)  # dm-pix's kernel: ~3 sigma
  rows, cols = np.meshgrid(np.arange(8), np.arange(8), indexing="ij")
  where = [grid + alpha * ndimage.gaussian_filter(n.astype(np.float64), sigma, mode="constant", radius=radius)
           for grid, n in zip((rows, cols), noise, strict=True)]
  reference = np.stack([ndimage.map_coordinates(image[..., c], where, order=1, mode="nearest") for c in range(3)], -1)
  np.testing.assert_allclose(out, reference, atol=1e-5)
  assert np.abs(np.asarray(out) - image).max() > 0.1  # it moved something


def _numpy_fancy_pca(images):
  values, vectors = np.linalg.eigh(np.cov(images.reshape(-1, 3).T))
  order = np.argsort(values)[::-1]
  return values[order], vectors[:, order]


def test_fancy_pca_equals_the_papers_formula_in_numpy_on_the_same_keys():
  train = np.random.default_rng(5).uniform(size=(10, 6, 6, 3)) @ np.array([[1, .5, .2], [0, .4, .1], [0, 0, .1]])
  values, vectors = augment.fit_fancy_pca(train)
  aug = augment.fancy_pca(values, vectors, std=0.5, clip=None)
  for key in KEYS[:4]:
    a = 0.5 * np.asarray(jax.random.normal(key, (3,)))  # the draw a ~ N(0, std^2) of that key
    ref_values, ref_vectors = _numpy_fancy_pca(train)
    np.testing.assert_allclose(values, ref_values, rtol=1e-10)
    signs = np.sign(np.sum(vectors * ref_vectors, axis=0))  # an eigenvector's sign is arbitrary; a is symmetric
    np.testing.assert_allclose(vectors * signs, ref_vectors, atol=1e-10)
    out = np.asarray(aug(key, jnp.asarray(train[0], jnp.float32)))
    expected = train[0] + (vectors @ (a * values))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert np.allclose(out - train[0], (out - train[0])[0, 0])  # the same shift for every pixel
  with pytest.raises(ValueError, match=r"RGB images shaped \(n, height, width, 3\)"):
    augment.fit_fancy_pca(train[..., :2])


def test_dynamic_range_compression_keeps_the_peak_and_signs_and_lifts_quiet_parts():
  x = jnp.array([0.25, -1.0, 0.0, 0.5])
  out = augment.compress_dynamic_range(0.5, 0.5)(KEYS[0], x)
  np.testing.assert_allclose(out, [0.5, -1.0, 0.0, np.sqrt(0.5)], rtol=1e-6)
  np.testing.assert_array_equal(augment.compress_dynamic_range(0.5, 2.0)(KEYS[1], jnp.zeros(4)), jnp.zeros(4))


def test_background_mix_adds_a_bank_row_at_the_drawn_signal_to_noise_ratio():
  for key in KEYS[:6]:
    out = np.asarray(augment.background_mix(np.asarray(BANK), 6.0, 6.0)(key, SIGNAL))
    added = out - np.asarray(SIGNAL)
    gains = [np.sum(added * b) / np.sum(b * b) for b in np.asarray(BANK)]
    row = int(np.argmax(np.abs(gains)))
    np.testing.assert_allclose(added, gains[row] * np.asarray(BANK)[row], atol=1e-5)  # one row, scaled
    rms = lambda v: np.sqrt(np.mean(v ** 2))  # noqa: E731
    np.testing.assert_allclose(20 * np.log10(rms(np.asarray(SIGNAL)) / rms(added)), 6.0, atol=1e-3)
  with pytest.raises(ValueError, match="backgrounds have shape"):
    augment.background_mix(np.asarray(BANK), 0.0, 1.0)(KEYS[0], SIGNAL[:10])


def test_fitted_augmentations_from_a_config_are_fitted_on_the_training_inputs_only():
  train = np.random.default_rng(6).uniform(size=(4, 8, 8, 3)).astype(np.float32)
  aug = augment.make_augmentation([{"name": "fancy_pca", "std": 0.2}], train_x=train)
  assert aug(KEYS[0], IMAGE).shape == IMAGE.shape
  with pytest.raises(ConfigError, match=r"data.augment\[0\] \(fancy_pca\) is fitted on the training inputs"):
    augment.make_augmentation([{"name": "fancy_pca"}])
  with pytest.raises(ConfigError, match=r"data.augment\[0\].min_snr_db must be <= max_snr_db"):
    augment.make_augmentation([{"name": "background_mix", "min_snr_db": 9, "max_snr_db": 1}], train_x=BANK)


@pytest.mark.slow  # many compiled steps; the fast tier stays under 3 minutes
def test_the_hand_written_resampling_equals_dm_pixs_affine_transform_and_elastic_deformation():
  """jaxreg resamples by one 2-D gather per corner (fast under vmap); dm-pix's functions give the same values."""
  import dm_pix as pix

  matrix = jnp.asarray(augment.images.affine_matrix(0.4, 0.9, -0.3))
  centre = jnp.array([3.5, 3.5])
  full, offset = jnp.eye(3).at[:2, :2].set(matrix), jnp.concatenate([centre - matrix @ centre, jnp.zeros(1)])
  for mode in ("constant", "nearest"):
    ours = jax.jit(augment.warp_affine, static_argnames=("mode", "fill"))(IMAGE, matrix, mode=mode, fill=0.3)
    theirs = jax.jit(lambda x, m=mode: pix.affine_transform(x, full, offset=offset, order=1, mode=m, cval=0.3))(IMAGE)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=mode)
    ours = jax.jit(jax.vmap(augment.elastic(3.0, 1.2, mode=mode, fill=0.3), in_axes=(0, None)))(KEYS[:3], IMAGE)
    theirs = jax.jit(jax.vmap(lambda k, x, m=mode: pix.elastic_deformation(k, x, 3.0, 1.2, order=1, mode=m, cval=0.3),
                              in_axes=(0, None)))(KEYS[:3], IMAGE)
    np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=mode)
