"""Composing augmentations ``fn(key, x) -> x``, and running one over a batch."""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

Augmentation = Callable[[jax.Array, jax.Array], jax.Array]


def _check_augmentations(augmentations: Sequence) -> None:
  if not augmentations:
    raise ValueError("give at least one augmentation")
  for aug in augmentations:
    if not callable(aug):
      raise TypeError(f"an augmentation is a function fn(key, x) -> x, got {aug!r}")


def chain(*augmentations: Augmentation) -> Augmentation:
  """Applies ``augmentations`` in order, each with its own key (``split(key, n)``).

  Examples:
    >>> aug = chain(shift(4), gaussian_noise(0.05))
    >>> aug(jax.random.PRNGKey(0), jnp.zeros(40)).shape
    (40,)
  """
  _check_augmentations(augmentations)

  def chained(key, x):
    for sub, aug in zip(jax.random.split(key, len(augmentations)), augmentations, strict=True):
      x = aug(sub, x)
    return x

  return chained


def random_apply(augmentation: Augmentation, p: float) -> Augmentation:
  """Applies ``augmentation`` with probability ``p``, else returns the example unchanged.

  Both branches are computed and one is selected (``jnp.where``), so the
  function stays a single compiled program under ``vmap``.

  Examples:
    >>> aug = random_apply(gaussian_noise(0.1), p=0.0)
    >>> bool(jnp.all(aug(jax.random.key(0), jnp.ones(5)) == 1.0))  # never applied
    True
  """
  _check_augmentations([augmentation])
  if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
    raise ValueError(f"p must be a probability in [0, 1], got {p!r}")

  def maybe(key, x):
    coin, sub = jax.random.split(key)
    return jnp.where(jax.random.bernoulli(coin, p), augmentation(sub, x), x)

  return maybe


def one_of(*augmentations: Augmentation) -> Augmentation:
  """Applies one of ``augmentations``, chosen uniformly per example (``lax.switch``).

  Examples:
    >>> aug = one_of(horizontal_flip(p=1.0), translate(1))
    >>> aug(jax.random.key(0), jnp.ones((8, 8, 1))).shape
    (8, 8, 1)
  """
  _check_augmentations(augmentations)

  def chosen(key, x):
    pick, sub = jax.random.split(key)
    index = jax.random.randint(pick, (), 0, len(augmentations))
    return jax.lax.switch(index, [lambda k, v, a=a: a(k, v) for a in augmentations], sub, x)

  return chosen


def per_example(augmentation: Augmentation) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """``fn(key, batch_x) -> batch_x``: ``augmentation`` vmapped over the leading axis, a key per example.

  Examples:
    >>> batch_aug = jax.jit(per_example(translate(2)))
    >>> batch_aug(jax.random.key(0), jnp.ones((16, 8, 8, 1))).shape  # a key per example
    (16, 8, 8, 1)
  """
  _check_augmentations([augmentation])

  def batched(key, xs):
    return jax.vmap(augmentation)(jax.random.split(key, xs.shape[0]), xs)

  return batched


def as_batch_transform(augmentation: Augmentation) -> Callable[[dict, jax.Array], dict]:
  """The ``batch_transform`` of :func:`jaxreg.train.fit`: ``batch['x']`` augmented per example, the rest untouched.

  Examples:
    >>> fit(state, ..., batch_transform=as_batch_transform(shift(4)))  # doctest: +SKIP
  """
  batched = per_example(augmentation)

  def transform(batch, key):
    return {**batch, "x": batched(key, batch["x"]).astype(batch["x"].dtype)}

  return transform
