"""`weights="imagenet"`: timm's ImageNet-1k checkpoints of ConViT-Ti, S and B (the official
weights, as safetensors on the Hugging Face hub), fetched once and cached by Keras.

Downloads are checked: against the preset's `sha256` where the publisher's digest is known,
and always by trust on first use: the first download's SHA-256 is recorded beside the cached
file (`<file>.sha256`), and every later load, or download, must match it. A cached file that
no longer matches is refused, never used.
"""

import hashlib
import os
import socket
import threading
import urllib.parse
import urllib.request

import keras

from keras_convit._files import keras_home, write_text_atomically
from keras_convit.presets import IMAGENET_URL_TEMPLATE, PRESETS, preset_of_architecture
from keras_convit.weights.checkpoints import detect_format, safetensors_header

# The builder switches a checkpoint of the paper's layout also needs (the presets fix the rest).
REFERENCE_SWITCHES = {"use_gpsa": True, "use_pos_embed": True}
# `{tag}` is replaced by the timm tag; a mirror or a local folder (file:///...) works the same way.
URL_ENVIRONMENT_VARIABLE = "KERAS_CONVIT_WEIGHTS_URL"
CONNECT_TIMEOUT_S = 5.0
DOWNLOAD_TIMEOUT_S = 60.0
CACHE_SUBDIR = "models"
DIGEST_SUFFIX = ".sha256"  # beside the cached file: "<hex digest>  <file name>", as sha256sum


def imagenet_variant(**architecture):
    """The preset name of the ImageNet checkpoint for `ConViT` arguments; ValueError if none.

    >>> imagenet_variant(**PRESETS["convit_small"].architecture)
    'convit_small'
    """
    preset = preset_of_architecture(architecture)
    with_weights = [name for name, known in PRESETS.items() if known.has_imagenet_weights]
    if preset is None or not preset.has_imagenet_weights:
        described = (
            f"the {preset.name} architecture" if preset else f"this architecture ({architecture})"
        )
        raise ValueError(
            f'weights="imagenet" exist for {", ".join(with_weights)} only; {described} has none '
            "(the paper's '+' variants were never released). Use weights=None, or the path to a "
            "checkpoint of this architecture."
        )
    different = {
        key: architecture[key]
        for key, value in REFERENCE_SWITCHES.items()
        if architecture.get(key, value) != value
    }
    if different:
        raise ValueError(
            f'weights="imagenet" ({preset.name}) need {REFERENCE_SWITCHES}; got {different}.'
        )
    return preset.name


def imagenet_weights_url(variant):
    """The URL of `variant`'s checkpoint; `$KERAS_CONVIT_WEIGHTS_URL` (with `{tag}`) overrides it.

    >>> imagenet_weights_url("convit_tiny") == PRESETS["convit_tiny"].url
    True
    """
    template = os.environ.get(URL_ENVIRONMENT_VARIABLE) or IMAGENET_URL_TEMPLATE
    return template.format(tag=PRESETS[variant].imagenet_tag)


def _cached_path(variant):
    return os.path.join(keras_home(), CACHE_SUBDIR, f"{PRESETS[variant].imagenet_tag}.safetensors")


def _unavailable(variant, url, reason):
    tag = PRESETS[variant].imagenet_tag
    return ConnectionError(
        f"Cannot fetch the ImageNet weights of {variant} from {url}: {reason}. Without network "
        f"access, download timm's {tag} model.safetensors elsewhere (that URL) and pass its path: "
        f'weights="/path/to/model.safetensors"; or set {URL_ENVIRONMENT_VARIABLE} to a mirror '
        "such as file:///folder/{tag}.safetensors."
    )


def check_imagenet_available(variant):
    """Raises ConnectionError within seconds if `variant`'s weights are neither cached nor
    reachable (a TCP connection to the origin's host, or an existing file:// path)."""
    if os.path.isfile(_cached_path(variant)):
        return
    url = imagenet_weights_url(variant)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        if not os.path.isfile(urllib.request.url2pathname(parts.path)):
            raise _unavailable(variant, url, "no such file")
        return
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _unavailable(variant, url, "not an http(s) or file URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome = []

    def connect():
        try:
            socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(error)

    # A thread bounds the name lookup too, which the socket timeout does not cover.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(CONNECT_TIMEOUT_S + 1.0)
    if not outcome:
        raise _unavailable(variant, url, f"no answer within {CONNECT_TIMEOUT_S:.0f} s")
    if outcome[0] is not None:
        raise _unavailable(variant, url, outcome[0])


def fetch_imagenet_weights(variant):
    """The local path of `variant`'s checkpoint, downloaded on first use into the Keras cache
    (`~/.keras/models`, or `$KERAS_HOME/models`), its SHA-256 recorded beside it on the first
    download and checked on every later use. A cached copy that is not a whole checkpoint and
    has no record yet is fetched again; one that no longer matches its record is refused."""
    cached = _cached_path(variant)
    expected, origin = _expected_digest(variant)
    if os.path.isfile(cached) and expected is not None:
        found = file_sha256(cached)
        if found != expected:
            raise ValueError(
                f"The cached ImageNet weights {cached} have SHA-256 {found}, not the {expected} "
                f"{origin}: the file changed since (damaged or replaced) and was not used. Delete "
                f"it (and {cached + DIGEST_SUFFIX}) to download it again, or pass a checkpoint "
                'you trust: weights="/path/to/model.safetensors".'
            )
        _record_digest(cached, found)
        return cached
    check_imagenet_available(variant)
    url = imagenet_weights_url(variant)
    problem = None
    for force_download in (False, True):
        path = _download(variant, url, force_download)
        digest = file_sha256(path)
        if expected is not None and digest != expected:
            os.remove(path)
            raise ValueError(
                f"The ImageNet weights downloaded from {url} have SHA-256 {digest}, not the "
                f"{expected} {origin}; the download was deleted, not used."
            )
        try:
            if detect_format(path) == "safetensors":
                safetensors_header(path)
                _record_digest(path, digest)
                return path
            problem = "not a safetensors file"
        except ValueError as error:
            problem = error
    raise ValueError(f"The ImageNet weights fetched from {url} are unusable: {problem}")


def file_sha256(path):
    """The hex SHA-256 of the file at `path`."""
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _expected_digest(variant):
    """(the digest the cached file must have or None, where it comes from)."""
    if PRESETS[variant].sha256:
        return PRESETS[variant].sha256.lower(), "published for it (keras_convit/presets.py)"
    record = _cached_path(variant) + DIGEST_SUFFIX
    if not os.path.isfile(record):
        return None, None
    with open(record, encoding="utf-8") as file:
        recorded = file.read().split()
    if not recorded or len(recorded[0]) != 64:
        raise ValueError(
            f"The digest record {record} is damaged; delete it and "
            f"{_cached_path(variant)} to download the ImageNet weights again."
        )
    return recorded[0].lower(), f"recorded in {record} on its first download"


def _record_digest(path, digest):
    record = path + DIGEST_SUFFIX
    if not os.path.isfile(record):
        write_text_atomically(record, f"{digest}  {os.path.basename(path)}\n")


def _download(variant, url, force_download):
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a stalled download fails instead of hanging
    try:
        return keras.utils.get_file(
            fname=os.path.basename(_cached_path(variant)),
            origin=url,
            cache_subdir=CACHE_SUBDIR,
            cache_dir=keras_home(),
            force_download=force_download,
        )
    except Exception as error:  # get_file re-raises URL errors as bare Exceptions
        raise _unavailable(variant, url, error) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
