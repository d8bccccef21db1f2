"""Shared test set-up. The suite runs once per backend (`KERAS_BACKEND`), each in its own
process; see the Makefile's `test` target."""

import os

import keras
import numpy as np
import pytest


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _isolated_keras_state():
    """Each test starts from a fixed seed, float32 and a fresh Keras session."""
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")
    keras.backend.clear_session()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def backend():
    return keras.backend.backend()


os.environ.setdefault("HF_HUB_OFFLINE", "1")
