"""The paper's analysis tools: attention maps, nonlocality (Eq. 8), gating and head centres,
test-time masking (Tables 5-6), training callbacks (a JSON log, TensorBoard scalars) and the
figures (matplotlib, optional): `plots` (the paper's figures) and `run_plots` (a training run's
learning curves and confusion matrix, also reachable as `plots.plot_learning_curves` and
`plots.plot_confusion_matrix`).

Everything here reads a model and never changes it."""

from keras_convit.analysis.attention import attention_maps, attention_maps_by_layer
from keras_convit.analysis.callback import AnalysisLogger, analysis_record
from keras_convit.analysis.forward import (
    LayerStep,
    attention_blocks,
    forward_layers,
    gpsa_blocks,
    model_layers,
    patch_grid,
    resolve_block,
    run_model,
)
from keras_convit.analysis.gating import AttentionCenters, attention_centers, gating
from keras_convit.analysis.masking import masked_accuracy, masked_model, predict_masked
from keras_convit.analysis.nonlocality import nonlocality
from keras_convit.analysis.plots import (
    plot_attention_grid,
    plot_gating,
    plot_nonlocality,
    read_log,
)
from keras_convit.analysis.run_plots import plot_confusion_matrix, plot_learning_curves
from keras_convit.analysis.tensorboard import AnalysisScalars

__all__ = [
    "AnalysisLogger",
    "AnalysisScalars",
    "AttentionCenters",
    "LayerStep",
    "analysis_record",
    "attention_blocks",
    "attention_centers",
    "attention_maps",
    "attention_maps_by_layer",
    "forward_layers",
    "gating",
    "gpsa_blocks",
    "masked_accuracy",
    "masked_model",
    "model_layers",
    "nonlocality",
    "patch_grid",
    "plot_attention_grid",
    "plot_confusion_matrix",
    "plot_gating",
    "plot_learning_curves",
    "plot_nonlocality",
    "predict_masked",
    "read_log",
    "resolve_block",
    "run_model",
]
