"""The estimator's contract around fit: tags per configuration, nothing half
fitted after a failure, failed rows never best, resume parameters checked."""

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

from sknas import MLPNASClassifier

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _fitted_attributes(est):
    return sorted(k for k in vars(est) if k.endswith("_") and not k.startswith("_"))


def test_non_deterministic_tag_follows_the_trainer():
    assert get_tags(MLPNASClassifier()).non_deterministic is False
    assert get_tags(MLPNASClassifier(trainer="population")).non_deterministic is False
    assert get_tags(MLPNASClassifier(trainer="keras")).non_deterministic is True


def test_a_fit_where_every_candidate_fails_leaves_nothing_fitted(tmp_path, blobs, tiny):
    X, y = blobs
    clf = MLPNASClassifier(**tiny).fit(X, y)          # an earlier, successful fit
    assert "classes_" in _fitted_attributes(clf)
    # 'exponential' layers overflow on features scaled by 1000: every loss is NaN
    clf.set_params(activations=("exponential",), log_dir=tmp_path)
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
    tiny.update(activations=("tanh", "exponential"), controller_epochs=2, samples_per_epoch=4,
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
