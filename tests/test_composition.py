"""Composition with scikit-learn: pipelines, column transformers, CV, grid search, clone, repr."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils import estimator_html_repr

from sknas import MLPNASClassifier

from conftest import TINY

#: A few more epochs than TINY (cheap, in-graph) so scores mean something.
BUDGET = dict(TINY, epochs=10)


@pytest.fixture(scope="module")
def scaled_pipeline():
    from sklearn.datasets import make_blobs
    X, y = make_blobs(n_samples=150, centers=3, n_features=4, cluster_std=1.5, random_state=0)
    X = X * [1, 10, 100, 1000]  # badly scaled on purpose
    return make_pipeline(StandardScaler(), MLPNASClassifier(**BUDGET)).fit(X, y), X, y


def _frame(n=160, seed=0):
    """Numeric and categorical columns, both with missing values; label from both."""
    rng = np.random.default_rng(seed)
    size = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    y = np.where((size > 0) ^ (colour == "red"), "good", "bad")
    frame = pd.DataFrame({"size": size * 50 + 100, "weight": rng.normal(size=n),
                          "colour": colour, "shape": rng.choice(["round", "square"], size=n)})
    frame.loc[rng.random(n) < 0.1, "size"] = np.nan
    frame.loc[rng.random(n) < 0.1, "colour"] = np.nan
    return frame, y


def test_make_pipeline_with_a_scaler(scaled_pipeline):
    pipe, X, y = scaled_pipeline
    assert pipe.score(X, y) > 0.8
    assert pipe.predict_proba(X[:5]).shape == (5, 3)
    assert pipe[-1].n_features_in_ == 4


def test_column_transformer_on_a_dataframe_with_missing_values():
    frame, y = _frame()
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(SimpleImputer(strategy="most_frequent"),
                                OneHotEncoder(handle_unknown="ignore"))
    prep = ColumnTransformer([("num", numeric, ["size", "weight"]),
                              ("cat", categorical, ["colour", "shape"])])
    pipe = make_pipeline(prep, MLPNASClassifier(**BUDGET)).fit(frame, y)
    assert pipe[-1].n_features_in_ == 2 + 3 + 2
    new, _ = _frame(n=20, seed=1)
    new.loc[0, "colour"] = "purple"  # unseen category
    pred = pipe.predict(new)
    assert pred.shape == (20,) and set(pred) <= {"bad", "good"}
    assert pipe.score(frame, y) > 0.6


def test_dataframe_feature_names_are_kept():
    frame, y = _frame(n=60)
    numeric = frame[["size", "weight"]].fillna(0.0)
    clf = MLPNASClassifier(**TINY).fit(numeric, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["size", "weight"])
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(numeric[["weight", "size"]].rename(columns={"weight": "mass"}))


def test_cross_val_score_with_three_folds(blobs):
    X, y = blobs
    scores = cross_val_score(MLPNASClassifier(**BUDGET), X, y, cv=3)
    assert scores.shape == (3,)
    assert np.all(scores > 0.6)


#: Two candidates that between them vary the three controller hyperparameters.
GRID = [{"controller_learning_rate": [0.01], "discount": [0.9], "use_predictor": [True]},
        {"controller_learning_rate": [0.05], "discount": [0.5], "use_predictor": [False]}]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_over_controller_hyperparameters(blobs, n_jobs):
    X, y = blobs
    search = GridSearchCV(MLPNASClassifier(**BUDGET), GRID, cv=2, n_jobs=n_jobs).fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best = search.best_estimator_
    assert isinstance(best, MLPNASClassifier)
    for name, value in search.best_params_.items():
        assert getattr(best, name) == value
    assert best.predict(X[:7]).shape == (7,)
    assert search.score(X, y) > 0.6
    assert best.model_ is not None and best.best_architecture_


def test_clone_of_a_fitted_estimator_is_unfitted_with_the_same_params(scaled_pipeline):
    fitted = scaled_pipeline[0][-1]
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "model_") and not hasattr(copy, "classes_")
    assert hasattr(fitted, "model_")  # the original keeps its fit
    copy_pipe = clone(scaled_pipeline[0])
    assert not hasattr(copy_pipe[-1], "model_")


def test_set_params_and_get_params_round_trip():
    clf = MLPNASClassifier().set_params(discount=0.5, units=(4, 8), class_weight="balanced")
    assert clf.get_params()["discount"] == 0.5
    assert clf.get_params()["units"] == (4, 8)
    pipe = make_pipeline(StandardScaler(), clf)
    pipe.set_params(mlpnasclassifier__controller_learning_rate=0.2)
    assert clf.controller_learning_rate == 0.2


def test_html_repr_renders():
    pipe = make_pipeline(StandardScaler(), MLPNASClassifier(discount=0.5))
    html = estimator_html_repr(pipe)
    assert "MLPNASClassifier" in html and "discount" in html
    assert "<div" in MLPNASClassifier()._repr_html_()
    assert repr(MLPNASClassifier(discount=0.5)) == "MLPNASClassifier(discount=0.5)"
