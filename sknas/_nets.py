"""One candidate inside the population graph: its layers, written out by hand.

:class:`_Net` holds a candidate's forward and backward passes (dense layers
with their fused activation kernels, dropout, the output layer);
:func:`forward_passes` and :func:`backward_passes` run the passes of a whole
population with its batch normalisations joined (:class:`_BatchNormRound`);
:func:`_loss_and_grads` gives each net's loss and gradient of its logits.
Training rows reach the graph as a dense tensor or a ``tf.SparseTensor``
(:func:`_graph_rows`) and are sliced into mini-batches by :class:`_RowSource`.
The trainable state and the training loop are in :mod:`sknas._population`.
"""

from __future__ import annotations

import contextlib

import numpy as np
import scipy.sparse as sp
import tensorflow as tf

from ._data import (BN_EPSILON, PBLD_WIDTH, PLE_BINS, PLR_FREQUENCIES, PLR_LR_FACTOR,
                    PLR_WIDTH, SCALE_LR_FACTOR, Head, adapter_size, batch_norm_flags,
                    dense_shapes, embedding_shapes, embedding_sizes, piece_counts,
                    transform_stats)
from ._space import candidate_settings, n_members, optimizer_settings

#: TensorFlow's RNG_ALG_AUTO_SELECT: the algorithm ``tf.random.stateless_uniform``
#: draws with by default (its ``alg='auto_select'``)
_RNG_AUTO_SELECT = 3


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


class _TouchedRows:
    """A sparse mini-batch of a lazy step (``PopulationTrainer(lazy_adam=True)``):
    the first layer reads, and its gradient covers, only the kernel's rows
    of the columns the batch touches.

    ``cols`` holds the distinct column indices of the batch ``rows`` (a
    ``tf.SparseTensor``; int64, in order of first appearance) and ``narrow``
    the batch with its columns renumbered to positions in ``cols``: the first
    layer is ``narrow @ kernel[cols]`` and its kernel gradient ``narrow^T
    dz``, a row per touched column.
    """

    def __init__(self, rows):
        self.cols, position = tf.unique(rows.indices[:, 1], out_idx=tf.int64)
        self.narrow = tf.SparseTensor(
            tf.stack([rows.indices[:, 0], position], axis=1), rows.values,
            tf.stack([rows.dense_shape[0], tf.size(self.cols, out_type=tf.int64)]))


def _matmul(x, kernel):
    """``x @ kernel`` for dense rows or a ``tf.SparseTensor`` of rows."""
    if isinstance(x, _TouchedRows):  # a lazy step's kernel: the touched columns' rows
        x = x.narrow
    if isinstance(x, tf.SparseTensor):
        return tf.sparse.sparse_dense_matmul(x, kernel)
    return tf.matmul(x, kernel)


class _RowSource:
    """Mini-batches of training rows inside the graph.

    Dense rows are gathered once per epoch in shuffled order and sliced.
    Sparse rows are held as two ragged tensors (column indices and values,
    a row each) and each mini-batch gathers only its own rows' stored values
    into a ``tf.SparseTensor``, densified if ``densify``, else with ``lazy``
    wrapped as :class:`_TouchedRows`: the whole matrix is never dense.
    """

    def __init__(self, X, densify=False, lazy=False):
        self.X = X
        self.densify = densify
        self.lazy = lazy and not densify
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
            if self.densify:
                return tf.sparse.to_dense(batch)
            return _TouchedRows(batch) if self.lazy else batch

        return take


# Activations whose gradient TensorFlow computes from the layer's output with
# one fused kernel: the population graph differentiates them by hand.
_FUSED_ACTIVATIONS = {
    "relu": (tf.nn.relu, lambda a, da: tf.raw_ops.ReluGrad(gradients=da, features=a)),
    "tanh": (tf.math.tanh, lambda a, da: tf.raw_ops.TanhGrad(y=a, dy=da)),
    "sigmoid": (tf.math.sigmoid, lambda a, da: tf.raw_ops.SigmoidGrad(y=a, dy=da)),
    "elu": (tf.nn.elu, lambda a, da: tf.raw_ops.EluGrad(gradients=da, outputs=a)),
    "selu": (tf.nn.selu, lambda a, da: tf.raw_ops.SeluGrad(gradients=da, outputs=a)),
}
# Activations differentiated by hand from the layer's input ``z`` and output ``a``.
_HAND_ACTIVATIONS = {
    # silu(z) = z * sigmoid(z): d/dz = sigmoid(z) * (1 + z - silu(z)). Not tf.nn.silu, whose
    # value is the same: its tf.custom_gradient registers a gradient function for every graph
    # it is traced in, in a registry of the process, and that function holds the graph
    "silu": (lambda z: z * tf.math.sigmoid(z),
             lambda z, a, da: da * tf.math.sigmoid(z) * (1.0 + z - a)),
}


def _activation(name):
    """Forward function of a Keras activation name, as Keras computes it."""
    if name in _FUSED_ACTIVATIONS:
        return _FUSED_ACTIVATIONS[name][0]
    if name in _HAND_ACTIVATIONS:
        return _HAND_ACTIVATIONS[name][0]
    import keras
    return keras.activations.get(name)


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

    A net of ``k > 1`` members (TabM-mini; ``SearchSpace``'s ``members``)
    runs its hidden layers on ``k`` copies of the rows stacked member by
    member, ``(k * rows, width)``, copy ``m`` multiplied by member ``m``'s
    input adapter; its output layer is ``k`` layers side by side (a batched
    product), and its logits are the members' logits stacked the same way.
    :meth:`combine` turns them into the logits of the members' mean
    prediction. The output layer's pieces are kernel, bias and adapters. A
    net of learned input scaling (``SearchSpace``'s ``input_scaling``) is a
    net of one member with an adapter: its rows are scaled by it, once.

    A net with the ``'plr'`` or ``'pbld'`` input transform embeds its robust,
    clipped rows first (:meth:`_embed`): the embedding's arrays (see
    :func:`~sknas._data.embedding_shapes`) are the last pieces of its output
    layer.
    """

    def __init__(self, layers, n_features, head, seed, input_stats=None):
        self.head = Head.of(head)
        self.seed = int(seed) % (2**31 - 1)
        self.shapes = dense_shapes(layers, n_features, self.head.n_outputs)
        self.bn = batch_norm_flags(layers)
        self.counts = piece_counts(layers)  # flat pieces per dense layer
        self.members = n_members(layers)
        self.adapters = adapter_size(layers, n_features)
        self.n_features = int(n_features)
        self.embedding = embedding_sizes(layers, n_features)
        self.embedding_shapes = embedding_shapes(layers, n_features)
        # a learned input scale is stored divided by SCALE_LR_FACTOR (see there)
        self.adapter_factor = np.float32(SCALE_LR_FACTOR if self.members == 1 else 1.0)
        self.settings = optimizer_settings(layers)
        own = candidate_settings(layers)
        self.label_smoothing = own["label_smoothing"] or 0.0
        self.schedule = own["schedule"] or "constant"
        self.input = own["input"] or "none"
        # the rows a net takes: an embedding embeds the robust transform's (see _embed)
        self.input_key = "robust" if self.embedding else self.input
        if self.input != "none":
            shift, variance = transform_stats(input_stats, self.input)
            # as keras.layers.Normalization computes it
            self.input_stats = (shift, np.maximum(np.sqrt(variance), np.float32(1e-7)))
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
        """Lengths of the flat pieces: kernel, bias[, gamma, beta, mean, variance], ...
        (and the members' adapters, then the embedding's pieces, last)."""
        sizes = [n for (i, o), bn in zip(self.shapes, self.bn)
                 for n in (i * o, o) + ((o,) * 4 if bn else ())]
        return sizes + ([self.adapters] if self.adapters else []) + self.embedding

    def piece_kinds(self):
        """Kind of each flat piece: 'kernel', 'bias', 'gamma', 'beta', 'mean',
        'variance', 'adapters', and 'embedding' for each of the embedding's
        arrays (weight decay takes the kernels only)."""
        kinds = [k for bn in self.bn
                 for k in ("kernel", "bias") + (("gamma", "beta", "mean", "variance") if bn else ())]
        return (kinds + (["adapters"] if self.adapters else [])
                + ["embedding"] * len(self.embedding))

    def unflatten(self, pieces, reshape=tf.reshape):
        """Per dense layer a tuple of this net's flat pieces, the kernel
        reshaped, and so the embedding's arrays (tensors; ``reshape=np.reshape``
        for NumPy pieces)."""
        out, at = [], 0
        for shape, n in zip(self.shapes, self.counts):
            out.append((reshape(pieces[at], shape),) + tuple(pieces[at + 1:at + n]))
            at += n
        n = len(self.embedding)
        if n:  # the embedding's arrays in their shapes (a vector stays as it is)
            out[-1] = out[-1][:-n] + tuple(
                a if len(shape) == 1 else reshape(a, shape)
                for a, shape in zip(out[-1][-n:], self.embedding_shapes))
        return out

    def forward(self, params, x, step=None):
        """Logits and what :meth:`backward` needs. ``step`` given: training
        mode (dropout, batch statistics); else inference mode."""
        return forward_passes([self], [params], x, step)[0]

    def transform_input(self, x):
        """The net's input transform of the rows ``x`` (see
        ``SearchSpace.input_transforms``), as the served model's built-in
        layers compute it: ``'robust'`` (and ``'plr'`` and ``'pbld'``, whose embedding
        :meth:`forward_steps` adds) standardises by the data's
        ``input_stats`` and clips smoothly, ``3 * tanh(x / 3)``; ``'ple'``
        repeats each feature ``PLE_BINS`` times, places each copy in its bin
        (``(x - lower) / width``) and clips it to ``[0, 1]`` (as ``relu6(6
        z) / 6``)."""
        if self.input == "none":
            return x
        if isinstance(x, tf.SparseTensor):
            x = tf.sparse.to_dense(x)
        shift, std = self.input_stats
        if self.input == "ple":
            z = (tf.repeat(x, PLE_BINS, axis=1) - shift) / std
            return tf.nn.relu6(z * np.float32(6.0)) * np.float32(1 / 6)
        return tf.math.tanh(((x - shift) / std) * np.float32(1 / 3)) * np.float32(3.0)

    def forward_steps(self, params, x, step=None):
        """Generator of the forward pass on rows ``x`` already through
        :meth:`transform_input`: it yields ``(z, gamma, beta)`` for each
        batch normalisation in training mode and is sent back ``(output,
        norm)``; it returns ``(logits, tape)`` (``k > 1`` members: each
        member's logits, stacked member by member; the tape then starts
        with ``('members', x)``)."""
        tape = []
        k = self.members
        if self.embedding:
            x, record = self._embed(params[-1][-len(self.embedding):], x)
            tape.append(record)
        if self.adapters:  # k copies of the rows, copy m scaled by member m's adapter
            if isinstance(x, tf.SparseTensor):
                x = tf.sparse.to_dense(x)
            tape.append(("members", x))
            adapters = tf.reshape(params[-1][2] * self.adapter_factor, [k, 1, -1])
            x = tf.reshape(adapters * x[None], [-1, self.shapes[0][0]])
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
        if k > 1:  # member m's output layer on copy m of the rows
            width, n_out = self.shapes[-1][0], self.head.n_outputs
            z = tf.matmul(tf.reshape(x, [k, -1, width]), self._member_kernels(params[-1][0]))
            z = z + tf.reshape(params[-1][1], [k, 1, n_out])
            return tf.reshape(z, [-1, n_out]), tape
        return tf.nn.bias_add(tf.matmul(x, params[-1][0]), params[-1][1]), tape

    def _embed(self, pieces, x):
        """The embedding of the rows ``x`` (robust and clipped) and its tape
        record: ``'plr'`` (:meth:`_embed_plr`) or ``'pbld'``
        (:meth:`_embed_pbld`). The pieces (in their shapes, as
        :meth:`unflatten` gives them) are stored divided by
        ``PLR_LR_FACTOR``, and multiplied back here."""
        c = graph_constant(PLR_LR_FACTOR, tf.float32)
        pieces = [piece * c for piece in pieces]
        if self.input == "pbld":
            return self._embed_pbld(pieces, x)
        return self._embed_plr(pieces, x)

    def _embed_grads(self, record, dx):
        """Gradients of the embedding's stored pieces (flat) given d loss /
        d its output ``dx``."""
        grads = (self._embed_pbld_grads if self.input == "pbld" else self._embed_plr_grads)(
            record, dx)
        c = graph_constant(PLR_LR_FACTOR, tf.float32)
        return [(g if g.shape.rank == 1 else tf.reshape(g, [-1])) * c for g in grads]

    def _embed_plr(self, pieces, x):
        """``'plr'``: per feature ``relu([cos(f x), sin(f x)] @ kernel +
        bias)`` with its own frequencies ``f`` (2 pi included) and the kernel
        the features share, features side by side, ``(rows, n_features *
        PLR_WIDTH)``."""
        frequencies, kernel, bias = pieces
        n, f = self.n_features, PLR_FREQUENCIES
        u = x[:, :, None] * frequencies  # (rows, n, 1) by (n, f)
        cos, sin = tf.math.cos(u), tf.math.sin(u)
        periodic = tf.reshape(tf.concat([cos, sin], axis=2), [-1, 2 * f])
        e = tf.nn.relu(tf.nn.bias_add(tf.matmul(periodic, kernel), bias))
        return tf.reshape(e, [-1, n * PLR_WIDTH]), ("embedding", x, cos, sin, periodic, e,
                                                    kernel)

    def _embed_plr_grads(self, record, dx):
        """Gradients of the ``'plr'`` frequencies, kernel and bias."""
        _, x, cos, sin, periodic, e, kernel = record
        n, f = self.n_features, PLR_FREQUENCIES
        dh = tf.raw_ops.ReluGrad(gradients=tf.reshape(dx, [-1, PLR_WIDTH]), features=e)
        dkernel, dbias = _dense_grads(periodic, dh)
        dp = tf.reshape(tf.matmul(dh, kernel, transpose_b=True), [-1, n, 2 * f])
        du = dp[:, :, f:] * cos - dp[:, :, :f] * sin
        return [tf.reduce_sum(du * x[:, :, None], axis=0), dkernel, dbias]

    def _embed_pbld(self, pieces, x):
        """``'pbld'`` (RealMLP's): per feature ``cos(f x + p) @ kernel +
        bias`` with its own frequencies ``f`` (2 pi included), phases ``p``,
        kernel and bias, features side by side, then the features themselves,
        ``(rows, n_features * (PBLD_WIDTH + 1))``. Computed feature by
        feature: ``(n_features, rows, ...)``."""
        frequencies, phases, kernel, bias = pieces
        xt = tf.transpose(x)  # (n, rows)
        u = xt[:, :, None] * frequencies[:, None] + phases[:, None]  # (n, rows, f)
        cos = tf.math.cos(u)
        e = tf.matmul(cos, kernel) + bias[:, None]  # (n, rows, d)
        e = tf.reshape(tf.transpose(e, [1, 0, 2]), [-1, self.n_features * PBLD_WIDTH])
        return tf.concat([e, x], axis=1), ("embedding", xt, u, cos, kernel)

    def _embed_pbld_grads(self, record, dx):
        """Gradients of the ``'pbld'`` frequencies, phases, kernel and bias
        (the features' own part of ``dx`` reaches no parameter)."""
        _, xt, u, cos, kernel = record
        n = self.n_features
        de = tf.transpose(tf.reshape(dx[:, :n * PBLD_WIDTH], [-1, n, PBLD_WIDTH]), [1, 0, 2])
        du = tf.matmul(de, kernel, transpose_b=True) * -tf.math.sin(u)  # (n, rows, f)
        return [tf.reduce_sum(du * xt[:, :, None], axis=1), tf.reduce_sum(du, axis=1),
                tf.matmul(cos, de, transpose_a=True), tf.reduce_sum(de, axis=1)]

    def _member_kernels(self, kernel):
        """The members' output kernels ``(k, width, n_outputs)`` from the
        output layer's ``(width, k * n_outputs)``."""
        width, n_out = self.shapes[-1][0], self.head.n_outputs
        return tf.transpose(tf.reshape(kernel, [width, self.members, n_out]), [1, 0, 2])

    def combine(self, logits):
        """The logits of the members' mean prediction from their stacked
        logits (see :meth:`forward_steps`): the log of the mean probability
        (softmax), the log-odds of the mean probability (binary), the mean
        value (linear); a plain net's logits as they are."""
        k = self.members
        if k == 1:
            return logits
        z = tf.reshape(logits, [k, -1, self.head.n_outputs])
        if self.head.is_regression:
            return tf.reduce_mean(z, axis=0)
        if self.head.kind == "binary":  # log(mean p) - log(mean (1 - p)): the 1/k cancels
            return (tf.reduce_logsumexp(tf.math.log_sigmoid(z), axis=0)
                    - tf.reduce_logsumexp(tf.math.log_sigmoid(-z), axis=0))
        return tf.reduce_logsumexp(tf.nn.log_softmax(z), axis=0) - np.float32(np.log(k))

    def _dropout_mask(self, shape, rate, salt, step):
        """Keep-mask scaled by ``1 / (1 - rate)``, fixed by the net's seed and the step.

        The same draw as ``tf.nn.experimental.stateless_dropout`` with seed
        ``(net seed, step + salt)``.
        """
        # tf.random.stateless_uniform's kernels, less its scaling to [0, 1) (exact)
        seed = tf.stack([tf.constant(self.seed), step + graph_constant(salt, tf.int32)])
        key, counter = tf.raw_ops.StatelessRandomGetKeyCounter(seed=seed)
        uniform = tf.raw_ops.StatelessRandomUniformV2(
            shape=shape, key=key, counter=counter, alg=graph_constant(_RNG_AUTO_SELECT, tf.int32),
            dtype=tf.float32)
        keep = uniform >= graph_constant(rate, tf.float32)
        return tf.cast(keep, tf.float32) * graph_constant(1.0 / (1.0 - rate), tf.float32)

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
        k = self.members
        if k > 1:  # each member's output layer on its copy of the rows
            width, n_out = self.shapes[-1][0], self.head.n_outputs
            x = tf.reshape(tape[-1][0], [k, -1, width])
            dz = tf.reshape(dlogits, [k, -1, n_out])
            dkernel = tf.transpose(tf.matmul(x, dz, transpose_a=True), [1, 0, 2])
            grads[starts[-2]:starts[-2] + 2] = [tf.reshape(dkernel, [-1]),
                                                tf.reshape(tf.reduce_sum(dz, axis=1), [-1])]
            dx = tf.reshape(tf.matmul(dz, self._member_kernels(params[-1][0]), transpose_b=True),
                            [-1, width])
        else:
            grads[starts[-2]:starts[-2] + 2] = _dense_grads(tape[-1][0], dlogits)
            dx = tf.matmul(dlogits, params[-1][0], transpose_b=True)
        records = iter(reversed(tape[:-1]))
        for op in reversed(self.ops):
            rec = next(records)
            if op[0] == "dropout":
                dx = dx * rec[0]
                continue
            x_in, z, a, norm = rec
            at = starts[op[1]]
            dz = _activation_grad(op[2], z, a, dx)
            if norm is not None:
                dz, dgamma, dbeta = yield dz, norm
                zeros = tf.zeros([self.shapes[op[1]][1]])
                grads[at + 2:at + 6] = [dgamma, dbeta, zeros, zeros]
            grads[at:at + 2] = _dense_grads(x_in, dz)
            if op[1] > 0 or self.adapters or self.embedding:
                dx = tf.matmul(dz, params[op[1]][0], transpose_b=True)
        n_emb = len(self.embedding)
        if self.adapters:  # d loss / d a_m = sum over rows of x * d loss / d (a_m x)
            x = tape[1 if n_emb else 0][1]
            dx = tf.reshape(dx, [k, -1, self.shapes[0][0]])
            grads[len(grads) - 1 - n_emb] = (
                tf.reshape(tf.reduce_sum(dx * x[None], axis=1), [-1]) * self.adapter_factor)
            if n_emb:  # d loss / d x = sum over members of a_m * d loss / d (a_m x)
                adapters = tf.reshape(params[-1][2] * self.adapter_factor, [k, 1, -1])
                dx = tf.reduce_sum(dx * adapters, axis=0)
        if n_emb:
            grads[-n_emb:] = self._embed_grads(tape[0], dx)
        return grads

    def score(self, params, x, y, w, total, z=None):
        """Validation score on ``x`` (inference mode): weighted accuracy, or
        for a linear head R^2 averaged over the outputs (``total`` holds each
        output's weighted sum of squares about its mean). ``z``: the logits
        on ``x`` when already computed (a net of members: stacked, as
        :meth:`forward` gives them)."""
        z = self.combine(self.forward(params, x)[0] if z is None else z)
        if self.head.is_regression:
            sse = tf.reduce_sum(w[:, None] * tf.square(z - y), axis=0)
            return tf.reduce_mean(1.0 - sse / total)
        if self.head.kind == "binary":
            pred = tf.cast(tf.squeeze(z, axis=1) > graph_constant(0.0, tf.float32), tf.int32)
        else:
            pred = tf.argmax(z, axis=graph_constant(1, tf.int32), output_type=tf.int32)
        right = w * tf.cast(tf.equal(pred, y), tf.float32)
        return tf.reduce_sum(right, axis=graph_constant([0], tf.int32)) / total


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


def bn_groups(nets, keys):
    """The nets ``keys`` whose batch normalisations can join one round: those
    of one number of members (their rows are that many copies), fewest first."""
    sizes = sorted({nets[k].members for k in keys})
    return [[k for k in keys if nets[k].members == m] for m in sizes]


def forward_passes(nets, params, x, step=None, rounds=None, masks=None):
    """Each net's ``(logits, tape)`` on ``x``, batch normalisation shared:
    each round normalises the next batch-normalised layer of every net that
    has one and as many members (see :class:`_BatchNormRound` and
    :func:`bn_groups`; the rounds are appended to
    ``rounds`` if given). ``step`` None: inference mode. ``masks``: per
    net, the rows of ``x`` its batch statistics take (see
    :class:`_BatchNormRound`), or None for all."""
    rounds = [] if rounds is None else rounds
    inputs = {}  # the rows through each input transform, computed once for the population
    for net in nets:
        if net.input_key not in inputs:
            inputs[net.input_key] = net.transform_input(x)
    if masks is not None:  # a net of members: its rows k times
        masks = [m if net.members == 1 else tf.tile(m, [net.members])
                 for net, m in zip(nets, masks)]

    def serve(pending):
        answers = {}
        for keys in bn_groups(nets, sorted(pending)):
            bn = _BatchNormRound([pending[k] for k in keys], len(rounds),
                                 None if masks is None else [masks[k] for k in keys])
            rounds.append(bn)
            answers.update({k: (out, (bn, i)) for i, (k, out) in enumerate(zip(keys, bn.outputs))})
        return answers

    return _drive([net.forward_steps(p, inputs[net.input_key], step)
                   for net, p in zip(nets, params)], serve)


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


#: per graph being traced, its constants by dtype, shape and value (see :func:`graph_constant`);
#: emptied when a trace ends (:func:`one_trace`): a constant holds its graph
_CONSTANTS = {}


@contextlib.contextmanager
def one_trace():
    """The scope of a trace that uses :func:`graph_constant`: when it ends,
    the constants are forgotten. Each holds its graph, so a cache that kept
    them would keep every traced graph of the process alive: a process that
    fits again and again (a benchmark, a grid search) grew until it ran out
    of memory. A trace running meanwhile in another thread only makes its
    constants again: the cache saves operations, it does not change values."""
    try:
        yield
    finally:
        _CONSTANTS.clear()


def graph_constant(value, dtype):
    """``tf.constant(value, dtype)``, made once per graph being traced.

    A population's nets use the same few constants (shapes, axes, dropout
    rates, zero paddings): one constant each, not one per use. Tracing
    costs about the same per operation whatever it computes, and it is the
    largest cost of a small table's fit (see the performance guide). Outside
    a traced function, a new constant."""
    value = np.asarray(value, dtype.as_numpy_dtype)
    if not tf.inside_function():
        return tf.constant(value, dtype)
    consts = _CONSTANTS.setdefault(tf.compat.v1.get_default_graph(), {})
    key = (dtype, value.shape, value.tobytes())
    if key not in consts:
        consts[key] = tf.constant(value, dtype)
    return consts[key]


def graph_reshape(x, shape):
    """``tf.reshape(x, shape)`` with the constant ``shape`` of :func:`graph_constant`
    (a population's kernels take a few shapes, its flat gradients ``[-1]``)."""
    return tf.reshape(x, graph_constant(shape, tf.int32))


def _dense_grads(x, dz):
    """Flat kernel and bias gradients of a dense layer (``x`` dense or sparse;
    for :class:`_TouchedRows`, the kernel's rows of the touched columns only)."""
    if isinstance(x, _TouchedRows):
        kernel_grad = tf.sparse.sparse_dense_matmul(x.narrow, dz, adjoint_a=True)
    elif isinstance(x, tf.SparseTensor):
        kernel_grad = tf.sparse.sparse_dense_matmul(x, dz, adjoint_a=True)
    else:
        kernel_grad = tf.matmul(x, dz, transpose_a=True)
    return [graph_reshape(kernel_grad, [-1]),
            tf.raw_ops.BiasAddGrad(out_backprop=dz)]


def _activation_grad(name, z, a, da):
    if name in _FUSED_ACTIVATIONS:
        return _FUSED_ACTIVATIONS[name][1](a, da)
    if name in _HAND_ACTIVATIONS:
        return _HAND_ACTIVATIONS[name][1](z, a, da)
    with tf.GradientTape() as tape:  # any other Keras activation: autodiff
        tape.watch(z)
        out = _activation(name)(z)
    return tape.gradient(out, z, output_gradients=da)


def schedule_factor(name, t):
    """Multiplier of a learning rate under the schedule ``name`` at the
    fraction ``t`` (a float32 scalar tensor in ``[0, 1]``) of the training's
    planned steps (see ``SearchSpace``'s ``lr_schedules``)."""
    if name == "cosine":
        return 0.5 * (1.0 + tf.math.cos(np.float32(np.pi) * t))
    if name == "coslog4":
        return 0.5 * (1.0 - tf.math.cos(np.float32(2 * np.pi)
                                        * tf.math.log(1.0 + 15.0 * t) / np.float32(np.log(2))))
    return tf.constant(1.0)


def _output(head, logits):
    """What the served model outputs for ``logits``: probabilities, or the
    linear head's values."""
    if head.kind == "binary":
        return tf.math.sigmoid(logits)
    if head.kind == "softmax":
        return tf.nn.softmax(logits)
    return logits


def _loss_and_grads(logits, y, scale, head, target=None, smoothing=None, members=None,
                    need_losses=True):
    """Per-net weighted losses and d loss / d logits for a list of nets' logits.

    One fused cross-entropy kernel per net, on that net's own ``(rows,
    classes)`` buffer: element-wise kernels (``exp`` in the softmax) take a
    vector or a scalar path depending on where an element falls in its
    buffer, so sharing one buffer between nets would make a net's numbers
    depend on the population it trains in. ``scale`` is ``w / batch rows``.
    A linear head has Keras' squared error: the mean over outputs of
    ``(z - y) ** 2`` per row; with ``target``, per net ``(shift, scale)``,
    net ``k``'s target is ``(y - shift[k]) / scale[k]``. ``smoothing``: per
    net its label smoothing (Keras': a one-hot target ``(1 - e) * onehot + e
    / classes``, a binary one ``(1 - e) * y + e / 2``), or None for none.
    ``members``: per net its number of members (None: 1 each); a net of
    ``k > 1`` members has ``k`` stacked copies of the rows' logits (see
    :meth:`_Net.forward_steps`), and its loss is the members' mean loss.

    ``need_losses=False`` (a training step, which needs the gradients and
    only whether each loss is finite): a classifier's loss is not
    computed, and its flag is whether the logits are all finite (the
    cross-entropy of finite logits is finite, of any other not), checked
    for all the nets at once (:func:`_not_finite`).
    The first value returned is then per net whether its loss is *not*
    finite, for every head. What the nets share (the targets as a
    column, the row weights as a column) is made once, so a population's
    graph holds fewer operations per net (tracing costs about the same per
    operation, whatever it computes).
    """
    head = Head.of(head)
    losses, grads = [], []
    per_net = scale.shape.rank == 2  # each net its own row weights: (n_nets, rows)
    shared = {}  # what the nets of one member and no own row weights share

    def once(name, make):
        if name not in shared:
            shared[name] = make()
        return shared[name]

    for k, z in enumerate(logits):
        scale_k = scale[k] if per_net else scale
        e = 0.0 if smoothing is None else float(smoothing[k])
        y_k, m = y, 1 if members is None else members[k]
        plain = m == 1 and not per_net
        if m > 1:  # each member's rows, each weighing 1 / m
            y_k = tf.tile(y, [m, 1] if head.is_regression else [m])
            scale_k = tf.tile(scale_k, [m]) * np.float32(1 / m)
        column = (once("scale", lambda: tf.expand_dims(scale, 1)) if plain
                  else tf.expand_dims(scale_k, 1))
        if head.is_regression:
            diff = z - (y_k if target is None else (y_k - target[0][k]) / target[1][k])
            per_row = tf.reduce_mean(tf.square(diff), axis=graph_constant([1], tf.int32))
            dz = diff * (2.0 / head.n_outputs) * column
        elif head.kind == "binary":
            t = (once("t", lambda: tf.expand_dims(tf.cast(y, tf.float32), 1)) if m == 1
                 else tf.expand_dims(tf.cast(y_k, tf.float32), 1))
            if e:
                t = t * np.float32(1 - e) + np.float32(e / 2)
            dz = (tf.math.sigmoid(z) - t) * column
            per_row = (tf.squeeze(tf.nn.sigmoid_cross_entropy_with_logits(t, z), axis=1)
                       if need_losses else None)
        else:
            per_row, backprop = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(
                features=z, labels=y_k)
            if e:  # (1 - e) * CE + e * mean over classes of -log p; gradient p - target
                n = z.shape[-1]
                if need_losses:
                    per_row = (per_row * np.float32(1 - e)
                               + np.float32(e) * (tf.reduce_logsumexp(z, axis=1)
                                                  - tf.reduce_mean(z, axis=1)))
                backprop = (backprop + np.float32(e) * tf.one_hot(y_k, n)
                            - np.float32(e / n))
            dz = backprop * column
        grads.append(dz)
        if not need_losses and not head.is_regression:  # the logits tell (see the docstring)
            losses.append(None)
            continue
        loss = tf.reduce_sum(per_row * scale_k, axis=graph_constant([0], tf.int32))
        losses.append(loss if need_losses else tf.logical_not(tf.math.is_finite(loss)))
    if need_losses:
        return tf.stack(losses), grads
    return _not_finite(losses, logits, members), grads


def _not_finite(flags, logits, members):
    """Per net whether its loss is not finite: ``flags[k]``, or where that is
    None, whether net ``k``'s logits hold a value that is not finite, checked
    for all such nets of one member count at once (one set of operations,
    not one per net)."""
    groups = {}
    for k, flag in enumerate(flags):
        if flag is None:
            groups.setdefault(1 if members is None else members[k], []).append(k)
    flags = list(flags)
    for ks in groups.values():
        bad = tf.logical_not(tf.reduce_all(tf.math.is_finite(tf.stack([logits[k] for k in ks])),
                                           axis=graph_constant([1, 2], tf.int32)))
        if len(ks) == len(flags):
            return bad
        for k, flag in zip(ks, tf.unstack(bad, num=len(ks))):
            flags[k] = flag
    return tf.stack(flags)
