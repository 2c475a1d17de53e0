"""The dropout family: each variant's mean and variance per unit, the inference rules, MC dropout, per-layer rates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreg.models import make_cnn, make_mlp, make_sequence_model, mc_dropout_predict
from jaxreg.models.dropout import drop

UNITS = jnp.ones((400, 250))  # 100,000 units of value 1: the multiplier itself


@pytest.mark.parametrize(("kind", "inference", "mean", "variance"), [
    ("bernoulli", "inverted", 1.0, 0.25 / 0.75),        # mu / (1-p): mean 1, var p/(1-p)
    ("bernoulli", "weight_scaling", 0.75, 0.25 * 0.75),  # mu ~ Bernoulli(1-p): mean 1-p, var p(1-p)
    ("gaussian", "inverted", 1.0, 0.25 / 0.75),         # N(1, p/(1-p))
    ("gaussian", "weight_scaling", 1.0, 0.25 / 0.75),
])
def test_each_variant_has_the_stated_mean_and_variance_per_unit(kind, inference, mean, variance):
  out = np.asarray(drop(UNITS, 0.25, jax.random.PRNGKey(0), kind=kind, inference=inference, sample=True))
  n = out.size
  assert abs(out.mean() - mean) < 5 * np.sqrt(variance / n)
  assert abs(out.var() / variance - 1) < 0.03
  if kind == "bernoulli":
    assert abs(np.mean(out == 0) - 0.25) < 0.005
  # Test time: what the sampled networks give in expectation, deterministically.
  test_time = np.asarray(drop(UNITS, 0.25, None, kind=kind, inference=inference, sample=False))
  np.testing.assert_allclose(test_time, mean)


def test_weight_scaling_and_inverted_dropout_give_equal_expected_outputs_in_a_network():
  """The same weights; each rule's test-time output equals the mean of its sampled sub-networks of a linear net."""
  x = jax.random.normal(jax.random.PRNGKey(1), (6, 12))
  rules = {}
  for rule in ("inverted", "weight_scaling"):
    model = make_mlp(num_outputs=3, hidden_sizes=(16,), activation="identity", dropout_rate=0.5,
                     input_dropout=0.2, dropout_inference=rule)
    variables = model.init(jax.random.PRNGKey(0), x)
    if rule == "weight_scaling":  # the weights of the inverted net, with the 1/keep factors moved into them
      params = rules["inverted"][0]["params"]
      variables = {"params": {**params, "dense_0": {**params["dense_0"], "kernel": params["dense_0"]["kernel"] / 0.8},
                              "output": {**params["output"], "kernel": params["output"]["kernel"] / 0.5}}}
    sampled = jax.vmap(lambda k, m=model, v=variables: m.apply(v, x, train=True, rng=k)[0])(
        jax.random.split(jax.random.PRNGKey(2), 20000))
    test_time = model.apply(variables, x, train=False)[0]
    rules[rule] = (variables, np.asarray(sampled), np.asarray(test_time))
  for rule, (_, sampled, test_time) in rules.items():
    error = sampled.std(axis=0) / np.sqrt(len(sampled))
    assert np.all(np.abs(sampled.mean(axis=0) - test_time) < 5 * error + 1e-5), rule  # linear: exact in expectation
  np.testing.assert_allclose(rules["inverted"][2], rules["weight_scaling"][2], rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_mc_dropout_averages_sampled_sub_networks_and_leaves_batch_statistics_alone():
  x = jax.random.normal(jax.random.PRNGKey(3), (5, 10))
  plain = make_mlp(num_outputs=4, hidden_sizes=(32,), dropout_rate=0.5, batch_norm=True)
  sampling = make_mlp(num_outputs=4, hidden_sizes=(32,), dropout_rate=0.5, batch_norm=True, mc_dropout=True)
  variables = plain.init(jax.random.PRNGKey(0), x)
  assert jax.tree.structure(variables) == jax.tree.structure(sampling.init(jax.random.PRNGKey(0), x))
  one = sampling.apply(variables, x, train=False, rng=jax.random.PRNGKey(1))[0]
  other = sampling.apply(variables, x, train=False, rng=jax.random.PRNGKey(2))[0]
  assert not np.allclose(one, other)  # dropout samples at evaluation
  np.testing.assert_array_equal(plain.apply(variables, x, train=False)[0],
                                plain.apply(variables, x, train=False, rng=jax.random.PRNGKey(1))[0])
  probabilities = mc_dropout_predict(sampling.apply, variables, x, jax.random.PRNGKey(4), samples=8)
  manual = np.mean([jax.nn.softmax(sampling.apply(variables, x, train=False, rng=jax.random.fold_in(
      jax.random.PRNGKey(4), i))[0]) for i in range(8)], axis=0)
  np.testing.assert_allclose(probabilities, manual, rtol=1e-5)
  np.testing.assert_allclose(np.sum(probabilities, axis=-1), 1.0, rtol=1e-5)
  with pytest.raises(ValueError, match="samples must be an integer >= 1"):
    mc_dropout_predict(sampling.apply, variables, x, jax.random.PRNGKey(4), samples=0)


def _jitted(model):
  return jax.jit(model.apply, static_argnames=("train", "capture_intermediates"))


@pytest.mark.slow  # the fast tier stays under 3 minutes
def test_input_dropout_and_a_rate_per_layer_in_the_mlp_cnn_and_recurrent_models():
  x = jnp.ones((64, 32))
  mlp = make_mlp(num_outputs=2, hidden_sizes=(8, 8), dropout_rate=(0.0, 0.5), input_dropout=0.9)
  variables = mlp.init(jax.random.PRNGKey(0), x)
  outputs = [_jitted(mlp)(variables, x, train=True, rng=jax.random.PRNGKey(k))[0] for k in range(2)]
  assert not np.allclose(outputs[0], outputs[1])
  # With every rate 0 but the input's, the inputs alone are dropped (90% of them): the logits vary with the key.
  only_inputs = make_mlp(num_outputs=2, hidden_sizes=(8,), input_dropout=0.9)
  v = only_inputs.init(jax.random.PRNGKey(0), x)
  _, state = _jitted(only_inputs)(v, x, train=True, rng=jax.random.PRNGKey(1), capture_intermediates=True)
  hidden = np.asarray(state["intermediates"]["hidden_0"][0])
  clean = _jitted(only_inputs)(v, x, train=False, capture_intermediates=True)[1]["intermediates"]["hidden_0"][0]
  assert not np.allclose(hidden, clean)
  with pytest.raises(ValueError, match=r"dropout_rate must be one rate or 2 rates \(one per layer\), got 3"):
    make_mlp(num_outputs=2, hidden_sizes=(8, 8), dropout_rate=(0.1, 0.2, 0.3))
  with pytest.raises(ValueError, match=r"dropout_kind must be one of bernoulli, gaussian, got 'alpha'"):
    make_mlp(num_outputs=2, dropout_kind="alpha")
  with pytest.raises(ValueError, match=r"input_dropout must be in \[0, 1\), got 1.0"):
    make_cnn(num_outputs=2, input_dropout=1.0)
  cnn = make_cnn(num_outputs=2, channels=(4,), dense_sizes=(8,), dropout_rate=(0.0, 0.5), input_dropout=0.5,
                 dropout_kind="gaussian")
  signals = jnp.ones((4, 16))
  variables = cnn.init(jax.random.PRNGKey(0), signals)
  cnn_apply = _jitted(cnn)
  assert not np.allclose(cnn_apply(variables, signals, train=True, rng=jax.random.PRNGKey(1))[0],
                         cnn_apply(variables, signals, train=True, rng=jax.random.PRNGKey(2))[0])
  with pytest.raises(ValueError, match=r"dropout_rate must be one rate or 2 rates"):
    make_cnn(num_outputs=2, channels=(4,), dense_sizes=(8,), dropout_rate=(0.1,))
  gru = make_sequence_model(cell="gru", num_outputs=2, hidden_sizes=(8, 8), dropout_rate=(0.5, 0.0),
                            dropout_inference="weight_scaling", mc_dropout=True)
  sequences = jnp.ones((3, 5, 2))
  variables = gru.init(jax.random.PRNGKey(0), sequences)
  gru_apply = _jitted(gru)
  assert not np.allclose(gru_apply(variables, sequences, train=False, rng=jax.random.PRNGKey(1))[0],
                         gru_apply(variables, sequences, train=False, rng=jax.random.PRNGKey(2))[0])
  with pytest.raises(ValueError, match=r"dropout_rate must be one rate or 2 rates"):
    make_sequence_model(cell="gru", num_outputs=2, hidden_sizes=(8, 8), dropout_rate=(0.5,))


@pytest.mark.slow  # an end-to-end run
def test_mc_dropout_from_a_config_reports_its_test_accuracy_beside_the_single_pass(tmp_path):
  from jaxreg.config import load_config
  from jaxreg.errors import ConfigError
  from jaxreg.experiment import build, run

  config, _ = load_config("digits_mlp:smoke", [("train.mc_dropout_samples", "16"), ("model.dropout_rate", "0.3")])
  result = run(build(config), str(tmp_path / "run"))
  mc = result.summary["mc_dropout"]
  assert mc["samples"] == 16 and 0.5 < mc["test_accuracy"] <= 1.0
  assert abs(mc["test_accuracy"] - result.summary["test_accuracy"]) < 0.1  # the two estimates of one network
  with pytest.raises(ConfigError, match=r"train.mc_dropout_samples must be an integer >= 0"):
    build(load_config("digits_mlp:smoke", [("train.mc_dropout_samples", "-1")])[0])


def test_a_rate_per_layer_from_the_command_line():
  from jaxreg.config import load_config
  from jaxreg.experiment import build

  config, _ = load_config("digits_mlp:smoke", [("model.hidden_sizes", "(16, 16)"), ("model.dropout_rate", "(0.2,0.5)"),
                                               ("model.input_dropout", "0.2")])
  assert tuple(config.model.dropout_rate) == (0.2, 0.5)
  experiment = build(config)
  x = experiment.dataset.train.x[:4]
  outputs = [experiment.model.apply({"params": experiment.initial_state.params}, x, train=True,
                                    rng=jax.random.PRNGKey(k))[0] for k in range(2)]
  assert not np.allclose(outputs[0], outputs[1])
