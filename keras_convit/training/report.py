"""What a finished run reports on its held-out test split: accuracy, loss, per-class accuracy
and the confusion matrix."""

import keras
import numpy as np


def confusion_matrix(model, dataset, num_classes):
    """(classes, classes) int array: row = true class, column = predicted class.

    Args:
        model: a classifier.
        dataset: batches of (images, labels), labels integer or one-hot (the top label counts).
        num_classes: the number of classes.

    Example:
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False)])
    >>> model.set_weights([np.eye(2, dtype="float32")])
    >>> confusion_matrix(model, [(np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0]]),
    ...                           np.array([0, 1, 1]))], 2)
    array([[1, 0],
           [1, 1]])
    """
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    for images, labels in dataset:
        predicted = np.argmax(keras.ops.convert_to_numpy(model(images, training=False)), axis=-1)
        labels = keras.ops.convert_to_numpy(labels)
        true = np.argmax(labels, axis=-1) if labels.ndim == 2 else labels.reshape(-1)
        np.add.at(matrix, (true.astype(np.int64), predicted), 1)
    return matrix


def held_out_report(model, dataset, class_names):
    """The test metrics of `model` on `dataset`: Keras' metrics as `test_<name>`, per-class
    accuracy by class name, the confusion matrix and the class names in its order."""
    results = model.evaluate(dataset, verbose=0, return_dict=True)
    matrix = confusion_matrix(model, dataset, len(class_names))
    per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
    return {
        **{f"test_{key}": float(value) for key, value in results.items()},
        "per_class_accuracy": {
            name: (float(value) if matrix[index].sum() else None)
            for index, (name, value) in enumerate(zip(class_names, per_class, strict=True))
        },
        "confusion_matrix": matrix.tolist(),
        "class_names": list(class_names),
    }
