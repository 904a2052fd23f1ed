"""The 'modern' ingredients as search decisions: the robust, smoothly clipped
input and label smoothing (``SearchSpace(input_transforms=...,
label_smoothings=...)``), and the ``'modern'`` preset that searches them.

The population trainer's hand-written passes are checked against
``tf.GradientTape`` on the Keras model that serves the candidate; the served
model is checked to load with ``safe_mode=True`` and to predict as the fitted
estimator does.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from sknas import MLPNASClassifier, MLPNASRegressor, SearchSpace
from sknas._data import PLE_BINS, input_stats, ple_input_stats, robust_input_stats
from sknas._keras import _keras_loss
from sknas._trainer import (CandidateData, Head, KerasTrainer, PopulationTrainer,
                            _loss_and_grads, _Net, build_keras_model, initial_weights)

from conftest import assert_probabilities_match

TINY = dict(controller_epochs=1, samples_per_epoch=4, epochs=2, n_finalists=2, cv=2,
            random_state=0)


def dense(units, act):
    return {"type": "dense", "units": units, "activation": act}


def test_the_modern_preset_searches_the_input_and_label_smoothing():
    space = SearchSpace.from_preset("modern")
    extended = SearchSpace.from_preset("extended")
    assert space.get_params()["input_transforms"] == ("none", "robust")
    assert space.get_params()["label_smoothings"] == (0.0, 0.1)
    assert {"selu", "silu"} <= set(space.activations)
    assert space.get_params()["lr_schedules"] == ("constant", "cosine")
    assert space.n_pre == 5 == extended.n_pre + 3  # input, lr, wd, schedule, label smoothing
    # the extended space's token ids are unchanged by the new decisions
    assert SearchSpace(**{**extended.get_params(), "label_smoothings": None,
                          "lr_schedules": None}) == extended
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(50):  # every valid architecture reads back the same
        arch, prefix = [], []
        while True:
            mask = space.allowed(prefix)
            tok = int(rng.choice(np.flatnonzero(mask)))
            if tok == space.end_token:
                break
            prefix.append(tok)
        arch = tuple(prefix)
        layers = space.layers(arch)
        settings = layers[0]
        assert settings["type"] == "optimizer"
        assert settings["input"] in ("none", "robust") and settings["label_smoothing"] in (0, 0.1)
        assert settings["schedule"] in ("constant", "cosine")
        seen.add((settings["input"], settings["label_smoothing"], settings["schedule"]))
        text = space.describe(arch, 3)
        assert f"in={settings['input']}" in text and "ls=" in text and "sched=" in text
        assert space.parse(text) == arch == space.encode(layers)
    assert len(seen) == 8


@pytest.mark.parametrize("params, match", [
    ({"label_smoothings": (0.0, 1.0)}, "label_smoothings"),
    ({"label_smoothings": (-0.1,)}, "label_smoothings"),
    ({"input_transforms": ("none", "quantile")}, "input_transforms"),
    ({"input_transforms": ("robust", "robust")}, "input_transforms"),
    ({"input_transforms": ()}, "input_transforms"),
    ({"lr_schedules": ("cosine", "linear")}, "lr_schedules"),
])
def test_bad_modern_settings_name_the_parameter(params, match):
    with pytest.raises(ValueError, match=match):
        SearchSpace(**params).check()


def test_an_architecture_outside_the_space_is_refused():
    space = SearchSpace(input_transforms=("none", "robust"))
    with pytest.raises(ValueError, match="input"):
        space.parse("adam(in=quantile) > 8-relu > softmax(3)")
    with pytest.raises(ValueError, match="optimizer"):
        SearchSpace().parse("adam(in=robust) > 8-relu > softmax(3)")


def test_robust_input_stats():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(5.0, 2.0, 20000),                     # normal: its std
                         np.r_[np.zeros(19990), np.ones(10)],             # IQR 0: half range
                         np.full(20000, 7.0)])                            # constant: 1
    mean, variance = robust_input_stats(X)
    assert mean.dtype == variance.dtype == np.float32
    np.testing.assert_allclose(mean, [5.0, 0.0, 7.0], atol=0.05)
    np.testing.assert_allclose(np.sqrt(variance), [2.0, 0.5, 1.0], rtol=0.03)


def test_ple_input_stats():
    X = np.column_stack([np.arange(1001.0), np.r_[np.zeros(900), np.ones(101)]])
    lower, variance = ple_input_stats(X, bins=4)
    assert lower.shape == variance.shape == (8,)
    np.testing.assert_allclose(lower[:4], [0, 250, 500, 750])           # quantile edges
    np.testing.assert_allclose(np.sqrt(variance[:4]), 250, rtol=1e-6)
    np.testing.assert_allclose(lower[4:], [0, 0, 0, 0])                  # a binary feature:
    np.testing.assert_allclose(np.sqrt(variance[4:]), [1e-6, 1e-6, 1e-6, 1], rtol=1e-3)  # steps
    assert input_stats(X, ("none",)) is None
    assert set(input_stats(X, ("none", "robust", "ple"))) == {"robust", "ple"}


# each candidate: its settings entry, then its layers (widths small, two activations new)
MODERN_ARCHS = [
    [{"type": "optimizer", "input": "robust", "label_smoothing": 0.1},
     dense(7, "selu"), {"type": "dropout", "rate": 0.3}, dense(5, "silu")],
    [{"type": "optimizer", "input": "none", "label_smoothing": 0.2}, dense(6, "tanh")],
    [{"type": "optimizer", "input": "robust", "label_smoothing": 0.0}, dense(6, "relu")],
    [{"type": "optimizer", "input": "ple", "label_smoothing": 0.1}, dense(6, "elu"),
     dense(4, "relu")],
]


def _keras_loss_and_grads(model, masks, X, y, w, head, smoothing):
    """Keras' loss (the candidate's own, label smoothing included) of ``model``
    on a batch, reduced as ``model.fit`` reduces it, and its gradients by
    ``GradientTape``; each ``Dropout`` uses the population trainer's mask."""
    import keras
    loss_fn = _keras_loss(head, smoothing)
    if isinstance(loss_fn, str):
        loss_fn = keras.losses.get(loss_fn)
    masks = iter(masks)
    target = y[:, None].astype(np.float32) if head.kind == "binary" else y
    with tf.GradientTape() as tape:
        h = tf.constant(X)
        for layer in model.layers:
            h = h * next(masks) if isinstance(layer, keras.layers.Dropout) else layer(h)
        per_row = loss_fn(target, h) if not isinstance(loss_fn, keras.losses.Loss) else None
        if per_row is None:
            loss = loss_fn(target, h, sample_weight=w)
        else:
            loss = tf.reduce_sum(tf.reshape(per_row, [-1]) * w) / len(w)
    grads = tape.gradient(loss, model.trainable_weights)
    return float(loss), [g.numpy().ravel() for g in grads]


@pytest.mark.parametrize("n_classes", [2, 4])
def test_hand_written_passes_match_gradient_tape_with_the_modern_settings(n_classes):
    # the robust input (with outliers that its clip tames), label smoothing and the
    # SELU and SiLU layers: the population trainer's loss and every gradient equal
    # what GradientTape finds on the served Keras model, up to float32 round-off
    rng = np.random.default_rng(n_classes)
    n_rows, n_features = 41, 5
    X = rng.standard_t(2, size=(n_rows, n_features)).astype(np.float32) * 3 + 1
    y = rng.integers(0, n_classes, n_rows).astype(np.int32)
    w = rng.uniform(0.1, 3.0, n_rows).astype(np.float32)
    stats = input_stats(X, ("robust", "ple"))
    head = Head.of(n_classes)
    nets, params, weights = [], [], []
    for k, layers in enumerate(MODERN_ARCHS):
        init = initial_weights(layers, n_features, head.n_outputs, rng)
        init = [(kern, rng.normal(scale=0.3, size=bias.shape).astype(np.float32))
                for kern, bias in init]
        nets.append(_Net(layers, n_features, n_classes, seed=10 + k, input_stats=stats))
        params.append([(tf.constant(kern), tf.constant(bias)) for kern, bias in init])
        weights.append(init)
    step = tf.constant(3)
    passes = [net.forward(p, tf.constant(X), step) for net, p in zip(nets, params)]
    losses, dlogits = _loss_and_grads([f[0] for f in passes], tf.constant(y),
                                      tf.constant(w / n_rows), n_classes,
                                      smoothing=[net.label_smoothing for net in nets])
    plain, _ = _loss_and_grads([f[0] for f in passes], tf.constant(y), tf.constant(w / n_rows),
                               n_classes)
    assert losses[1] != plain[1]  # the smoothing is really applied
    for k, layers in enumerate(MODERN_ARCHS):
        tape = passes[k][1]
        grads = [g.numpy() for g in nets[k].backward(params[k], tape, dlogits[k])]
        masks = [record[0].numpy() for record in tape if len(record) == 1]
        model = build_keras_model(layers, n_features, n_classes, weights[k], input_stats=stats)
        loss, want = _keras_loss_and_grads(model, masks, X, y, w, head,
                                           layers[0]["label_smoothing"])
        np.testing.assert_allclose(losses[k].numpy(), loss, rtol=2e-6)
        assert [g.shape for g in grads] == [g.shape for g in want]
        for got, ref in zip(grads, want):
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=2e-6)
        logits = nets[k].forward(params[k], tf.constant(X))[0].numpy()
        assert_probabilities_match(logits, model, X, n_classes)
    # the robust nets' first layer saw the clipped input, whose values stay within 3
    first = passes[0][1][0][0].numpy()
    assert np.abs(first).max() <= 3 and np.abs(X).max() > 30
    # the piecewise-linear net's first layer saw 16 inputs per feature, each in [0, 1],
    # and a feature's bins sum to its place in its quantiles (times the bins)
    encoded = passes[3][1][0][0].numpy()
    assert encoded.shape == (n_rows, n_features * PLE_BINS)
    assert encoded.min() >= 0 and encoded.max() <= 1
    rank = encoded.reshape(n_rows, n_features, PLE_BINS).sum(axis=2)[:, 0]
    assert np.array_equal(np.argsort(rank, kind="stable"), np.argsort(X[:, 0], kind="stable"))


def test_population_trainer_trains_the_modern_settings_as_model_fit():
    from sklearn.datasets import load_breast_cancer
    X, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    X, y = X[order].astype(np.float32), y[order].astype(np.int32)  # raw, unscaled features
    stats = input_stats(X[:-114], ("robust",))
    ones = np.ones(len(y), np.float32)
    data = CandidateData(X[:-114], y[:-114], ones[:-114], X[-114:], y[-114:], ones[-114:], 2,
                         input_stats=stats)
    archs = [[{"type": "optimizer", "input": "robust", "label_smoothing": 0.1},
              dense(32, "silu")],
             [{"type": "optimizer", "input": "robust", "label_smoothing": 0.0}, dense(16, "selu"),
              dense(8, "relu")]]
    rng = np.random.default_rng(0)
    cands = [(layers, initial_weights(layers, 30, 1, rng), 10 + k)
             for k, layers in enumerate(archs)]
    pop = PopulationTrainer(epochs=5, learning_rate=0.003).train(cands, data, seed=0)
    ref = KerasTrainer(epochs=5, learning_rate=0.003).train(cands, data, seed=0)
    pop_acc = np.array([r.val_scores[-1] for r in pop])
    ref_acc = np.array([r.val_scores[-1] for r in ref])
    # on the raw features the robust input is what makes them learn at all
    assert np.all(pop_acc > 0.9) and np.all(ref_acc > 0.9)
    np.testing.assert_allclose(pop_acc, ref_acc, atol=0.05)


@pytest.fixture(scope="module")
def heavy_tailed():
    rng = np.random.default_rng(0)
    X = rng.standard_t(1.5, size=(240, 4)) * 100.0
    y = (np.tanh(X[:, 0] / 100) + 0.3 * rng.normal(size=240) > 0).astype(int)
    return X, y


def test_a_modern_search_serves_a_safe_keras_model(heavy_tailed, tmp_path):
    X, y = heavy_tailed
    clf = MLPNASClassifier(space="modern", **TINY).fit(X, y)
    mean, variance = clf.input_stats_["robust"]
    np.testing.assert_allclose(mean, np.median(X, axis=0), rtol=1e-5)
    assert all(text.startswith("adam(in=") for text in clf.search_results_["architecture"])
    _check_export(clf, X, tmp_path / "modern.keras")


@pytest.mark.parametrize("transform, layer", [("robust", "Normalization"),
                                              ("ple", "RepeatVector")])
def test_each_input_transform_is_served_in_built_in_layers(heavy_tailed, tmp_path, transform,
                                                           layer):
    X, y = heavy_tailed
    space = SearchSpace(input_transforms=(transform,), label_smoothings=(0.1,))
    clf = MLPNASClassifier(space=space, **TINY).fit(X, y)
    assert set(clf.input_stats_) == {transform}
    kinds = {type(lyr).__name__ for sub in clf.model_.layers
             for lyr in getattr(sub, "layers", [sub])}
    assert layer in kinds
    assert clf.score(X, y) > 0.6
    _check_export(clf, X, tmp_path / f"{transform}.keras")


def _check_export(clf, X, path):
    """The exported model loads with ``safe_mode=True`` and predicts as the estimator."""
    import keras
    clf.export_model(path)
    model = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(model.predict(X, verbose=0)[:, 0], clf.predict_proba(X)[:, 1],
                               rtol=1e-5, atol=1e-6)


def test_no_input_stats_without_the_robust_input(heavy_tailed):
    X, y = heavy_tailed
    assert MLPNASClassifier(**TINY).fit(X, y).input_stats_ is None


def test_what_the_modern_settings_cannot_take(heavy_tailed):
    X, y = heavy_tailed
    with pytest.raises(ValueError, match="label_smoothings"):
        MLPNASRegressor(space=SearchSpace(label_smoothings=(0.0, 0.1)), **TINY).fit(X, X[:, 0])
    # a regressor may search the robust input, and no label smoothing
    reg = MLPNASRegressor(space=SearchSpace(input_transforms=("none", "robust"),
                                            label_smoothings=(0.0,)), **TINY).fit(X, X[:, 0])
    assert reg.input_stats_ is not None
    # the regressor's 'modern' preset has no label smoothing, also once tuned
    reg = MLPNASRegressor(space="modern", **TINY).fit(X, X[:, 0])
    assert all("ls=" not in text for text in reg.search_results_["architecture"])
    reg = MLPNASRegressor(space="modern", **TINY).set_params(space__max_layers=1)
    assert reg.space.label_smoothings is None
    with pytest.raises(ValueError, match="sparse X"):
        MLPNASClassifier(space="modern", **TINY).fit(sp.csr_matrix(X), y)


def test_the_robust_input_has_first_layers_of_its_own_in_the_shared_weights():
    from sknas._weights import layer_keys
    plain = [dense(8, "relu"), dense(4, "tanh")]
    robust = [{"type": "optimizer", "input": "robust", "label_smoothing": 0.1}] + plain
    smoothed = [{"type": "optimizer", "input": "none", "label_smoothing": 0.1}] + plain
    assert layer_keys(plain) == layer_keys(smoothed)  # label smoothing is transparent
    assert layer_keys(robust)[0] == ("input-robust", "8-relu")
    assert layer_keys(robust)[1:] == layer_keys(plain)[1:]  # deeper layers are shared


@pytest.mark.parametrize("schedule", ["cosine", "coslog4"])
def test_a_scheduled_candidate_trains_as_model_fit_does(cancer, schedule):
    # one candidate, no dropout and no shuffling difference that matters at one
    # epoch of full batches: both trainers take the same steps at the same rates
    data = cancer
    layers = [{"type": "optimizer", "learning_rate": 0.01, "weight_decay": 0.01,
               "schedule": schedule}, dense(8, "tanh")]
    init = initial_weights(layers, data.n_features, 1, np.random.default_rng(0))
    n = len(data.y)
    cand = [(layers, init, 10)]
    pop = PopulationTrainer(epochs=3, batch_size=n).train(cand, data, seed=0)[0]
    ref = KerasTrainer(epochs=3, batch_size=n).train(cand, data, seed=0)[0]
    constant = [{**layers[0], "schedule": "constant"}] + layers[1:]
    flat = PopulationTrainer(epochs=3, batch_size=n).train([(constant, init, 10)], data,
                                                           seed=0)[0]
    for (a, b), (c, _) in zip(zip(pop.weights, ref.weights), zip(flat.weights, ref.weights)):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-4, atol=1e-6)
        assert not np.allclose(a[0], c[0])  # the schedule really moved the rate


def test_schedule_factors():
    from sknas._nets import schedule_factor
    t = tf.constant([0.0, 0.5, 1.0])
    np.testing.assert_allclose(schedule_factor("cosine", t).numpy(), [1.0, 0.5, 0.0], atol=1e-6)
    ends = tf.constant([1 / 15, 3 / 15, 7 / 15, 1.0])  # coslog4: four cycles back to 0
    np.testing.assert_allclose(schedule_factor("coslog4", ends).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(schedule_factor("coslog4", tf.constant(0.0)).numpy(), 0.0)
    peak = tf.constant((np.sqrt(2) - 1) / 15, tf.float32)
    np.testing.assert_allclose(schedule_factor("coslog4", peak).numpy(), 1.0, atol=1e-5)

