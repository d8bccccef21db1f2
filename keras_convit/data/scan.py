"""A folder data set checked before training: every image decoded once, the results cached.

`scan_folder` lists the files `folder_source` reads, decodes each with the pipeline's own
decoder (`tf.io.decode_image`, so a file that passes cannot crash tf.data later: truncated
JPEG or PNG, garbage bytes behind an image extension, a BMP format TensorFlow lacks, an image
over the pixel limit, refused from its header before decoding), and
keeps the verdicts in a JSON cache keyed by (path, size, mtime), so a later scan of an
unchanged folder decodes nothing.

The cache file is `<root>/.keras_convit_scan.json` when `root` is writable, else
`<keras home>/keras_convit/scans/<sha256 of the absolute root, 16 hex>.json`, where the Keras
home is `$KERAS_HOME`, else `~/.keras` (`/tmp/.keras` when `~` is not writable), as for Keras'
own downloads.
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import sys
import warnings

from keras_convit._files import keras_home, write_json_atomically
from keras_convit.data.images import (
    IMAGE_EXTENSIONS,
    TEST_FOLDER_NAMES,
    inspect_image,
    is_image_file,
    max_image_pixels,
)

CACHE_FILE_NAME = ".keras_convit_scan.json"
_CACHE_VERSION = 3  # 3: EXIF orientations and the pixel limit


class DatasetUnavailableError(RuntimeError):
    """A data set that is missing locally and cannot be fetched; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class ScanReport:
    """What `scan_folder` found in a folder data set.

    `files[split][class_name]` is the tuple of paths (`root` joined with the relative path) of
    the images that decode, in sorted order; `split` is "train", plus "test" when `root` has a
    test folder (`test_folder` names it). `unreadable` holds (path, reason) pairs of image files
    that do not decode; `skipped` counts the other entries of the class folders (files without
    an image extension, sub-folders); `decoded` the files this scan decoded (0 when all came
    from the cache). `orientations[path]` is the EXIF orientation of each kept image that has
    one other than 1 (read once here: the pipelines then read no header). `fingerprint` is a
    sha256 over the class names and the sorted relative paths, sizes and mtimes of the kept
    images: it changes when the data does.
    """

    root: str
    class_names: tuple
    files: dict
    unreadable: tuple
    skipped: int
    decoded: int
    fingerprint: str
    test_folder: str = None
    cache_path: str = None
    orientations: dict = dataclasses.field(default_factory=dict)

    @property
    def empty_classes(self):
        """The class names without one readable training image (empty, or all unreadable)."""
        return tuple(name for name in self.class_names if not self.files["train"][name])

    @property
    def num_images(self):
        """The number of images kept, over all splits and classes."""
        return sum(len(paths) for classes in self.files.values() for paths in classes.values())

    def no_images_error(self):
        """The error of a folder without a readable training image, with the first unreadable
        file's reason (the likely cause of all: a format, or the pixel limit)."""
        unreadable = ""
        if self.unreadable:
            path, reason = self.unreadable[0]
            unreadable = f" ({len(self.unreadable)} unreadable; the first, {path}: {reason})"
        extensions = ", ".join(IMAGE_EXTENSIONS)
        return DatasetUnavailableError(f"No images ({extensions}) under {self.root!r}{unreadable}.")

    def summary(self, limit=5):
        """One paragraph for people: counts, then up to `limit` unreadable files with reasons."""
        splits = ", ".join(
            f"{split} {sum(len(paths) for paths in classes.values())}"
            for split, classes in self.files.items()
        )
        text = f"{self.num_images} images in {len(self.class_names)} classes ({splits})"
        if self.unreadable:
            text += f"; {len(self.unreadable)} unreadable, left out:"
            for path, reason in self.unreadable[:limit]:
                text += f"\n  {path}: {reason}"
            if len(self.unreadable) > limit:
                text += f"\n  ... and {len(self.unreadable) - limit} more"
        if self.skipped:
            text += f"\n{self.skipped} non-image entries in class folders ignored"
        return text


def scan_folder(root, cache=True, progress=None, workers=None, max_pixels=None):
    """Checks every image of the folder data set `root` and reports the good and the bad.

    Args:
        root: a folder as `folder_source` reads it: `root/<class>/*.jpg|png|...`, or
            `root/train/<class>/` with `root/test/` (or `val/`, `validation/`).
        cache: True: the default cache file (see the module docstring); a path: that JSON
            file; False: no cache.
        progress: show a progress bar while decoding; default: when stdout is a terminal.
        workers: threads decoding; default `min(8, os.cpu_count())`.
        max_pixels: images with more pixels (read from the header, before decoding) are
            unreadable; default `keras_convit.data.images.max_image_pixels()` (Pillow's
            89,478,485 unless `set_max_image_pixels` changed it).

    Returns:
        A `ScanReport`.

    Example:
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("cat", "dog"):
    ...     (root / name).mkdir()
    ...     keras.utils.save_img(root / name / "0.png", np.zeros((8, 8, 3)))
    >>> _ = (root / "dog" / "1.jpg").write_bytes(b"not a JPEG")
    >>> report = keras_convit.data.scan_folder(str(root))
    >>> report.num_images, [os.path.basename(path) for path, _ in report.unreadable]
    (2, ['1.jpg'])
    >>> keras_convit.data.scan_folder(str(root)).decoded  # all from the cache
    0
    """
    if not isinstance(cache, (bool, str, os.PathLike)):
        raise ValueError(f"cache={cache!r}: expected True, False or a file path.")
    if progress not in (None, True, False):
        raise ValueError(f"progress={progress!r}: expected None, True or False.")
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers={workers!r}: expected a positive int or None.")
    root = os.fspath(root)
    class_names, folders = _layout(root)
    listed, broken, skipped = _list_files(root, class_names, folders)

    cache_path = None if cache is False else _cache_path(root, cache)
    max_pixels = max_image_pixels() if max_pixels is None else max_pixels
    # {key: (None, orientation) or (the reason it does not decode, 1)}; a cache of another
    # limit is stale.
    verdicts = _read_cache(cache_path, root, max_pixels)
    pending = [(path, key) for _, _, path, key in listed if key not in verdicts]
    if progress is None:
        progress = sys.stdout.isatty()
    reasons = _decode_all([path for path, _ in pending], progress, workers, max_pixels)
    verdicts.update(zip([key for _, key in pending], reasons, strict=True))
    current = {key: verdicts[key] for *_, key in listed}
    if cache_path is not None and (pending or len(current) != len(verdicts)):
        _write_cache(cache_path, root, current, max_pixels)

    files = {split: {name: [] for name in class_names} for split in folders}
    unreadable, kept, orientations = list(broken.items()), [], {}
    for split, label, path, key in listed:
        reason, orientation = current[key]
        if reason is None:
            files[split][class_names[label]].append(path)
            kept.append(key)
            if orientation != 1:
                orientations[path] = orientation
        else:
            unreadable.append((path, reason))
    return ScanReport(
        root=root,
        class_names=tuple(class_names),
        files={
            split: {c: tuple(paths) for c, paths in by_class.items()}
            for split, by_class in files.items()
        },
        unreadable=tuple(sorted(unreadable)),
        skipped=skipped,
        decoded=len(pending),
        fingerprint=_fingerprint(class_names, kept),
        test_folder=os.path.basename(folders["test"]) if "test" in folders else None,
        cache_path=cache_path,
        orientations=orientations,
    )


def default_cache_path(root):
    """The cache file of `root`: inside it when writable, else under the Keras home.

    Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> keras_convit.data.default_cache_path(root) == os.path.join(root, ".keras_convit_scan.json")
    True
    """
    root = os.fspath(root)
    if os.access(root, os.W_OK):
        return os.path.join(root, CACHE_FILE_NAME)
    digest = hashlib.sha256(os.path.abspath(root).encode()).hexdigest()[:16]
    return os.path.join(keras_home(), "keras_convit", "scans", f"{digest}.json")


def _layout(root):
    """Class names, and the folder holding each split's class folders (`folder_source`'s rules)."""
    train_root = os.path.join(root, "train")
    split_folders = os.path.isdir(train_root)
    class_root = train_root if split_folders else root
    folders = {"train": class_root}
    for name in TEST_FOLDER_NAMES if split_folders else ():
        if os.path.isdir(os.path.join(root, name)):
            folders["test"] = os.path.join(root, name)
            break
    if not os.path.isdir(class_root):
        raise DatasetUnavailableError(f"No folder at {root!r}.")
    names = sorted(
        entry.name
        for entry in os.scandir(class_root)
        if entry.is_dir() and not entry.name.startswith(".")
    )
    if not names:
        raise DatasetUnavailableError(
            f"{class_root!r} has no class sub-folders: a folder data set holds one sub-folder of "
            "images per class (or train/ and test/ folders that do)."
        )
    return names, folders


def _list_files(root, class_names, folders):
    """([(split, label, path, (relative path, size, mtime_ns))], {path: reason} of broken
    links, the number of non-image entries), in split, class, then name order."""
    listed, broken, skipped = [], {}, 0
    for split, folder in folders.items():
        for label, name in enumerate(class_names):
            directory = os.path.join(folder, name)
            if not os.path.isdir(directory):
                raise DatasetUnavailableError(f"Class folder {directory!r} is missing.")
            for entry in sorted(os.scandir(directory), key=lambda entry: entry.name):
                if not is_image_file(entry.name):
                    skipped += 1
                    continue
                try:
                    stat = entry.stat()
                except OSError as error:  # a broken link
                    broken[entry.path] = f"{type(error).__name__}: {error.strerror}"
                    continue
                relative = os.path.relpath(entry.path, root).replace(os.sep, "/")
                key = (relative, stat.st_size, stat.st_mtime_ns)
                listed.append((split, label, entry.path, key))
    return listed, broken, skipped


def _decode_all(paths, progress, workers, max_pixels):
    """For each of `paths`, (None, EXIF orientation) if it decodes, else (why not, 1)."""
    if not paths:
        return []
    import keras

    bar = keras.utils.Progbar(len(paths), unit_name="file") if progress else None
    workers = workers or min(8, os.cpu_count() or 1)
    reasons = []
    # TensorFlow's eager kernels release the GIL, so threads decode in parallel.
    with concurrent.futures.ThreadPoolExecutor(workers) as executor:
        for reason in executor.map(lambda path: inspect_image(path, max_pixels), paths):
            reasons.append(reason)
            if bar is not None:
                bar.update(len(reasons))
    return reasons


def _fingerprint(class_names, keys):
    record = {"classes": list(class_names), "files": sorted(list(key) for key in keys)}
    return hashlib.sha256(json.dumps(record, separators=(",", ":")).encode()).hexdigest()


def _decoder_version():
    import tensorflow as tf

    return f"tensorflow {tf.__version__}"


def _cache_path(root, cache):
    return default_cache_path(root) if cache is True else os.fspath(cache)


def _read_cache(path, root, max_pixels):
    """{(relative path, size, mtime_ns): (reason or None, orientation)} from `path`; {} if
    absent or stale."""
    if path is None or not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
        if (
            data.get("version") != _CACHE_VERSION
            or data.get("decoder") != _decoder_version()
            or data.get("root") != os.path.abspath(root)
            or data.get("max_pixels") != max_pixels
        ):
            return {}
        files = data["files"].items()
        return {
            (name, size, mtime): (reason, int(orientation))
            for name, (size, mtime, reason, orientation) in files
        }
    except (OSError, ValueError, KeyError, TypeError):
        return {}  # an unreadable cache is only a slower scan


def _write_cache(path, root, verdicts, max_pixels):
    data = {
        "version": _CACHE_VERSION,
        "decoder": _decoder_version(),
        "root": os.path.abspath(root),
        "max_pixels": max_pixels,
        "files": {
            name: [size, mtime, reason, orientation]
            for (name, size, mtime), (reason, orientation) in verdicts.items()
        },
    }
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        # Written whole then renamed, so a concurrent scan reads the old or the new cache.
        write_json_atomically(path, data, separators=(",", ":"), indent=None)
    except OSError as error:
        warnings.warn(f"Could not write the scan cache {path!r}: {error}", stacklevel=3)
