"""`weights="imagenet"`: timm's ImageNet-1k checkpoints of ConViT-Ti, S and B (the official
weights, as safetensors on the Hugging Face hub), fetched once and cached by Keras."""

import os
import socket
import threading
import urllib.parse
import urllib.request

import keras

from keras_convit.weights.checkpoints import detect_format, safetensors_header

# The reference architecture of every checkpoint; only the width and head count differ.
REFERENCE_ARCHITECTURE = {
    "depth": 12,
    "local_up_to_layer": 10,
    "patch_size": 16,
    "mlp_ratio": 4.0,
    "qkv_bias": False,
    "use_gpsa": True,
    "use_pos_embed": True,
}
IMAGENET_TAGS = {name: f"{name}.fb_in1k" for name in ("convit_tiny", "convit_small", "convit_base")}
_VARIANTS = {
    (192, 4): "convit_tiny",
    (256, 4): "convit_tiny_plus",
    (432, 9): "convit_small",
    (576, 9): "convit_small_plus",
    (768, 16): "convit_base",
    (1024, 16): "convit_base_plus",
}
# `{tag}` is replaced by the timm tag; a mirror or a local folder (file:///...) works the same way.
URL_ENVIRONMENT_VARIABLE = "KERAS_CONVIT_WEIGHTS_URL"
DEFAULT_URL = "https://huggingface.co/timm/{tag}/resolve/main/model.safetensors"
CONNECT_TIMEOUT_S = 5.0
DOWNLOAD_TIMEOUT_S = 60.0
CACHE_SUBDIR = "models"


def imagenet_variant(hidden_dim, num_heads, **architecture):
    """The name of the ImageNet checkpoint for an architecture; ValueError if there is none.

    >>> imagenet_variant(192, 4)
    'convit_tiny'
    """
    variant = _VARIANTS.get((hidden_dim, num_heads))
    if variant is None or variant not in IMAGENET_TAGS:
        described = f"{variant} " if variant else ""
        raise ValueError(
            f'weights="imagenet" exist for ConViT-Ti, S and B only (convit_tiny, convit_small, '
            f"convit_base); the {described}architecture hidden_dim={hidden_dim}, "
            f"num_heads={num_heads} has none (the '+' variants were never released). Use "
            "weights=None, or the path to a checkpoint of this architecture."
        )
    different = {
        key: value
        for key, value in architecture.items()
        if key in REFERENCE_ARCHITECTURE and value != REFERENCE_ARCHITECTURE[key]
    }
    if different:
        raise ValueError(
            f'weights="imagenet" ({variant}) need the reference architecture '
            f"{REFERENCE_ARCHITECTURE}; got {different}."
        )
    return variant


def imagenet_weights_url(variant):
    """The URL of `variant`'s checkpoint; `$KERAS_CONVIT_WEIGHTS_URL` (with `{tag}`) overrides it.

    >>> "convit_tiny.fb_in1k" in imagenet_weights_url("convit_tiny")
    True
    """
    template = os.environ.get(URL_ENVIRONMENT_VARIABLE) or DEFAULT_URL
    return template.format(tag=IMAGENET_TAGS[variant])


def _cache_dir():
    base = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
    try:
        os.makedirs(base, exist_ok=True)
    except OSError:
        pass
    # keras.utils.get_file falls back to /tmp/.keras where the home is not writable; so do we.
    return base if os.access(base, os.W_OK) else os.path.join("/tmp", ".keras")


def _cached_path(variant):
    return os.path.join(_cache_dir(), CACHE_SUBDIR, f"{IMAGENET_TAGS[variant]}.safetensors")


def _unavailable(variant, url, reason):
    tag = IMAGENET_TAGS[variant]
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
    (`~/.keras/models`, or `$KERAS_HOME/models`). A corrupt cached copy is fetched again."""
    check_imagenet_available(variant)
    url = imagenet_weights_url(variant)
    problem = None
    for force_download in (False, True):
        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a stalled download fails instead of hanging
        try:
            path = keras.utils.get_file(
                fname=os.path.basename(_cached_path(variant)),
                origin=url,
                cache_subdir=CACHE_SUBDIR,
                cache_dir=_cache_dir(),
                force_download=force_download,
            )
        except Exception as error:  # get_file re-raises URL errors as bare Exceptions
            raise _unavailable(variant, url, error) from error
        finally:
            socket.setdefaulttimeout(previous_timeout)
        try:
            if detect_format(path) == "safetensors":
                safetensors_header(path)
                return path
            problem = "not a safetensors file"
        except ValueError as error:
            problem = error
    raise ValueError(f"The ImageNet weights fetched from {url} are unusable: {problem}")
