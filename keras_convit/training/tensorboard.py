"""TensorBoard for runs that may be killed: the epoch's event records on disk at its end."""

import keras

from keras_convit._keras_compat import tensorboard_writers


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` that flushes its event files at the end of every epoch.

    Keras' writers (tf.summary's) flush every two minutes and when `fit` ends; a run killed in
    between would lose its last epochs' scalars. It writes through `tf.summary`, so it needs
    TensorFlow and the `tensorboard` package under every backend.

    Example:
    >>> import os, tempfile
    >>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> log_dir = tempfile.mkdtemp()
    >>> _ = model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=1, verbose=0,
    ...               callbacks=[keras_convit.training.EpochTensorBoard(log_dir)])
    >>> os.listdir(log_dir)
    ['train']
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        for writer in tensorboard_writers(self):
            writer.flush()
