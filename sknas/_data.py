"""The candidates' data and results, shared by both trainers: no TensorFlow.

* what a fit hands a trainer: :class:`Head` (output layer and loss),
  :class:`CandidateData` (training and validation rows), :class:`FoldRows`
  (a cross-validation fold's row weights);
* what a trainer hands back: :class:`CandidateResult`, and the helpers that
  make a failed one;
* a candidate's shapes and initial weights (:func:`dense_shapes`,
  :func:`batch_norm_flags`, :func:`piece_counts`, :func:`adapter_size`,
  :func:`embedding_sizes`, :func:`n_params`, :func:`initial_weights`, :func:`scale_outputs`) and
  Keras' batch-normalisation defaults, which both trainers follow;
* the memory check a candidate passes before it trains
  (:data:`BYTES_PER_PARAM`, :func:`available_memory`), and
  :func:`dense_batches`, which densifies sparse rows a block at a time.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ._space import embedding_kind, has_adapters, n_members

__all__ = ["BN_EPSILON", "BN_MOMENTUM", "BYTES_PER_PARAM", "CandidateData", "CandidateResult",
           "FoldRows", "Head", "PBLD_FREQUENCIES", "PBLD_WIDTH", "PLR_FREQUENCIES",
           "PLR_LR_FACTOR", "PLR_SIGMA", "PLR_WIDTH",
           "adapter_size", "available_memory", "batch_norm_flags", "dense_batches",
           "embedding_shapes", "embedding_sizes",
           "dense_shapes", "initial_weights", "input_stats", "n_params", "piece_counts",
           "ple_input_stats", "robust_input_stats", "scale_outputs", "transform_stats"]

#: bins of the ``'ple'`` input transform: each feature becomes this many
PLE_BINS = 16

#: The ``'plr'`` input transform (periodic embeddings, "lite"): each feature's
#: PLR_FREQUENCIES learned frequencies, the width PLR_WIDTH of its embedding,
#: and the standard deviation of the frequencies at the start (RealMLP-TD's
#: 0.1; the features are robust-scaled and clipped to (-3, 3) first).
PLR_FREQUENCIES, PLR_WIDTH, PLR_SIGMA = 16, 8, 0.1
#: The embedding trains at this fraction of its net's learning rate (RealMLP-TD's
#: ``plr_lr_factor``): its arrays are stored divided by it and the net multiplies
#: them back, as for SCALE_LR_FACTOR.
PLR_LR_FACTOR = 0.1
#: The ``'pbld'`` input transform (RealMLP's periodic embedding): each feature's
#: PBLD_FREQUENCIES learned frequencies and phases, and the PBLD_WIDTH learned
#: numbers of its own linear layer, which the feature itself joins (RealMLP-TD's
#: 16 and 4 - 1); its frequencies start as PLR's, and it trains at PLR_LR_FACTOR.
PBLD_FREQUENCIES, PBLD_WIDTH = 16, 3
#: how many inputs a candidate's first layer sees per feature after these input
#: transforms (after the others, 1): PLE's bins, PLR's embedding, PBLD's and the feature
_INPUTS_PER_FEATURE = {"ple": PLE_BINS, "plr": PLR_WIDTH, "pbld": PBLD_WIDTH + 1}


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


def robust_input_stats(X):
    """``(mean, variance)`` of the ``'robust'`` input transform for dense rows
    ``X``: each feature's median, and the square of its robust scale: the
    interquartile range / 1.349 (a normal feature's standard deviation),
    else half its range, else 1. Float32, as the Keras ``Normalization``
    layer of the served model holds them."""
    X = np.asarray(X, np.float64)
    q1, median, q3 = np.percentile(X, [25, 50, 75], axis=0)
    scale = (q3 - q1) / 1.349
    half_range = (X.max(axis=0) - X.min(axis=0)) / 2
    scale = np.where(scale > 0, scale, np.where(half_range > 0, half_range, 1.0))
    return median.astype(np.float32), np.square(scale).astype(np.float32)


def ple_input_stats(X, bins=PLE_BINS):
    """``(lower, variance)`` of the ``'ple'`` input transform for dense rows
    ``X``, each of length ``n_features * bins`` (feature by feature, bin by
    bin): the lower edge of every bin and the square of its width, the bins
    lying between each feature's quantiles ``0, 1/bins, ..., 1``. A bin of
    zero width (a repeated quantile: a feature of few values) gets the width
    1e-6, so that it encodes a step at its edge. Float32, as the
    ``Normalization`` layer of the served model holds them."""
    X = np.asarray(X, np.float64)
    edges = np.quantile(X, np.linspace(0.0, 1.0, bins + 1), axis=0).T  # (features, bins + 1)
    lower, width = edges[:, :-1], np.diff(edges, axis=1)
    width = np.where(width > 0, width, 1e-6)
    return lower.ravel().astype(np.float32), np.square(width).ravel().astype(np.float32)


def transform_stats(input_stats, name):
    """The float32 ``(shift, variance)`` of the input transform ``name`` in a
    fit's ``input_stats``; a ValueError when the fit has none for it."""
    if not input_stats or name not in input_stats:
        raise ValueError(f"the {name!r} input transform needs the data's input_stats")
    return tuple(np.asarray(a, np.float32) for a in input_stats[name])


def input_stats(X, transforms):
    """The statistics of each input transform in ``transforms`` but
    ``'none'`` on dense rows ``X``: ``{name: (shift, variance)}``, or None
    when there is none."""
    # 'plr' and 'pbld' embed the robust, smoothly clipped features: the robust statistics
    stats = {"robust": robust_input_stats, "ple": ple_input_stats, "plr": robust_input_stats,
             "pbld": robust_input_stats}
    out = {name: stats[name](X) for name in transforms if name != "none"}
    return out or None


@dataclass
class CandidateData:
    """Training and validation rows shared by every candidate of a fit.

    For classification ``y`` holds class indices ``0 .. n_classes - 1``; for
    regression (``task='regression'``, ``n_classes`` 0) it is a float array
    of shape ``(n, n_targets)``, standardised. ``w`` holds sample weights.
    ``X_val`` may be empty (no validation, as in the refit). ``X`` and
    ``X_val`` are float32 arrays, or SciPy CSR matrices in canonical form
    (sorted column indices, no duplicates) whose stored values are float32.
    ``input_stats``: per input transform, the ``(shift, variance)`` float32
    arrays that it standardises with (see :func:`input_stats`), or None.
    """

    X: np.ndarray
    y: np.ndarray
    w: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    w_val: np.ndarray
    n_classes: int
    task: str = "classification"
    input_stats: dict | None = None

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
    val_losses : list of float
        Weighted mean validation loss after each epoch (cross-entropy
        without label smoothing, or a regressor's mean squared error on the
        standardised targets), when the trainer was asked to record it
        (``PopulationTrainer(val_losses=True)``); else empty.
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
    val_losses: list = field(default_factory=list)
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


def _message(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def dense_shapes(layers, n_features, n_outputs):
    """Kernel shapes of the dense layers of a candidate, output layer last
    (the first layer sees :data:`_INPUTS_PER_FEATURE` inputs per feature after
    its input transform). A candidate of ``k > 1`` members (see
    ``SearchSpace``'s ``members``) has its members' output layers side by
    side, ``(width, k * n_outputs)``, member by member."""
    shapes, width = [], n_features
    for layer in layers:
        if layer["type"] == "optimizer" and layer.get("input") in _INPUTS_PER_FEATURE:
            width = n_features * _INPUTS_PER_FEATURE[layer["input"]]
        elif layer["type"] == "dense":
            shapes.append((width, layer["units"]))
            width = layer["units"]
    shapes.append((width, n_outputs * n_members(layers)))
    return shapes


def adapter_size(layers, n_features):
    """Length of a candidate's input adapters (see ``SearchSpace``'s
    ``members`` and ``input_scaling``): ``k`` vectors as long as the first
    layer's input, member by member (one for a net of learned input
    scaling); 0 for a plain MLP. They are the third array of the output
    layer's weights, ``(kernel, bias, adapters)``."""
    if not has_adapters(layers):
        return 0
    return n_members(layers) * dense_shapes(layers, n_features, 1)[0][0]


def embedding_shapes(layers, n_features):
    """Shapes of a candidate's embedding arrays (see ``'plr'`` and ``'pbld'``
    in ``SearchSpace``'s ``input_transforms``); ``[]`` without an embedding.
    They are the last arrays of the output layer's weights. ``'plr'``: the
    frequencies ``(n_features, PLR_FREQUENCIES)`` (2 pi included), the kernel
    ``(2 * PLR_FREQUENCIES, PLR_WIDTH)`` shared by the features (cosines
    first, then sines) and its bias. ``'pbld'``: the frequencies and the
    phases ``(n_features, PBLD_FREQUENCIES)``, each feature's kernel
    ``(n_features, PBLD_FREQUENCIES, PBLD_WIDTH)`` and its bias."""
    kind, n = embedding_kind(layers), n_features
    if kind == "plr":
        return [(n, PLR_FREQUENCIES), (2 * PLR_FREQUENCIES, PLR_WIDTH), (PLR_WIDTH,)]
    if kind == "pbld":
        return [(n, PBLD_FREQUENCIES), (n, PBLD_FREQUENCIES),
                (n, PBLD_FREQUENCIES, PBLD_WIDTH), (n, PBLD_WIDTH)]
    return []


def embedding_sizes(layers, n_features):
    """Lengths of a candidate's embedding arrays (see :func:`embedding_shapes`)."""
    return [math.prod(shape) for shape in embedding_shapes(layers, n_features)]


def batch_norm_flags(layers):
    """Whether each dense layer (output layer last: never) has batch normalisation."""
    return [bool(layer.get("batch_norm")) for layer in layers
            if layer["type"] == "dense"] + [False]


def piece_counts(layers):
    """Arrays per dense layer, output layer last: 2 (kernel, bias), 6 with
    batch normalisation, and the output layer of a net with input adapters
    (``k > 1`` members, or learned input scaling) 3 (its adapters after its
    kernel and bias); an embedding (``'plr'``, ``'pbld'``) adds its arrays last."""
    counts = [6 if bn else 2 for bn in batch_norm_flags(layers)]
    counts[-1] += (1 if has_adapters(layers) else 0) + len(embedding_shapes(layers, 1))
    return counts


def scale_outputs(weights, scale, shift):
    """``weights`` with the output layer giving ``z * scale + shift`` instead
    of ``z`` (per output; each member's output layer for a net of members):
    a target's standardisation folded into the net."""
    kernel, bias = weights[-1][:2]
    k = kernel.shape[1] // np.size(scale)
    scale, shift = (np.tile(np.asarray(a, np.float32), k) for a in (scale, shift))
    return list(weights[:-1]) + [(kernel * scale, bias * scale + shift) + tuple(weights[-1][2:])]


def n_params(layers, n_features, n_outputs):
    """Number of trainable parameters of a candidate (batch normalisation's
    scale and offset included, its moving statistics not)."""
    shapes = dense_shapes(layers, n_features, n_outputs)
    return int(sum(i * o + o + (2 * o if bn else 0)
                   for (i, o), bn in zip(shapes, batch_norm_flags(layers)))
               + adapter_size(layers, n_features) + sum(embedding_sizes(layers, n_features)))


def initial_weights(layers, n_features, n_outputs, rng, store=None):
    """Initial weights per dense layer, output last: shared weights, or
    Glorot-uniform kernels and zero biases. A layer with batch normalisation
    has six arrays, ``(kernel, bias, gamma, beta, moving_mean,
    moving_variance)``, fresh ones being ``(.., .., 1, 0, 0, 1)`` as in Keras.
    The output layer of ``k > 1`` members has three, ``(kernel, bias,
    adapters)``: each member's kernel Glorot-uniform as its own layer's
    would be, and its input adapter random signs (TabM-mini's start); with
    learned input scaling the adapter (the scale) starts at ones, stored
    divided by :data:`SCALE_LR_FACTOR`. An embedding adds its arrays (see
    :func:`embedding_shapes`) to the output layer's, last: shared ones, or
    fresh ones stored divided by :data:`PLR_LR_FACTOR`: ``'plr'`` frequencies
    ``2 pi N(0, PLR_SIGMA)``, a Glorot-uniform kernel and a zero bias;
    ``'pbld'`` (RealMLP's start) the same frequencies, phases uniform in
    ``(-pi, pi)``, and each feature's kernel and bias uniform in ``(-1, 1) /
    sqrt(PBLD_FREQUENCIES)``."""
    from ._weights import embedding_key, layer_keys
    out = []
    shapes = dense_shapes(layers, n_features, n_outputs)
    adapters = adapter_size(layers, n_features)
    embedding = embedding_sizes(layers, n_features)
    counts = piece_counts(layers)
    counts[-1] -= len(embedding)  # the embedding's arrays are kept under a key of their own
    for j, (key, shape, count) in enumerate(zip(layer_keys(layers), shapes, counts)):
        entry = store.get(key, shape) if store is not None else None
        if entry is None or len(entry) != count:
            units = shape[1]
            fan_out = n_outputs if adapters and j == len(shapes) - 1 else units
            limit = math.sqrt(6.0 / (shape[0] + fan_out))
            entry = (rng.uniform(-limit, limit, shape).astype(np.float32),
                     np.zeros(units, np.float32))
            if count == 6:
                entry += (np.ones(units, np.float32), np.zeros(units, np.float32),
                          np.zeros(units, np.float32), np.ones(units, np.float32))
            elif count == 3 and n_members(layers) > 1:
                entry += (rng.choice(np.float32([-1, 1]), adapters),)
            elif count == 3:  # the scale, 1, stored as 1 / SCALE_LR_FACTOR
                entry += (np.full(adapters, 1 / SCALE_LR_FACTOR, np.float32),)
        out.append(tuple(a.copy() for a in entry))
    if embedding:
        shapes = embedding_shapes(layers, n_features)
        key = embedding_key(layers)
        entry = store.get(key, shapes[0]) if store is not None else None
        if entry is None:
            entry = _fresh_embedding(embedding_kind(layers), shapes, rng)
        out[-1] = out[-1] + tuple(a.copy() for a in entry)
    return out


def _fresh_embedding(kind, shapes, rng):
    """A fresh embedding's arrays of ``shapes``, stored divided by PLR_LR_FACTOR
    (see :func:`initial_weights`)."""
    frequencies = 2 * np.pi * rng.normal(0.0, PLR_SIGMA, shapes[0])
    if kind == "plr":
        limit = math.sqrt(6.0 / (2 * PLR_FREQUENCIES + PLR_WIDTH))
        arrays = (frequencies, rng.uniform(-limit, limit, shapes[1]), np.zeros(shapes[2]))
    else:
        limit = 1 / math.sqrt(PBLD_FREQUENCIES)
        arrays = (frequencies, rng.uniform(-np.pi, np.pi, shapes[1]),
                  rng.uniform(-limit, limit, shapes[2]), rng.uniform(-limit, limit, shapes[3]))
    return tuple((a / PLR_LR_FACTOR).astype(np.float32) for a in arrays)


#: Learned input scaling trains its scale this many times faster than the net (RealMLP-TD's
#: ``scale_lr_factor``): the stored vector is the scale / SCALE_LR_FACTOR and the net
#: multiplies it back, so Adam's steps (of a size set by the learning rate, whatever the
#: gradient's scale) move the scale SCALE_LR_FACTOR times as far.
SCALE_LR_FACTOR = 6.0

#: Keras' BatchNormalization defaults, which the population graph follows.
BN_MOMENTUM, BN_EPSILON = 0.99, 1e-3


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


_PLAIN_LOCK = threading.Lock()
_PLAIN_STATE = {"users": 0, "saved": False}


@contextmanager
def plain_graphs():
    """Run the graphs called inside without Grappler's optimisation passes.

    A population graph is a loop of many tiny ops, run once after it is
    traced. Grappler's passes (above all the remapper, which fuses each
    ``MatMul``, ``BiasAdd`` and activation into one oneDNN kernel) took about
    0.2 s of such a graph's first call on a small table (pima: the search's
    ten graphs ran in 2.5 s without them, 4.4 to 5.2 s with them), and the
    fused kernels run no faster on batches of 32 rows (see the performance
    guide). The option
    is TensorFlow's process-wide ``disable_meta_optimizer``; it is set while
    at least one ``plain_graphs`` block runs and then put back as it was, so
    a user's own graphs outside a fit are optimised as before.
    """
    import tensorflow as tf  # this module imports no TensorFlow of its own
    options = tf.config.optimizer
    with _PLAIN_LOCK:
        if _PLAIN_STATE["users"] == 0:
            _PLAIN_STATE["saved"] = bool(options.get_experimental_options().get(
                "disable_meta_optimizer", False))
            options.set_experimental_options({"disable_meta_optimizer": True})
        _PLAIN_STATE["users"] += 1
    try:
        yield
    finally:
        with _PLAIN_LOCK:
            _PLAIN_STATE["users"] -= 1
            if _PLAIN_STATE["users"] == 0:
                options.set_experimental_options(
                    {"disable_meta_optimizer": _PLAIN_STATE["saved"]})


@contextmanager
def _quiet_retracing():
    """Silence TensorFlow's 'triggered tf.function retracing' warning: each
    population is a new graph by design, traced once."""
    import tensorflow as tf  # this module imports no TensorFlow of its own
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
