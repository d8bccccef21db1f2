"""Deterministic per-class subsampling (the paper's sample-efficiency protocol) and splits."""

import math

import numpy as np


def subsample_indices(labels, fraction):
    """Indices keeping the first `max(1, int(n_c * fraction))` examples of each class c.

    As the reference `--sampling_ratio`: deterministic, in stored order (sorted file names for a
    folder), so a smaller fraction is a subset of a larger one.

    Args:
        labels: int array (n,).
        fraction: float in (0, 1].

    Returns:
        Sorted int64 indices (m,) into `labels`.

    Example:
    >>> keras_convit.data.subsample_indices(np.array([0, 1, 0, 1, 0, 1, 0, 1]), 0.5).tolist()
    [0, 1, 2, 3]
    """
    labels = np.asarray(labels)
    _check_fraction(fraction)
    if fraction == 1.0:
        return np.arange(len(labels), dtype="int64")
    kept = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        kept.append(members[: max(1, int(len(members) * fraction))])
    return np.sort(np.concatenate(kept)).astype("int64") if kept else np.zeros(0, "int64")


def split_per_class(labels, fraction, seed=0):
    """Splits indices into (kept, held_out), holding out `round(n_c * fraction)` of each class.

    The held-out members are drawn with `seed`; both index arrays are sorted, so the kept part
    keeps the stored order that `subsample_indices` relies on. Classes with one example stay
    whole in the kept part.

    Example:
    >>> kept, held_out = keras_convit.data.split_per_class(np.repeat([0, 1], 10), 0.2)
    >>> len(kept), len(held_out)
    (16, 4)
    """
    labels = np.asarray(labels)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"The held-out fraction must be in [0, 1), got {fraction!r}.")
    rng = np.random.default_rng(seed)
    held_out = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = min(round(len(members) * fraction), len(members) - 1)
        held_out[rng.permutation(members)[:count]] = True
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


def _check_fraction(fraction):
    if not (isinstance(fraction, (int, float)) and 0.0 < fraction <= 1.0) or math.isnan(fraction):
        raise ValueError(f"The data fraction must be in (0, 1], got {fraction!r}.")
