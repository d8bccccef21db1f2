"""One label contract for every ConViT classifier, and one rule for "the head gives logits".

Labels may be integers, (batch,) or (batch, 1), or one-hot / soft, (batch, classes) (MixUp,
CutMix, smoothing): the loss and the metrics here take both, so the default compile,
`deit_recipe`, the `keras_convit.data` pipelines and plain `fit(x, integer_labels)` all agree.
Which kind a batch holds is read from its static shape against the predictions'.
"""

import keras

from keras_convit._keras_compat import declare_metric_direction


def are_integer_labels(y_true, y_pred):
    """Whether `y_true` holds class indices for the (batch, classes) `y_pred`, from static
    shapes; None when they do not tell (a TensorFlow graph retraced with relaxed shapes).

    >>> are_integer_labels(np.zeros((4,)), np.zeros((4, 10)))
    True
    >>> are_integer_labels(np.zeros((4, 10)), np.zeros((4, 10)))
    False
    """
    true_shape, predicted_shape = y_true.shape, y_pred.shape
    if true_shape is None or getattr(true_shape, "rank", 0) is None:
        return None
    true_shape, predicted_shape = tuple(true_shape), tuple(predicted_shape)
    if len(true_shape) < len(predicted_shape):
        return True
    if len(true_shape) > len(predicted_shape) or true_shape[-1] is None:
        return None
    return true_shape[-1] == 1 != predicted_shape[-1]


def class_distribution(y_true, y_pred):
    """(batch, classes) float targets: integer labels one-hot encoded, others as given.

    >>> keras.ops.convert_to_numpy(class_distribution(np.array([2, 0]), np.zeros((2, 3))))
    array([[0., 0., 1.],
           [1., 0., 0.]], dtype=float32)
    """
    num_classes = y_pred.shape[-1]
    integers = are_integer_labels(y_true, y_pred)
    if integers is False:
        return keras.ops.cast(y_true, "float32")
    if integers:
        indices = keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32")
        return keras.ops.one_hot(indices, num_classes, dtype="float32")
    # Shapes unknown until run time: compute both readings, keep the one the shape asks for.
    flat = keras.ops.reshape(y_true, (keras.ops.shape(y_pred)[0], -1))
    one_hot = keras.ops.one_hot(keras.ops.cast(flat[:, 0], "int32"), num_classes, dtype="float32")
    one_column = keras.ops.equal(keras.ops.shape(flat)[1], 1)
    return keras.ops.where(one_column, one_hot, keras.ops.cast(flat, "float32"))


def outputs_logits(model):
    """The one rule for a classifier's output: logits unless its last layer ends in an
    activation (softmax for `classifier_activation="softmax"`), or is a `Softmax` layer.

    >>> outputs_logits(keras_convit.ConViTTiny(classifier_activation=None, compile=False,
    ...                                        input_shape=(32, 32, 3), classes=2))
    True
    """
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return False
    activation = getattr(last, "activation", None)
    return activation is None or keras.activations.serialize(activation) == "linear"


@keras.saving.register_keras_serializable(package="keras_convit")
class ClassifierCrossentropy(keras.losses.Loss):
    """Categorical cross-entropy on integer or one-hot / soft labels, with label smoothing.

    Integer labels are one-hot encoded first, so `label_smoothing` acts on them too; on one-hot
    labels it equals `keras.losses.CategoricalCrossentropy`, on integer labels (without
    smoothing) `keras.losses.SparseCategoricalCrossentropy`.

    Args:
        from_logits: whether predictions are logits (see `outputs_logits`).
        label_smoothing: float in [0, 1), mixed with the uniform distribution.

    Example:
    >>> loss = keras_convit.models.ClassifierCrossentropy(from_logits=True)
    >>> logits = np.array([[2.0, 0.0, -1.0]])
    >>> bool(np.isclose(loss(np.array([0]), logits), loss(np.array([[1.0, 0.0, 0.0]]), logits)))
    True
    """

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        reduction="sum_over_batch_size",
        name="classifier_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"`label_smoothing` must be in [0, 1), got label_smoothing={label_smoothing!r}."
            )
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        return keras.losses.categorical_crossentropy(
            class_distribution(y_true, y_pred),
            y_pred,
            from_logits=self.from_logits,
            label_smoothing=self.label_smoothing,
        )

    def get_config(self):
        return {
            **super().get_config(),
            "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing,
        }


@keras.saving.register_keras_serializable(package="keras_convit")
def classifier_accuracy(y_true, y_pred):
    """1.0 where the top prediction is the (top) label, per example."""
    targets = keras.ops.argmax(class_distribution(y_true, y_pred), axis=-1)
    return keras.ops.cast(keras.ops.equal(keras.ops.argmax(y_pred, axis=-1), targets), "float32")


@keras.saving.register_keras_serializable(package="keras_convit")
def classifier_top_k_accuracy(y_true, y_pred, k=5):
    """1.0 where the (top) label is among the `k` best predictions, per example."""
    targets = keras.ops.argmax(class_distribution(y_true, y_pred), axis=-1)
    # TensorFlow's InTopKV2 takes float32 only: a mixed-precision model's 16-bit outputs fail.
    scores = keras.ops.cast(y_pred, "float32")
    return keras.ops.cast(keras.ops.in_top_k(targets, scores, k), "float32")


@keras.saving.register_keras_serializable(package="keras_convit")
class ClassifierAccuracy(keras.metrics.MeanMetricWrapper):
    """Top-1 accuracy on integer or one-hot / soft labels (the top label of a soft one).

    Example:
    >>> metric = keras_convit.models.ClassifierAccuracy()
    >>> metric.update_state(np.array([1, 0]), np.array([[0.2, 0.8], [0.3, 0.7]]))
    >>> float(metric.result())
    0.5
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(fn=classifier_accuracy, name=name, dtype=dtype)
        declare_metric_direction(self, "up")  # for callbacks' mode="auto", as Keras' metrics

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="keras_convit")
class ClassifierTopKAccuracy(keras.metrics.MeanMetricWrapper):
    """Top-k accuracy on integer or one-hot / soft labels.

    Example:
    >>> metric = keras_convit.models.ClassifierTopKAccuracy(k=2)
    >>> metric.update_state(np.array([[0, 0, 1]]), np.array([[0.5, 0.3, 0.2]]))
    >>> float(metric.result())
    0.0
    """

    def __init__(self, k=5, name=None, dtype=None):
        super().__init__(fn=classifier_top_k_accuracy, name=name or f"top{k}", dtype=dtype, k=k)
        self.k = k
        declare_metric_direction(self, "up")

    def get_config(self):
        return {"k": self.k, "name": self.name, "dtype": self.dtype}
