"""Targets, weights and randomness: labels of any kind, weights that count, one seed."""

import random

import numpy as np
import pandas as pd
import pytest
from sklearn.utils import compute_sample_weight

from sknas import MLPNASClassifier

from conftest import TINY

#: Enough candidate training (epochs are cheap: they loop inside one graph)
#: that predictions follow the labels, so a wrong column order would show.
ACCURATE = dict(TINY, epochs=15)

NAMES = np.array(["zebra", "ant", "moose"])  # sorted order differs from code order


def _labels(kind, y):
    """``y`` (codes 0..k-1) as labels of ``kind``, and their expected ``classes_``."""
    if kind == "str":
        return NAMES[y], np.sort(NAMES[np.unique(y)])
    if kind == "int":
        codes = np.array([10, -3, 7])
        return codes[y], np.sort(codes[np.unique(y)])
    if kind == "bool":
        return y.astype(bool), np.array([False, True])
    if kind == "categorical":
        cat = pd.Series(pd.Categorical(NAMES[y], categories=["moose", "zebra", "ant"]))
        return cat, np.sort(NAMES[np.unique(y)])
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, n_classes", [("str", 3), ("categorical", 3), ("int", 2),
                                             ("bool", 2)])
def test_labels_of_any_kind_come_back_as_given(blobs, kind, n_classes):
    X, y = blobs
    if n_classes == 2:
        X, y = X[y < 2], y[y < 2]
    labels, classes = _labels(kind, y)
    clf = MLPNASClassifier(**ACCURATE).fit(X, labels)
    np.testing.assert_array_equal(clf.classes_, classes)
    pred = clf.predict(X)
    assert pred.shape == (len(X),)
    assert set(np.unique(pred)) <= set(classes)
    assert np.mean(pred == np.asarray(labels)) > 0.8
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), n_classes)
    assert proba.min() >= 0
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    # columns follow classes_: the most probable column is the predicted label
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], pred)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X[:5])), proba[:5], rtol=1e-6)
    assert clf.model_.output_shape[-1] == (1 if n_classes == 2 else n_classes)


# ----------------------------------------------------------------- weights
@pytest.fixture(scope="module")
def plain():
    """The reference fit: ``ACCURATE`` (random_state=0), no weights, on ``blobs``."""
    from sklearn.datasets import make_blobs
    X, y = make_blobs(n_samples=300, centers=3, n_features=4, cluster_std=1.5, random_state=0)
    X = (X - X.mean(0)) / X.std(0)
    return MLPNASClassifier(**ACCURATE).fit(X, y)


def test_sample_weight_steers_training_and_refit(blobs, plain):
    X, y = blobs
    weighted = MLPNASClassifier(**ACCURATE).fit(X, y, sample_weight=(y != 2).astype(float))
    assert np.mean(plain.predict(X) == 2) > 0.2
    # rows of class 2 count for nothing, so the refit model learns to avoid it
    assert np.mean(weighted.predict(X) == 2) < 0.05
    assert not np.allclose(plain.search_results_["reward"], weighted.search_results_["reward"])


def test_balanced_class_weight_is_the_balanced_sample_weight(blobs):
    X, y = blobs
    keep = np.r_[np.flatnonzero(y == 0), np.flatnonzero(y == 1)[:15], np.flatnonzero(y == 2)]
    X, y = X[keep], y[keep]
    balanced = MLPNASClassifier(**ACCURATE, class_weight="balanced").fit(X, y)
    rows = compute_sample_weight("balanced", y)
    by_rows = MLPNASClassifier(**ACCURATE).fit(X, y, sample_weight=rows)
    np.testing.assert_array_equal(balanced.predict_proba(X), by_rows.predict_proba(X))
    assert balanced.class_weight == "balanced"  # stored untouched
    # the balanced weights are far from uniform here, and weights count (test above)
    assert np.ptp(compute_sample_weight("balanced", y)) > 1


# -------------------------------------------------------------- randomness
def test_an_int_seed_and_a_random_state_instance_agree(blobs, plain):
    X, y = blobs
    state = np.random.RandomState(0)
    from_instance = MLPNASClassifier(**{**ACCURATE, "random_state": state}).fit(X, y)
    assert from_instance.random_state is state  # not replaced by fit
    np.testing.assert_array_equal(plain.predict_proba(X), from_instance.predict_proba(X))
    assert list(plain.search_results_["architecture"]) == \
        list(from_instance.search_results_["architecture"])


def test_random_state_none_draws_from_numpy_global_generator(blobs, plain):
    """As in scikit-learn: ``np.random.seed(0)`` then ``random_state=None`` is
    the search of ``random_state=0``."""
    X, y = blobs
    np.random.seed(0)
    clf = MLPNASClassifier(**{**ACCURATE, "random_state": None}).fit(X, y)
    assert clf.random_state is None
    np.testing.assert_array_equal(plain.predict_proba(X), clf.predict_proba(X))


def test_fit_leaves_the_callers_global_random_state_alone(blobs):
    import keras
    import tensorflow as tf
    from keras.src.random.seed_generator import global_seed_generator
    X, y = blobs
    tf.random.set_seed(7)
    expected = [float(tf.random.uniform([])) for _ in range(2)]
    tf.random.set_seed(7)
    got = [float(tf.random.uniform([]))]
    keras.random.uniform([])  # make sure Keras' global seed generator exists
    keras_state = keras.ops.convert_to_numpy(global_seed_generator().state.value)
    np.random.seed(7)
    random.seed(7)
    np_state, py_state = np.random.get_state(), random.getstate()
    tf_generator_state = tf.random.get_global_generator().state.numpy()

    MLPNASClassifier(**TINY).fit(X, y).predict_proba(X)

    got.append(float(tf.random.uniform([])))
    assert got == expected  # TF's op-seed sequence went on where it was
    assert random.getstate() == py_state  # Keras draws layer seeds from it: restored
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    np.testing.assert_array_equal(tf.random.get_global_generator().state.numpy(),
                                  tf_generator_state)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(global_seed_generator().state.value), keras_state)
