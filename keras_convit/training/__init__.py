"""Training, the library: the DeiT recipe on `model.fit`, callbacks that make a run resumable,
hard distillation and its CNN teacher, layer-wise learning-rate decay for fine-tuning. The main
job that uses them is `keras_convit.job`.

model.compile(**keras_convit.training.deit_recipe(model, batch_size, steps_per_epoch, epochs))
"""

from keras_convit.training.callbacks import (
    CheckpointWriteError,
    EpochTimer,
    LearningRateLogger,
    NonFiniteLossError,
    NonFiniteLossGuard,
    NonFiniteWeightsError,
    RunCheckpoint,
    write_history_csv,
)
from keras_convit.training.distillation import HardDistillation
from keras_convit.training.layer_decay import LayerDecayAdamW
from keras_convit.training.recipe import (
    DROP_PATH_RATE,
    deit_recipe,
    learning_rate_schedule,
    peak_learning_rate,
    scaled_learning_rate,
)
from keras_convit.training.teacher import cnn_teacher

__all__ = [
    "CheckpointWriteError",
    "DROP_PATH_RATE",
    "EpochTimer",
    "HardDistillation",
    "LayerDecayAdamW",
    "LearningRateLogger",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "NonFiniteWeightsError",
    "RunCheckpoint",
    "cnn_teacher",
    "deit_recipe",
    "learning_rate_schedule",
    "peak_learning_rate",
    "scaled_learning_rate",
    "write_history_csv",
]
