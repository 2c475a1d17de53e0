"""A multitask MLP: one shared trunk, one output head per task (parameter sharing by module reuse)."""

from collections.abc import Callable, Mapping, Sequence

import flax.linen as nn
import jax

from jaxreg.models.initializers import Initializer


class MultiTaskMLP(nn.Module):
  """``trunk(x)`` shared by every task, then a linear head per task: ``{task: W_task h + b_task}``.

  The trunk is one module applied once and read by every head, so its
  parameters are shared: their gradient is the (weighted) sum of every
  task's gradient, while each head is trained by its own task only (seed
  002, "Multitask Learning": generic parameters pooled across tasks,
  task-specific parameters per task). Hidden activations are sown as
  ``hidden_<l>`` like :class:`jaxreg.models.MLP`'s.

  Attributes:
    trunk_sizes: widths of the shared hidden layers.
    heads: ``{task name: number of outputs}``.
    activation: nonlinearity of the trunk.
    dropout_rate: dropout on the trunk's hidden units in training.
    kernel_init: initializer of every kernel.

  Examples:
    >>> module = MultiTaskMLP(trunk_sizes=(16,), heads={'digit': 10, 'parity': 2})
    >>> variables = module.init(jax.random.key(0), jnp.zeros((1, 64)), train=False)
    >>> {k: v.shape for k, v in module.apply(variables, jnp.zeros((3, 64)), train=False).items()}
    {'digit': (3, 10), 'parity': (3, 2)}
  """

  trunk_sizes: Sequence[int]
  heads: Mapping[str, int]
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  dropout_rate: float = 0.0
  kernel_init: Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> dict[str, jax.Array]:
    h = x.reshape((x.shape[0], -1))
    for layer, width in enumerate(self.trunk_sizes):
      h = nn.Dense(width, kernel_init=self.kernel_init, name=f"trunk_{layer}")(h)
      h = self.activation(h)
      self.sow("intermediates", f"hidden_{layer}", h)
      if self.dropout_rate > 0:
        h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    return {
        task: nn.Dense(width, kernel_init=self.kernel_init, name=f"head_{task}")(h)
        for task, width in sorted(self.heads.items())
    }
