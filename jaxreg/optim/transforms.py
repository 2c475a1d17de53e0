"""The optimizers of the lecture notes (Goodfellow et al. 2016, Algorithms 8.1-8.7) as optax transforms.

Each optimizer is a chain of optax primitives wherever optax computes the
same arithmetic; only AdaGrad with ``delta`` outside the square root and the
accumulator starting at 0 needs a primitive of its own. Every
``learning_rate`` accepts a number or a schedule ``step -> value``.

Names follow the lecture notes' symbols: ``learning_rate`` is epsilon,
``momentum`` is alpha, ``decay`` is rho, ``b1``/``b2`` are rho_1/rho_2 and
``delta`` is the small stabilising constant.
"""

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

ScalarOrSchedule = float | optax.Schedule


def _concrete(value):
  """``value`` as a Python number to check, or ``None`` when it is traced (checked when it was a number)."""
  if isinstance(value, jax.core.Tracer):
    return None  # e.g. a hyperparameter injected by optax.inject_hyperparams, under jit
  if isinstance(value, (jax.Array, np.ndarray)) and value.shape == ():
    return value.item()
  return value


def _check_number(name: str, value) -> float | None:
  value = _concrete(value)
  if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
    raise TypeError(f"{name} must be a number, got {value!r}")
  return value


def _check_unit_interval(name: str, value) -> None:
  value = _check_number(name, value)
  if value is not None and not 0.0 <= value < 1.0:
    raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def _check_positive(name: str, value) -> None:
  value = _check_number(name, value)
  if value is not None and not value > 0:
    raise ValueError(f"{name} must be a positive number, got {value!r}")


def _check_learning_rate(value) -> None:
  """A number must be positive and finite (a schedule or a traced value is checked by its user).

  A rate <= 0 would climb the loss; gradient ascent is asked for explicitly
  by negating the objective (or chaining ``optax.scale(-1.0)``).
  """
  if callable(value):
    return
  number = _check_number("learning_rate", value)
  if number is not None and not (number > 0 and math.isfinite(number)):
    raise ValueError(
        f"learning_rate must be a positive, finite number, got {value!r} (for gradient ascent, negate the "
        "objective or chain optax.scale(-1.0) after the optimizer)"
    )


def _check_form(value: str, choices: tuple[str, ...]) -> str:
  """The form's name; ``'seed'``, the name of ``'book'`` in configs saved by jaxreg 0.1, is still read."""
  value = "book" if value == "seed" else value
  if value not in choices:
    raise ValueError(f"form must be one of {', '.join(choices)}, got {value!r}")
  return value


def _optimizer(*transforms: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
  """The chain of ``transforms`` (one alone keeps its own state), whose ``update`` accepts extra keyword
  arguments as optax's chains do (``update(updates, state, params, value=...)``)."""
  if len(transforms) == 1:
    return optax.with_extra_args_support(transforms[0])
  return optax.chain(*transforms)


def sgd(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
  """Stochastic gradient descent (Goodfellow et al. 2016, Algorithm 8.1; Baskin et al. 2018).

  ``theta <- theta - eps_k * g``. Batch, minibatch and single-example SGD
  differ only in how many examples ``g`` averages over: the batch size.

  Examples:
    >>> tx = sgd(0.1)
  """
  _check_learning_rate(learning_rate)
  return _optimizer(optax.scale_by_learning_rate(learning_rate))


def momentum(
    learning_rate: ScalarOrSchedule, momentum: float = 0.9, *, form: str = "book"
) -> optax.GradientTransformation:
  """SGD with momentum (Goodfellow et al. 2016, Algorithm 8.2; Baskin et al. 2018).

  ``form='book'`` (Goodfellow et al.'s): ``v <- alpha*v - eps_k*g``, ``theta <- theta + v``: the
  learning rate is inside the velocity, so a change of ``eps`` affects only
  new gradients.

  ``form='optax'``: ``v <- alpha*v + g``, ``theta <- theta - eps_k*v``
  (``optax.sgd(momentum=...)``, PyTorch): the same sequence while ``eps`` is
  constant, different once it changes.

  Args:
    learning_rate: ``eps``, a number or a schedule.
    momentum: ``alpha`` in [0, 1).
    form: ``'book'`` (Goodfellow et al.'s, the default) or ``'optax'``.

  Examples:
    >>> tx = momentum(0.1, 0.9)
    >>> state = tx.init({'w': jnp.zeros(1)})
    >>> for _ in range(2):
    ...   updates, state = tx.update({'w': jnp.ones(1)}, state)
    >>> round(float(updates['w'][0]), 4)  # v = 0.9 (-0.1) - 0.1
    -0.19
  """
  _check_learning_rate(learning_rate)
  _check_unit_interval("momentum", momentum)
  form = _check_form(form, ("book", "optax"))
  if form == "book":
    return _optimizer(optax.scale_by_learning_rate(learning_rate), optax.trace(decay=momentum))
  return _optimizer(optax.trace(decay=momentum), optax.scale_by_learning_rate(learning_rate))


def nesterov(learning_rate: ScalarOrSchedule, momentum: float = 0.9) -> optax.GradientTransformation:
  """SGD with Nesterov momentum (Goodfellow et al. 2016, Algorithm 8.3).

  The notes evaluate the gradient at the interim point
  ``theta~ = theta + alpha*v``, then ``v <- alpha*v - eps*g(theta~)`` and
  ``theta <- theta + v``. With the change of variables ``phi = theta + alpha*v``
  this is ``phi <- phi + alpha*v_new - eps*g(phi)``, so **the parameters the
  train step holds are the interim points** ``theta~`` where gradients are
  evaluated. :func:`nesterov_theta` recovers ``theta = phi - alpha*v``; use
  it to evaluate the model at the notes' ``theta``.

  Args:
    learning_rate: ``eps``, a number or a schedule.
    momentum: ``alpha`` in [0, 1).

  Examples:
    >>> tx = nesterov(0.1, 0.9)
    >>> params = {'w': jnp.zeros(1)}
    >>> updates, state = tx.update({'w': jnp.ones(1)}, tx.init(params), params)
    >>> round(float(nesterov_theta(optax.apply_updates(params, updates), state, 0.9)['w'][0]), 4)  # theta = -0.1
    -0.1
  """
  _check_learning_rate(learning_rate)
  _check_unit_interval("momentum", momentum)
  return _optimizer(
      optax.scale_by_learning_rate(learning_rate), optax.trace(decay=momentum, nesterov=True)
  )


class ScaleByAdagradState(NamedTuple):
  """State of :func:`scale_by_adagrad`: the sum of squared gradients ``r``."""

  sum_of_squares: Any


def scale_by_adagrad(
    delta: float = 1e-7, *, initial_accumulator_value: float = 0.0, delta_inside_sqrt: bool = False
) -> optax.GradientTransformation:
  """AdaGrad's rescaling: ``r <- r + g*g``, ``g <- g / (delta + sqrt(r))``.

  Args:
    delta: the stabilising constant ``delta``.
    initial_accumulator_value: the initial ``r`` (0 in the notes and the book; 0.1 in optax and Keras).
    delta_inside_sqrt: use ``g / sqrt(r + delta)`` instead (optax, Keras).

  Examples:
    >>> tx = optax.chain(scale_by_adagrad(), optax.scale(-0.1))  # adagrad(0.1) as a chain
    >>> updates, _ = tx.update({'w': jnp.array([3.0])}, tx.init({'w': jnp.zeros(1)}))
    >>> round(float(updates['w'][0]), 4)
    -0.1
  """

  def init_fn(params):
    return ScaleByAdagradState(
        jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value), params)
    )

  def update_fn(updates, state, params=None):
    del params
    r = jax.tree.map(lambda acc, g: acc + g * g, state.sum_of_squares, updates)
    if delta_inside_sqrt:
      scaled = jax.tree.map(lambda g, a: g * jax.lax.rsqrt(a + delta), updates, r)
    else:
      scaled = jax.tree.map(lambda g, a: g / (delta + jnp.sqrt(a)), updates, r)
    return scaled, ScaleByAdagradState(r)

  return optax.with_extra_args_support(optax.GradientTransformation(init_fn, update_fn))


def adagrad(
    learning_rate: ScalarOrSchedule, delta: float = 1e-7, *, form: str = "book"
) -> optax.GradientTransformation:
  """AdaGrad (Goodfellow et al. 2016, Algorithm 8.4; Duchi et al., 2011).

  ``form='book'`` (Goodfellow et al.'s): ``r`` starts at 0, ``r <- r + g*g``,
  ``theta <- theta - eps/(delta + sqrt(r)) * g`` (as PyTorch). The notes
  prints the update as ``+eps/(delta + sqrt(r)) * g`` followed by
  ``theta <- theta + delta_theta``, a sign slip (that would ascend); the
  book it follows (Goodfellow et al., Deep Learning, Algorithm 8.4) has the
  minus sign, which is what this implements.

  ``form='optax'``: ``r`` starts at 0.1 and ``delta`` is inside the root,
  ``g / sqrt(r + delta)`` (``optax.adagrad``, Keras).

  Args:
    learning_rate: ``eps``, a number or a schedule.
    delta: ``delta`` > 0, "perhaps 1e-7".
    form: ``'book'`` (Goodfellow et al.'s, the default) or ``'optax'``.

  Examples:
    >>> tx = adagrad(0.1)
    >>> updates, _ = tx.update({'w': jnp.array([2.0])}, tx.init({'w': jnp.zeros(1)}))
    >>> round(float(updates['w'][0]), 4)  # -eps g / (delta + sqrt(g^2))
    -0.1
  """
  _check_learning_rate(learning_rate)
  _check_positive("delta", delta)
  form = _check_form(form, ("book", "optax"))
  if form == "book":
    rescale = scale_by_adagrad(delta)
  else:
    rescale = scale_by_adagrad(delta, initial_accumulator_value=0.1, delta_inside_sqrt=True)
  return _optimizer(rescale, optax.scale_by_learning_rate(learning_rate))


def rmsprop(
    learning_rate: ScalarOrSchedule, decay: float = 0.9, delta: float = 1e-6, *, delta_inside_sqrt: bool = True
) -> optax.GradientTransformation:
  """RMSProp (Goodfellow et al. 2016, Algorithm 8.5; Hinton, 2012).

  ``r <- rho*r + (1 - rho)*g*g``, ``theta <- theta - eps/sqrt(delta + r) * g``,
  ``r`` starting at 0. ``delta_inside_sqrt=False`` gives
  ``eps/(delta + sqrt(r))``, PyTorch's form (and the notes' summary slide).

  Args:
    learning_rate: ``eps``, a number or a schedule.
    decay: ``rho`` in [0, 1).
    delta: ``delta`` > 0, "usually 1e-6".
    delta_inside_sqrt: where ``delta`` goes.

  Examples:
    >>> tx = rmsprop(0.01, decay=0.9)
    >>> updates, _ = tx.update({'w': jnp.array([1.0])}, tx.init({'w': jnp.zeros(1)}))
    >>> round(float(updates['w'][0]), 4)  # -eps g / sqrt(delta + 0.1 g^2)
    -0.0316
  """
  _check_learning_rate(learning_rate)
  _check_unit_interval("decay", decay)
  _check_positive("delta", delta)
  return _optimizer(
      optax.scale_by_rms(decay=decay, eps=delta, eps_in_sqrt=delta_inside_sqrt),
      optax.scale_by_learning_rate(learning_rate),
  )


def rmsprop_nesterov(
    learning_rate: ScalarOrSchedule, decay: float = 0.9, momentum: float = 0.9, delta: float = 1e-10
) -> optax.GradientTransformation:
  """RMSProp with Nesterov momentum (Goodfellow et al. 2016, Algorithm 8.6).

  The gradient is evaluated at ``theta~ = theta + alpha*v``; then
  ``r <- rho*r + (1 - rho)*g*g``, ``v <- alpha*v - eps/sqrt(r) * g``,
  ``theta <- theta + v``. As in :func:`nesterov`, the parameters the train
  step holds are the interim points ``theta~``; :func:`nesterov_theta`
  recovers ``theta``. The notes have no ``delta``; a tiny one
  (``sqrt(r + delta)``) keeps a zero gradient from dividing 0 by 0.

  Args:
    learning_rate: ``eps``, a number or a schedule.
    decay: ``rho`` in [0, 1).
    momentum: ``alpha`` in [0, 1).
    delta: the tiny constant inside the root, > 0.

  Examples:
    >>> tx = rmsprop_nesterov(0.01, decay=0.9, momentum=0.9)
    >>> state = tx.init({'w': jnp.zeros(3)})
    >>> updates, state = tx.update({'w': jnp.ones(3)}, state, {'w': jnp.zeros(3)})
    >>> updates['w'].shape
    (3,)
  """
  _check_learning_rate(learning_rate)
  _check_unit_interval("decay", decay)
  _check_unit_interval("momentum", momentum)
  _check_positive("delta", delta)
  return _optimizer(
      optax.scale_by_rms(decay=decay, eps=delta, eps_in_sqrt=True),
      optax.scale_by_learning_rate(learning_rate),
      optax.trace(decay=momentum, nesterov=True),
  )


def adam(
    learning_rate: ScalarOrSchedule = 1e-3, b1: float = 0.9, b2: float = 0.999, delta: float = 1e-8
) -> optax.GradientTransformation:
  """Adam (Goodfellow et al. 2016, Algorithm 8.7; Kingma and Ba, 2015).

  ``t <- t + 1``, ``s <- rho1*s + (1 - rho1)*g``, ``r <- rho2*r + (1 - rho2)*g*g``,
  ``s^ = s/(1 - rho1^t)``, ``r^ = r/(1 - rho2^t)``,
  ``theta <- theta - eps * s^/(sqrt(r^) + delta)``.

  Args:
    learning_rate: ``eps`` (suggested 0.001), a number or a schedule.
    b1: ``rho_1`` in [0, 1) (suggested 0.9).
    b2: ``rho_2`` in [0, 1) (suggested 0.999).
    delta: ``delta`` > 0 (suggested 1e-8).

  Examples:
    >>> tx = adam(1e-3)
    >>> updates, _ = tx.update({'w': jnp.array([4.0])}, tx.init({'w': jnp.zeros(1)}))
    >>> round(float(updates['w'][0]), 6)  # the first step is -eps sign(g), bias corrected
    -0.001
  """
  _check_learning_rate(learning_rate)
  _check_unit_interval("b1", b1)
  _check_unit_interval("b2", b2)
  _check_positive("delta", delta)
  return _optimizer(
      optax.scale_by_adam(b1=b1, b2=b2, eps=delta), optax.scale_by_learning_rate(learning_rate)
  )


def nesterov_theta(params, opt_state, momentum: float):
  """Recovers the notes' ``theta = theta~ - alpha*v`` from a Nesterov optimizer's state.

  For :func:`nesterov` and :func:`rmsprop_nesterov`, whose train-step
  parameters are the interim points ``theta~ = theta + alpha*v``.

  Args:
    params: the parameters the train step holds (``theta~``).
    opt_state: the optimizer's state (its ``trace`` is the velocity ``v``).
    momentum: the optimizer's ``alpha``.

  Raises:
    ValueError: if the state holds no velocity (not a Nesterov optimizer).

  Examples:
    >>> tx = nesterov(0.1, 0.9)
    >>> params = {'w': jnp.zeros(1)}
    >>> updates, state = tx.update({'w': jnp.ones(1)}, tx.init(params), params)
    >>> interim = optax.apply_updates(params, updates)  # theta~ = theta + alpha v
    >>> round(float(interim['w'][0]), 4), round(float(nesterov_theta(interim, state, 0.9)['w'][0]), 4)
    (-0.19, -0.1)
  """
  traces = [
      s for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, optax.TraceState))
      if isinstance(s, optax.TraceState)
  ]
  if len(traces) != 1:
    raise ValueError(
        f"this optimizer state holds {len(traces)} velocities (optax.TraceState); "
        "expected one: it is not a Nesterov optimizer"
    )
  return jax.tree.map(lambda p, v: p - momentum * v, params, traces[0].trace)
