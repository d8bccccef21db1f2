"""Labelled image sources: the embedded digits, a folder of images, or a TFDS data set.

A source knows its labels in stored order without decoding images (so that subsampling and
validation splits are cheap and deterministic) and makes unbatched tf.data datasets of
(image (h, w, 3) in [0, 255], int32 label) for any subset of indices.
"""

import dataclasses
import os
import warnings

import numpy as np

from keras_convit.data.digits import load_digits
from keras_convit.data.images import as_rgb, read_image
from keras_convit.data.scan import DatasetUnavailableError, scan_folder
from keras_convit.data.subsampling import split_per_class


@dataclasses.dataclass(frozen=True)
class Source:
    """A labelled data set in two splits, "train" and "test".

    `labels[split]` is the int array of labels in stored order (for TFDS, read on first use);
    `sizes[split]` the number of examples; `make(split, indices=None, shuffle_seed=None)`
    returns an unbatched `tf.data.Dataset` of (image (h, w, 3) in [0, 255], uint8 or float32;
    int32 label) holding the examples at the sorted `indices` (all when None), in stored order,
    or, with `shuffle_seed`, in an order shuffled cheaply before decoding (file names for a
    folder, files for TFDS), anew each epoch. `scan` is the `ScanReport` of a folder source
    (see `scan_folder`), None for the others.
    """

    name: str
    class_names: tuple
    labels: dict
    make: object
    sizes: dict = None
    scan: object = None

    def __post_init__(self):
        if self.sizes is None:
            object.__setattr__(self, "sizes", _LazyDict(lambda split: len(self.labels[split])))

    @property
    def num_classes(self):
        return len(self.class_names)


class _LazyDict(dict):
    """A dict that computes a missing key's value once, with `load(key)`."""

    def __init__(self, load, values=()):
        super().__init__(values)
        self._load = load

    def __missing__(self, key):
        self[key] = value = self._load(key)
        return value


def resolve_source(
    dataset, data_dir=None, image_size=None, test_fraction=0.2, seed=0, max_pixels=None
):
    """The source named by `dataset`: "digits", an existing folder path, or a TFDS name.

    Args:
        dataset: "digits"; a folder with one sub-folder of images per class (or with `train/`
            and `test/` or `val/` folders holding those); or a TFDS name such as "cifar10",
            "imagenette/320px-v2" (a "tfds:" prefix forces TFDS).
        data_dir: TFDS data directory (prepared data sets or manual downloads).
        image_size: for the digits, the side they are loaded at (pixel repetition to the next
            multiple of 8).
        test_fraction: held-out share of each class when a folder or the digits have no test
            split of their own.
        seed: seed of that held-out split.
        max_pixels: a folder's images over this many pixels are left out as unreadable;
            default `keras_convit.data.images.max_image_pixels()` (see `scan_folder`).

    Example:
    >>> source = keras_convit.data.resolve_source("digits")
    >>> source.num_classes, len(source.labels["train"]) + len(source.labels["test"])
    (10, 1797)
    """
    if dataset == "digits":
        return digits_source(image_size or 8, test_fraction=test_fraction, seed=seed)
    if dataset.startswith("tfds:"):
        return tfds_source(dataset[len("tfds:") :], data_dir=data_dir)
    if os.path.isdir(dataset):
        return folder_source(dataset, test_fraction=test_fraction, seed=seed, max_pixels=max_pixels)
    if os.sep in dataset or dataset.startswith("."):
        raise DatasetUnavailableError(
            f"No folder at {dataset!r}. A folder data set holds one sub-folder of images per "
            "class (or train/ and test/ folders that do)."
        )
    return tfds_source(dataset, data_dir=data_dir)


def digits_source(image_size=8, test_fraction=0.2, seed=0):
    """scikit-learn's 1,797 handwritten digits (offline), as RGB images in [0, 255].

    Example:
    >>> source = keras_convit.data.digits_source(16)
    >>> image, label = next(iter(source.make("test", [0])))
    >>> tuple(image.shape), int(label) == int(source.labels["test"][0])
    ((16, 16, 3), True)
    """
    side = 8 * max(1, -(-int(image_size) // 8))
    (x_train, y_train), (x_test, y_test) = load_digits(side, test_fraction, seed)
    arrays = {"train": (x_train, y_train), "test": (x_test, y_test)}

    def make(split, indices=None, shuffle_seed=None):
        import tensorflow as tf

        images, labels = arrays[split]
        if indices is not None:
            images, labels = images[np.asarray(indices)], labels[np.asarray(indices)]
        return tf.data.Dataset.from_tensor_slices((images, labels.astype("int32")))

    return Source(
        name="digits",
        class_names=tuple(str(digit) for digit in range(10)),
        labels={"train": y_train, "test": y_test},
        make=make,
    )


def folder_source(root, test_fraction=0.2, seed=0, scan=None, max_pixels=None):
    """Images in `root/<class>/*.jpg|png|...`, or in `root/train/<class>/` and `root/test/`
    (or `val/`, `validation/`) with the same classes. Classes and files are taken in sorted
    order; without a test folder, `test_fraction` of each class is held out with `seed`.
    Missing test class folders are an error; a test class folder may be empty. A class folder
    without one readable training image is dropped with a warning (with its test images, if
    any); fewer than 2 classes left is an error: a classifier needs at least 2.

    The folder is scanned first (`scan_folder`, cached in `root/.keras_convit_scan.json` or
    under the Keras home): files that do not decode are left out, with a warning, and the
    `ScanReport` is the source's `scan`. Pass `scan` (a report of this `root`) to reuse one;
    `max_pixels` is the scan's pixel limit (see `scan_folder`).

    Example:
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for split, name, count in [("train", "cat", 3), ("train", "dog", 2), ("test", "cat", 1),
    ...                            ("test", "dog", 1)]:
    ...     (root / split / name).mkdir(parents=True)
    ...     for index in range(count):
    ...         keras.utils.save_img(root / split / name / f"{index}.png", np.zeros((8, 8, 3)))
    >>> source = keras_convit.data.folder_source(str(root))
    >>> source.class_names, len(source.labels["train"]), len(source.labels["test"])
    (('cat', 'dog'), 5, 2)
    >>> source.scan.test_folder, source.scan.unreadable
    ('test', ())
    """
    if scan is None:
        scan = scan_folder(root, max_pixels=max_pixels)
    elif os.path.abspath(scan.root) != os.path.abspath(root):
        raise ValueError(f"scan is a report of {scan.root!r}, not of root={root!r}.")
    if scan.unreadable:
        warnings.warn(
            f"{len(scan.unreadable)} image files under {root!r} do not decode and are left "
            f"out: {scan.summary()}",
            stacklevel=2,
        )
    class_names = _classes_to_train(scan, root)
    train_files, train_labels = _paths_and_labels(scan.files["train"], class_names)
    if "test" in scan.files:
        test_files, test_labels = _paths_and_labels(scan.files["test"], class_names)
    else:
        kept, held_out = split_per_class(train_labels, test_fraction, seed=seed)
        test_files, test_labels = train_files[held_out], train_labels[held_out]
        train_files, train_labels = train_files[kept], train_labels[kept]
    if len(train_files) == 0:
        raise scan.no_images_error()
    files = {"train": train_files, "test": test_files}

    def make(split, indices=None, shuffle_seed=None):
        import tensorflow as tf

        paths, labels = files[split], {"train": train_labels, "test": test_labels}[split]
        if indices is not None:
            paths, labels = paths[np.asarray(indices)], labels[np.asarray(indices)]
        # The scan read each header (size checked, orientation kept): the map reads none.
        turns = np.array([scan.orientations.get(path, 1) for path in paths], "int32")
        dataset = tf.data.Dataset.from_tensor_slices((paths, turns, labels.astype("int32")))
        if shuffle_seed is not None:
            dataset = dataset.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
        return dataset.map(
            lambda path, turn, label: (read_image(path, orientation=turn), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    return Source(
        name=os.path.basename(os.path.normpath(root)),
        class_names=tuple(class_names),
        labels={"train": train_labels, "test": test_labels},
        make=make,
        scan=scan,
    )


def tfds_source(name, data_dir=None):
    """A TFDS image classification data set with "image" and "label" features.

    The training split is "train"; the test split is "test" when the data set has one, else
    "validation".
    Labels are read once (images undecoded) to know the stored order. A data set that is not
    prepared locally is downloaded and prepared; when that fails (offline, or a manual download
    is needed) a `DatasetUnavailableError` says how to provide it.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "TFDS data sets need tensorflow-datasets: pip install 'keras-convit[data]'."
        ) from error
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        raise DatasetUnavailableError(
            f"{name!r} is not 'digits', not an existing folder, and not a TFDS data set name "
            "(see https://www.tensorflow.org/datasets/catalog)."
        ) from error
    try:
        builder.download_and_prepare()
    except ImportError as error:  # a broken install, not a missing data set
        raise ImportError(
            f"Preparing TFDS {name!r} needs a module that is not installed ({error}): "
            "pip install 'keras-convit[data]' (constraints.txt pins what TFDS imports)."
        ) from error
    except Exception as error:  # any other failure here means "not available"
        raise DatasetUnavailableError(
            _unavailable_message(name, builder, data_dir, error)
        ) from error

    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise ValueError(f"TFDS {name!r} has no 'image' and 'label' features: {features}.")
    splits = set(builder.info.splits.keys())
    test_split = "test" if "test" in splits or not splits else "validation"
    split_names = {"train": "train", "test": test_split}
    # Reading the labels means one pass over the records: only when needed (subsampling, a
    # validation split, or a split size the metadata lacks).
    labels = _LazyDict(lambda split: _tfds_labels(builder, split_names[split]))
    known_sizes = {
        split: builder.info.splits[name].num_examples
        for split, name in split_names.items()
        if name in splits
    }
    sizes = _LazyDict(lambda split: len(labels[split]), known_sizes)

    def make(split, indices=None, shuffle_seed=None):
        import tensorflow as tf
        import tensorflow_datasets as tfds

        # Subsets are picked by position in stored order, so only full splits shuffle files.
        shuffle_files = shuffle_seed is not None and indices is None
        dataset = builder.as_dataset(
            split=split_names[split],
            shuffle_files=shuffle_files,
            read_config=(
                tfds.ReadConfig(shuffle_seed=shuffle_seed, shuffle_reshuffle_each_iteration=True)
                if shuffle_files
                else None
            ),
            as_supervised=True,
        )
        if indices is not None:
            keep = np.zeros(sizes[split], dtype=bool)
            keep[np.asarray(indices)] = True
            keep = tf.constant(keep)
            dataset = dataset.enumerate().filter(lambda index, _: tf.gather(keep, index))
            dataset = dataset.map(lambda _, example: example)
        return dataset.map(
            lambda image, label: (as_rgb(image), tf.cast(label, "int32")),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    return Source(
        name=name,
        class_names=tuple(features["label"].names),
        labels=labels,
        make=make,
        sizes=sizes,
    )


def _tfds_labels(builder, split):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    dataset = builder.as_dataset(
        split=split, shuffle_files=False, decoders={"image": tfds.decode.SkipDecoding()}
    )
    dataset = dataset.map(lambda example: tf.cast(example["label"], "int32")).batch(4096)
    return np.concatenate([batch.numpy() for batch in dataset] or [np.zeros(0, "int32")])


def _unavailable_message(name, builder, data_dir, error):
    manual_dir = os.path.join(data_dir or "~/tensorflow_datasets", "downloads", "manual")
    return (
        f"The TFDS data set {name!r} is not prepared in {data_dir or builder.data_dir!r} and "
        f"could not be downloaded ({type(error).__name__}: {error}). Provide it locally:\n"
        f"  - on a machine with network, run `tfds build {name} --data_dir DIR` (or "
        f"tfds.load({name!r}, data_dir=DIR)), copy DIR here and pass --data-dir DIR "
        "(data_dir= in Python);\n"
        f"  - for a data set that needs a manual download (such as imagenet2012), put its "
        f"archives in {manual_dir} first;\n"
        "  - or pass a folder of images, one sub-folder per class, as the data set."
    )


def _paths_and_labels(files_per_class, class_names):
    """`{class name: paths}` as (paths, int32 labels) arrays in class then path order."""
    files = [path for name in class_names for path in files_per_class[name]]
    labels = [label for label, name in enumerate(class_names) for _ in files_per_class[name]]
    return np.array(files, dtype=str), np.array(labels, dtype="int32")


def _classes_to_train(scan, root):
    """The scan's classes less those without a readable training image (warned); at least 2."""
    empty = scan.empty_classes
    class_names = tuple(name for name in scan.class_names if name not in empty)
    if not class_names:
        raise scan.no_images_error()
    if empty:
        test = scan.files.get("test", {})
        lost = sum(len(test.get(name, ())) for name in empty)
        warnings.warn(
            f"{len(empty)} class folders under {root!r} hold no readable training image and are "
            f"left out{f' with their {lost} test images' if lost else ''}: "
            f"{', '.join(map(repr, empty))}.",
            stacklevel=3,
        )
    if len(class_names) < 2:
        raise DatasetUnavailableError(
            f"{root!r} has images in one class folder only ({class_names[0]!r}): a classifier "
            "needs at least 2 classes (one sub-folder of images per class)."
        )
    return class_names
