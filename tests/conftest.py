"""Shared fixtures: tiny budgets and a clean Keras state for every test."""

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from sklearn.base import clone  # noqa: E402

from sknas import Reinforce, SearchSpace  # noqa: E402

#: A search budget that runs in about a second: use ``MLPNASClassifier(**TINY)``.
#: ``cv=None``: most tests are about the search, and cross-validating the finalists
#: would trace one more population graph per fit; the default ``cv='auto'`` is tested
#: by the scikit-learn checks (tests/test_sklearn_checks.py), tests/test_generalisation.py,
#: test_core_fit's first test, the CLI and the examples.
TINY = dict(controller_epochs=1, samples_per_epoch=2, epochs=2,
            strategy=Reinforce(train_steps=1, lstm_units=8),
            space=SearchSpace(units=(4, 8), activations=("relu", "tanh")), random_state=0,
            cv=None)


def in_ci():
    """True when the environment variable ``CI`` is set (and not to false, 0 or no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require(module):
    """Import an optional test dependency (one of the ``test`` extra's).

    Locally, a missing ``module`` skips the test (``pytest.importorskip``); under CI
    (``CI`` set) it is imported plainly, so a missing package fails the test run
    instead of skipping it silently.
    """
    if in_ci():
        return importlib.import_module(module)
    return pytest.importorskip(module)


@pytest.fixture(autouse=True)
def _clean_keras():
    """Reset Keras' global state after each test."""
    yield
    import keras
    keras.backend.clear_session(free_memory=False)


def fresh(params):
    """A copy of ``params`` whose space and strategy are new objects (``set_params``
    on an estimator changes its ``space`` and ``strategy`` objects in place)."""
    return {k: clone(v) if hasattr(v, "get_params") else v for k, v in params.items()}


@pytest.fixture
def tiny():
    """A copy of the tiny budget."""
    return fresh(TINY)


@pytest.fixture
def blobs():
    """An easy 3-class problem (300 rows, 4 features), scaled."""
    from sklearn.datasets import make_blobs
    X, y = make_blobs(n_samples=300, centers=3, n_features=4, cluster_std=1.5, random_state=0)
    X = (X - X.mean(0)) / X.std(0)
    return X.astype(np.float64), y


@pytest.fixture(scope="module")
def cancer():
    """Breast-cancer rows, standardised, as a trainer's ``CandidateData``: 400
    training rows, the other 169 scored."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    from sknas._trainer import CandidateData
    X, y = load_breast_cancer(return_X_y=True)
    X = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    y = y.astype(np.int32)
    ones = np.ones(len(y), np.float32)
    return CandidateData(X[:400], y[:400], ones[:400], X[400:], y[400:], ones[400:], 2)


def assert_probabilities_match(logits, model, X, n_classes):
    """A population net's inference-mode ``logits`` on ``X`` give the
    probabilities that the Keras ``model`` serving it computes."""
    proba = model(X, training=False).numpy()
    mine = (1 / (1 + np.exp(-logits)) if n_classes == 2
            else np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(mine, proba, rtol=1e-5, atol=1e-6)


def member_loss_and_grads(model, masks, X, y, w, head, smoothing, k):
    """Keras' loss of each member's output (the model built with
    ``each_member=True``) averaged as ``model.fit`` averages it, and its
    gradients by ``GradientTape``; each ``Dropout`` uses the population
    trainer's mask (its ``(k * rows, width)`` laid out as ``(rows, k, width)``)."""
    import keras
    import tensorflow as tf

    from sknas._keras import _keras_loss
    loss_fn = _keras_loss(head, smoothing)
    if isinstance(loss_fn, str):
        loss_fn = keras.losses.get(loss_fn)
    masks = iter(masks)
    target = np.repeat(y[:, None], k, axis=1) if k > 1 else y
    if head.kind == "binary":
        target = target[..., None].astype(np.float32)

    def dropout():  # a Dropout's call with the population trainer's next mask
        mask = next(masks)
        if k > 1:
            mask = mask.reshape(k, len(X), -1).transpose(1, 0, 2)
        return lambda inputs, training=None: inputs * mask

    with tf.GradientTape() as tape:
        h = tf.constant(X)
        if isinstance(model, keras.Sequential):
            for layer in model.layers:
                if isinstance(layer, keras.layers.Dropout):
                    h = dropout()(h)
                else:
                    h = layer(h, training=True) if isinstance(
                        layer, keras.layers.BatchNormalization) else layer(h)
        else:  # an embedding's functional model: its Dropouts' calls take the masks
            dropouts = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
            for layer in dropouts:  # in the order they are called: the model is a chain
                layer.call = dropout()
            try:
                h = model(h, training=True)
            finally:
                for layer in dropouts:
                    del layer.call
        if isinstance(loss_fn, keras.losses.Loss):  # a weight per member's loss
            loss = loss_fn(target, h, sample_weight=np.repeat(w[:, None], k, 1) if k > 1 else w)
        else:
            per_row = tf.reshape(loss_fn(target, h), [len(X), -1])
            loss = tf.reduce_sum(per_row * w[:, None]) / tf.cast(tf.size(per_row), tf.float32)
    grads = tape.gradient(loss, model.trainable_weights)
    return float(loss), [g.numpy() for g in grads]


def check_passes_against_gradient_tape(archs, n_classes):
    """The population trainer's hand-written passes of the nets ``archs``
    (their own settings entries first: ``label_smoothing`` and ``input``
    given), trained side by side in one population on random rows: the loss
    and every gradient against ``tf.GradientTape`` on the Keras model of each
    member's output, the inference logits against the served model, and the
    weights' layout against :func:`keras_weights`. Returns ``(nets, weights,
    passes, grads, X, stats)`` for a test's own checks."""
    import tensorflow as tf

    from sknas._data import input_stats
    from sknas._nets import backward_passes, forward_passes
    from sknas._trainer import (Head, _loss_and_grads, _Net, build_keras_model,
                                initial_weights, keras_weights)
    rng = np.random.default_rng(n_classes)
    n_rows, n_features = 37, 5
    X = (rng.standard_t(3, size=(n_rows, n_features)) * 2 + 1).astype(np.float32)
    y = rng.integers(0, n_classes, n_rows).astype(np.int32)
    w = rng.uniform(0.1, 3.0, n_rows).astype(np.float32)
    stats = input_stats(X, ("robust", "plr", "pbld"))
    head = Head.of(n_classes)
    nets, params, weights = [], [], []
    for j, layers in enumerate(archs):
        init = initial_weights(layers, n_features, head.n_outputs, rng)
        # biases, batch-normalisation offsets and adapters away from their starts
        init = [tuple(a if i == 0 or i >= 4 and len(t) == 6 else
                      (a + rng.normal(scale=0.3, size=a.shape)).astype(np.float32)
                      for i, a in enumerate(t)) for t in init]
        nets.append(_Net(layers, n_features, n_classes, seed=10 + j, input_stats=stats))
        params.append([tuple(tf.constant(a) for a in t) for t in init])
        weights.append(init)
    passes = forward_passes(nets, params, tf.constant(X), tf.constant(3))
    losses, dlogits = _loss_and_grads([f[0] for f in passes], tf.constant(y),
                                      tf.constant(w / n_rows), n_classes,
                                      smoothing=[net.label_smoothing for net in nets],
                                      members=[net.members for net in nets])
    # backward together: nets may share a batch-normalisation round
    grads = backward_passes(nets, params, [f[1] for f in passes], dlogits)
    for j, layers in enumerate(archs):
        tape = passes[j][1]
        masks = [record[0].numpy() for record in tape if len(record) == 1]
        model = build_keras_model(layers, n_features, n_classes, weights[j], input_stats=stats,
                                  each_member=True)
        loss, want = member_loss_and_grads(model, masks, X, y, w, head,
                                           layers[0]["label_smoothing"], nets[j].members)
        np.testing.assert_allclose(losses[j].numpy(), loss, rtol=2e-6)
        # the flat gradient pieces laid out as the Keras model's weights
        flat = [g.numpy() for g in grads[j]]
        as_keras = build_keras_model(layers, n_features, n_classes,
                                     [tuple(p) for p in nets[j].unflatten(flat, np.reshape)],
                                     input_stats=stats, each_member=True)
        got = [v.numpy() for v in as_keras.trainable_weights]
        assert [g.shape for g in got] == [g.shape for g in want]
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=3e-6)
        # inference: the (members' combined) logits give the served model's probabilities
        served = build_keras_model(layers, n_features, n_classes, weights[j], input_stats=stats)
        z = nets[j].combine(nets[j].forward(params[j], tf.constant(X))[0]).numpy()
        assert_probabilities_match(z, served, X, n_classes)
        assert [len(t) for t in keras_weights(served)] == [len(t) for t in weights[j]]
        for a, b in zip(keras_weights(served), weights[j]):
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)
    return nets, weights, passes, grads, X, stats


def assert_both_trainers_alike(archs, data):
    """The population trainer and ``model.fit`` train each of ``archs`` alike
    on ``data`` in full batches (so both take the same steps): scores to
    0.006, weights to 1e-3. Returns the population trainer's results and the
    candidates ``(layers, initial weights, seed)``."""
    from sknas._trainer import KerasTrainer, PopulationTrainer, initial_weights
    rng = np.random.default_rng(0)
    cands = [(layers, initial_weights(layers, data.n_features, 1, rng), 10 + j)
             for j, layers in enumerate(archs)]
    n = len(data.y)
    pop = PopulationTrainer(epochs=4, batch_size=n).train(cands, data, seed=0)
    ref = KerasTrainer(epochs=4, batch_size=n).train(cands, data, seed=0)
    for p, r in zip(pop, ref):
        assert p.status == r.status == "ok"
        np.testing.assert_allclose(p.val_scores, r.val_scores, atol=0.006)
        for a, b in zip(p.weights, r.weights):
            for u, v in zip(a, b):
                np.testing.assert_allclose(u, v, rtol=1e-3, atol=2e-5)
    return pop, cands


def assert_trains_alike_in_any_population(trainer, cands, data, subsets, seed=3):
    """Each of ``cands`` trains bit-identically in the whole population and in
    each population of ``subsets`` (lists of indices); returns the whole
    population's results."""
    together = trainer.train(cands, data, seed=seed)
    for sub in subsets:
        part = trainer.train([cands[k] for k in sub], data, seed=seed)
        for k, alone in zip(sub, part):
            assert alone.val_scores == together[k].val_scores
            for a, b in zip(alone.weights, together[k].weights):
                for x, z in zip(a, b):
                    np.testing.assert_array_equal(x, z)
    return together
