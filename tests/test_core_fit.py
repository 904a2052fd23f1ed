"""End to end: a tiny search on real data learns and fills every fitted attribute."""

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknas import MLPNASClassifier, Reinforce, SearchSpace
from sknas.datasets import load_wine_quality

FITTED = ["search_results_", "best_index_", "best_architecture_", "best_layers_", "best_score_",
          "model_", "classes_", "n_features_in_", "controller_history_", "controller_",
          "stop_reason_", "search_time_", "refit_time_", "refit_"]


@pytest.fixture(scope="module")
def wine_small():
    """2500 raw (unscaled) rows: scaling is learned after the split, on the training part."""
    X, y = load_wine_quality(return_X_y=True, as_frame=True)
    return X.iloc[:2500], y.iloc[:2500]


def test_tiny_search_learns_and_fills_attributes(wine_small):
    X, y = wine_small
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=500, stratify=y, random_state=0)
    clf = MLPNASClassifier(controller_epochs=2, samples_per_epoch=3, epochs=10,
                           strategy=Reinforce(train_steps=2),
                           space=SearchSpace(units=(16, 32), activations=("relu", "tanh")),
                           random_state=0)
    # the scaler sees the training rows only (a DataFrame out keeps the feature names)
    model = make_pipeline(StandardScaler().set_output(transform="pandas"), clf).fit(X_tr, y_tr)
    assert model[0].n_samples_seen_ == len(X_tr)
    for name in FITTED:
        assert hasattr(clf, name), name
    assert list(clf.feature_names_in_) == list(X.columns)
    assert clf.n_features_in_ == 11
    assert set(clf.classes_) == {"high", "low", "medium"}
    table = pd.DataFrame(clf.search_results_)
    assert len(table) == 6 and set(table["controller_epoch"]) == {0, 1}
    assert table["status"].eq("ok").all() and table["reward"].between(0, 1).all()
    assert table["predicted_reward"].between(0, 1).all()
    # 200 validation rows: cv='auto' cross-validates the finalists (8 by default, here all 6
    # candidates) and the best one wins; the ensemble's fold models are served
    finalists = table[table["cv_score"].notna()]
    assert len(finalists) == 6 and clf.refit_ == "folds"
    assert clf.best_index_ == finalists["cv_score"].idxmax()
    assert clf.best_score_ == finalists["cv_score"].max()
    assert clf.best_architecture_ == table["architecture"][clf.best_index_]
    assert table["rank"][clf.best_index_] == 1
    assert len(clf.controller_history_["loss"]) == 2
    majority = y_te.value_counts(normalize=True).max()
    assert model.score(X_te, y_te) > majority + 0.02
    proba = model.predict_proba(X_te)
    assert proba.shape == (500, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(model.predict(X_te)) <= set(clf.classes_)


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
    clf = MLPNASClassifier(space=SearchSpace(units=(4,), activations=("relu",), max_layers=2),
                           controller_epochs=3, samples_per_epoch=2, epochs=1,
                           strategy=Reinforce(train_steps=1, lstm_units=8), random_state=0)
    # space: 4-relu, 4-relu > 4-relu, 4-relu > dropout = 3 architectures
    with pytest.warns(UserWarning, match="exhausted"):
        clf.fit(X, y)
    assert len(clf.search_results_["architecture"]) == 3
    assert clf.stop_reason_ == "exhausted"


@pytest.mark.parametrize("reward", ["last", "max"])
def test_reward_options(blobs, tiny, reward):
    # the reward is a hook for the benchmarks, not a parameter: a subclass sets it
    X, y = blobs
    cls = type("RewardNAS", (MLPNASClassifier,), {"_reward": reward})
    clf = cls(**tiny).fit(X, y)
    col = "last_score" if reward == "last" else "max_score"
    np.testing.assert_allclose(clf.search_results_["reward"], clf.search_results_[col])


def _watch_the_search(cls):
    """``cls`` whose search trainer keeps every result it returns (real training,
    observed): ``(subclass, list of results)``."""
    seen = []

    def make_trainer(self, *args, losses=False, **kwargs):
        trainer = cls._make_trainer(self, *args, losses=losses, **kwargs)
        if losses:  # the search's trainer, not the finalists'
            train = trainer.train

            def watched(*a, **k):
                out = train(*a, **k)
                seen.extend(out)
                return out
            trainer.train = watched
        return trainer

    return type(cls.__name__, (cls,), {"_make_trainer": make_trainer}), seen


@pytest.mark.parametrize("reward", ["weighted", "last"])
def test_likelihood_reward_weighs_exp_of_the_validation_losses(blobs, tiny, reward):
    # a hook for the benchmarks (#34): the reward from exp(-validation log loss) of
    # each epoch, weighed as the accuracies are, not from the accuracies
    from sknas._trial import reward_from_scores
    X, y = blobs
    cls, seen = _watch_the_search(type("LikelihoodNAS", (MLPNASClassifier,),
                                       {"_reward_score": "likelihood", "_reward": reward}))
    clf = cls(**{**tiny, "epochs": 3, "cv": None}).fit(X, y)
    rewards = clf.search_results_["reward"]
    assert len(seen) == len(rewards)
    for result, got in zip(seen, rewards):
        assert len(result.val_losses) == len(result.val_scores) == 3
        assert np.all(np.asarray(result.val_losses) > 0)
        want = reward_from_scores(np.exp(-np.asarray(result.val_losses)), reward)
        assert got == pytest.approx(want, rel=1e-12)
        # not the accuracy's reward: the two scores differ
        assert got != pytest.approx(reward_from_scores(result.val_scores, reward), abs=1e-3)
    # the default search records no losses and rewards the accuracy
    cls, seen = _watch_the_search(MLPNASClassifier)
    clf = cls(**{**tiny, "epochs": 3, "cv": None}).fit(X, y)
    assert all(r.val_losses == [] for r in seen)
    np.testing.assert_allclose(clf.search_results_["reward"],
                               [reward_from_scores(r.val_scores, "weighted") for r in seen])


def test_likelihood_reward_needs_the_population_trainer(blobs, tiny):
    X, y = blobs
    cls = type("KerasLikelihoodNAS", (MLPNASClassifier,),
               {"_reward_score": "likelihood", "_trainer_kind": "keras"})
    with pytest.raises(ValueError, match="Keras trainer records none"):
        cls(**tiny).fit(X, y)


class KerasNAS(MLPNASClassifier):
    """The tutorial's ``model.fit`` per candidate (the reference trainer)."""

    _trainer_kind = "keras"


def test_keras_trainer_and_random_strategy(blobs, tiny):
    X, y = blobs
    clf = KerasNAS(**{**tiny, "strategy": "random"}).fit(X, y)
    assert np.isnan(clf.search_results_["predicted_reward"]).all()
    assert (clf.search_results_["status"] == "ok").all()
    assert clf.score(X, y) > 0.5


def test_refit_false_serves_the_searched_candidate(tiny, monkeypatch):
    # Overlapping classes and label noise: the validation accuracy is far from 1, so
    # a model trained again (another start, other rows) would score differently.
    X, y = make_classification(n_samples=400, n_features=6, n_informative=3, n_classes=3,
                               n_clusters_per_class=1, flip_y=0.15, random_state=0)
    # the validation split the search scores every candidate on, as fit made it
    splits = []
    make_split = MLPNASClassifier._split

    def recording_split(self, *args):
        splits.append(make_split(self, *args))
        return splits[-1]

    monkeypatch.setattr(MLPNASClassifier, "_split", recording_split)
    tiny.update(samples_per_epoch=3, epochs=4)
    # cv=None: the holdout alone picks the winner, so the search kept its trained weights
    clf = MLPNASClassifier(**{**tiny, "refit": False, "validation_fraction": 0.25,
                              "cv": None}).fit(X, y)
    (data,) = splits
    assert len(data.y_val) == 100 and len(data.y) == 300
    # the served model scores on the validation rows exactly what the search recorded
    # for the best candidate after its last epoch (accuracy weighted by the row weights)
    recorded = clf.search_results_["last_score"][clf.best_index_]
    assert 0.5 < recorded < 0.95
    correct = clf.predict(data.X_val) == clf.classes_[data.y_val]
    assert np.average(correct, weights=data.w_val) == pytest.approx(recorded, abs=1e-6)
