"""The one table of named models: each preset's architecture, input, preprocessing and weights.

Every other module, the command line, the benchmarks and the tests read these records; nothing
else restates a width, a depth or a checkpoint tag. This module imports nothing from the package.
The records follow timm's `default_cfgs` (one record per pretrained tag: URL, input size, mean,
std, crop) in keras-hub's plain-data form.
"""

import dataclasses
import types

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# timm's PretrainedCfg defaults, which the ConViT tags keep: resize to side / 0.875, centre crop.
IMAGENET_CROP_FRACTION = 0.875
# The ImageNet weights (the official ones, converted by timm), as safetensors; `{tag}` is the
# timm tag. `weights/imagenet.py` lets `$KERAS_CONVIT_WEIGHTS_URL` replace this template.
IMAGENET_URL_TEMPLATE = "https://huggingface.co/timm/{tag}/resolve/main/model.safetensors"

# The input the paper's variants are trained and evaluated at.
DEFAULT_INPUT_SIZE = (224, 224)

# What every paper variant shares (paper Table 1): 12 blocks of which the first 10 are GPSA,
# 16x16 patches, MLP ratio 4, no bias on the query/key/value projections.
PAPER_LAYOUT = types.MappingProxyType(
    {
        "depth": 12,
        "local_up_to_layer": 10,
        "patch_size": 16,
        "mlp_ratio": 4.0,
        "qkv_bias": False,
    }
)


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named model: what to build, what it eats and where its weights are.

    Fields:
        name: the key of `PRESETS` and the default model name ("convit_tiny").
        function: the variant function of `keras_convit` that builds it ("ConViTTiny"), or None.
        description: one line for listings.
        architecture: `keras_convit.ConViT` arguments (`hidden_dim` is the total width).
        input_size: (height, width) the model is meant for; its default `input_shape`.
        mean, std: per-channel RGB normalisation in [0, 1] units, applied inside the model.
        crop_fraction: share of the shorter side kept by the evaluation centre crop.
        reference_name: the timm model name of the same architecture, or None.
        imagenet_tag: the timm pretrained tag of `weights="imagenet"`, or None (no weights).
        url: where the ImageNet weights are (None without weights).
        sha256: the weights file's SHA-256 when known, checked after download (None: unchecked).
        baseline_of: for a `*_deit` twin, the name of the ConViT preset it is the twin of.
    """

    name: str
    function: str
    description: str
    architecture: types.MappingProxyType
    input_size: tuple = DEFAULT_INPUT_SIZE
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    crop_fraction: float = IMAGENET_CROP_FRACTION
    reference_name: str = None
    imagenet_tag: str = None
    url: str = None
    sha256: str = None
    baseline_of: str = None

    @property
    def hidden_dim(self):
        return self.architecture["hidden_dim"]

    @property
    def num_heads(self):
        return self.architecture["num_heads"]

    @property
    def has_imagenet_weights(self):
        return self.imagenet_tag is not None


def _paper_variant(name, function, description, hidden_dim, num_heads, imagenet=False):
    tag = f"{name}.fb_in1k" if imagenet else None
    return Preset(
        name=name,
        function=function,
        description=description,
        architecture=types.MappingProxyType(
            {"hidden_dim": hidden_dim, "num_heads": num_heads, **PAPER_LAYOUT}
        ),
        reference_name=name,
        imagenet_tag=tag,
        url=IMAGENET_URL_TEMPLATE.format(tag=tag) if imagenet else None,
        # Not recorded: no session of this project could reach the hub to hash the files, and a
        # hash copied from elsewhere unchecked would be worse than none. Keras then skips the
        # check; the loader still verifies the safetensors header and every tensor's shape.
        sha256=None,
    )


# The two ways to take GPSA out of a ConViT, as `ConViT` arguments over its architecture:
# - "deit", the fair baseline: DeiT's own layout (Touvron et al. 2021), the class token from
#   the first block and self-attention in every block, at the ConViT's width and heads;
# - "in_place", the ablation: GPSA blocks swapped for self-attention, the class token still
#   joining late (so only the last blocks see it). Not DeiT.
BASELINES = types.MappingProxyType(
    {
        "deit": types.MappingProxyType({"use_gpsa": False, "local_up_to_layer": 0}),
        "in_place": types.MappingProxyType({"use_gpsa": False}),
    }
)
DEIT_TWIN_SUFFIX = "_deit"


def _deit_twin(preset):
    """The `*_deit` preset: `preset` in DeiT's layout (`BASELINES["deit"]`), no weights."""
    return Preset(
        name=preset.name + DEIT_TWIN_SUFFIX,
        function=None,
        description=f"DeiT twin of {preset.name}: DeiT's layout (class token from block 0, "
        "no GPSA), the same width and heads",
        architecture=types.MappingProxyType({**preset.architecture, **BASELINES["deit"]}),
        input_size=preset.input_size,
        mean=preset.mean,
        std=preset.std,
        crop_fraction=preset.crop_fraction,
        baseline_of=preset.name,
    )


# The paper's "+" variants were never released with weights (d'Ascoli et al., Table 1).
_CONVIT_PRESETS = {
    preset.name: preset
    for preset in (
        _paper_variant("convit_tiny", "ConViTTiny", "ConViT-Ti", 192, 4, imagenet=True),
        _paper_variant("convit_tiny_plus", "ConViTTinyPlus", "ConViT-Ti+", 256, 4),
        _paper_variant("convit_small", "ConViTSmall", "ConViT-S", 432, 9, imagenet=True),
        _paper_variant("convit_small_plus", "ConViTSmallPlus", "ConViT-S+", 576, 9),
        _paper_variant("convit_base", "ConViTBase", "ConViT-B", 768, 16, imagenet=True),
        _paper_variant("convit_base_plus", "ConViTBasePlus", "ConViT-B+", 1024, 16),
        Preset(
            name="convit_digits",
            function=None,
            description="a small ConViT for the embedded 8x8 digits, trained in minutes",
            # 16x16 digits in 4x4 patches: 16 tokens, each 2x2 of the original 8x8 pixels.
            architecture=types.MappingProxyType(
                {
                    "hidden_dim": 64,
                    "num_heads": 4,
                    "depth": 4,
                    "local_up_to_layer": 3,
                    "patch_size": 4,
                    "mlp_ratio": PAPER_LAYOUT["mlp_ratio"],
                    "qkv_bias": False,
                }
            ),
            input_size=(16, 16),
            crop_fraction=1.0,  # 16x16 digits are evaluated whole, as they are trained
        ),
    )
}
PRESETS = types.MappingProxyType(
    {
        **_CONVIT_PRESETS,
        **{twin.name: twin for twin in map(_deit_twin, _CONVIT_PRESETS.values())},
    }
)
PAPER_VARIANTS = tuple(name for name, preset in PRESETS.items() if preset.function)


def canonical_name(name):
    """The `PRESETS` key for "ConViTTiny", "convit-tiny", "convit_tiny", ...; None if unknown.

    >>> canonical_name("ConViTSmallPlus"), canonical_name("convit-base"), canonical_name("vit")
    ('convit_small_plus', 'convit_base', None)
    """

    def key(text):
        return "".join(character for character in str(text).lower() if character.isalnum())

    for preset in PRESETS.values():
        if key(name) in (key(preset.name), key(preset.function or preset.name)):
            return preset.name
    return None


def get_preset(name):
    """The `Preset` named `name` (any spelling `canonical_name` accepts); ValueError if none.

    >>> preset = get_preset("ConViTTiny")
    >>> preset.hidden_dim, preset.num_heads, preset.architecture["depth"], preset.imagenet_tag
    (192, 4, 12, 'convit_tiny.fb_in1k')
    """
    canonical = canonical_name(name)
    if canonical is None:
        raise ValueError(f"Unknown model {name!r}; the presets are {', '.join(PRESETS)}.")
    return PRESETS[canonical]


def preset_of_architecture(architecture):
    """The paper variant whose architecture `architecture` (a dict of `ConViT` arguments) has,
    or None. Arguments absent from `architecture` take the paper's layout.

    >>> preset_of_architecture({"hidden_dim": 432, "num_heads": 9}).name
    'convit_small'
    >>> preset_of_architecture({"hidden_dim": 432, "num_heads": 9, "depth": 6}) is None
    True
    """
    for name in PAPER_VARIANTS:
        reference = PRESETS[name].architecture
        if all(architecture.get(key, value) == value for key, value in reference.items()):
            return PRESETS[name]
    return None
