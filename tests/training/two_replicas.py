"""Runs under TensorFlow with this machine's CPU split into two logical devices, so that
`tf.distribute.MirroredStrategy` has two replicas (it must be set before TensorFlow starts):

    python tests/training/two_replicas.py train ...     # keras-convit train ...
    python tests/training/two_replicas.py --check-step  # prints a JSON of the checks below
"""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def check_step():
    """One training step of a tiny ConViT on one global batch of 8, on one device and on two
    replicas: the copies of a weight, the largest weight difference, and what an uneven batch
    raises."""
    import keras
    import numpy as np

    import keras_convit
    from keras_convit.job import ConfigError, distribution_scope

    images = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 3)).astype("float32")
    labels = keras.utils.to_categorical(np.arange(8) % 4, 4)
    weights, mirrored = [], None
    for mode in ("none", "data"):
        with distribution_scope(mode, batch_size=8) as replicas:
            keras.utils.set_random_seed(0)
            model = keras_convit.ConViT(
                hidden_dim=16, num_heads=2, depth=2, local_up_to_layer=1, patch_size=4,
                input_shape=(8, 8, 3), classes=4, drop_path_rate=0.0,
            )  # fmt: skip
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
            model.train_on_batch(images, labels)
            # A MirroredVariable holds one copy per replica.
            mirrored = len(getattr(model.trainable_variables[0].value, "values", ()))
            weights.append([np.asarray(w) for w in model.get_weights()])
    difference = max(float(np.abs(a - b).max()) for a, b in zip(*weights, strict=True))
    try:
        with distribution_scope("data", batch_size=7):
            uneven = None
    except ConfigError as error:
        uneven = str(error)
    return {"replicas": replicas, "copies": mirrored, "difference": difference, "uneven": uneven}


if __name__ == "__main__":
    if sys.argv[1:] == ["--check-step"]:
        print(json.dumps(check_step()))
        sys.exit(0)
    from keras_convit.cli import main

    sys.exit(main(sys.argv[1:]))
