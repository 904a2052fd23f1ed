"""Members (TabM-mini) as a search decision: ``SearchSpace(members=(1, 8))``.

A candidate of ``k > 1`` members shares its hidden layers among them; each
member scales the input by its own adapter and has its own output layer.
The population trainer's hand-written passes are checked against
``tf.GradientTape`` on the Keras model of each member's output (the loss is
the members' mean loss), the combined logits against the served model (the
members' mean prediction), and both trainers against each other.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from sknas import MLPNASClassifier, MLPNASRegressor, SearchSpace
from sknas._data import n_params
from sknas._trainer import Head, PopulationTrainer, build_keras_model, initial_weights
from sknas._weights import SharedWeights, layer_keys

from conftest import (assert_both_trainers_alike, assert_trains_alike_in_any_population,
                      check_passes_against_gradient_tape)

TINY = dict(controller_epochs=1, samples_per_epoch=4, epochs=2, n_finalists=2, cv=2,
            random_state=0)


def dense(units, act, bn=False):
    layer = {"type": "dense", "units": units, "activation": act}
    return {**layer, "batch_norm": True} if bn else layer


def test_members_are_a_decision_of_the_space():
    space = SearchSpace(members=(1, 4, 8), max_layers=1)
    assert space.size == 3 * SearchSpace(max_layers=1).size
    seen = set()
    for arch in [(space.pre[0][1][i], 0) for i in range(3)]:
        layers = space.layers(arch)
        seen.add(layers[0]["members"])
        text = space.describe(arch, 3)
        assert text.startswith(f"adam(k={layers[0]['members']}) > ")
        assert space.parse(text) == arch == space.encode(layers)
    assert seen == {1, 4, 8}
    for bad in [(0, 8), (1.5,), (), (8, 8), "eight"]:
        with pytest.raises(ValueError, match="members"):
            SearchSpace(members=bad).check()


def test_members_have_layers_of_their_own_in_the_shared_weights():
    plain = [dense(8, "relu"), dense(4, "tanh")]
    eight = [{"type": "optimizer", "members": 8}] + plain
    robust = [{"type": "optimizer", "input": "robust", "members": 8}] + plain
    assert layer_keys(eight) == [("input-k8", "8-relu"), ("8-relu", "4-tanh"),
                                 ("4-tanh", "output-k8")]
    assert layer_keys(robust)[0] == ("input-robust-k8", "8-relu")
    assert layer_keys([{"type": "optimizer", "members": 1}] + plain) == layer_keys(plain)
    # the output layer's three arrays survive the table's files
    rng = np.random.default_rng(0)
    weights = initial_weights(eight, 5, 3, rng)
    assert [len(w) for w in weights] == [2, 2, 3]
    kernel, bias, adapters = weights[-1]
    assert kernel.shape == (4, 24) and bias.shape == (24,) and adapters.shape == (40,)
    assert set(np.unique(adapters)) == {-1.0, 1.0}  # random signs, TabM-mini's start
    assert n_params(eight, 5, 3) == n_params(plain, 5, 3) + 7 * (4 * 3 + 3) + 40
    store = SharedWeights()
    store.merge([eight], [weights])
    again = SharedWeights.from_arrays(store.to_arrays())
    assert "adapters" in "".join(store.to_arrays())
    for a, b in zip(again.table[("4-tanh", "output-k8")], weights[-1]):
        np.testing.assert_array_equal(a, b)
    # a candidate of 4 members does not take the output layer of 8
    four = [{"type": "optimizer", "members": 4}] + plain
    fresh = initial_weights(four, 5, 3, rng, store)
    assert fresh[-1][0].shape == (4, 12) and fresh[1][0] is not weights[1][0]
    np.testing.assert_array_equal(fresh[1][0], weights[1][0])  # the hidden layer is shared


ARCHS = [
    [{"type": "optimizer", "members": 4, "label_smoothing": 0.1, "input": "robust"},
     dense(7, "relu", bn=True), {"type": "dropout", "rate": 0.3}, dense(5, "silu")],
    [{"type": "optimizer", "members": 3, "label_smoothing": 0.0, "input": "none"},
     dense(6, "tanh")],
    [{"type": "optimizer", "members": 1, "label_smoothing": 0.0, "input": "none"},
     dense(6, "elu", bn=True)],
]


@pytest.mark.parametrize("n_classes", [2, 4])
def test_hand_written_passes_of_members_match_gradient_tape(n_classes):
    nets, weights, passes, _, X, stats = check_passes_against_gradient_tape(ARCHS, n_classes)
    assert passes[0][0].shape == (4 * len(X), Head.of(n_classes).n_outputs)
    for j, layers in enumerate(ARCHS):
        if nets[j].members > 1:  # the served model is the mean of the members' predictions
            served = build_keras_model(layers, X.shape[1], n_classes, weights[j],
                                       input_stats=stats)(X, training=False).numpy()
            each = build_keras_model(layers, X.shape[1], n_classes, weights[j], input_stats=stats,
                                     each_member=True)(X, training=False).numpy()
            np.testing.assert_allclose(each.mean(axis=1), served, rtol=1e-5, atol=1e-6)
            assert np.ptp(each, axis=1).max() > 1e-3  # the members differ


def test_both_trainers_train_members_alike(cancer):
    data = cancer
    archs = [[{"type": "optimizer", "members": 4, "learning_rate": 0.003, "weight_decay": 0.01},
              dense(16, "relu"), dense(8, "tanh")],
             [{"type": "optimizer", "members": 1, "learning_rate": 0.003, "weight_decay": 0.01},
              dense(16, "relu"), dense(8, "tanh")]]
    pop, cands = assert_both_trainers_alike(archs, data)
    # the adapters moved, and took no decay: with a zero gradient they would stay
    start = cands[0][1][-1][2]
    assert not np.allclose(pop[0].weights[-1][2], start)
    # scored on their mean prediction: the out-of-fold outputs are probabilities
    out = PopulationTrainer(epochs=2).train(cands[:1], data, seed=0, val_outputs=True)[0]
    assert out.val_outputs.shape == (len(data.y_val), 1)
    assert 0 <= out.val_outputs.min() and out.val_outputs.max() <= 1
    acc = np.mean((out.val_outputs[:, 0] > 0.5) == data.y_val)
    assert acc == pytest.approx(out.val_scores[-1], abs=1e-6)


def _check_export(est, X, path, column):
    import keras
    est.export_model(path)
    model = keras.saving.load_model(path, safe_mode=True)
    want = est.predict_proba(X)[:, 1] if column else est.predict(X)
    np.testing.assert_allclose(model.predict(X, verbose=0)[:, 0], want, rtol=1e-5, atol=1e-5)


def test_a_search_over_members_serves_a_safe_keras_model(blobs, tmp_path):
    import joblib
    X, y = blobs
    y = (y == 0).astype(int)
    space = SearchSpace(members=(1, 4), units=(8, 16), max_layers=1)
    clf = MLPNASClassifier(space=space, **{**TINY, "samples_per_epoch": 6}).fit(X, y)
    texts = clf.search_results_["architecture"]
    assert {t.split(")")[0] for t in texts} <= {"adam(k=1", "adam(k=4"}
    assert clf.score(X, y) > 0.8
    _check_export(clf, X, tmp_path / "members.keras", column=True)
    again = joblib.load(joblib.dump(clf, tmp_path / "clf.joblib")[0])
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    # only members: every served net holds the mean of 4
    only = MLPNASClassifier(space=SearchSpace(members=(4,), units=(8,), max_layers=1),
                            **TINY).fit(X, y)
    kinds = {type(lyr).__name__ for sub in only.model_.layers
             for lyr in getattr(sub, "layers", [sub])}
    assert {"RepeatVector", "EinsumDense", "GlobalAveragePooling1D"} <= kinds


def check_regressor_units(space, X, path):
    """A regressor searching ``space`` fits a target far from 0 and 1 and
    exports a model that predicts in its units."""
    y = 50.0 + 10.0 * X[:, 0] - 5.0 * X[:, 1] ** 2
    reg = MLPNASRegressor(space=space, **{**TINY, "epochs": 8}).fit(X, y)
    assert reg.score(X, y) > 0.5
    _check_export(reg, X, path, column=False)


def test_a_regressor_of_members_predicts_in_its_targets_units(blobs, tmp_path):
    check_regressor_units(SearchSpace(members=(4,), units=(16,), max_layers=1), blobs[0],
                          tmp_path / "members.keras")


def test_sparse_x_is_refused_with_members(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="members"):
        MLPNASClassifier(space=SearchSpace(members=(1, 4)), **TINY).fit(
            sp.csr_matrix(np.abs(X)), y)
    # one member is a plain MLP: sparse X is fine
    MLPNASClassifier(space=SearchSpace(members=(1,), units=(8,), max_layers=1),
                     **TINY).fit(sp.csr_matrix(np.abs(X)), y)


def test_a_net_of_members_trains_bit_identically_in_any_population(cancer):
    # batch normalisations are joined per number of members, and each group's
    # moving statistics sit in their own place: a net's numbers must not depend on
    # what trains beside it, members or plain nets
    def adam(k, lr=0.003):
        return {"type": "optimizer", "members": k, "learning_rate": lr, "weight_decay": 0.01}
    archs = [[adam(4), dense(16, "relu", bn=True), dense(8, "tanh")],
             [adam(1), dense(8, "elu", bn=True), dense(8, "sigmoid", bn=True)],
             [adam(3, 0.01), dense(12, "sigmoid", bn=True), {"type": "dropout", "rate": 0.3}],
             [adam(4), dense(10, "tanh"), dense(6, "relu", bn=True)]]
    rng = np.random.default_rng(0)
    cands = [(layers, initial_weights(layers, cancer.n_features, 1, rng), 10 + j)
             for j, layers in enumerate(archs)]
    trainer = PopulationTrainer(epochs=2, early_stopping=True, n_iter_no_change=1)
    together = assert_trains_alike_in_any_population(
        trainer, cands, cancer, ([0], [2], [3, 1], [3, 0, 2], [1, 0]))
    assert all(r.status == "ok" for r in together)
