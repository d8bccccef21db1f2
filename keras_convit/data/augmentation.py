"""The DeiT training augmentation: core Keras layers plus a random resized crop of our own."""

import dataclasses

import keras

from keras_convit._keras_compat import with_fast_equalization
from keras_convit.data.crop import RandomResizedCrop
from keras_convit.presets import IMAGENET_CROP_FRACTION

# What the mild transforms of small images leave out: flips, RandAugment, erasing, CutMix and
# repeats; they evaluate on the whole image.
_MILD = dict(
    flip=False,
    rand_augment_ops=0,
    erasing_prob=0.0,
    cutmix_alpha=0.0,
    repeats=1,
    crop_fraction=1.0,
)


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Training augmentation settings; `Augmentation.deit()` is the DeiT/ConViT recipe.

    Per image: random resized crop (`crop_scale`, `crop_ratio`), horizontal flip, Keras
    `RandAugment` (`rand_augment_ops` ops of strength `rand_augment_factor`; 0 ops turns it off).
    Per batch: `RandomErasing` with probability `erasing_prob`, then with probability `mix_prob`
    either CutMix (alpha `cutmix_alpha`, chosen with `switch_prob`) or MixUp (`mixup_alpha`); an
    alpha of 0 turns that one off. `repeats` > 1 is repeated augmentation (each drawn image
    appears `repeats` times, differently augmented; the epoch keeps the data set's length).
    Evaluation: resize and centre crop keeping `crop_fraction` of the shorter side.

    Differences from timm, from the core Keras layers: RandAugment draws its magnitudes
    differently from `rand-m9-mstd0.5-inc1` (its default strength 0.5 stands in for it); MixUp
    draws one weight per image, not one per batch; random erasing fills with clipped Gaussian
    noise in pixel space.

    Example:
    >>> keras_convit.data.Augmentation.deit().mixup_alpha
    0.8
    >>> keras_convit.data.Augmentation.from_name("none").uses_soft_labels
    False
    """

    crop_scale: tuple = (0.08, 1.0)
    crop_ratio: tuple = (3.0 / 4.0, 4.0 / 3.0)
    flip: bool = True
    rand_augment_ops: int = 2
    rand_augment_factor: float = 0.5
    erasing_prob: float = 0.25
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5
    repeats: int = 3
    crop_fraction: float = IMAGENET_CROP_FRACTION

    def __post_init__(self):
        if not 0.0 <= self.cutmix_alpha <= 1.0:
            raise ValueError(
                "`cutmix_alpha` must be in [0, 1] (Keras' CutMix bounds its Beta parameter), "
                f"got {self.cutmix_alpha!r}."
            )
        for name in ("erasing_prob", "mix_prob", "switch_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {getattr(self, name)!r}.")
        if not (isinstance(self.repeats, int) and self.repeats >= 1):
            raise ValueError(f"`repeats` must be a positive integer, got {self.repeats!r}.")

    @classmethod
    def deit(cls, **overrides):
        """The DeiT recipe (paper section 1.6 of the reference notes)."""
        return cls(**overrides)

    @classmethod
    def light(cls, **overrides):
        """Mild crops and MixUp only: for small data sets of small images such as the digits."""
        settings = dict(
            crop_scale=(0.6, 1.0), crop_ratio=(0.8, 1.25), mixup_alpha=0.2, mix_prob=0.5
        )
        return cls(**{**_MILD, **settings, **overrides})

    @classmethod
    def none(cls, **overrides):
        """Resize only: the training images go through the evaluation transform."""
        settings = dict(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), mixup_alpha=0.0, mix_prob=0.0)
        return cls(**{**_MILD, **settings, **overrides})

    @classmethod
    def from_name(cls, name, **overrides):
        """A preset by name: "deit", "light" or "none"."""
        presets = {"deit": cls.deit, "light": cls.light, "none": cls.none}
        if name not in presets:
            raise ValueError(f"Unknown augmentation {name!r}; choose one of {sorted(presets)}.")
        return presets[name](**overrides)

    @property
    def uses_soft_labels(self):
        return self.mix_prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def image_layers(self, image_size, seed=None):
        """The per-image layers, in order: crop, flip, RandAugment."""
        height, width = _pair(image_size)
        layers = [
            RandomResizedCrop(
                height,
                width,
                scale=self.crop_scale,
                ratio=self.crop_ratio,
                crop_fraction=self.crop_fraction,
                seed=seed,
            )
        ]
        if self.flip:
            layers.append(keras.layers.RandomFlip("horizontal", seed=_offset(seed, 1)))
        if self.rand_augment_ops > 0:
            rand_augment = keras.layers.RandAugment(
                value_range=(0, 255),
                num_ops=self.rand_augment_ops,
                factor=self.rand_augment_factor,
                seed=_offset(seed, 2),
            )
            layers.append(with_fast_equalization(rand_augment))
        return layers

    def erasing_layer(self, seed=None):
        if self.erasing_prob <= 0:
            return None
        # A (p, p) factor makes the probability exactly p (a single float draws it in [0, p]).
        return keras.layers.RandomErasing(
            factor=(self.erasing_prob, self.erasing_prob), value_range=(0, 255), seed=seed
        )

    def mix_layers(self, seed=None):
        """(MixUp or None, CutMix or None)."""
        mixup = cutmix = None
        if self.mix_prob > 0 and self.mixup_alpha > 0:
            mixup = keras.layers.MixUp(alpha=self.mixup_alpha, seed=seed)
        if self.mix_prob > 0 and self.cutmix_alpha > 0:
            # Keras draws CutMix's Beta parameter uniformly in `factor`; (a, a) fixes it to a.
            alpha = min(self.cutmix_alpha, 1.0)
            cutmix = keras.layers.CutMix(factor=(alpha, alpha), seed=_offset(seed, 1))
        return mixup, cutmix


def _pair(size):
    return (size, size) if isinstance(size, int) else tuple(size)


def _offset(seed, offset):
    return None if seed is None else seed + offset
