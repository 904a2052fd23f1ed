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

Both take SciPy sparse rows (CSR) as well as dense ones. The
:class:`PopulationTrainer` keeps sparse data sparse in its graph: each
mini-batch is gathered from the stored values alone, and the first dense
layer multiplies it with TensorFlow's sparse-dense product (or, with
``sparse_product=False``, densifies the mini-batch first), so memory for the
data stays proportional to the stored values.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import socket
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from ._space import optimizer_settings

__all__ = ["CandidateData", "CandidateResult", "FoldRows", "Head", "PopulationTrainer",
           "KerasTrainer",
           "batch_norm_flags", "build_keras_model", "dense_batches", "dense_shapes",
           "initial_weights", "n_params", "optimizer_settings"]


@dataclass(frozen=True)
class Head:
    """The output layer and loss of every candidate of a fit.

    Parameters
    ----------
    kind : {'binary', 'softmax', 'linear'}
        One sigmoid unit with binary cross-entropy, a softmax with sparse
        categorical cross-entropy, or linear units with squared error.
    n_outputs : int
        Units of the output layer.
    """

    kind: str
    n_outputs: int

    @classmethod
    def of(cls, spec):
        """A head from itself or from a number of classes (the classifier's)."""
        if isinstance(spec, Head):
            return spec
        n_classes = int(spec)
        return cls("binary", 1) if n_classes == 2 else cls("softmax", n_classes)

    @property
    def name(self):
        """Readable form of the output layer, e.g. ``'softmax(3)'``."""
        activation = {"binary": "sigmoid", "softmax": "softmax", "linear": "linear"}[self.kind]
        return f"{activation}({self.n_outputs})"

    @property
    def is_regression(self):
        return self.kind == "linear"


@dataclass
class CandidateData:
    """Training and validation rows shared by every candidate of a fit.

    For classification ``y`` holds class indices ``0 .. n_classes - 1``; for
    regression (``task='regression'``, ``n_classes`` 0) it is a float array
    of shape ``(n, n_targets)``, standardised. ``w`` holds sample weights.
    ``X_val`` may be empty (no validation, as in the refit). ``X`` and
    ``X_val`` are float32 arrays, or SciPy CSR matrices in canonical form
    (sorted column indices, no duplicates) whose stored values are float32.
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    w_val: np.ndarray
    n_classes: int
    task: str = "classification"

    @property
    def n_features(self):
        return self.X.shape[1]

    @property
    def head(self):
        """The :class:`Head` of the candidates."""
        if self.task == "regression":
            return Head("linear", self.y.shape[1])
        return Head.of(self.n_classes)

    @property
    def n_outputs(self):
        return self.head.n_outputs


@dataclass
class CandidateResult:
    """What training one candidate produced.

    Attributes
    ----------
    val_scores : list of float
        Weighted validation accuracy after each epoch (empty without
        validation rows, as in the refit).
    weights : list of (ndarray, ndarray) or None
        Trained ``(kernel, bias)`` of each dense layer, output layer last;
        every value is finite. ``None`` when the candidate failed.
    status : {'ok', 'failed'}
        ``'failed'`` when building or training raised, when the training loss
        became NaN or infinite, or when a trained weight did.
    message : str
        Why the candidate failed (empty when it did not).
    val_outputs : ndarray of shape (n_val, n_outputs) or None
        Outputs of the final weights on the validation rows, when asked for.
    best_epoch : int
        Epochs of training behind ``weights``: with early stopping the best
        epoch (by validation loss) whose weights were restored, else the
        number of epochs trained.
    fit_time : float
        Seconds of training attributed to this candidate, not its own
        measured time when it trained in a population. The
        :class:`PopulationTrainer` trains all the candidates of one
        :meth:`~PopulationTrainer.train` call in one graph and gives each of
        them the same value: the wall time of the whole call (building the
        variables, tracing and running the graph, reading the weights back,
        and the garbage collection run every few populations) divided by the
        number of candidates in the call, so a small net trained beside big
        ones is charged as much as they are. When the population as a whole
        raised, each candidate is trained again alone and gets the wall time
        of its own retraining (the failed attempt is not counted). The
        :class:`KerasTrainer` measures each candidate's own wall time
        (building, compiling and fitting its model).
    error : BaseException or None
        The exception behind a failure (a ``FloatingPointError`` for a
        non-finite loss or weight), re-raised by ``error_score='raise'``.
    host : str
        Name of the machine that trained the candidate.
    pid : int
        Id of the process that trained the candidate.
    """

    val_scores: list = field(default_factory=list)
    weights: list | None = None
    status: str = "ok"
    message: str = ""
    fit_time: float = 0.0
    best_epoch: int = 0
    val_outputs: np.ndarray | None = None
    error: BaseException | None = None
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)


_NAN_MESSAGE = "training loss became NaN or infinite"
_NONFINITE_WEIGHTS_MESSAGE = "trained weights became NaN or infinite"


@dataclass(frozen=True)
class FoldRows:
    """What one candidate of a population trains and is scored on, when the
    candidates are the folds of a cross-validation (see
    :meth:`PopulationTrainer.train`'s ``row_weights``; a pair ``(w, w_val)``
    means ``FoldRows(w, w_val)``).

    Attributes
    ----------
    w, w_val : ndarray of shape (n_rows,)
        Row weights in training and in the validation score: zero outside
        the fold's training rows, and outside its held-out rows.
    w_stop : ndarray of shape (n_rows,) or None
        Row weights of the validation loss that early stopping watches
        (``w_val`` when None).
    target : tuple of ndarray or None
        ``(shift, scale)`` of a regression target: the candidate trains on,
        is scored on and outputs ``(y - shift) / scale`` (the fold's own
        standardisation), not ``y``.
    """

    w: np.ndarray
    w_val: np.ndarray
    w_stop: np.ndarray | None = None
    target: tuple | None = None

    @classmethod
    def of(cls, rows):
        return rows if isinstance(rows, cls) else cls(*rows)


def _fold_inputs(row_weights):
    """Which optional inputs ``row_weights`` gives the population graph:
    ``(early-stopping rows, regression targets)``, as booleans (a traced
    graph takes one set of inputs)."""
    if row_weights is None:
        return False, False
    rows = [FoldRows.of(r) for r in row_weights]
    return (any(r.w_stop is not None for r in rows), any(r.target is not None for r in rows))


def _all_finite(weights):
    """Whether every kernel and bias in ``weights`` (pairs of arrays) is finite."""
    return all(np.all(np.isfinite(a)) for pair in weights for a in pair)


def _failed(message, **fields):
    """A failed :class:`CandidateResult` whose error is a ``FloatingPointError``."""
    return CandidateResult(status="failed", message=message,
                           error=FloatingPointError(message), **fields)


#: Populations traced, and their parameters, since the last full garbage
#: collection (see _collect_graphs).
_GRAPHS_SINCE_GC = 0
_PARAMS_SINCE_GC = 0
_GC_EVERY = 5
_GC_EVERY_PARAMS = 2**23  # 8 million parameters: about 230 MB of graph memory


def _collect_graphs(n_params=0):
    """Free the graphs of past populations every ``_GC_EVERY`` populations,
    or sooner once they held ``_GC_EVERY_PARAMS`` parameters.

    A traced graph and its function sit in reference cycles (a TensorFlow
    graph points to its ops and they point back), so only a full collection
    frees them, and Python's collection thresholds do not see the memory
    they hold in TensorFlow's runtime: left alone, a long search keeps
    growing (``bench_speed.py`` measures the memory of a 300-candidate
    search). A full collection is not free, so it runs every few
    populations rather than after each, unless the populations were big (wide
    inputs): each one's variables (parameters and Adam's moments) stay alive
    until its graph is collected.
    """
    global _GRAPHS_SINCE_GC, _PARAMS_SINCE_GC
    _GRAPHS_SINCE_GC += 1
    _PARAMS_SINCE_GC += n_params
    if _GRAPHS_SINCE_GC >= _GC_EVERY or _PARAMS_SINCE_GC >= _GC_EVERY_PARAMS:
        _GRAPHS_SINCE_GC = _PARAMS_SINCE_GC = 0
        gc.collect()


class _GraphCache:
    """Recently trained populations with their traced graphs, for another
    population of the same nets (the same candidates, seeds and settings, on
    inputs of the same shapes): it is reset to its new initial weights and
    runs without tracing again, with the same results as a new one.

    A search seldom repeats a population, but fitting again does: a second
    ``fit`` with the same ``random_state``, the candidates of a
    ``GridSearchCV`` over the controller's parameters (the first controller
    epoch draws the same architectures), the single-network refits. Only
    small populations are kept (at most :attr:`max_params` parameters each,
    :attr:`size` of them, least recently used dropped). An entry is taken
    out while it trains, so two threads never share one.
    """

    size = 8
    max_params = 2**19

    def __init__(self):
        self._entries = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key):
        """``(population, function)`` cached under ``key`` (and removed), or ``(None, None)``."""
        with self._lock:
            return self._entries.pop(key, (None, None))

    def keep(self, key, pop, fn, n_params):
        """Cache ``pop`` and ``fn`` under ``key`` if ``n_params`` is small enough."""
        if n_params > self.max_params:
            return
        with self._lock:
            self._entries[key] = (pop, fn)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self):
        with self._lock:
            self._entries.clear()


_GRAPHS = _GraphCache()


def dense_shapes(layers, n_features, n_outputs):
    """Kernel shapes of the dense layers of a candidate, output layer last."""
    shapes, width = [], n_features
    for layer in layers:
        if layer["type"] == "dense":
            shapes.append((width, layer["units"]))
            width = layer["units"]
    shapes.append((width, n_outputs))
    return shapes


def batch_norm_flags(layers):
    """Whether each dense layer (output layer last: never) has batch normalisation."""
    return [bool(layer.get("batch_norm")) for layer in layers
            if layer["type"] == "dense"] + [False]


def n_params(layers, n_features, n_outputs):
    """Number of trainable parameters of a candidate (batch normalisation's
    scale and offset included, its moving statistics not)."""
    shapes = dense_shapes(layers, n_features, n_outputs)
    return int(sum(i * o + o + (2 * o if bn else 0)
                   for (i, o), bn in zip(shapes, batch_norm_flags(layers))))


def initial_weights(layers, n_features, n_outputs, rng, store=None):
    """Initial weights per dense layer, output last: shared weights, or
    Glorot-uniform kernels and zero biases. A layer with batch normalisation
    has six arrays, ``(kernel, bias, gamma, beta, moving_mean,
    moving_variance)``, fresh ones being ``(.., .., 1, 0, 0, 1)`` as in Keras."""
    from ._weights import layer_keys
    out = []
    shapes = dense_shapes(layers, n_features, n_outputs)
    for key, shape, bn in zip(layer_keys(layers), shapes, batch_norm_flags(layers)):
        entry = store.get(key, shape) if store is not None else None
        if entry is None or len(entry) != (6 if bn else 2):
            limit = math.sqrt(6.0 / (shape[0] + shape[1]))
            units = shape[1]
            entry = (rng.uniform(-limit, limit, shape).astype(np.float32),
                     np.zeros(units, np.float32))
            if bn:
                entry += (np.ones(units, np.float32), np.zeros(units, np.float32),
                          np.zeros(units, np.float32), np.ones(units, np.float32))
        out.append(tuple(a.copy() for a in entry))
    return out


#: Bytes of graph memory per trainable parameter of a population: the
#: parameter vector, Adam's two moments, the flat gradient and its pieces, the
#: weights read for the step, and early stopping's copy of the best weights.
BYTES_PER_PARAM = 28


def available_memory():
    """Bytes of memory this process may still take (the smaller of the
    system's available memory and the room left under a cgroup limit), or
    None where neither can be read."""
    limits = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        with open("/sys/fs/cgroup/memory.current") as fh:
            if limit != "max":
                limits.append(int(limit) - int(fh.read().strip()))
    except (OSError, ValueError):
        pass
    return min(limits) if limits else None


def _too_big(n_parameters):
    """Why a candidate of ``n_parameters`` cannot train in the memory available
    now, or None when it can (or memory cannot be read)."""
    need, have = n_parameters * BYTES_PER_PARAM, available_memory()
    if have is None or need <= have:
        return None
    return (f"MemoryError: the candidate's {n_parameters} parameters need about "
            f"{need / 2**30:.1f} GB in training and about {have / 2**30:.1f} GB is available")


def dense_batches(X, rows=8192):
    """Consecutive blocks of ``rows`` rows of ``X`` as dense float32 arrays.

    A sparse ``X`` is densified one block at a time, and its blocks are
    made shorter for wide data (at most about 16 MB each), so no more than
    one block is ever dense.
    """
    n = X.shape[0]
    if sp.issparse(X):
        X = X.tocsr()
        rows = max(1, min(rows, 2**22 // max(X.shape[1], 1)))
        for i in range(0, n, rows):
            yield X[i:i + rows].toarray().astype(np.float32, copy=False)
    else:
        for i in range(0, n, rows):
            yield X[i:i + rows]


def _graph_rows(X):
    """``X`` as a graph input: a float32 tensor, or a ``tf.SparseTensor`` of a
    sparse matrix's stored values in row-major order."""
    if not sp.issparse(X):
        return tf.constant(X, tf.float32)
    X = X.tocsr()
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    coo = X.tocoo()
    indices = np.stack([coo.row, coo.col], axis=1).astype(np.int64)
    return tf.SparseTensor(indices, coo.data.astype(np.float32), coo.shape)


def _matmul(x, kernel):
    """``x @ kernel`` for dense rows or a ``tf.SparseTensor`` of rows."""
    if isinstance(x, tf.SparseTensor):
        return tf.sparse.sparse_dense_matmul(x, kernel)
    return tf.matmul(x, kernel)


class _RowSource:
    """Mini-batches of training rows inside the graph.

    Dense rows are gathered once per epoch in shuffled order and sliced.
    Sparse rows are held as two ragged tensors (column indices and values,
    a row each) and each mini-batch gathers only its own rows' stored values
    into a ``tf.SparseTensor``, densified if ``densify``: the whole matrix is
    never dense.
    """

    def __init__(self, X, densify=False):
        self.X = X
        self.densify = densify
        if isinstance(X, tf.SparseTensor):
            n, rowids = X.dense_shape[0], X.indices[:, 0]
            self.cols = tf.RaggedTensor.from_value_rowids(X.indices[:, 1], rowids, nrows=n)
            self.vals = tf.RaggedTensor.from_value_rowids(X.values, rowids, nrows=n)

    def permuted(self, perm):
        """A function ``(lo, hi) -> rows perm[lo:hi]``."""
        if not isinstance(self.X, tf.SparseTensor):
            shuffled = tf.gather(self.X, perm)
            return lambda lo, hi: shuffled[lo:hi]
        width = self.X.dense_shape[1]

        def take(lo, hi):
            cols = tf.gather(self.cols, perm[lo:hi])
            vals = tf.gather(self.vals, perm[lo:hi])
            batch = tf.SparseTensor(
                tf.stack([cols.value_rowids(), cols.flat_values], axis=1), vals.flat_values,
                tf.stack([tf.cast(hi - lo, tf.int64), width]))
            return tf.sparse.to_dense(batch) if self.densify else batch

        return take


# Activations whose gradient TensorFlow computes from the layer's output with
# one fused kernel: the population graph differentiates them by hand.
_FUSED_ACTIVATIONS = {
    "relu": (tf.nn.relu, lambda a, da: tf.raw_ops.ReluGrad(gradients=da, features=a)),
    "tanh": (tf.math.tanh, lambda a, da: tf.raw_ops.TanhGrad(y=a, dy=da)),
    "sigmoid": (tf.math.sigmoid, lambda a, da: tf.raw_ops.SigmoidGrad(y=a, dy=da)),
    "elu": (tf.nn.elu, lambda a, da: tf.raw_ops.EluGrad(gradients=da, outputs=a)),
}


def _activation(name):
    """Forward function of a Keras activation name, as Keras computes it."""
    if name in _FUSED_ACTIVATIONS:
        return _FUSED_ACTIVATIONS[name][0]
    import keras
    return keras.activations.get(name)


#: Keras' BatchNormalization defaults, which the population graph follows.
BN_MOMENTUM, BN_EPSILON = 0.99, 1e-3


class _Net:
    """One candidate inside the population graph: its layers and its passes.

    The net owns no variables: its weights are slices of its group's flat
    vector (see :class:`_Population`). Forward and backward passes are
    written out by hand (dense layers, batch normalisation, dropout, output
    layer), so one training step is a short list of fused kernels: no
    gradient tape, no broadcasting bookkeeping, and a graph that traces fast.

    A dense layer is ``Dense(units)`` then, with batch normalisation,
    ``BatchNormalization()`` (Keras' defaults: momentum 0.99, epsilon 1e-3;
    batch statistics in training, moving ones otherwise), then its
    activation. Its pieces in the flat vector are kernel and bias, then
    gamma, beta, moving mean and moving variance with batch normalisation:
    the moving statistics get a zero gradient (Adam leaves them exactly as
    they are); in training they are kept in one vector for the population
    and written back each epoch (see :class:`_Population`).

    In training the passes are generators (:meth:`forward_steps`,
    :meth:`backward_steps`) that hand each batch normalisation to
    :func:`forward_passes` and :func:`backward_passes`, which normalise the
    layers of all the population's nets together (:class:`_BatchNormRound`).
    """

    def __init__(self, layers, n_features, head, seed):
        self.head = Head.of(head)
        self.seed = int(seed) % (2**31 - 1)
        self.shapes = dense_shapes(layers, n_features, self.head.n_outputs)
        self.bn = batch_norm_flags(layers)
        self.counts = [6 if bn else 2 for bn in self.bn]  # flat pieces per dense layer
        self.settings = optimizer_settings(layers)
        self.ops = []  # ('dense', index, activation name) | ('dropout', rate, salt)
        i = 0
        for j, layer in enumerate(layers):
            if layer["type"] == "dense":
                self.ops.append(("dense", i, layer["activation"]))
                i += 1
            elif layer["type"] == "dropout":
                self.ops.append(("dropout", float(layer["rate"]), 7919 * j))

    @property
    def sizes(self):
        """Lengths of the flat pieces: kernel, bias[, gamma, beta, mean, variance], ..."""
        return [n for (i, o), bn in zip(self.shapes, self.bn)
                for n in (i * o, o) + ((o,) * 4 if bn else ())]

    def piece_kinds(self):
        """Kind of each flat piece: 'kernel', 'bias', 'gamma', 'beta', 'mean', 'variance'."""
        return [k for bn in self.bn
                for k in ("kernel", "bias") + (("gamma", "beta", "mean", "variance") if bn else ())]

    def unflatten(self, pieces, reshape=tf.reshape):
        """Per dense layer a tuple of this net's flat pieces, the kernel
        reshaped (tensors; ``reshape=np.reshape`` for NumPy pieces)."""
        out, at = [], 0
        for shape, n in zip(self.shapes, self.counts):
            out.append((reshape(pieces[at], shape),) + tuple(pieces[at + 1:at + n]))
            at += n
        return out

    def forward(self, params, x, step=None):
        """Logits and what :meth:`backward` needs. ``step`` given: training
        mode (dropout, batch statistics); else inference mode."""
        return forward_passes([self], [params], x, step)[0]

    def forward_steps(self, params, x, step=None):
        """Generator of the forward pass: it yields ``(z, gamma, beta)`` for
        each batch normalisation in training mode and is sent back ``(output,
        norm)``; it returns ``(logits, tape)``."""
        tape = []
        for op in self.ops:
            if op[0] == "dense":
                layer = params[op[1]]
                z = tf.nn.bias_add(_matmul(x, layer[0]), layer[1])
                norm = None
                if len(layer) > 2:
                    if step is None:
                        z = _batch_norm_inference(z, layer)
                    else:
                        z, norm = yield z, layer[2], layer[3]
                a = _activation(op[2])(z)
                tape.append((x, z, a, norm))
                x = a
            elif step is not None:
                mask = self._dropout_mask(tf.shape(x), op[1], op[2], step)
                tape.append((mask,))
                x = x * mask
        tape.append((x, None, None, None))
        return tf.nn.bias_add(tf.matmul(x, params[-1][0]), params[-1][1]), tape

    def _dropout_mask(self, shape, rate, salt, step):
        """Keep-mask scaled by ``1 / (1 - rate)``, fixed by the net's seed and the step.

        The same draw as ``tf.nn.experimental.stateless_dropout`` with seed
        ``(net seed, step + salt)``.
        """
        seed = tf.stack([tf.constant(self.seed), step + salt])
        keep = tf.random.stateless_uniform(shape, seed=seed) >= rate
        return tf.cast(keep, tf.float32) * (1.0 / (1.0 - rate))

    def backward(self, params, tape, dlogits):
        """Flat gradient pieces (``sizes`` order) given d loss / d logits of
        a training pass; the moving statistics' pieces are zeros."""
        return backward_passes([self], [params], [tape], [dlogits])[0]

    def backward_steps(self, params, tape, dlogits):
        """Generator of :meth:`backward`: it yields ``(dy, norm)`` for each
        batch normalisation (last layer first) and is sent back ``(dz,
        dgamma, dbeta)``; it returns the flat gradient pieces."""
        starts = np.cumsum([0] + self.counts)
        grads = [None] * int(starts[-1])
        grads[-2:] = _dense_grads(tape[-1][0], dlogits)
        dx = tf.matmul(dlogits, params[-1][0], transpose_b=True)
        records = iter(reversed(tape[:-1]))
        for op in reversed(self.ops):
            rec = next(records)
            if op[0] == "dropout":
                dx = dx * rec[0]
                continue
            x_in, z, a, norm = rec
            k, at = op[1], starts[op[1]]
            dz = _activation_grad(op[2], z, a, dx)
            if norm is not None:
                dz, dgamma, dbeta = yield dz, norm
                zeros = tf.zeros([self.shapes[k][1]])
                grads[at + 2:at + 6] = [dgamma, dbeta, zeros, zeros]
            grads[at:at + 2] = _dense_grads(x_in, dz)
            if k > 0:
                dx = tf.matmul(dz, params[k][0], transpose_b=True)
        return grads

    def score(self, params, x, y, w, total, z=None):
        """Validation score on ``x`` (inference mode): weighted accuracy, or
        for a linear head R^2 averaged over the outputs (``total`` holds each
        output's weighted sum of squares about its mean). ``z``: the logits
        on ``x`` when already computed."""
        z = self.forward(params, x)[0] if z is None else z
        if self.head.is_regression:
            sse = tf.reduce_sum(w[:, None] * tf.square(z - y), axis=0)
            return tf.reduce_mean(1.0 - sse / total)
        if self.head.kind == "binary":
            pred = tf.cast(z[:, 0] > 0, tf.int32)
        else:
            pred = tf.argmax(z, axis=1, output_type=tf.int32)
        return tf.reduce_sum(w * tf.cast(tf.equal(pred, y), tf.float32)) / total


def _batch_norm_inference(z, layer):
    """Keras' ``BatchNormalization`` of ``z`` in inference mode (moving statistics)."""
    _, _, gamma, beta, moving_mean, moving_var = layer
    return tf.nn.batch_normalization(z, moving_mean, moving_var, beta, gamma, BN_EPSILON)


def _batch_norm(z, gamma, beta, mask=None):
    """Keras' ``BatchNormalization`` of ``z`` in training mode: the output
    and ``(normalised z, 1 / std, batch mean, batch variance)`` for the
    backward pass and the moving statistics (the biased batch variance, as
    Keras). Column by column, so ``z`` may hold several layers side by side.

    ``mask`` (0 or 1, shaped as ``z``) keeps rows out of the statistics
    column by column: a cross-validation fold's statistics are those of the
    batch's rows it trains on, as if its batch held only them (a column with
    no such row gets mean 0 and variance 0)."""
    if mask is None:
        mean = tf.reduce_mean(z, axis=0)
        centred = z - mean
        var = tf.reduce_mean(tf.square(centred), axis=0)
    else:
        count = tf.maximum(tf.reduce_sum(mask, axis=0), 1.0)
        mean = tf.reduce_sum(z * mask, axis=0) / count
        centred = z - mean
        var = tf.reduce_sum(tf.square(centred) * mask, axis=0) / count
    inv = tf.math.rsqrt(var + BN_EPSILON)
    z_hat = centred * inv
    return z_hat * gamma + beta, (z_hat, inv, mean, var)


def _batch_norm_grad(norm, gamma, dy, mask=None):
    """d loss / d z, d gamma, d beta of batch normalisation in training mode
    (``mask`` as :func:`_batch_norm` had it: masked rows get no gradient)."""
    z_hat, inv = norm[0], norm[1]
    if mask is None:
        n = tf.cast(tf.shape(dy)[0], tf.float32)
        dgamma = tf.reduce_sum(dy * z_hat, axis=0)
        dbeta = tf.reduce_sum(dy, axis=0)
        dz = (gamma * inv) * (dy - (dbeta + z_hat * dgamma) / n)
        return dz, dgamma, dbeta
    count = tf.maximum(tf.reduce_sum(mask, axis=0), 1.0)
    dy = dy * mask
    dgamma = tf.reduce_sum(dy * z_hat, axis=0)
    dbeta = tf.reduce_sum(dy, axis=0)
    dz = (gamma * inv) * (dy - mask * (dbeta + z_hat * dgamma) / count)
    return dz, dgamma, dbeta


#: Each layer's columns in a :class:`_BatchNormRound` start at a multiple of
#: this many floats (zero columns pad them): reductions over rows and
#: element-wise kernels then take the same vector code path for a layer's
#: columns whatever sits beside them, so a net's numbers do not depend on its
#: population (64 bytes: the widest SIMD packet).
_BN_ALIGN = 16


def _bn_padding(width):
    """Zero columns after a layer of ``width`` in a :class:`_BatchNormRound`."""
    return (-width) % _BN_ALIGN


class _BatchNormRound:
    """Batch normalisation in training mode of several nets' layers at once.

    Batch normalisation is column by column, so the layers of a population's
    nets can be normalised as one wide matrix: one set of about ten kernels
    per round instead of one per layer, which is most of batch
    normalisation's cost for nets this small (each kernel's overhead, not
    its arithmetic). :func:`forward_passes` makes a round of the next batch
    normalisation of every net that has one (round ``r`` holds the ``r``-th
    batch-normalised layer of each net with more than ``r``, in population
    order); :func:`backward_passes` takes the rounds back in reverse order
    with the same members. The joined batch means and variances (``mean``,
    ``var``, padding included) feed the moving statistics
    (:meth:`_Population.update_moving`).

    Parameters
    ----------
    requests : list of (z, gamma, beta)
        Each layer's pre-normalisation values ``(rows, width)`` (the same
        rows for all) and its scale and offset.
    number : int
        The round's place in the forward pass.
    masks : list of Tensor or None, default=None
        Per request, its net's rows ``(rows,)``: 1 for the rows it trains
        on, 0 for the others (a cross-validation fold's held-out rows),
        which then take no part in its statistics (see :func:`_batch_norm`).
        ``present`` then says which joined columns saw a row at all: the
        others keep their moving statistics.
    """

    def __init__(self, requests, number, masks=None):
        self.number = number
        self.widths = [int(z.shape[-1]) for z, _, _ in requests]
        self.pads = [_bn_padding(w) for w in self.widths]
        self.gamma = self._join([g for _, g, _ in requests])
        self.mask = self.present = None
        if masks is not None:
            self.mask = tf.concat([tf.tile(m[:, None], [1, w + pad])
                                   for m, w, pad in zip(masks, self.widths, self.pads)], axis=1)
            self.present = tf.reduce_sum(self.mask, axis=0) > 0
        out, (self.z_hat, self.inv, self.mean, self.var) = _batch_norm(
            self._join([z for z, _, _ in requests], rows=True), self.gamma,
            self._join([b for _, _, b in requests]), self.mask)
        self.outputs = self._parts(out)

    def _join(self, pieces, rows=False):
        """The pieces side by side, each followed by its zero padding."""
        if len(pieces) == 1 and not self.pads[0]:
            return pieces[0]
        n = tf.shape(pieces[0])[0] if rows and any(self.pads) else None
        zeros, parts = {}, []
        for x, pad in zip(pieces, self.pads):
            parts.append(x)
            if pad:
                if pad not in zeros:
                    zeros[pad] = tf.zeros(tf.stack([n, pad]) if rows else [pad])
                parts.append(zeros[pad])
        return tf.concat(parts, axis=-1)

    def _parts(self, joined):
        """Each layer's columns of a joined tensor (the padding dropped)."""
        if len(self.widths) == 1 and not self.pads[0]:
            return [joined]
        sizes = [n for w, pad in zip(self.widths, self.pads) for n in ((w, pad) if pad else (w,))]
        parts = iter(tf.split(joined, sizes, axis=-1))
        out = []
        for pad in self.pads:
            out.append(next(parts))
            if pad:
                next(parts)
        return out

    def backward(self, dys):
        """``(dz, dgamma, dbeta)`` of each member given its ``dy``."""
        dz, dgamma, dbeta = _batch_norm_grad((self.z_hat, self.inv), self.gamma,
                                             self._join(dys, rows=True), self.mask)
        return list(zip(self._parts(dz), self._parts(dgamma), self._parts(dbeta)))


def _drive(generators, serve):
    """Run the passes' generators to their ends. ``serve`` takes the pending
    requests ``{k: request}`` and answers some of them ``{k: answer}``;
    each answered generator runs on to its next request. Returns the
    generators' return values."""
    results, pending = [None] * len(generators), {}

    def advance(k, answer=None):
        try:
            pending[k] = generators[k].send(answer)
        except StopIteration as stop:
            results[k] = stop.value

    for k in range(len(generators)):
        advance(k)
    while pending:
        for k, answer in serve(pending).items():
            del pending[k]
            advance(k, answer)
    return results


def forward_passes(nets, params, x, step=None, rounds=None, masks=None):
    """Each net's ``(logits, tape)`` on ``x``, batch normalisation shared:
    each round normalises the next batch-normalised layer of every net that
    has one (see :class:`_BatchNormRound`; the rounds are appended to
    ``rounds`` if given). ``step`` None: inference mode. ``masks``: per
    net, the rows of ``x`` its batch statistics take (see
    :class:`_BatchNormRound`), or None for all."""
    rounds = [] if rounds is None else rounds

    def serve(pending):
        keys = sorted(pending)
        bn = _BatchNormRound([pending[k] for k in keys], len(rounds),
                             None if masks is None else [masks[k] for k in keys])
        rounds.append(bn)
        return {k: (out, (bn, i)) for i, (k, out) in enumerate(zip(keys, bn.outputs))}

    return _drive([net.forward_steps(p, x, step) for net, p in zip(nets, params)], serve)


def backward_passes(nets, params, tapes, dlogits):
    """Each net's flat gradient pieces (see :meth:`_Net.backward`); the
    batch normalisations are taken back round by round, last round first,
    each with the members it had in :func:`forward_passes`."""

    def serve(pending):
        bn = max((norm[0] for _, norm in pending.values()), key=lambda r: r.number)
        keys = sorted(k for k, (_, norm) in pending.items() if norm[0] is bn)
        assert [pending[k][1][1] for k in keys] == list(range(len(bn.widths)))
        return dict(zip(keys, bn.backward([pending[k][0] for k in keys])))

    return _drive([net.backward_steps(p, tape, d)
                   for net, p, tape, d in zip(nets, params, tapes, dlogits)], serve)


def _dense_grads(x, dz):
    """Flat kernel and bias gradients of a dense layer (``x`` dense or sparse)."""
    if isinstance(x, tf.SparseTensor):
        kernel_grad = tf.sparse.sparse_dense_matmul(x, dz, adjoint_a=True)
    else:
        kernel_grad = tf.matmul(x, dz, transpose_a=True)
    return [tf.reshape(kernel_grad, [-1]),
            tf.raw_ops.BiasAddGrad(out_backprop=dz)]


def _activation_grad(name, z, a, da):
    if name in _FUSED_ACTIVATIONS:
        return _FUSED_ACTIVATIONS[name][1](a, da)
    with tf.GradientTape() as tape:  # any other Keras activation: autodiff
        tape.watch(z)
        out = _activation(name)(z)
    return tape.gradient(out, z, output_gradients=da)


class _Group:
    """Nets that share one Adam learning rate: one flat float32 vector of
    their weights (net by net, in ``sizes`` order) with Adam's first and
    second moments beside it. Adam is element-wise, so one ``ApplyAdam`` on
    the vector is each net's own Adam, and a NaN in one net's slice stays
    there; one variable instead of eighteen per net keeps the graph and its
    captures small. Each net's weight decay is its own (``weight_decays``,
    one per net): the decay is a vector too."""

    def __init__(self, index, nets, weights, learning_rate, weight_decays):
        self.index, self.nets = index, nets
        self.learning_rate = learning_rate
        # each net's slice is padded to a multiple of _ALIGN floats, so it sits at the
        # same place relative to SIMD packets in any population: ApplyAdam then takes
        # the same (vector or scalar) code path for its elements, and a net trains
        # bit-identically alone, in any population and in any parallel chunk
        self.pads = [(-sum(net.sizes)) % _ALIGN for net in nets]
        self.sizes = [s for net, pad in zip(nets, self.pads) for s in net.sizes + [pad]]
        flat = self._flat(weights)
        self.params = tf.Variable(flat)
        self.m = tf.Variable(tf.zeros_like(flat))
        self.v = tf.Variable(tf.zeros_like(flat))
        kinds = [k for net in nets for k in net.piece_kinds() + ["pad"]]
        # the kernels' decay per element (Keras: variable -= variable * wd * lr)
        self.decay = None
        if any(weight_decays):
            rates = [np.float32(wd) * np.float32(learning_rate) for net, wd in zip(nets, weight_decays)
                     for _ in net.piece_kinds() + ["pad"]]
            self.decay = tf.constant(np.repeat(
                [rate if k == "kernel" else 0 for rate, k in zip(rates, kinds)],
                self.sizes).astype(np.float32))
        # where each batch-normalised layer's moving mean and variance start in
        # the vector: {(population index, dense layer): (mean start, variance start)}
        starts = iter(np.cumsum([0] + self.sizes[:-1]))
        self.stats_at = {}
        for k, net in zip(index, nets):
            for i, count in enumerate(net.counts):
                at = [next(starts) for _ in range(count)]
                if count == 6:
                    self.stats_at[(k, i)] = (int(at[4]), int(at[5]))
            next(starts)  # the padding
        self.best = None

    def _flat(self, weights):
        """The nets' per-layer weight arrays as one padded float32 vector."""
        return np.concatenate([a.ravel() for w, pad in zip(weights, self.pads)
                               for a in [x for layer in w for x in layer] + [np.zeros(pad)]]
                              ).astype(np.float32)

    def reset(self, weights):
        """Start again from ``weights`` with Adam's moments at zero (as new)."""
        flat = self._flat(weights)
        self.params.assign(flat)
        self.m.assign(tf.zeros_like(flat))
        self.v.assign(tf.zeros_like(flat))
        if self.best is not None:
            self.best.assign(flat)

    def make_best(self):
        """Create the copy of the vector that keeps each net's best-epoch weights."""
        self.best = tf.Variable(self.params.read_value())
        lengths = [sum(net.sizes) + pad for net, pad in zip(self.nets, self.pads)]
        self.segments = tf.constant(np.repeat(np.arange(len(self.nets)), lengths), tf.int32)

    def _unflatten(self, pieces, reshape=tf.reshape):
        """Per net, its per-layer tuples from the vector's pieces (``sizes`` order)."""
        out, at = [], 0
        for net in self.nets:
            n = len(net.sizes)
            out.append(net.unflatten(pieces[at:at + n], reshape))
            at += n + 1  # skip the padding
        return out

    def split(self):
        """Per net, its list of per-layer tensor tuples read from the vector."""
        return self._unflatten(tf.split(self.params.read_value(), self.sizes))

    def apply(self, grads, b1p, b2p):
        """One step: decay, then Adam on the nets' gradient pieces."""
        flat = tf.concat([g for pieces, pad in zip(grads, self.pads)
                          for g in pieces + [tf.zeros([pad])]], axis=0)
        if self.decay is not None:
            self.params.assign_sub(self.params.read_value() * self.decay)
        tf.raw_ops.ResourceApplyAdam(
            var=self.params.handle, m=self.m.handle, v=self.v.handle, beta1_power=b1p,
            beta2_power=b2p, lr=self.learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-7,
            grad=flat)

    def weights(self):
        """Per net, its list of per-layer tuples of NumPy arrays."""
        return self._unflatten(np.split(self.params.numpy(), np.cumsum(self.sizes)[:-1]),
                               np.reshape)


class _Population:
    """The trainable state of a population: its nets in groups of equal Adam
    learning rate (see :class:`_Group`), one flat vector each.

    A net's learning rate and weight decay are its own (its ``'optimizer'``
    entry) or the trainer's; nets sharing a learning rate share one vector
    and one ``ApplyAdam`` whatever their decays, so a population of one
    learning rate is one vector.

    The moving statistics of batch normalisation are stored in the groups'
    vectors, but while training they are kept in ``moving``, one vector for
    the population laid out as the batch-normalisation rounds join their
    batch statistics (round by round: the joined means, then the joined
    variances, padding included), so that one update per step
    (:meth:`update_moving`) serves every net: :meth:`load_moving` fills it
    from the groups before the first epoch, :meth:`store_moving` writes it
    back to them after each epoch (before validation and before the best
    weights are kept).
    """

    def __init__(self, nets, weights, learning_rate):
        self.nets = nets
        rates, decays = [], []
        for net in nets:
            lr, wd = net.settings
            rates.append(learning_rate if lr is None else lr)
            decays.append(0.0 if wd is None else wd)
        self.groups = []
        for rate in dict.fromkeys(rates):
            members = [k for k, r in enumerate(rates) if r == rate]
            self.groups.append(_Group(members, [nets[k] for k in members],
                                      [weights[k] for k in members], rate,
                                      [decays[k] for k in members]))
        self._moving_layout()

    def _moving_layout(self):
        """``moving`` and ``moving_pairs``: per group, None or the matching
        positions of its statistics pieces and of ``moving`` (index columns
        for ``gather_nd`` and ``scatter_nd_update``)."""
        bn_layers = [[i for i, bn in enumerate(net.bn) if bn] for net in self.nets]
        where, at = {}, 0  # (net, layer) -> (mean start, variance start) in moving
        for r in range(max(map(len, bn_layers), default=0)):
            members = [(k, layers[r]) for k, layers in enumerate(bn_layers) if len(layers) > r]
            widths = [self.nets[k].shapes[i][1] for k, i in members]
            span = sum(w + _bn_padding(w) for w in widths)
            for (k, i), w in zip(members, widths):
                where[(k, i)] = (at, at + span)
                at += w + _bn_padding(w)
            at += span
        self.moving = tf.Variable(tf.zeros([at])) if at else None
        self.moving_pairs = []
        for g in self.groups:
            pairs = [(np.arange(src, src + self.nets[k].shapes[i][1]),
                      np.arange(dst, dst + self.nets[k].shapes[i][1]))
                     for (k, i), starts in g.stats_at.items()
                     for src, dst in zip(starts, where[(k, i)])]
            self.moving_pairs.append(None if not pairs else tuple(
                tf.constant(np.concatenate(side)[:, None], tf.int64) for side in zip(*pairs)))

    def load_moving(self):
        """``moving`` from the groups' vectors (padding at zero)."""
        if self.moving is None:
            return
        values = tf.zeros_like(self.moving)
        for g, pairs in zip(self.groups, self.moving_pairs):
            if pairs is not None:
                values = tf.tensor_scatter_nd_update(
                    values, pairs[1], tf.gather_nd(g.params.read_value(), pairs[0]))
        self.moving.assign(values)

    def store_moving(self):
        """The groups' statistics pieces from ``moving``."""
        if self.moving is None:
            return
        values = self.moving.read_value()
        for g, pairs in zip(self.groups, self.moving_pairs):
            if pairs is not None:
                g.params.scatter_nd_update(pairs[0], tf.gather_nd(values, pairs[1]))

    def update_moving(self, rounds):
        """Keras' moving-average step of every net's moving statistics, from
        one training step's batch-normalisation rounds."""
        if self.moving is None:
            return
        new = tf.concat([t for r in rounds for t in (r.mean, r.var)], axis=0)
        old = self.moving.read_value()
        moved = old * BN_MOMENTUM + new * (1.0 - BN_MOMENTUM)
        if rounds and rounds[0].present is not None:  # masked: a column without rows stays
            present = tf.concat([t for r in rounds for t in (r.present, r.present)], axis=0)
            moved = tf.where(present, moved, old)
        self.moving.assign(moved)

    def make_best(self):
        for g in self.groups:
            g.make_best()

    def reset(self, weights):
        """Start every net again from its ``weights`` (population order)."""
        for g in self.groups:
            g.reset([weights[k] for k in g.index])

    def _per_net(self, per_group):
        """Population order from a list per group (``per_group``: one per group)."""
        out = [None] * len(self.nets)
        for g, values in zip(self.groups, per_group):
            for k, value in zip(g.index, values):
                out[k] = value
        return out

    def split(self):
        """Per net (in population order), its per-layer tensor tuples."""
        return self._per_net([g.split() for g in self.groups])

    def apply(self, grads, rounds, b1p, b2p):
        """One optimiser step of every net (``grads`` in population order) and
        of the moving statistics (the step's batch-normalisation ``rounds``)."""
        for g in self.groups:
            g.apply([grads[k] for k in g.index], b1p, b2p)
        self.update_moving(rounds)

    def keep_best(self, improved):
        """Copy the weights of the nets whose ``improved`` is True to their best copy."""
        for g in self.groups:
            mask = tf.gather(tf.gather(improved, g.index), g.segments)
            g.best.assign(tf.where(mask, g.params.read_value(), g.best.read_value()))

    def restore_best(self):
        for g in self.groups:
            g.params.assign(g.best.read_value())

    def weights(self):
        """Per net (in population order), its per-layer tuples of NumPy arrays."""
        return self._per_net([g.weights() for g in self.groups])


_ALIGN = 64  # floats: 256 bytes, a multiple of every SIMD packet and unrolled block


def _output(head, logits):
    """What the served model outputs for ``logits``: probabilities, or the
    linear head's values."""
    if head.kind == "binary":
        return tf.math.sigmoid(logits)
    if head.kind == "softmax":
        return tf.nn.softmax(logits)
    return logits


def _loss_and_grads(logits, y, scale, head, target=None):
    """Per-net weighted losses and d loss / d logits for a list of nets' logits.

    One fused cross-entropy kernel per net, on that net's own ``(rows,
    classes)`` buffer: element-wise kernels (``exp`` in the softmax) take a
    vector or a scalar path depending on where an element falls in its
    buffer, so sharing one buffer between nets would make a net's numbers
    depend on the population it trains in. ``scale`` is ``w / batch rows``.
    A linear head has Keras' squared error: the mean over outputs of
    ``(z - y) ** 2`` per row; with ``target``, per net ``(shift, scale)``,
    net ``k``'s target is ``(y - shift[k]) / scale[k]``.
    """
    head = Head.of(head)
    losses, grads = [], []
    per_net = scale.shape.rank == 2  # each net its own row weights: (n_nets, rows)
    for k, z in enumerate(logits):
        scale_k = scale[k] if per_net else scale
        if head.is_regression:
            diff = z - (y if target is None else (y - target[0][k]) / target[1][k])
            per_row = tf.reduce_mean(tf.square(diff), axis=1)
            dz = diff * (2.0 / head.n_outputs) * scale_k[:, None]
        elif head.kind == "binary":
            t = tf.cast(y, tf.float32)[:, None]
            per_row = tf.nn.sigmoid_cross_entropy_with_logits(t, z)[:, 0]
            dz = (tf.math.sigmoid(z) - t) * scale_k[:, None]
        else:
            per_row, backprop = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(
                features=z, labels=y)
            dz = backprop * scale_k[:, None]
        losses.append(tf.reduce_sum(per_row * scale_k))
        grads.append(dz)
    return tf.stack(losses), grads


class PopulationTrainer:
    """Train a population of candidates together in one compiled graph.

    Every candidate gets its own weights and its own Adam state; the
    population sees the same shuffled mini-batches (``batch_size`` rows, the
    last one partial, as in ``model.fit``) and one step per batch updates all
    of them, with the loop over epochs and batches compiled into the graph.
    Forward and backward passes are written out by hand with fused kernels
    (``MatMul``, ``BiasAdd``, ``ReluGrad``..., one cross-entropy kernel per
    net, on that net's own logits, batch normalisation of all nets' layers
    in a few joined kernels, and one ``ApplyAdam`` per learning rate on a
    flat parameter vector), so a step costs few kernel launches and the
    graph traces quickly. A candidate whose loss becomes NaN or infinite during
    training, or whose trained weights are not all finite (for example after an
    overflow in the last Adam step, which no loss sees), is reported as failed
    without disturbing the others.

    Parameters
    ----------
    epochs : int, default=10
        Passes over the training rows.
    batch_size : int, default=32
        Rows per gradient step.
    learning_rate : float, default=0.01
        Adam learning rate (Keras' Adam: beta_1=0.9, beta_2=0.999, epsilon=1e-7)
        of the candidates without their own: a candidate whose layers lead
        with an ``'optimizer'`` entry trains with its ``learning_rate`` and
        decoupled ``weight_decay`` (on its kernels), as
        ``keras.optimizers.Adam(learning_rate, weight_decay=...)`` would.
    early_stopping : bool, default=False
        Watch each candidate's validation loss after every epoch, keep the
        weights of its best epoch, and stop the candidate once the loss has
        not improved (by more than ``1e-4``) for ``n_iter_no_change``
        epochs; the candidate ends with its best epoch's weights. The
        population stops when all its candidates have.
    n_iter_no_change : int, default=3
        Patience of ``early_stopping``, in epochs.
    sparse_product : bool, default=True
        With sparse rows, multiply each mini-batch in the first layer with
        TensorFlow's sparse-dense product; ``False`` densifies each
        mini-batch first (``benchmarks/bench_sparse.py`` compares the two).
    max_population_bytes : int, default=2**28
        Graph memory one population may take (about :data:`BYTES_PER_PARAM`
        bytes per trainable parameter). Candidates that would exceed it
        together train in successive populations, with the same results: a
        candidate trains identically in any population. Only wide inputs
        reach it (a 512-unit first layer on 20,000 columns holds 10 million
        parameters).

    Attributes
    ----------
    last_timings_ : dict
        Seconds spent by the last call of :meth:`train` building variables
        (``setup``), tracing the graph (``trace``) and running it (``run``).
    """

    def __init__(self, epochs=10, batch_size=32, learning_rate=0.01, early_stopping=False,
                 n_iter_no_change=3, sparse_product=True, max_population_bytes=2**28):
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.sparse_product = sparse_product
        self.max_population_bytes = max_population_bytes

    def populations(self, candidates, data):
        """Indices of ``candidates`` grouped into populations that each fit in
        ``max_population_bytes`` (a candidate too big alone is its own)."""
        limit = self.max_population_bytes / BYTES_PER_PARAM
        if not candidates:
            return []
        groups, size = [[]], 0
        for k, (layers, _, _) in enumerate(candidates):
            p = n_params(layers, data.n_features, data.n_outputs)
            if groups[-1] and size + p > limit:
                groups.append([])
                size = 0
            groups[-1].append(k)
            size += p
        return groups

    def train(self, candidates, data, seed, row_weights=None, val_outputs=False):
        """Train ``candidates``, a list of ``(layers, initial_weights, seed)``.

        ``seed`` (an int per candidate, and one for the population) fixes the
        candidate's dropout masks and the population's shuffling, so a
        candidate trains the same whether alone or in any population.

        ``row_weights``, if given, holds per candidate a pair ``(w, w_val)``
        that replaces ``data.w`` and ``data.w_val`` for it: the folds of a
        cross-validation train side by side on the same rows, each with
        zero weight on the rows it does not train (or score) on; their batch
        normalisation takes its batch statistics from the rows each trains
        on. A third entry ``w_stop``, if given, replaces ``w_val`` in the
        validation loss that early stopping watches: a fold then chooses its
        best epoch on rows it neither trains nor is scored on. With
        ``val_outputs``, each result carries the outputs of its final weights
        on ``data.X_val`` (probabilities, or a regressor's standardised
        predictions).

        Returns
        -------
        results : list of CandidateResult
        """
        too_big = [_too_big(n_params(layers, data.n_features, data.n_outputs))
                   for layers, _, _ in candidates]
        # a candidate that cannot fit fails before it allocates; the others train in
        # populations of at most max_population_bytes
        results = [CandidateResult(status="failed", message=why, error=MemoryError(why))
                   if why else None for why in too_big]
        fits = [k for k, why in enumerate(too_big) if not why]
        for group in self.populations([candidates[k] for k in fits], data):
            members = [fits[i] for i in group]
            part = self._train_population(
                [candidates[k] for k in members], data, seed,
                None if row_weights is None else [row_weights[k] for k in members], val_outputs)
            for k, r in zip(members, part):
                results[k] = r
        return results

    def _train_population(self, candidates, data, seed, row_weights, val_outputs):
        """Train ``candidates`` in one graph (see :meth:`train`)."""
        start = time.perf_counter()
        try:
            key = self._graph_key(candidates, data, seed, val_outputs) + (
                _fold_inputs(row_weights),)
            pop, fn = _GRAPHS.take(key)
            if pop is None:
                nets = [_Net(layers, data.n_features, data.head, s) for layers, _, s in candidates]
                pop = _Population(nets, [w for _, w, _ in candidates], self.learning_rate)
            else:
                pop.reset([w for _, w, _ in candidates])
            scores, bad, best_epoch, stop_epoch, outputs, fn = self._run(
                pop, data, seed, row_weights, val_outputs, fn)
            weights = pop.weights()
            size = sum(sum(net.sizes) for net in pop.nets)
            _GRAPHS.keep(key, pop, fn, size)
            del pop, fn
            _collect_graphs(size)  # frees the graphs of populations not kept, or dropped
        except (tf.errors.OpError, ValueError, TypeError) as exc:  # whole population broke
            if len(candidates) == 1:
                return [CandidateResult(status="failed", message=_message(exc), error=exc,
                                        fit_time=time.perf_counter() - start)]
            return [r for k, c in enumerate(candidates) for r in self.train(
                [c], data, seed, None if row_weights is None else [row_weights[k]], val_outputs)]
        elapsed = (time.perf_counter() - start) / len(candidates)
        results = []
        for k in range(len(candidates)):
            val_scores = scores[:int(stop_epoch[k]), k].tolist()
            if bad[k]:
                results.append(_failed(_NAN_MESSAGE, val_scores=val_scores, fit_time=elapsed))
            elif not _all_finite(weights[k]):  # e.g. the last Adam step overflowed
                results.append(_failed(_NONFINITE_WEIGHTS_MESSAGE, val_scores=val_scores,
                                       fit_time=elapsed))
            else:
                results.append(CandidateResult(
                    val_scores=val_scores, weights=weights[k], fit_time=elapsed,
                    best_epoch=int(best_epoch[k]), val_outputs=outputs[k] if val_outputs else None))
        return results

    def _graph_key(self, candidates, data, seed, val_outputs):
        """What a population's traced graph depends on besides its inputs'
        shapes: the nets (layers, seeds, input width, head), the population
        seed and the trainer's settings. The initial weights are not in it: a
        cached population is reset to them."""
        nets = tuple((repr(layers), int(s) % (2**31 - 1)) for layers, _, s in candidates)
        return (nets, data.n_features, repr(data.head), int(seed) % (2**31 - 1),
                bool(val_outputs), self.epochs, self.batch_size, float(self.learning_rate),
                bool(self.early_stopping), self.n_iter_no_change, bool(self.sparse_product))

    def _run(self, pop, data, seed, row_weights=None, val_outputs=False, fn=None):
        t0 = time.perf_counter()
        y_type = tf.float32 if data.head.is_regression else tf.int32
        w, w_val = data.w, data.w_val
        extra = ()
        if row_weights is not None:
            rows = [FoldRows.of(r) for r in row_weights]
            w = np.stack([np.asarray(r.w, np.float32) for r in rows])
            w_val = np.stack([np.asarray(r.w_val, np.float32) for r in rows])
            stop, targets = _fold_inputs(rows)
            if stop or targets:
                extra = (np.stack([np.asarray(r.w_val if r.w_stop is None else r.w_stop,
                                              np.float32) for r in rows]),)
            if targets:
                k = data.n_outputs
                extra += tuple(np.stack([np.broadcast_to(np.asarray(
                    default if r.target is None else r.target[j], np.float32), (k,))
                    for r in rows]) for j, default in ((0, 0.0), (1, 1.0)))
        args = (_graph_rows(data.X), tf.constant(data.y, y_type),
                tf.constant(w, tf.float32), _graph_rows(data.X_val),
                tf.constant(data.y_val, y_type), tf.constant(w_val, tf.float32))
        args += tuple(tf.constant(a, tf.float32) for a in extra)
        if fn is None:
            fn = tf.function(self._make_loop(pop, int(seed) % (2**31 - 1), val_outputs,
                                             len(extra)), autograph=False)
        t1 = time.perf_counter()
        with _quiet_retracing():
            graph_fn = fn.get_concrete_function(*args)  # traced once per input signature
        t2 = time.perf_counter()
        scores, bad, best_epoch, stop_epoch, outputs = (t.numpy() for t in graph_fn(*args))
        self.last_timings_ = {"setup": t1 - t0, "trace": t2 - t1, "run": time.perf_counter() - t2}
        return scores, bad, best_epoch, stop_epoch, outputs, fn

    def _make_loop(self, pop, seed, val_outputs=False, n_extra=0):
        """The population's training loop as a function of its inputs: ``(X,
        y, w, Xv, yv, wv)``, then ``n_extra`` of ``(ws, shift, scale)`` (see
        :meth:`_run`); a traced function takes exactly these, no defaults."""
        loop = self._make_loop_body(pop, seed, val_outputs)
        if n_extra == 0:
            return lambda X, y, w, Xv, yv, wv: loop(X, y, w, Xv, yv, wv)
        if n_extra == 1:
            return lambda X, y, w, Xv, yv, wv, ws: loop(X, y, w, Xv, yv, wv, ws)
        return lambda X, y, w, Xv, yv, wv, ws, shift, scale: loop(X, y, w, Xv, yv, wv, ws,
                                                                   shift, scale)

    def _make_loop_body(self, pop, seed, val_outputs=False):
        epochs, bs, n_nets = self.epochs, self.batch_size, len(pop.nets)
        patience = self.n_iter_no_change if self.early_stopping else None
        if patience is not None:
            pop.make_best()  # the best-weights copies are made outside the graph

        def loop(X, y, w, Xv, yv, wv, ws=None, shift=None, scale=None):
            target = None if shift is None else (shift, scale)
            source = _RowSource(X, densify=not self.sparse_product)
            n = tf.shape(y)[0]
            steps = (n + bs - 1) // bs
            inf = tf.fill([n_nets], np.float32(np.inf))
            state = (tf.constant(0), tf.constant(1.0), tf.constant(1.0),
                     tf.zeros([n_nets], tf.bool), tf.TensorArray(tf.float32, size=epochs),
                     inf, tf.fill([n_nets], epochs if patience is None else 0),
                     tf.fill([n_nets], epochs),
                     tf.zeros([n_nets], tf.int32))

            def epoch_body(epoch, b1p, b2p, bad, scores, best_loss, best_epoch, stop_epoch, wait):
                perm = tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([seed, epoch])))
                rows = (source.permuted(perm), tf.gather(y, perm), tf.gather(w, perm, axis=-1))
                step_fn = self._make_step(pop, rows, n, epoch * steps, target)
                _, b1p, b2p, bad = tf.while_loop(lambda s, *_: s < steps, step_fn,
                                                 (tf.constant(0), b1p, b2p, bad))
                pop.store_moving()
                epoch_scores, val_loss = self._val_metrics(pop, Xv, yv, wv, patience is not None,
                                                           ws, target)
                scores = scores.write(epoch, epoch_scores)
                if patience is not None:
                    running = wait < patience
                    improved = running & (val_loss < best_loss - 1e-4)
                    pop.keep_best(improved)
                    best_loss = tf.where(improved, val_loss, best_loss)
                    best_epoch = tf.where(improved, epoch + 1, best_epoch)
                    wait = tf.where(improved, 0, tf.where(running, wait + 1, wait))
                    stop_epoch = tf.where(running & (wait >= patience), epoch + 1, stop_epoch)
                return (epoch + 1, b1p, b2p, bad, scores, best_loss, best_epoch, stop_epoch,
                        wait)

            def more(epoch, *rest):
                if patience is None:
                    return epoch < epochs
                return (epoch < epochs) & tf.reduce_any(rest[-1] < patience)

            pop.load_moving()
            epoch, _, _, bad, scores, _, best_epoch, stop_epoch, _ = tf.while_loop(
                more, epoch_body, state)
            if patience is not None:
                pop.restore_best()
                stop_epoch = tf.minimum(stop_epoch, epoch)
            outputs = tf.zeros([0])
            if val_outputs:
                outputs = tf.stack([_output(net.head, net.forward(p, Xv)[0])
                                    for net, p in zip(pop.nets, pop.split())])
            return scores.stack()[:epoch], bad, best_epoch, stop_epoch, outputs

        return loop

    def _make_step(self, pop, rows, n, first_step, target=None):
        """Body of the mini-batch loop: one Adam step of every net
        (``target``: per net ``(shift, scale)`` of a regression target)."""
        bs = self.batch_size
        nets = pop.nets

        def step(s, b1p, b2p, bad):
            lo = s * bs
            hi = tf.minimum(lo + bs, n)
            xb, yb, wb = rows[0](lo, hi), rows[1][lo:hi], rows[2][..., lo:hi]
            scale = wb / tf.cast(hi - lo, tf.float32)
            params = pop.split()
            rounds = []
            # each net its own rows (cross-validation folds): its batch statistics
            # leave out the rows it does not train on
            masks = (None if wb.shape.rank == 1 or not any(any(net.bn) for net in nets)
                     else tf.unstack(tf.cast(wb > 0, tf.float32), num=len(nets)))
            passes = forward_passes(nets, params, xb, first_step + s, rounds, masks)
            losses, dlogits = _loss_and_grads([f[0] for f in passes], yb, scale, nets[0].head,
                                              target)
            grads = backward_passes(nets, params, [tape for _, tape in passes], dlogits)
            b1p, b2p = b1p * 0.9, b2p * 0.999
            pop.apply(grads, rounds, b1p, b2p)
            bad = tf.logical_or(bad, tf.logical_not(tf.math.is_finite(losses)))
            return s + 1, b1p, b2p, bad

        return step

    @staticmethod
    def _val_metrics(pop, Xv, yv, wv, with_loss, ws=None, target=None):
        """Each net's validation score (weighted accuracy or mean R^2) and, if
        ``with_loss``, its weighted mean validation loss (with the weights
        ``ws`` instead of ``wv`` when given: the rows early stopping
        watches). ``wv`` and ``ws`` are shared ``(n_val,)`` or per net
        ``(n_nets, n_val)``. An R^2 whose rows' target does not vary is NaN."""
        head = pop.nets[0].head
        scores, losses = [], []
        y_all = yv
        for k, (net, p) in enumerate(zip(pop.nets, pop.split())):
            w = wv if wv.shape.rank == 1 else wv[k]
            yv = y_all if target is None else (y_all - target[0][k]) / target[1][k]
            if head.is_regression:
                mean = tf.reduce_sum(w[:, None] * yv, axis=0) / tf.maximum(tf.reduce_sum(w), 1e-12)
                total = tf.reduce_sum(w[:, None] * tf.square(yv - mean), axis=0)
                # no R^2 from a target that does not vary (one row, or equal values)
                total = tf.where(total > 1e-12, total, np.float32(np.nan))
            else:
                total = tf.maximum(tf.reduce_sum(w), 1e-12)
            z = net.forward(p, Xv)[0]
            scores.append(net.score(p, Xv, yv, w, total, z))
            if with_loss:
                w_loss = w if ws is None else (ws if ws.shape.rank == 1 else ws[k])
                loss = _loss_and_grads([z], yv, w_loss, head)[0][0]
                losses.append(loss / tf.maximum(tf.reduce_sum(w_loss), 1e-12))
        return tf.stack(scores), (tf.stack(losses) if with_loss else None)


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


def build_keras_model(layers, n_features, head, weights=None, seed=None):
    """A ``keras.Sequential`` MLP for ``layers`` plus the output layer.

    A dense layer with batch normalisation is ``Dense(units)``,
    ``BatchNormalization()``, ``Activation(activation)``; an ``'optimizer'``
    entry builds nothing (the optimiser is :func:`keras_optimizer`'s).

    Parameters
    ----------
    layers : list of dict
        Hidden layers in machine form.
    n_features : int
    head : Head or int
        The output layer, or the number of classes of a classifier.
    weights : list of tuple of ndarray, optional
        Weights of the dense layers, output last: ``(kernel, bias)``, or
        ``(kernel, bias, gamma, beta, moving_mean, moving_variance)`` for a
        layer with batch normalisation.
    seed : int, optional
        Seed of the dropout layers.
    """
    import keras
    model = keras.Sequential([keras.Input((n_features,))])
    pairs = []  # (Dense, BatchNormalization or None) per dense layer
    for j, layer in enumerate(layers):
        if layer["type"] == "dense":
            if layer.get("batch_norm"):
                dense = keras.layers.Dense(layer["units"])
                norm = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
                model.add(dense)
                model.add(norm)
                model.add(keras.layers.Activation(layer["activation"]))
                pairs.append((dense, norm))
            else:
                pairs.append((keras.layers.Dense(layer["units"], activation=layer["activation"]),
                               None))
                model.add(pairs[-1][0])
        elif layer["type"] == "dropout":
            model.add(keras.layers.Dropout(layer["rate"], seed=None if seed is None else seed + j))
    head = Head.of(head)
    activation = {"binary": "sigmoid", "softmax": "softmax", "linear": None}[head.kind]
    pairs.append((keras.layers.Dense(head.n_outputs, activation=activation), None))
    model.add(pairs[-1][0])
    if weights is not None:
        for (dense, norm), arrays in zip(pairs, weights):
            dense.set_weights(list(arrays[:2]))
            if norm is not None:
                norm.set_weights(list(arrays[2:6]))
    return model


def keras_weights(model):
    """Per dense layer of a model made by :func:`build_keras_model`, its
    weights as that function takes them."""
    import keras
    out = []
    for lyr in model.layers:
        if isinstance(lyr, keras.layers.Dense):
            out.append(tuple(lyr.get_weights()))
        elif isinstance(lyr, keras.layers.BatchNormalization):
            out[-1] = out[-1] + tuple(lyr.get_weights())
    return out


def keras_optimizer(layers, learning_rate):
    """The Keras Adam a candidate trains with: its own learning rate and
    weight decay (on the kernels only) if its ``'optimizer'`` entry has
    them, else ``learning_rate`` and no decay."""
    import keras
    lr, wd = optimizer_settings(layers)
    optimizer = keras.optimizers.Adam(learning_rate if lr is None else lr,
                                      weight_decay=wd if wd else None)
    if wd:
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


class KerasTrainer:
    """Train each candidate with a plain ``model.fit`` (the tutorial's way).

    Parameters are those of :class:`PopulationTrainer`.
    """

    def __init__(self, epochs=10, batch_size=32, learning_rate=0.01, early_stopping=False,
                 n_iter_no_change=3):
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change

    def train(self, candidates, data, seed, row_weights=None, val_outputs=False):
        """Train each of ``candidates`` in turn; see :meth:`PopulationTrainer.train`."""
        return [self._train_one(layers, w, data, s,
                                (data.w, data.w_val) if row_weights is None else row_weights[k],
                                val_outputs)
                for k, (layers, w, s) in enumerate(candidates)]

    def _train_one(self, layers, weights, data, seed, row_weights, val_outputs=False):
        import keras
        start = time.perf_counter()
        try:
            head = data.head
            model = build_keras_model(layers, data.n_features, head, weights, seed)
            loss = {"binary": "binary_crossentropy", "softmax": "sparse_categorical_crossentropy",
                    "linear": "mean_squared_error"}[head.kind]
            metric = (keras.metrics.R2Score(name="score") if head.is_regression
                      else keras.metrics.SparseCategoricalAccuracy(name="score")
                      if head.kind == "softmax" else keras.metrics.BinaryAccuracy(name="score"))
            model.compile(optimizer=keras_optimizer(layers, self.learning_rate), loss=loss,
                          weighted_metrics=[metric])
            has_val = len(data.y_val) > 0
            rows = FoldRows.of(row_weights)
            w, w_val, w_stop = rows.w, rows.w_val, rows.w_stop
            y_fit, y_val = data.y, data.y_val
            if rows.target is not None:
                y_fit = ((y_fit - rows.target[0]) / rows.target[1]).astype(np.float32)
                y_val = ((y_val - rows.target[0]) / rows.target[1]).astype(np.float32)
            callbacks = []
            if self.early_stopping and has_val:
                callbacks.append(keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=self.n_iter_no_change, min_delta=1e-4,
                    restore_best_weights=True))
            scored = None
            if w_stop is not None and has_val:  # watch w_stop's rows, score w_val's
                scored = _EpochScores(data.X_val, y_val, w_val, type(metric)(name="score"))
                callbacks.insert(0, scored)
                w_val = w_stop
            hist = model.fit(data.X, y_fit, sample_weight=w, epochs=self.epochs,
                             batch_size=self.batch_size, verbose=0, callbacks=callbacks or None,
                             validation_data=(data.X_val, y_val, w_val) if has_val else None)
            stopper = callbacks[-1] if self.early_stopping and has_val else None
        except (tf.errors.OpError, ValueError, TypeError) as exc:
            return CandidateResult(status="failed", message=_message(exc), error=exc,
                                   fit_time=time.perf_counter() - start)
        weights = keras_weights(model)
        val_scores = (scored.scores if scored is not None
                      else list(hist.history.get("val_score", [])))
        fit_time = time.perf_counter() - start
        # Keras' loss is taken before each update, so it cannot see an overflow
        # in the last step: the trained weights are checked too
        if not np.all(np.isfinite(hist.history["loss"])):
            return _failed(_NAN_MESSAGE, val_scores=val_scores, fit_time=fit_time)
        if not _all_finite(weights):
            return _failed(_NONFINITE_WEIGHTS_MESSAGE, val_scores=val_scores, fit_time=fit_time)
        best_epoch = len(hist.history["loss"])
        if stopper is not None and getattr(stopper, "best_epoch", None) is not None:
            best_epoch = int(stopper.best_epoch) + 1
        outputs = None
        if val_outputs:
            outputs = np.concatenate(
                [np.asarray(model(b, training=False), np.float32)
                 for b in dense_batches(data.X_val)] or [np.zeros((0, head.n_outputs), np.float32)])
        return CandidateResult(val_scores=val_scores, weights=weights, fit_time=fit_time,
                               best_epoch=best_epoch, val_outputs=outputs)


class _EpochScores:
    """A Keras callback recording the weighted score of every epoch on rows
    other than ``validation_data``'s (see :meth:`KerasTrainer.train`'s
    ``w_stop``)."""

    def __new__(cls, X, y, w, metric):
        import keras

        class EpochScores(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.scores = []

            def on_epoch_end(self, epoch, logs=None):
                metric.reset_state()
                lo = 0
                for block in dense_batches(X):
                    hi = lo + len(block)
                    metric.update_state(y[lo:hi], self.model(block, training=False),
                                        sample_weight=w[lo:hi])
                    lo = hi
                self.scores.append(float(metric.result()))

        return EpochScores()
