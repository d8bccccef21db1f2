"""predict's decoder without TensorFlow (Pillow): the same pixel limit and EXIF orientation as
the training pipelines' decoder."""

import os
import sys

import numpy as np
import pytest

from keras_convit.data.images import read_image
from keras_convit.deploy import images

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "data"))
from test_images import _bomb_png, _oriented  # noqa: E402


@pytest.mark.parametrize("orientation", [3, 6])
def test_pillow_turns_a_photo_upright_as_tensorflow_does(tmp_path, orientation):
    path = str(_oriented(tmp_path / "photo.jpg", orientation))
    upright = images._pillow_decode(path)
    expected = read_image(path).numpy()
    # Stored 12 wide: orientation 6 (turned a quarter) is shown 8 wide, 3 (half a turn) 12.
    assert upright.shape == expected.shape == ((12, 8, 3) if orientation == 6 else (8, 12, 3))
    assert np.abs(upright.astype(int) - expected.astype(int)).max() <= 8  # two JPEG decoders


def test_pillow_refuses_an_image_over_the_pixel_limit_before_decoding(tmp_path):
    path = str(_bomb_png(tmp_path / "huge.png"))
    with pytest.raises(images._Unreadable, match="400,000,000 pixels"):
        images._pillow_decode(path)


def test_predicts_loader_skips_and_names_an_image_over_the_limit(tmp_path):
    huge = str(_bomb_png(tmp_path / "huge.png"))
    loaded, good, bad = images.load_images([huge], (16, 16))
    assert loaded.shape == (0, 16, 16, 3) and good == []
    assert bad[0][0] == huge and "400,000,000 pixels" in bad[0][1]
