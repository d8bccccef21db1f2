"""Data sets and input pipelines: the digits, image folders and TFDS, with DeiT augmentation.

TensorFlow (tf.data) runs the pipelines under every Keras backend; it is imported only when a
pipeline is built, so `import keras_convit` works without it.
"""

from keras_convit.data.augmentation import Augmentation
from keras_convit.data.crop import RandomResizedCrop
from keras_convit.data.digits import load_digits
from keras_convit.data.images import IMAGE_EXTENSIONS, decode_image, is_image_file
from keras_convit.data.pipelines import (
    DataBundle,
    augmented_batches,
    evaluation_batches,
    load_dataset,
)
from keras_convit.data.scan import (
    DatasetUnavailableError,
    ScanReport,
    default_cache_path,
    scan_folder,
)
from keras_convit.data.sources import (
    Source,
    digits_source,
    folder_source,
    resolve_source,
    tfds_source,
)
from keras_convit.data.subsampling import split_per_class, subsample_indices

__all__ = [
    "Augmentation",
    "DataBundle",
    "DatasetUnavailableError",
    "IMAGE_EXTENSIONS",
    "RandomResizedCrop",
    "ScanReport",
    "Source",
    "augmented_batches",
    "decode_image",
    "default_cache_path",
    "digits_source",
    "evaluation_batches",
    "folder_source",
    "is_image_file",
    "load_dataset",
    "load_digits",
    "resolve_source",
    "scan_folder",
    "split_per_class",
    "subsample_indices",
    "tfds_source",
]
