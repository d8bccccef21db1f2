"""Runs with this machine's CPU seen as several devices, so that `--distribute data` has
replicas: two logical devices under TensorFlow (`tf.distribute.MirroredStrategy`), four
simulated ones under JAX (`keras.distribution.DataParallel`). Both must be set before the
backend starts:

    python tests/training/simulated_devices.py train ...     # keras-convit train ...
    python tests/training/simulated_devices.py --check-step  # prints a JSON of the checks below
"""

import json
import os
import sys

DEVICES = {"tensorflow": 2, "jax": 4}
backend = os.environ.get("KERAS_BACKEND")
if backend == "jax":
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={DEVICES['jax']}"
elif backend == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    configuration = tf.config.LogicalDeviceConfiguration()
    tf.config.set_logical_device_configuration(cpu, [configuration] * DEVICES["tensorflow"])


def copies(variable):
    """How many devices hold `variable`: a MirroredVariable's values, a jax.Array's shards."""
    value = variable.value
    if hasattr(value, "values"):
        return len(value.values)
    return len(getattr(value, "addressable_shards", ()))


def parts(variable):
    """Into how many different parts `variable` is split over the devices (1: replicated)."""
    shards = getattr(variable.value, "addressable_shards", None)
    return len({str(shard.index) for shard in shards}) if shards else 1


def check_step():
    """A tiny ConViT on one global batch of 8, on one device, data parallel and (JAX) model
    parallel over 2 devices: the copies of a weight, the variables split, the largest weight
    difference after one training step, the evaluation of 10 images (a partial last batch) on
    each, and what an uneven batch raises."""
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_convit
    from keras_convit.job import ConfigError, distribution_scope
    from keras_convit.job.distribute import EvenBatches
    from keras_convit.models import ClassifierAccuracy, ClassifierCrossentropy

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (10, 8, 8, 3)).astype("float32")
    labels = keras.utils.to_categorical(np.arange(10) % 4, 4)
    held_out = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    backend = keras.backend.backend()
    modes = ("none", "data", "model:2") if backend == "jax" else ("none", "data")
    weights, evaluations, copied, split, data_replicas = [], [], None, {}, None
    for mode in modes:
        with distribution_scope(mode, batch_size=8) as replicas:
            even = EvenBatches.of(held_out, 10, batch_size=8, replicas=replicas)
            data_replicas = replicas if mode == "data" else data_replicas
            keras.utils.set_random_seed(0)
            model = keras_convit.ConViT(
                hidden_dim=16, num_heads=2, depth=2, local_up_to_layer=1, patch_size=4,
                input_shape=(8, 8, 3), classes=4, drop_path_rate=0.0,
            )  # fmt: skip
            arguments = {
                "optimizer": keras.optimizers.SGD(0.1),
                "loss": ClassifierCrossentropy(from_logits=True),
                "metrics": [ClassifierAccuracy()],
            }
            model.compile(**even.compile_arguments(arguments))
            model.train_on_batch(images[:8], labels[:8])
            copied = copies(model.trainable_variables[0]) if mode == "data" else copied
            split = {v.path: parts(v) for v in model.variables if parts(v) > 1}
            weights.append([np.asarray(w) for w in model.get_weights()])
            evaluations.append(even.evaluate(model))
    difference = max(
        float(np.abs(a - b).max())
        for other in weights[1:]
        for a, b in zip(weights[0], other, strict=True)
    )
    try:
        with distribution_scope("data", batch_size=7):
            uneven = None
    except ConfigError as error:
        uneven = str(error)
    return {
        "replicas": data_replicas,
        "copies": copied,
        "difference": difference,
        "evaluations": evaluations,
        "split": split,  # the last mode's: under model:2, the blocks' widening and narrowing
        "uneven": uneven,
    }


if __name__ == "__main__":
    if sys.argv[1:] == ["--check-step"]:
        print(json.dumps(check_step()))
        sys.exit(0)
    from keras_convit.cli import main

    sys.exit(main(sys.argv[1:]))
