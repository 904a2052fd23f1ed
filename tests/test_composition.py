"""Composition with scikit-learn: pipelines, column transformers, CV, grid search, clone, repr."""

import re

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

from sknas import MLPNASClassifier, Reinforce, SearchSpace

from conftest import TINY, fresh

#: A few more epochs than TINY (cheap, in-graph) so scores mean something.
BUDGET = dict(TINY, epochs=10)


@pytest.fixture(scope="module")
def scaled_pipeline():
    from sklearn.datasets import make_blobs
    X, y = make_blobs(n_samples=150, centers=3, n_features=4, cluster_std=1.5, random_state=0)
    X = X * [1, 10, 100, 1000]  # badly scaled on purpose
    return make_pipeline(StandardScaler(), MLPNASClassifier(**fresh(BUDGET))).fit(X, y), X, y


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
    pipe = make_pipeline(prep, MLPNASClassifier(**fresh(BUDGET))).fit(frame, y)
    assert pipe[-1].n_features_in_ == 2 + 3 + 2
    new, _ = _frame(n=20, seed=1)
    new.loc[0, "colour"] = "purple"  # unseen category
    pred = pipe.predict(new)
    assert pred.shape == (20,) and set(pred) <= {"bad", "good"}
    assert pipe.score(frame, y) > 0.6


def test_dataframe_feature_names_are_kept():
    frame, y = _frame(n=60)
    numeric = frame[["size", "weight"]].fillna(0.0)
    clf = MLPNASClassifier(**fresh(TINY)).fit(numeric, y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["size", "weight"])
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(numeric[["weight", "size"]].rename(columns={"weight": "mass"}))


def test_cross_val_score_with_three_folds(blobs):
    X, y = blobs
    scores = cross_val_score(MLPNASClassifier(**fresh(BUDGET)), X, y, cv=3)
    assert scores.shape == (3,)
    assert np.all(scores > 0.6)


#: Two candidates that between them vary the three controller hyperparameters.
GRID = [{"strategy__learning_rate": [0.01], "strategy__discount": [0.9],
         "strategy__use_predictor": [True]},
        {"strategy__learning_rate": [0.05], "strategy__discount": [0.5],
         "strategy__use_predictor": [False]}]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_over_controller_hyperparameters(blobs, n_jobs):
    X, y = blobs
    search = GridSearchCV(MLPNASClassifier(**fresh(BUDGET)), GRID, cv=2, n_jobs=n_jobs).fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best = search.best_estimator_
    assert isinstance(best, MLPNASClassifier) and isinstance(best.strategy, Reinforce)
    for name, value in search.best_params_.items():
        assert getattr(best.strategy, name.removeprefix("strategy__")) == value
        assert best.get_params()[name] == value
    assert best.predict(X[:7]).shape == (7,)
    assert search.score(X, y) > 0.6
    assert best.model_ is not None and best.best_architecture_


def test_clone_of_a_fitted_estimator_is_unfitted_with_the_same_params(scaled_pipeline):
    fitted = scaled_pipeline[0][-1]
    copy = clone(fitted)
    # the same parameters (the deep ones included: the strategy's and the space's),
    # in new space and strategy objects
    params, fitted_params = copy.get_params(), fitted.get_params()
    assert params.keys() == fitted_params.keys()
    for name, value in params.items():
        if hasattr(value, "get_params"):
            assert type(value) is type(fitted_params[name]) and value is not fitted_params[name]
        else:
            assert value is fitted_params[name] or value == fitted_params[name], name
    assert "strategy__lstm_units" in params and "space__units" in params
    assert not hasattr(copy, "model_") and not hasattr(copy, "classes_")
    assert hasattr(fitted, "model_")  # the original keeps its fit
    copy_pipe = clone(scaled_pipeline[0])
    assert not hasattr(copy_pipe[-1], "model_")


def test_grid_search_over_the_strategy_learning_rate(blobs):
    """The controller's learning rate is tuned as ``strategy__learning_rate``, as a
    kernel's length scale is tuned as ``kernel__length_scale``."""
    X, y = blobs
    search = GridSearchCV(MLPNASClassifier(**fresh(TINY)),
                          {"strategy__learning_rate": [0.003, 0.01]}, cv=2).fit(X, y)
    assert list(search.cv_results_["param_strategy__learning_rate"]) == [0.003, 0.01]
    assert [p["strategy__learning_rate"] for p in search.cv_results_["params"]] == [0.003, 0.01]
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.strategy.learning_rate == \
        search.best_params_["strategy__learning_rate"]
    # the estimator given was cloned, never changed
    assert search.estimator.strategy.learning_rate == 0.01


def test_grid_search_over_a_default_estimators_strategy_and_space(blobs):
    """On a default estimator ``strategy='reinforce'`` and ``space='tutorial'`` are
    names: a grid over their parameters turns them into the objects they name."""
    X, y = blobs
    budget = dict(controller_epochs=1, samples_per_epoch=2, epochs=2, random_state=0, cv=None)
    grid = {"strategy__learning_rate": [0.003, 0.01], "strategy__train_steps": [1],
            "strategy__lstm_units": [8], "space__max_layers": [1]}
    search = GridSearchCV(MLPNASClassifier(**budget), grid, cv=2).fit(X, y)
    assert list(search.cv_results_["param_strategy__learning_rate"]) == [0.003, 0.01]
    best = search.best_estimator_
    assert isinstance(best.strategy, Reinforce) and isinstance(best.space, SearchSpace)
    assert best.space.max_layers == 1 and best.space.units == SearchSpace().units
    assert all(n == 1 for n in best.search_results_["n_layers"])
    assert search.estimator.strategy == "reinforce" and search.estimator.space == "tutorial"


def test_set_params_turns_a_strategy_name_into_its_object():
    clf = MLPNASClassifier()
    assert clf.strategy == "reinforce" and clf.space == "tutorial"
    assert clf.set_params(strategy__learning_rate=0.003) is clf
    assert isinstance(clf.strategy, Reinforce)
    assert clf.strategy.get_params() == Reinforce(learning_rate=0.003).get_params()
    assert clf.get_params()["strategy__learning_rate"] == 0.003
    clf.set_params(space__max_layers=3)
    assert isinstance(clf.space, SearchSpace)
    assert clf.space.get_params() == SearchSpace(max_layers=3).get_params()
    # the string 'random' becomes RandomSearch(), which has no learning rate
    with pytest.raises(ValueError, match="Invalid parameter 'learning_rate'"):
        MLPNASClassifier(strategy="random").set_params(strategy__learning_rate=0.003)
    # deep get_params lists the strategy's and space's parameters only for objects
    assert not any("__" in k for k in MLPNASClassifier().get_params())
    assert {"strategy__learning_rate", "space__units"} <= set(clf.get_params())


def test_set_params_and_get_params_round_trip():
    clf = MLPNASClassifier().set_params(strategy=Reinforce(discount=0.5),
                                        space=SearchSpace(units=(4, 8)), class_weight="balanced")
    assert clf.get_params()["strategy__discount"] == 0.5
    assert clf.get_params()["space__units"] == (4, 8)
    assert clf.get_params()["class_weight"] == "balanced"
    pipe = make_pipeline(StandardScaler(), clf)
    pipe.set_params(mlpnasclassifier__strategy__learning_rate=0.2,
                    mlpnasclassifier__space__max_layers=1)
    assert clf.strategy.learning_rate == 0.2 and clf.strategy.discount == 0.5
    assert clf.space.max_layers == 1 and clf.space.units == (4, 8)


@pytest.mark.parametrize("old, new", [("discount", "strategy=Reinforce(discount="),
                                      ("controller_learning_rate",
                                       "strategy=Reinforce(learning_rate="),
                                      ("units", "space=SearchSpace(units=")])
def test_set_params_of_a_removed_parameter_names_its_replacement(old, new):
    clf = MLPNASClassifier()
    with pytest.raises(TypeError, match=f"{old}: use {re.escape(new)}"):
        clf.set_params(**{old: 0.5})
    with pytest.raises(TypeError, match=f"{old}: use {re.escape(new)}"):
        make_pipeline(StandardScaler(), clf).set_params(**{f"mlpnasclassifier__{old}": 0.5})
    assert clf.get_params() == MLPNASClassifier().get_params()


def test_html_repr_renders():
    pipe = make_pipeline(StandardScaler(), MLPNASClassifier(strategy=Reinforce(discount=0.5)))
    html = estimator_html_repr(pipe)
    assert "MLPNASClassifier" in html and "discount" in html
    assert "<div" in MLPNASClassifier()._repr_html_()
    assert repr(MLPNASClassifier(strategy=Reinforce(discount=0.5))) == \
        "MLPNASClassifier(strategy=Reinforce(discount=0.5))"
