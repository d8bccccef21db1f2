"""Position-embedding resampling: numpy bicubic equal to PyTorch's (and so timm's) on every
backend, the identity on the same grid."""

import numpy as np
import pytest

from keras_convit.weights.resampling import bicubic_matrix, resample_position_embedding

GRIDS = [
    ((14, 14), (24, 24)),
    ((14, 14), (16, 8)),
    ((14, 14), (7, 5)),
    ((3, 5), (11, 2)),
    ((1, 1), (3, 3)),
]


def test_matches_torch_bicubic_interpolation(rng):
    torch = pytest.importorskip("torch")
    interpolate = torch.nn.functional.interpolate
    for old, new in GRIDS:
        embedding = rng.normal(0, 0.02, (1, old[0] * old[1], 6))
        grid = torch.from_numpy(embedding).reshape(1, *old, 6).permute(0, 3, 1, 2)
        for dtype, tolerance in ((torch.float64, 1e-15), (torch.float32, 2e-7)):
            expected = interpolate(
                grid.to(dtype), size=new, mode="bicubic", align_corners=False, antialias=False
            )
            expected = expected.permute(0, 2, 3, 1).reshape(1, -1, 6).numpy()
            resampled = resample_position_embedding(embedding.astype(expected.dtype), new, old)
            assert resampled.dtype == expected.dtype
            # float64: the same arithmetic up to rounding; float32: torch rounds as it goes.
            np.testing.assert_allclose(resampled, expected, atol=tolerance, err_msg=f"{old}->{new}")


def test_the_same_grid_is_the_identity(rng):
    embedding = rng.normal(size=(1, 196, 8)).astype("float32")
    assert resample_position_embedding(embedding, (14, 14)) is embedding
    np.testing.assert_array_equal(bicubic_matrix(14, 14), np.eye(14))


def test_rows_of_the_kernel_sum_to_one():
    np.testing.assert_allclose(bicubic_matrix(14, 24).sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(bicubic_matrix(14, 5).sum(axis=1), 1.0, atol=1e-12)


def test_a_non_square_source_needs_its_grid():
    embedding = np.zeros((1, 128, 4), "float32")
    with pytest.raises(ValueError, match="not a square"):
        resample_position_embedding(embedding, (14, 14))
    assert resample_position_embedding(embedding, (14, 14), (16, 8)).shape == (1, 196, 4)
    with pytest.raises(ValueError, match="does not hold"):
        resample_position_embedding(embedding, (14, 14), (10, 10))
