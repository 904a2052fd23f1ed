"""The richer space trained for real: batch normalisation, dropout rates, and
each candidate's own learning rate and weight decay, in the population graph
and in ``model.fit``, through the estimators, persistence, tuning and the CLI.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import tensorflow as tf
from sklearn.model_selection import GridSearchCV

from sknas import MLPNASClassifier, MLPNASRegressor, Reinforce, SearchSpace, load_model
from sknas._trainer import (KerasTrainer, PopulationTrainer, _loss_and_grads, _Net,
                            build_keras_model, initial_weights)
from sknas._weights import SharedWeights, layer_keys

from conftest import TINY, assert_trains_alike_in_any_population, fresh

ROOT = Path(__file__).resolve().parents[1]


def dense(units, act, bn=False):
    layer = {"type": "dense", "units": units, "activation": act}
    if bn:
        layer["batch_norm"] = True
    return layer


def adam(lr, wd):
    return {"type": "optimizer", "learning_rate": lr, "weight_decay": wd}


#: Batch normalisation on the first, the second or both layers, each with its own
#: learning rate and decay, beside nets without either (the trainer's own settings);
#: the nets of learning rate 0.003 share one Adam vector with different decays.
ARCHS = [
    [adam(0.003, 0.1), dense(16, "relu", bn=True), dense(8, "tanh")],
    [adam(0.01, 0.0), dense(8, "elu", bn=True), dense(8, "sigmoid", bn=True)],
    [dense(8, "elu")],
    [adam(0.003, 0.1), dense(12, "sigmoid"), dense(6, "relu", bn=True)],
    [adam(0.003, 0.0), dense(10, "tanh", bn=True)],
]


def candidates(archs, data, seed=0):
    rng = np.random.default_rng(seed)
    return [(layers, initial_weights(layers, data.n_features, data.n_outputs, rng), 10 + k)
            for k, layers in enumerate(archs)]


def test_population_steps_equal_model_fit_with_batch_norm_and_own_adam(cancer):
    # Full-batch steps (batch_size = all rows), so the two loops' different
    # shuffles cannot matter: after 3 Adam steps with each net's learning rate
    # and decoupled weight decay, every kernel, bias, gamma, beta and moving
    # statistic equals what model.fit trained, up to float32 round-off.
    cands = candidates(ARCHS, cancer)
    pop = PopulationTrainer(epochs=3, batch_size=400).train(cands, cancer, seed=0,
                                                             val_outputs=True)
    ref = KerasTrainer(epochs=3, batch_size=400).train(cands, cancer, seed=0, val_outputs=True)
    for p, r, (layers, init, _) in zip(pop, ref, cands):
        assert p.status == r.status == "ok"
        assert p.val_scores == pytest.approx(r.val_scores, abs=1e-6)
        # (inference mode: the moving mean has absorbed only a few percent of the
        # pre-normalisation bias's noise, see below, so outputs agree to 1e-3)
        np.testing.assert_allclose(p.val_outputs, r.val_outputs, rtol=1e-3, atol=1e-5)
        assert [len(w) for w in p.weights] == [len(w) for w in r.weights] == \
            [6 if layer.get("batch_norm") else 2 for layer in layers
             if layer["type"] == "dense"] + [2]
        for got, want, start in zip(p.weights, r.weights, init):
            for k, (a, b, a0) in enumerate(zip(got, want, start)):
                if k == 1 and len(got) == 6:
                    # a bias before batch normalisation has a zero gradient up to
                    # round-off, which Adam scales up to steps of the learning rate's
                    # size: it differs between the loops (by at most a step per epoch)
                    assert np.max(np.abs(a - b)) <= 3 * layers[0]["learning_rate"] * 1.01
                    continue
                atol = 2e-6
                if k == 4:  # the moving mean took 1 - 0.99 ** 3 of that bias difference
                    atol += (1 - 0.99**3) * np.max(np.abs(got[1] - want[1]))
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol)
                assert not np.array_equal(a, a0)  # everything trained (stats moved)


def test_settings_change_training(cancer):
    # the decision is real: the same net with another learning rate or decay,
    # or without batch normalisation, ends with other weights
    base = [adam(0.003, 0.1), dense(8, "relu", bn=True)]
    variants = [base, [adam(0.03, 0.1), base[1]], [adam(0.003, 0.0), base[1]],
                [adam(0.003, 0.1), dense(8, "relu")]]
    results = PopulationTrainer(epochs=2).train(candidates(variants, cancer), cancer, seed=0)
    kernels = [r.weights[0][0] for r in results]
    for k in range(1, 4):
        assert not np.allclose(kernels[0], kernels[k], atol=1e-4)


def test_candidate_trains_bit_identically_in_any_population(cancer):
    # the nets' batch normalisations are computed side by side (one round per
    # layer rank, of widths 16, 8, 6 and 10, then 8 here, not all multiples of a SIMD
    # packet): each net's numbers must not depend on what sits beside it
    cands = candidates(ARCHS, cancer)
    trainer = PopulationTrainer(epochs=2, early_stopping=True, n_iter_no_change=1)
    assert_trains_alike_in_any_population(trainer, cands, cancer,
                                          ([0], [1], [3], [2, 0], [3, 1, 0], [1, 3]))


def test_batch_norm_gradients_match_gradient_tape():
    # the hand-written backward pass through batch normalisation (training
    # mode), dropout and each activation equals tf.GradientTape on the Keras model
    import keras
    rng = np.random.default_rng(0)
    X = rng.normal(size=(29, 5)).astype(np.float32)
    y = rng.integers(0, 3, 29).astype(np.int32)
    w = rng.uniform(0.2, 2.0, 29).astype(np.float32)
    layers = [dense(7, "tanh", bn=True), {"type": "dropout", "rate": 0.3}, dense(6, "elu"),
              dense(5, "sigmoid", bn=True)]
    init = initial_weights(layers, 5, 3, rng)
    init = [tuple(a + rng.normal(scale=0.2, size=a.shape).astype(np.float32)
                  if k in (1, 2, 3) else a for k, a in enumerate(layer)) for layer in init]
    net = _Net(layers, 5, 3, seed=4)
    params = [tuple(tf.constant(a) for a in layer) for layer in init]
    logits, tape = net.forward(params, tf.constant(X), tf.constant(2))
    losses, dlogits = _loss_and_grads([logits], tf.constant(y), tf.constant(w / 29), 3)
    grads = [g.numpy() for g in net.backward(params, tape, dlogits[0])]
    mask = next(rec[0].numpy() for rec in tape if len(rec) == 1)

    model = build_keras_model(layers, 5, 3, init)
    inference = model(X, training=False).numpy()  # before training mode moves the statistics
    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction="sum_over_batch_size")
    with tf.GradientTape() as gt:
        h = tf.constant(X)
        for layer in model.layers:
            h = h * mask if isinstance(layer, keras.layers.Dropout) else layer(h, training=True)
        loss = loss_fn(y, h, sample_weight=w)
    want = dict(zip([v.path for v in model.trainable_weights],
                    gt.gradient(loss, model.trainable_weights)))
    np.testing.assert_allclose(losses[0].numpy(), float(loss), rtol=1e-5)
    # the trainer's pieces: kernel, bias[, gamma, beta, mean, variance] per dense layer
    trainable = [g for g, kind in zip(grads, net.piece_kinds()) if kind not in ("mean", "variance")]
    assert len(trainable) == len(want)
    for got, ref in zip(trainable, want.values()):
        np.testing.assert_allclose(got, tf.reshape(ref, [-1]).numpy(), rtol=2e-4, atol=1e-6)
    assert all(np.all(g == 0) for g, kind in zip(grads, net.piece_kinds())
               if kind in ("mean", "variance"))
    # inference mode uses the moving statistics, as Keras does
    z = net.forward(params, tf.constant(X))[0].numpy()
    proba = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(proba, inference, rtol=1e-5, atol=1e-6)


def test_weight_sharing_keys_and_store_with_batch_norm():
    layers = [adam(0.01, 0.0), dense(8, "relu", bn=True), {"type": "dropout", "rate": 0.1},
              dense(4, "tanh")]
    assert layer_keys(layers) == [("input", "8-relu-bn"), ("8-relu-bn", "4-tanh"),
                                  ("4-tanh", "output")]
    rng = np.random.default_rng(0)
    weights = initial_weights(layers, 3, 1, rng)
    weights[0] = tuple(a + 1 for a in weights[0])
    store = SharedWeights()
    store.merge([layers], [weights])
    back = SharedWeights.from_arrays(store.to_arrays())
    assert len(back.get(("input", "8-relu-bn"), (3, 8))) == 6
    again = initial_weights(layers, 3, 1, rng, back)
    for a, b in zip(again[0], weights[0]):
        np.testing.assert_array_equal(a, b)
    # the same layer without batch normalisation does not take those weights
    plain = [dense(8, "relu")]
    assert layer_keys(plain)[0] == ("input", "8-relu")
    assert len(initial_weights(plain, 3, 1, rng, back)[0]) == 2


@pytest.fixture(scope="module")
def wine():
    from sknas.datasets import load_wine_quality
    X, y = load_wine_quality(return_X_y=True)
    return X[:500], y[:500]


RICH = SearchSpace((4, 8), ("relu", "tanh"), (0.1, 0.3), 3, batch_norm=(False, True),
                   learning_rates=(0.003, 0.03), weight_decays=(0.0, 0.1))


@pytest.fixture(scope="module")
def rich_fit(wine):
    X, y = wine
    params = {k: v for k, v in fresh(TINY).items() if k != "space"}
    return MLPNASClassifier(**dict(params, samples_per_epoch=6, controller_epochs=2),
                            space=RICH).fit(X, y)


def test_extended_search_fits_and_serves(rich_fit, wine, tmp_path):
    X, y = wine
    clf = rich_fit
    archs = clf.search_results_["architecture"]
    assert len(archs) == 12 and all(a.startswith("adam(lr=") for a in archs)
    assert all(RICH.is_valid(RICH.parse(a)) for a in archs)
    assert clf.best_layers_[0]["type"] == "optimizer"
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(clf.classes_)) and np.allclose(proba.sum(1), 1, atol=1e-5)
    # joblib and the pickle-free saved model serve the same probabilities
    joblib.dump(clf, tmp_path / "clf.joblib")
    np.testing.assert_allclose(joblib.load(tmp_path / "clf.joblib").predict_proba(X), proba,
                               rtol=1e-5, atol=1e-6)
    clf.save_model(tmp_path / "saved")
    np.testing.assert_allclose(load_model(tmp_path / "saved").predict_proba(X), proba,
                               rtol=1e-5, atol=1e-6)
    # the exported .keras file carries the batch-normalisation statistics too
    import keras
    clf.export_model(tmp_path / "winner.keras")
    exported = keras.models.load_model(tmp_path / "winner.keras")
    np.testing.assert_allclose(exported.predict(X.astype(np.float32), verbose=0), proba,
                               rtol=1e-5, atol=1e-6)
    has_bn = any(layer.get("batch_norm") for layer in clf.best_layers_)
    assert has_bn == any(isinstance(lyr, keras.layers.BatchNormalization)
                         for lyr in exported.layers)


def test_extended_search_is_reproducible_and_resumes(wine, tmp_path):
    X, y = wine
    params = {k: v for k, v in fresh(TINY).items() if k != "space"}
    params.update(samples_per_epoch=3, controller_epochs=2, space=RICH, cv=None)
    a = MLPNASClassifier(**params).fit(X, y)
    b = MLPNASClassifier(**params, log_dir=tmp_path).fit(X, y)
    assert list(a.search_results_["architecture"]) == list(b.search_results_["architecture"])
    assert np.array_equal(a.search_results_["reward"], b.search_results_["reward"])
    # a resumed run continues the same space; another space is refused
    run = b.run_dir_
    resumed = MLPNASClassifier(**dict(params, controller_epochs=3), resume=run).fit(X, y)
    assert len(resumed.search_results_["reward"]) == 9
    other = dict(params, controller_epochs=3, space=SearchSpace(units=(4, 8), max_layers=3))
    with pytest.raises(ValueError, match="space"):
        MLPNASClassifier(**other, resume=run).fit(X, y)


class _KerasRegressor(MLPNASRegressor):
    """The regressor with the tutorial's ``model.fit`` per candidate (once ``trainer='keras'``)."""
    _trainer_kind = "keras"


def test_extended_regressor_with_keras_trainer_and_workers():
    from sklearn.datasets import make_regression
    X, y = make_regression(n_samples=200, n_features=5, noise=5.0, random_state=0)
    params = {k: v for k, v in fresh(TINY).items() if k != "space"}
    params.update(samples_per_epoch=4, space=RICH)
    seq = MLPNASRegressor(**params).fit(X, y)
    par = MLPNASRegressor(**params, n_jobs=2).fit(X, y)
    assert np.array_equal(seq.search_results_["reward"], par.search_results_["reward"])
    keras_run = _KerasRegressor(**params).fit(X, y)
    assert list(keras_run.search_results_["architecture"]) == \
        list(seq.search_results_["architecture"])
    assert seq.score(X, y) > -1.0 and keras_run.predict(X).shape == (200,)


def test_grid_search_over_spaces_and_their_parameters(wine):
    X, y = wine
    params = {k: v for k, v in fresh(TINY).items() if k != "space"}
    grid = GridSearchCV(MLPNASClassifier(**params, space=SearchSpace(units=(4, 8))),
                        {"space__batch_norm": [False, True]}, cv=2).fit(X, y)
    assert grid.best_estimator_.space.batch_norm in (False, True)
    layers = grid.best_estimator_.best_layers_
    assert all(layer.get("batch_norm", False) == grid.best_params_["space__batch_norm"]
               for layer in layers if layer["type"] == "dense")
    grid = GridSearchCV(MLPNASClassifier(**params), {"space": ["tutorial", "extended"]}, cv=2,
                        error_score="raise").fit(X, y)
    assert set(grid.cv_results_["param_space"]) == {"tutorial", "extended"}
    # a preset's name is turned into its SearchSpace when a grid reaches into it
    grid = GridSearchCV(MLPNASClassifier(**params, space="extended"),
                        {"space__max_layers": [1]}, cv=2, error_score="raise").fit(X, y)
    best = grid.best_estimator_
    assert isinstance(best.space, SearchSpace) and best.space.max_layers == 1
    assert best.space.units == SearchSpace.from_preset("extended").units
    assert (best.search_results_["n_layers"] == 1).all()
    assert all(a.startswith("adam(lr=") for a in best.search_results_["architecture"])


def test_a_drawn_batch_norm_decision_is_trained(wine, tmp_path):
    """Guards against the extended space's batch-normalisation decision being dropped
    between the controller's tokens and the nets the search trains."""
    from sknas._runlog import read_checkpoint
    X, y = wine
    # one width, one activation, one layer: the two architectures differ only by the
    # decision, and a search of two candidates trains both
    space = SearchSpace((8,), ("relu",), 0.2, 1, batch_norm=(False, True))
    assert space.size == 2
    params = {k: v for k, v in fresh(TINY).items() if k != "space"}
    clf = MLPNASClassifier(**dict(params, samples_per_epoch=2), space=space,
                           log_dir=tmp_path).fit(X, y)
    res = clf.search_results_
    bn = [any(layer.get("batch_norm") for layer in layers) for layers in res["layers"]]
    assert sorted(bn) == [False, True]
    assert sorted("-bn" in a for a in res["architecture"]) == [False, True]
    assert res["n_params"][bn.index(True)] > res["n_params"][bn.index(False)]  # gamma, beta
    # the candidate trained with batch normalisation: its shared weights (in the run
    # folder's checkpoint) carry gamma, beta and moving statistics that have moved
    *_, arrays = read_checkpoint(Path(clf.run_dir_) / "checkpoint.npz")
    key = layer_keys(res["layers"][bn.index(True)])[0]
    assert key == ("input", "8-relu-bn")
    kernel, bias, gamma, beta, moving_mean, moving_var = SharedWeights.from_arrays(arrays).get(
        key, (X.shape[1], 8))
    assert not np.allclose(moving_mean, 0.0) and not np.allclose(moving_var, 1.0)


@pytest.mark.parametrize("params, message", [
    (dict(space="deep"), "The 'space' parameter"),
    (dict(space=SearchSpace.from_preset("extended").set_params(units=(4, 4))),
     "units must not repeat a width"),
    (dict(space=SearchSpace(max_layers=0)), "max_layers must be an int of at least 1"),
    (dict(space=SearchSpace(learning_rates=(0.01, -1.0))), r"learning_rates must be .* \(0, inf\)"),
    (dict(space=SearchSpace(weight_decays=())), "weight_decays must be a non-empty"),
    (dict(space=SearchSpace(activations=("relu", "wiggle"))), "'wiggle' is not a Keras activation"),
])
def test_bad_spaces_fail_before_training(params, message, wine):
    X, y = wine
    clf = MLPNASClassifier(**dict({k: v for k, v in fresh(TINY).items() if k != "space"},
                                  **params))
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)
    assert not hasattr(clf, "search_results_")


def test_flat_space_parameters_are_gone_so_nothing_can_conflict_with_space():
    # once, units=(4, 8) beside space='extended' was refused ("units must keep its
    # default"); now the widths are set in the space, and a flat name is a TypeError
    # naming where it went
    for name, value in (("units", (4, 8)), ("activations", ("relu",)), ("max_layers", 3)):
        with pytest.raises(TypeError, match=rf"{name}: use space=SearchSpace\({name}="):
            MLPNASClassifier(space="extended", **{name: value})
    with pytest.raises(TypeError, match=r"dropout_rate: use space=SearchSpace\(dropout_rates="):
        MLPNASClassifier(dropout_rate=0.3)
    clf = MLPNASClassifier(space="extended").set_params(space__units=(4, 8))
    assert clf.space.get_params() == SearchSpace.from_preset("extended").set_params(
        units=(4, 8)).get_params()


def test_cli_space_flags(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-m", "sknas", "search", "--controller-epochs", "1",
         "--samples-per-epoch", "3", "--epochs", "1", "--controller-train-steps", "1",
         "--units", "4", "8", "--space", "extended", "--learning-rates", "0.01", "0.02",
         "--batch-norm", "on", "--dropout-rates", "0.25", "--cv", "none", "--log-dir", "logs",
         "-q"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    run = next((tmp_path / "logs").glob("run-*"))
    params = json.loads((run / "params.json").read_text())
    assert params["space__learning_rates"] == [0.01, 0.02] and params["space__max_layers"] == 3
    assert params["space__batch_norm"] is True and params["space__units"] == [4, 8]
    assert "units" not in params
    for line in (run / "trials.jsonl").read_text().splitlines():
        layers = json.loads(line)["layers"]
        assert layers[0]["learning_rate"] in (0.01, 0.02)
        assert layers[0]["weight_decay"] in (0.0, 0.01, 0.1)
        assert all(layer["batch_norm"] for layer in layers if layer["type"] == "dense")
        assert all(layer["rate"] == 0.25 for layer in layers if layer["type"] == "dropout")
        assert all(layer["units"] in (4, 8) for layer in layers if layer["type"] == "dense")
        assert sum(layer["type"] != "optimizer" for layer in layers) <= 3
    bad = subprocess.run([sys.executable, "-m", "sknas", "search", "--weight-decays", "-1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "weight_decays must be" in bad.stderr


def test_tutorial_preset_is_the_default_search(wine):
    # space='tutorial' (the default) and SearchSpace() are the same search, the one the
    # removed flat parameters' defaults gave: same vocabulary, same draws, same rewards
    X, y = wine
    params = dict(controller_epochs=2, samples_per_epoch=3, epochs=2, random_state=0, cv=None)
    assert MLPNASClassifier().space == "tutorial"
    runs = [MLPNASClassifier(**params, strategy=Reinforce(train_steps=1, lstm_units=8),
                             **space).fit(X, y).search_results_
            for space in ({}, dict(space="tutorial"), dict(space=SearchSpace()))]
    for res in runs[1:]:
        assert list(res["architecture"]) == list(runs[0]["architecture"])
        assert np.array_equal(res["reward"], runs[0]["reward"])
    assert not any("adam(" in a or "-bn" in a for a in runs[0]["architecture"])


def test_results_table_has_the_decisions(rich_fit):
    res = rich_fit.search_results_
    # both batch-normalisation decisions were drawn, and each shows in the readable form
    bn = [any(layer.get("batch_norm") for layer in layers) for layers in res["layers"]]
    assert any(bn) and not all(bn)
    assert bn == ["-bn" in a for a in res["architecture"]]
    assert set(res["learning_rate"]) <= {0.003, 0.03} and set(res["weight_decay"]) <= {0.0, 0.1}
    assert all(n == sum(layer["type"] != "optimizer" for layer in layers)
               for n, layers in zip(res["n_layers"], res["layers"]))
    assert 1 <= res["n_layers"].min() and res["n_layers"].max() <= 3
