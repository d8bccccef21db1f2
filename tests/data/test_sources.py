"""Data sources (digits, image folders, TFDS) and `load_dataset`."""

import socket

import numpy as np
import pytest

from keras_convit.data import (
    DatasetUnavailableError,
    digits_source,
    folder_source,
    load_dataset,
    resolve_source,
    tfds_source,
)
from keras_convit.data.images import as_rgb

tf = pytest.importorskip("tensorflow")


def _write_images(directory, count, size=(10, 14), channels=3):
    import keras

    directory.mkdir(parents=True)
    for index in range(count):
        pixels = np.full(size + (channels,), 20 * index % 255, "uint8")
        keras.utils.save_img(directory / f"{index:03d}.png", pixels, scale=False)


def test_folder_with_class_subfolders(tmp_path):
    _write_images(tmp_path / "dog", 5)
    _write_images(tmp_path / "cat", 5, channels=1)  # grayscale files decode to RGB
    source = folder_source(str(tmp_path), test_fraction=0.4, seed=0)
    assert source.class_names == ("cat", "dog")
    assert len(source.labels["train"]) == 6 and len(source.labels["test"]) == 4
    images = [image.numpy() for image, _ in source.make("train")]
    assert all(image.shape == (10, 14, 3) and image.dtype == np.uint8 for image in images)
    labels = [int(label) for _, label in source.make("train", [0, 5])]
    assert labels == source.labels["train"][[0, 5]].tolist()
    assert resolve_source(str(tmp_path)).class_names == ("cat", "dog")


def test_folder_with_train_and_val_folders(tmp_path):
    for split, count in (("train", 4), ("val", 2)):
        for name in ("a", "b"):
            _write_images(tmp_path / split / name, count)
    source = folder_source(str(tmp_path))
    assert source.class_names == ("a", "b")
    assert source.labels["train"].tolist() == [0] * 4 + [1] * 4
    assert source.labels["test"].tolist() == [0, 0, 1, 1]


def test_missing_folders_are_clear_errors(tmp_path):
    with pytest.raises(DatasetUnavailableError, match="No folder"):
        resolve_source(str(tmp_path / "nothing_here"))
    with pytest.raises(DatasetUnavailableError, match="no class sub-folders"):
        folder_source(str(tmp_path))


def test_digits_source():
    source = digits_source(12)  # loaded at the next multiple of 8
    image, label = next(iter(source.make("train", [3])))
    assert image.shape == (16, 16, 3) and int(label) == source.labels["train"][3]
    assert len(source.labels["train"]) + len(source.labels["test"]) == 1797


def test_load_dataset_subsamples_and_shares_validation_and_test():
    full = load_dataset("digits", image_size=8, batch_size=32, augmentation="none")
    tenth = load_dataset("digits", image_size=8, batch_size=32, augmentation="none", fraction=0.1)
    assert (full.validation_size, full.test_size) == (tenth.validation_size, tenth.test_size)
    assert 0.09 * full.train_size <= tenth.train_size <= 0.11 * full.train_size
    assert tenth.steps_per_epoch == tenth.train_size // 32
    assert sum(1 for _ in tenth.train) == tenth.steps_per_epoch
    for bundle in (full, tenth):
        val = np.concatenate([images.numpy() for images, _ in bundle.validation])
        assert val.shape == (full.validation_size, 8, 8, 3)
    np.testing.assert_array_equal(
        np.concatenate([labels.numpy() for _, labels in full.test]),
        np.concatenate([labels.numpy() for _, labels in tenth.test]),
    )
    with pytest.raises(ValueError, match="batch size"):
        load_dataset("digits", image_size=8, batch_size=512, fraction=0.1)


def test_seeds_share_the_held_out_images_and_small_fractions_get_full_length_epochs():
    def bundle(**kwargs):
        return load_dataset("digits", image_size=8, batch_size=32, augmentation="none", **kwargs)

    def images(split):
        return np.concatenate([batch.numpy() for batch, _ in split])

    first, second = bundle(seed=0), bundle(seed=1)
    np.testing.assert_array_equal(images(first.test), images(second.test))
    np.testing.assert_array_equal(images(first.validation), images(second.validation))
    moved = bundle(split_seed=1)
    assert not np.array_equal(images(moved.validation), images(first.validation))

    tenth = bundle(fraction=0.1, full_length_epochs=True)
    assert tenth.full_train_size == first.train_size == first.full_train_size
    assert tenth.steps_per_epoch == first.train_size // 32 == sum(1 for _ in tenth.train)
    assert tenth.passes_per_epoch == tenth.steps_per_epoch / (tenth.train_size // 32) > 9
    # Each epoch draws afresh: the subset's images, reshuffled, not one fixed sequence.
    epochs = [np.concatenate([labels.numpy() for _, labels in tenth.train]) for _ in range(2)]
    assert not np.array_equal(*epochs)


def test_unknown_tfds_name():
    pytest.importorskip("tensorflow_datasets")
    with pytest.raises(DatasetUnavailableError, match="not a TFDS data set name"):
        resolve_source("no_such_dataset_anywhere")


def test_undownloadable_tfds_dataset_says_how_to_provide_it(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def offline(self, *args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    with pytest.raises(DatasetUnavailableError) as error:
        resolve_source("cifar10", data_dir=str(tmp_path))
    message = str(error.value)
    assert "network is unreachable" in message
    assert "--data-dir" in message and "downloads/manual" in message
    assert "sub-folder per class" in message


def test_tfds_download_fails_on_the_network_not_on_an_import(tmp_path, monkeypatch):
    """A real `download_and_prepare` of cifar10, its HTTP sent to 127.0.0.1:9 (nothing listens):
    every module on the download path imports (constraints.txt pins importlib_resources, which
    tensorflow-datasets 4.9.10 imports without declaring it), and the failure is the network."""
    pytest.importorskip("tensorflow_datasets")
    from tensorflow_datasets.core.download import downloader
    from tensorflow_datasets.core.utils import gcs_utils

    real_getaddrinfo, hosts = socket.getaddrinfo, []

    def loopback(host, port, *args, **kwargs):
        hosts.append(host)
        return real_getaddrinfo("127.0.0.1", 9, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback)
    monkeypatch.setattr(downloader, "MAX_RETRIES", 0)  # urllib3 would back off for minutes
    monkeypatch.setattr(gcs_utils, "_is_gcs_disabled", True)  # no GCS client (not Python's sockets)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5)
    try:
        with pytest.raises(DatasetUnavailableError) as error:
            tfds_source("cifar10", data_dir=str(tmp_path))
    finally:
        socket.setdefaulttimeout(previous_timeout)
    cause = error.value.__cause__
    assert isinstance(cause, OSError) and not isinstance(cause, ImportError), repr(cause)
    assert "Connection refused" in str(cause) or "Failed to establish" in str(cause)
    assert hosts == ["www.cs.toronto.edu"]  # resolved to the loopback, never contacted
    assert "downloads/manual" in str(error.value)


def test_a_module_missing_from_the_tfds_chain_is_an_import_error(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")

    def missing_module(self, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'importlib_resources'")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", missing_module)
    with pytest.raises(ImportError, match="importlib_resources.*keras-convit\\[data\\]"):
        resolve_source("cifar10", data_dir=str(tmp_path))


def testas_rgb_handles_grey_grey_alpha_and_rgba():
    colour = np.arange(2 * 3 * 4, dtype="uint8").reshape(2, 3, 4)
    for channels, expected in (
        (1, np.repeat(colour[..., :1], 3, axis=-1)),
        (2, np.repeat(colour[..., :1], 3, axis=-1)),
        (3, colour[..., :3]),
        (4, colour[..., :3]),
    ):
        image = tf.constant(colour[..., :channels])
        np.testing.assert_array_equal(as_rgb(image).numpy(), expected)
        unknown = tf.function(as_rgb, input_signature=[tf.TensorSpec((None, None, None), "uint8")])
        np.testing.assert_array_equal(unknown(image).numpy(), expected)
    with pytest.raises(ValueError, match="5 channels"):
        as_rgb(tf.zeros((2, 2, 5), "uint8"))


@pytest.mark.slow
def test_tfds_dataset_with_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        source = resolve_source("cifar10")
        assert source.num_classes == 10 and len(source.labels["train"]) == 40
        picked = [3, 7, 20]
        labels = [int(label) for _, label in source.make("train", picked)]
        assert labels == source.labels["train"][picked].tolist()
        data = load_dataset(
            "cifar10",
            image_size=16,
            batch_size=8,
            augmentation="deit",
            fraction=0.5,
            validation_fraction=0.1,
        )
        images, labels = next(iter(data.train))
        assert images.shape == (8, 16, 16, 3) and labels.shape == (8, 10)
        assert data.train_size < 40 and data.test_size == 40


def test_shards_split_the_training_images_and_each_global_batch_between_processes():
    """Data parallel over processes: each reads its half of the training images, in half
    batches, as many as the other; both evaluate every held-out image."""

    def bundle(shard):
        kwargs = {"augmentation": "none", "fraction": 0.25, "shard": shard}
        return load_dataset("digits", image_size=8, batch_size=16, **kwargs)

    def rows(split):  # each image as bytes: the set of images a split holds
        return [image.tobytes() for batch, *_ in split for image in batch.numpy()]

    alone, first, second = bundle(None), bundle((0, 2)), bundle((1, 2))
    assert first.steps_per_epoch == second.steps_per_epoch == alone.steps_per_epoch
    assert first.train_size == second.train_size == alone.train_size - alone.train_size % 2
    assert {tuple(images.shape) for images, _ in first.train} == {(8, 8, 8, 3)}
    mine, theirs = set(rows(first.train)), set(rows(second.train))
    assert not mine & theirs and not (mine | theirs) & set(rows(alone.validation))
    assert rows(first.test) == rows(alone.test) == rows(second.test)
