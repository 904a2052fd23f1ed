"""Periodic embeddings ('plr', "lite") as an input transform of the space:
``SearchSpace(input_transforms=(..., 'plr'))``.

A candidate with ``'plr'`` embeds each robust, clipped feature in
``PLR_WIDTH`` learned numbers (the cosines and sines of its own learned
frequencies, a linear layer the features share, a ReLU) before its first
layer. The population trainer's hand-written passes of the embedding are
checked against ``tf.GradientTape`` on the served Keras model, both trainers
against each other, and the served model against ``safe_mode=True``.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from sknas import MLPNASClassifier, MLPNASRegressor, SearchSpace
from sknas._data import PLR_FREQUENCIES, PLR_LR_FACTOR, PLR_WIDTH, n_params
from sknas._trainer import PopulationTrainer, initial_weights
from sknas._weights import EMBEDDING_KEY, SharedWeights, layer_keys

from conftest import (assert_both_trainers_alike, assert_trains_alike_in_any_population,
                      check_passes_against_gradient_tape)
from test_members import TINY, _check_export, dense


@pytest.fixture(scope="module")
def cancer(cancer):
    """The breast-cancer rows with the embedding's statistics."""
    from dataclasses import replace

    from sknas._data import input_stats
    return replace(cancer, input_stats=input_stats(cancer.X, ("plr",)))


def plr(**settings):
    return {"type": "optimizer", "input": "plr", "label_smoothing": 0.0, **settings}


def test_plr_is_an_input_transform_of_the_space():
    space = SearchSpace(input_transforms=("none", "plr"), max_layers=1)
    assert space.size == 2 * SearchSpace(max_layers=1).size
    arch = space.parse("adam(in=plr) > 16-relu > softmax(3)")
    assert space.layers(arch)[0]["input"] == "plr"
    assert space.describe(arch, 3) == "adam(in=plr) > 16-relu > softmax(3)"
    with pytest.raises(ValueError, match="input_transforms"):
        SearchSpace(input_transforms=("none", "periodic")).check()


def test_the_embedding_has_a_key_of_its_own_in_the_shared_weights():
    plain = [dense(8, "relu"), dense(4, "tanh")]
    layers = [plr()] + plain
    # the first layer sees PLR_WIDTH numbers per feature, under a key of its own
    assert layer_keys(layers)[0] == ("input-plr", "8-relu")
    assert layer_keys(layers)[1:] == layer_keys(plain)[1:]
    rng = np.random.default_rng(0)
    weights = initial_weights(layers, 5, 3, rng)
    assert [len(w) for w in weights] == [2, 2, 5]
    assert weights[0][0].shape == (5 * PLR_WIDTH, 8)
    frequencies, kernel, bias = weights[-1][2:]
    assert frequencies.shape == (5, PLR_FREQUENCIES)
    assert kernel.shape == (2 * PLR_FREQUENCIES, PLR_WIDTH) and not bias.any()
    # 2 pi N(0, 0.1), stored divided by PLR_LR_FACTOR: the frequencies' spread
    assert 0.3 < frequencies.std() * PLR_LR_FACTOR < 1.0
    assert n_params(layers, 5, 3) == (n_params(plain, 5, 3) + 8 * (5 * PLR_WIDTH - 5)
                                      + frequencies.size + kernel.size + bias.size)
    store = SharedWeights()
    store.merge([layers], [weights])
    assert store.table[("4-tanh", "output")][0].shape == (4, 3)
    again = SharedWeights.from_arrays(store.to_arrays())
    assert "input-plr|embedding|frequencies" in store.to_arrays()
    for a, b in zip(again.table[EMBEDDING_KEY], weights[-1][2:]):
        np.testing.assert_array_equal(a, b)
    # another candidate that embeds its features starts from the shared embedding,
    # and a plain one takes the shared output layer without it
    other = initial_weights([plr(), dense(16, "elu")], 5, 3, rng, again)
    for a, b in zip(other[-1][2:], weights[-1][2:]):
        np.testing.assert_array_equal(a, b)
    assert [len(w) for w in initial_weights(plain, 5, 3, rng, again)] == [2, 2, 2]


ARCHS = [
    [plr(label_smoothing=0.1), dense(7, "relu", bn=True), {"type": "dropout", "rate": 0.3},
     dense(5, "silu")],
    [plr(members=3), dense(6, "tanh")],
    [plr(scaling=1), dense(6, "elu")],
    [{"type": "optimizer", "input": "robust", "label_smoothing": 0.0}, dense(6, "relu")],
]


@pytest.mark.parametrize("n_classes", [2, 4])
def test_hand_written_passes_of_the_embedding_match_gradient_tape(n_classes):
    # beside a net of the robust input (the same clipped rows, computed once), with
    # batch normalisation, dropout, members and learned input scaling after the embedding
    nets, weights, passes, grads, X, _ = check_passes_against_gradient_tape(ARCHS, n_classes)
    first = passes[0][1][0]
    assert first[0] == "embedding"
    assert np.abs(first[1].numpy()).max() <= 3  # it embedded the clipped rows
    embedded = passes[0][1][1][0].numpy()
    assert embedded.shape == (len(X), X.shape[1] * PLR_WIDTH) and embedded.min() >= 0
    for j in range(3):  # the embedding's gradients are not zero
        assert all(np.abs(g.numpy()).max() > 0 for g in grads[j][-3:])


def test_both_trainers_train_the_embedding_alike(cancer):
    archs = [[plr(learning_rate=0.003, weight_decay=0.1), dense(16, "relu"), dense(8, "tanh")],
             [plr(learning_rate=0.003, weight_decay=0.1, members=2), dense(8, "relu")]]
    pop, cands = assert_both_trainers_alike(archs, cancer)
    for result, (_, start, _) in zip(pop, cands):  # the embedding moved
        for trained, first in zip(result.weights[-1][-3:], start[-1][-3:]):
            assert not np.allclose(trained, first)


def test_a_net_that_embeds_trains_bit_identically_in_any_population(cancer):
    archs = [[plr(), dense(8, "relu")], [dense(8, "relu")],
             [plr(members=2, learning_rate=0.003), dense(4, "selu")]]
    rng = np.random.default_rng(1)
    cands = [(layers, initial_weights(layers, cancer.n_features, 1, rng), 5 + j)
             for j, layers in enumerate(archs)]
    assert_trains_alike_in_any_population(PopulationTrainer(epochs=2), cands, cancer,
                                          [[0], [2], [2, 0]])


@pytest.fixture(scope="module")
def periodic():
    # a target that turns with each feature, as a periodic embedding can follow
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) * [1.0, 50.0, 0.01]
    y = (np.sin(3 * X[:, 0]) + np.cos(X[:, 1] / 20) > 0).astype(int)
    return X, y


def test_a_search_that_embeds_serves_a_safe_keras_model(periodic, tmp_path):
    import joblib
    X, y = periodic
    space = SearchSpace(input_transforms=("plr",))
    clf = MLPNASClassifier(space=space, **TINY).fit(X, y)
    assert set(clf.input_stats_) == {"plr"}
    assert all(text.startswith("adam(in=plr)") for text in clf.search_results_["architecture"])
    assert clf.score(X, y) > 0.6
    _check_export(clf, X, tmp_path / "plr.keras", column=True)
    again = joblib.load(joblib.dump(clf, tmp_path / "clf.joblib")[0])
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    reg = MLPNASRegressor(space=SearchSpace(input_transforms=("none", "plr")), **TINY)
    reg.fit(X, np.sin(3 * X[:, 0]))
    _check_export(reg, X, tmp_path / "plr_reg.keras", column=False)


def test_sparse_x_is_refused_with_the_embedding(periodic):
    X, y = periodic
    with pytest.raises(ValueError, match="sparse X"):
        MLPNASClassifier(space=SearchSpace(input_transforms=("none", "plr")),
                         **TINY).fit(sp.csr_matrix(X), y)
