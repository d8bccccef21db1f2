"""The DeiT training recipe that ConViT uses (d'Ascoli et al. 2021, section 4; DeiT main.py)."""

import keras

from keras_convit.models.default_compile import DEFAULT_WEIGHT_DECAY, default_jit_compile
from keras_convit.models.labels import (
    ClassifierAccuracy,
    ClassifierCrossentropy,
    ClassifierTopKAccuracy,
    outputs_logits,
)
from keras_convit.models.weight_decay import ConViTAdamW
from keras_convit.training.distillation import HardDistillation
from keras_convit.training.layer_decay import LayerDecayAdamW, model_depth

BASE_LEARNING_RATE = 5e-4  # per 512 images
REFERENCE_BATCH_SIZE = 512
WEIGHT_DECAY = DEFAULT_WEIGHT_DECAY  # the default compile's, which is this recipe's
WARMUP_EPOCHS = 5
WARMUP_LEARNING_RATE = 1e-6
MIN_LEARNING_RATE = 1e-5
LABEL_SMOOTHING = 0.1
DROP_PATH_RATE = 0.1
EMA_MOMENTUM = 0.99996
EPOCHS = 300


def scaled_learning_rate(batch_size, base_learning_rate=BASE_LEARNING_RATE):
    """The linear scaling rule: `base_learning_rate * batch_size / 512`.

    Example:
    >>> keras_convit.training.scaled_learning_rate(1024)
    0.001
    """
    return base_learning_rate * batch_size / REFERENCE_BATCH_SIZE


def peak_learning_rate(batch_size, learning_rate=None, base_learning_rate=None):
    """The peak learning rate of a run, decided here only: `learning_rate` when given, else
    the linear scaling rule on `base_learning_rate` (default `BASE_LEARNING_RATE`).

    Example:
    >>> keras_convit.training.peak_learning_rate(256), keras_convit.training.peak_learning_rate(
    ...     256, learning_rate=1e-3)
    (0.00025, 0.001)
    """
    if learning_rate is not None:
        return learning_rate
    base = BASE_LEARNING_RATE if base_learning_rate is None else base_learning_rate
    return scaled_learning_rate(batch_size, base)


def learning_rate_schedule(
    learning_rate,
    total_steps,
    warmup_steps,
    warmup_learning_rate=WARMUP_LEARNING_RATE,
    min_learning_rate=MIN_LEARNING_RATE,
):
    """Per-step linear warm-up from `warmup_learning_rate` to `learning_rate`, then cosine decay
    to `min_learning_rate` at `total_steps` (held there after).

    A core `keras.optimizers.schedules.CosineDecay`, so it is saved with the optimizer.

    Example:
    >>> schedule = keras_convit.training.learning_rate_schedule(1e-3, 100, 10, 0.0, 1e-5)
    >>> [round(float(schedule(step)), 6) for step in (0, 5, 10, 55, 100)]
    [0.0, 0.0005, 0.001, 0.000505, 1e-05]
    """
    warmup_steps = min(int(warmup_steps), int(total_steps) - 1)
    if total_steps < 1 or learning_rate <= 0:
        raise ValueError(
            f"Need total_steps >= 1 and learning_rate > 0, got total_steps={total_steps!r}, "
            f"learning_rate={learning_rate!r}."
        )
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=warmup_learning_rate if warmup_steps > 0 else learning_rate,
        decay_steps=max(1, int(total_steps) - warmup_steps),
        alpha=min(min_learning_rate / learning_rate, 1.0),
        warmup_target=learning_rate if warmup_steps > 0 else None,
        warmup_steps=max(warmup_steps, 0),
    )


def deit_recipe(
    model,
    batch_size,
    steps_per_epoch,
    epochs=EPOCHS,
    *,
    learning_rate=None,
    base_learning_rate=None,
    weight_decay=WEIGHT_DECAY,
    warmup_epochs=WARMUP_EPOCHS,
    warmup_learning_rate=WARMUP_LEARNING_RATE,
    min_learning_rate=MIN_LEARNING_RATE,
    label_smoothing=LABEL_SMOOTHING,
    clipnorm=None,
    use_ema=False,
    ema_momentum=EMA_MOMENTUM,
    layer_decay=None,
    top_k=5,
):
    """The `compile` arguments of the DeiT recipe: `model.compile(**deit_recipe(model, ...))`.

    - AdamW (epsilon 1e-8), weight decay 0.05, not applied to the reference's no-decay
      variables (biases, norms, gating parameters, position embedding, class token): a
      `ConViTAdamW`, which keeps them through `.keras` files and resumed runs;
    - learning rate `5e-4 * batch_size / 512` (or `learning_rate`), warmed up per step from 1e-6
      over `warmup_epochs`, then cosine-decayed to 1e-5 at the last step;
    - cross-entropy with label smoothing 0.1 on integer labels or on one-hot / soft ones
      (MixUp/CutMix mixtures, as `keras_convit.data` pipelines give): `ClassifierCrossentropy`;
    - accuracy, and top-k accuracy when the model has more than k classes, on either labels;
    - optional global-norm gradient clipping and model EMA (`use_ema`: the optimizer keeps an
      average of the weights; `training_callbacks(use_ema=True)` evaluates with it, and `fit`
      ends with the averaged weights);
    - for fine-tuning, optional layer-wise learning-rate decay (`layer_decay`: a
      `LayerDecayAdamW`, the head at the full rate, each block below at `layer_decay` times
      the one above);
    - for a model whose dtype policy is "mixed_float16", dynamic loss scaling (the optimizer in
      a `keras.optimizers.LossScaleOptimizer`).

    Drop path 0.1 is a model argument: build the model with `drop_path_rate=DROP_PATH_RATE`.

    Args:
        model: the (built) classifier; `from_logits` follows `outputs_logits(model)`. Or a
            `HardDistillation` of one, whose loss is on its heads' logits.
        batch_size: global batch size, for the learning-rate scaling.
        steps_per_epoch, epochs: the schedule's length.

    Returns:
        dict with "optimizer", "loss", "metrics" and "jit_compile" (`default_jit_compile()`:
        XLA on TensorFlow too, where Keras leaves it off on a CPU).

    Example:
    >>> model = keras_convit.ConViT(hidden_dim=32, num_heads=2, depth=2, local_up_to_layer=1,
    ...                             patch_size=8, input_shape=(16, 16, 3), classes=10,
    ...                             drop_path_rate=0.1, compile=False)
    >>> model.compile(**keras_convit.training.deit_recipe(model, 64, 20, epochs=10))
    >>> round(float(model.optimizer.learning_rate), 8)  # warm-up starts at 1e-6
    1e-06
    """
    learning_rate = peak_learning_rate(batch_size, learning_rate, base_learning_rate)
    total_steps = int(steps_per_epoch) * int(epochs)
    schedule = learning_rate_schedule(
        learning_rate,
        total_steps,
        warmup_steps=round(warmup_epochs * steps_per_epoch),
        warmup_learning_rate=warmup_learning_rate,
        min_learning_rate=min_learning_rate,
    )
    distilling = isinstance(model, HardDistillation)
    optimizer_arguments = {
        "learning_rate": schedule,
        "weight_decay": weight_decay,
        "epsilon": 1e-8,
        "global_clipnorm": clipnorm,
        "use_ema": use_ema,
        "ema_momentum": ema_momentum,
    }
    if layer_decay is None:
        optimizer = ConViTAdamW(**optimizer_arguments)
    else:
        depth = model_depth(model.student if distilling else model)
        optimizer = LayerDecayAdamW(layer_decay, depth, **optimizer_arguments)
    if (model.student if distilling else model).dtype_policy.name == "mixed_float16":
        # `compile` wraps the optimizer of a mixed_float16 model itself, not a distiller's.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    loss = ClassifierCrossentropy(
        from_logits=distilling or outputs_logits(model), label_smoothing=label_smoothing
    )
    metrics = [ClassifierAccuracy()]
    num_classes = model.classes if distilling else model.outputs[0].shape[-1]
    if top_k and num_classes and num_classes > top_k:
        metrics.append(ClassifierTopKAccuracy(top_k))
    return {
        "optimizer": optimizer,
        "loss": loss,
        "metrics": metrics,
        "jit_compile": default_jit_compile(),
    }
