"""The fast population trainer trains like plain ``model.fit``, and is the default.

Its hand-written gradients are checked against ``tf.GradientTape`` on the
Keras model of the same candidate; its training against ``model.fit``.

No timings here: the speed is measured by ``benchmarks/bench_speed.py``.
"""

import gc
import threading
from contextlib import contextmanager

import numpy as np
import pytest
import tensorflow as tf

from sknas import MLPNASClassifier, _population
from sknas._data import plain_graphs
from sknas._trainer import (_GRAPHS, CandidateData, KerasTrainer, PopulationTrainer,
                            _loss_and_grads, _Net, build_keras_model, initial_weights)

from conftest import assert_probabilities_match


def dense(units, act):
    return {"type": "dense", "units": units, "activation": act}


DROP = {"type": "dropout", "rate": 0.2}


def split(X, y, n_val, seed=0):
    """CandidateData with the last ``n_val`` rows of a shuffled copy held out, scaled
    with the statistics of the training rows alone."""
    order = np.random.default_rng(seed).permutation(len(y))
    X = X[order].astype(np.float32)
    X = (X - X[:-n_val].mean(0)) / (X[:-n_val].std(0) + 1e-6)
    y = y[order].astype(np.int32)
    ones = np.ones(len(y), np.float32)
    return CandidateData(X[:-n_val], y[:-n_val], ones[:-n_val], X[-n_val:], y[-n_val:],
                         ones[-n_val:], int(y.max()) + 1)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    return split(X, y, 360)


@pytest.fixture(scope="module")
def cancer():
    from sklearn.datasets import load_breast_cancer
    X, y = load_breast_cancer(return_X_y=True)
    return split(X, y, 114)


def candidates(archs, data, seed=0):
    rng = np.random.default_rng(seed)
    return [(layers, initial_weights(layers, data.n_features, data.n_outputs, rng), 10 + k)
            for k, layers in enumerate(archs)]


@pytest.mark.parametrize("name, archs", [
    ("digits", [[dense(32, "relu")], [dense(64, "tanh"), DROP], [dense(32, "elu"), dense(16, "sigmoid")]]),
    ("cancer", [[dense(16, "relu"), dense(8, "tanh")], [dense(32, "sigmoid")]]),
])
def test_population_trainer_matches_model_fit(name, archs, request):
    # Same architectures, same initial weights, same batch size, epochs and
    # Adam: the final validation accuracies agree within what the different
    # shuffling and dropout masks of the two loops explain (a few rows of
    # the validation split), and both really learn.
    data = request.getfixturevalue(name)
    cands = candidates(archs, data)
    pop = PopulationTrainer(epochs=5).train(cands, data, seed=0)
    ref = KerasTrainer(epochs=5).train(cands, data, seed=0)
    assert [r.status for r in pop + ref] == ["ok"] * (2 * len(archs))
    pop_acc = np.array([r.val_scores[-1] for r in pop])
    ref_acc = np.array([r.val_scores[-1] for r in ref])
    assert len(pop[0].val_scores) == len(ref[0].val_scores) == 5
    assert np.all(pop_acc > 0.9) and np.all(ref_acc > 0.9)
    assert abs(pop_acc.mean() - ref_acc.mean()) < 0.03
    np.testing.assert_allclose(pop_acc, ref_acc, atol=0.06)


@pytest.fixture(scope="module")
def three_classes():
    """3 classes, 230 training rows: the last batch has 6 rows, so a population's
    stacked logits would not fill whole SIMD packets (the wine-quality case)."""
    from sklearn.datasets import make_classification
    X, y = make_classification(n_samples=290, n_features=8, n_informative=5, n_classes=3,
                               random_state=0)
    return split(X, y, 60)


@pytest.mark.parametrize("name", ["three_classes", "digits", "cancer"])
def test_candidate_trains_bit_identically_alone_and_in_any_population(name, request):
    data = request.getfixturevalue(name)
    archs = [[dense(32, "relu"), DROP], [dense(16, "tanh"), dense(8, "elu")], [dense(8, "sigmoid")],
             [dense(64, "sigmoid"), dense(32, "elu")]]
    cands = candidates(archs, data)
    trainer = PopulationTrainer(epochs=2)
    together = trainer.train(cands, data, seed=3)
    for sub in ([0], [2, 0], [3, 1, 0], [0, 3]):
        other = trainer.train([cands[k] for k in sub], data, seed=3)[sub.index(0)]
        assert other.val_scores == together[0].val_scores
        for (k1, b1), (k2, b2) in zip(other.weights, together[0].weights):
            np.testing.assert_array_equal(k1, k2)
            np.testing.assert_array_equal(b1, b2)
    # the population seed (shuffling) matters, so the test above is not vacuous
    reshuffled = trainer.train([cands[0]], data, seed=4)[0]
    assert not np.array_equal(reshuffled.weights[0][0], together[0].weights[0][0])


@pytest.mark.parametrize("early_stopping", [False, True])
def test_a_cached_population_trains_as_a_new_one(cancer, early_stopping):
    # A population of the same nets, seeds and settings as one trained before reuses
    # its graph (no new trace) from new initial weights: every number is that of a
    # new population, with batch normalisation, own Adam settings, dropout, early
    # stopping, per-net row weights and validation outputs.
    archs = [[{"type": "optimizer", "learning_rate": 0.003, "weight_decay": 0.01},
              dict(dense(16, "relu"), batch_norm=True), DROP],
             [dense(8, "tanh"), dense(4, "elu")]]
    trainer = PopulationTrainer(epochs=4, early_stopping=early_stopping, n_iter_no_change=1)
    n = len(cancer.y)
    folds = [(np.arange(n) % 2 == k, cancer.w_val) for k in range(2)]

    def train(init_seed):
        return trainer.train(candidates(archs, cancer, seed=init_seed), cancer, seed=1,
                             row_weights=folds, val_outputs=True)

    _GRAPHS.clear()
    first = train(0)
    again = train(5)  # same nets: the cached graph, reset to other initial weights
    (_, fn), = _GRAPHS._entries.values()
    assert fn.experimental_get_tracing_count() == 1
    _GRAPHS.clear()
    fresh = train(5)
    for a, b, c in zip(again, fresh, first):
        assert a.status == b.status == "ok"
        assert a.val_scores == b.val_scores and a.best_epoch == b.best_epoch
        np.testing.assert_array_equal(a.val_outputs, b.val_outputs)
        for layer_a, layer_b in zip(a.weights, b.weights):
            for x, y in zip(layer_a, layer_b):
                np.testing.assert_array_equal(x, y)
        assert not np.array_equal(a.weights[0][0], c.weights[0][0])  # the new start counted


def _log_loss(outputs, y, w):
    """Weighted mean cross-entropy of probabilities ``outputs`` (a binary head:
    the positive class's, one column)."""
    p = np.clip(outputs.astype(np.float64), 1e-12, 1.0)
    if p.shape[1] == 1:
        true = np.where(y == 1, p[:, 0], 1.0 - p[:, 0])
    else:
        true = p[np.arange(len(y)), y]
    return float(np.sum(-w * np.log(true)) / np.sum(w))


@pytest.mark.parametrize("name", ["three_classes", "cancer"])
def test_val_losses_are_each_epochs_validation_log_loss(name, request):
    # PopulationTrainer(val_losses=True): the weighted validation cross-entropy after
    # each epoch, without label smoothing; the last one is that of the final weights'
    # outputs; the scores and weights are those of a trainer that records none
    import dataclasses
    data = request.getfixturevalue(name)
    w_val = np.random.default_rng(3).uniform(0.5, 2.0, len(data.y_val)).astype(np.float32)
    data = dataclasses.replace(data, w_val=w_val)
    smooth = [{"type": "optimizer", "learning_rate": 0.01, "weight_decay": 0.0,
               "label_smoothing": 0.1}, dense(8, "relu")]
    cands = candidates([[dense(16, "relu"), DROP, dense(8, "tanh")], smooth,
                        [dense(4, "sigmoid")]], data)
    plain = PopulationTrainer(epochs=3).train(cands, data, 5, val_outputs=True)
    with_losses = PopulationTrainer(epochs=3, val_losses=True).train(cands, data, 5,
                                                                      val_outputs=True)
    for a, b in zip(plain, with_losses):
        assert a.val_losses == []
        assert len(b.val_losses) == 3 and b.val_scores == a.val_scores
        for wa, wb in zip(a.weights, b.weights):
            for x, z in zip(wa, wb):
                np.testing.assert_array_equal(x, z)
        assert b.val_losses[-1] == pytest.approx(_log_loss(b.val_outputs, data.y_val, w_val),
                                                 rel=1e-4)
        assert b.val_losses[0] != pytest.approx(b.val_losses[-1], rel=1e-4)  # per epoch


def _graph_ops(trainer, cands, data):
    """Operations in the graph (and its loop bodies) of ``cands`` trained as one population."""
    import tensorflow.python.eager.polymorphic_function.polymorphic_function as pf
    traced, original = [], pf.Function.get_concrete_function

    def keep(self, *args, **kwargs):
        traced.append(original(self, *args, **kwargs))
        return traced[-1]

    pf.Function.get_concrete_function = keep
    try:
        trainer.train(cands, data, 0)
    finally:
        pf.Function.get_concrete_function = original
    graph = traced[-1].graph.as_graph_def()
    return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)


@pytest.mark.parametrize("name", ["cancer", "three_classes"])
def test_a_net_adds_few_operations_to_its_population_graph(name, request):
    # tracing costs about the same per operation whatever it computes, and tracing is
    # the largest cost of a small table's fit: a 2-hidden-layer net with dropout adds
    # 57 operations to its population's graph with a binary head, 54 with three classes
    # (111 and 86 before 2026-12-07: constants made once per graph, the columns the
    # nets share made once, the dropout draw's kernels alone, the logits' finiteness
    # checked for all nets at once in place of each loss); a bound, not a timing, so that the
    # count does not creep back
    data = request.getfixturevalue(name)
    net = [dense(32, "relu"), DROP, dense(16, "tanh")]
    trainer = PopulationTrainer(epochs=1, batch_size=32)
    one = _graph_ops(trainer, candidates([net], data), data)
    two = _graph_ops(trainer, candidates([net, net], data, seed=1), data)
    assert two - one <= 70


@pytest.mark.parametrize("name", ["cancer", "three_classes"])
@pytest.mark.parametrize("members", [1, 3])
def test_nan_loss_fails_only_that_candidate(name, members, request):
    # the loss's own check, not the trained weights' (a classifier's step checks its
    # logits, whose cross-entropy it does not compute, for all its nets at once: with
    # members=3 the poisoned net has 3 members and the others 1, two checks)
    from sknas._data import _NAN_MESSAGE
    data = request.getfixturevalue(name)
    own = [{"type": "optimizer", "members": members}] if members > 1 else []
    archs = [[dense(8, "relu")], own + [dense(8, "relu")], [dense(4, "tanh")]]
    cands = candidates(archs, data)
    layers, weights, seed = cands[1]
    cands[1] = (layers, [tuple(np.full_like(a, np.inf) for a in layer) for layer in weights],
                seed)
    trainer = PopulationTrainer(epochs=2)
    results = trainer.train(cands, data, seed=0)
    assert [r.status for r in results] == ["ok", "failed", "ok"]
    assert results[1].message == _NAN_MESSAGE and results[1].weights is None
    # the healthy candidates trained exactly as they would have without it
    clean = trainer.train([cands[0], cands[2]], data, seed=0)
    assert [r.val_scores for r in clean] == [results[0].val_scores, results[2].val_scores]


def test_population_trainer_is_the_default_speed_path():
    est = MLPNASClassifier()
    assert est._trainer_kind == "population" and "trainer" not in est.get_params()
    assert isinstance(est._make_trainer(early_stopping=False, batch_size=32), PopulationTrainer)
    # model.fit, the reference, is a subclass's choice (no parameter)
    reference = type("KerasNAS", (MLPNASClassifier,), {"_trainer_kind": "keras"})()
    assert isinstance(reference._make_trainer(early_stopping=False, batch_size=32), KerasTrainer)


def _meta_optimizer_off():
    return tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False)


@pytest.mark.parametrize("users_value", [False, True])
def test_population_graphs_run_without_grappler_and_restore_the_option(cancer, monkeypatch,
                                                                      users_value):
    # Grappler's passes cost more than they save on a population graph's one
    # call: the graph runs with them off, and the user's setting comes back
    seen = []

    @contextmanager
    def watched():
        with plain_graphs():
            seen.append(_meta_optimizer_off())
            yield

    monkeypatch.setattr(_population, "plain_graphs", watched)
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": users_value})
    try:
        cands = candidates([[dense(8, "relu")], [dense(4, "tanh")]], cancer)
        results = PopulationTrainer(epochs=1).train(cands, cancer, seed=0)
        assert [r.status for r in results] == ["ok", "ok"]
        assert seen == [True]
        assert _meta_optimizer_off() is users_value
    finally:
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": False})


def test_plain_graphs_keeps_the_option_off_until_its_last_user_leaves():
    assert not _meta_optimizer_off()
    inside, leave = threading.Event(), threading.Event()

    def other_fit():
        with plain_graphs():
            inside.set()
            leave.wait(10)

    thread = threading.Thread(target=other_fit)
    with plain_graphs():
        thread.start()
        assert inside.wait(10)
        with plain_graphs():  # nested in one thread
            assert _meta_optimizer_off()
        assert _meta_optimizer_off()
    assert _meta_optimizer_off()  # the other thread's graphs still run
    leave.set()
    thread.join(10)
    assert not _meta_optimizer_off()
    with pytest.raises(RuntimeError), plain_graphs():
        raise RuntimeError("a failed population")
    assert not _meta_optimizer_off()


def _live_state():
    """The TensorFlow variables and traced graphs alive in the process."""
    from tensorflow.python.framework.func_graph import FuncGraph
    gc.collect()
    objects = gc.get_objects()
    return (sum(isinstance(o, tf.Variable) for o in objects),
            sum(isinstance(o, FuncGraph) for o in objects))


def test_populations_release_their_tensorflow_state(cancer):
    # the graph cache keeps the last few populations; past its bound every new
    # population frees an old one, its variables and its graphs (the constants
    # shared within a trace are forgotten when it ends: they hold their graph; and
    # SiLU is not tf.nn.silu, whose custom gradient is registered for the process)
    trainer = PopulationTrainer(epochs=1)
    cands = candidates([[dense(8, "relu")], [dense(4, "elu"), DROP], [dense(4, "silu")]],
                       cancer)
    for seed in range(_GRAPHS.size):
        trainer.train(cands, cancer, seed=seed)
    before = _live_state()
    for seed in range(_GRAPHS.size, _GRAPHS.size + 3):
        trainer.train(cands, cancer, seed=seed)
    assert _live_state() == before


# ------------------------------------------------- gradients against autodiff
#: All four activations, one and two hidden layers, dropout between and after.
GRADIENT_ARCHS = [
    [dense(8, "relu")],
    [dense(7, "tanh"), dense(5, "elu")],
    [dense(6, "sigmoid"), {"type": "dropout", "rate": 0.3}, dense(9, "relu")],
    [dense(9, "elu"), {"type": "dropout", "rate": 0.5}],
    [dense(5, "tanh"), dense(4, "sigmoid")],
]


def _keras_loss_and_grads(model, masks, X, y, w, n_classes):
    """Keras' own loss of ``model`` on a batch and its gradients by ``GradientTape``.

    The layers run in order; each ``Dropout`` in training mode is replaced by
    the population trainer's keep-mask (Keras' dropout is ``x * keep / (1 -
    rate)`` too), so both sides drop the same units. The loss is Keras'
    cross-entropy on the output layer's probabilities, weighted by ``w`` and
    reduced as ``model.fit`` does (``'sum_over_batch_size'``): the weighted
    sum divided by the rows, as the trainer's ``scale = w / batch rows``.
    """
    import keras
    if n_classes == 2:
        loss_fn = keras.losses.BinaryCrossentropy(reduction="sum_over_batch_size")
        y = y[:, None].astype(np.float32)
    else:
        loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction="sum_over_batch_size")
    masks = iter(masks)
    with tf.GradientTape() as tape:
        h = tf.constant(X)
        for layer in model.layers:
            h = h * next(masks) if isinstance(layer, keras.layers.Dropout) else layer(h)
        loss = loss_fn(y, h, sample_weight=w)
    grads = tape.gradient(loss, model.trainable_weights)  # kernel, bias, kernel, ...
    return float(loss), [g.numpy().ravel() for g in grads]


@pytest.mark.parametrize("n_classes", [2, 4])
def test_hand_written_gradients_match_gradient_tape(n_classes):
    # The population trainer differentiates its nets by hand (_Net.forward,
    # _loss_and_grads, _Net.backward). Per candidate, with the same weights,
    # rows, non-uniform sample weights and dropout masks, its loss and every
    # kernel and bias gradient equal what tf.GradientTape finds on the Keras
    # model that build_keras_model makes, up to float32 round-off.
    rng = np.random.default_rng(n_classes)
    n_rows, n_features = 37, 6
    X = rng.normal(size=(n_rows, n_features)).astype(np.float32)
    y = rng.integers(0, n_classes, n_rows).astype(np.int32)
    w = rng.uniform(0.1, 3.0, n_rows).astype(np.float32)
    n_out = 1 if n_classes == 2 else n_classes
    nets, params, weights = [], [], []
    for k, layers in enumerate(GRADIENT_ARCHS):
        init = initial_weights(layers, n_features, n_out, rng)
        init = [(kern, rng.normal(scale=0.3, size=bias.shape).astype(np.float32))  # not zero
                for kern, bias in init]
        nets.append(_Net(layers, n_features, n_classes, seed=10 + k))
        params.append([(tf.constant(kern), tf.constant(bias)) for kern, bias in init])
        weights.append(init)

    # the trainer's step, as in PopulationTrainer._make_step: one pass per net,
    # the losses of the whole population at once, then each net's backward
    step = tf.constant(3)
    passes = [net.forward(p, tf.constant(X), step) for net, p in zip(nets, params)]
    scale = tf.constant(w / n_rows)
    losses, dlogits = _loss_and_grads([f[0] for f in passes], tf.constant(y), scale, n_classes)

    for k, layers in enumerate(GRADIENT_ARCHS):
        tape = passes[k][1]
        grads = [g.numpy() for g in nets[k].backward(params[k], tape, dlogits[k])]
        masks = [record[0].numpy() for record in tape if len(record) == 1]
        assert len(masks) == sum(layer["type"] == "dropout" for layer in layers)
        assert all(0 < np.mean(m == 0) < 1 for m in masks)  # units really dropped
        model = build_keras_model(layers, n_features, n_classes, weights[k])
        loss, want = _keras_loss_and_grads(model, masks, X, y, w, n_classes)
        np.testing.assert_allclose(losses[k].numpy(), loss, rtol=1e-6)
        assert [g.shape for g in grads] == [g.shape for g in want]
        for got, ref in zip(grads, want):
            assert np.any(ref != 0)
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)

        # without a step no unit is dropped: the probabilities are the Keras
        # model's in inference mode (what scoring and predict use)
        logits = nets[k].forward(params[k], tf.constant(X))[0].numpy()
        assert_probabilities_match(logits, model, X, n_classes)
