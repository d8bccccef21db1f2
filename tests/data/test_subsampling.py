"""Deterministic per-class subsampling, epoch scaling and the held-out splits."""

import numpy as np
import pytest

from keras_convit.data import split_per_class, subsample_indices


def test_subsampling_keeps_the_first_of_each_class_in_order():
    labels = np.array([2, 0, 0, 1, 2, 0, 1, 2, 0, 2])
    kept = subsample_indices(labels, 0.5)
    # Class 0 at 1, 2, 5, 8 -> first 2; class 1 at 3, 6 -> first 1; class 2 at 0, 4, 7, 9 -> 2.
    assert kept.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(subsample_indices(labels, 0.5), kept)  # deterministic


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 1.0])
def test_subsampling_counts_and_nesting(fraction, rng):
    labels = rng.integers(0, 7, size=500)
    kept = subsample_indices(labels, fraction)
    for label in range(7):
        count = (labels == label).sum()
        assert (labels[kept] == label).sum() == max(1, int(count * fraction))
    assert set(subsample_indices(labels, fraction / 2)) <= set(kept)
    assert (np.diff(kept) > 0).all()


def test_subsampling_keeps_one_example_of_rare_classes():
    assert subsample_indices(np.array([0, 0, 0, 0, 1]), 0.1).tolist() == [0, 4]


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, float("nan")])
def test_bad_fraction(fraction):
    with pytest.raises(ValueError, match="fraction"):
        subsample_indices(np.zeros(4), fraction)


def test_split_per_class(rng):
    labels = rng.integers(0, 4, size=200)
    kept, held_out = split_per_class(labels, 0.2, seed=3)
    assert not set(kept) & set(held_out)
    assert sorted(np.concatenate([kept, held_out]).tolist()) == list(range(200))
    for label in range(4):
        assert (labels[held_out] == label).sum() == round((labels == label).sum() * 0.2)
    again = split_per_class(labels, 0.2, seed=3)
    np.testing.assert_array_equal(again[1], held_out)
    assert not np.array_equal(split_per_class(labels, 0.2, seed=4)[1], held_out)
    assert len(split_per_class(labels, 0.0)[1]) == 0
