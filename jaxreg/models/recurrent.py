"""Recurrent networks written from the lecture notes' equations: the basic RNN, the LSTM and the GRU.

Wang 2023, "Review: Basic RNN", "Long Short Term Memory" and "Gated Recurrent
Unit". Every layer fuses the gates' products into one ``x_t @ U`` and one
``h_{t-1} @ W`` per step and runs the recurrence as one ``lax.scan`` over
time (hoisting ``U x_t`` out of the loop is an option, measured slower on a
CPU: see :class:`RecurrentLayer`). Sequences are batch-first,
``(batch, time, features)``; padded steps (``lengths``) leave the state and
the gradients untouched and output zeros.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreg import _random
from jaxreg._validation import check_layer_sizes, check_rate
from jaxreg.errors import ConfigError
from jaxreg.models.dropout import layer_rates, module_dropout
from jaxreg.models.initializers import Initializer
from jaxreg.models.normalization import NormalizedLayers

CELLS = ("rnn", "lstm", "gru")
OUTPUTS = ("last", "mean", "sequence")
_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _bernoulli_keep(rng, rate: float, shape) -> jax.Array:
  keep = 1.0 - rate
  return _random.bernoulli(rng, keep, shape).astype(jnp.float32) / keep


class RecurrentLayer(nn.Module):
  """One recurrent layer over a batch of sequences.

  ``cell='rnn'`` (Wang 2023, basic RNN): ``h_t = tanh(b + W h_{t-1} + U x_t)``.

  ``cell='lstm'``: ``f_t = sigma(W_f h_{t-1} + U_f x_t + b_f)``, likewise the
  input gate ``i_t`` and output gate ``o_t``, the candidate
  ``c~_t = tanh(W h_{t-1} + U x_t + b)``, then ``c_t = f_t * c_{t-1} + i_t * c~_t``
  and ``h_t = o_t * tanh(c_t)``. The notes' equations omit the biases; they
  are here, with ``b_f`` initialized to ``forget_bias`` (1.0: remember by
  default, Jozefowicz et al. 2015). Fused gate order: ``[i, f, c~, o]``.

  ``cell='gru'``: ``r_t = sigma(W_r h_{t-1} + U_r x_t + b_r)``,
  ``z_t = sigma(W_z h_{t-1} + U_z x_t + b_z)``,
  ``h~_t = tanh(W (r_t * h_{t-1}) + U x_t + b)``,
  ``h_t = (1 - z_t) * h_{t-1} + z_t * h~_t``. This is the lecture notes' (and Cho et
  al.'s) form; Flax's ``GRUCell`` interpolates the other way round,
  ``h_t = (1 - z_t) * h~_t + z_t * h_{t-1}``, and applies the reset gate
  after the recurrent product. Fused gate order: ``[r, z, h~]``.

  Attributes:
    cell: ``'rnn'``, ``'lstm'`` or ``'gru'``.
    hidden_size: the state's width.
    reverse: run from the last step to the first (the backward half of a
      bidirectional layer).
    recurrent_dropout: variational dropout on the state: one mask per
      sequence, drawn once and applied to ``h_{t-1}`` wherever it enters a
      recurrent product, at every step (Gal and Ghahramani, 2016).
    forget_bias: the LSTM forget gate's initial bias.
    kernel_init: initializer of the input kernel ``U``.
    recurrent_init: initializer of the recurrent kernel ``W`` (orthogonal by default).
    unroll: time steps per iteration of the compiled scan loop.
    hoist_inputs: compute ``U x_t + b`` for all steps in one product before
      the recurrence instead of inside each step. Measured slower on a
      2-core CPU (``python bench/rnn.py --hoist``; docs/recurrent.md): the
      backward pass must then write a (batch, 4*hidden) cotangent per step,
      which costs more there than the small per-step product it saves.

  Examples:
    >>> layer = RecurrentLayer(cell='gru', hidden_size=8)
    >>> xs, mask = jnp.zeros((2, 5, 3)), jnp.ones((2, 5))  # mask: the real time steps
    >>> variables = layer.init(jax.random.key(0), xs, mask, train=False)
    >>> outputs, final = layer.apply(variables, xs, mask, train=False)
    >>> outputs.shape, final.shape  # every time step's state, and the last
    ((2, 5, 8), (2, 8))
  """

  cell: str
  hidden_size: int
  reverse: bool = False
  recurrent_dropout: float = 0.0
  forget_bias: float = 1.0
  kernel_init: Initializer = nn.initializers.lecun_normal()
  recurrent_init: Initializer = nn.initializers.orthogonal()
  unroll: int = 1
  hoist_inputs: bool = False

  def _bias_init(self, key, shape, dtype=jnp.float32):
    del key
    bias = jnp.zeros(shape, dtype)
    if self.cell == "lstm":
      h = self.hidden_size
      bias = bias.at[h:2 * h].set(self.forget_bias)
    return bias

  def _recurrent_kernel_init(self, key, shape, dtype=jnp.float32):
    # Each gate's square block gets its own (orthogonal) matrix.
    h = self.hidden_size
    keys = jax.random.split(key, _GATES[self.cell])
    return jnp.concatenate([self.recurrent_init(k, (h, h), dtype) for k in keys], axis=1)

  @nn.compact
  def __call__(self, xs: jax.Array, mask: jax.Array, *, train: bool):
    """Runs the layer.

    Args:
      xs: ``(batch, time, features)``.
      mask: ``(batch, time)``, 1 for real steps and 0 for padding, or ``None`` (all real).
      train: whether recurrent dropout is active.

    Returns:
      ``(outputs, final)``: ``h_t`` per step ``(batch, time, hidden)`` (0 at
      padded steps), and the final state ``h`` (for ``'lstm'``, ``(h, c)``).
    """
    if self.cell not in CELLS:
      raise ConfigError(f"unknown recurrent cell {self.cell!r}; valid cells: {', '.join(CELLS)}")
    h_size, gates = self.hidden_size, _GATES[self.cell]
    batch = xs.shape[0]
    u = self.param("input_kernel", self.kernel_init, (xs.shape[-1], gates * h_size))
    w = self.param("recurrent_kernel", self._recurrent_kernel_init, (h_size, gates * h_size))
    b = self.param("bias", self._bias_init, (gates * h_size,))
    if self.hoist_inputs:
      inputs = jnp.einsum("btf,fg->tbg", xs, u) + b  # U x_t + b for every step at once
      project = lambda p: p  # noqa: E731
    else:
      inputs = jnp.swapaxes(xs, 0, 1)
      project = lambda x_t: x_t @ u + b  # noqa: E731
    step_mask = None if mask is None else jnp.swapaxes(mask, 0, 1)[..., None].astype(xs.dtype)  # (time, batch, 1)
    if train and self.recurrent_dropout > 0:
      state_mask = _bernoulli_keep(self.make_rng("dropout"), self.recurrent_dropout, (batch, h_size))
    else:
      state_mask = None
    cell = self.cell

    def step(carry, step_inputs):
      x_t, m = step_inputs if step_mask is not None else (step_inputs, None)
      p = project(x_t)
      h = carry[0] if cell == "lstm" else carry
      h_in = h if state_mask is None else h * state_mask
      if cell == "rnn":
        new_h = jnp.tanh(p + h_in @ w)
        new_carry = new_h
      elif cell == "lstm":
        a = p + h_in @ w
        i, f, g, o = jnp.split(a, 4, axis=-1)
        c = jax.nn.sigmoid(f) * carry[1] + jax.nn.sigmoid(i) * jnp.tanh(g)
        new_h = jax.nn.sigmoid(o) * jnp.tanh(c)
        new_carry = (new_h, c)
      else:
        rz = jax.nn.sigmoid(p[:, : 2 * h_size] + h_in @ w[:, : 2 * h_size])
        r, z = rz[:, :h_size], rz[:, h_size:]
        candidate = jnp.tanh(p[:, 2 * h_size:] + (r * h_in) @ w[:, 2 * h_size:])
        new_h = (1.0 - z) * h + z * candidate
        new_carry = new_h
      if m is None:
        return new_carry, new_h
      # Padded steps keep the state (so neither it nor the gradients change) and output 0.
      new_carry = jax.tree.map(lambda new, old: m * new + (1.0 - m) * old, new_carry, carry)
      return new_carry, m * new_h

    zeros = jnp.zeros((batch, h_size), xs.dtype)
    init = (zeros, zeros) if cell == "lstm" else zeros
    scanned = inputs if step_mask is None else (inputs, step_mask)
    final, outputs = jax.lax.scan(step, init, scanned, reverse=self.reverse, unroll=self.unroll)
    return jnp.swapaxes(outputs, 0, 1), final


def as_sequences(x: jax.Array, sequence_length: int | None) -> jax.Array:
  """``x`` as ``(batch, time, features)``: a flat ``(batch, d)`` input read as ``sequence_length`` steps.

  Raises:
    ValueError: for inputs that cannot be read as sequences, naming the
      shape and the fix.
  """
  if x.ndim == 2 and sequence_length is not None:
    if x.shape[1] % sequence_length:
      raise ValueError(
          f"flat inputs of {x.shape[1]} features cannot be read as sequence_length={sequence_length} steps "
          f"({x.shape[1]} is not a multiple of {sequence_length}); set model.sequence_length to a divisor of "
          f"{x.shape[1]}, or pass inputs shaped (examples, time, features)"
      )
    return x.reshape(x.shape[0], sequence_length, -1)
  if x.ndim == 2:
    return x[..., None]
  if x.ndim != 3:
    raise ValueError(
        f"a recurrent model takes inputs shaped (examples, time, features), (examples, time) or, with "
        f"sequence_length, (examples, features); got {x.ndim - 1}-D examples of shape {tuple(x.shape[1:])}: "
        "flatten each step's features (x.reshape(len(x), time, -1))"
    )
  return x


class SequenceModel(nn.Module):
  """Stacked (optionally bidirectional) recurrent layers and an output layer ``o = c + V h``.

  ``output='last'``: many-to-one from the final state (with
  ``bidirectional``, the forward state after the last real step and the
  backward state after the first). ``'mean'``: many-to-one from the mean of
  the top layer's outputs over the real steps. ``'sequence'``: many-to-many,
  an output per step ``(batch, time, num_outputs)``.

  Inputs are ``(batch, time, features)``; a ``(batch, time)`` array is one
  feature per step, and with ``sequence_length`` a flat ``(batch, d)`` input
  is read as ``sequence_length`` steps of ``d / sequence_length`` features
  (digits' 64 pixels as 8 rows of 8). ``lengths`` marks the real steps of
  each sequence; the rest is padding.

  Attributes:
    cell: ``'rnn'``, ``'lstm'`` or ``'gru'``.
    hidden_sizes: the stacked layers' widths.
    num_outputs: the output layer's width.
    bidirectional: add a backward layer at every level and concatenate.
    output: ``'last'``, ``'mean'`` or ``'sequence'``.
    dropout_rate: dropout between stacked layers (and before the output
      layer): one rate, or one per layer (:mod:`jaxreg.models.dropout`).
    input_dropout: variational dropout on the inputs (one mask per sequence).
    recurrent_dropout: variational dropout on the state (see :class:`RecurrentLayer`).
    dropout_kind: ``'bernoulli'`` or ``'gaussian'``, between layers (the
      variational masks are inverted Bernoulli).
    dropout_inference: ``'inverted'`` or ``'weight_scaling'``, between layers.
    mc_dropout: keep every dropout sampling at evaluation (Monte-Carlo dropout).
    forget_bias: the LSTM forget gate's initial bias.
    kernel_init: initializer of the input kernels and the output layer.
    recurrent_init: initializer of the recurrent kernels.
    sequence_length: read flat inputs as this many steps.
    unroll: time steps per compiled loop iteration.
    hoist_inputs: see :class:`RecurrentLayer`.
    normalization: ``'none'``, ``'batch_norm'`` or ``'mean_only'`` between stacked layers, over the
      batch and the real time steps (:mod:`jaxreg.models.normalization`).
    batch_norm_momentum, batch_norm_variance, batch_norm_axis_name: as for :class:`~jaxreg.models.MLP`.

  Examples:
    >>> module = SequenceModel(cell='lstm', hidden_sizes=(8,), num_outputs=2)
    >>> variables = module.init(jax.random.key(0), jnp.zeros((1, 5, 3)), train=False)
    >>> module.apply(variables, jnp.zeros((4, 5, 3)), train=False).shape
    (4, 2)
  """

  cell: str
  hidden_sizes: Sequence[int]
  num_outputs: int
  bidirectional: bool = False
  output: str = "last"
  dropout_rate: float | Sequence[float] = 0.0
  input_dropout: float = 0.0
  recurrent_dropout: float = 0.0
  dropout_kind: str = "bernoulli"
  dropout_inference: str = "inverted"
  mc_dropout: bool = False
  forget_bias: float = 1.0
  kernel_init: Initializer = nn.initializers.lecun_normal()
  recurrent_init: Initializer = nn.initializers.orthogonal()
  sequence_length: int | None = None
  unroll: int = 1
  hoist_inputs: bool = False
  normalization: str = "none"
  batch_norm_momentum: float = 0.9
  batch_norm_variance: str = "unbiased"
  batch_norm_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool, lengths: jax.Array | None = None) -> jax.Array:
    x = as_sequences(x, self.sequence_length)
    batch, time = x.shape[:2]
    mask = None if lengths is None else (jnp.arange(time)[None, :] < jnp.asarray(lengths)[:, None]).astype(jnp.float32)
    sample = train or self.mc_dropout  # dropout draws a sub-network
    rates = layer_rates("dropout_rate", self.dropout_rate, len(self.hidden_sizes))
    if sample and self.input_dropout > 0:
      keep = _bernoulli_keep(self.make_rng("dropout"), self.input_dropout, (batch, 1, x.shape[-1]))
      x = x * keep  # the same mask at every step of a sequence
    h, finals = x, None
    for level, width in enumerate(self.hidden_sizes):
      kwargs = dict(cell=self.cell, hidden_size=width, recurrent_dropout=self.recurrent_dropout,
                    forget_bias=self.forget_bias, kernel_init=self.kernel_init,
                    recurrent_init=self.recurrent_init, unroll=self.unroll, hoist_inputs=self.hoist_inputs)
      outputs, final = RecurrentLayer(**kwargs, name=f"{self.cell}_{level}")(h, mask, train=sample)
      last = final[0] if self.cell == "lstm" else final
      if self.bidirectional:
        back_outputs, back_final = RecurrentLayer(**kwargs, reverse=True, name=f"{self.cell}_{level}_reverse")(
            h, mask, train=sample
        )
        outputs = jnp.concatenate([outputs, back_outputs], axis=-1)
        last = jnp.concatenate([last, back_final[0] if self.cell == "lstm" else back_final], axis=-1)
      self.sow("intermediates", f"hidden_{level}", outputs)
      finals = last
      if level < len(self.hidden_sizes) - 1:  # between layers: statistics over the batch and the real steps
        outputs = NormalizedLayers.normalize(self, outputs, f"batch_norm_{level}", train, mask)
      h = module_dropout(self, outputs, rates[level], train)
    if self.output == "last":
      features = module_dropout(self, finals, rates[-1], train)
    elif self.output == "mean":
      if mask is None:
        features = jnp.mean(h, axis=1)
      else:
        features = jnp.sum(h * mask[..., None], axis=1) / jnp.maximum(jnp.sum(mask, axis=1, keepdims=True), 1.0)
    else:
      features = h
    return nn.Dense(self.num_outputs, kernel_init=self.kernel_init, name="output")(features)


def validate_sequence_model(
    cell: str, hidden_sizes: Sequence[int], output: str, rates: dict[str, float], unroll: int
) -> None:
  """Raises ``ValueError`` naming the argument for an impossible recurrent model configuration."""
  if cell not in CELLS:
    raise ConfigError(f"unknown recurrent cell {cell!r}; valid cells: {', '.join(CELLS)}")
  if output not in OUTPUTS:
    raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
  check_layer_sizes("hidden_sizes", hidden_sizes)
  for name, rate in rates.items():
    check_rate(name, rate)
  if isinstance(unroll, bool) or not isinstance(unroll, int) or unroll < 1:
    raise ValueError(f"unroll must be a positive integer, got {unroll!r}")

