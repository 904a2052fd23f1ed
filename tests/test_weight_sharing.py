"""One-shot weight sharing: keys, transfer, merge order, file form."""

import numpy as np
import pytest

from sknas._trainer import CandidateData, PopulationTrainer, initial_weights
from sknas._weights import SharedWeights, layer_keys


def dense(units, act):
    return {"type": "dense", "units": units, "activation": act}


DROP = {"type": "dropout", "rate": 0.2}


def test_keys_skip_dropout():
    assert layer_keys([dense(16, "relu"), DROP, dense(8, "tanh")]) == [
        ("input", "16-relu"), ("16-relu", "8-tanh"), ("8-tanh", "output")]


def test_trained_weights_transfer_only_to_matching_layer_pairs(blobs):
    X, y = blobs
    X = X.astype(np.float32)
    data = CandidateData(X[:240], y[:240].astype(np.int32), np.ones(240, np.float32),
                         X[240:], y[240:].astype(np.int32), np.ones(60, np.float32), 3)
    rng = np.random.default_rng(0)
    a_layers = [dense(16, "relu"), dense(8, "tanh")]
    a_init = initial_weights(a_layers, 4, 3, rng)
    [result] = PopulationTrainer(epochs=2).train([(a_layers, a_init, 1)], data, seed=0)
    assert result.status == "ok"
    assert not np.allclose(result.weights[0][0], a_init[0][0])   # it really trained
    store = SharedWeights()
    store.merge([a_layers], [result.weights])

    # same first pair, and (16-relu -> 8-tanh) through a transparent dropout
    b = initial_weights([dense(16, "relu"), DROP, dense(8, "tanh")], 4, 3, rng, store)
    for got, want in zip(b, result.weights):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])

    # (input -> 16-relu) matches, (16-relu -> 4-relu) does not: fresh Glorot, zero bias
    c = initial_weights([dense(16, "relu"), dense(4, "relu")], 4, 3, rng, store)
    np.testing.assert_array_equal(c[0][0], result.weights[0][0])
    assert c[1][0].shape == (16, 4) and not np.any(c[1][1])
    # a different first layer shares nothing, not even the output layer's pair
    d = initial_weights([dense(8, "relu")], 4, 3, rng, store)
    assert all(not np.any(bias) for _, bias in d)


def test_merge_in_candidate_order_and_skip_failed():
    layers = [dense(4, "relu")]
    store = SharedWeights()
    first = [(np.ones((3, 4)), np.ones(4)), (np.ones((4, 2)), np.ones(2))]
    second = [(2 * np.ones((3, 4)), 2 * np.ones(4)), (2 * np.ones((4, 2)), 2 * np.ones(2))]
    store.merge([layers, layers, layers], [first, second, None])
    assert store.get(("input", "4-relu"), (3, 4))[0][0, 0] == 2.0   # the later one wins
    assert store.get(("input", "4-relu"), (5, 4)) is None           # shape must match


def test_arrays_round_trip():
    store = SharedWeights()
    store.put(("input", "4-relu"), np.arange(12.0).reshape(3, 4), np.arange(4.0))
    again = SharedWeights.from_arrays(store.to_arrays())
    np.testing.assert_array_equal(again.get(("input", "4-relu"), (3, 4))[0],
                                  np.arange(12.0).reshape(3, 4))


def test_non_finite_weights_never_enter_the_table():
    layers = [dense(4, "relu")]
    good = [(np.ones((3, 4)), np.ones(4)), (np.ones((4, 2)), np.ones(2))]
    for bad_value in (np.nan, np.inf, -np.inf):
        store = SharedWeights()
        with pytest.raises(ValueError, match="not all finite"):
            store.put(("input", "4-relu"), np.full((3, 4), bad_value), np.zeros(4))
        # one bad value anywhere (here the output bias) keeps the whole candidate out,
        # and the earlier candidate's weights stay in place
        bad = [(3 * np.ones((3, 4)), 3 * np.ones(4)), (np.ones((4, 2)), np.array([1.0, bad_value]))]
        store.merge([layers, layers], [good, bad])
        assert store.get(("input", "4-relu"), (3, 4))[0][0, 0] == 1.0
        assert store.get(("4-relu", "output"), (4, 2))[1][1] == 1.0
        # a checkpoint written before the trainers checked their weights: its
        # non-finite pair is left out on reading, the other pairs are kept
        arrays = store.to_arrays()
        arrays["4-relu|output|bias"] = np.array([1.0, bad_value], np.float32)
        again = SharedWeights.from_arrays(arrays)
        assert ("input", "4-relu") in again and ("4-relu", "output") not in again
