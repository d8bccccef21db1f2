"""What the benchmark measures: keras_convit classifiers and their timm references, each as a
`make(mode, batch_size)` that gives a callable running one synchronised batch."""

import contextlib
import os
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# keras_convit preset -> timm's DeiT of the same width and heads.
TIMM_DEIT = {
    "convit_tiny": "vit_tiny_patch16_224",
    "convit_small": "vit_small_patch16_224",
    "convit_base": "vit_base_patch16_224",
}


def timm_references(variant):
    """(timm ConViT, timm DeiT) of the preset `variant`. Imports keras_convit (and so Keras):
    call it after `configure_device`."""
    sys.path.insert(0, REPOSITORY)
    from keras_convit.presets import PRESETS

    return PRESETS[variant].reference_name, TIMM_DEIT[variant]


def labels(variant):
    """("ConViT-Ti", "DeiT-Ti") for the preset `variant`, from its description."""
    sys.path.insert(0, REPOSITORY)
    from keras_convit.presets import PRESETS

    description = PRESETS[variant].description
    return description, description.replace("ConViT", "DeiT")


NUM_CLASSES = 1000


def configure_device(device):
    """Pins every framework to the CPU, or checks that a GPU is there. Before any import."""
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        os.environ["JAX_PLATFORMS"] = "cpu"


def keras_jit(value):
    return {"auto": "auto", "true": True, "false": False}[value]


def backend_name():
    import keras

    return keras.backend.backend()


def import_timm():
    sys.path.insert(0, os.path.join(REPOSITORY, "tests"))
    from timm_reference import import_timm as _import_timm

    return _import_timm()


def torch_device(device):
    return "cuda" if device == "gpu" else "cpu"


def synchronize_torch(device):
    import torch

    if device == "gpu":
        torch.cuda.synchronize()


def use_explicit_gpsa():
    """Makes GPSA take its explicit path (batch x heads x N x N matrices) on every call."""
    from keras_convit.layers.gpsa import GatedPositionalSelfAttention

    def explicit(self, query, key, value, gate):
        return self._explicit(query, key, value, gate, training=False)[0]

    GatedPositionalSelfAttention._fast = explicit


def reduced_depth(depth):
    """Architecture overrides for `--depth`: ConViT keeps its 10-of-12 share of GPSA blocks."""
    if depth is None:
        return {}
    return {"depth": depth, "local_up_to_layer": max(1, min(depth - 1, depth * 10 // 12))}


def keras_steps(variant, image_size, dtype, jit_compile, depth=None, explicit=False):
    """A keras_convit classifier with its default compile; returns `make(mode, batch_size)`,
    which gives a callable running one synchronised batch."""
    import keras
    import numpy as np

    sys.path.insert(0, REPOSITORY)
    from keras_convit.models import from_preset

    if explicit:
        use_explicit_gpsa()
    keras.config.set_dtype_policy("mixed_bfloat16" if dtype == "bfloat16" else "float32")
    model = from_preset(
        variant,
        **reduced_depth(depth),
        input_shape=(image_size, image_size, 3),
        classes=NUM_CLASSES,
    )
    if jit_compile != "auto":
        model.jit_compile = jit_compile
    rng = np.random.default_rng(0)

    def make(mode, batch_size):
        images = keras.ops.convert_to_tensor(
            rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype("float32")
        )
        if mode == "forward":
            return lambda: model.predict_on_batch(images)
        labels = keras.ops.convert_to_tensor(rng.integers(0, NUM_CLASSES, (batch_size,)))
        return lambda: model.train_on_batch(images, labels)

    make.jit_compile = model.jit_compile  # as compiled: "auto" resolved by Keras
    return make


def timm_model(name, image_size, depth=None):
    """timm's `name` with its own random init (seed 0), at `image_size` and `--depth`."""
    import torch

    timm = import_timm()
    torch.manual_seed(0)
    overrides = reduced_depth(depth)
    if not name.startswith("convit"):
        overrides.pop("local_up_to_layer", None)
    return timm.create_model(name, pretrained=False, img_size=image_size, **overrides)


def timm_steps(name, image_size, dtype, device, depth=None):
    """A timm model; returns `make(mode, batch_size)` as `keras_steps` does. Forward runs under
    `torch.inference_mode`, a training step is cross-entropy, backward and `torch.optim.AdamW`."""
    import torch

    target = torch_device(device)
    model = timm_model(name, image_size, depth).to(target)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    autocast = (
        (lambda: torch.autocast(target, dtype=torch.bfloat16))
        if dtype == "bfloat16"
        else contextlib.nullcontext
    )

    def make(mode, batch_size):
        images = torch.randn(batch_size, 3, image_size, image_size, device=target)
        labels = torch.randint(0, NUM_CLASSES, (batch_size,), device=target)

        def forward():
            model.eval()
            with torch.inference_mode(), autocast():
                model(images)
            synchronize_torch(device)

        def train_step():
            model.train()
            with autocast():
                loss = torch.nn.functional.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss.item()

        return forward if mode == "forward" else train_step

    return make
