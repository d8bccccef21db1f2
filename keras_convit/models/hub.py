"""`from_preset` for every kind of preset handle, and `upload_preset`: a built-in name, a preset
folder, or a hub handle ("hf://org/name" through huggingface_hub, "kaggle://owner/model/keras/
variant" through kagglehub: `pip install 'keras-convit[hub]'`), each read through its library's
cache, so that its offline mode (`HF_HUB_OFFLINE=1`) works."""

import os

from keras_convit.models import variants
from keras_convit.models.preset_files import CARD_FILE, load_preset, read_preset_folder
from keras_convit.presets import canonical_name

HF_PREFIX, KAGGLE_PREFIX = "hf://", "kaggle://"
INSTALL_HUB = "pip install 'keras-convit[hub]'"


def from_preset(preset, **kwargs):
    """A ConViT from a preset: a name of `keras_convit.PRESETS`, a folder written by
    `save_to_preset`, "hf://org/name" or "kaggle://owner/model/keras/variant"; `ConViT`
    arguments in `kwargs` override the preset's.

    A named preset is built fresh (`weights=` to load a file; its head has `classes`
    classes, 1000 by default). A `depth` override keeps the preset's number of blocks after the
    class token: `local_up_to_layer` becomes `depth` minus that number (at least 0) unless
    given too (ConViT-S, 10 GPSA blocks of 12, at `depth=6` has 4). A saved preset loads as
    saved, weights included; `classes=N` then keeps every weight but a new head, and another
    `input_shape` resamples the position embedding.

    Example (a named preset, saved to a folder and loaded from it):
    >>> import tempfile
    >>> model = keras_convit.from_preset("convit_digits", depth=2, classes=10, compile=False)
    >>> folder = tempfile.mkdtemp()
    >>> keras_convit.save_to_preset(model, folder) == folder
    True
    >>> loaded = keras_convit.from_preset(folder)
    >>> loaded.output_shape, [loaded.get_layer(f"blocks_{i}").use_gpsa for i in range(2)]
    ((None, 10), [True, False])
    """
    if _is_handle(preset):
        return load_preset(preset_folder(preset), **kwargs)
    return variants.from_preset(preset, **kwargs)


def preset_folder(handle):
    """The local folder of a preset handle (a folder, "hf://..." or "kaggle://..."),
    downloaded into the hub library's cache if needed; ValueError / ConnectionError /
    ImportError with one line saying what is wrong."""
    handle = os.fspath(handle)
    if handle.startswith(HF_PREFIX):
        folder = _huggingface_folder(handle[len(HF_PREFIX) :])
    elif handle.startswith(KAGGLE_PREFIX):
        folder = _kaggle_folder(handle[len(KAGGLE_PREFIX) :])
    elif os.path.isdir(handle):
        folder = handle
    else:
        raise ValueError(
            f"{handle!r} is neither a preset folder nor a hub handle (hf://org/name, "
            "kaggle://owner/model/keras/variant)."
        )
    read_preset_folder(folder)  # a whole preset, or one clear error
    return folder


def upload_preset(directory, handle):
    """Uploads the preset folder `directory` (with its model card) to "hf://org/name",
    creating the repository if needed. Needs huggingface_hub and a token (`hf auth login`).

    Returns the repository id.
    """
    read_preset_folder(directory)
    if not os.path.isfile(os.path.join(directory, CARD_FILE)):
        raise ValueError(f"The preset {os.fspath(directory)!r} has no model card {CARD_FILE}.")
    if not str(handle).startswith(HF_PREFIX):
        raise ValueError(f"upload_preset uploads to hf://org/name, got {handle!r}.")
    repo_id = _repo_id(str(handle)[len(HF_PREFIX) :])
    hub = _import("huggingface_hub", HF_PREFIX)
    api = hub.HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=os.fspath(directory),
        commit_message="Upload keras_convit preset",
    )
    return repo_id


def _is_handle(preset):
    if isinstance(preset, os.PathLike):
        return True
    text = str(preset)
    if text.startswith((HF_PREFIX, KAGGLE_PREFIX)) or os.sep in text or text.startswith("."):
        return True
    return canonical_name(text) is None and os.path.isdir(text)  # a known name wins


def _repo_id(name):
    parts = name.strip("/").split("/")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"A Hugging Face handle is hf://org/name, got {HF_PREFIX + name!r}.")
    return "/".join(parts)


def _import(module, prefix):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"{prefix} presets need the {module} package: {INSTALL_HUB}") from None


def _huggingface_folder(name):
    repo_id = _repo_id(name)
    hub = _import("huggingface_hub", HF_PREFIX)
    from huggingface_hub import constants, errors

    try:
        return hub.snapshot_download(repo_id, etag_timeout=5)
    except errors.RepositoryNotFoundError:
        raise ValueError(f"No Hugging Face model repository {repo_id!r}.") from None
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled, OSError) as error:
        offline = constants.HF_HUB_OFFLINE
        raise ConnectionError(
            f"hf://{repo_id} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) "
            + ("and HF_HUB_OFFLINE is set" if offline else "and the hub is unreachable")
            + f" ({type(error).__name__}): download it once online, or copy the preset folder "
            "and pass its path."
        ) from None


def _kaggle_folder(name):
    kagglehub = _import("kagglehub", KAGGLE_PREFIX)
    try:
        return kagglehub.model_download(name)
    except Exception as error:  # kagglehub raises its own types, network ones included
        raise ConnectionError(
            f"kaggle://{name} could not be found or downloaded ({type(error).__name__}: "
            f"{error}); offline, copy the preset folder and pass its path."
        ) from None
