"""The estimator's contract around fit: tags per configuration, nothing half
fitted after a failure, failed rows never best, resume parameters checked."""

import inspect
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from sknas import MLPNASClassifier, MLPNASRegressor, Reinforce, SearchSpace
from sknas._params import MOVED_PARAMETERS

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _fitted_attributes(est):
    return sorted(k for k in vars(est) if k.endswith("_") and not k.startswith("_"))


def test_non_deterministic_tag_follows_the_trainer():
    # the trainer is a hook a subclass sets (the Keras one is the tests' reference)
    class PopulationNAS(MLPNASClassifier):
        _trainer_kind = "population"

    class KerasNAS(MLPNASClassifier):
        _trainer_kind = "keras"

    assert get_tags(MLPNASClassifier()).non_deterministic is False
    assert get_tags(PopulationNAS()).non_deterministic is False
    assert get_tags(KerasNAS()).non_deterministic is True


#: Where each parameter that left the estimators went: (the object, its parameter) or
#: the private class attribute a subclass sets. Written out here, not read from
#: MOVED_PARAMETERS, so that a wrong entry there fails.
MOVED = {
    "units": (SearchSpace, "units"), "activations": (SearchSpace, "activations"),
    "max_layers": (SearchSpace, "max_layers"), "dropout_rate": (SearchSpace, "dropout_rates"),
    "controller_units": (Reinforce, "lstm_units"),
    "controller_train_steps": (Reinforce, "train_steps"),
    "controller_learning_rate": (Reinforce, "learning_rate"),
    "controller_decay": (Reinforce, "decay"), "controller_clipnorm": (Reinforce, "clipnorm"),
    **{name: (Reinforce, name) for name in (
        "discount", "baseline", "baseline_decay", "normalize_advantage", "entropy_weight",
        "use_predictor", "screen_factor")},
    "reward": "_reward", "trainer": "_trainer_kind", "finalist_batch_size": "_finalist_batch_size",
}


def test_moved_parameters_are_the_removed_ones():
    assert set(MOVED_PARAMETERS) == set(MOVED)
    for est in (MLPNASClassifier(), MLPNASRegressor()):
        assert not set(MOVED) & set(est.get_params())


@pytest.mark.parametrize("name", sorted(MOVED_PARAMETERS))
@pytest.mark.parametrize("cls", [MLPNASClassifier, MLPNASRegressor])
def test_a_moved_parameter_raises_a_type_error_naming_its_replacement(cls, name):
    where = MOVED[name]
    if isinstance(where, tuple):  # a parameter of the space or of the strategy
        owner, new = where
        assert new in owner().get_params()
        spelled = rf"{'space' if owner is SearchSpace else 'strategy'}={owner.__name__}\({new}="
    else:  # a private class attribute, with its default on the estimator
        assert hasattr(cls, where)
        spelled = re.escape(where)
    message = rf"{cls.__name__} has no parameter '{name}' any more: {name}: use .*{spelled}"
    with pytest.raises(TypeError, match=message):
        cls(**{name: 1})
    with pytest.raises(TypeError, match=message):  # nor through set_params
        cls().set_params(**{name: 1})


@pytest.mark.parametrize("cls", [MLPNASClassifier, MLPNASRegressor])
def test_at_most_25_constructor_parameters(cls):
    params = inspect.signature(cls.__init__).parameters
    assert len(params) - 1 <= 25, list(params)  # without self
    assert len(cls().get_params(deep=False)) <= 25


def test_a_fit_where_every_candidate_fails_leaves_nothing_fitted(tmp_path, blobs, tiny):
    X, y = blobs
    clf = MLPNASClassifier(**tiny).fit(X, y)          # an earlier, successful fit
    assert "classes_" in _fitted_attributes(clf)
    # 'exponential' layers overflow on features scaled by 1000: every loss is NaN
    clf.set_params(space__activations=("exponential",), log_dir=tmp_path)
    with pytest.raises(RuntimeError, match="Every candidate.*run folder .*run-"):
        clf.fit(X * 1000, y)
    assert _fitted_attributes(clf) == []
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    assert list(tmp_path.glob("run-*/trials.jsonl"))   # the failed trials are kept on disk


def test_bad_data_leaves_nothing_fitted(blobs, tiny):
    X, y = blobs
    clf = MLPNASClassifier(**tiny)
    with pytest.raises(ValueError):
        clf.fit(X, np.zeros(len(y)))                  # one class
    assert _fitted_attributes(clf) == []


def test_failed_rows_never_rank_above_successful_ones(blobs, tiny):
    X, y = blobs
    tiny.update(space=SearchSpace(units=(4, 8), activations=("tanh", "exponential")),
                controller_epochs=2, samples_per_epoch=4,
                error_score=2.0, cv=None)             # above any accuracy; rank by reward
    clf = MLPNASClassifier(**tiny).fit(X * 1000, y)
    res = pd.DataFrame(clf.search_results_)
    ok, failed = res[res.status == "ok"], res[res.status == "failed"]
    assert len(ok) and len(failed) and (failed.reward == 2.0).all()
    assert failed["rank"].min() > ok["rank"].max()
    assert (failed["rank"] == len(ok) + 1).all()
    assert res["rank"][clf.best_index_] == 1 and res.status[clf.best_index_] == "ok"
    assert clf.best_score_ == ok.reward.max() < 2.0
    hist = clf.controller_history_
    for epoch, best in zip(hist["controller_epoch"], hist["best_reward"]):
        upto = res[(res.controller_epoch <= epoch) & (res.status == "ok")]
        assert best == pytest.approx(upto.reward.max())


def test_resume_with_another_random_state_is_refused(tmp_path, blobs, tiny):
    X, y = blobs
    first = MLPNASClassifier(**tiny, log_dir=tmp_path).fit(X, y)
    run_dir = first.run_dir_
    with pytest.raises(ValueError, match="random_state=0 \\(now 1\\)"):
        MLPNASClassifier(**{**tiny, "random_state": 1}, resume=run_dir).fit(X, y)
    # None means "the run's seed", as does the run's own value
    more = MLPNASClassifier(**{**tiny, "random_state": None, "controller_epochs": 2},
                            resume=run_dir).fit(X, y)
    assert len(more.search_results_["reward"]) == 4
    np.testing.assert_array_equal(more.search_results_["reward"][:2],
                                  first.search_results_["reward"])


def test_every_fitted_attribute_comes_from_the_last_fit(blobs, tiny):
    """A later fit without an ensemble keeps nothing of an earlier fit's ensemble."""
    X, y = blobs
    params = {**tiny, "samples_per_epoch": 3, "cv": 2, "n_finalists": 3, "finalist_epochs": 2}
    clf = MLPNASClassifier(**params).fit(X, y)
    assert np.isfinite(clf.ensemble_score_) and np.isfinite(clf.ensemble_cv_score_)
    clf.set_params(ensemble_size=0).fit(X, y)
    assert np.isnan(clf.ensemble_score_) and np.isnan(clf.ensemble_cv_score_)
    assert clf.ensemble_weights_ == {}
    clf.set_params(cv=None).fit(X, y)
    assert clf.cv_time_ == 0 and np.isnan(clf.search_results_["cv_score"]).all()


def test_parameter_validation_keeps_the_earlier_fit_and_a_later_failure_does_not(blobs, tiny):
    """As the fit docstring says: a refused parameter leaves the earlier fit; later errors none."""
    X, y = blobs
    clf = MLPNASClassifier(**tiny).fit(X, y)
    fitted = _fitted_attributes(clf)
    with pytest.raises(ValueError, match="epochs"):
        clf.set_params(epochs=0).fit(X, y)           # refused before any work
    assert _fitted_attributes(clf) == fitted
    clf.set_params(epochs=2)
    with pytest.raises(ValueError, match="ensemble_size"):
        clf.set_params(ensemble_size=3).fit(X, y)    # cv=None: refused once fit has begun
    assert _fitted_attributes(clf) == []
    with pytest.raises(NotFittedError):
        check_is_fitted(clf)
    assert "left unfitted" in MLPNASClassifier.fit.__doc__
    assert "earlier fit stays" in MLPNASClassifier.fit.__doc__


def test_a_failed_candidate_too_large_to_count_loses_nothing(blobs):
    """2**40-unit candidates fail and are recorded; the parameter count does not overflow."""
    X, y = blobs
    clf = MLPNASClassifier(space=SearchSpace(units=(4, 2**40), activations=("relu",)),
                           controller_epochs=1, samples_per_epoch=4, epochs=1,
                           strategy=Reinforce(train_steps=1, lstm_units=8), random_state=0,
                           cv=None).fit(X, y)
    res = pd.DataFrame(clf.search_results_)
    assert (res["status"] == "failed").any() and (res["status"] == "ok").any()
    assert res.loc[res["status"] == "failed", "n_params"].min() > 2**40
    assert "MemoryError" in res.loc[res["status"] == "failed", "message"].iloc[0]
    clf.top_architectures(3)


@pytest.mark.parametrize("n_rows", [3, 4, 6, 8])
def test_the_regressor_never_reports_an_r2_of_a_constant_target(n_rows):
    """Tiny tables: every R^2 reported is finite and sane, or NaN; never about -1e12."""
    rng = np.random.default_rng(n_rows)
    X = rng.normal(size=(n_rows, 3))
    y = X[:, 0] + rng.normal(size=n_rows)
    reg = MLPNASRegressor(controller_epochs=1, samples_per_epoch=2, epochs=2,
                          strategy=Reinforce(train_steps=1, lstm_units=8),
                          space=SearchSpace(units=(4,), activations=("relu",)),
                          random_state=0).fit(X, y)
    assert reg.n_validation_ >= 2
    scores = np.concatenate([reg.search_results_["reward"], reg.search_results_["cv_score"],
                             [reg.best_score_]])
    finite = scores[np.isfinite(scores)]
    assert finite.size and finite.min() > -1e3, scores
    assert np.isfinite(reg.best_score_)


def test_the_regressor_refuses_too_few_rows_and_redraws_a_constant_holdout():
    with pytest.raises(ValueError, match="needs at least 3 rows"):
        MLPNASRegressor().fit(np.zeros((2, 2)), [0.0, 1.0])
    X = np.arange(20.0).reshape(10, 2)
    y = np.r_[np.zeros(9), 1.0]  # nine equal values: most two-row holdouts are constant
    reg = MLPNASRegressor(controller_epochs=1, samples_per_epoch=1, epochs=1, cv=None)
    for seed in range(4):  # a split that can score candidates is drawn, whatever the seed
        data = reg.set_params(random_state=seed)._split(X, y[:, None], np.ones(10), seed)
        assert np.ptp(data.y_val) > 0
    reg._split_attempts = 1
    with pytest.raises(ValueError, match="held a constant target"):
        reg._split(X, y[:, None], np.ones(10), 0)
    with pytest.raises(ValueError, match=r"cv=5 folds need at least 10 rows \(two held out"):
        MLPNASRegressor(cv=5).fit(np.arange(16.0).reshape(8, 2), np.arange(8.0))
