"""`--remat`: the job's blocks rematerialized through `keras.RematScope` change memory, not
results: the same losses and weights as without, with drop path and dropout drawing."""

import keras
import numpy as np

from keras_convit.job import TrainConfig, build_model

TINY = {"hidden_dim": 16, "num_heads": 2, "depth": 2, "local_up_to_layer": 1, "dropout_rate": 0.2}


def _train(remat, steps=2):
    """Losses of `steps` SGD steps, the weights after them, the calls of the first block's MLP
    (a rematerialized block runs it again in the backward pass) and whether each block is
    rematerialized."""
    config = TrainConfig(
        image_size=8, model_args=TINY, drop_path_rate=0.5, remat=remat, augmentation="none"
    ).resolved()
    keras.utils.set_random_seed(0)
    model = build_model(config, 10)
    mlp = model.get_layer("blocks_0").mlp
    calls, call = [], mlp.call
    mlp.call = lambda *args, **kwargs: calls.append(1) or call(*args, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    images = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 3)).astype("float32")
    labels = np.arange(8) % 10
    keras.utils.set_random_seed(1)
    losses = [float(model.train_on_batch(images, labels)) for _ in range(steps)]
    blocks = [layer for layer in model.layers if layer.name.startswith("blocks_")]
    rematerialized = [_rematerialized(block) for block in blocks]
    weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
    return losses, weights, len(calls), rematerialized


def _rematerialized(block):
    call = block.call  # a bound method: a new object at each access
    return block.rematerialized_call(call) is not call


def test_remat_gives_the_same_steps_and_recomputes():
    """Two training steps with drop path (rate 0.5) and dropout give the same losses and weights
    with `remat` as without, and the blocks are recomputed (their MLP runs more often).

    Mutations killed: `CompositeLayer.rematerialized_call` left to Keras (JAX and TensorFlow
    fail on `training=True`; PyTorch's recomputation draws other masks and advances the seeds
    twice: the second loss differs); `layers/remat.py` not carrying the seed state through the
    checkpoint (`state = []`: same on PyTorch); the job's scope naming "block_0" (nothing is
    rematerialized).
    """
    plain_losses, plain_weights, plain_calls, plain = _train(remat=False)
    losses, weights, calls, rematerialized = _train(remat=True)
    assert rematerialized == [True, True] and plain == [False, False]
    np.testing.assert_allclose(losses, plain_losses, rtol=1e-5)
    for expected, actual in zip(plain_weights, weights, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-6)
    if keras.backend.backend() != "jax":  # JAX's checkpoint recomputes from its trace
        assert calls > plain_calls, (calls, plain_calls)
