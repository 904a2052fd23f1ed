"""Predictor screening (``screen_factor``) and the predictor's per-epoch rank correlation."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from sknas import (MLPNASClassifier, PredictorDisplay, RandomSearch, Reinforce, SearchSpace,
                   load_run)
from sknas._controller import Controller
from sknas._search import SCREEN_EXPLORE_SHARE, screen

#: A tiny search that still has several candidates per controller epoch to rank.
SMALL = dict(controller_epochs=3, samples_per_epoch=5, epochs=2, random_state=0, cv=None)


def small(**strategy):
    """The tiny search's parameters (new space and strategy objects each call), with
    ``strategy``, parameters of its ``Reinforce`` (``screen_factor``, ``use_predictor``...)."""
    return dict(SMALL, space=SearchSpace(units=(4, 8, 16), activations=("relu", "tanh")),
                strategy=Reinforce(train_steps=2, lstm_units=8, **strategy))


@pytest.fixture(scope="module")
def data():
    from sklearn.datasets import make_classification
    X, y = make_classification(n_samples=200, n_features=6, n_informative=4, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def recorded(data):
    """A screened search (screen_factor=3) and, per controller epoch, what the
    controller sampled and predicted and what its update was given, with the
    controller as it was just before that update (recorded by wrapping
    ``Controller.sample`` and ``Controller.update``)."""
    X, y = data
    seen, updates = [], []
    original, original_update = Controller.sample, Controller.update

    def recording(self, n, rng, exclude=()):
        archs, predicted = original(self, n, rng, exclude)
        seen.append((list(archs), list(predicted)))
        return archs, predicted

    def recording_update(self, archs, rewards, failed=None, sample_weight=None):
        before = pickle.dumps(self)
        masks = dict(self._sampled_masks)  # what pickling leaves out: the draws' masks
        info = original_update(self, archs, rewards, failed=failed, sample_weight=sample_weight)
        updates.append(dict(archs=list(archs), rewards=np.array(rewards), failed=failed,
                            sample_weight=sample_weight, before=before, masks=masks,
                            after=self.get_state()))
        return info

    Controller.sample, Controller.update = recording, recording_update
    try:
        clf = MLPNASClassifier(**small(screen_factor=3)).fit(X, y)
    finally:
        Controller.sample, Controller.update = original, original_update
    return clf, seen, updates


@pytest.fixture(scope="module")
def sampled(recorded):
    """The screened search and, per controller epoch, what the controller sampled."""
    clf, seen, _ = recorded
    return clf, seen


def test_spearman_column_is_scipys_over_each_epochs_successful_candidates(sampled):
    clf, _ = sampled
    res, hist = clf.search_results_, clf.controller_history_
    assert "predictor_spearman" in hist and len(hist["predictor_spearman"]) == 3
    for e, rho in zip(hist["controller_epoch"], hist["predictor_spearman"]):
        rows = (res["controller_epoch"] == e) & (res["status"] == "ok")
        expected = spearmanr(res["predicted_reward"][rows], res["reward"][rows]).statistic
        assert rho == pytest.approx(expected, nan_ok=True)
    assert np.isfinite(hist["predictor_spearman"][1:]).all()


def test_screening_trains_the_top_predicted_and_an_exploration_share(sampled):
    clf, seen = sampled
    res, hist = clf.search_results_, clf.controller_history_
    n = SMALL["samples_per_epoch"]
    n_explore = max(1, round(SCREEN_EXPLORE_SHARE * n))
    assert len(seen) == 3
    for e, (archs, predicted) in enumerate(seen):
        assert len(archs) == 3 * n == len(set(archs))       # 15 distinct architectures
        rows = np.flatnonzero(res["controller_epoch"] == e)
        assert len(rows) == n and hist["n_screened"][e] == 2 * n
        space = clf.controller_.space
        trained = [archs.index(space.encode(layers)) for layers in res["layers"][rows]]
        order = np.argsort(-np.asarray(predicted), kind="stable")
        top = set(order[:n - n_explore].tolist())
        assert top <= set(trained)                         # the predictor's best are trained
        assert len(set(trained) - top) == n_explore        # and the exploration share
        np.testing.assert_allclose(res["predicted_reward"][rows],
                                   [predicted[k] for k in sorted(trained)])


def test_the_policy_update_weighs_each_trained_candidate_by_its_screening_weight(recorded):
    """Guards against the screening's inverse inclusion probabilities not reaching the
    controller's policy-gradient update (its baseline, advantages and loss)."""
    clf, seen, updates = recorded
    n = SMALL["samples_per_epoch"]
    n_explore = max(1, round(SCREEN_EXPLORE_SHARE * n))
    n_top = n - n_explore
    assert len(updates) == 3
    baseline, decay = None, clf.strategy.baseline_decay
    for e, ((archs, predicted), update) in enumerate(zip(seen, updates)):
        # each trained candidate's weight: 1 for a predictor's top pick, (sampled - top
        # picks) / exploration picks for an exploration pick (they sum to the 15 sampled)
        assert update["sample_weight"] is not None
        weight = np.asarray(update["sample_weight"], float)
        top = {archs[k] for k in np.argsort(-np.asarray(predicted), kind="stable")[:n_top]}
        expected = [1.0 if a in top else (3 * n - n_top) / n_explore for a in update["archs"]]
        np.testing.assert_allclose(weight, expected)
        assert weight.sum() == pytest.approx(3 * n)
        # the moving-average baseline follows the weighted mean reward of each epoch
        r = np.where(update["failed"], 0.0, update["rewards"])
        if baseline is None:
            baseline = np.average(r, weights=weight)
        assert clf.controller_history_["baseline"][e] == pytest.approx(baseline)
        baseline = decay * baseline + (1 - decay) * np.average(r, weights=weight)
    # replayed from the controller as it was, the update with these weights is the one
    # the search made, and the same update with equal weights moves the policy elsewhere
    update = updates[-1]
    policy = ("var/policy_kernel", "var/policy_bias")

    def replay(sample_weight, **settings):
        controller = pickle.loads(update["before"])
        controller._sampled_masks = update["masks"]
        assert controller.baseline_value is not None  # set by the first epoch
        for name, value in settings.items():
            setattr(controller, name, value)
        controller.update(update["archs"], update["rewards"], failed=update["failed"],
                          sample_weight=sample_weight)
        return [controller.get_state()[name] for name in policy]

    def same(a, b):
        return all(np.allclose(x, z, rtol=1e-6, atol=1e-7) for x, z in zip(a, b))
    searched = [update["after"][name] for name in policy]
    assert same(replay(update["sample_weight"]), searched)
    assert not same(replay(None), searched)
    # the weights act on the policy loss itself, not only on the baseline and the
    # advantages' scale: with those fixed (a set baseline, unscaled advantages), the
    # weighted update still differs from the unweighted one
    unscaled = dict(normalize_advantage=False)
    assert not same(replay(update["sample_weight"], **unscaled), replay(None, **unscaled))


def test_screening_off_keeps_todays_search(data):
    X, y = data
    a = MLPNASClassifier(**small()).fit(X, y)
    b = MLPNASClassifier(**small(screen_factor=1.0)).fit(X, y)
    np.testing.assert_array_equal(a.search_results_["architecture"],
                                  b.search_results_["architecture"])
    np.testing.assert_array_equal(a.search_results_["reward"], b.search_results_["reward"])
    assert (a.controller_history_["n_screened"] == 0).all()


def test_screened_search_is_deterministic_and_resumes(data, tmp_path):
    X, y = data
    params = small(screen_factor=2.5)
    a = MLPNASClassifier(**params).fit(X, y)
    b = MLPNASClassifier(**params, n_jobs=2).fit(X, y)
    np.testing.assert_array_equal(a.search_results_["architecture"],
                                  b.search_results_["architecture"])
    np.testing.assert_array_equal(a.search_results_["reward"], b.search_results_["reward"])
    # a run cut after its first controller epoch, resumed, is the same search
    cut = MLPNASClassifier(**dict(params, controller_epochs=1), log_dir=tmp_path).fit(X, y)
    resumed = MLPNASClassifier(**params, resume=cut.run_dir_).fit(X, y)
    np.testing.assert_array_equal(a.search_results_["architecture"],
                                  resumed.search_results_["architecture"])
    np.testing.assert_allclose(a.search_results_["predicted_reward"],
                               resumed.search_results_["predicted_reward"], rtol=1e-6)
    run = load_run(cut.run_dir_)
    np.testing.assert_allclose(run.history["predictor_spearman"],
                               a.controller_history_["predictor_spearman"], equal_nan=True)
    np.testing.assert_array_equal(run.history["n_screened"], a.controller_history_["n_screened"])


def test_screen_picks_the_top_and_draws_the_rest_uniformly():
    predicted = np.array([0.1, 0.9, 0.5, 0.8, 0.3, 0.7, 0.2, 0.6, 0.4, 0.0])
    counts = np.zeros(10)
    for seed in range(400):
        chosen, weight = screen(predicted, 5, np.random.default_rng(seed))
        assert len(chosen) == 5 and list(chosen) == sorted(chosen)
        assert {1, 3, 5, 7} <= set(chosen)                 # the 4 best predictions
        assert weight.sum() == pytest.approx(10)           # inverse inclusion probabilities
        assert sorted(weight) == [1, 1, 1, 1, 6]
        counts[chosen] += 1
    rest = counts[[0, 2, 4, 6, 8, 9]] / 400
    assert rest.sum() == pytest.approx(1) and rest.min() > 0.1  # each about 1/6
    chosen, weight = screen(predicted, 1, np.random.default_rng(0))
    assert list(chosen) == [1] and list(weight) == [1]     # no room for exploration


@pytest.mark.parametrize("value", [0, 0.5, -1, "3", None])
def test_bad_screen_factor_is_rejected(data, value):
    X, y = data
    with pytest.raises(ValueError, match="'screen_factor' parameter of Reinforce"):
        MLPNASClassifier(**small(screen_factor=value)).fit(X, y)


def test_screen_factor_is_no_estimator_parameter_any_more():
    with pytest.raises(TypeError, match=r"screen_factor: use strategy=Reinforce\(screen_factor="):
        MLPNASClassifier(screen_factor=3)
    with pytest.raises(TypeError, match=r"screen_factor: use strategy=Reinforce\(screen_factor="):
        MLPNASClassifier().set_params(screen_factor=3)
    clf = MLPNASClassifier().set_params(strategy__screen_factor=3)
    assert isinstance(clf.strategy, Reinforce) and clf.strategy.screen_factor == 3


def test_screening_needs_the_predictor_and_fails_before_training(data, tmp_path):
    X, y = data
    with pytest.raises(ValueError, match="screen_factor=2.*use_predictor=False"):
        MLPNASClassifier(**small(screen_factor=2, use_predictor=False), log_dir=tmp_path).fit(X, y)
    assert not any(tmp_path.rglob("trials.jsonl"))            # nothing was trained


def test_random_search_has_no_screening():
    # the random strategy has no predictor to rank with: it has no screen_factor to set
    with pytest.raises(TypeError):
        RandomSearch(screen_factor=2)
    with pytest.raises(ValueError, match="Invalid parameter 'screen_factor'"):
        MLPNASClassifier(strategy="random").set_params(strategy__screen_factor=2)
    assert RandomSearch().get_params() == {} and RandomSearch.screen_factor == 1


def test_no_predictor_gives_nan_spearman(data):
    X, y = data
    clf = MLPNASClassifier(**small(use_predictor=False)).fit(X, y)
    assert np.isnan(clf.controller_history_["predictor_spearman"]).all()


def test_predictor_plot_draws_the_per_epoch_spearman(sampled):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    clf, _ = sampled
    disp = PredictorDisplay.from_estimator(clf)
    hist = clf.controller_history_
    np.testing.assert_allclose([disp.spearman_[e] for e in hist["controller_epoch"]],
                               hist["predictor_spearman"], equal_nan=True)
    np.testing.assert_allclose(disp.spearman_line_.get_ydata(), hist["predictor_spearman"],
                               equal_nan=True)
    assert PredictorDisplay([0.5, 0.6], [0.4, 0.6]).plot().inset_ax_ is None


ROOT = Path(__file__).resolve().parents[1]


def test_cli_screen_factor_reaches_the_estimator(tmp_path):
    from sklearn.datasets import load_iris
    frame = load_iris(as_frame=True).frame
    frame.to_csv(tmp_path / "iris.csv", index=False)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    base = [sys.executable, "-m", "sknas", "search", "iris.csv", "--target", "target",
            "--controller-epochs", "2", "--samples-per-epoch", "3", "--epochs", "2",
            "--controller-train-steps", "1", "--units", "4", "8", "--cv", "none", "-q"]
    proc = subprocess.run([*base, "--screen-factor", "2", "--log-dir", "logs"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = next((tmp_path / "logs").glob("run-*"))
    params = json.loads((run / "params.json").read_text())
    assert params["strategy__screen_factor"] == 2.0 and params["strategy__train_steps"] == 1
    assert params["strategy"] == "Reinforce(screen_factor=2.0, train_steps=1)"
    history = json.loads((run / "controller_history.json").read_text())
    assert [row["n_screened"] for row in history] == [3, 3]
    bad = subprocess.run([*base, "--screen-factor", "0.5"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "screen_factor" in bad.stderr and bad.stdout == ""
