"""Learned input scaling (RealMLP's scaling layer) as a search decision:
``SearchSpace(input_scaling=(False, True))``.

A scaled candidate multiplies its input features by a learned vector (ones
at the start, no weight decay) before its first layer: the input adapter of
a net of one member. The population trainer's hand-written passes are
checked against ``tf.GradientTape`` on the served Keras model (an
``EinsumDense('bd,d->bd')`` before the first ``Dense``), and both trainers
against each other.
"""

import numpy as np
import pytest
import scipy.sparse as sp
import tensorflow as tf

from sknas import MLPNASClassifier, MLPNASRegressor, SearchSpace
from sknas._data import SCALE_LR_FACTOR, input_stats, n_params
from sknas._nets import backward_passes, forward_passes
from sknas._trainer import (Head, KerasTrainer, PopulationTrainer, _loss_and_grads, _Net,
                            build_keras_model, initial_weights, keras_weights)
from sknas._weights import SharedWeights, layer_keys

from conftest import assert_trains_alike_in_any_population
from test_members import TINY, _check_export, _member_loss_and_grads, dense


def scaled(**settings):
    return {"type": "optimizer", "scaling": 1, **settings}


def test_input_scaling_is_a_decision_of_the_space():
    space = SearchSpace(input_scaling=(False, True), max_layers=1)
    assert space.size == 2 * SearchSpace(max_layers=1).size
    for i, flag in enumerate((0, 1)):
        arch = (space.pre[0][1][i], 0)
        layers = space.layers(arch)
        assert layers[0] == {"type": "optimizer", "scaling": flag}
        text = space.describe(arch, 3)
        assert text.startswith(f"adam(scale={flag}) > ")
        assert space.parse(text) == arch == space.encode(layers)
    # True: every candidate scaled, no token to choose; False (the default): none
    always = SearchSpace(input_scaling=True, max_layers=1)
    assert always.size == SearchSpace(max_layers=1).size and not always.pre
    assert always.layers((0,))[0] == {"type": "optimizer", "scaling": 1}
    assert SearchSpace(input_scaling=False) == SearchSpace()
    for bad in [(), (True, True), 3.5]:
        with pytest.raises(ValueError, match="input_scaling"):
            SearchSpace(input_scaling=bad).check()
    # a net of members scales its input per member already
    with pytest.raises(ValueError, match="input_scaling.*members"):
        SearchSpace(input_scaling=(False, True), members=(1, 4)).check()
    SearchSpace(input_scaling=(False, True), members=(1,)).check()


def test_scaled_nets_have_layers_of_their_own_in_the_shared_weights():
    plain = [dense(8, "relu"), dense(4, "tanh")]
    one = [scaled()] + plain
    assert layer_keys(one) == [("input-scale", "8-relu"), ("8-relu", "4-tanh"),
                               ("4-tanh", "output-scale")]
    assert layer_keys([scaled(input="robust")] + plain)[0] == ("input-robust-scale", "8-relu")
    assert layer_keys([{"type": "optimizer", "scaling": 0}] + plain) == layer_keys(plain)
    rng = np.random.default_rng(0)
    weights = initial_weights(one, 5, 3, rng)
    assert [len(w) for w in weights] == [2, 2, 3]
    # RealMLP's start, 1, stored divided by the factor that makes Adam move it faster
    np.testing.assert_allclose(weights[-1][2] * SCALE_LR_FACTOR, np.ones(5))
    assert n_params(one, 5, 3) == n_params(plain, 5, 3) + 5
    store = SharedWeights()
    store.merge([one], [weights])
    again = SharedWeights.from_arrays(store.to_arrays())
    for a, b in zip(again.table[("4-tanh", "output-scale")], weights[-1]):
        np.testing.assert_array_equal(a, b)


ARCHS = [  # scaled nets beside a plain net and a net of members, in one population
    [scaled(label_smoothing=0.1, input="robust"), dense(7, "relu", bn=True),
     {"type": "dropout", "rate": 0.3}, dense(5, "silu")],
    [scaled(label_smoothing=0.0, input="none"), dense(6, "tanh")],
    [{"type": "optimizer", "members": 3, "label_smoothing": 0.0, "input": "none"},
     dense(6, "elu", bn=True)],
    [{"type": "optimizer", "label_smoothing": 0.0, "input": "none"}, dense(6, "elu", bn=True)],
]


@pytest.mark.parametrize("n_classes", [2, 4])
def test_hand_written_passes_of_scaled_nets_match_gradient_tape(n_classes):
    rng = np.random.default_rng(n_classes)
    n_rows, n_features = 37, 5
    X = (rng.standard_t(3, size=(n_rows, n_features)) * 2 + 1).astype(np.float32)
    y = rng.integers(0, n_classes, n_rows).astype(np.int32)
    w = rng.uniform(0.1, 3.0, n_rows).astype(np.float32)
    stats = input_stats(X, ("robust",))
    head = Head.of(n_classes)
    nets, params, weights = [], [], []
    for j, layers in enumerate(ARCHS):
        init = initial_weights(layers, n_features, head.n_outputs, rng)
        # biases, batch-normalisation offsets and scales away from their starts
        init = [tuple(a if i == 0 or i >= 4 and len(t) == 6 else
                      (a + rng.normal(scale=0.3, size=a.shape)).astype(np.float32)
                      for i, a in enumerate(t)) for t in init]
        nets.append(_Net(layers, n_features, n_classes, seed=10 + j, input_stats=stats))
        params.append([tuple(tf.constant(a) for a in t) for t in init])
        weights.append(init)
    passes = forward_passes(nets, params, tf.constant(X), tf.constant(3))
    losses, dlogits = _loss_and_grads([f[0] for f in passes], tf.constant(y),
                                      tf.constant(w / n_rows), n_classes,
                                      smoothing=[net.label_smoothing for net in nets],
                                      members=[net.members for net in nets])
    # backward together: nets 0 and 3 share a batch-normalisation round
    grads = backward_passes(nets, params, [f[1] for f in passes], dlogits)
    for j, layers in enumerate(ARCHS):
        k = nets[j].members
        tape = passes[j][1]
        flat = [g.numpy() for g in grads[j]]
        masks = [record[0].numpy() for record in tape if len(record) == 1]
        model = build_keras_model(layers, n_features, n_classes, weights[j], input_stats=stats,
                                  each_member=True)
        loss, want = _member_loss_and_grads(model, masks, X, y, w, head,
                                            layers[0]["label_smoothing"], k)
        np.testing.assert_allclose(losses[j].numpy(), loss, rtol=2e-6)
        as_keras = build_keras_model(layers, n_features, n_classes,
                                     [tuple(p) for p in nets[j].unflatten(flat, np.reshape)],
                                     input_stats=stats, each_member=True)
        got = [v.numpy() for v in as_keras.trainable_weights]
        assert [g.shape for g in got] == [g.shape for g in want]
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=3e-6)
        served = build_keras_model(layers, n_features, n_classes, weights[j], input_stats=stats)
        z = nets[j].combine(nets[j].forward(params[j], tf.constant(X))[0]).numpy()
        proba = served(X, training=False).numpy()
        mine = (1 / (1 + np.exp(-z)) if n_classes == 2
                else np.exp(z) / np.exp(z).sum(1, keepdims=True))
        np.testing.assert_allclose(mine, proba, rtol=1e-5, atol=1e-6)
        assert [len(t) for t in keras_weights(served)] == [len(t) for t in weights[j]]
        for a, b in zip(keras_weights(served), weights[j]):
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)
    # the scale's gradient is not zero: it learns
    assert np.abs(grads[1][-1].numpy()).max() > 1e-4


def test_both_trainers_train_scaled_nets_alike(cancer):
    data = cancer
    opt = {"learning_rate": 0.003, "weight_decay": 0.01}
    archs = [[scaled(**opt), dense(16, "relu"), dense(8, "tanh")],
             [scaled(**opt), dense(12, "elu")]]
    rng = np.random.default_rng(0)
    cands = [(layers, initial_weights(layers, data.n_features, 1, rng), 10 + j)
             for j, layers in enumerate(archs)]
    n = len(data.y)
    pop = PopulationTrainer(epochs=4, batch_size=n).train(cands, data, seed=0)
    ref = KerasTrainer(epochs=4, batch_size=n).train(cands, data, seed=0)
    for p, r in zip(pop, ref):
        assert p.status == r.status == "ok"
        np.testing.assert_allclose(p.val_scores, r.val_scores, atol=0.006)
        for a, b in zip(p.weights, r.weights):
            for u, v in zip(a, b):
                np.testing.assert_allclose(u, v, rtol=1e-3, atol=2e-5)
    # the scale moved, SCALE_LR_FACTOR times as far as Adam's steps move a weight
    # (at most about the learning rate a step); without a gradient it would stay at 1
    scale = pop[0].weights[-1][2] * SCALE_LR_FACTOR
    assert not np.allclose(scale, 1.0)
    moved = np.abs(scale - 1.0).max()
    assert 4 * 0.003 < moved <= SCALE_LR_FACTOR * 4 * 0.003 * 1.01


def test_a_search_over_scaling_serves_a_safe_keras_model(blobs, tmp_path):
    import joblib
    X, y = blobs
    y = (y == 0).astype(int)
    space = SearchSpace(input_scaling=(False, True), units=(8, 16), max_layers=1)
    clf = MLPNASClassifier(space=space, **{**TINY, "samples_per_epoch": 6}).fit(X, y)
    texts = clf.search_results_["architecture"]
    assert {t.split(")")[0] for t in texts} == {"adam(scale=0", "adam(scale=1"}
    assert clf.score(X, y) > 0.8
    _check_export(clf, X, tmp_path / "scaled.keras", column=True)
    again = joblib.load(joblib.dump(clf, tmp_path / "clf.joblib")[0])
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    only = MLPNASClassifier(space=SearchSpace(input_scaling=True, units=(8,), max_layers=1),
                            **TINY).fit(X, y)
    equations = {lyr.equation for sub in only.model_.layers
                 for lyr in getattr(sub, "layers", [sub]) if hasattr(lyr, "equation")}
    assert equations == {"bd,d->bd"}


def test_a_scaled_regressor_predicts_in_its_targets_units(blobs, tmp_path):
    X, _ = blobs
    y = 50.0 + 10.0 * X[:, 0] - 5.0 * X[:, 1] ** 2
    space = SearchSpace(input_scaling=True, units=(16,), max_layers=1)
    reg = MLPNASRegressor(space=space, **{**TINY, "epochs": 8}).fit(X, y)
    assert reg.score(X, y) > 0.5
    _check_export(reg, X, tmp_path / "scaled.keras", column=False)


def test_sparse_x_is_refused_with_input_scaling(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="input_scaling"):
        MLPNASClassifier(space=SearchSpace(input_scaling=(False, True)), **TINY).fit(
            sp.csr_matrix(np.abs(X)), y)


def test_a_scaled_net_trains_bit_identically_in_any_population(cancer):
    opt = {"learning_rate": 0.003, "weight_decay": 0.01}
    archs = [[scaled(**opt), dense(16, "relu", bn=True), dense(8, "tanh")],
             [{"type": "optimizer", **opt}, dense(8, "elu", bn=True)],
             [scaled(**opt), dense(12, "sigmoid"), {"type": "dropout", "rate": 0.3}],
             [{"type": "optimizer", "members": 4, **opt}, dense(10, "tanh", bn=True)]]
    rng = np.random.default_rng(0)
    cands = [(layers, initial_weights(layers, cancer.n_features, 1, rng), 10 + j)
             for j, layers in enumerate(archs)]
    trainer = PopulationTrainer(epochs=2, early_stopping=True, n_iter_no_change=1)
    together = assert_trains_alike_in_any_population(
        trainer, cands, cancer, ([0], [2], [3, 0], [1, 2, 0]))
    assert all(r.status == "ok" for r in together)
