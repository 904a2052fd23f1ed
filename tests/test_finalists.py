"""The finalists' cross-validation and what is served from it: a fold's model
sees nothing of its held-out rows, resumed runs recompute the finalists under
the new fit's parameters, and the ensemble's score comes with an honest estimate."""

import numpy as np
import pytest

from sknas import MLPNASClassifier, Reinforce, SearchSpace
from sknas._trainer import CandidateData, PopulationTrainer, initial_weights

BN_LAYERS = [{"type": "dense", "units": 8, "activation": "relu", "batch_norm": True},
             {"type": "dropout", "rate": 0.2},
             {"type": "dense", "units": 4, "activation": "tanh", "batch_norm": True}]


PLAIN_LAYERS = [{"type": "dense", "units": 8, "activation": "relu"}]


def _fold_weights(X, y, rows, early_stopping, layers):
    """The trained weights of two folds of one network trained side by side
    (``rows``: per fold, the row weights the trainer takes)."""
    data = CandidateData(X, y, np.ones(len(y), np.float32), X, y, np.ones(len(y), np.float32),
                         n_classes=2)
    init = initial_weights(layers, X.shape[1], 1, np.random.default_rng(0))
    trainer = PopulationTrainer(epochs=6, batch_size=16, early_stopping=early_stopping,
                                n_iter_no_change=2)
    results = trainer.train([(layers, init, 1), (layers, init, 1)], data, 7, rows)
    assert all(r.status == "ok" for r in results)
    return results


@pytest.mark.parametrize("layers, early_stopping", [(BN_LAYERS, False), (BN_LAYERS, True),
                                                    (PLAIN_LAYERS, True)],
                         ids=["batch-norm", "batch-norm-early-stopping", "early-stopping"])
def test_held_out_rows_do_not_touch_their_folds_model(layers, early_stopping):
    """Batch-normalisation statistics and early stopping of a fold leave its held-out rows out."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 5)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=90) > 0).astype(np.int32)
    held = np.zeros(90, bool)
    held[::3] = True  # fold 0 holds out every third row, fold 1 the rest
    watch = np.zeros(90, bool)
    watch[1::9] = True  # rows fold 0 watches for early stopping (none held out)
    w_train0 = (~held & ~watch).astype(np.float32)
    rows = [(w_train0, held.astype(np.float32), watch.astype(np.float32)),
            (held.astype(np.float32), (~held).astype(np.float32))]
    if not early_stopping:
        rows[0] = rows[0][:2]
    before = _fold_weights(X, y, rows, early_stopping, layers)
    X2 = X.copy()
    X2[held] = 10.0 * rng.normal(size=(held.sum(), 5))  # only fold 0's held-out rows change
    after = _fold_weights(X2, y, rows, early_stopping, layers)
    assert before[0].best_epoch == after[0].best_epoch
    for a, b in zip(before[0].weights, after[0].weights):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    # fold 1 trains on those rows: its model moves
    assert any(not np.array_equal(u, v) for a, b in zip(before[1].weights, after[1].weights)
               for u, v in zip(a, b))


def test_early_stopping_folds_watch_rows_of_their_own_training_part(blobs):
    """With early stopping each fold watches a tenth of its training rows, never a held-out one."""
    X, y = blobs
    clf = MLPNASClassifier(early_stopping=True)
    clf.early_stopping_ = True
    folds = list(clf._kfold(3, 0).split(X, y))
    for (train, val), rows in zip(
            folds, clf._fold_row_weights(folds, y, np.ones(len(y), np.float32), 0)):
        w_train, w_val, w_stop = rows.w, rows.w_val, rows.w_stop
        assert np.all(w_stop[val] == 0) and np.all(w_train[val] == 0)
        assert np.all(w_val[val] == 1)
        assert np.all((w_train + w_stop)[train] == 1)  # the training part: trained or watched
        assert w_stop.sum() == round(0.1 * len(train))


PARAMS = dict(controller_epochs=1, samples_per_epoch=3, epochs=2,
              strategy=Reinforce(train_steps=1, lstm_units=8),
              space=SearchSpace(units=(4, 8), activations=("relu", "tanh")), random_state=0,
              cv=2, n_finalists=3, finalist_epochs=2)


@pytest.fixture(scope="module")
def binary():
    from sklearn.datasets import make_classification
    return make_classification(200, 6, random_state=0)


def _served(clf):
    return (clf.refit_, clf.ensemble_weights_, clf.best_index_, clf.best_score_,
            np.round(clf.ensemble_score_, 12))


def test_resumed_finished_run_recomputes_the_finalists(binary, tmp_path):
    """Resuming a finished run serves what a fresh fit with the new parameters serves."""
    X, y = binary
    first = MLPNASClassifier(**PARAMS, log_dir=tmp_path).fit(X, y)
    assert len(first.ensemble_weights_) > 1  # the first fit's ensemble is in the run log
    for change in ({"n_finalists": 1}, {"cv": None}, {"ensemble_size": 0}):
        params = {**PARAMS, **change}
        fresh = MLPNASClassifier(**params).fit(X, y)
        resumed = MLPNASClassifier(**params, resume=first.run_dir_).fit(X, y)
        assert str(_served(resumed)) == str(_served(fresh)), change
        np.testing.assert_array_equal(resumed.search_results_["cv_score"],
                                      fresh.search_results_["cv_score"])
        np.testing.assert_allclose(resumed.predict_proba(X), fresh.predict_proba(X), atol=1e-6)


def test_ensemble_score_comes_with_a_cross_validated_estimate(binary):
    """ensemble_cv_score_ scores each fold's rows with a selection made without them."""
    X, y = binary
    clf = MLPNASClassifier(**PARAMS).fit(X, y)
    assert 0 <= clf.ensemble_cv_score_ <= 1 and 0 <= clf.ensemble_score_ <= 1
    # on pure noise the selection's own score is optimistic; the estimate is not (on average)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 2, size=len(y))
    scores = []
    for seed in range(2):
        c = MLPNASClassifier(**{**PARAMS, "random_state": seed, "n_finalists": 4,
                                "ensemble_size": 5}).fit(X, noise)
        scores.append((c.ensemble_score_, c.ensemble_cv_score_))
    own, honest = np.mean(scores, axis=0)
    assert honest < own


def test_finalists_stage_is_reported(binary, capsys):
    """verbose=1 reports the finalists' cross-validation, the ensemble and the served model."""
    X, y = binary
    MLPNASClassifier(**PARAMS, verbose=1).fit(X, y)
    out = capsys.readouterr().out
    assert "cross-validating 3 finalists: 2 folds each" in out
    assert "finalists cross-validated in" in out
    assert "cross-validated estimate" in out
    assert "served model (" in out
    MLPNASClassifier(**PARAMS, verbose=2).fit(X, y)
    assert capsys.readouterr().out.count("[sknas] finalist ") == 3


def test_a_regression_fold_trains_on_its_own_standardisation():
    """The regressor's folds standardise the target on their training rows only."""
    from sknas import MLPNASRegressor
    from sknas._trainer import FoldRows
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = (X[:, :1] * 2 + 0.1 * rng.normal(size=(60, 1))).astype(np.float32)
    held = np.zeros(60, bool)
    held[::4] = True
    reg = MLPNASRegressor()
    reg.early_stopping_ = False
    folds = [(np.flatnonzero(~held), np.flatnonzero(held))]
    rows = reg._fold_row_weights(folds, y, np.ones(60, np.float32), 0)[0]
    shift, scale = rows.target
    np.testing.assert_allclose(shift, y[~held].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(scale, y[~held].std(axis=0), rtol=1e-6)
    y2 = y.copy()
    y2[held] += 50.0  # the held-out rows' target moves far away
    assert reg._fold_row_weights(folds, y2, np.ones(60, np.float32), 0)[0].target[0] == shift

    layers = [{"type": "dense", "units": 8, "activation": "tanh"}]
    init = initial_weights(layers, 4, 1, np.random.default_rng(0))

    def trained(y_):
        data = CandidateData(X, y_, np.ones(60, np.float32), X, y_, np.ones(60, np.float32),
                             n_classes=0, task="regression")
        fold = FoldRows(rows.w, rows.w_val, None, (shift, scale))
        return PopulationTrainer(epochs=3, batch_size=16).train([(layers, init, 1)], data, 3,
                                                               [fold], val_outputs=True)[0]

    a, b = trained(y), trained(y2)
    for u, v in zip(a.weights, b.weights):
        for p, q in zip(u, v):
            np.testing.assert_array_equal(p, q)
    # scored on the held-out rows in the fold's units, as R^2 in any units is
    from sklearn.metrics import r2_score
    fold_pred = a.val_outputs[held] * scale + shift
    assert a.val_scores[-1] == pytest.approx(r2_score(y[held], fold_pred), abs=1e-4)
