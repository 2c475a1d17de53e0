"""Train state, objectives, pure steps, the fit loop and its hooks, early stopping, checkpoints, metric files
(JSON lines and TensorBoard), populations (many members in one vmapped program) and their ensembles, robust evaluation."""

from jaxreg.train.checkpoint import Checkpointer
from jaxreg.train.early_stopping import EarlyStopping
from jaxreg.train.epochs import Placement, SingleDevice, make_evaluate, make_scan_epoch, make_streaming_epoch
from jaxreg.train.hooks import EpochEnd, Hook
from jaxreg.train.loop import FitResult, fit
from jaxreg.train.objectives import (
    Aux,
    Context,
    classification_objective,
    from_loss,
    make_objective,
    multitask_objective,
    regression_objective,
)
from jaxreg.train.ensemble import ensemble_metrics, expected_average_error
from jaxreg.train.population import (
    bootstrap_population,
    create_population,
    evaluate_ensemble,
    make_population_epoch,
    member,
    member_predictions,
)
from jaxreg.train.population_fit import PopulationResult, fit_population, make_population_evaluate
from jaxreg.train.robust import plot_robust_accuracy, robust_accuracy
from jaxreg.train.rundir import RunLock, StopOnSignal
from jaxreg.train.state import EarlyStoppingState, TrainState, create_train_state, state_initializer
from jaxreg.train.step import make_eval_step, make_train_step, with_batch_transform
from jaxreg.train.tensorboard import WriteTensorBoard, read_scalars, tensorboard_tag
from jaxreg.train.writers import MetricWriter, read_metrics, write_json

__all__ = [
    "Aux",
    "Checkpointer",
    "Context",
    "EarlyStopping",
    "EarlyStoppingState",
    "EpochEnd",
    "FitResult",
    "Hook",
    "MetricWriter",
    "PopulationResult",
    "Placement",
    "RunLock",
    "SingleDevice",
    "StopOnSignal",
    "TrainState",
    "WriteTensorBoard",
    "bootstrap_population",
    "classification_objective",
    "create_population",
    "create_train_state",
    "ensemble_metrics",
    "evaluate_ensemble",
    "expected_average_error",
    "fit",
    "fit_population",
    "from_loss",
    "make_eval_step",
    "make_evaluate",
    "make_objective",
    "make_population_epoch",
    "make_population_evaluate",
    "make_scan_epoch",
    "make_streaming_epoch",
    "make_train_step",
    "member",
    "member_predictions",
    "multitask_objective",
    "plot_robust_accuracy",
    "read_metrics",
    "read_scalars",
    "regression_objective",
    "robust_accuracy",
    "state_initializer",
    "tensorboard_tag",
    "with_batch_transform",
]
