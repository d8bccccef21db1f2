"""tf.data input pipelines for training and evaluation; they feed every Keras backend."""

import dataclasses

import numpy as np

from keras_convit._keras_compat import drawing_from
from keras_convit.data.augmentation import Augmentation
from keras_convit.data.crop import RandomResizedCrop
from keras_convit.data.images import require_tensorflow
from keras_convit.data.sources import Source, resolve_source
from keras_convit.data.subsampling import split_per_class, subsample_indices
from keras_convit.presets import IMAGENET_CROP_FRACTION


@dataclasses.dataclass
class DataBundle:
    """What `load_dataset` returns.

    `train` yields (images (batch, size, size, 3) float32 in [0, 255], soft labels
    (batch, num_classes)); `validation` (None when no validation was held out) and `test` yield
    the same with one-hot labels and no augmentation. `train_size` counts the training images
    after subsampling, `full_train_size` before; an epoch is `steps_per_epoch` batches (the last
    partial one dropped), `passes_per_epoch` passes over the training images.
    """

    train: object
    validation: object
    test: object
    class_names: tuple
    image_size: tuple
    train_size: int
    validation_size: int
    test_size: int
    steps_per_epoch: int
    full_train_size: int = None
    passes_per_epoch: float = 1.0
    eval_batch_size: int = None  # `validation` and `test`'s; None: the training batch size

    @property
    def num_classes(self):
        return len(self.class_names)


def load_dataset(
    dataset="digits",
    image_size=224,
    batch_size=64,
    augmentation="deit",
    fraction=1.0,
    validation_fraction=0.1,
    test_fraction=0.2,
    eval_batch_size=None,
    data_dir=None,
    seed=0,
    split_seed=0,
    full_length_epochs=False,
    cache=None,
    shard=None,
):
    """Train, validation and test pipelines for a data set, with the DeiT augmentation.

    The validation set is held out from the training split first (`validation_fraction` of each
    class, drawn with `split_seed`), then the rest is subsampled per class by `fraction` in
    stored order (`subsample_indices`), so every fraction and every `seed` share the same
    validation and test images.

    Args:
        dataset: "digits", a folder of images (one sub-folder per class), a TFDS name, or a
            `Source`; see `resolve_source`.
        image_size: int or (height, width) of the model input.
        batch_size: training batch size.
        augmentation: an `Augmentation`, or "deit", "light", "none".
        fraction: float in (0, 1], the share of each class kept for training.
        validation_fraction: share of each training class held out to pick the best epoch;
            0 for none.
        test_fraction: held-out test share for sources without a test split.
        eval_batch_size: defaults to `batch_size`.
        data_dir: TFDS data directory.
        seed: seeds the shuffling and the augmentation.
        split_seed: seeds the held-out splits (validation; test, for sources without a test
            split): kept apart from `seed` so that seeds compare on the same test images.
        full_length_epochs: with `fraction` < 1, make an epoch as many steps as one over the
            whole training set (validation held out): the subset repeats, reshuffled, within
            an epoch. The paper's sample-efficiency protocol scales the epochs by 1 / fraction;
            this keeps the epoch count instead, so a small fraction does not validate and
            checkpoint every few steps.
        cache: keep decoded examples in memory; default: only for the digits.
        shard: (index, count): this process of `count` (data parallel, one process per
            device) trains on its `1 / count` of the training images, in batches of
            `batch_size // count` (its share of each global batch), as many batches as every
            other process; it evaluates every held-out image, in batches of that size.
            `train_size` and `full_train_size` still count all processes' images.

    Returns:
        A `DataBundle`.

    Example:
    >>> data = keras_convit.data.load_dataset("digits", image_size=16, batch_size=32,
    ...                                       augmentation="light", fraction=0.5)
    >>> images, labels = next(iter(data.train))
    >>> tuple(images.shape), tuple(labels.shape), data.num_classes
    ((32, 16, 16, 3), (32, 10), 10)
    """
    require_tensorflow()
    if isinstance(augmentation, str):
        augmentation = Augmentation.from_name(augmentation)
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    source = (
        dataset
        if isinstance(dataset, Source)
        else resolve_source(
            dataset,
            data_dir=data_dir,
            image_size=max(height, width),
            test_fraction=test_fraction,
            seed=split_seed,
        )
    )
    cache = source.name == "digits" if cache is None else cache
    if validation_fraction == 0 and fraction == 1.0:
        train_indices, validation_indices = None, []  # all: no need to read the labels
        train_size = full_train_size = source.sizes["train"]
    else:
        train_labels = source.labels["train"]
        train_indices, validation_indices = split_per_class(
            train_labels, validation_fraction, split_seed
        )
        full_train_size = len(train_indices)
        train_indices = train_indices[subsample_indices(train_labels[train_indices], fraction)]
        train_size = len(train_indices)
    if train_size < batch_size:
        raise ValueError(
            f"Only {train_size} training images (fraction={fraction}) for "
            f"batch_size={batch_size}: lower the batch size or raise the fraction."
        )
    count = 1
    if shard is not None:
        index, count = shard
        every = np.arange(train_size) if train_indices is None else train_indices
        train_size, full_train_size = train_size // count, full_train_size // count
        train_indices, batch_size = every[index::count][:train_size], batch_size // count
    num_classes = source.num_classes
    eval_batch_size = eval_batch_size or batch_size

    if cache:
        train, shuffle_buffer = source.make("train", train_indices).cache(), train_size
    else:
        # The source shuffles file order before decoding; a small buffer of decoded images
        # mixes the rest.
        train, shuffle_buffer = source.make("train", train_indices, shuffle_seed=seed), 1024
    train = augmented_batches(
        train,
        train_size,
        num_classes,
        (height, width),
        batch_size,
        augmentation,
        seed,
        shuffle_buffer=shuffle_buffer,
    )

    def evaluation(split, indices, size):
        if size == 0:
            return None
        examples = source.make(split, indices)
        if cache:
            examples = examples.cache()
        return evaluation_batches(
            examples, num_classes, (height, width), eval_batch_size, augmentation.crop_fraction
        )

    steps_per_epoch = train_size // batch_size
    passes_per_epoch = 1.0
    if full_length_epochs and train_size < full_train_size:
        full_steps = full_train_size // batch_size
        passes_per_epoch = full_steps / steps_per_epoch
        train = train.repeat().take(full_steps)  # each epoch iterates anew, reshuffled
        steps_per_epoch = full_steps
    test_size = source.sizes["test"]
    return DataBundle(
        train=train,
        validation=evaluation("train", validation_indices, len(validation_indices)),
        test=evaluation("test", None, test_size),
        class_names=source.class_names,
        image_size=(height, width),
        train_size=train_size * count,
        validation_size=len(validation_indices),
        test_size=test_size,
        steps_per_epoch=steps_per_epoch,
        eval_batch_size=eval_batch_size,
        full_train_size=full_train_size * count,
        passes_per_epoch=passes_per_epoch,
    )


def augmented_batches(
    examples, size, num_classes, image_size, batch_size, augmentation, seed=0, shuffle_buffer=None
):
    """Training batches from `size` unbatched (image, int label) examples of any image size.

    Shuffles each epoch (with a buffer of `shuffle_buffer` examples, default all), repeats each
    image `augmentation.repeats` times, applies the per-image then per-batch augmentation, and
    yields (images (batch, h, w, 3) float32 in [0, 255], labels (batch, num_classes) summing to
    1). Partial batches are dropped.

    Example:
    >>> import tensorflow as tf
    >>> examples = tf.data.Dataset.from_tensor_slices(
    ...     (np.random.uniform(0, 255, (8, 20, 24, 3)).astype("float32"), np.arange(8) % 2))
    >>> batches = keras_convit.data.augmented_batches(
    ...     examples, 8, 2, (16, 16), 4, keras_convit.data.Augmentation.deit(repeats=1))
    >>> [tuple(t.shape) for t in next(iter(batches))]
    [(4, 16, 16, 3), (4, 2)]
    """
    require_tensorflow()
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    image_layers = augmentation.image_layers(image_size, seed=seed)
    erasing = augmentation.erasing_layer(seed=seed + 10)
    mixup, cutmix = augmentation.mix_layers(seed=seed + 20)

    buffer = size if shuffle_buffer is None else min(size, shuffle_buffer)
    dataset = examples.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if augmentation.repeats > 1:
        # Repeated augmentation (Hoffer et al. 2020, DeiT's RASampler): each drawn image comes
        # `repeats` times; taking `size` keeps the epoch length.
        repeats = augmentation.repeats
        dataset = dataset.flat_map(
            lambda image, label: tf.data.Dataset.from_tensors((image, label)).repeat(repeats)
        ).take(size)
        # flat_map hides the length; Keras needs it for progress bars and epoch ends.
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(size))

    # Every random draw comes from a stateless seed of its own example (or batch) and layer:
    # streams seeded by `seed` and renewed each epoch, so the same seed gives the same batches
    # whatever order the parallel maps run in (a stateful generator would not).
    example_seeds = tf.data.Dataset.random(seed=seed + 40, rerandomize_each_iteration=True)
    batch_seeds = tf.data.Dataset.random(seed=seed + 50, rerandomize_each_iteration=True)

    def augment_image(example, draw):
        image, label = example
        for index, layer in enumerate(image_layers):
            with drawing_from(layer, _seed_pair(draw, index)):
                image = layer(image, training=True)
        return tf.clip_by_value(image, 0.0, 255.0), label

    dataset = tf.data.Dataset.zip(dataset, example_seeds)
    dataset = dataset.map(augment_image, num_parallel_calls=autotune)
    dataset = dataset.batch(batch_size, drop_remainder=True)

    def augment_batch(batch, draw):
        images, labels = batch
        labels = tf.one_hot(labels, num_classes, dtype="float32")
        if erasing is not None:
            with drawing_from(erasing, _seed_pair(draw, 0)):
                images = erasing(images, training=True)
        if mixup is None and cutmix is None:
            return images, labels
        # One choice per batch, as timm's Mixup: with `mix_prob`, CutMix (with `switch_prob`)
        # or MixUp. Both are cheap at batch level, so both are computed and one is kept.
        mixed = {}
        for index, (name, layer) in enumerate((("mixup", mixup), ("cutmix", cutmix)), 1):
            if layer is not None:
                with drawing_from(layer, _seed_pair(draw, index)):
                    outputs = layer({"images": images, "labels": labels}, training=True)
                mixed[name] = (outputs["images"], outputs["labels"])
        draws = tf.random.stateless_uniform((2,), seed=_seed_pair(draw, 3))
        if len(mixed) == 2:
            use_cutmix = draws[1] < augmentation.switch_prob
            choice = [
                tf.where(use_cutmix, c, m)
                for c, m in zip(mixed["cutmix"], mixed["mixup"], strict=True)
            ]
        else:
            choice = next(iter(mixed.values()))
        apply_mix = draws[0] < augmentation.mix_prob
        return tuple(
            tf.where(apply_mix, a, b) for a, b in zip(choice, (images, labels), strict=True)
        )

    dataset = tf.data.Dataset.zip(dataset, batch_seeds)
    dataset = dataset.map(augment_batch, num_parallel_calls=autotune)
    return dataset.prefetch(autotune)


def _seed_pair(draw, index):
    """A (2,) stateless seed from an int64 scalar `draw` and a Python int `index`."""
    import tensorflow as tf

    return tf.stack([draw, tf.constant(index, "int64")])


def evaluation_batches(
    examples, num_classes, image_size, batch_size, crop_fraction=IMAGENET_CROP_FRACTION
):
    """Evaluation batches: resize and centre crop (keeping `crop_fraction` of the shorter side),
    one-hot labels, the last batch partial.

    Example:
    >>> import tensorflow as tf
    >>> examples = tf.data.Dataset.from_tensor_slices(
    ...     (np.zeros((5, 40, 30, 3), "float32"), np.arange(5) % 2))
    >>> batches = keras_convit.data.evaluation_batches(examples, 2, (16, 16), 4)
    >>> [tuple(images.shape) for images, _ in batches]
    [(4, 16, 16, 3), (1, 16, 16, 3)]
    """
    require_tensorflow()
    import tensorflow as tf

    height, width = image_size
    crop = RandomResizedCrop(height, width, crop_fraction=crop_fraction)

    def transform(image, label):
        return crop(image, training=False), tf.one_hot(label, num_classes, dtype="float32")

    dataset = examples.map(transform, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
