"""A small CNN teacher for hard distillation experiments (the paper's teacher is a RegNetY-16GF,
out of reach of a CPU)."""

import keras


def cnn_teacher(input_shape, classes, width=32, name="cnn_teacher"):
    """A small convolutional classifier of [0, 255] RGB images, compiled (Adam 1e-3,
    cross-entropy on one-hot or soft labels, accuracy): a teacher for `HardDistillation`.

    Three 3x3 convolutions (width, 2 width, 2 width) with batch norm and ReLU, a 2x2 max
    pooling after the first two, global average pooling and a linear head (logits).

    Example:
    >>> teacher = keras_convit.training.cnn_teacher((16, 16, 3), 10)
    >>> teacher.output_shape, teacher.count_params()
    ((None, 10), 57450)
    """
    layers = [keras.Input(input_shape, name="images"), keras.layers.Rescaling(1 / 255.0)]
    for index, filters in enumerate((width, 2 * width, 2 * width)):
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
        ]
        if index < 2:
            layers.append(keras.layers.MaxPooling2D(2))
    layers += [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(classes, name="head")]
    model = keras.Sequential(layers, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model
