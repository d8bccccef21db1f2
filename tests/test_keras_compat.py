"""The functional models' forward pass frees each layer's output after its last use
(`_keras_compat.release_graph_intermediates`), on every backend."""

import types
import weakref

import keras
import numpy as np
import pytest

from keras_convit import _keras_compat

# The layers share one log (a namespace: Keras would copy a dict attribute into its own tracked
# dict): `made`, a weak reference to each recorded output; `alive`, which of them existed when
# the check ran.


class Recorded(keras.layers.Layer):
    """x + 1, keeping a weak reference to its output in `log.made`."""

    def __init__(self, log, **kwargs):
        super().__init__(**kwargs)
        self.log = log

    def call(self, inputs):
        outputs = keras.ops.add(inputs, 1.0)
        self.log.made[self.name] = weakref.ref(outputs)
        return outputs


class AliveCheck(keras.layers.Layer):
    """x * 2, noting in `log.alive` which of the recorded outputs still exist when it runs."""

    def __init__(self, log, **kwargs):
        super().__init__(**kwargs)
        self.log = log

    def call(self, inputs):
        self.log.alive = {name: ref() is not None for name, ref in self.log.made.items()}
        return keras.ops.multiply(inputs, 2.0)


def test_an_output_is_freed_after_its_last_reader_unless_read_later_or_returned():
    """The mutation "no release" (Keras' own loop: every output kept to the end) fails here."""
    log = types.SimpleNamespace(made={}, alive=None)
    images = keras.Input((3,))
    first = Recorded(log, name="first")(images)  # read again at the end
    returned = Recorded(log, name="returned")(first)  # an output of the model
    passed_on = Recorded(log, name="passed_on")(returned)  # read once, by `last`
    last = Recorded(log, name="last")(passed_on)
    checked = AliveCheck(log)(last)
    total = keras.layers.Add()([first, checked])
    model = keras.Model(images, [total, returned])

    total, returned = model(np.zeros((2, 3), "float32"))

    assert log.alive == {"first": True, "returned": True, "passed_on": False, "last": True}
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(total), np.full((2, 3), 1 + 8))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(returned), np.full((2, 3), 2))


def test_only_the_mirrored_keras_versions_are_patched(monkeypatch):
    from keras.src.ops.function import Function

    keras_own = Function._run_through_graph
    monkeypatch.setattr(Function, "_run_through_graph", keras_own)
    monkeypatch.setattr(keras, "__version__", "3.99.0")
    assert not _keras_compat.release_graph_intermediates()
    assert Function._run_through_graph is keras_own


def test_a_node_that_cannot_run_is_skipped_and_a_missing_output_fails_as_in_keras():
    left, right = keras.Input((2,), name="left"), keras.Input((2,), name="right")
    total = keras.layers.Add()([left, right])
    model = keras.Model([left, right], total)
    # `right` is not given: `Add` cannot run, and its output is missing (Keras' own message).
    with pytest.raises(ValueError, match="not connected to `inputs`"):
        model._run_through_graph([np.ones((1, 2), "float32")])
