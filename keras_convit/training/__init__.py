"""Training, the library: the DeiT recipe on `model.fit`, callbacks that make a run resumable
(and stop it on SIGTERM or SIGINT with its state committed), hard distillation and its CNN
teacher, layer-wise learning-rate decay for fine-tuning. The main job that uses them is
`keras_convit.job`.

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
)
from keras_convit.training.distillation import HardDistillation
from keras_convit.training.history_file import write_history_csv
from keras_convit.training.layer_decay import LayerDecayAdamW
from keras_convit.training.preemption import (
    PREEMPTED_EXIT_STATUS,
    Preempted,
    PreemptionGuard,
)
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
    "PREEMPTED_EXIT_STATUS",
    "Preempted",
    "PreemptionGuard",
    "RunCheckpoint",
    "cnn_teacher",
    "deit_recipe",
    "learning_rate_schedule",
    "peak_learning_rate",
    "scaled_learning_rate",
    "write_history_csv",
]
