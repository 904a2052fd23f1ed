"""End to end: a tiny search on real data learns and fills every fitted attribute."""

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from sknas import MLPNASClassifier
from sknas.datasets import load_wine_quality

FITTED = ["search_results_", "best_index_", "best_architecture_", "best_layers_", "best_score_",
          "model_", "classes_", "n_features_in_", "controller_history_", "controller_",
          "stop_reason_", "search_time_", "refit_time_"]


@pytest.fixture(scope="module")
def wine_small():
    X, y = load_wine_quality(return_X_y=True, as_frame=True)
    X, y = X.iloc[:2500], y.iloc[:2500]
    X = (X - X.mean()) / X.std()
    return X, y


def test_tiny_search_learns_and_fills_attributes(wine_small):
    X, y = wine_small
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=500, stratify=y, random_state=0)
    clf = MLPNASClassifier(controller_epochs=2, samples_per_epoch=3, epochs=10,
                           controller_train_steps=2, units=(16, 32), activations=("relu", "tanh"),
                           random_state=0)
    clf.fit(X_tr, y_tr)
    for name in FITTED:
        assert hasattr(clf, name), name
    assert list(clf.feature_names_in_) == list(X.columns)
    assert clf.n_features_in_ == 11
    assert set(clf.classes_) == {"high", "low", "medium"}
    table = pd.DataFrame(clf.search_results_)
    assert len(table) == 6 and set(table["controller_epoch"]) == {0, 1}
    assert table["status"].eq("ok").all() and table["reward"].between(0, 1).all()
    assert table["predicted_reward"].between(0, 1).all()
    assert clf.best_score_ == table["reward"].max()
    assert clf.best_architecture_ == table["architecture"][clf.best_index_]
    assert table["rank"][clf.best_index_] == 1
    assert len(clf.controller_history_["loss"]) == 2
    majority = y_te.value_counts(normalize=True).max()
    assert clf.score(X_te, y_te) > majority + 0.02
    proba = clf.predict_proba(X_te)
    assert proba.shape == (500, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(clf.predict(X_te)) <= set(clf.classes_)


def test_same_random_state_same_search(blobs, tiny):
    X, y = blobs
    tiny.update(controller_epochs=2, samples_per_epoch=3)
    a = MLPNASClassifier(**tiny).fit(X, y)
    b = MLPNASClassifier(**tiny).fit(X, y)
    for col in ("architecture", "reward", "predicted_reward", "n_params"):
        np.testing.assert_array_equal(a.search_results_[col], b.search_results_[col])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = MLPNASClassifier(**{**tiny, "random_state": 1}).fit(X, y)
    assert not np.array_equal(a.search_results_["reward"], c.search_results_["reward"])


def test_binary_problem_uses_one_sigmoid_unit(blobs, tiny):
    X, y = blobs
    keep = y < 2
    clf = MLPNASClassifier(**tiny).fit(X[keep], np.where(y[keep] == 0, "no", "yes"))
    assert clf.model_.output_shape == (None, 1)
    assert clf.best_architecture_.endswith("sigmoid(1)")
    assert clf.predict_proba(X[:5]).shape == (5, 2)


def test_exhausted_space_ends_early_with_warning(blobs):
    X, y = blobs
    clf = MLPNASClassifier(units=(4,), activations=("relu",), max_layers=2, controller_epochs=3,
                           samples_per_epoch=2, epochs=1, controller_train_steps=1,
                           controller_units=8, random_state=0)
    # space: 4-relu, 4-relu > 4-relu, 4-relu > dropout = 3 architectures
    with pytest.warns(UserWarning, match="exhausted"):
        clf.fit(X, y)
    assert len(clf.search_results_["architecture"]) == 3
    assert clf.stop_reason_ == "exhausted"


@pytest.mark.parametrize("reward", ["last", "max"])
def test_reward_options(blobs, tiny, reward):
    X, y = blobs
    clf = MLPNASClassifier(**tiny, reward=reward).fit(X, y)
    col = "last_score" if reward == "last" else "max_score"
    np.testing.assert_allclose(clf.search_results_["reward"], clf.search_results_[col])


def test_keras_trainer_and_random_strategy(blobs, tiny):
    X, y = blobs
    clf = MLPNASClassifier(**tiny, trainer="keras", strategy="random").fit(X, y)
    assert np.isnan(clf.search_results_["predicted_reward"]).all()
    assert (clf.search_results_["status"] == "ok").all()
    assert clf.score(X, y) > 0.5


def test_refit_false_serves_the_searched_candidate(blobs, tiny):
    X, y = blobs
    tiny.update(samples_per_epoch=3, epochs=4)
    searched = MLPNASClassifier(**tiny, refit=False).fit(X, y)
    refit = MLPNASClassifier(**tiny).fit(X, y)
    np.testing.assert_array_equal(searched.search_results_["reward"], refit.search_results_["reward"])
    # the served model scores on the validation rows exactly what the search recorded
    assert searched.best_score_ == refit.best_score_
    assert not np.allclose(searched.predict_proba(X), refit.predict_proba(X))
