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


# ------------------------------------------------------------ the richer space
@pytest.fixture
def rich():
    """Every decision kind, small enough to enumerate: 2 x 2 settings, 2 dense
    tokens with a batch-normalisation decision, 2 dropout rates, 3 layers."""
    return SearchSpace((4, 8), ("relu",), (0.1, 0.4), 3, batch_norm=(False, True),
                       learning_rates=(0.001, 0.01), weight_decays=(0.0, 0.1))


def brute_force_rich(space):
    """Every valid architecture, by walking the rules (``allowed``) depth first,
    independently of the counting that ``size`` does."""
    out, stack = set(), [()]
    while stack:
        prefix = stack.pop()
        for tok in np.flatnonzero(space.allowed(prefix)):
            if tok == space.end_token:
                out.add(prefix)
            else:
                stack.append(prefix + (int(tok),))
    assert all(space.is_valid(a) for a in out)
    return out


def test_rich_space_size_matches_enumeration(rich):
    archs = brute_force_rich(rich)
    assert rich.size == len(archs)
    # by hand: per layer 2 widths x 2 batch-norm choices = 4 dense choices, 2 dropouts;
    # L(t) completions after t layers: L(3) = 1, L(2) = 4 + 1 + 2 = 7 (L after a dropout: 4 + 1 = 5),
    # L(1) = 4 * 7 + 1 + 2 * 5 = 39 ... times 2 x 2 settings
    after_dropout_2 = 4 * 1 + 1
    l2 = 4 * 1 + 1 + 2 * 1
    l1 = 4 * l2 + 1 + 2 * after_dropout_2
    assert rich.size == 4 * (4 * l1)
    assert rich.max_length == 2 + 3 * 2 + 1
    for arch in sorted(archs)[::37]:   # each prefix: the sum over its allowed next tokens
        mask = rich.allowed(arch)
        assert rich.n_completions(arch) == sum(
            1 if t == rich.end_token else rich.n_completions(arch + (int(t),))
            for t in np.flatnonzero(mask))


@pytest.mark.parametrize("kwargs", [
    dict(batch_norm=True), dict(learning_rates=(0.01,)), dict(weight_decays=(0.0, 0.01)),
    dict(dropout_rates=(0.1, 0.2, 0.3), max_layers=2),
])
def test_partial_rich_spaces_size_matches_enumeration(kwargs):
    space = SearchSpace((4, 8), ("relu", "tanh"), **{"dropout_rates": 0.5, "max_layers": 2, **kwargs})
    assert space.size == len(brute_force_rich(space))


def test_rich_rules_and_forms(rich):
    lr, wd = [tokens for _, tokens in rich.pre]
    off, on = rich.bn_tokens
    d1, d2 = rich.dropout_tokens
    # settings first, in order, each from its own tokens only
    assert np.flatnonzero(rich.allowed(())).tolist() == lr
    assert np.flatnonzero(rich.allowed((lr[1],))).tolist() == wd
    # after a dense token comes its batch-normalisation decision, and only that
    assert np.flatnonzero(rich.allowed((lr[1], wd[0], 1))).tolist() == [off, on]
    arch = (lr[1], wd[1], 1, on, d2, 0, off)
    assert rich.is_valid(arch)
    assert not rich.is_valid((lr[1], wd[1], 1))             # decision left open
    assert not rich.is_valid((lr[1], wd[1], 1, on, d1, d2))  # two dropouts in a row
    assert not rich.is_valid((wd[1], lr[1], 1, on))          # settings out of order
    layers = rich.layers(arch)
    assert layers == [{"type": "optimizer", "learning_rate": 0.01, "weight_decay": 0.1},
                      {"type": "dense", "units": 8, "activation": "relu", "batch_norm": True},
                      {"type": "dropout", "rate": 0.4},
                      {"type": "dense", "units": 4, "activation": "relu"}]
    text = rich.describe(arch, 3)
    assert text == "adam(lr=0.01, wd=0.1) > 8-relu-bn > dropout(0.4) > 4-relu > softmax(3)"
    assert rich.parse(text) == arch and rich.encode(layers) == arch
    with pytest.raises(ValueError, match="learning_rate 0.5 is not in"):
        rich.parse("adam(lr=0.5, wd=0.1) > 8-relu > softmax(3)")
    with pytest.raises(ValueError, match="no 'optimizer' entry"):
        rich.parse("8-relu > softmax(3)")


def test_fixed_choices_take_no_decision():
    space = SearchSpace((4,), ("relu",), 0.2, 2, batch_norm=True, learning_rates=(0.003,))
    assert space.n_pre == 0 and space.bn_tokens == [] and space.vocab_size == 3
    assert space.layers((0,)) == [{"type": "optimizer", "learning_rate": 0.003},
                                  {"type": "dense", "units": 4, "activation": "relu",
                                   "batch_norm": True}]


@pytest.mark.parametrize("strategy", ["controller", "random"])
def test_rich_samples_are_valid_and_cover_every_decision(rich, strategy):
    sampler = Controller(rich, lstm_units=16, seed=1) if strategy == "controller" else RandomStrategy(rich)
    archs, _ = sampler.sample(200, np.random.default_rng(0))
    assert len(set(archs)) == 200 and all(rich.is_valid(a) for a in archs)
    layers = [rich.layers(a) for a in archs]
    assert {ls[0]["learning_rate"] for ls in layers} == {0.001, 0.01}
    assert {ls[0]["weight_decay"] for ls in layers} == {0.0, 0.1}
    assert {layer.get("batch_norm", False) for ls in layers for layer in ls[1:]
            if layer["type"] == "dense"} == {False, True}
    assert {layer["rate"] for ls in layers for layer in ls if layer["type"] == "dropout"} == {0.1, 0.4}


def test_presets():
    tutorial = SearchSpace.from_preset("tutorial")
    assert tutorial == SearchSpace() and tutorial.size == 840 and tutorial.vocab_size == 30
    extended = SearchSpace.from_preset("extended")
    assert extended.max_layers == 3 and extended.n_pre == 2 and len(extended.bn_tokens) == 2
    assert extended.size == 1522944 and max(extended.units) == 256
    with pytest.raises(ValueError, match="unknown search-space preset 'deep'"):
        SearchSpace.from_preset("deep")


@pytest.mark.parametrize("kwargs, message", [
    (dict(learning_rates=()), "learning_rates must be a non-empty sequence"),
    (dict(learning_rates=(0.01, 0.0)), r"learning_rates must be .* in \(0, inf\)"),
    (dict(weight_decays=(-0.1,)), r"weight_decays must be .* in \[0, inf\)"),
    (dict(dropout_rates=()), "dropout_rates must be a non-empty sequence"),
    (dict(dropout_rates=(0.2, 1.0)), r"dropout_rates must be .* in \[0, 1\)"),
    (dict(dropout_rates=(0.2, 0.2)), "dropout_rates must not repeat"),
    (dict(batch_norm=()), "batch_norm must be True, False or a sequence"),
    (dict(max_layers=0), "max_layers must be an int of at least 1"),
    (dict(units=()), "units must be a non-empty sequence of positive integers"),
])
def test_bad_space_parameters_say_what_to_fix(kwargs, message):
    space = SearchSpace(**kwargs)  # stored as given, checked on use
    with pytest.raises(ValueError, match=message):
        space.check()


def test_space_is_a_parameter_object():
    from sklearn.base import clone
    space = SearchSpace(units=[4, 8], learning_rates=[0.01, 0.1])
    assert space.get_params()["units"] is space.units   # stored untouched
    twin = clone(space)
    assert twin is not space and twin == space and twin.size == space.size
    space.set_params(max_layers=3)
    assert space.size > twin.size                          # derived state follows
    with pytest.raises(ValueError, match="Invalid parameter 'depth'"):
        space.set_params(depth=3)
    assert "learning_rates=[0.01, 0.1]" in repr(space)
