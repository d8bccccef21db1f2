import numpy as np
import pytest
from keras import ops

from keras_convit.layers import DropPath


def test_identity_at_inference_and_whole_samples_dropped_in_training():
    x = np.ones((2000, 3, 4), "float32")
    layer = DropPath(0.25, seed=1)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x)), x)
    y = ops.convert_to_numpy(layer(x, training=True))
    per_sample = y.reshape(len(x), -1)
    # Each sample is either dropped entirely or kept and scaled by 1 / keep_prob.
    np.testing.assert_allclose(np.unique(per_sample.min(1)), [0.0, 1.0 / 0.75], rtol=1e-6)
    assert np.all(per_sample.min(1) == per_sample.max(1))
    assert abs((per_sample[:, 0] == 0).mean() - 0.25) < 0.05
    assert abs(y.mean() - 1.0) < 0.1


@pytest.mark.parametrize("rate", [-0.1, 1.0])
def test_rejects_invalid_rates(rate):
    with pytest.raises(ValueError, match="rate"):
        DropPath(rate)
