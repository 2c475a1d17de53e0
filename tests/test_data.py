import numpy as np
import pytest

from jaxreg.data import epoch_batch_indices, load_digits, load_npz, make_dataset, padded_batches
from jaxreg.errors import ConfigError, DataError


def test_digits_split_is_stratified_scaled_and_seeded():
  data = load_digits(seed=0)
  assert (len(data.train.y), len(data.val.y), len(data.test.y)) == (1257, 180, 360)
  assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int32
  assert data.train.x.min() == 0.0 and data.train.x.max() == 1.0
  whole = np.bincount(np.concatenate([s.y for s in data.splits().values()]))
  for split in (data.train, data.val, data.test):
    np.testing.assert_allclose(np.bincount(split.y, minlength=10) / len(split.y), whole / whole.sum(), atol=0.02)
  again = load_digits(seed=0)
  np.testing.assert_array_equal(again.test.x, data.test.x)
  other = load_digits(seed=1)
  assert not np.array_equal(other.test.x, data.test.x)
  # No example is in two splits.
  rows = {s: {r.tobytes() for r in split.x} for s, split in data.splits().items()}
  assert not rows["train"] & rows["test"] and not rows["val"] & rows["test"]


def test_npz_loads_and_carves_a_validation_split(tiny_npz):
  path, arrays = tiny_npz
  data = load_npz(path, val_fraction=0.25)
  assert data.num_classes == 3
  assert len(data.test.y) == 30  # given, kept as is
  assert len(data.val.y) == 30 and len(data.train.y) == 90  # 25% of the 120 training examples
  np.testing.assert_array_equal(data.test.x, arrays["x_test"])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.pop("y_train"), "missing the required key 'y_train'"),
        (lambda a: a.pop("x_train"), "missing the required key 'x_train'"),
        (lambda a: a.update(y_train=a["y_train"][:-5]), "x_train and y_train have different lengths \\(120 vs 115\\)"),
        (lambda a: a["x_train"].__setitem__((3, 2), np.nan), "x_train contains 1 NaN or infinite value\\(s\\), the first at index \\(3, 2\\)"),
        (lambda a: a["x_test"].__setitem__((0, 0), np.inf), "x_test contains 1 NaN or infinite"),
        (lambda a: a["y_train"].__setitem__(7, -1), "y_train has 1 label\\(s\\) outside \\[0, 3\\) \\(e.g. -1 at index 7\\)"),
        (lambda a: a.pop("y_test"), "has x_test but is missing 'y_test'"),
        (lambda a: a.update(z_train=a["x_train"]), "unexpected key\\(s\\) \\['z_train'\\]"),
        (lambda a: a.update(y_train=a["y_train"] + 0.5), "integer class labels"),
        (lambda a: a.update(x_test=a["x_test"][:, :4]), "x_test has example shape \\(4,\\) but x_train has \\(5,\\)"),
        (lambda a: a.update(x_train=a["x_train"] + 1j), "x_train is complex \\(complex\\d+\\); pass its real part"),
    ],
)
def test_malformed_npz_is_refused_with_a_message_naming_the_problem(tmp_path, tiny_npz, change, message):
  _, arrays = tiny_npz
  arrays = {k: v.copy() for k, v in arrays.items()}
  change(arrays)
  path = tmp_path / "bad.npz"
  np.savez(path, **arrays)
  with pytest.raises(DataError, match=message):
    load_npz(str(path))


def test_labels_beyond_the_declared_classes(tiny_npz):
  path, _ = tiny_npz
  with pytest.raises(DataError, match="outside \\[0, 2\\)"):
    load_npz(path, num_classes=2)


def test_unreadable_and_missing_files(tmp_path):
  with pytest.raises(DataError, match="does not exist"):
    load_npz(str(tmp_path / "nope.npz"))
  garbage = tmp_path / "garbage.npz"
  garbage.write_bytes(b"not a zip file")
  with pytest.raises(DataError, match=r"is not an .npz file \(not a zip archive of arrays; it may be damaged\)"):
    load_npz(str(garbage))
  objects = tmp_path / "objects.npz"
  np.savez(objects, x_train=np.array([{"a": 1}] * 4, dtype=object), y_train=np.arange(4))
  with pytest.raises(DataError, match="holds an array of Python objects .*; save numeric arrays only"):
    load_npz(str(objects))


def test_make_dataset_validates_its_arguments():
  with pytest.raises(ConfigError, match="unknown dataset 'cifar'; valid names: adding, digits, coloured_digits, mnist1d, npz"):
    make_dataset("cifar")
  with pytest.raises(ConfigError, match="data.path must name an .npz file"):
    make_dataset("npz")
  with pytest.raises(ConfigError, match="val_fraction must be a number in \\[0, 1\\)"):
    make_dataset("digits", val_fraction=1.5)
  with pytest.raises(ConfigError, match="^data.val_fraction \\+ test_fraction must be below 1"):
    make_dataset("digits", val_fraction=0.5, test_fraction=0.5)


def test_epoch_order_is_a_reshuffled_permutation():
  import jax

  key = jax.random.PRNGKey(0)
  a = np.asarray(epoch_batch_indices(key, 1, 10, 3))
  b = np.asarray(epoch_batch_indices(key, 2, 10, 3))
  assert a.shape == (3, 3) and len(set(a.ravel())) == 9
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(a, np.asarray(epoch_batch_indices(key, 1, 10, 3)))


def test_padded_batches_mask_the_padding():
  x = np.arange(10, dtype=np.float32).reshape(5, 2)
  y = np.arange(5)
  batches = padded_batches(x, y, 2)
  assert batches["x"].shape == (3, 2, 2)
  np.testing.assert_array_equal(batches["mask"].ravel(), [1, 1, 1, 1, 1, 0])
  np.testing.assert_array_equal(batches["y"].ravel()[:5], y)


def test_coloured_digits_shift_the_foreground_hues_of_the_test_split_only():
  import colorsys

  from jaxreg.data import load_coloured_digits, load_digits

  data, grey = load_coloured_digits(seed=1), load_digits(seed=1)
  assert data.train.x.shape == (1257, 8, 8, 3) and data.test.x.shape == (360, 8, 8, 3)
  np.testing.assert_array_equal(data.test.y, grey.test.y)  # digits' own split and labels
  assert 0.0 <= data.train.x.min() and data.train.x.max() <= 1.0

  def foreground_hues(split, grey_split):
    ink = grey_split.x.reshape(-1, 8, 8) == 1.0  # full-ink pixels show the foreground colour alone
    return np.array([colorsys.rgb_to_hsv(*image[mask][0])[0] for image, mask in zip(split.x, ink) if mask.any()])

  train_hues, test_hues = foreground_hues(data.train, grey.train), foreground_hues(data.test, grey.test)
  assert train_hues.min() >= 0.0 and train_hues.max() < 0.5 + 1e-6
  assert test_hues.min() >= 0.5 - 1e-6 and test_hues.max() < 1.0
  assert np.array_equal(load_coloured_digits(seed=1).train.x, data.train.x)  # the seed fixes the colours
  with pytest.raises(ValueError, match=r"train_hues must be \(low, high\) with low < high"):
    load_coloured_digits(train_hues=(0.5, 0.2))


def test_images_upsampled_bilinearly_equal_scipys_zoom_with_pixel_centres():
  ndimage = pytest.importorskip("scipy.ndimage")
  from jaxreg.data import make_dataset

  small = make_dataset("digits", example_shape=(8, 8, 1))
  large = make_dataset("digits", example_shape=(8, 8, 1), upsample=4)
  assert large.train.x.shape == (1257, 32, 32, 1) and large.test.x.shape == (360, 32, 32, 1)
  np.testing.assert_array_equal(large.train.y, small.train.y)
  reference = ndimage.zoom(small.train.x[:20, :, :, 0].astype(np.float64), (1, 4, 4), order=1, grid_mode=True,
                           mode="nearest")  # bilinear, pixels as unit squares (half-pixel centres)
  np.testing.assert_allclose(large.train.x[:20, :, :, 0], reference, atol=1e-6)
  assert 0.0 <= large.train.x.min() and large.train.x.max() <= 1.0
  with pytest.raises(ConfigError, match=r"data.upsample enlarges images .* set data.example_shape"):
    make_dataset("digits", upsample=2)
