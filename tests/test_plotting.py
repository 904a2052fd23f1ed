"""The Display objects draw what the search recorded (Agg backend, PNG output)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402

from sknas import (ControllerHistoryDisplay, MLPNASClassifier, PredictorDisplay,  # noqa: E402
                   RewardDistributionDisplay, RewardHistoryDisplay)

from conftest import TINY  # noqa: E402


@pytest.fixture(scope="module")
def fitted():
    from sklearn.datasets import load_iris
    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    params = dict(TINY, controller_epochs=2, samples_per_epoch=3)
    return MLPNASClassifier(**params).fit(X, y)


@pytest.fixture
def results():
    """A hand-made table: 2 controller epochs, one failed candidate."""
    return {"reward": np.array([0.5, 0.7, np.nan, 0.6, 0.9]),
            "predicted_reward": np.array([0.4, 0.6, 0.5, np.nan, 0.8]),
            "controller_epoch": np.array([0, 0, 1, 1, 1]),
            "status": np.array(["ok", "ok", "failed", "ok", "ok"], dtype=object)}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _png(display, tmp_path, name):
    path = tmp_path / f"{name}.png"
    display.figure_.savefig(path)
    assert path.stat().st_size > 1000
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_reward_history_draws_points_running_best_boundaries_and_failures(results, tmp_path):
    disp = RewardHistoryDisplay.from_results(results)
    assert isinstance(disp.points_, PathCollection)
    assert disp.points_.get_offsets().shape == (4, 2)
    np.testing.assert_allclose(disp.best_line_.get_ydata(), [0.5, 0.7, 0.7, 0.7, 0.9])
    assert [line.get_xdata()[0] for line in disp.boundary_lines_] == [1.5]
    np.testing.assert_allclose(disp.failed_.get_offsets(), [[2, 0]])
    assert disp.ax_.get_title() == "Reward over the search"
    _png(disp, tmp_path, "history")


def test_reward_history_from_estimator_matches_search_results(fitted, tmp_path):
    disp = RewardHistoryDisplay.from_estimator(fitted)
    rewards = fitted.search_results_["reward"]
    np.testing.assert_allclose(disp.points_.get_offsets()[:, 1], rewards)
    # the running best reward ends at the best reward (best_score_ is the winner's
    # cross-validated score when finalists are cross-validated)
    assert disp.best_line_.get_ydata()[-1] == pytest.approx(np.nanmax(rewards))
    assert len(disp.boundary_lines_) == 1
    assert disp.failed_ is None
    _png(disp, tmp_path, "history_est")


def test_plot_on_given_axes_returns_self(results):
    fig, ax = plt.subplots()
    disp = RewardHistoryDisplay(results["reward"], results["controller_epoch"], results["status"])
    assert disp.plot(ax=ax) is disp
    assert disp.ax_ is ax and disp.figure_ is fig


def test_reward_distribution_counts_only_successful_rewards(results, tmp_path):
    disp = RewardDistributionDisplay.from_results(pd.DataFrame(results), bins=4)
    assert len(disp.bars_) == 4
    assert disp.counts_.sum() == 4
    assert [b.get_height() for b in disp.bars_] == list(disp.counts_)
    assert disp.best_line_.get_xdata()[0] == pytest.approx(0.9)
    assert "4 candidates" in disp.ax_.get_title()
    _png(disp, tmp_path, "dist")


def test_reward_distribution_from_estimator(fitted, tmp_path):
    disp = RewardDistributionDisplay.from_estimator(fitted, bins=5)
    assert disp.counts_.sum() == len(fitted.search_results_["reward"])
    _png(disp, tmp_path, "dist_est")


def test_predictor_skips_nan_and_reports_correlation(results, tmp_path):
    disp = PredictorDisplay.from_results(results)
    # the failed one and the one without prediction are left out
    assert disp.n_missing_ == 2
    offsets = disp.points_.get_offsets()
    np.testing.assert_allclose(offsets, [[0.5, 0.4], [0.7, 0.6], [0.9, 0.8]])
    assert disp.correlation_ == pytest.approx(1.0)
    assert "Pearson r = 1.000" in disp.ax_.get_title()
    x, y = disp.diagonal_line_.get_data()
    np.testing.assert_allclose(x, y)
    _png(disp, tmp_path, "pred")


def test_predictor_without_predictions_says_so():
    disp = PredictorDisplay([np.nan, np.nan], [0.5, 0.6]).plot()
    assert np.isnan(disp.correlation_)
    assert "r = n/a" in disp.ax_.get_title()
    assert disp.points_.get_offsets().shape[0] == 0


def test_predictor_from_estimator_uses_recorded_predictions(fitted, tmp_path):
    disp = PredictorDisplay.from_estimator(fitted)
    r = fitted.search_results_
    expected = np.corrcoef(r["predicted_reward"], r["reward"])[0, 1]
    assert disp.correlation_ == pytest.approx(expected)
    _png(disp, tmp_path, "pred_est")


def test_controller_history_has_one_subplot_per_metric(fitted, tmp_path):
    disp = ControllerHistoryDisplay.from_estimator(fitted)
    assert [a.get_title() for a in disp.axes_] == ["loss", "baseline", "entropy", "mean reward"]
    h = fitted.controller_history_
    for name in ("loss", "baseline", "entropy", "mean_reward"):
        np.testing.assert_allclose(disp.lines_[name].get_ydata(), h[name])
        np.testing.assert_allclose(disp.lines_[name].get_xdata(), [1, 2])
    _png(disp, tmp_path, "controller")


def test_controller_history_marks_unrecorded_metrics_and_checks_axes():
    history = pd.DataFrame({"loss": [np.nan, np.nan], "mean_reward": [0.5, 0.6]})
    disp = ControllerHistoryDisplay.from_history(history)
    assert "loss" not in disp.lines_ and "baseline" not in disp.lines_
    assert disp.axes_[0].texts[0].get_text() == "not recorded"
    np.testing.assert_allclose(disp.lines_["mean_reward"].get_ydata(), [0.5, 0.6])
    _, axes = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="4 axes"):
        ControllerHistoryDisplay(history).plot(ax=axes)


def test_unfitted_estimator_is_refused():
    with pytest.raises(ValueError, match="not fitted"):
        RewardHistoryDisplay.from_estimator(MLPNASClassifier())
