"""The controller: REINFORCE update, returns, predictor, state."""

import pickle

import numpy as np
import pytest

from sknas import SearchSpace
from sknas import _controller
from sknas._controller import MAX_IMPORTANCE_WEIGHT, Controller, _loss, discounted_returns


@pytest.fixture
def space():
    return SearchSpace((4, 8, 16), ("relu", "tanh"), 0.2, 2)


def test_discounted_returns_hand_computed():
    # T = 3 decisions (two hidden tokens + end), advantage 2, discount 0.9:
    # step 0 gets 0.9**2 * 2, step 1 0.9 * 2, the end token the full 2.
    np.testing.assert_allclose(discounted_returns(3, 2.0, 0.9), [1.62, 1.8, 2.0])
    np.testing.assert_allclose(discounted_returns(1, -0.5, 0.9), [-0.5])


def test_numpy_sampling_follows_the_tf_policy():
    # with max_layers=1 an architecture is its first token, so sample frequencies
    # estimate exp(log_prob) computed by the TF graph
    space = SearchSpace((4, 8, 16), ("relu", "tanh"), 0.2, 1)
    controller = Controller(space, lstm_units=16, seed=3)
    controller.update([(0,), (1,)], [0.9, 0.1])     # move away from uniform
    probs = np.exp(controller.log_probs([(k,) for k in range(space.n_dense)]))
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    rng = np.random.default_rng(1)
    draws = [controller.sample(1, rng)[0][0][0] for _ in range(3000)]
    freq = np.bincount(draws, minlength=space.n_dense) / len(draws)
    np.testing.assert_allclose(freq, probs, atol=0.025)


def _masks_along(space, tried, arch, t_max):
    masks = np.zeros((t_max, space.vocab_size), bool)
    masks[:, space.end_token] = True
    for t in range(len(arch) + 1):
        masks[t] = tried.open_tokens(arch[:t])
    return masks


def test_the_update_uses_the_distribution_the_batch_was_drawn_from():
    # tried architectures are masked out step by step; the probability of each
    # untried one under those masks (what the loss uses) must be the frequency
    # with which sample() draws it
    space = SearchSpace((4, 8), ("relu",), 0.2, 2)   # 8 architectures
    controller = Controller(space, lstm_units=16, seed=0)
    controller.update([(0,), (1, space.dropout_token)], [0.9, 0.2])
    tried = [(0,), (0, 0), (0, 1), (0, space.dropout_token), (1,)]  # all below token 0, and (1,)
    open_archs = [a for a in [(1, 0), (1, 1), (1, space.dropout_token)]]
    from sknas._controller import _TriedSet
    t = _TriedSet(space, tried)
    assert not t.open_tokens(())[0] and t.open_tokens(())[1]
    controller._sampled_masks = {a: _masks_along(space, t, a, controller.t_max) for a in open_archs}
    probs = np.exp(controller.log_probs(open_archs))
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(3000):
        arch = controller.sample(1, rng, exclude=tried)[0][0]
        draws.append(open_archs.index(arch))
    freq = np.bincount(draws, minlength=3) / len(draws)
    np.testing.assert_allclose(freq, probs, atol=0.025)
    # and the masks sample() recorded are those masks
    arch = controller.sample(1, rng, exclude=tried)[0][0]
    np.testing.assert_array_equal(controller._sampled_masks[arch],
                                  _masks_along(space, t, arch, controller.t_max))


def test_a_batch_has_no_duplicates_and_exhausts_the_space_exactly():
    space = SearchSpace((4, 8), ("relu",), 0.2, 2)
    controller = Controller(space, lstm_units=8, seed=0)
    rng = np.random.default_rng(0)
    archs, _ = controller.sample(5, rng)
    assert len(set(archs)) == 5
    rest, _ = controller.sample(10, rng, exclude=archs)
    assert len(rest) == 3 and not set(rest) & set(archs)
    assert controller.sample(1, rng, exclude=archs + rest) == ([], [])


def test_reused_batch_steps_are_importance_weighted(space):
    controller = Controller(space, lstm_units=8, seed=0, use_predictor=False)
    archs = [(0,), (1, 2), (3, space.dropout_token)]
    inputs, actions, masks, lengths = controller._batch_tensors(archs)
    step_mask = (np.arange(controller.t_max)[None, :] < lengths[:, None]).astype(np.float32)
    returns = step_mask * np.array([[1.0], [-0.5], [0.25]], np.float32)
    logp = controller.log_probs(archs).astype(np.float32)
    no_replay = controller._batch_tensors([])
    no_replay = (no_replay[0], no_replay[3], np.zeros(0, np.float32), np.float32(1.0))

    def policy_loss(sampled_logp, sample_weight=np.ones(3, np.float32)):
        return float(_loss(controller._weights(), controller.t_max, False, 0.0, inputs,
                           actions, masks, lengths, returns, step_mask,
                           np.asarray(sample_weight, np.float32), sampled_logp, *no_replay)[0])

    on_policy = policy_loss(logp)
    # screening's sample weights: the weighted mean of the candidates' terms
    terms = [policy_loss(logp, np.eye(3)[k]) for k in range(3)]
    assert policy_loss(logp, [1.0, 1.0, 4.0]) == pytest.approx(
        (terms[0] + terms[1] + 4 * terms[2]) / 6, rel=1e-5)
    assert on_policy == pytest.approx(np.mean(terms), rel=1e-5)
    # each candidate now 1.5x as likely as when drawn: every term weighs 1.5
    assert policy_loss(logp - np.log(1.5)) == pytest.approx(1.5 * on_policy, rel=1e-5)
    # 10x as likely: truncated at MAX_IMPORTANCE_WEIGHT
    assert policy_loss(logp - np.log(10.0)) == pytest.approx(MAX_IMPORTANCE_WEIGHT * on_policy,
                                                             rel=1e-5)


@pytest.mark.parametrize("rewards", [[0.7501, 0.7500], [0.75, 0.75], [0.75, 0.75, 0.75, 0.75]])
@pytest.mark.parametrize("baseline", ["ema", "batch", 0.5])
def test_nearly_equal_rewards_give_a_finite_bounded_loss(space, rewards, baseline):
    # the old (r - b) / std(r - b) gave a policy loss of about 1.8e4 and 7e7 here
    controller = Controller(space, lstm_units=8, seed=0, baseline=baseline, train_steps=3,
                            use_predictor=False)
    archs = [(k,) for k in range(len(rewards))]
    for _ in range(3):
        info = controller.update(archs, rewards)
        assert np.isfinite(info["loss"]) and abs(info["loss"]) < 20


@pytest.mark.parametrize("baseline", ["ema", "batch", 0.5])
def test_advantages_have_the_sign_of_reward_minus_baseline(space, baseline):
    controller = Controller(space, lstm_units=8, seed=0, baseline=baseline, train_steps=1)
    controller.update([(0,), (1,)], [0.6, 0.7])       # sets the moving average
    rewards = np.array([0.9, 0.2, 0.66, 0.64])
    b, adv, scale = controller.advantages(rewards)
    assert np.all(np.sign(adv) == np.sign(rewards - b))
    assert adv[0] > 0 > adv[1]                        # better and worse than the baseline
    # the scale is a spread, floored: the advantages stay proportional to R - b
    np.testing.assert_allclose(adv * max(scale, 0.01), rewards - b)


def test_reinforce_prefers_the_rewarded_architecture(space):
    controller = Controller(space, lstm_units=16, seed=0, baseline="ema", train_steps=5)
    good, bad = (0, 5), (3, space.dropout_token)
    before = controller.log_probs([good, bad])
    for _ in range(4):
        controller.update([good, bad], [0.9, 0.1])
    after = controller.log_probs([good, bad])
    assert after[0] - after[1] > before[0] - before[1] + 1.0
    assert after[0] > before[0] and after[1] < before[1]


def test_constant_baseline_is_the_reference_of_the_advantages(space):
    controller = Controller(space, lstm_units=8, seed=0, baseline=0.5, train_steps=1)
    b, adv, _ = controller.advantages([0.7, 0.6, 0.4])
    assert b == 0.5
    np.testing.assert_allclose(adv / adv[0], [1.0, 0.5, -0.5])  # (R - 0.5) up to one scale
    info = controller.update([(0,), (1,), (2,)], [0.7, 0.6, 0.4])
    assert info["baseline"] == 0.5


def test_batch_baseline_centres_the_advantages(space):
    controller = Controller(space, lstm_units=8, seed=0, baseline="batch", train_steps=1)
    b, adv, _ = controller.advantages([0.7, 0.6, 0.5])
    assert b == pytest.approx(0.6) and adv.sum() == pytest.approx(0.0, abs=1e-12)
    assert adv[0] > 0 > adv[2]


def test_ema_baseline_moves_towards_rewards(space):
    controller = Controller(space, lstm_units=8, seed=0, baseline="ema", baseline_decay=0.5,
                            train_steps=1)
    first = controller.update([(0,), (1,)], [0.6, 0.8])
    assert first["baseline"] == pytest.approx(0.7)
    controller.update([(2,), (3,)], [1.0, 1.0])
    assert controller.baseline_value == pytest.approx(0.5 * 0.7 + 0.5 * 1.0)


def test_predictor_learns_rewards_that_differ_between_architectures(space):
    # different targets per architecture: a bias alone cannot get the error
    # below their variance
    controller = Controller(space, lstm_units=16, seed=0, train_steps=10, discount=0.9)
    archs = [(0,), (1, 2), (3, space.dropout_token), (4, 5), (5,), (2, 0)]
    rewards = np.array([0.2, 0.8, 0.5, 0.9, 0.35, 0.65])

    def mse():
        return float(np.mean((controller.predict_rewards(archs) - rewards) ** 2))

    for _ in range(15):
        controller.update(archs, rewards)
    assert mse() < 0.25 * rewards.var()
    assert np.corrcoef(controller.predict_rewards(archs), rewards)[0, 1] > 0.9
    _, predicted = controller.sample(3, np.random.default_rng(0))
    assert all(0 <= p <= 1 for p in predicted)  # in reward units, clipped to [0, 1]


def test_failed_candidates_get_the_worst_reward_and_no_predictor_target(space):
    controller = Controller(space, lstm_units=8, seed=0, train_steps=1)
    archs = [(0,), (1,), (2,)]
    info = controller.update(archs, [np.nan, 0.8, 0.6])
    assert info["mean_reward"] == pytest.approx(1.4 / 3)   # the failure counted as 0 for the policy
    # the predictor learns from the successful rows alone
    assert controller.replay_archs == [(1,), (2,)] and controller.replay_rewards == [0.8, 0.6]
    assert controller.predictor_targets() == pytest.approx((0.7, 0.1))
    assert np.isfinite(info["predictor_loss"])


def test_predictor_replays_every_reward_so_far_in_standard_units(space):
    controller = Controller(space, lstm_units=8, seed=0, train_steps=1)
    controller.update([(0,), (1,)], [0.7, 0.72])
    controller.update([(2,), (3,)], [0.74, np.nan])
    assert controller.replay_archs == [(0,), (1,), (2,)]
    centre, spread = controller.predictor_targets()
    assert centre == pytest.approx(0.72) and spread == pytest.approx(np.std([0.7, 0.72, 0.74]))
    # the reported loss is the replay's mean squared error in reward units, before the step
    before = Controller(space, lstm_units=8, seed=0, train_steps=1)
    before.set_state(controller.get_state())
    info = controller.update([(4,)], [0.71])
    replay_rewards = np.array([0.7, 0.72, 0.74, 0.71])
    before.replay_archs.append((4,))
    before.replay_rewards.append(0.71)
    unclipped = before.predict_rewards(before.replay_archs)
    assert info["predictor_loss"] == pytest.approx(np.mean((unclipped - replay_rewards) ** 2),
                                                   rel=1e-3)
    # no predictor: no replay, no loss
    off = Controller(space, lstm_units=8, seed=0, train_steps=1, use_predictor=False)
    assert np.isnan(off.update([(0,), (1,)], [0.7, 0.72])["predictor_loss"])
    assert off.replay_archs == []


def test_state_round_trip(space):
    a = Controller(space, lstm_units=8, seed=0, train_steps=2)
    a.update([(0,), (1, 2)], [0.3, 0.9])
    b = Controller(space, lstm_units=8, seed=99, train_steps=2)
    b.set_state(a.get_state())
    archs = [(0,), (1, 2), (5,)]
    np.testing.assert_allclose(a.log_probs(archs), b.log_probs(archs), rtol=1e-6)
    assert b.baseline_value == a.baseline_value
    assert b.advantage_scale == a.advantage_scale
    assert b.replay_archs == a.replay_archs and b.replay_rewards == a.replay_rewards
    np.testing.assert_allclose(a.predict_rewards(archs), b.predict_rewards(archs), rtol=1e-6)
    c = pickle.loads(pickle.dumps(a))
    assert c.replay_archs == a.replay_archs
    np.testing.assert_allclose(a.predict_rewards(archs), c.predict_rewards(archs), rtol=1e-6)
    a.update(archs, [0.1, 0.2, 0.3])
    b.update(archs, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(a.log_probs(archs), b.log_probs(archs), rtol=1e-5)


def test_predictor_ranks_a_learnable_reward():
    # A reward that is a plain function of the decisions (depth up, the larger
    # learning rate up, batch normalisation down): after five controller epochs
    # of ten candidates, the predictor head, refit by ridge regression on the
    # LSTM's final states, ranks fifty fresh samples well (an undertrained head,
    # as before the refit, ranked them at -0.05 on average over these seeds)
    from sknas._trial import predictor_spearman
    space = SearchSpace((4, 8, 16), ("relu", "tanh"), (0.1, 0.3), 3, batch_norm=(False, True),
                        learning_rates=(0.001, 0.01), weight_decays=(0.0, 0.1))

    def reward(arch):
        layers = space.layers(arch)
        return (0.6 + 0.05 * sum(layer["type"] == "dense" for layer in layers)
                + 0.05 * (layers[0]["learning_rate"] == 0.01)
                - 0.04 * sum(bool(layer.get("batch_norm")) for layer in layers))

    rhos = []
    for seed in range(3):
        controller = Controller(space, lstm_units=32, seed=seed)
        rng, seen = np.random.default_rng(seed), []
        for _ in range(5):
            archs, _ = controller.sample(10, rng, exclude=seen)
            seen += archs
            controller.update(archs, [reward(a) for a in archs])
        archs, predicted = controller.sample(50, rng, exclude=seen)
        rhos.append(predictor_spearman(np.array(predicted), np.array([reward(a) for a in archs])))
    assert np.mean(rhos) > 0.4, rhos


def test_one_trace_of_the_update_serves_every_controller_of_a_shape(space):
    """The update is traced once per process for controllers of one shape; each
    controller's own learning rate, decay, clip and entropy weight still apply."""
    archs, rewards = [(0,), (1, 2), (3, space.dropout_token)], [0.7, 0.8, 0.75]

    def updated(**settings):
        controller = Controller(space, lstm_units=8, seed=0, train_steps=3, **settings)
        controller.update(archs, rewards)
        return controller._np_weights()

    _controller._UPDATE_FNS.clear()
    first = updated()
    others = [updated(learning_rate=0.05), updated(decay=10.0), updated(clipnorm=1e-3),
              updated(entropy_weight=1.0)]
    again = updated()
    assert [fn.experimental_get_tracing_count() for fn in _controller._UPDATE_FNS.values()] == [1]
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    for other in others:  # each setting changed the step
        assert any(not np.array_equal(first[n], other[n]) for n in first)
    # and a setting gives the same step whether its trace was made for it or not
    _controller._UPDATE_FNS.clear()
    fresh = updated(learning_rate=0.05)
    for name in fresh:
        np.testing.assert_array_equal(fresh[name], others[0][name])
