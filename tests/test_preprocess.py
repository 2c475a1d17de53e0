"""Input preprocessing: NumPy references, fitted on the training split only, stored with the run and reused."""

import os

import numpy as np
import pytest

from jaxreg.data import fit_preprocessing
from jaxreg.errors import ConfigError

TRAIN = np.random.default_rng(0).normal(size=(500, 6)) @ np.random.default_rng(1).normal(size=(6, 6)) + 3.0


@pytest.mark.parametrize("method", ["pca_whiten", "zca_whiten"])
def test_whitening_gives_unit_covariance_on_the_training_split(method):
  pre = fit_preprocessing(method, TRAIN, eps=1e-9)
  white = pre.apply(TRAIN).astype(np.float64)
  np.testing.assert_allclose(white.mean(axis=0), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.cov(white, rowvar=False, bias=True), np.eye(6), atol=1e-4)


def test_each_method_equals_its_numpy_formula():
  x = TRAIN
  mean = x.mean(axis=0)
  values, vectors = np.linalg.eigh(np.cov(x - mean, rowvar=False, bias=True))
  order = np.argsort(values)[::-1]
  values, vectors = values[order], vectors[:, order]
  eps = 0.1
  expected = {
      "standardize": (x - mean) / np.sqrt(x.var(axis=0) + eps),
      "pca_whiten": (x - mean) @ vectors @ np.diag(1 / np.sqrt(values + eps)),
      "zca_whiten": (x - mean) @ vectors @ np.diag(1 / np.sqrt(values + eps)) @ vectors.T,
  }
  for method, reference in expected.items():
    out = fit_preprocessing(method, x, eps=eps).apply(x)
    if method == "pca_whiten":  # an eigenvector's sign is arbitrary
      out, reference = np.abs(out), np.abs(reference)
    np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-5, err_msg=method)
  # ZCA stays closest to the input among the whitenings (a rotation back to the input's axes).
  zca, pca = (fit_preprocessing(m, x, eps=eps).apply(x) for m in ("zca_whiten", "pca_whiten"))
  centred = (x - mean) / np.sqrt(np.mean(values))
  assert np.sum((zca - centred) ** 2) < np.sum((pca - centred) ** 2)
  assert fit_preprocessing("none", x) is None
  with pytest.raises(ValueError, match="preprocess must be one of none, standardize, pca_whiten, zca_whiten"):
    fit_preprocessing("whiten", x)
  with pytest.raises(ValueError, match="preprocess_eps must be a positive, finite number"):
    fit_preprocessing("zca_whiten", x, eps=0.0)


@pytest.mark.slow  # end-to-end runs
def test_a_run_fits_on_the_training_split_stores_the_statistics_and_a_resume_uses_the_stored_ones(tmp_path):
  from jaxreg.config import load_config
  from jaxreg.data import Preprocessing
  from jaxreg.experiment import PREPROCESSING_FILE, stored_preprocessing, build, run

  overrides = [("data.preprocess", "zca_whiten"), ("data.preprocess_eps", "0.1"), ("train.epochs", "2")]
  config, _ = load_config("digits_mlp:smoke", overrides)
  experiment = build(config)
  raw = experiment.raw_dataset
  reference = fit_preprocessing("zca_whiten", raw.train.x, eps=0.1)  # the training split only
  np.testing.assert_allclose(experiment.dataset.test.x, reference.apply(raw.test.x), atol=1e-5)
  np.testing.assert_allclose(experiment.dataset.train.x.mean(axis=0), 0.0, atol=1e-4)  # centred on the train split
  assert np.abs(experiment.dataset.test.x.mean(axis=0)).max() > 1e-3  # not refitted on the test split
  workdir = str(tmp_path / "run")
  run(experiment, workdir)
  stored = Preprocessing.load(os.path.join(workdir, PREPROCESSING_FILE))
  np.testing.assert_allclose(stored.matrix, reference.matrix, rtol=1e-6)
  # The stored statistics win on a resume (here: deliberately changed ones, to see that they are read).
  changed = Preprocessing(stored.method, stored.mean + 1.0, matrix=stored.matrix)
  changed.save(os.path.join(workdir, PREPROCESSING_FILE))
  config, _ = load_config("digits_mlp:smoke", overrides[:2] + [("train.epochs", "3")])
  resumed = build(config)
  used = stored_preprocessing(resumed, workdir, resume=True, primary=True)
  np.testing.assert_allclose(used.dataset.val.x, changed.apply(raw.val.x), atol=1e-6)
  result = run(resumed, workdir, resume=True)
  assert result.summary["epochs_run"] == 3
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    assert len(f.read().splitlines()) == 3
  with pytest.raises(ConfigError, match=r"data.preprocess must be one of none, standardize"):
    build(load_config("digits_mlp:smoke", [("data.preprocess", "whiten")])[0])


@pytest.mark.slow  # end-to-end runs
def test_a_corrupt_statistics_file_on_resume_is_fitted_again_with_a_notice(tmp_path):
  from jaxreg.config import load_config
  from jaxreg.experiment import PREPROCESSING_FILE, ResumeNotice, build, run

  overrides = [("data.preprocess", "standardize"), ("train.epochs", "1")]
  workdir = str(tmp_path / "run")
  run(build(load_config("digits_mlp:smoke", overrides)[0]), workdir)
  with open(os.path.join(workdir, PREPROCESSING_FILE), "wb") as f:
    f.write(b"not an npz")
  with pytest.warns(ResumeNotice, match=r"preprocessing.npz is unreadable .* fitted again on the same training split"):
    result = run(build(load_config("digits_mlp:smoke", overrides[:1] + [("train.epochs", "2")])[0]), workdir,
                 resume=True)
  assert result.summary["epochs_run"] == 2
  from jaxreg.data import Preprocessing

  assert Preprocessing.load(os.path.join(workdir, PREPROCESSING_FILE)).method == "standardize"  # written anew
