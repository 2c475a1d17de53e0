"""Execute the notebooks through a real Jupyter kernel, at small sizes."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # end-to-end: real kernels or processes

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
  monkeypatch.setenv("JAXREG_NOTEBOOK_SMOKE", "1")
  nb = nbformat.read(path, as_version=4)
  NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
  outputs = "".join(
      out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
      for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
  )
  errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
            if out.get("output_type") == "error"]
  assert not errors
  figures = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])
             if "image/png" in out.get("data", {})]
  if path.name == "01_quickstart.ipynb":
    assert '"test_accuracy"' in outputs and "test accuracy:" in outputs
    assert len(figures) >= 2  # the learning curves were drawn
  if path.name == "02_optimizers.ipynb":
    # The notebook asserts the trajectories' story itself; here: every optimizer ran on digits, all plots drawn.
    table = outputs[outputs.index("first epoch val acc"):]
    assert all(name in table for name in ("sgd", "momentum", "nesterov", "adagrad", "rmsprop_nesterov", "adam"))
    assert len(figures) == 5  # trajectories, losses, digits curves, two diagnostics figures
  if path.name == "03_recurrent.ipynb":
    assert all(f"{cell:5s} test MSE" in outputs for cell in ("rnn", "lstm", "gru"))
    assert "||dL/dx_1|| / ||dL/dx_T||" in outputs and "GRU on MNIST-1D: test accuracy" in outputs
    assert len(figures) == 3  # adding curves, gradient through time, MNIST-1D curves
  if path.name == "04_data_parallel.ipynb":
    # The notebook asserts that both modes match one device; here: the shards were shown, all modes ran.
    assert "pmap layout: {'x': (8, 8, 64)" in outputs and "cpu:7: rows 56-63" in outputs
    assert all(f"{mode:8s} test accuracy" in outputs for mode in ("none", "pmap", "sharded"))
    assert "parameters, synced vs one device" in outputs
    assert len(figures) == 1
  if path.name == "05_augmentation_and_noise.ipynb":
    # The notebook asserts the noise-as-L2 closed form itself; here: every part ran and drew its figures.
    assert "loss + sigma^2 ||w||^2" in outputs and "MC dropout, k =  16 sub-networks" in outputs
    assert "eigenvalues:" in outputs and "colour  augmentation: test accuracy" in outputs
    assert len(figures) == 5  # images, signals, colour axes, MC dropout, coloured digits
  if path.name == "06_adversarial_and_tangent.ipynb":
    assert "test digits switch from right to wrong" in outputs and "PGD accuracy at eps 0.15:" in outputs
    assert "rotation tangent vs the augmentation's central difference" in outputs
    assert all(f"{v:12s} test accuracy" in outputs for v in ("mlp", "mlp_tangent", "mlp_augment"))
    assert "1-NN, tangent distance test accuracy" in outputs
    assert len(figures) == 4  # the adversarial example, robust curves, tangent vectors, small-data curves
  if path.name == "07_ensembles.ipynb":
    assert "32 members trained in one program" in outputs and "predicted / measured" in outputs
    assert "seed ensemble" in outputs and "bagging" in outputs and "of the test digits" in outputs
    assert "geometric  mean of 64 sub-networks" in outputs and "real ensemble of 5 members" in outputs
    assert "l2 0.001  dropout 0.5:  val_accuracy" in outputs
    assert len(figures) == 3  # the formula, dropout's predictions, the sweep
  if path.name == "08_normalization.ipynb":
    assert "the notes' m/(m-1) for m = 16:             1.0667" in outputs
    assert "running variance / batch variance (biased): [1.0667" in outputs
    assert "data-dependent dense_0: spread of unit means 0.000, mean unit std 1.000" in outputs
    assert all(f"{row:28s} test accuracy" in outputs for row in ("plain", "batch norm", "weight norm + mean-only BN"))
    assert len(figures) == 1  # the five rows' learning curves
