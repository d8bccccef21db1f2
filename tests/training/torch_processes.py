"""Runs under `torchrun --nproc-per-node 2` (PyTorch, gloo on this machine's loopback) and
prints, from process 0, a JSON of one data-parallel training step of a tiny ConViT: each
process takes its half of a global batch of 8 through `data_parallel_trainee`, and process 0
takes the whole batch on a model of its own, on one process; the largest weight difference
between that model and the data-parallel ones, and whether the processes' copies agree.

    torchrun --standalone --nproc-per-node 2 tests/training/torch_processes.py
"""

import json

import keras
import numpy as np

import keras_convit
from keras_convit.job.distribute import data_parallel_trainee
from keras_convit.job.processes import launched_processes


def tiny_model():
    keras.utils.set_random_seed(0)
    model = keras_convit.ConViT(
        hidden_dim=16, num_heads=2, depth=2, local_up_to_layer=1, patch_size=4,
        input_shape=(8, 8, 3), classes=4, drop_path_rate=0.0,
    )  # fmt: skip
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    return model


def main():
    images = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 3)).astype("float32")
    labels = keras.utils.to_categorical(np.arange(8) % 4, 4)
    with launched_processes("data") as processes:
        half = slice(4 * processes.index, 4 * processes.index + 4)
        model = data_parallel_trainee(tiny_model(), processes)
        model.train_on_batch(images[half], labels[half])
        processes.check_replicas_agree(model.variables)  # raises if not
        if processes.writer:
            alone = tiny_model()
            alone.train_on_batch(images, labels)
            pairs = zip(model.get_weights(), alone.get_weights(), strict=True)
            difference = max(float(np.abs(a - b).max()) for a, b in pairs)
            print(json.dumps({"processes": processes.count, "difference": difference}))


if __name__ == "__main__":
    main()
