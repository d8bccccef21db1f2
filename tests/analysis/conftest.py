import pytest


@pytest.fixture
def images(rng):
    return rng.uniform(0, 255, (3, 32, 32, 3)).astype("float32")
