"""Train state, objectives, pure steps, the fit loop, early stopping, checkpoints, metric files."""

from jaxreg.train.checkpoint import Checkpointer
from jaxreg.train.early_stopping import EarlyStopping
from jaxreg.train.epochs import SingleDevice, make_evaluate, make_scan_epoch, make_streaming_epoch
from jaxreg.train.loop import FitResult, fit
from jaxreg.train.objectives import (
    Context,
    classification_objective,
    make_objective,
    multitask_objective,
    regression_objective,
)
from jaxreg.train.state import EarlyStoppingState, TrainState, create_train_state
from jaxreg.train.step import make_eval_step, make_train_step
from jaxreg.train.writers import MetricWriter, read_metrics, write_json

__all__ = [
    "Checkpointer",
    "Context",
    "EarlyStopping",
    "EarlyStoppingState",
    "FitResult",
    "MetricWriter",
    "SingleDevice",
    "TrainState",
    "classification_objective",
    "create_train_state",
    "fit",
    "make_eval_step",
    "make_evaluate",
    "make_objective",
    "make_scan_epoch",
    "make_streaming_epoch",
    "make_train_step",
    "multitask_objective",
    "read_metrics",
    "regression_objective",
    "write_json",
]
