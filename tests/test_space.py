"""The search space: vocabulary, rules, forms and size."""

import itertools

import numpy as np
import pytest

from sknas import SearchSpace
from sknas._controller import Controller
from sknas._random_search import RandomStrategy


@pytest.fixture
def space():
    return SearchSpace((8, 16, 32, 64, 128, 256, 512), ("sigmoid", "tanh", "relu", "elu"), 0.2, 2)


def brute_force(space):
    """Every valid architecture, by enumerating token tuples."""
    hidden = range(space.end_token)
    return {a for n in range(1, space.max_layers + 1)
            for a in itertools.product(hidden, repeat=n) if space.is_valid(a)}


def test_default_vocabulary_and_size(space):
    assert space.n_dense == 28
    assert space.vocab_size == 30
    assert space.size == 28 + 28 * 29 == 840
    assert len(brute_force(space)) == 840


@pytest.mark.parametrize("max_layers", [1, 3, 4])
def test_size_matches_enumeration(max_layers):
    space = SearchSpace((4, 8), ("relu", "tanh"), 0.5, max_layers)
    assert space.size == len(brute_force(space))


def test_rules(space):
    d = space.dropout_token
    assert not space.is_valid(())                    # at least one hidden token
    assert not space.is_valid((d,))                  # first must be dense
    assert not space.is_valid((0, d, d))             # no two dropouts in a row
    assert not space.is_valid((0, 1, 2))             # more than max_layers
    assert space.is_valid((0, d)) and space.is_valid((5,))
    assert not space.allowed(())[space.end_token]
    assert space.allowed((0, 1))[space.end_token] and space.allowed((0, 1)).sum() == 1


@pytest.mark.parametrize("strategy", ["controller", "random"])
def test_every_sample_is_valid_and_distinct(space, strategy):
    sampler = Controller(space, lstm_units=16, seed=1) if strategy == "controller" else RandomStrategy(space)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        archs, predicted = sampler.sample(25, rng, exclude=seen)
        assert len(archs) == 25
        for arch in archs:
            assert space.is_valid(arch), arch
            assert arch not in seen
            seen.add(arch)
    assert len(seen) == 500
    assert any(space.dropout_token in a for a in seen)
    assert any(len(a) == 1 for a in seen)


def test_sampling_exhausts_small_space_exactly():
    space = SearchSpace((4, 8), ("relu",), 0.5, 2)   # 2 + 2 * 3 = 8 architectures
    controller = Controller(space, lstm_units=8, seed=0)
    rng = np.random.default_rng(0)
    archs, _ = controller.sample(20, rng)
    assert len(archs) == space.size == 8
    assert set(archs) == brute_force(space)


def test_encode_decode_round_trip(space):
    for arch in sorted(brute_force(space))[::7]:
        layers = space.layers(arch)
        assert space.encode(layers) == arch
        assert space.parse(space.describe(arch, 3)) == arch


def test_readable_form(space):
    arch = space.encode([{"type": "dense", "units": 64, "activation": "relu"},
                         {"type": "dropout", "rate": 0.2}])
    assert space.describe(arch, 3) == "64-relu > dropout(0.2) > softmax(3)"
    assert space.describe(arch, 2) == "64-relu > dropout(0.2) > sigmoid(1)"


def test_encode_rejects_what_is_not_in_the_space(space):
    with pytest.raises(ValueError, match="not in the search space"):
        space.encode([{"type": "dense", "units": 3, "activation": "relu"}])
    with pytest.raises(ValueError, match="rules"):
        space.encode([{"type": "dropout", "rate": 0.2}])
    with pytest.raises(ValueError, match="cannot read"):
        space.parse("64-relu > conv")
