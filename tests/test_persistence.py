"""Persistence: pickle and joblib round trips in a fresh process, and export to .keras.

The estimator pickles itself (``__getstate__`` stores the Keras model as
``.keras`` bytes); Keras classes are not patched. One subprocess loads every
saved file, so the cost of importing TensorFlow there is paid once.
"""

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknas import MLPNASClassifier, Reinforce, SearchSpace

from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]

#: Runs in a fresh interpreter. The exported .keras file is loaded before
#: sknas is imported, so nothing of sknas can be registered with Keras.
SCRIPT = textwrap.dedent("""
    import json, os, pickle, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import joblib, keras, numpy as np
    folder = sys.argv[1]
    X = np.load(os.path.join(folder, "X.npy"))
    out = {}
    exported = keras.models.load_model(os.path.join(folder, "winner.keras"))
    out["sknas_imported_for_export"] = "sknas" in sys.modules
    out["export"] = np.asarray(exported(X.astype("float32"))).tolist()
    for name in ["clf.pkl", "clf.joblib", "pipe.pkl", "pipe.joblib"]:
        path = os.path.join(folder, name)
        obj = joblib.load(path) if name.endswith("joblib") else pickle.load(open(path, "rb"))
        out[name] = obj.predict_proba(X).tolist()
        out[name + ":predict"] = obj.predict(X).tolist()
    with open(os.path.join(folder, "unfitted.pkl"), "rb") as fh:
        out["unfitted"] = {k: repr(v) for k, v in pickle.load(fh).get_params().items()}
    # the same fit in another process gives the same model (tags: deterministic)
    clf = pickle.load(open(os.path.join(folder, "clf.pkl"), "rb"))
    y = np.load(os.path.join(folder, "y.npy"), allow_pickle=False)
    from sklearn.base import clone
    X_train = np.load(os.path.join(folder, "X_train.npy"))
    out["refit"] = clone(clf).fit(X_train, y).predict_proba(X).tolist()
    json.dump(out, open(os.path.join(folder, "out.json"), "w"))
""")


def _unfitted():
    """An unfitted estimator with a space, a strategy and a class weight of its own."""
    return MLPNASClassifier(space=SearchSpace(units=(4, 16)), strategy=Reinforce(baseline=0.5),
                            class_weight={"red": 2.0})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Fit an estimator and a pipeline, save them every way, load them in a subprocess."""
    import json
    from sklearn.datasets import make_blobs
    folder = tmp_path_factory.mktemp("persist")
    X, y = make_blobs(n_samples=120, centers=3, n_features=4, random_state=0)
    labels = np.array(["red", "green", "blue"])[y]
    clf = MLPNASClassifier(**TINY).fit(X, labels)
    pipe = make_pipeline(StandardScaler(), MLPNASClassifier(**TINY)).fit(X, labels)
    X_new = X[:25] + 0.1
    np.save(folder / "X.npy", X_new)
    np.save(folder / "X_train.npy", X)
    np.save(folder / "y.npy", labels)
    for name, obj in [("clf", clf), ("pipe", pipe)]:
        with open(folder / f"{name}.pkl", "wb") as fh:
            pickle.dump(obj, fh)
        joblib.dump(obj, folder / f"{name}.joblib")
    with open(folder / "unfitted.pkl", "wb") as fh:
        pickle.dump(_unfitted(), fh)
    assert clf.export_model(folder / "winner.keras") == os.fspath(folder / "winner.keras")
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(folder)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(folder / "out.json") as fh:
        out = json.load(fh)
    return dict(clf=clf, pipe=pipe, X=X_new, out=out)


@pytest.mark.parametrize("name", ["clf.pkl", "clf.joblib"])
def test_fitted_estimator_round_trips_in_a_fresh_process(saved, name):
    expected = saved["clf"].predict_proba(saved["X"])
    np.testing.assert_array_equal(np.array(saved["out"][name]), expected)
    assert saved["out"][name + ":predict"] == saved["clf"].predict(saved["X"]).tolist()


@pytest.mark.parametrize("name", ["pipe.pkl", "pipe.joblib"])
def test_fitted_pipeline_round_trips_in_a_fresh_process(saved, name):
    expected = saved["pipe"].predict_proba(saved["X"])
    np.testing.assert_array_equal(np.array(saved["out"][name]), expected)


def test_unfitted_estimator_round_trips_in_a_fresh_process(saved):
    params = _unfitted().get_params()
    assert params["space__units"] == (4, 16) and params["strategy__baseline"] == 0.5
    assert saved["out"]["unfitted"] == {k: repr(v) for k, v in params.items()}


def test_same_seed_same_model_in_another_process(saved):
    """What ``non_deterministic=False`` promises."""
    assert MLPNASClassifier().__sklearn_tags__().non_deterministic is False
    np.testing.assert_allclose(np.array(saved["out"]["refit"]),
                               saved["clf"].predict_proba(saved["X"]), rtol=1e-5, atol=1e-6)


def test_export_loads_as_plain_keras_without_custom_objects(saved):
    assert saved["out"]["sknas_imported_for_export"] is False
    np.testing.assert_allclose(np.array(saved["out"]["export"]),
                               saved["clf"].predict_proba(saved["X"]), rtol=1e-6, atol=1e-7)


def test_binary_export_outputs_the_probability_of_classes_1(tmp_path, blobs):
    import keras
    X, y = blobs
    keep = y < 2
    clf = MLPNASClassifier(**TINY).fit(X[keep], np.where(y[keep] == 1, "yes", "no"))
    model = keras.models.load_model(clf.export_model(tmp_path / "binary.keras"))
    assert model.output_shape == (None, 1)
    np.testing.assert_allclose(np.asarray(model(X[:10].astype(np.float32)))[:, 0],
                               clf.predict_proba(X[:10])[:, 1], rtol=1e-6, atol=1e-7)
    assert list(clf.classes_) == ["no", "yes"]


def test_pickle_holds_keras_bytes_not_keras_objects(saved):
    clf = saved["clf"]
    state = clf.__getstate__()
    assert "model_" not in state
    assert isinstance(state["_model_keras_bytes"], bytes)
    assert state["_model_keras_bytes"][:2] == b"PK"  # a .keras file is a zip
    import keras
    assert "__reduce__" not in vars(keras.Model)  # no patching of Keras
    copy = pickle.loads(pickle.dumps(clf))
    assert copy.model_ is not clf.model_
    np.testing.assert_array_equal(copy.predict_proba(saved["X"]), clf.predict_proba(saved["X"]))
    assert copy.best_architecture_ == clf.best_architecture_
    np.testing.assert_array_equal(copy.classes_, clf.classes_)
    # and the estimator itself is unchanged by being pickled
    assert clf.model_ is not None and "_model_keras_bytes" not in vars(clf)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_repeated_predictions_run_one_compiled_graph_equal_to_the_eager_model(blobs, task):
    """Predictions run a graph traced once for any number of rows, with the
    Keras model's outputs, bit-identical from call to call. The cache of graphs
    does not keep a model alive."""
    import gc
    import weakref

    from sknas import MLPNASRegressor, _io
    X, y = blobs
    if task == "classification":
        est = MLPNASClassifier(**TINY).fit(X, y)
        predict = est.predict_proba
    else:
        est = MLPNASRegressor(**TINY).fit(X, 100 + 10 * X[:, 0])
        predict = est.predict
    first = predict(X)
    eager = np.asarray(est.model_(X.astype(np.float32), training=False), np.float64)
    if task == "regression":
        eager = eager[:, 0]
    else:  # three classes: the softmax outputs, normalised again
        eager = eager / eager.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(first, eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(predict(X), first)
    np.testing.assert_allclose(predict(X[:7]), first[:7], rtol=1e-6, atol=1e-7)
    graph = _io._PREDICT_FNS[est.model_]
    assert graph.experimental_get_tracing_count() == 1
    model = weakref.ref(est.model_)
    del est, predict
    gc.collect()
    assert model() is None


def test_predicting_with_many_fitted_models_stays_quiet(caplog):
    """Each served model traces its own predict graph; TensorFlow's warning
    about repeated tracing (after five) must not reach the user."""
    import logging

    from sknas._io import keras_predict
    from sknas._trainer import build_keras_model
    X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    layers = [{"type": "dense", "units": 4, "activation": "relu"}]
    with caplog.at_level(logging.WARNING):
        outputs = [keras_predict(build_keras_model(layers, 4, 3), X) for _ in range(8)]
    assert all(out.shape == (20, 3) for out in outputs)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]


class _SplitsThePicks(MLPNASClassifier):
    """After the greedy selection, two thirds of the picks go to one finalist and
    a third to another: an ensemble of two members, whatever the data."""

    def _select_ensemble(self, search, oof, *args):
        super()._select_ensemble(search, oof, *args)
        first, second = list(oof)[:2]
        for i in oof:
            search.trials[i].ensemble_weight = {first: 2 / 3, second: 1 / 3}.get(i, 0.0)


def test_save_model_describes_the_served_model_not_only_the_winner(tmp_path, blobs):
    """``sknas_model.json`` keeps the winner's ``architecture`` and says what
    ``model.keras`` serves: here two finalists' fold models, two each."""
    import json

    import keras

    from sknas import load_model
    from sknas._runlog import json_safe
    X, y = blobs
    clf = _SplitsThePicks(**{**TINY, "cv": 2}, n_finalists=2, ensemble_size=3).fit(X, y)
    assert len(clf.ensemble_weights_) == 2 and clf.refit_ == "folds"
    path = clf.save_model(tmp_path / "ensemble")
    meta = json.loads((path / "sknas_model.json").read_text())
    assert meta["architecture"] == clf.best_architecture_  # the winner's, as before
    assert meta["served"] == "ensemble" and meta["refit"] == "folds"
    rows = sorted(clf.ensemble_weights_)
    assert [m["row"] for m in meta["members"]] == rows
    assert [m["weight"] for m in meta["members"]] == [clf.ensemble_weights_[i] for i in rows]
    results = clf.search_results_
    assert [m["architecture"] for m in meta["members"]] == list(results["architecture"][rows])
    assert [m["layers"] for m in meta["members"]] == [json_safe(results["layers"][i])
                                                      for i in rows]
    assert [m["n_fold_models"] for m in meta["members"]] == [2, 2]
    n_scaled = sum(isinstance(lyr, keras.layers.Rescaling) for lyr in clf.model_.layers)
    assert meta["n_networks"] == 4 == n_scaled  # one weighted fold model per network
    saved = load_model(path)
    assert (saved.served_, saved.refit_, saved.members_) == ("ensemble", "folds", meta["members"])
    assert saved.architecture_ == clf.best_architecture_
    np.testing.assert_allclose(saved.predict_proba(X), clf.predict_proba(X), rtol=1e-6)

    # the tutorial's holdout choice (cv=None): the winner alone, refit on all the rows
    solo = MLPNASClassifier(**TINY).fit(X, y)
    saved = load_model(solo.save_model(tmp_path / "solo"))
    assert (saved.served_, saved.refit_, saved.meta["n_networks"]) == ("winner", True, 1)
    assert saved.members_ == [{"row": solo.best_index_, "architecture": solo.best_architecture_,
                               "layers": json_safe(solo.best_layers_), "weight": 1.0,
                               "n_fold_models": 0}]

    # a folder saved before sknas described the served model still loads
    meta_path = tmp_path / "solo" / "sknas_model.json"
    old = {k: v for k, v in json.loads(meta_path.read_text()).items()
           if k not in ("served", "refit", "n_networks", "members")}
    meta_path.write_text(json.dumps(old))
    saved = load_model(tmp_path / "solo")
    assert (saved.served_, saved.refit_, saved.members_) == (None, None, None)
    np.testing.assert_allclose(saved.predict_proba(X), solo.predict_proba(X), rtol=1e-6)
