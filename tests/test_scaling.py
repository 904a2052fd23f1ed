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

from sknas import MLPNASClassifier, SearchSpace
from sknas._data import SCALE_LR_FACTOR, n_params
from sknas._trainer import PopulationTrainer, initial_weights
from sknas._weights import SharedWeights, layer_keys

from conftest import (assert_both_trainers_alike, assert_trains_alike_in_any_population,
                      check_passes_against_gradient_tape)
from test_members import TINY, _check_export, check_regressor_units, dense


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
    grads = check_passes_against_gradient_tape(ARCHS, n_classes)[3]
    # the scale's gradient is not zero: it learns
    assert np.abs(grads[1][-1].numpy()).max() > 1e-4


def test_both_trainers_train_scaled_nets_alike(cancer):
    data = cancer
    opt = {"learning_rate": 0.003, "weight_decay": 0.01}
    archs = [[scaled(**opt), dense(16, "relu"), dense(8, "tanh")],
             [scaled(**opt), dense(12, "elu")]]
    pop, _ = assert_both_trainers_alike(archs, data)
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
    check_regressor_units(SearchSpace(input_scaling=True, units=(16,), max_layers=1), blobs[0],
                          tmp_path / "scaled.keras")


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
