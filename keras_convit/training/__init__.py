"""Training: the DeiT recipe on `model.fit`, resumable-run callbacks, and the main job.

model.compile(**keras_convit.training.deit_recipe(model, batch_size, steps_per_epoch, epochs))
"""

from keras_convit.training.callbacks import (
    CheckpointWriteError,
    LearningRateLogger,
    NonFiniteLossError,
    NonFiniteLossGuard,
    NonFiniteWeightsError,
    RunCheckpoint,
)
from keras_convit.training.config import ConfigError, TrainConfig, small_data_defaults
from keras_convit.training.distillation import HardDistillation
from keras_convit.training.files import save_weights_safely, write_history_csv
from keras_convit.training.job import build_model, run_training, training_callbacks
from keras_convit.training.lock import RunLockedError, run_lock
from keras_convit.training.recipe import (
    DROP_PATH_RATE,
    deit_recipe,
    learning_rate_schedule,
    scaled_learning_rate,
)
from keras_convit.training.run_directory import RunDirectoryError, prepare_run_directory
from keras_convit.training.teacher import cnn_teacher

__all__ = [
    "CheckpointWriteError",
    "DROP_PATH_RATE",
    "ConfigError",
    "HardDistillation",
    "LearningRateLogger",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "NonFiniteWeightsError",
    "RunCheckpoint",
    "RunDirectoryError",
    "RunLockedError",
    "TrainConfig",
    "build_model",
    "cnn_teacher",
    "deit_recipe",
    "learning_rate_schedule",
    "prepare_run_directory",
    "run_lock",
    "run_training",
    "save_weights_safely",
    "scaled_learning_rate",
    "small_data_defaults",
    "training_callbacks",
    "write_history_csv",
]
