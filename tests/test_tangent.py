"""Tangent vectors of the augmentations and tangent propagation (Simard et al. 1992), against finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.augment import make_tangents, tangent_names
from jaxreg.augment.images import affine_matrix, warp_affine
from jaxreg.augment.signals import read_linear, shift_along
from jaxreg.data import make_dataset
from jaxreg.errors import ConfigError
from jaxreg.models import make_model
from jaxreg.regularizers import make_regularizers, tangent_prop
from jaxreg.train import Context, classification_objective, from_loss


def _digits(n=6, pad=1):
  """Digits as 8x8 images, with a border of zeros (the warps then never read a nonzero pixel outside)."""
  x = make_dataset("digits", example_shape=(8, 8, 1)).train.x[:n]
  return np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))


def _warp_difference(x, matrix_of, h):
  warp = lambda m: jax.vmap(lambda e: warp_affine(e, m))(x)  # noqa: E731
  return (warp(matrix_of(h)) - warp(matrix_of(-h))) / (2 * h)


def test_translation_tangents_are_the_central_difference_of_one_pixel_moves():
  x = _digits(pad=0)  # exact even at the border: both sides read zeros outside
  v = make_tangents(["translate_x", "translate_y"])(x)
  for index, axis in enumerate((1, 0)):  # translate_x moves columns, translate_y rows
    moved = lambda offset: jax.vmap(lambda e: shift_along(e, offset, axis, "constant"))(x)  # noqa: E731,B023
    np.testing.assert_allclose(v[index], (moved(1) - moved(-1)) / 2, atol=1e-7)


@pytest.mark.parametrize(("name", "matrix_of"), [
    ("rotate", lambda h: affine_matrix(h, 1.0, 0.0)),
    ("scale", lambda h: affine_matrix(0.0, 1.0 + h, 0.0)),
    ("shear", lambda h: affine_matrix(0.0, 1.0, h)),
])
def test_affine_tangents_are_the_limit_of_the_augmentations_central_difference(name, matrix_of):
  x = _digits()
  v = np.asarray(make_tangents([name])(x)[0])
  errors = [float(np.max(np.abs(v - _warp_difference(x, matrix_of, h)))) for h in (1e-2, 1e-3)]
  assert np.max(np.abs(v)) > 0.5
  assert errors[1] < 0.01 * np.max(np.abs(v))  # the bilinear warp's central difference converges to it
  assert errors[1] < max(errors[0] / 5, 1e-3 * np.max(np.abs(v)))  # as O(h), down to float32 rounding


def test_rotation_tangent_of_a_gaussian_blob_matches_the_closed_form():
  size, sigma, offset = 41, 6.0, np.array([3.0, -2.0])
  centre = (size - 1) / 2
  rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
  p = np.stack([rows - centre, cols - centre], -1)
  blob = np.exp(-np.sum((p - offset) ** 2, -1) / (2 * sigma**2))
  # out(o) = x(c + M(t)(o - c)); d/dt at 0 is grad x(o) . M'(0) (o - c), M'(0) = [[0, 1], [-1, 0]].
  flow = np.stack([p[..., 1], -p[..., 0]], -1)
  expected = np.sum(-(p - offset) / sigma**2 * blob[..., None] * flow, -1)
  v = np.asarray(make_tangents(["rotate"])(blob[None, ..., None].astype(np.float32))[0, 0, ..., 0])
  # Central differences of a Gaussian are low by about 1 / (2 sigma^2) relative (1.4% here).
  # The border differs: outside the image is zero, not the blob's tail.
  np.testing.assert_allclose(v[1:-1, 1:-1], expected[1:-1, 1:-1], atol=0.02 * np.max(np.abs(expected)))


def test_signal_tangents_shift_stretch_amplitude():
  x = make_dataset("mnist1d").train.x[:5]
  v = np.asarray(make_tangents(["shift", "stretch", "amplitude"])(x))
  assert v.shape == (3, *x.shape)
  moved = lambda s: jax.vmap(lambda e: shift_along(e, s, 0, "constant"))(x)  # noqa: E731
  np.testing.assert_allclose(v[0], (moved(1) - moved(-1)) / 2, atol=1e-6)
  centre = (x.shape[1] - 1) / 2
  time = np.arange(x.shape[1])
  stretched = lambda r: jax.vmap(lambda e: read_linear(e, centre + r * (time - centre), "edge"))(x)  # noqa: E731
  h = 1e-3
  fd = (stretched(1 + h) - stretched(1 - h)) / (2 * h)
  # Inside: the limit of the augmentation's central difference (the ends read past the signal, clamped).
  np.testing.assert_allclose(v[1][:, 1:-1], fd[:, 1:-1], atol=0.02 * np.abs(v[1]).max())
  np.testing.assert_allclose(v[2], x)


def test_make_tangents_refuses_bad_names_and_shapes():
  with pytest.raises(ValueError, match="unknown tangent 'spin'; valid tangents: translate_x"):
    make_tangents(["spin"])
  with pytest.raises(ValueError, match="at least one"):
    make_tangents([])
  with pytest.raises(ValueError, match="twice"):
    make_tangents(["shift", "shift"])
  with pytest.raises(ValueError, match=r"needs images shaped \(height, width, channels\).*data.example_shape"):
    make_tangents(["rotate"])(jnp.zeros((2, 64)))
  assert set(tangent_names()) >= {"translate_x", "translate_y", "rotate", "scale", "shift", "stretch"}


# Tangent propagation, in float64 so that finite differences can be checked to 1e-4 relative.


def _smooth_mlp_case(dropout=0.0):
  model = make_model("mlp", num_outputs=3, hidden_sizes=(16, 16), activation="tanh", dropout_rate=dropout)
  g = np.random.default_rng(0)
  x = g.normal(size=(10, 6, 6, 1))
  params = model.init(jax.random.PRNGKey(0), jnp.asarray(x[:1], jnp.float32))["params"]
  return model, params, x


def _tangents(x):
  return make_tangents(["translate_x", "rotate"])(x)


def _finite_difference_penalty(apply, params, x, rng, h=1e-5):
  """mean_n sum_k ||(f(x + h v_k) - f(x - h v_k)) / 2h||^2: the penalty by central finite differences."""
  v = _tangents(x)
  f = lambda inputs: apply({"params": params}, inputs, train=rng is not None, rng=rng)[0]  # noqa: E731
  total = 0.0
  for k in range(v.shape[0]):
    d = (f(x + h * v[k]) - f(x - h * v[k])) / (2 * h)
    total = total + jnp.sum(d**2) / x.shape[0]
  return total


@pytest.mark.slow  # many compiled steps; the fast tier stays under 3 minutes
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_penalty_equals_the_central_finite_difference_and_so_does_its_gradient(dropout):
  with jax.enable_x64(True):
    model, params, x = _smooth_mlp_case(dropout)
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
    rng = jax.random.PRNGKey(1) if dropout else None
    ctx = Context(rng=rng, model_state={}, train=True)
    batch = {"x": jnp.asarray(x), "y": jnp.zeros(10, jnp.int32)}
    alpha = 0.7
    objective = tangent_prop(alpha, _tangents)(classification_objective(model.apply))
    plain = classification_objective(model.apply)

    def penalty(p):
      return objective(p, batch, ctx)[0] - plain(p, batch, ctx)[0]

    value, grads = jax.jit(jax.value_and_grad(penalty))(params)
    fd_value, fd_grads = jax.jit(jax.value_and_grad(
        lambda p: alpha * _finite_difference_penalty(model.apply, p, batch["x"], rng if dropout else None)))(params)
    assert value > 1e-3
    np.testing.assert_allclose(value, fd_value, rtol=1e-4)
    np.testing.assert_allclose(objective(params, batch, ctx)[1].metrics["tangent_prop"], value, rtol=1e-10)
    for got, want in zip(jax.tree.leaves(grads), jax.tree.leaves(fd_grads), strict=True):
      np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9 * np.max(np.abs(want)))


def test_penalty_of_a_linear_model_is_the_closed_form():
  g = np.random.default_rng(3)
  w = g.normal(size=(36, 4)).astype(np.float32)
  x = g.normal(size=(5, 6, 6, 1)).astype(np.float32)
  outputs = lambda params, inputs: inputs.reshape(len(inputs), -1) @ params["w"]  # noqa: E731
  objective = tangent_prop(2.0, _tangents, outputs_fn=outputs)(from_loss(lambda p, b: jnp.float32(0.0)))
  value, aux = objective({"w": w}, {"x": x, "y": None}, Context(rng=None, model_state={}, train=True))
  v = np.asarray(_tangents(x)).reshape(2, 5, 36)
  expected = 2.0 * np.mean(np.sum((v @ w) ** 2, axis=(0, 2)))
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  np.testing.assert_allclose(aux.metrics["tangent_prop"], expected, rtol=1e-5)


def test_plain_loss_needs_outputs_fn_and_evaluation_is_unpenalized():
  model, params, x = _smooth_mlp_case()
  x = jnp.asarray(x, jnp.float32)
  loss = from_loss(lambda p, b: jnp.float32(1.0))
  with pytest.raises(ValueError, match="pass outputs_fn="):
    tangent_prop(1.0, _tangents)(loss)(params, {"x": x}, Context(rng=None, model_state={}, train=True))
  objective = tangent_prop(1.0, _tangents)(classification_objective(model.apply))
  batch = {"x": x, "y": jnp.zeros(10, jnp.int32)}
  evaluation = Context(rng=None, model_state={}, train=False)
  assert float(objective(params, batch, evaluation)[0]) == float(
      classification_objective(model.apply)(params, batch, evaluation)[0])


def test_the_masked_examples_do_not_count():
  model, params, x = _smooth_mlp_case()
  x = jnp.asarray(x, jnp.float32)
  objective = tangent_prop(1.0, _tangents)(classification_objective(model.apply))
  ctx = Context(rng=None, model_state={}, train=True)
  y = jnp.zeros(10, jnp.int32)
  penalty = jax.jit(lambda batch: objective(params, batch, ctx)[1].metrics["tangent_prop"])
  first = penalty({"x": x[:4], "y": y[:4]})
  mask = jnp.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0], jnp.float32)
  masked = penalty({"x": x, "y": y, "mask": mask})
  np.testing.assert_allclose(masked, first, rtol=1e-5)


def test_config_names_the_tangents():
  regs = make_regularizers(tangent_prop={"alpha": 0.1, "tangents": ["translate_x", "translate_y"], "smoothing": 0.5})
  assert regs.names == ("tangent_prop",)
  with pytest.raises(ConfigError, match=r"regularizers.tangent_prop\b.*unknown tangent 'spin'"):
    make_regularizers(tangent_prop={"alpha": 0.1, "tangents": ["spin"]})
  with pytest.raises(ConfigError, match=r"regularizers.tangent_prop needs regularizers.tangent_prop.tangents"):
    make_regularizers(tangent_prop={"alpha": 0.1})


# The tangent distance classifier (Simard et al. 1993).


def test_tangent_distance_is_the_least_squares_residual_in_numpy():
  from jaxreg.models.tangent_distance import fit_tangent_distance, tangent_distances

  x = _digits(n=7, pad=0)
  queries = make_dataset("digits", example_shape=(8, 8, 1)).test.x[:5]
  tangents = make_tangents(["translate_x", "translate_y", "rotate"])
  model = fit_tangent_distance(x, np.arange(7), tangents)
  got = np.asarray(tangent_distances(model, jnp.asarray(queries)))
  v = np.asarray(tangents(jnp.asarray(x))).reshape(3, 7, -1).astype(np.float64)
  for i, q in enumerate(queries.reshape(5, -1).astype(np.float64)):
    for j, xj in enumerate(x.reshape(7, -1).astype(np.float64)):
      a, *_ = np.linalg.lstsq(v[:, j].T, q - xj, rcond=None)
      np.testing.assert_allclose(got[i, j], np.sum((xj + v[:, j].T @ a - q) ** 2), rtol=1e-4, atol=1e-4)
  assert np.all(got <= np.sum((queries.reshape(5, 1, -1) - x.reshape(1, 7, -1)) ** 2, -1) + 1e-4)  # <= Euclidean


def test_tangent_distance_ignores_a_small_move_and_a_blank_image_spans_nothing():
  from jaxreg.models.tangent_distance import fit_tangent_distance, tangent_distances

  x = _digits(n=2)
  moved = np.asarray(jax.vmap(lambda e: warp_affine(e, jnp.eye(2) * 1.0))(x))  # the identity warp
  blank = np.zeros_like(x[:1])
  model = fit_tangent_distance(np.concatenate([x, blank]), np.arange(3), make_tangents(["translate_x"]))
  d = np.asarray(tangent_distances(model, jnp.asarray(moved)))
  np.testing.assert_allclose(np.diag(d[:, :2]), 0.0, atol=1e-6)
  # A blank image has zero tangents: its distance stays the Euclidean one (no spurious direction).
  np.testing.assert_allclose(d[:, 2], np.sum(moved.reshape(2, -1) ** 2, -1), rtol=1e-5)
