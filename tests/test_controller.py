"""The controller: REINFORCE update, returns, predictor, state."""

import numpy as np
import pytest

from sknas import SearchSpace
from sknas._controller import Controller, discounted_returns


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
    draws = [a[0] for _ in range(400) for a in controller._sample_batch(10, rng)[0]]
    freq = np.bincount(draws, minlength=space.n_dense) / len(draws)
    np.testing.assert_allclose(freq, probs, atol=0.02)


def test_reinforce_prefers_the_rewarded_architecture(space):
    controller = Controller(space, lstm_units=16, seed=0, baseline="ema", train_steps=5)
    good, bad = (0, 5), (3, space.dropout_token)
    before = controller.log_probs([good, bad])
    for _ in range(4):
        controller.update([good, bad], [0.9, 0.1])
    after = controller.log_probs([good, bad])
    assert after[0] - after[1] > before[0] - before[1] + 1.0
    assert after[0] > before[0] and after[1] < before[1]


def test_constant_baseline_is_used(space):
    controller = Controller(space, lstm_units=8, seed=0, baseline=0.5, train_steps=1)
    info = controller.update([(0,), (1,)], [0.7, 0.6])
    assert info["baseline"] == 0.5 and controller.baseline_value == 0.5


def test_ema_baseline_moves_towards_rewards(space):
    controller = Controller(space, lstm_units=8, seed=0, baseline="ema", baseline_decay=0.5,
                            train_steps=1)
    first = controller.update([(0,), (1,)], [0.6, 0.8])
    assert first["baseline"] == pytest.approx(0.7)
    controller.update([(2,), (3,)], [1.0, 1.0])
    assert controller.baseline_value == pytest.approx(0.5 * 0.7 + 0.5 * 1.0)


def test_predictor_loss_falls_on_a_fixed_target(space):
    controller = Controller(space, lstm_units=16, seed=0, train_steps=10, discount=0.9)
    archs = [(0,), (1, 2), (3, space.dropout_token), (4, 5)]
    rewards = [0.8, 0.8, 0.8, 0.8]
    def mse():
        return float(np.mean((controller.predict_rewards(archs) - rewards) ** 2))
    before = mse()
    for _ in range(6):
        controller.update(archs, rewards)
    assert mse() < 0.1 * before
    _, predicted = controller.sample(3, np.random.default_rng(0))
    assert all(0 < p < 1 for p in predicted)


def test_failed_candidates_get_the_worst_reward_and_no_predictor_target(space):
    controller = Controller(space, lstm_units=8, seed=0, train_steps=1)
    info = controller.update([(0,), (1,)], [np.nan, 0.8])
    assert info["mean_reward"] == pytest.approx(0.4)   # the failure counted as 0
    assert np.isfinite(info["loss"]) and np.isfinite(info["predictor_loss"])


def test_state_round_trip(space):
    a = Controller(space, lstm_units=8, seed=0, train_steps=2)
    a.update([(0,), (1, 2)], [0.3, 0.9])
    b = Controller(space, lstm_units=8, seed=99, train_steps=2)
    b.set_state(a.get_state())
    archs = [(0,), (1, 2), (5,)]
    np.testing.assert_allclose(a.log_probs(archs), b.log_probs(archs), rtol=1e-6)
    assert b.baseline_value == a.baseline_value
    a.update(archs, [0.1, 0.2, 0.3])
    b.update(archs, [0.1, 0.2, 0.3])
    np.testing.assert_allclose(a.log_probs(archs), b.log_probs(archs), rtol=1e-5)
