"""A folder data set needs at least 2 classes with images; an empty class is warned and left
out (issue 26: a one-class folder trained to "1.0 test accuracy", an empty one silently)."""

import numpy as np
import pytest

from keras_convit.data import DatasetUnavailableError, folder_source

pytest.importorskip("tensorflow")
Image = pytest.importorskip("PIL.Image")


def _folder(root, counts):
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for index in range(count):
            Image.fromarray(np.full((8, 8, 3), index, "uint8")).save(root / name / f"{index}.png")
    return str(root)


def test_a_one_class_folder_is_refused(tmp_path):
    root = _folder(tmp_path / "one", {"cat": 3})
    with pytest.raises(
        DatasetUnavailableError,
        match="one class folder only .'cat'.: a classifier needs at least 2 classes",
    ):
        folder_source(root)


def test_an_empty_class_folder_is_warned_and_left_out(tmp_path):
    root = _folder(tmp_path / "three", {"ant": 3, "bee": 0, "cat": 3})
    (tmp_path / "three" / "bee" / "broken.png").write_bytes(b"not a PNG")  # unreadable only
    with pytest.warns(UserWarning) as caught:
        source = folder_source(root, test_fraction=0.34)
    assert any("hold no readable training image" in str(w.message) for w in caught)
    assert any("'bee'" in str(w.message) for w in caught)
    assert source.class_names == ("ant", "cat")
    assert sorted(set(source.labels["train"]) | set(source.labels["test"])) == [0, 1]
    # Two empty classes of three leave one: refused.
    root = _folder(tmp_path / "sparse", {"ant": 0, "bee": 0, "cat": 2})
    with pytest.warns(UserWarning), pytest.raises(DatasetUnavailableError, match="at least 2"):
        folder_source(root)


def test_the_pixel_limit_reaches_the_scan_through_the_source(tmp_path):
    """`resolve_source(max_pixels=)` is the hook of a command-line flag: 8x8 images are 64
    pixels, so a limit of 63 leaves each class empty (the source is then refused)."""
    from keras_convit.data import resolve_source

    root = _folder(tmp_path / "two", {"ant": 2, "bee": 2})
    assert resolve_source(root, max_pixels=64).num_classes == 2
    with pytest.warns(UserWarning, match="64 pixels, over the limit of 63"):
        unreadable = r"No images .*\(4 unreadable; the first, .*64 pixels, over the limit of 63"
        with pytest.raises(DatasetUnavailableError, match=unreadable):
            resolve_source(root, max_pixels=63)
