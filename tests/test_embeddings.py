"""Periodic embeddings as input transforms of the space:
``SearchSpace(input_transforms=(..., 'plr', 'pbld'))``.

A candidate with ``'plr'`` ("lite") embeds each robust, clipped feature in
``PLR_WIDTH`` learned numbers (the cosines and sines of its own learned
frequencies, a linear layer the features share, a ReLU) before its first
layer; with ``'pbld'`` (RealMLP's) in ``PBLD_WIDTH`` (the cosines of its own
learned frequencies and phases, a linear layer of its own), the feature
itself beside them. The population trainer's hand-written passes of the
embeddings are checked against ``tf.GradientTape`` on the served Keras model,
both trainers against each other, and the served model against
``safe_mode=True``.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from sknas import MLPNASClassifier, MLPNASRegressor, SearchSpace
from sknas._data import (PBLD_FREQUENCIES, PBLD_WIDTH, PLR_FREQUENCIES, PLR_LR_FACTOR,
                         PLR_WIDTH, n_params)
from sknas._trainer import PopulationTrainer, initial_weights
from sknas._weights import SharedWeights, layer_keys

from conftest import (assert_both_trainers_alike, assert_trains_alike_in_any_population,
                      check_passes_against_gradient_tape)
from test_members import TINY, _check_export, dense


@pytest.fixture(scope="module")
def cancer(cancer):
    """The breast-cancer rows with the embedding's statistics."""
    from dataclasses import replace

    from sknas._data import input_stats
    return replace(cancer, input_stats=input_stats(cancer.X, ("plr", "pbld")))


#: per embedding: its arrays, and the first layer's inputs per feature
N_ARRAYS = {"plr": 3, "pbld": 4}
WIDTH = {"plr": PLR_WIDTH, "pbld": PBLD_WIDTH + 1}
KINDS = pytest.mark.parametrize("kind", ["plr", "pbld"])


def embed(kind="plr", **settings):
    return {"type": "optimizer", "input": kind, "label_smoothing": 0.0, **settings}


def plr(**settings):
    return embed("plr", **settings)


@KINDS
def test_embeddings_are_input_transforms_of_the_space(kind):
    space = SearchSpace(input_transforms=("none", kind), max_layers=1)
    assert space.size == 2 * SearchSpace(max_layers=1).size
    arch = space.parse(f"adam(in={kind}) > 16-relu > softmax(3)")
    assert space.layers(arch)[0]["input"] == kind
    assert space.describe(arch, 3) == f"adam(in={kind}) > 16-relu > softmax(3)"
    with pytest.raises(ValueError, match="input_transforms"):
        SearchSpace(input_transforms=("none", "periodic")).check()


@KINDS
def test_the_embedding_has_a_key_of_its_own_in_the_shared_weights(kind):
    plain = [dense(8, "relu"), dense(4, "tanh")]
    layers = [embed(kind)] + plain
    n = N_ARRAYS[kind]
    # the first layer sees WIDTH numbers per feature, under a key of its own
    assert layer_keys(layers)[0] == (f"input-{kind}", "8-relu")
    assert layer_keys(layers)[1:] == layer_keys(plain)[1:]
    rng = np.random.default_rng(0)
    weights = initial_weights(layers, 5, 3, rng)
    assert [len(w) for w in weights] == [2, 2, 2 + n]
    assert weights[0][0].shape == (5 * WIDTH[kind], 8)
    arrays = weights[-1][2:]
    if kind == "plr":
        frequencies, kernel, bias = arrays
        assert frequencies.shape == (5, PLR_FREQUENCIES)
        assert kernel.shape == (2 * PLR_FREQUENCIES, PLR_WIDTH) and not bias.any()
    else:  # RealMLP's start: phases in (-pi, pi), kernel and bias within 1 / sqrt(16)
        frequencies, phases, kernel, bias = (a * PLR_LR_FACTOR for a in arrays)
        assert frequencies.shape == phases.shape == (5, PBLD_FREQUENCIES)
        assert kernel.shape == (5, PBLD_FREQUENCIES, PBLD_WIDTH) and bias.shape == (5, PBLD_WIDTH)
        assert 2.5 < np.abs(phases).max() < np.pi and 0.2 < np.abs(kernel).max() <= 0.25
        assert 0 < np.abs(bias).max() <= 0.25
        frequencies = arrays[0]
    # 2 pi N(0, 0.1), stored divided by PLR_LR_FACTOR: the frequencies' spread
    assert 0.3 < frequencies.std() * PLR_LR_FACTOR < 1.0
    assert n_params(layers, 5, 3) == (n_params(plain, 5, 3) + 8 * (5 * WIDTH[kind] - 5)
                                      + sum(a.size for a in arrays))
    store = SharedWeights()
    store.merge([layers], [weights])
    assert store.table[("4-tanh", "output")][0].shape == (4, 3)
    again = SharedWeights.from_arrays(store.to_arrays())
    assert f"input-{kind}|embedding|frequencies" in store.to_arrays()
    for a, b in zip(again.table[(f"input-{kind}", "embedding")], arrays, strict=True):
        np.testing.assert_array_equal(a, b)
    # another candidate of that embedding starts from the shared one, one of the
    # other embedding does not, and a plain one takes the shared output layer without it
    other = initial_weights([embed(kind), dense(16, "elu")], 5, 3, rng, again)
    for a, b in zip(other[-1][2:], arrays, strict=True):
        np.testing.assert_array_equal(a, b)
    stranger = initial_weights([embed({"plr": "pbld", "pbld": "plr"}[kind])], 5, 3, rng, again)
    assert len(stranger[-1]) != len(weights[-1])
    assert [len(w) for w in initial_weights(plain, 5, 3, rng, again)] == [2, 2, 2]


def archs_of(kind):
    return [
        [embed(kind, label_smoothing=0.1), dense(7, "relu", bn=True),
         {"type": "dropout", "rate": 0.3}, dense(5, "silu")],
        [embed(kind, members=3), dense(6, "tanh")],
        [embed(kind, scaling=1), dense(6, "elu")],
        [{"type": "optimizer", "input": "robust", "label_smoothing": 0.0}, dense(6, "relu")],
    ]


@KINDS
@pytest.mark.parametrize("n_classes", [2, 4])
def test_hand_written_passes_of_the_embedding_match_gradient_tape(kind, n_classes):
    # beside a net of the robust input (the same clipped rows, computed once), with
    # batch normalisation, dropout, members and learned input scaling after the embedding
    nets, weights, passes, grads, X, _ = check_passes_against_gradient_tape(archs_of(kind),
                                                                            n_classes)
    first = passes[0][1][0]
    assert first[0] == "embedding"
    robust = passes[3][1][0][0].numpy()  # the robust net's first layer input
    embedded = passes[0][1][1][0].numpy()
    assert embedded.shape == (len(X), X.shape[1] * WIDTH[kind])
    if kind == "plr":  # it embedded the clipped rows
        assert np.abs(first[1].numpy()).max() <= 3 and embedded.min() >= 0
    else:  # the clipped rows themselves come last
        np.testing.assert_array_equal(embedded[:, -X.shape[1]:], robust)
    for j in range(3):  # the embedding's gradients are not zero
        assert all(np.abs(g.numpy()).max() > 0 for g in grads[j][-N_ARRAYS[kind]:])


@KINDS
def test_both_trainers_train_the_embedding_alike(kind, cancer):
    archs = [[embed(kind, learning_rate=0.003, weight_decay=0.1), dense(16, "relu"),
              dense(8, "tanh")],
             [embed(kind, learning_rate=0.003, weight_decay=0.1, members=2), dense(8, "relu")]]
    pop, cands = assert_both_trainers_alike(archs, cancer)
    for result, (_, start, _) in zip(pop, cands):  # the embedding moved
        for trained, first in zip(result.weights[-1][-N_ARRAYS[kind]:],
                                  start[-1][-N_ARRAYS[kind]:]):
            assert not np.allclose(trained, first)


def test_a_net_that_embeds_trains_bit_identically_in_any_population(cancer):
    archs = [[plr(), dense(8, "relu")], [dense(8, "relu")],
             [embed("pbld", members=2, learning_rate=0.003), dense(4, "selu")]]
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


@KINDS
def test_a_search_that_embeds_serves_a_safe_keras_model(kind, periodic, tmp_path):
    import joblib
    X, y = periodic
    space = SearchSpace(input_transforms=(kind,))
    clf = MLPNASClassifier(space=space, **TINY).fit(X, y)
    assert set(clf.input_stats_) == {kind}
    assert all(text.startswith(f"adam(in={kind})")
               for text in clf.search_results_["architecture"])
    assert clf.score(X, y) > 0.6
    _check_export(clf, X, tmp_path / f"{kind}.keras", column=True)
    again = joblib.load(joblib.dump(clf, tmp_path / "clf.joblib")[0])
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    reg = MLPNASRegressor(space=SearchSpace(input_transforms=("none", kind)), **TINY)
    reg.fit(X, np.sin(3 * X[:, 0]))
    _check_export(reg, X, tmp_path / f"{kind}_reg.keras", column=False)


@KINDS
def test_sparse_x_is_refused_with_the_embedding(kind, periodic):
    X, y = periodic
    with pytest.raises(ValueError, match="sparse X"):
        MLPNASClassifier(space=SearchSpace(input_transforms=("none", kind)),
                         **TINY).fit(sp.csr_matrix(X), y)
