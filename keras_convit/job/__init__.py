"""The main job, `keras-convit train`: its settings, run directory, lock, record and report,
on top of the library (models, data, training).

metrics = keras_convit.job.run_training(keras_convit.job.TrainConfig(epochs=3))
"""

from keras_convit.job.config import ConfigError, TrainConfig, small_data_defaults
from keras_convit.job.directory import (
    RunDirectoryError,
    choose_run_directory,
    clear_run_directory,
    prepare_run_directory,
)
from keras_convit.job.distribute import DISTRIBUTE_MODES, distribution_scope, parse_distribute
from keras_convit.job.fine_tuning import (
    SourceWeights,
    WeightsSourceError,
    fine_tuning_defaults,
    read_source_weights,
)
from keras_convit.job.fitting import training_callbacks
from keras_convit.job.lock import RunLockedError, run_lock
from keras_convit.job.model import build_model
from keras_convit.job.processes import Processes, launched_processes
from keras_convit.job.record import read_run, write_run
from keras_convit.job.report import confusion_matrix, held_out_report
from keras_convit.job.run import run_training

__all__ = [
    "ConfigError",
    "DISTRIBUTE_MODES",
    "Processes",
    "RunDirectoryError",
    "RunLockedError",
    "SourceWeights",
    "TrainConfig",
    "build_model",
    "choose_run_directory",
    "clear_run_directory",
    "confusion_matrix",
    "distribution_scope",
    "fine_tuning_defaults",
    "held_out_report",
    "launched_processes",
    "parse_distribute",
    "prepare_run_directory",
    "read_run",
    "read_source_weights",
    "run_lock",
    "run_training",
    "small_data_defaults",
    "training_callbacks",
    "WeightsSourceError",
    "write_run",
]
