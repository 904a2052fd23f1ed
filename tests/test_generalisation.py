"""Winners that generalise: early stopping with the best epoch restored, the
refit length taken from it, and cross-validated finalists trained side by
side in one population."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.model_selection import KFold
from sklearn.utils._param_validation import InvalidParameterError

from sknas import MLPNASClassifier, MLPNASRegressor, Reinforce, SearchSpace
from sknas._search import Search
from sknas._trainer import CandidateData, PopulationTrainer, initial_weights

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

@pytest.fixture
def tiny(tiny):
    """The tiny budget without its ``cv``: these tests set ``cv`` themselves."""
    tiny.pop("cv", None)
    return tiny


LAYERS = [[{"type": "dense", "units": 64, "activation": "relu"}],
          [{"type": "dense", "units": 8, "activation": "tanh"}, {"type": "dropout", "rate": 0.2}]]


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(500, 10, n_informative=4, n_classes=3, flip_y=0.15,
                               random_state=0)
    X = X.astype(np.float32)
    y = y.astype(np.int32)
    w = np.ones(len(y), np.float32)
    data = CandidateData(X[:400], y[:400], w[:400], X[400:], y[400:], w[400:], 3)
    rng = np.random.default_rng(0)
    candidates = [(lay, initial_weights(lay, 10, 3, rng), 11 + k) for k, lay in enumerate(LAYERS)]
    return data, candidates


def _same(a, b):
    return all(np.array_equal(x, y) for p, q in zip(a, b) for x, y in zip(p, q))


def test_early_stopping_keeps_the_best_epochs_weights(problem):
    data, candidates = problem
    stopped = PopulationTrainer(epochs=40, learning_rate=0.05, early_stopping=True,
                                n_iter_no_change=2).train(candidates, data, 0)
    for cand, res in zip(candidates, stopped):
        assert res.status == "ok"
        assert 1 <= res.best_epoch < len(res.val_scores) < 40      # it stopped early
        assert len(res.val_scores) - res.best_epoch == 2           # after 2 epochs without gain
        # the weights are those of the best epoch: training that many epochs gives them
        plain = PopulationTrainer(epochs=res.best_epoch, learning_rate=0.05).train(
            [cand], data, 0)[0]
        assert _same(res.weights, plain.weights)
        assert plain.val_scores == res.val_scores[:res.best_epoch]


def test_early_stopping_is_per_candidate(problem):
    data, candidates = problem
    trainer = PopulationTrainer(epochs=40, learning_rate=0.05, early_stopping=True,
                                n_iter_no_change=2)
    together = trainer.train(candidates, data, 0)
    for k, cand in enumerate(candidates):
        alone = trainer.train([cand], data, 0)[0]
        assert _same(alone.weights, together[k].weights)
        assert alone.val_scores == together[k].val_scores
        assert alone.best_epoch == together[k].best_epoch


def test_per_candidate_row_weights_leave_zero_weight_rows_out(problem):
    data, candidates = problem
    full = CandidateData(np.vstack([data.X, data.X_val]), np.concatenate([data.y, data.y_val]),
                         np.ones(500, np.float32), np.vstack([data.X, data.X_val]),
                         np.concatenate([data.y, data.y_val]), np.ones(500, np.float32), 3)
    fold = np.arange(500) % 3
    weights = [((fold == 0).astype(np.float32), (fold == 1).astype(np.float32)),
               ((fold == 1).astype(np.float32), (fold == 0).astype(np.float32))]
    cand = candidates[0]

    def train(group):
        y2 = full.y.copy()
        y2[fold == group] = (y2[fold == group] + 1) % 3   # other labels on one group
        changed = CandidateData(full.X, y2, full.w, full.X_val, y2, full.w_val, 3)
        return PopulationTrainer(epochs=3).train([cand, cand], changed, 0, weights)

    first = PopulationTrainer(epochs=3).train([cand, cand], full, 0, weights)
    # rows that no net trains or scores on (group 2) change nothing
    second = train(2)
    for k in range(2):
        assert _same(first[k].weights, second[k].weights)
        assert first[k].val_scores == second[k].val_scores
    # group 1: net 1 trains on it, net 0 only scores on it
    third = train(1)
    assert not _same(first[1].weights, third[1].weights)
    assert _same(first[0].weights, third[0].weights)
    assert first[0].val_scores != third[0].val_scores


@pytest.fixture(scope="module")
def small():
    X, y = make_classification(240, 6, n_informative=3, n_classes=2, random_state=1)
    return (X - X.mean(0)) / X.std(0), y


def test_finalists_are_cross_validated_and_the_best_wins(small, tiny):
    X, y = small
    clf = MLPNASClassifier(**{**tiny, "controller_epochs": 2, "samples_per_epoch": 4},
                           n_finalists=3, cv=4).fit(X, y)
    res = pd.DataFrame(clf.search_results_)
    finalists = res[res.cv_score.notna()]
    assert len(finalists) == 3
    # the finalists are the three best rewards of the search
    assert set(finalists.index) == set(res.reward.nlargest(3).index)
    splits = finalists[[f"split{j}_score" for j in range(4)]]
    assert "split4_score" not in res
    np.testing.assert_allclose(finalists.cv_score, splits.mean(axis=1))
    np.testing.assert_allclose(finalists.cv_std, splits.std(axis=1, ddof=0))
    winner = finalists.cv_score.idxmax()
    assert clf.best_index_ == winner and res["rank"][winner] == 1
    assert clf.best_score_ == pytest.approx(finalists.cv_score.max())
    assert (res["rank"][finalists.index] <= 3).all() and (res["rank"].drop(finalists.index) > 3).all()
    assert clf.cv_time_ > 0
    assert "cv_score" in clf.top_architectures(3)


def test_cv_none_is_the_tutorials_holdout_choice(small, tiny):
    X, y = small
    clf = MLPNASClassifier(**tiny, cv=None).fit(X, y)
    res = clf.search_results_
    assert np.isnan(res["cv_score"]).all() and "split0_score" not in res
    assert clf.best_score_ == res["reward"].max() and clf.cv_time_ == 0
    assert clf.refit_epochs_ == tiny["epochs"]


def test_auto_cv_applies_to_small_data_only(small, tiny, monkeypatch):
    X, y = small
    clf = MLPNASClassifier(**{**tiny, "cv": "auto"}).fit(X, y)   # 24-row holdout: folds
    # below 1,000 training rows 3 folds, from 1,000 on 5 (for both estimators)
    assert "split2_score" in clf.search_results_ and "split3_score" not in clf.search_results_
    y_999, y_1000 = np.arange(999) % 2, np.arange(1000) % 2
    for est in (MLPNASClassifier(), MLPNASRegressor()):
        assert est._cv_splitter(y_999, 100, 0).get_n_splits() == 3
        assert est._cv_splitter(y_1000, 100, 0).get_n_splits() == 5
    # never more folds than the smallest class has rows
    rare = np.r_[np.zeros(1500, int), [1, 1]]
    assert MLPNASClassifier()._cv_splitter(rare, 100, 0).get_n_splits() == 2
    # a holdout of 1,000 rows or more ranks well enough: no cross-validation, unless the
    # ensemble (the default) needs the finalists' out-of-fold predictions
    y_big = np.arange(20000) % 2
    assert MLPNASClassifier(cv="auto", ensemble_size=0)._cv_splitter(y_big, 1000, 0) is None
    assert MLPNASClassifier(cv="auto")._cv_splitter(y_big, 1000, 0).get_n_splits() == 5


def test_a_splitter_object_is_used_as_given(small, tiny):
    X, y = small
    clf = MLPNASClassifier(**tiny, n_finalists=1, cv=KFold(3)).fit(X, y)
    assert np.isfinite(clf.search_results_["split2_score"]).sum() == 1


def test_the_refit_trains_for_the_epochs_the_curves_chose(small, tiny):
    X, y = small
    params = {**tiny, "epochs": 30, "finalist_epochs": 30, "learning_rate": 0.05,
              "early_stopping": True, "n_iter_no_change": 2}
    clf = MLPNASClassifier(**params, cv=None).fit(X, y)
    assert clf.refit_epochs_ == clf.search_results_["best_epoch"][clf.best_index_] < 30
    cv = MLPNASClassifier(**params, cv=3, n_finalists=2).fit(X, y)
    assert 1 <= cv.refit_epochs_ < 30


def test_too_many_folds_is_a_clear_error_before_training(tiny, monkeypatch):
    def run(self, *args, **kwargs):
        raise AssertionError("the search started")
    monkeypatch.setattr(Search, "run", run)
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.array([0] * 37 + [1] * 3)
    with pytest.raises(ValueError, match="cv=5 folds need at least 5 rows of every class.*3"):
        MLPNASClassifier(**tiny, cv=5).fit(X, y)
    with pytest.raises(ValueError, match="n_finalists"):
        MLPNASClassifier(**tiny, n_finalists=0).fit(X, y)
    with pytest.raises(ValueError, match="n_iter_no_change"):
        MLPNASClassifier(**tiny, n_iter_no_change=0).fit(X, y)


def test_the_regressor_cross_validates_its_finalists(tiny):
    X, y = make_regression(200, 5, noise=5.0, random_state=0)
    reg = MLPNASRegressor(**tiny, cv=3, n_finalists=2, early_stopping=True).fit(X, y)
    res = reg.search_results_
    assert np.isfinite(res["cv_score"]).sum() == 2
    assert reg.best_score_ == pytest.approx(np.nanmax(res["cv_score"]))
    assert reg.score(X, y) > 0


@pytest.mark.parametrize("refit", ["folds", True])
def test_an_ensemble_averages_its_members_with_the_selected_weights(small, tiny, tmp_path, refit):
    import joblib
    import keras

    from sknas import load_model
    X, y = small
    clf = MLPNASClassifier(**{**tiny, "controller_epochs": 2, "samples_per_epoch": 4},
                           cv=3, n_finalists=4, ensemble_size=7, refit=refit).fit(X, y)
    assert clf.refit_ == refit
    res = pd.DataFrame(clf.search_results_)
    weights = res.ensemble_weight[res.ensemble_weight > 0]
    assert weights.sum() == pytest.approx(1.0)
    assert np.allclose(weights * 7, np.round(weights * 7))           # picks out of 7
    assert res.cv_score[weights.index].notna().all()                  # members are finalists
    assert clf.ensemble_weights_ == pytest.approx(weights.to_dict())
    assert 0 <= clf.ensemble_score_ <= 1
    scales = sorted(lyr.scale for lyr in clf.model_.layers
                    if isinstance(lyr, keras.layers.Rescaling))
    if refit == "folds":  # each member's 3 fold models, a third of its weight each
        np.testing.assert_allclose(scales, sorted(np.repeat(weights / 3, 3)), rtol=1e-6)
    elif len(weights) > 1:
        np.testing.assert_allclose(scales, sorted(weights))
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    # wherever a single winner goes, the ensemble goes: joblib, save_model, export
    joblib.dump(clf, tmp_path / "clf.joblib")
    np.testing.assert_allclose(joblib.load(tmp_path / "clf.joblib").predict_proba(X), proba,
                               rtol=1e-6)
    np.testing.assert_allclose(load_model(clf.save_model(tmp_path / "saved")).predict_proba(X),
                               proba, rtol=1e-6)
    exported = keras.models.load_model(clf.export_model(tmp_path / "m.keras"))
    np.testing.assert_allclose(np.asarray(exported(X.astype(np.float32)))[:, 0], proba[:, 1],
                               rtol=1e-5, atol=1e-6)
    assert "ensemble_weight" in clf.top_architectures(5)


class _PicksTheWorstFinalist(MLPNASClassifier):
    """Its ensemble selection spends every pick on the finalist with the
    lowest cross-validated score: one member, and not the winner."""

    def _select_ensemble(self, search, oof, y, w, held=()):
        worst = min(oof, key=lambda i: np.mean(search.trials[i].cv_scores))
        for i in oof:
            search.trials[i].ensemble_weight = float(i == worst)
        self.ensemble_score_ = self._oof_score(oof[worst], y, w)


@pytest.mark.parametrize("refit", ["folds", True])
def test_a_single_pick_that_is_not_the_winner_is_what_is_served(small, tiny, refit):
    import keras

    from sknas._cli import _served_label
    X, y = small
    clf = _PicksTheWorstFinalist(**{**tiny, "controller_epochs": 2, "samples_per_epoch": 4},
                                 cv=3, n_finalists=3, ensemble_size=2, refit=refit).fit(X, y)
    (picked,) = clf.ensemble_weights_
    assert picked != clf.best_index_ and clf.ensemble_weights_[picked] == 1.0

    def dense(layers):
        return [(lyr["units"], lyr["activation"]) for lyr in layers if lyr["type"] == "dense"]
    assert dense(clf.search_results_["layers"][picked]) != dense(clf.best_layers_)
    nets = [lyr for lyr in clf.model_.layers if hasattr(lyr, "layers")]
    assert len(nets) == (3 if refit == "folds" else 1)
    for net in nets:  # the picked finalist's architecture, not the winner's
        assert [(lyr.units, lyr.activation.__name__) for lyr in net.layers
                if isinstance(lyr, keras.layers.Dense)][:-1] == dense(
                    clf.search_results_["layers"][picked])
    assert _served_label(clf) == ("ensemble's fold models" if refit == "folds"
                                  else "refit ensemble")


def test_the_command_line_names_what_is_served():
    from types import SimpleNamespace

    from sknas._cli import _served_label

    def label(members, refit):
        return _served_label(SimpleNamespace(ensemble_weights_=members, best_index_=0,
                                             refit_=refit))
    assert label({}, "folds") == "winner's fold models"
    assert label({0: 1.0}, "folds") == "winner's fold models"
    assert label({2: 1.0}, "folds") == "ensemble's fold models"
    assert label({0: 0.5, 2: 0.5}, "folds") == "ensemble's fold models"
    assert label({}, True) == "refit winner"
    assert label({0: 1.0}, True) == "refit winner"
    assert label({2: 1.0}, True) == "refit ensemble"
    assert label({0: 0.5, 2: 0.5}, True) == "refit ensemble"


def test_ensemble_parameters_are_checked_before_training(tiny, monkeypatch):
    from sklearn.utils._param_validation import InvalidParameterError

    def run(self, *args, **kwargs):
        raise AssertionError("the search started")
    monkeypatch.setattr(Search, "run", run)
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = np.arange(40) % 2
    for bad in (-1, 2.5, "3"):
        with pytest.raises(InvalidParameterError, match="ensemble_size"):
            MLPNASClassifier(**tiny, ensemble_size=bad).fit(X, y)
    for bad in (0, -3, 2.5, "long"):
        with pytest.raises(InvalidParameterError, match="finalist_epochs"):
            MLPNASClassifier(**tiny, finalist_epochs=bad).fit(X, y)
    # the finalists' batch size is no parameter any more (a subclass's _finalist_batch_size)
    for bad in (0, 20, "auto"):
        with pytest.raises(TypeError, match="finalist_batch_size: .* _finalist_batch_size"):
            MLPNASRegressor(**tiny, finalist_batch_size=bad)
    with pytest.raises(ValueError, match="ensemble_size > 0 .* set cv"):
        MLPNASClassifier(**tiny, ensemble_size=3, cv=None).fit(X, y)
    with pytest.raises(ValueError, match="ensemble_size > 0 .* needs refit="):
        MLPNASClassifier(**tiny, ensemble_size=3, cv=3, refit=False).fit(X, y)
    with pytest.raises(ValueError, match="refit='folds' .* set cv"):
        MLPNASClassifier(**tiny, ensemble_size=0, cv=None, refit="folds").fit(X, y)
    for bad in ("fold", "all", 1.5):
        with pytest.raises(InvalidParameterError, match="refit"):
            MLPNASClassifier(**tiny, refit=bad).fit(X, y)


def test_auto_ensemble_size_is_an_ensemble_of_ten_picks(tiny):
    from sknas import MLPNASRegressor
    X = np.random.default_rng(0).normal(size=(120, 3))
    y = X[:, 0] - X[:, 1] ** 2
    budget = dict(tiny, samples_per_epoch=4, epochs=4, cv=3, n_finalists=3)
    reg = MLPNASRegressor(**budget).fit(X, y)
    assert reg.get_params()["ensemble_size"] == "auto"
    weights = reg.search_results_["ensemble_weight"]
    assert weights.sum() == pytest.approx(1.0) and hasattr(reg, "ensemble_score_")
    assert dict(reg.ensemble_weights_) == {i: w for i, w in enumerate(weights) if w > 0}
    assert np.allclose(weights * 10, np.round(weights * 10))         # picks out of 10
    clf = MLPNASClassifier(**budget).fit(X, y > np.median(y))
    weights = clf.search_results_["ensemble_weight"]
    assert weights.sum() == pytest.approx(1.0) and np.allclose(weights * 10, np.round(weights * 10))
    # 'auto' without cross-validated finalists or without a refit: the single winner
    for params in (dict(cv=None), dict(refit=False)):
        single = MLPNASRegressor(**dict(budget, **params)).fit(X, y)
        assert not single.ensemble_weights_


def _bare_search(n_trials):
    """What ``_select_ensemble`` uses of a search: its trials (their ensemble weights)
    and a silent reporter."""
    from types import SimpleNamespace

    from sknas._reporting import Reporter
    return SimpleNamespace(trials=[SimpleNamespace(ensemble_weight=0.0) for _ in range(n_trials)],
                           reporter=Reporter(0))


def test_greedy_selection_adds_the_finalist_that_lowers_the_log_loss_most():
    """Guards against the greedy ensemble selection picking the finalist whose
    addition raises the loss most (argmax for argmin) instead of lowers it."""
    from sklearn.metrics import accuracy_score
    n, k = 100, 3
    y = np.arange(n) % k
    first, second = np.arange(n) < n // 2, np.arange(n) >= n // 2

    def proba(p_true):  # probability p_true on each row's class, the rest shared out
        out = np.repeat(((1 - p_true) / (k - 1))[:, None], k, axis=1)
        out[np.arange(n), y] = p_true
        return out
    # by trial index, in the finalists' rank order: A is the best alone (log loss 0.65),
    # B nearly as good but right where A is unsure, C poor everywhere (0.92)
    a = proba(np.where(first, 0.9, 0.3))
    b = proba(np.where(second, 0.85, 0.3))
    c = proba(np.full(n, 0.4))
    oof = {4: c, 1: a, 7: b}
    search = _bare_search(8)
    clf = MLPNASClassifier(ensemble_size=2)
    clf._select_ensemble(search, oof, y, np.ones(n))
    # first the best alone (A), then the one that most improves on A alone (B, not A again)
    weights = {i: search.trials[i].ensemble_weight for i in oof}
    assert weights == {1: 0.5, 7: 0.5, 4: 0.0}
    assert clf.ensemble_score_ == pytest.approx(accuracy_score(y, (a + b).argmax(axis=1)))
    # more picks: C never helps, A and B keep sharing the picks
    clf.set_params(ensemble_size=6)._select_ensemble(search, oof, y, np.ones(n))
    assert search.trials[4].ensemble_weight == 0.0
    assert search.trials[1].ensemble_weight + search.trials[7].ensemble_weight == pytest.approx(1)


def test_greedy_selection_of_the_regressor_lowers_the_squared_error():
    """Guards against the regressor's greedy ensemble selection picking the finalist
    whose addition raises the squared error most (argmax for argmin)."""
    from sklearn.metrics import r2_score
    rng = np.random.default_rng(0)
    y = rng.normal(size=(200, 1))
    good = y + 0.3 * rng.normal(size=y.shape)      # squared error about 0.09
    other = y + 0.35 * rng.normal(size=y.shape)    # about 0.12, its errors independent
    bad = y + 2.0 * rng.normal(size=y.shape)       # about 4
    oof = {0: bad, 1: other, 2: good}
    search = _bare_search(3)
    reg = MLPNASRegressor(ensemble_size=2)
    reg._select_ensemble(search, oof, y, np.ones(len(y)))
    # averaging two independent errors beats the best alone twice over
    assert [t.ensemble_weight for t in search.trials] == [0.0, 0.5, 0.5]
    assert reg.ensemble_score_ == pytest.approx(r2_score(y, (good + other) / 2))


def test_a_fitted_ensemble_holds_the_best_finalist_by_out_of_fold_loss(tiny, monkeypatch):
    """Guards against greedy selection that never adds the finalist with the lowest
    out-of-fold loss (the first pick of a greedy selection) in a real fit."""
    from sknas._base import BaseMLPNAS
    selected = []
    select = BaseMLPNAS._select_ensemble

    def select_spy(self, search, oof, y, w, *args, **kwargs):
        selected.append((dict(oof), y, w))
        return select(self, search, oof, y, w, *args, **kwargs)
    monkeypatch.setattr(BaseMLPNAS, "_select_ensemble", select_spy)
    X, y = make_regression(150, 4, noise=10.0, random_state=2)
    reg = MLPNASRegressor(**{**tiny, "samples_per_epoch": 4}, cv=3, n_finalists=4,
                          ensemble_size=3).fit(X, y)
    (oof, y_sel, w_sel), = selected
    assert len(oof) == 4
    losses = {i: reg._oof_loss(pred, y_sel, w_sel) for i, pred in oof.items()}
    best, worst = min(losses, key=losses.get), max(losses, key=losses.get)
    weights = reg.search_results_["ensemble_weight"]
    assert weights[best] > 0 and reg.ensemble_weights_[best] == weights[best]
    assert losses[worst] > losses[best] and weights[worst] < 1.0


def test_a_run_folder_keeps_the_finalists_and_the_ensemble(small, tiny, tmp_path):
    from sknas import load_run
    X, y = small
    clf = MLPNASClassifier(**{**tiny, "samples_per_epoch": 4}, cv=3, n_finalists=3,
                           ensemble_size=4, log_dir=tmp_path).fit(X, y)
    run = load_run(clf.run_dir_)
    results = pd.DataFrame(run.results)
    np.testing.assert_allclose(results.cv_score, clf.search_results_["cv_score"])
    np.testing.assert_allclose(results.ensemble_weight, clf.search_results_["ensemble_weight"])
    np.testing.assert_allclose(run.load_model()(X.astype(np.float32)).numpy()[:, 0],
                               clf.predict_proba(X)[:, 1], rtol=1e-5, atol=1e-6)


def test_the_command_line_serves_an_ensemble(tmp_path):
    import subprocess
    import sys
    out = subprocess.run(
        [sys.executable, "-m", "sknas", "search", "--controller-epochs", "1",
         "--samples-per-epoch", "3", "--epochs", "2", "--controller-train-steps", "1",
         "--units", "4", "8", "--activations", "relu", "tanh", "--cv", "3",
         "--n-finalists", "3", "--finalist-epochs", "4", "--ensemble-size", "4",
         "--early-stopping"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "(cross-validated score 0." in out.stdout
    assert "cv_score" in out.stdout and "ensemble_weight" in out.stdout
    assert "held-out test accuracy of the ensemble's fold models: " in out.stdout or (
        "held-out test accuracy of the winner's fold models: " in out.stdout)  # one pick won all
    assert ", assembling the fold models " in out.stdout
    accuracy = float(out.stdout.split("held-out test accuracy of the ")[1].split(": ")[1]
                     .split()[0])
    majority = float(out.stdout.split("(majority class: ")[1].split(")")[0])
    assert accuracy > majority
    bad = subprocess.run([sys.executable, "-m", "sknas", "search", "--cv", "many"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and "--cv" in bad.stderr


def test_the_command_line_sets_the_finalists_epochs(capsys):
    from sknas._cli import _estimator_params, _parser
    flag, name = "--finalist-epochs", "finalist_epochs"
    for text, value in (("4", 4), ("none", None), ("auto", "auto")):
        args = _parser().parse_args(["search", flag, text])
        assert _estimator_params(args)[name] == value
    assert name not in _estimator_params(_parser().parse_args(["search"]))
    with pytest.raises(SystemExit):
        _parser().parse_args(["search", flag, "many"])
    assert flag in capsys.readouterr().err
    # the finalists train on the search's batches: --finalist-batch-size is gone
    with pytest.raises(SystemExit):
        _parser().parse_args(["search", "--finalist-batch-size", "64"])
    assert "unrecognized arguments: --finalist-batch-size" in capsys.readouterr().err
    for text, value in (("64", 64), ("auto", "auto")):
        assert _estimator_params(_parser().parse_args(["search", "--batch-size", text]))[
            "batch_size"] == value
    assert "batch_size" not in _estimator_params(_parser().parse_args(["search"]))
    for text in ("none", "large"):
        with pytest.raises(SystemExit):
            _parser().parse_args(["search", "--batch-size", text])
        assert "--batch-size" in capsys.readouterr().err
    assert _estimator_params(_parser().parse_args(
        ["search", "--validation-fraction", "0.25"]))["validation_fraction"] == 0.25
    assert "validation_fraction" not in _estimator_params(_parser().parse_args(["search"]))
    for text in ("quarter", "auto"):  # 'auto' was a quarter of small tables until 2026-12-06
        with pytest.raises(SystemExit):
            _parser().parse_args(["search", "--validation-fraction", text])
        assert f"invalid float value: '{text}'" in capsys.readouterr().err
    for text, value in (("all", True), ("folds", "folds"), ("auto", "auto")):
        args = _parser().parse_args(["search", "--refit", text])
        assert _estimator_params(args)["refit"] == value
    assert "refit" not in _estimator_params(_parser().parse_args(["search"]))
    with pytest.raises(SystemExit):
        _parser().parse_args(["search", "--refit", "none"])
    assert "--refit" in capsys.readouterr().err


def test_a_regressor_ensemble_predicts_in_original_units(tiny, tmp_path):
    import keras
    X, y = make_regression(200, 5, noise=5.0, random_state=1)
    y = 1000 + 100 * y / y.std()
    reg = MLPNASRegressor(**{**tiny, "samples_per_epoch": 4}, cv=3, n_finalists=3,
                          ensemble_size=6).fit(X, y)
    assert sum(reg.ensemble_weights_.values()) == pytest.approx(1.0)
    pred = reg.predict(X)
    assert pred.shape == (200,) and abs(pred.mean() - 1000) < 100
    exported = keras.models.load_model(reg.export_model(tmp_path / "reg.keras"))
    np.testing.assert_allclose(np.asarray(exported(X.astype(np.float32)))[:, 0], pred, rtol=1e-5)


#: The tutorial's constants (docs/algorithm.rst, "The tutorial's constants"), as parameters:
#: the estimator's, its strategy's (Reinforce) and its search space's.
TUTORIAL = dict(controller_epochs=10, samples_per_epoch=10, epochs=10, learning_rate=0.01,
                weight_sharing=True, batch_size=32, validation_fraction=0.1)
TUTORIAL_CONTROLLER = dict(train_steps=10, discount=0.9, lstm_units=100, learning_rate=0.01,
                           decay=0.1, use_predictor=True, baseline=0.5)
TUTORIAL_SPACE = dict(max_layers=2, dropout_rates=0.2, units=(8, 16, 32, 64, 128, 256, 512),
                      activations=("sigmoid", "tanh", "relu", "elu"))


def test_the_tutorials_search_is_three_parameters_away():
    """``strategy=Reinforce(baseline=0.5), cv=None, batch_size=32`` on top of the
    defaults is the tutorial's search: every other default is its constant (the
    tenth held out included), and nothing beyond it (early stopping, ensembles) is
    on. Below 1,000 training rows ``batch_size='auto'`` is 32 already."""
    tutorial = MLPNASClassifier(strategy=Reinforce(baseline=0.5), cv=None, batch_size=32)
    params = tutorial.get_params()
    assert {k: params[k] for k in TUTORIAL} == TUTORIAL
    assert {k: params[f"strategy__{k}"] for k in TUTORIAL_CONTROLLER} == TUTORIAL_CONTROLLER
    assert params["space"] == "tutorial"
    space = SearchSpace.from_preset("tutorial").get_params()
    assert {k: space[k] for k in TUTORIAL_SPACE} == TUTORIAL_SPACE
    assert tutorial._reward == "weighted"  # the tutorial's reward, no parameter any more
    assert params["early_stopping"] == "auto" and params["ensemble_size"] == "auto"
    assert params["cv"] is None
    assert tutorial._n_members() == 0  # 'auto': no ensemble
    # 'auto': no fold models to serve, so the winner is refit on all rows as the tutorial does
    assert tutorial._refit_mode(False) is True
    assert MLPNASClassifier()._training_sizes(999)[0] == 32


def test_the_tutorials_choice_is_the_best_holdout_reward_for_a_fixed_count(small):
    X, y = small
    clf = MLPNASClassifier(**{**TUTORIAL, "controller_epochs": 1, "samples_per_epoch": 3,
                              "epochs": 3},
                           strategy=Reinforce(**{**TUTORIAL_CONTROLLER, "lstm_units": 8}),
                           space=SearchSpace(**{**TUTORIAL_SPACE, "units": (4, 8)}),
                           cv=None, random_state=0).fit(X, y)
    res = clf.search_results_
    assert clf.best_score_ == res["reward"].max() == res["reward"][clf.best_index_]
    assert np.isnan(res["cv_score"]).all() and (res["ensemble_weight"] == 0).all()
    assert clf.refit_epochs_ == 3 and clf.cv_time_ == 0 and clf.refit_ is True
    assert clf.controller_history_["baseline"][0] == 0.5


def test_the_finalists_train_finalist_epochs_and_the_refit_matches(small, tiny):
    X, y = small
    budget = dict(tiny, epochs=2, cv=3, n_finalists=2)
    # below 1,000 training rows 'auto' is ``epochs`` (for both estimators)
    for finalist_epochs, expected in ((5, 5), (None, 2), ("auto", 2)):
        clf = MLPNASClassifier(**budget, finalist_epochs=finalist_epochs).fit(X, y)
        assert clf.refit_epochs_ == expected, finalist_epochs
        # the search's candidates still train ``epochs``
        assert (clf.search_results_["best_epoch"] == 2).all()
    reg = MLPNASRegressor(**budget, ensemble_size=0).fit(X, X[:, 0] - X[:, 1])
    assert reg.refit_epochs_ == 2 and MLPNASRegressor(epochs=7)._training_sizes(50)[1] == 7
    # without cross-validated finalists the refit trains as the search did
    assert MLPNASClassifier(**dict(budget, cv=None), finalist_epochs=5).fit(X, y).refit_epochs_ == 2


def _trainings(monkeypatch):
    """Record (epochs, batch size, cross-validation?) of every population training."""
    calls = []
    train = PopulationTrainer.train

    def spy(self, candidates, data, seed, row_weights=None, val_outputs=False):
        calls.append((self.epochs, self.batch_size, row_weights is not None))
        return train(self, candidates, data, seed, row_weights, val_outputs)
    monkeypatch.setattr(PopulationTrainer, "train", spy)
    return calls


class _FinalistBatch20(MLPNASClassifier):
    """The finalists train on batches of 20 (the hook that replaced finalist_batch_size)."""
    _finalist_batch_size = 20


@pytest.mark.parametrize("n_rows", [999, 1000])
def test_larger_tables_train_on_larger_batches_and_their_finalists_longer(tiny, monkeypatch,
                                                                          n_rows):
    """'auto': from 1,000 training rows the search trains on batches of 64 and the
    finalists 5 x epochs on the same batches (below: batches of 32, and epochs, for
    both estimators); a refit of a cross-validated
    winner trains as its finalists did."""
    X, y = make_classification(n_rows, 4, n_informative=2, n_redundant=0, random_state=0)
    calls = _trainings(monkeypatch)
    budget = dict(tiny, epochs=1, cv=2, n_finalists=1, ensemble_size=0)
    clf = MLPNASClassifier(**budget, refit=True).fit(X, y)
    large = n_rows >= 1000
    batch = 64 if large else 32
    expected = (5, batch) if large else (1, batch)
    assert clf.batch_size_ == batch
    assert (clf.finalist_epochs_, clf.finalist_batch_size_) == expected
    search, cv, refit = calls
    assert search == (1, batch, False) and cv == (*expected, True)
    assert refit == (clf.refit_epochs_, batch, False) and clf.refit_epochs_ == expected[0]
    # set by hand (the finalists' batch size by a subclass, as the benchmarks do); by
    # default the finalists follow the search's batch
    calls.clear()
    clf = _FinalistBatch20(**budget, batch_size=50, finalist_epochs=None).fit(X, y)
    assert calls[:2] == [(1, 50, False), (1, 20, True)] and clf.finalist_batch_size_ == 20
    calls.clear()
    clf = MLPNASClassifier(**budget, batch_size=50, finalist_epochs=4).fit(X, y)
    assert MLPNASClassifier._finalist_batch_size is None
    assert calls[:2] == [(1, 50, False), (4, 50, True)] and clf.batch_size_ == 50
    assert clf.finalist_batch_size_ == 50
    calls.clear()
    reg = MLPNASRegressor(**budget).fit(X, X[:, 0])
    assert calls[:2] == [(1, batch, False), ((5, batch, True) if large else (1, batch, True))]
    assert reg.batch_size_ == batch


@pytest.mark.parametrize("splitter", ["repeated", "shuffle"])
def test_out_of_fold_outputs_average_the_folds_that_held_a_row_out(small, tiny, monkeypatch,
                                                                   splitter):
    """A splitter whose test folds overlap (repeated k-fold) or miss rows (a shuffle
    split): a row's out-of-fold output is its mean over the folds that held it out, and
    the ensemble is chosen, and scored, on the rows held out at least once."""
    from sklearn.model_selection import RepeatedStratifiedKFold, ShuffleSplit
    from sknas._base import BaseMLPNAS
    X, y = small
    cv = (RepeatedStratifiedKFold(n_splits=2, n_repeats=2, random_state=0)
          if splitter == "repeated" else ShuffleSplit(2, test_size=0.25, random_state=0))
    trained, selected = [], []
    train, select = PopulationTrainer.train, BaseMLPNAS._select_ensemble

    def train_spy(self, candidates, data, seed, row_weights=None, val_outputs=False):
        results = train(self, candidates, data, seed, row_weights, val_outputs)
        if row_weights is not None:
            trained.append((row_weights, results))
        return results

    def select_spy(self, search, oof, y, w, *args):
        selected.append((oof, y, w))
        return select(self, search, oof, y, w, *args)
    monkeypatch.setattr(PopulationTrainer, "train", train_spy)
    monkeypatch.setattr(BaseMLPNAS, "_select_ensemble", select_spy)
    clf = MLPNASClassifier(**{**tiny, "samples_per_epoch": 3}, cv=cv, n_finalists=2,
                           ensemble_size=4).fit(X, y)
    (row_weights, results), = trained
    (oof, y_sel, w_sel), = selected
    n_folds = cv.get_n_splits()
    held_out = np.array([rw.w_val > 0 for rw in row_weights[:n_folds]])  # fold x row
    seen = held_out.any(axis=0)
    assert (held_out.sum(axis=0) == 2).all() if splitter == "repeated" else not seen.all()
    assert len(y_sel) == len(w_sel) == seen.sum()
    np.testing.assert_array_equal(y_sel, y[seen])
    for k, pred in enumerate(oof.values()):  # the finalists in rank order, all trained
        mine = results[k * n_folds:(k + 1) * n_folds]
        total = sum(np.where(h[:, None], r.val_outputs, 0.0) for h, r in zip(held_out, mine))
        np.testing.assert_allclose(pred, total[seen] / held_out.sum(axis=0)[seen, None],
                                   rtol=1e-6)
    assert 0.5 < clf.ensemble_score_ <= 1.0


def _flat(weights):
    """A net's weights as Keras lists them: each layer's arrays in order."""
    return [np.asarray(a) for layer in weights for a in layer]


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_refit_folds_serves_the_fold_models_that_were_scored(small, tiny, monkeypatch, task):
    """refit='folds': the served model averages the winner's k fold models, the very
    weights its cross-validation trained, and nothing trains after that."""
    X, y = small
    if task == "regression":
        y = 50 + 10 * (X[:, 0] - X[:, 1])
    calls = []
    train = PopulationTrainer.train

    def spy(self, candidates, data, seed, row_weights=None, val_outputs=False):
        results = train(self, candidates, data, seed, row_weights, val_outputs)
        calls.append((row_weights is not None, results))
        return results
    monkeypatch.setattr(PopulationTrainer, "train", spy)
    est = (MLPNASClassifier if task == "classification" else MLPNASRegressor)(
        **tiny, cv=3, n_finalists=2, ensemble_size=0).fit(X, y)
    assert est.refit_ == "folds" and not est.ensemble_weights_
    cv_call, cv_results = calls[-1]
    assert cv_call  # the cross-validation was the last training: no refit after it
    res = est.search_results_
    finalists = sorted(np.flatnonzero(np.isfinite(res["cv_score"])), key=lambda i: -res["reward"][i])
    k = finalists.index(est.best_index_)
    folds = [r.weights for r in cv_results[3 * k:3 * k + 3]]
    nets = [layer for layer in est.model_.layers if hasattr(layer, "layers")]
    assert len(nets) == 3
    for net, weights in zip(nets, folds):
        for served, trained in zip(net.get_weights(), _flat(est._served_weights(weights))):
            np.testing.assert_array_equal(served, trained)
    Xf = X.astype(np.float32)
    mean = np.mean([np.asarray(net(Xf)) for net in nets], axis=0)
    pred = est.predict_proba(X)[:, 1] if task == "classification" else est.predict(X)
    np.testing.assert_allclose(pred, mean[:, 0], rtol=1e-5, atol=1e-6)  # binary: P(class 1)
    if task == "regression":  # served in the target's units, as the refit winner is
        assert abs(pred.mean() - 50) < 5


def test_ensemble_members_refit_side_by_side_as_each_would_alone(small):
    from sknas._trial import Trial
    X, y = small
    X = X.astype(np.float32)
    clf = MLPNASClassifier(batch_size=16)
    clf.finalist_batch_size_ = 16  # as a fit sets it (the members train as their folds did)
    data = CandidateData(X, y.astype(np.int32), np.ones(len(y), np.float32), X[:0], y[:0],
                         np.ones(0, np.float32), 2)
    trials = [Trial(index=k, controller_epoch=0, arch=(), architecture=str(k), layers=lay,
                    n_params=0, cv_scores=[0.5], cv_best_epoch=epochs)
              for k, (lay, epochs) in enumerate([(LAYERS[0], 3), (LAYERS[1], 3), (LAYERS[1], 1)])]
    together = clf._refit_together(trials, data, seed=5)
    for trial in trials:
        alone = clf._refit_together([trial], data, seed=5)[trial.index]
        assert _same(together[trial.index], alone)
    # each member trains for its own folds' epochs, from its own fresh start
    assert not _same(together[1], together[2])
    init, _ = clf._fresh_start(trials[2], data, 5)
    assert not _same(together[2], init)


def test_the_validation_split_holds_out_validation_fraction(tiny, monkeypatch):
    """A tenth of the rows by default, for both estimators and at every size ('auto',
    a quarter of a small classification table, is gone), and every candidate of the
    search is scored on those rows; a float is the share."""
    held_out = []
    train = PopulationTrainer.train

    def spy(self, candidates, data, seed, row_weights=None, val_outputs=False):
        held_out.append(len(data.y_val))
        return train(self, candidates, data, seed, row_weights, val_outputs)
    monkeypatch.setattr(PopulationTrainer, "train", spy)
    X, y = make_classification(400, 4, n_informative=2, n_redundant=0, random_state=0)
    tiny["cv"] = None   # the search's training, then the refit's on all rows
    clf = MLPNASClassifier(**tiny).fit(X, y)
    assert clf.n_validation_ == 40 and held_out[0] == 40
    held_out.clear()
    clf = MLPNASClassifier(**tiny, validation_fraction=0.25).fit(X, y)
    assert clf.n_validation_ == 100 and held_out[0] == 100
    held_out.clear()
    reg = MLPNASRegressor(**tiny).fit(X, X[:, 0])
    assert reg.n_validation_ == 40 and held_out[0] == 40
    # a tenth at every size; at least one row (two for the regressor's R^2)
    rows = {n: MLPNASClassifier()._validation_rows(n) for n in (4, 8, 999, 2600, 10_000)}
    assert rows == {4: 1, 8: 1, 999: 100, 2600: 260, 10_000: 1000}
    assert MLPNASRegressor()._validation_rows(8) == 2
    with pytest.raises(InvalidParameterError, match="validation_fraction"):
        MLPNASClassifier(**tiny, validation_fraction="auto").fit(X, y)
