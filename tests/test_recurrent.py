"""Recurrent cells against an independent NumPy implementation of the lecture notes' equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.models import SequenceModel, make_sequence_model

H, F, B, T = 5, 3, 4, 6


def sigmoid(a):
  return 1 / (1 + np.exp(-a))


def numpy_layer(cell, params, xs, lengths, reverse=False, state_mask=None):
  """Wang 2023's equations, one step at a time, in float64. Returns (outputs (B,T,H), final h)."""
  u, w, b = (np.asarray(params[k], np.float64) for k in ("input_kernel", "recurrent_kernel", "bias"))
  batch, time, _ = xs.shape
  hs = np.zeros((batch, time, H))
  finals = np.zeros((batch, H))
  for n in range(batch):
    h, c = np.zeros(H), np.zeros(H)
    steps = range(lengths[n])
    for t in (reversed(steps) if reverse else steps):
      x = xs[n, t]
      hm = h if state_mask is None else h * state_mask[n]
      if cell == "rnn":
        h = np.tanh(b + hm @ w + x @ u)  # a_t = b + W h_{t-1} + U x_t (row-vector form)
      elif cell == "lstm":
        gate = lambda k: x @ u[:, k * H:(k + 1) * H] + hm @ w[:, k * H:(k + 1) * H] + b[k * H:(k + 1) * H]
        i, f, g, o = sigmoid(gate(0)), sigmoid(gate(1)), np.tanh(gate(2)), sigmoid(gate(3))
        c = f * c + i * g
        h = o * np.tanh(c)
      else:
        gate = lambda k, hh: x @ u[:, k * H:(k + 1) * H] + hh @ w[:, k * H:(k + 1) * H] + b[k * H:(k + 1) * H]
        r, z = sigmoid(gate(0, hm)), sigmoid(gate(1, hm))
        candidate = np.tanh(gate(2, r * hm))
        h = (1 - z) * h + z * candidate
      hs[n, t] = h
    finals[n] = h
  return hs, finals


def numpy_model(cell, params, xs, lengths, *, sizes, bidirectional, output):
  h = xs.astype(np.float64)
  for level in range(len(sizes)):
    out, last = numpy_layer(cell, params[f"{cell}_{level}"], h, lengths)
    if bidirectional:
      back, back_last = numpy_layer(cell, params[f"{cell}_{level}_reverse"], h, lengths, reverse=True)
      out, last = np.concatenate([out, back], -1), np.concatenate([last, back_last], -1)
    h = out
  v, c = np.asarray(params["output"]["kernel"], np.float64), np.asarray(params["output"]["bias"], np.float64)
  if output == "last":
    return last @ v + c  # o = c + V h
  if output == "mean":
    mask = np.arange(xs.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return (h * mask[..., None]).sum(1) / mask.sum(1, keepdims=True) @ v + c
  return h @ v + c


def _model(cell, **kwargs):
  module = SequenceModel(cell=cell, hidden_sizes=kwargs.pop("sizes", (H,)), num_outputs=2, **kwargs)
  return module


@pytest.fixture
def data(rng):
  xs = rng.normal(size=(B, T, F)).astype(np.float32)
  lengths = np.array([T, 4, 1, T - 1])
  return xs, lengths


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(
    "options",
    [
        pytest.param(dict(output="mean"), id="mean"),
        pytest.param(dict(bidirectional=True, output="sequence"), id="bidirectional-sequence"),
        # Two stacked bidirectional layers: the longest to compile; in the full suite.
        pytest.param(dict(sizes=(H, H), bidirectional=True, output="last"), id="stacked-bidirectional-last",
                     marks=pytest.mark.slow),
    ],
)
def test_forward_matches_numpy(cell, options, data):
  xs, lengths = data
  sizes = options.get("sizes", (H,))
  module = _model(cell, **options)
  params = module.init(jax.random.PRNGKey(1), xs, train=False)["params"]
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.PRNGKey(2), p.shape), params)  # nonzero biases
  out = module.apply({"params": params}, xs, train=False, lengths=lengths)
  expected = numpy_model(cell, params, xs, lengths, sizes=sizes, bidirectional=options.get("bidirectional", False),
                         output=options.get("output", "last"))
  if options.get("output") == "sequence":  # padded steps output the output layer's bias: compare the real ones
    valid = np.arange(T)[None, :] < lengths[:, None]
    np.testing.assert_allclose(np.asarray(out)[valid], expected[valid], rtol=1e-4, atol=1e-5)
  else:
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradients_match_finite_differences_of_the_numpy_cell(cell, data, rng):
  xs, lengths = data
  module = _model(cell, bidirectional=True)
  params = module.init(jax.random.PRNGKey(1), xs, train=False)["params"]
  weights = rng.normal(size=(B, 2))
  loss = lambda p: jnp.sum(module.apply({"params": p}, xs, train=False, lengths=lengths) * weights)
  grads = jax.grad(loss)(params)
  np_params = jax.tree.map(lambda p: np.asarray(p, np.float64), params)
  np_loss = lambda p: np.sum(numpy_model(cell, p, xs, lengths, sizes=(H,), bidirectional=True, output="last") * weights)
  for layer in (f"{cell}_0", f"{cell}_0_reverse"):
    for name in ("input_kernel", "recurrent_kernel", "bias"):
      flat = np_params[layer][name].reshape(-1)
      for index in rng.choice(flat.size, size=4, replace=False):
        eps = 1e-6
        plus, minus = jax.tree.map(np.copy, np_params), jax.tree.map(np.copy, np_params)
        plus[layer][name].reshape(-1)[index] += eps
        minus[layer][name].reshape(-1)[index] -= eps
        numeric = (np_loss(plus) - np_loss(minus)) / (2 * eps)
        analytic = float(np.asarray(grads[layer][name]).reshape(-1)[index])
        np.testing.assert_allclose(analytic, numeric, rtol=2e-3, atol=2e-5, err_msg=f"{layer}/{name}[{index}]")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_padded_steps_change_neither_outputs_nor_gradients(cell, data, rng):
  xs, lengths = data
  garbage = xs.copy()
  for n, length in enumerate(lengths):
    garbage[n, length:] = 100 * rng.normal(size=(T - length, F))
  zeros = xs.copy()
  for n, length in enumerate(lengths):
    zeros[n, length:] = 0.0
  module = _model(cell, sizes=(H, H), bidirectional=True, output="mean")
  params = module.init(jax.random.PRNGKey(1), xs, train=False)["params"]
  loss = lambda p, x: jnp.sum(module.apply({"params": p}, x, train=False, lengths=lengths) ** 2)
  value_and_grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  (l_garbage, (g_garbage, input_grad)), (l_zeros, (g_zeros, _)) = value_and_grads(params, garbage), value_and_grads(params, zeros)
  np.testing.assert_allclose(l_garbage, l_zeros, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g_garbage), jax.tree.leaves(g_zeros), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  input_grad = np.asarray(input_grad)
  for n, length in enumerate(lengths):
    np.testing.assert_array_equal(input_grad[n, length:], 0.0)


def test_variational_dropout_uses_one_mask_for_the_whole_sequence(rng):
  """Recover the dropout masks from the outputs; every time step must show the same one."""
  module = SequenceModel(cell="rnn", hidden_sizes=(H,), num_outputs=1, output="sequence", input_dropout=0.5,
                         recurrent_dropout=0.5)
  xs = rng.uniform(0.2, 0.6, size=(B, T, H)).astype(np.float32)
  params = module.init(jax.random.PRNGKey(0), xs, train=False)["params"]
  layer = dict(params["rnn_0"])
  # Input dropout only: U = I, W = 0, b = 0 gives h_t = tanh(m * x_t), so m = arctanh(h_t) / x_t at every t.
  layer.update(input_kernel=jnp.eye(H), recurrent_kernel=jnp.zeros((H, H)), bias=jnp.zeros(H))
  hidden = _hidden(module, {**params, "rnn_0": layer}, xs)
  masks = np.arctanh(hidden) / xs  # (B, T, H)
  np.testing.assert_allclose(masks, np.broadcast_to(masks[:, :1], masks.shape), atol=1e-4)
  assert set(np.round(np.unique(masks), 3)) <= {0.0, 2.0} and (masks == 0).any() and (masks > 1).any()
  # Recurrent dropout: U = 0, W = I, b = 0.5 gives h_t = tanh(0.5 + m * h_{t-1}); one m must explain every step.
  layer.update(input_kernel=jnp.zeros((H, H)), recurrent_kernel=jnp.eye(H), bias=jnp.full(H, 0.5))
  hidden = np.asarray(_hidden(module, {**params, "rnn_0": layer}, xs), np.float64)
  m = (np.arctanh(hidden[:, 1]) - 0.5) / hidden[:, 0]
  assert set(np.round(np.unique(m), 3)) <= {0.0, 2.0}
  h = np.tanh(np.full((B, H), 0.5))
  for t in range(1, T):
    h = np.tanh(0.5 + m * h)
    np.testing.assert_allclose(hidden[:, t], h, atol=1e-5)


def _hidden(module, params, xs):
  _, state = module.apply({"params": params}, xs, train=True, rngs={"dropout": jax.random.PRNGKey(3)},
                          mutable=["intermediates"])
  return np.asarray(state["intermediates"]["hidden_0"][0])


def test_lstm_forget_bias_and_orthogonal_recurrent_init():
  model = make_sequence_model(cell="lstm", num_outputs=2, hidden_sizes=(8,))
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 5, 3)))["params"]["lstm_0"]
  bias = np.asarray(params["bias"])
  np.testing.assert_array_equal(bias[8:16], 1.0)  # the forget gate's block
  np.testing.assert_array_equal(np.delete(bias, np.s_[8:16]), 0.0)
  w = np.asarray(params["recurrent_kernel"])
  for k in range(4):
    block = w[:, 8 * k:8 * (k + 1)]
    np.testing.assert_allclose(block.T @ block, np.eye(8), atol=1e-5)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_flat_inputs_are_read_as_rows():
  model = make_sequence_model(cell="gru", num_outputs=10, hidden_sizes=(4,), sequence_length=8)
  x = jnp.arange(2 * 64, dtype=jnp.float32).reshape(2, 64) / 128
  variables = model.init(jax.random.PRNGKey(0), x[:1])
  assert variables["params"]["gru_0"]["input_kernel"].shape == (8, 12)  # 8 pixels per step
  np.testing.assert_allclose(model.apply(variables, x, train=False)[0],
                             model.apply(variables, x.reshape(2, 8, 8), train=False)[0])


def test_inputs_that_are_not_sequences_are_refused_with_the_fix():
  from jaxreg.models.recurrent import as_sequences

  assert as_sequences(jnp.ones((2, 64)), 8).shape == (2, 8, 8)
  assert as_sequences(jnp.ones((2, 5)), None).shape == (2, 5, 1)
  assert as_sequences(jnp.ones((2, 5, 3)), 8).shape == (2, 5, 3)
  with pytest.raises(ValueError, match=r"flat inputs of 5 features cannot be read as sequence_length=8 steps"):
    as_sequences(jnp.ones((2, 5)), 8)
  with pytest.raises(ValueError, match=r"got 3-D examples of shape \(5, 3, 2\): flatten each step's features"):
    as_sequences(jnp.ones((2, 5, 3, 2)), None)
