"""Bad input and bad parameters: a clear error, raised before any search work.

Each test that fits makes ``Search.run`` explode if it is ever reached, so a
pass proves the error came from the up-front validation, not from deep in
TensorFlow.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from sknas import MLPNASClassifier, MLPNASRegressor, Reinforce, SearchSpace
from sknas._search import Search


@pytest.fixture
def no_search(monkeypatch):
    """Fail loudly if a search starts."""
    def run(self, *args, **kwargs):
        raise AssertionError("the search started: validation should have failed first")
    monkeypatch.setattr(Search, "run", run)


@pytest.fixture(scope="module")
def fitted():
    """A tiny fitted estimator on 4 features."""
    from conftest import TINY, fresh
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    return MLPNASClassifier(**fresh(TINY)).fit(X, (X[:, 0] > 0).astype(int))


def _data(n=20, d=3):
    rng = np.random.default_rng(1)
    return rng.normal(size=(n, d)), np.arange(n) % 2


# ---------------------------------------------------------------- bad data
@pytest.mark.parametrize("value, message", [(np.nan, "NaN"), (np.inf, "infinity"),
                                            (-np.inf, "infinity")])
def test_non_finite_X_is_rejected(no_search, value, message):
    X, y = _data()
    X[3, 1] = value
    with pytest.raises(ValueError, match=message):
        MLPNASClassifier().fit(X, y)


def test_non_finite_y_is_rejected(no_search):
    X, _ = _data()
    y = np.arange(20) % 2.0
    y[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MLPNASClassifier().fit(X, y)


def test_lengths_of_X_and_y_must_match(no_search):
    X, y = _data()
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        MLPNASClassifier().fit(X, y[:-1])


def test_sample_weight_length_must_match(no_search):
    X, y = _data()
    with pytest.raises(ValueError, match="sample_weight.shape"):
        MLPNASClassifier().fit(X, y, sample_weight=np.ones(5))


@pytest.mark.parametrize("weights, message", [("negative", "Negative values in data"),
                                              ("zeros", "at least one non-zero|sums to zero")])
def test_sample_weight_must_be_usable(no_search, weights, message):
    X, y = _data()
    w = -np.ones(len(y)) if weights == "negative" else np.zeros(len(y))
    with pytest.raises(ValueError, match=message):
        MLPNASClassifier().fit(X, y, sample_weight=w)


def test_a_single_class_is_rejected(no_search):
    X, _ = _data()
    with pytest.raises(ValueError, match="only one class.*at least 2 classes"):
        MLPNASClassifier().fit(X, np.full(len(X), "cat"))


def test_a_continuous_target_is_rejected(no_search):
    X, _ = _data()
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPNASClassifier().fit(X, np.linspace(0, 1, len(X)))


@pytest.mark.parametrize("shape, message", [((0, 3), "0 sample"), ((20, 0), "0 feature"),
                                            ((1, 3), "minimum of 2 is required")])
def test_empty_or_tiny_X_is_rejected(no_search, shape, message):
    with pytest.raises(ValueError, match=message):
        MLPNASClassifier().fit(np.zeros(shape), np.arange(shape[0]) % 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_sparse_X_with_nan_or_inf_gets_the_dense_message(no_search, bad):
    X, y = _data()
    X[3, 1] = bad
    with pytest.raises(ValueError) as dense:
        MLPNASClassifier().fit(X, y)
    for fmt in ("csr", "csc", "coo"):
        with pytest.raises(ValueError) as sparse:
            MLPNASClassifier().fit(sp.csr_matrix(X).asformat(fmt), y)
        assert str(sparse.value) == str(dense.value)
        assert "NaN" in str(sparse.value) or "infinity" in str(sparse.value)


def test_sparse_y_gets_a_clear_message(no_search):
    X, y = _data()
    with pytest.raises(ValueError, match="y is a sparse .*dense target.*toarray"):
        MLPNASClassifier().fit(sp.csr_matrix(X), sp.csr_matrix(y).T)


def test_non_numeric_X_points_to_a_column_transformer(no_search):
    X, y = _data()
    frame = pd.DataFrame({"a": X[:, 0], "colour": np.where(y == 1, "red", "blue")})
    with pytest.raises(ValueError, match="needs numeric features.*ColumnTransformer"):
        MLPNASClassifier().fit(frame, y)
    with pytest.raises(ValueError, match="needs numeric features"):
        MLPNASClassifier().fit(frame.to_numpy(), y)


# ------------------------------------------------------------ at predict
def test_predict_before_fit_raises_not_fitted():
    X, _ = _data()
    clf = MLPNASClassifier()
    for method in (clf.predict, clf.predict_proba, clf.predict_log_proba):
        with pytest.raises(NotFittedError):
            method(X)
    with pytest.raises(NotFittedError):
        clf.score(X, np.zeros(len(X)))
    with pytest.raises(NotFittedError):
        clf.export_model("never.keras")


def test_predict_with_another_number_of_features(fitted):
    with pytest.raises(ValueError, match="has 3 features.*expecting 4 features"):
        fitted.predict(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="has 5 features.*expecting 4 features"):
        fitted.predict_proba(np.zeros((5, 5)))


def test_predict_rejects_nan_and_empty(fitted):
    X = np.zeros((3, 4))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict(X)
    with pytest.raises(ValueError, match="0 sample"):
        fitted.predict(np.zeros((0, 4)))


# ---------------------------------------------------------- bad parameters
@pytest.mark.parametrize("param, value, allowed", [
    ("controller_epochs", 0, ["int in the range [1, inf)"]),
    ("samples_per_epoch", 2.5, ["int in the range [1, inf)"]),
    ("batch_size", 0, ["int in the range [1, inf)", "'auto'"]),
    ("batch_size", "large", ["int in the range [1, inf)", "'auto'"]),
    ("validation_fraction", 0.0, ["float in the range (0.0, 1.0)"]),
    ("strategy", "evolution", ["'random'", "'reinforce'"]),
    ("space", "deep", ["'extended'", "'tutorial'"]),
    ("class_weight", "auto", ["dict", "'balanced'", "None"]),
    ("error_score", "ignore", ["'raise'", "float"]),
    ("max_time", -1.0, ["float in the range (0.0, inf)", "None"]),
    ("max_candidates", 0, ["int in the range [1, inf)", "None"]),
    ("random_state", "seed", ["int", "RandomState", "None"]),
    ("n_jobs", 1.5, ["int", "None"]),
    ("n_jobs", 0, ["int in the range (-inf, -1]", "int in the range [1, inf)", "None"]),
    ("verbose", -1, ["int in the range [0, inf)"]),
])
def test_bad_parameters_name_the_parameter_and_the_allowed_values(no_search, param, value,
                                                                   allowed):
    clf = MLPNASClassifier(**{param: value})
    assert getattr(clf, param) is value  # __init__ stores, fit validates
    _fit_names(clf, f"'{param}' parameter of MLPNASClassifier", allowed)


def _fit_names(clf, owner, allowed):
    """``clf.fit`` raises an InvalidParameterError naming ``owner`` and every allowed value."""
    X, y = _data()
    with pytest.raises(InvalidParameterError) as info:
        clf.fit(X, y)
    text = str(info.value)
    assert owner in text
    for choice in allowed:
        assert choice in text


#: The controller's hyperparameters, once the estimator's (controller_learning_rate,
#: discount, baseline, use_predictor, controller_train_steps), now Reinforce's.
@pytest.mark.parametrize("param, value, allowed", [
    ("learning_rate", 0.0, ["float in the range (0.0, inf)"]),
    ("learning_rate", "fast", ["float in the range (0.0, inf)"]),
    ("discount", 1.5, ["float in the range [0.0, 1.0]"]),
    ("baseline", "mean", ["'batch'", "'ema'", "float"]),
    ("baseline", float("nan"), ["'ema'", "float in the range (-inf, inf)"]),
    ("use_predictor", "yes", ["bool"]),
    ("train_steps", 0, ["int in the range [1, inf)"]),
])
def test_bad_strategy_parameters_name_the_parameter_and_the_allowed_values(no_search, param,
                                                                           value, allowed):
    clf = MLPNASClassifier(strategy=Reinforce(**{param: value}))
    assert getattr(clf.strategy, param) is value  # Reinforce stores, the fit validates
    _fit_names(clf, f"The '{param}' parameter of Reinforce must be", allowed)
    assert not hasattr(clf, "search_results_")


#: Every parameter that moved out of the estimators, and where it went.
MOVED = {
    "units": "space=SearchSpace(units=...)",
    "activations": "space=SearchSpace(activations=...)",
    "max_layers": "space=SearchSpace(max_layers=...)",
    "dropout_rate": "space=SearchSpace(dropout_rates=...)",
    "controller_units": "strategy=Reinforce(lstm_units=...)",
    "controller_train_steps": "strategy=Reinforce(train_steps=...)",
    "controller_learning_rate": "strategy=Reinforce(learning_rate=...)",
    "controller_decay": "strategy=Reinforce(decay=...)",
    "controller_clipnorm": "strategy=Reinforce(clipnorm=...)",
    "discount": "strategy=Reinforce(discount=...)",
    "baseline": "strategy=Reinforce(baseline=...)",
    "baseline_decay": "strategy=Reinforce(baseline_decay=...)",
    "normalize_advantage": "strategy=Reinforce(normalize_advantage=...)",
    "entropy_weight": "strategy=Reinforce(entropy_weight=...)",
    "use_predictor": "strategy=Reinforce(use_predictor=...)",
    "screen_factor": "strategy=Reinforce(screen_factor=...)",
    "reward": "_reward",
    "trainer": "_trainer_kind",
    "finalist_batch_size": "_finalist_batch_size",
}


@pytest.mark.parametrize("param", list(MOVED))
@pytest.mark.parametrize("cls", [MLPNASClassifier, MLPNASRegressor])
def test_a_removed_parameter_is_a_type_error_naming_its_replacement(param, cls):
    # as the old flat parameters' bad values once were (reward='mean', trainer='torch',
    # units=64...), a removed name is refused at once, by the constructor and set_params
    value = {"reward": "mean", "trainer": "torch", "units": 64}.get(param, 1)
    with pytest.raises(TypeError) as info:
        cls(**{param: value})
    text = str(info.value)
    assert f"has no parameter '{param}'" in text and MOVED[param] in text
    with pytest.raises(TypeError) as info:
        cls().set_params(**{param: value})
    assert MOVED[param] in str(info.value)
    assert param not in cls().get_params()


def test_an_unknown_parameter_is_still_the_usual_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        MLPNASClassifier(colour="red")


def test_a_scalar_width_is_a_one_width_space():
    """SearchSpace takes a number where it takes a sequence (as dropout_rates does)."""
    from sknas import SearchSpace
    assert SearchSpace(units=64).check().size == SearchSpace(units=(64,)).check().size


@pytest.mark.parametrize("params, message", [
    (dict(units=()), "units must be a non-empty sequence of positive integers"),
    (dict(units=(8, 0)), "units must be a non-empty sequence of positive integers"),
    (dict(units=(8, "wide")), "units must be a non-empty sequence of positive integers"),
    (dict(units=(8, 2.5)), "units must be a non-empty sequence of positive integers"),
    (dict(units=(8, 8)), "units must not repeat a width"),
    (dict(activations=()), "activations must be a non-empty sequence"),
    (dict(activations=("relu", "wiggle")), "activations: 'wiggle' is not a Keras activation"),
    (dict(dropout_rates=1.0),
     r"dropout_rates must be a non-empty sequence of numbers in \[0, 1\)"),
    (dict(max_layers=0), "max_layers must be an int of at least 1"),
])
def test_bad_search_space_contents_are_named(no_search, params, message):
    X, y = _data()
    clf = MLPNASClassifier(space=SearchSpace(**params))
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)
    assert not hasattr(clf, "search_results_")


def test_class_weight_that_zeroes_every_row(no_search):
    X, y = _data()
    with pytest.raises(ValueError, match="sums to zero"):
        MLPNASClassifier(class_weight={0: 0.0, 1: 0.0}).fit(X, y)


def test_class_weight_dict_with_unknown_label(no_search):
    X, y = _data()
    with pytest.raises(ValueError, match="not in class"):
        MLPNASClassifier(class_weight={0: 1.0, 7: 2.0}).fit(X, y)


def test_every_constructor_parameter_has_a_constraint():
    params = set(MLPNASClassifier().get_params())
    assert params == set(MLPNASClassifier._parameter_constraints)
    assert set(Reinforce().get_params()) == set(Reinforce._parameter_constraints)
