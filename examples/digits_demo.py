"""Trains a small ConViT on scikit-learn's real handwritten digits and prints its accuracy.

KERAS_BACKEND=jax python examples/digits_demo.py
"""

import time

import keras_convit


def main():
    (x_train, y_train), (x_test, y_test) = keras_convit.data.load_digits(image_size=32)
    model = keras_convit.ConViT(
        hidden_dim=96,
        num_heads=4,
        depth=6,
        local_up_to_layer=4,
        patch_size=4,
        input_shape=(32, 32, 3),
        classes=10,
        name="convit_digits",
    )
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=64, epochs=15, validation_split=0.1, verbose=2)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(
        f"held-out accuracy: {accuracy:.4f} on {len(x_test)} digits "
        f"({time.perf_counter() - start:.0f} s of training and evaluation)"
    )


if __name__ == "__main__":
    main()
