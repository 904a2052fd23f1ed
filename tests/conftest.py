"""Shared fixtures: tiny budgets and a clean Keras state for every test."""

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.base import clone  # noqa: E402

from sknas import Reinforce, SearchSpace  # noqa: E402

#: A search budget that runs in about a second: use ``MLPNASClassifier(**TINY)``.
#: ``cv=None``: most tests are about the search, and cross-validating the finalists
#: would trace one more population graph per fit; the default ``cv='auto'`` is tested
#: by the scikit-learn checks (tests/test_sklearn_checks.py), tests/test_generalisation.py,
#: test_core_fit's first test, the CLI and the examples.
TINY = dict(controller_epochs=1, samples_per_epoch=2, epochs=2,
            strategy=Reinforce(train_steps=1, lstm_units=8),
            space=SearchSpace(units=(4, 8), activations=("relu", "tanh")), random_state=0,
            cv=None)


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


def fresh(params):
    """A copy of ``params`` whose space and strategy are new objects (``set_params``
    on an estimator changes its ``space`` and ``strategy`` objects in place)."""
    return {k: clone(v) if hasattr(v, "get_params") else v for k, v in params.items()}


@pytest.fixture
def tiny():
    """A copy of the tiny budget."""
    return fresh(TINY)


@pytest.fixture
def blobs():
    """An easy 3-class problem (300 rows, 4 features), scaled."""
    from sklearn.datasets import make_blobs
    X, y = make_blobs(n_samples=300, centers=3, n_features=4, cluster_std=1.5, random_state=0)
    X = (X - X.mean(0)) / X.std(0)
    return X.astype(np.float64), y


@pytest.fixture(scope="module")
def cancer():
    """Breast-cancer rows, standardised, as a trainer's ``CandidateData``: 400
    training rows, the other 169 scored."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    from sknas._trainer import CandidateData
    X, y = load_breast_cancer(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    y = y.astype(np.int32)
    ones = np.ones(len(y), np.float32)
    return CandidateData(X[:400], y[:400], ones[:400], X[400:], y[400:], ones[400:], 2)


def assert_probabilities_match(logits, model, X, n_classes):
    """A population net's inference-mode ``logits`` on ``X`` give the
    probabilities that the Keras ``model`` serving it computes."""
    proba = model(X, training=False).numpy()
    mine = (1 / (1 + np.exp(-logits)) if n_classes == 2
            else np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(mine, proba, rtol=1e-5, atol=1e-6)


def assert_trains_alike_in_any_population(trainer, cands, data, subsets, seed=3):
    """Each of ``cands`` trains bit-identically in the whole population and in
    each population of ``subsets`` (lists of indices); returns the whole
    population's results."""
    together = trainer.train(cands, data, seed=seed)
    for sub in subsets:
        part = trainer.train([cands[k] for k in sub], data, seed=seed)
        for k, alone in zip(sub, part):
            assert alone.val_scores == together[k].val_scores
            for a, b in zip(alone.weights, together[k].weights):
                for x, z in zip(a, b):
                    np.testing.assert_array_equal(x, z)
    return together
