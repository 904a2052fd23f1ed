"""Candidate trainers: how an architecture is built, trained and scored.

Two trainers share one interface, ``trainer.train(candidates, data, seed)``:

* :class:`PopulationTrainer` (the default) trains a whole population of
  candidates side by side in one compiled TensorFlow graph whose loop over
  epochs and mini-batches runs inside the graph, so the per-step framework
  overhead is paid once per population instead of once per candidate.
* :class:`KerasTrainer` builds a ``keras.Sequential`` per candidate and calls
  ``model.fit``: the plain Keras loop, kept as a reference and for users who
  want it.

Both start each dense layer from the given initial weights and return the
per-epoch validation accuracies and the trained weights.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

__all__ = ["CandidateData", "CandidateResult", "PopulationTrainer", "KerasTrainer",
           "build_keras_model", "dense_shapes", "initial_weights", "n_params"]


@dataclass
class CandidateData:
    """Training and validation rows shared by every candidate of a fit.

    ``y`` holds class indices ``0 .. n_classes - 1``; ``w`` sample weights.
    ``X_val`` may be empty (no validation, as in the refit).
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    w_val: np.ndarray
    n_classes: int

    @property
    def n_features(self):
        return self.X.shape[1]

    @property
    def n_outputs(self):
        return 1 if self.n_classes == 2 else self.n_classes


@dataclass
class CandidateResult:
    """What training one candidate produced."""

    val_scores: list = field(default_factory=list)
    weights: list | None = None
    loss: float = float("nan")
    status: str = "ok"
    message: str = ""
    fit_time: float = 0.0
    error: BaseException | None = None
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


_NAN_MESSAGE = "training loss became NaN or infinite"


def dense_shapes(layers, n_features, n_outputs):
    """Kernel shapes of the dense layers of a candidate, output layer last."""
    shapes, width = [], n_features
    for layer in layers:
        if layer["type"] == "dense":
            shapes.append((width, layer["units"]))
            width = layer["units"]
    shapes.append((width, n_outputs))
    return shapes


def n_params(layers, n_features, n_outputs):
    """Number of trainable parameters of a candidate."""
    return int(sum(i * o + o for i, o in dense_shapes(layers, n_features, n_outputs)))


def initial_weights(layers, n_features, n_outputs, rng, store=None):
    """Initial ``(kernel, bias)`` per dense layer: shared weights or Glorot/zeros."""
    from ._weights import layer_keys
    out = []
    for key, shape in zip(layer_keys(layers), dense_shapes(layers, n_features, n_outputs)):
        entry = store.get(key, shape) if store is not None else None
        if entry is None:
            limit = math.sqrt(6.0 / (shape[0] + shape[1]))
            entry = (rng.uniform(-limit, limit, shape).astype(np.float32),
                     np.zeros(shape[1], np.float32))
        out.append((entry[0].copy(), entry[1].copy()))
    return out


def _activation(name):
    fn = getattr(tf.nn, name, None) or getattr(tf.math, name, None)
    if fn is None:
        import keras
        fn = keras.activations.get(name)
    return fn


class _Net:
    """One candidate inside the population graph."""

    def __init__(self, layers, weights, n_classes, seed):
        self.n_classes = n_classes
        self.seed = int(seed) % (2**31 - 1)
        self.kernels = [tf.Variable(k) for k, _ in weights]
        self.biases = [tf.Variable(b) for _, b in weights]
        self.ops = []  # ('dense', index, activation) | ('dropout', rate)
        i = 0
        for layer in layers:
            if layer["type"] == "dense":
                self.ops.append(("dense", i, _activation(layer["activation"])))
                i += 1
            else:
                self.ops.append(("dropout", layer["rate"]))
        self.variables = [v for pair in zip(self.kernels, self.biases) for v in pair]
        self.slots = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v)))
                      for v in self.variables]

    def logits(self, x, dropout_seed=None):
        for j, op in enumerate(self.ops):
            if op[0] == "dense":
                x = op[2](x @ self.kernels[op[1]] + self.biases[op[1]])
            elif dropout_seed is not None:
                x = tf.nn.experimental.stateless_dropout(x, op[1], seed=dropout_seed + [0, 7919 * j])
        return x @ self.kernels[-1] + self.biases[-1]

    def losses(self, x, y):
        z = self.logits(x)
        return self._per_row_loss(z, y), self._correct(z, y)

    def per_row_loss(self, x, y, step):
        return self._per_row_loss(self.logits(x, tf.stack([self.seed, step])), y)

    def _per_row_loss(self, z, y):
        if self.n_classes == 2:
            return tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(y, tf.float32)[:, None], z)[:, 0]
        return tf.nn.sparse_softmax_cross_entropy_with_logits(y, z)

    def _correct(self, z, y):
        if self.n_classes == 2:
            pred = tf.cast(z[:, 0] > 0, tf.int32)
        else:
            pred = tf.argmax(z, axis=1, output_type=tf.int32)
        return tf.cast(tf.equal(pred, y), tf.float32)

    def weights(self):
        return [(k.numpy(), b.numpy()) for k, b in zip(self.kernels, self.biases)]


class PopulationTrainer:
    """Train a population of candidates together in one compiled graph.

    Every candidate gets its own weights and its own Adam state; the
    population sees the same shuffled mini-batches (``batch_size`` rows, the
    last one partial, as in ``model.fit``) and one gradient step per batch
    updates all of them, with the loop over epochs and batches compiled into
    the graph. A candidate whose loss becomes NaN or infinite is reported as
    failed without disturbing the others.

    Parameters
    ----------
    epochs : int
    batch_size : int
    learning_rate : float
        Adam learning rate (Keras' Adam: beta_1=0.9, beta_2=0.999, epsilon=1e-7).
    """

    def __init__(self, epochs=10, batch_size=32, learning_rate=0.01):
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate

    def train(self, candidates, data, seed):
        """Train ``candidates``, a list of ``(layers, initial_weights, seed)``.

        ``seed`` (an int per candidate, and one for the population) fixes the
        candidate's dropout masks and the population's shuffling, so a
        candidate trains the same whether alone or in any population.

        Returns
        -------
        results : list of CandidateResult
        """
        start = time.perf_counter()
        try:
            nets = [_Net(layers, w, data.n_classes, s) for layers, w, s in candidates]
            scores, losses, bad = self._run(nets, data, seed)
        except (tf.errors.OpError, ValueError, TypeError) as exc:  # whole population broke
            if len(candidates) == 1:
                return [CandidateResult(status="failed", message=_message(exc), error=exc,
                                        fit_time=time.perf_counter() - start)]
            return [r for c in candidates for r in self.train([c], data, seed)]
        elapsed = (time.perf_counter() - start) / len(nets)
        results = []
        for k, net in enumerate(nets):
            if bad[k]:
                results.append(CandidateResult(
                    val_scores=scores[:, k].tolist(), status="failed", fit_time=elapsed,
                    message=_NAN_MESSAGE, error=FloatingPointError(_NAN_MESSAGE)))
            else:
                results.append(CandidateResult(val_scores=scores[:, k].tolist(),
                                               weights=net.weights(), loss=float(losses[k]),
                                               fit_time=elapsed))
        return results

    def _run(self, nets, data, seed):
        X = tf.constant(data.X, tf.float32)
        y = tf.constant(data.y, tf.int32)
        w = tf.constant(data.w, tf.float32)
        Xv = tf.constant(data.X_val, tf.float32)
        yv = tf.constant(data.y_val, tf.int32)
        wv = tf.constant(data.w_val, tf.float32)
        fn = tf.function(self._make_loop(nets, int(seed) % (2**31 - 1)), autograph=True)
        with _quiet_retracing():
            scores, losses, bad = fn(X, y, w, Xv, yv, wv)
        return scores.numpy(), losses.numpy(), bad.numpy()

    def _make_loop(self, nets, seed):
        epochs, bs, lr = self.epochs, self.batch_size, self.learning_rate
        all_vars = [v for net in nets for v in net.variables]
        all_slots = [s for net in nets for s in net.slots]
        n_nets = len(nets)

        def loop(X, y, w, Xv, yv, wv):
            n = tf.shape(X)[0]
            steps = (n + bs - 1) // bs
            scores = tf.TensorArray(tf.float32, size=epochs)
            bad = tf.zeros([n_nets], tf.bool)
            epoch_loss = tf.zeros([n_nets])
            b1p = tf.constant(1.0)
            b2p = tf.constant(1.0)
            for epoch in tf.range(epochs):
                perm = tf.argsort(tf.random.stateless_uniform([n], seed=[seed, epoch]))
                epoch_loss = tf.zeros([n_nets])
                for step in tf.range(steps):
                    idx = perm[step * bs: tf.minimum((step + 1) * bs, n)]
                    xb, yb, wb = tf.gather(X, idx), tf.gather(y, idx), tf.gather(w, idx)
                    denom = tf.cast(tf.shape(idx)[0], tf.float32)
                    with tf.GradientTape() as tape:
                        per_net = [tf.reduce_sum(wb * net.per_row_loss(xb, yb, epoch * steps + step)) / denom
                                   for net in nets]
                        total = tf.add_n(per_net)
                    grads = tape.gradient(total, all_vars)
                    b1p, b2p = b1p * 0.9, b2p * 0.999
                    for var, (m, v), g in zip(all_vars, all_slots, grads):
                        tf.raw_ops.ResourceApplyAdam(
                            var=var.handle, m=m.handle, v=v.handle, beta1_power=b1p,
                            beta2_power=b2p, lr=lr, beta1=0.9, beta2=0.999, epsilon=1e-7,
                            grad=g)
                    step_loss = tf.stack(per_net)
                    bad = tf.logical_or(bad, tf.logical_not(tf.math.is_finite(step_loss)))
                    epoch_loss += step_loss
                scores = scores.write(epoch, self._val_scores(nets, Xv, yv, wv))
            return scores.stack(), epoch_loss / tf.cast(steps, tf.float32), bad

        return loop

    @staticmethod
    def _val_scores(nets, Xv, yv, wv):
        total = tf.maximum(tf.reduce_sum(wv), 1e-12)
        out = []
        for net in nets:
            _, correct = net.losses(Xv, yv)
            out.append(tf.reduce_sum(wv * correct) / total)
        return tf.stack(out)


@contextmanager
def _quiet_retracing():
    """Silence TensorFlow's 'triggered tf.function retracing' warning: each
    population is a new graph by design, traced once."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _message(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def build_keras_model(layers, n_features, n_classes, weights=None, seed=None):
    """A ``keras.Sequential`` MLP for ``layers`` plus the output layer.

    Parameters
    ----------
    layers : list of dict
        Hidden layers in machine form.
    n_features, n_classes : int
    weights : list of (kernel, bias), optional
        Weights of the dense layers, output last.
    seed : int, optional
        Seed of the dropout layers.
    """
    import keras
    model = keras.Sequential([keras.Input((n_features,))])
    for j, layer in enumerate(layers):
        if layer["type"] == "dense":
            model.add(keras.layers.Dense(layer["units"], activation=layer["activation"]))
        else:
            model.add(keras.layers.Dropout(layer["rate"], seed=None if seed is None else seed + j))
    if n_classes == 2:
        model.add(keras.layers.Dense(1, activation="sigmoid"))
    else:
        model.add(keras.layers.Dense(n_classes, activation="softmax"))
    if weights is not None:
        dense = [lyr for lyr in model.layers if isinstance(lyr, keras.layers.Dense)]
        for lyr, (kernel, bias) in zip(dense, weights):
            lyr.set_weights([kernel, bias])
    return model


class KerasTrainer:
    """Train each candidate with a plain ``model.fit`` (the tutorial's way).

    Parameters are those of :class:`PopulationTrainer`.
    """

    def __init__(self, epochs=10, batch_size=32, learning_rate=0.01):
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate

    def train(self, candidates, data, seed):
        """Train each of ``candidates`` in turn; see :meth:`PopulationTrainer.train`."""
        return [self._train_one(layers, w, data, s) for layers, w, s in candidates]

    def _train_one(self, layers, weights, data, seed):
        import keras
        start = time.perf_counter()
        try:
            model = build_keras_model(layers, data.n_features, data.n_classes, weights, seed)
            loss = "binary_crossentropy" if data.n_classes == 2 else "sparse_categorical_crossentropy"
            model.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss=loss,
                          weighted_metrics=["accuracy"])
            has_val = len(data.y_val) > 0
            hist = model.fit(data.X, data.y, sample_weight=data.w, epochs=self.epochs,
                             batch_size=self.batch_size, verbose=0,
                             validation_data=(data.X_val, data.y_val, data.w_val) if has_val else None)
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            return CandidateResult(status="failed", message=_message(exc), error=exc,
                                   fit_time=time.perf_counter() - start)
        losses = hist.history["loss"]
        dense = [lyr for lyr in model.layers if isinstance(lyr, keras.layers.Dense)]
        result = CandidateResult(val_scores=list(hist.history.get("val_accuracy", [])),
                                 weights=[tuple(lyr.get_weights()) for lyr in dense],
                                 loss=float(losses[-1]), fit_time=time.perf_counter() - start)
        if not np.all(np.isfinite(losses)):
            result.status, result.message, result.weights = "failed", _NAN_MESSAGE, None
            result.error = FloatingPointError(_NAN_MESSAGE)
        return result
