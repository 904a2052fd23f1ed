"""Shared fixtures: tiny budgets and a clean Keras state for every test."""

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

#: A search budget that runs in about a second: use ``MLPNASClassifier(**TINY)``.
TINY = dict(controller_epochs=1, samples_per_epoch=2, epochs=2, controller_train_steps=1,
            units=(4, 8), activations=("relu", "tanh"), controller_units=8, random_state=0)


def in_ci():
    """True when the environment variable ``CI`` is set (and not to false, 0 or no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(module):
    """Import an optional test dependency (one of the ``test`` extra's).

    Locally, a missing ``module`` skips the test (``pytest.importorskip``); under CI
    (``CI`` set) it is imported plainly, so a missing package fails the test run
    instead of skipping it silently.
    """
    if in_ci():
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture(autouse=True)
def _clean_keras():
    """Reset Keras' global state after each test."""
    yield
    import keras
    keras.backend.clear_session(free_memory=False)


@pytest.fixture
def tiny():
    """A copy of the tiny budget."""
    return dict(TINY)


@pytest.fixture
def blobs():
    """An easy 3-class problem (300 rows, 4 features), scaled."""
    from sklearn.datasets import make_blobs
    X, y = make_blobs(n_samples=300, centers=3, n_features=4, cluster_std=1.5, random_state=0)
    X = (X - X.mean(0)) / X.std(0)
    return X.astype(np.float64), y
