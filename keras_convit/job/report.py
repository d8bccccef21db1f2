"""What a finished run reports: on its held-out test split accuracy, loss, per-class accuracy
and the confusion matrix; and its figures."""

import os

import keras
import numpy as np

from keras_convit.analysis import plots


def confusion_matrix(model, dataset, num_classes, compiled=True):
    """(classes, classes) int array: row = true class, column = predicted class.

    Args:
        model: a classifier.
        dataset: batches of (images, labels), labels integer or one-hot (the top label counts).
        num_classes: the number of classes.
        compiled: bool, predict through the model's compiled predict step. False calls the
            model eagerly, as a model trained on several replicas needs: Keras' predict would
            split each batch over them (`keras.distribution`) or give it to each whole
            (`tf.distribute`, whose outputs then hold every image once per replica).

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
        if compiled:
            # JAX runs an eager model op by op, compiling each again for a new batch shape
            # (the tiny digits run's 359 test images: 13 s eager, 2.7 s compiled).
            outputs = model.predict_on_batch(keras.ops.convert_to_numpy(images))
        else:
            outputs = model(images, training=False)
        predicted = np.argmax(keras.ops.convert_to_numpy(outputs), axis=-1)
        labels = keras.ops.convert_to_numpy(labels)
        true = np.argmax(labels, axis=-1) if labels.ndim == 2 else labels.reshape(-1)
        np.add.at(matrix, (true.astype(np.int64), predicted), 1)
    return matrix


def held_out_report(model, dataset, class_names, even=None):
    """The test metrics of `model` on `dataset`: Keras' metrics as `test_<name>`, per-class
    accuracy by class name, the confusion matrix and the class names in its order. `even`:
    `dataset` as `EvenBatches`, for Keras' metrics under a data-parallel distribution."""
    if even is not None:
        results = even.evaluate(model)
    else:
        results = model.evaluate(dataset, verbose=0, return_dict=True)
    one_device = even is None or even.replicas == 1
    matrix = confusion_matrix(model, dataset, len(class_names), compiled=one_device)
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


def plot_run(path, config, history, report):
    """The run's figures: learning curves, the test confusion matrix, and nonlocality and
    gating across epochs (paper Figs. 5 and 6) from `analysis.jsonl`; skipped with a message
    without matplotlib."""
    title = f"{config.run_name}: test accuracy {report['test_accuracy']:.3f}"
    try:
        plots.plot_learning_curves(
            history,
            os.path.join(path, "learning_curves.png"),
            title=title,
            augmented=_training_batches(config),
        )
        plots.plot_confusion_matrix(
            report["confusion_matrix"],
            report["class_names"],
            os.path.join(path, "confusion_matrix.png"),
            title=title,
        )
        if config.analysis_every:
            plots.plot_nonlocality(path, path=os.path.join(path, "nonlocality.png"))
            plots.plot_gating(path, path=os.path.join(path, "gating.png"))
    except ImportError:
        print("matplotlib is missing, so no plots: pip install matplotlib", flush=True)


def _training_batches(config):
    """What the learning curves' training batches are, for the note beside them."""
    augmentation = config.augmentation_settings()
    if augmentation.uses_soft_labels:
        return "augmented, MixUp/CutMix-mixed"
    return config.augmentation != "none"
