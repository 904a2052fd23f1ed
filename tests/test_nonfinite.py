"""Trained weights that overflow never reach the shared weight table.

The trainers check the training loss before every update, so an overflow in
the *last* Adam step is invisible to that check. Here it happens for real:
one epoch of one batch (a single update, after the only loss), features of
order 1000 and a learning rate of 1e38. Adam's first step moves each weight
by about the learning rate, and TensorFlow and Keras compute it as
``(m * alpha) / (sqrt(v) + eps)`` with ``m = 0.1 g`` and ``alpha = 0.316 lr``:
for a gradient element above about 107 the product exceeds the float32
maximum (3.4e38) and the weight becomes infinite. A ReLU or ELU layer on the
raw features gets such gradients (they scale with the features); a tanh layer
saturates (its derivative is 0) and the output layer's gradients stay below
1, so those nets end with huge but finite weights.
"""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from conftest import TINY
from sknas import MLPNASClassifier
from sknas._trainer import (CandidateData, KerasTrainer, PopulationTrainer, _loss_and_grads, _Net,
                            initial_weights)
from sknas._weights import SharedWeights

LEARNING_RATE = 1e38
MESSAGE = "trained weights became NaN or infinite"


def dense(units, act):
    return {"type": "dense", "units": units, "activation": act}


#: Which of these overflow is explained in the module docstring.
ARCHS = [[dense(8, "relu")], [dense(8, "tanh")], [dense(8, "elu")], [dense(8, "relu"), dense(4, "tanh")]]
OVERFLOWS = [True, False, True, False]


def _huge_blobs():
    """3 classes, 4 features scaled to standard deviation 1000."""
    from sklearn.datasets import make_blobs
    X, y = make_blobs(n_samples=300, centers=3, n_features=4, cluster_std=1.5, random_state=0)
    return ((X - X.mean(0)) / X.std(0) * 1000).astype(np.float32), y.astype(np.int32)


@pytest.fixture(scope="module")
def data():
    X, y = _huge_blobs()
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y)).astype(np.float32)
    return CandidateData(X[:240], y[:240], w[:240], X[240:], y[240:], w[240:], 3)


@pytest.fixture(scope="module")
def candidates(data):
    rng = np.random.default_rng(0)
    return [(layers, initial_weights(layers, data.n_features, data.n_outputs, rng), 10 + k)
            for k, layers in enumerate(ARCHS)]


def _losses_before_the_update(candidates, data):
    """Each candidate's weighted training loss at its initial weights, computed
    as the population trainer computes it (from the logits, not clipped)."""
    X, y = tf.constant(data.X), tf.constant(data.y)
    logits = [_Net(layers, data.n_features, data.n_classes, seed).forward(
        [(tf.constant(k), tf.constant(b)) for k, b in weights], X)[0]
        for layers, weights, seed in candidates]
    scale = tf.constant(data.w / len(data.y))
    return _loss_and_grads(logits, y, scale, data.n_classes)[0].numpy()


def _all_finite(weights):
    return all(np.all(np.isfinite(a)) for pair in weights for a in pair)


@pytest.mark.parametrize("trainer_cls", [PopulationTrainer, KerasTrainer])
def test_an_overflow_in_the_last_update_fails_only_that_candidate(trainer_cls, data, candidates):
    trainer = trainer_cls(epochs=1, batch_size=len(data.y), learning_rate=LEARNING_RATE)
    # one epoch of one batch: a single update, and the only loss the trainer
    # sees is the one before it, which is finite for every candidate
    assert trainer.epochs == 1 and trainer.batch_size >= len(data.y)
    assert np.all(np.isfinite(_losses_before_the_update(candidates, data)))

    results = trainer.train(candidates, data, seed=0)

    assert [r.status for r in results] == ["failed" if bad else "ok" for bad in OVERFLOWS]
    for result, bad in zip(results, OVERFLOWS):
        if bad:
            assert result.message == MESSAGE and result.weights is None
            assert isinstance(result.error, FloatingPointError) and MESSAGE in str(result.error)
            assert len(result.val_scores) == 1  # the epoch still has its row
        else:
            assert result.message == "" and result.error is None
            assert _all_finite(result.weights)
            # it did take the huge step: finite, but far from where it started
            assert max(np.abs(k).max() for k, _ in result.weights) > 1e30


def test_the_healthy_candidates_train_as_if_alone(data, candidates):
    # a population's overflowing nets do not touch the others' numbers
    trainer = PopulationTrainer(epochs=1, batch_size=len(data.y), learning_rate=LEARNING_RATE)
    together = trainer.train(candidates, data, seed=0)
    healthy = [k for k, bad in enumerate(OVERFLOWS) if not bad]
    alone = trainer.train([candidates[k] for k in healthy], data, seed=0)
    for k, result in zip(healthy, alone):
        assert result.status == "ok" and result.val_scores == together[k].val_scores
        for (k1, b1), (k2, b2) in zip(result.weights, together[k].weights):
            np.testing.assert_array_equal(k1, k2)
            np.testing.assert_array_equal(b1, b2)


@pytest.fixture
def overflowing_search(tmp_path):
    """Estimator parameters and data for a search in which some candidates overflow.

    ``refit=False``: the winner keeps its search weights (a refit would start
    from the table's huge, finite weights and fail on its first loss).
    """
    X, y = _huge_blobs()
    params = dict(TINY, controller_epochs=2, samples_per_epoch=4, epochs=1, batch_size=512,
                  learning_rate=LEARNING_RATE, refit=False, log_dir=tmp_path)
    return params, X, y


@pytest.mark.parametrize("trainer", ["population", "keras"])
def test_overflowing_candidates_are_failed_rows_and_never_shared(overflowing_search, trainer):
    params, X, y = overflowing_search
    cls = type("NAS", (MLPNASClassifier,), {"_trainer_kind": trainer})
    clf = cls(**params).fit(X, y)
    res = pd.DataFrame(clf.search_results_)
    # the search went on to its end, every candidate has its row
    assert len(res) == 8 and clf.stop_reason_ == "completed"
    assert set(res.controller_epoch) == {0, 1}
    # the shared table, as the run's checkpoint wrote it after the last
    # controller epoch, holds weights and nothing but finite values
    with np.load(clf.run_dir_ / "checkpoint.npz") as z:
        shared = {k: z[k] for k in z.files if k.startswith("weights/")}
    assert shared and all(np.all(np.isfinite(a)) for a in shared.values())
    table = SharedWeights.from_arrays({k[len("weights/"):]: a for k, a in shared.items()})
    assert len(table) == len(shared) // 2  # no pair was left out on reading
    # the overflowing candidates are failed rows; the others score as usual
    overflowed = res[res.message == MESSAGE]
    assert len(overflowed) >= 1 and (overflowed.status == "failed").all()
    assert overflowed.reward.isna().all()
    assert (res.status == "ok").any() and res.status[clf.best_index_] == "ok"
    assert clf.predict(X[:5]).shape == (5,)


def test_error_score_raise_reraises_the_overflow(overflowing_search):
    params, X, y = overflowing_search
    with pytest.raises(FloatingPointError, match=MESSAGE):
        MLPNASClassifier(**params, error_score="raise").fit(X, y)
