"""The population trainer: many candidates trained side by side in one graph.

:class:`PopulationTrainer` (the default trainer) builds a population of nets
(:class:`~sknas._nets._Net`), keeps their weights and Adam state in a few
flat vectors (:class:`_Group`, :class:`_Population`) and compiles the loop
over epochs and mini-batches into one TensorFlow graph. Recently traced
populations are kept for reuse (:data:`_GRAPHS`), and the graphs of past
ones are freed by a full garbage collection every few populations
(:func:`_collect_graphs`).

Sparse rows (CSR) stay sparse in the graph: each mini-batch is gathered from
the stored values alone, and the first dense layer multiplies it with
TensorFlow's sparse-dense product (or, with ``sparse_product=False``,
densifies the mini-batch first), so memory for the data stays proportional
to the stored values. With ``lazy_adam`` a sparse step reads and updates
only the first-layer kernel rows of the columns its mini-batch touches, so
its cost follows the batch's columns, not the table's; the estimators take
such steps where a batch touches a small share of the columns
(``lazy_adam='auto'``).
"""

from __future__ import annotations

import gc
import threading
import time
from collections import OrderedDict
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.special import gammaln
import tensorflow as tf

from ._data import (_NAN_MESSAGE, _NONFINITE_WEIGHTS_MESSAGE, BN_MOMENTUM, BYTES_PER_PARAM,
                    CandidateResult, FoldRows, _all_finite, _failed, _fold_inputs, _message,
                    _quiet_retracing, _too_big, n_params, plain_graphs)
from ._nets import (_bn_padding, _graph_rows, _loss_and_grads, _Net, _output, _RowSource,
                    _TouchedRows, backward_passes, bn_groups, forward_passes, graph_constant,
                    graph_reshape, one_trace, schedule_factor)

__all__ = ["PopulationTrainer"]


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


_ALIGN = 64  # floats: 256 bytes, a multiple of every SIMD packet and unrolled block
_CATCH_UP = 64  # skipped steps whose rates a lazy row's catch-up sums one by one
#: ``lazy_adam='auto'`` takes lazy steps while a mini-batch touches at most this share of
#: the columns on average (:func:`batch_column_share`). Measured on two cores (the sparse
#: input guide): lazy steps took a fifth of Adam's full step's time on the text tables,
#: whose batches touch 1% to 6% of the columns, and 1.6 times as long on a synthetic table
#: whose batches touch 47%; a straight line through the two crosses 1 at about 28%.
LAZY_MAX_SHARE = 0.2


def batch_column_share(X, batch_size):
    """The mean share of ``X``'s columns (CSR) that a mini-batch of
    ``batch_size`` of its ``n`` rows, drawn at random without replacement (as
    a shuffled epoch draws them), holds a value in: over the columns, ``1 -
    C(n - c, b) / C(n, b)``, ``c`` the column's stored values."""
    n, d = X.shape
    b = min(int(batch_size), n)
    if n == 0 or d == 0:
        return 0.0
    free = n - np.bincount(X.indices, minlength=d).astype(np.float64)  # rows without it
    missed = np.zeros(d)
    can = free >= b  # else every batch holds the column
    missed[can] = np.exp(gammaln(free[can] + 1) - gammaln(free[can] - b + 1)
                         - gammaln(n + 1) + gammaln(n - b + 1))
    return float(np.mean(1.0 - missed))


def _bias(step):
    """Adam's bias correction at step number ``step`` (a tensor, from 1):
    ``sqrt(1 - b2^step) / (1 - b1^step)``."""
    return tf.sqrt(1.0 - np.float32(0.999) ** step) / (1.0 - np.float32(0.9) ** step)


class _Touched(NamedTuple):
    """A lazy step's rows of the first kernels (:meth:`_Group.touch`): the
    input columns ``cols`` its batch holds, the step's number ``step``, and
    those columns' kernel rows with their Adam moments, caught up."""

    cols: tf.Tensor
    step: tf.Tensor
    rows: tf.Tensor
    m: tf.Tensor
    v: tf.Tensor


class _Group:
    """Nets that share one Adam learning rate and schedule: one flat float32
    vector of their weights (net by net, in ``sizes`` order) with Adam's first
    and second moments beside it. Adam is element-wise, so one ``ApplyAdam`` on
    the vector is each net's own Adam, and a NaN in one net's slice stays
    there; one variable instead of eighteen per net keeps the graph and its
    captures small. Each net's weight decay is its own (``weight_decays``,
    one per net): the decay is a vector too.

    With ``lazy`` (sparse rows and lazy Adam) the first-layer kernels are
    not in the vector but side by side in one matrix, ``rows`` (``n_features``
    x the nets' first widths, with its own moments): a step reads and
    updates just the rows of the columns its mini-batch touches (row gathers
    and scatters), and the vector of everything else takes ``ApplyAdam`` as
    usual."""

    def __init__(self, index, nets, weights, learning_rate, weight_decays, schedule="constant",
                 lazy=False):
        self.index, self.nets = index, nets
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.lazy = lazy
        skip = self._skip
        # each net's slice is padded to a multiple of _ALIGN floats, so it sits at the
        # same place relative to SIMD packets in any population: ApplyAdam then takes
        # the same (vector or scalar) code path for its elements, and a net trains
        # bit-identically alone, in any population and in any parallel chunk
        self.pads = [(-sum(net.sizes[skip:])) % _ALIGN for net in nets]
        self.sizes = [s for net, pad in zip(nets, self.pads) for s in net.sizes[skip:] + [pad]]
        flat = self._flat(weights)
        self.params = tf.Variable(flat)
        self.m = tf.Variable(tf.zeros_like(flat))
        self.v = tf.Variable(tf.zeros_like(flat))
        # the kernels' decay per element (Keras: variable -= variable * wd * lr)
        rates = [np.float32(wd) * np.float32(learning_rate) for wd in weight_decays]
        self.decay = self.rows_decay = None
        if any(weight_decays):
            self.decay = tf.constant(np.repeat(
                [rate if k == "kernel" else 0 for net, rate in zip(nets, rates)
                 for k in net.piece_kinds()[skip:] + ["pad"]],
                self.sizes).astype(np.float32))
        # where each batch-normalised layer's moving mean and variance start in
        # the vector: {(population index, dense layer): (mean start, variance start)}
        starts = iter(np.cumsum([0] + self.sizes[:-1]))
        self.stats_at = {}
        for k, net in zip(index, nets):
            for i, count in enumerate(net.counts):
                at = [None if lazy and i == j == 0 else next(starts) for j in range(count)]
                if net.bn[i]:
                    self.stats_at[(k, i)] = (int(at[4]), int(at[5]))
            next(starts)  # the padding
        self.best = None
        if lazy:
            self.widths = [int(net.shapes[0][1]) for net in nets]
            rows = self._rows(weights)
            self.rows = tf.Variable(rows)
            self.rows_m = tf.Variable(tf.zeros_like(rows))
            self.rows_v = tf.Variable(tf.zeros_like(rows))
            # the step after which each row last moved (0: none yet); see _catch_up
            self.rows_t = tf.Variable(tf.zeros([rows.shape[0]], tf.float32))
            if any(weight_decays):
                self.rows_decay = tf.constant(np.repeat(rates, self.widths).astype(np.float32))

    @property
    def _skip(self):
        """Pieces of each net left out of the vector: its first kernel when
        ``lazy`` (it lives in ``rows``), else none."""
        return 1 if self.lazy else 0

    def _flat(self, weights):
        """The nets' per-layer weight arrays as one padded float32 vector (the
        first kernels left out when ``lazy``)."""
        return np.concatenate([a.ravel() for w, pad in zip(weights, self.pads)
                               for a in [x for layer in w for x in layer][self._skip:]
                               + [np.zeros(pad)]]).astype(np.float32)

    @staticmethod
    def _rows(weights):
        """The nets' first kernels side by side (``lazy``)."""
        return np.concatenate([np.asarray(w[0][0], np.float32) for w in weights], axis=1)

    def reset(self, weights):
        """Start again from ``weights`` with Adam's moments at zero (as new)."""
        parts = [(self._flat(weights), self.params, self.m, self.v, "best")]
        if self.lazy:
            parts.append((self._rows(weights), self.rows, self.rows_m, self.rows_v, "best_rows"))
        for values, var, m, v, best in parts:
            var.assign(values)
            m.assign(tf.zeros_like(values))
            v.assign(tf.zeros_like(values))
            if self.best is not None:
                getattr(self, best).assign(values)

    def make_best(self):
        """Create the copy of the vector that keeps each net's best-epoch weights."""
        self.best = tf.Variable(self.params.read_value())
        lengths = [sum(net.sizes[self._skip:]) + pad for net, pad in zip(self.nets, self.pads)]
        self.segments = tf.constant(np.repeat(np.arange(len(self.nets)), lengths), tf.int32)
        if self.lazy:
            self.best_rows = tf.Variable(self.rows.read_value())
            self.row_segments = tf.constant(np.repeat(np.arange(len(self.nets)), self.widths),
                                            tf.int32)

    def keep_best(self, improved):
        """Copy the weights of the nets whose ``improved`` (population order) is
        True to their best copy."""
        mine = tf.gather(improved, self.index)
        mask = tf.gather(mine, self.segments)
        self.best.assign(tf.where(mask, self.params.read_value(), self.best.read_value()))
        if self.lazy:
            mask = tf.gather(mine, self.row_segments)[None, :]
            self.best_rows.assign(tf.where(mask, self.rows.read_value(),
                                           self.best_rows.read_value()))

    def restore_best(self):
        self.params.assign(self.best.read_value())
        if self.lazy:
            self.rows.assign(self.best_rows.read_value())

    def _unflatten(self, pieces, reshape=graph_reshape, kernels=None):
        """Per net, its per-layer tuples from the vector's pieces (``sizes``
        order) and, when ``lazy``, its first kernel from ``kernels``."""
        out, at = [], 0
        for j, net in enumerate(self.nets):
            n = len(net.sizes) - self._skip
            own = list(pieces[at:at + n])
            if self.lazy:  # any kernel as (rows, width): the first may hold some rows only
                own = [kernels[j]] + own
                out.append(net.unflatten(own, lambda a, shape: reshape(a, (-1, shape[1]))))
            else:
                out.append(net.unflatten(own, reshape))
            at += n + 1  # skip the padding
        return out

    def split(self, touched=None):
        """Per net, its list of per-layer tensor tuples read from the vector;
        with ``touched`` (a lazy step's rows, :meth:`touch`), the first kernel
        holds only the rows of its input columns, ``(len(cols), width)``."""
        pieces = tf.split(self.params.read_value(), self.sizes)
        if not self.lazy:
            return self._unflatten(pieces)
        rows = self.rows.read_value() if touched is None else touched.rows
        return self._unflatten(pieces, kernels=tf.split(rows, self.widths, axis=1))

    def touch(self, cols, step, total):
        """The first kernels' rows of the input columns ``cols`` that lazy
        step number ``step`` (from 1; ``total`` planned) reads, with their
        moments, caught up to the step before it (:meth:`_catch_up`), as Adam
        would have moved them: the step's forward pass uses them."""
        rows, m, v = (var.sparse_read(cols) for var in (self.rows, self.rows_m, self.rows_v))
        rows, m, v = self._catch_up(rows, m, v, self.rows_t.sparse_read(cols), step - 1.0,
                                    total)
        return _Touched(cols, step, rows, m, v)

    def _factor(self, progress):
        """The schedule's factor at ``progress`` (None: constant)."""
        return (None if self.schedule == "constant" or progress is None
                else schedule_factor(self.schedule, progress))

    def apply(self, grads, b1p, b2p, progress=None, touched=None):
        """One step: decay, then Adam on the nets' gradient pieces; the rate
        (and so the decay) scaled by the group's schedule at ``progress``, the
        fraction of the training's steps taken before this one. ``touched``
        given (a lazy step, :meth:`touch`): each net's first gradient piece
        holds only the first kernel's rows of its columns, and only they move."""
        flat = tf.concat([g for pieces, pad in zip(grads, self.pads)
                          for g in pieces[self._skip:] + [graph_constant(np.zeros(pad),
                                                                          tf.float32)]],
                         axis=0)
        factor = self._factor(progress)
        if self.decay is not None:
            decay = self.decay if factor is None else self.decay * factor
            self.params.assign_sub(self.params.read_value() * decay)
        lr = (self.learning_rate if factor is None
              else np.float32(self.learning_rate) * factor)
        tf.raw_ops.ResourceApplyAdam(
            var=self.params.handle, m=self.m.handle, v=self.v.handle, beta1_power=b1p,
            beta2_power=b2p, lr=lr, beta1=0.9, beta2=0.999, epsilon=1e-7, grad=flat)
        if self.lazy:
            grad = tf.concat([tf.reshape(pieces[0], (-1, width))
                              for pieces, width in zip(grads, self.widths)], axis=1)
            self._apply_rows(grad, touched, b1p, b2p, lr, factor)

    def _apply_rows(self, grad, touched, b1p, b2p, lr, factor):
        """Decay and Adam (as ``ResourceApplyAdam`` computes them) on the
        ``touched`` rows of the first kernels with their gradient ``grad``:
        the other rows wait, to catch up when a batch next holds their
        column (or at the epoch's end, :meth:`catch_up`). ``lr`` is the
        step's rate, ``factor`` its schedule's (None: constant)."""
        rows, m, v = touched.rows, touched.m, touched.v
        if self.rows_decay is not None:
            decay = self.rows_decay if factor is None else self.rows_decay * factor
            rows = rows - rows * decay[None, :]
        m = m + (grad - m) * np.float32(0.1)
        v = v + (tf.square(grad) - v) * np.float32(0.001)
        rows = rows - (lr * tf.sqrt(1.0 - b2p) / (1.0 - b1p)) * m / (
            tf.sqrt(v) + np.float32(1e-7))
        cols = touched.cols
        for var, values in ((self.rows, rows), (self.rows_m, m), (self.rows_v, v)):
            var.scatter_update(tf.IndexedSlices(values, cols))
        self.rows_t.scatter_update(tf.IndexedSlices(tf.fill(tf.shape(cols), touched.step),
                                                    cols))

    def _catch_up(self, rows, m, v, last, done, total):
        """``rows`` (with their moments ``m`` and ``v``, last moved after step
        ``last``, one per row) as Adam would have left them after step
        ``done`` of ``total``: a row whose column no batch since held had a
        zero gradient in those steps, and Adam still moved it on its
        momentum, by ``lr_j * m b1^j / (sqrt(v b2^j) + eps)`` at the j-th of
        them, while its moments and (with weight decay) its weights decayed.
        The skipped steps' rates and decays (bias correction and schedule
        included) are summed one by one for the first ``_CATCH_UP`` of them,
        and for the rest at their first or middle step (their momentum terms
        shrink as ``(b1 / sqrt(b2))^j``); ``eps`` is taken as scaling with
        the moments. So a lazy step gives what Adam's full step gives, up to
        rounding (lazy Adam without catch-ups, TensorFlow Addons' ``LazyAdam``,
        stops a rare column's row when its batches stop)."""
        # the rates depend on the row through ``last`` alone: computed once a value
        # (a whole table's rows share a few thousand), then spread to the rows
        last, spread = tf.unique(last)
        skipped = done - last  # (values,)
        j = tf.range(1, _CATCH_UP + 1, dtype=tf.float32)
        ratio = np.float32(0.9 / np.sqrt(0.999))
        at = last[:, None] + j[None, :]
        within = at <= done
        factors = tf.where(within, self._factor_at(at, total), 0.0)
        moves = tf.where(within, ratio ** j * factors * _bias(at), 0.0)  # (rows, _CATCH_UP)
        beyond = tf.maximum(skipped - _CATCH_UP, 0.0)
        first = tf.minimum(last + (_CATCH_UP + 1), tf.maximum(done, 1.0))
        tail = (ratio ** (_CATCH_UP + 1) * (1.0 - ratio ** beyond) / (1.0 - ratio)
                * self._factor_at(first, total) * _bias(first))
        coef = tf.reduce_sum(moves, axis=1) + tail

        def per_row(values):
            return tf.gather(values, spread)[:, None]

        step = per_row(np.float32(self.learning_rate) * coef) * m / (
            tf.sqrt(v) + np.float32(1e-7))
        if self.rows_decay is not None:
            # step j decays the weights by rows_decay x its factor, the moves of the
            # steps before it too: each move by the decays after it, taken here at
            # the moves' centre (weighted by their size; exact to first order)
            spent = tf.cumsum(factors, axis=1)  # the decays' factors up to step j
            total_spent = spent[:, -1] + beyond * self._factor_at((first + done) / 2.0, total)
            centre = (tf.reduce_sum(moves * spent, axis=1) + tail * spent[:, -1]) / tf.maximum(
                coef, np.float32(1e-30))
            keep = 1.0 - self.rows_decay[None, :]
            rows = rows * tf.pow(keep, per_row(total_spent))
            step = step * tf.pow(keep, per_row(total_spent - centre))
        rows = rows - step
        return (rows, m * per_row(tf.pow(np.float32(0.9), skipped)),
                v * per_row(tf.pow(np.float32(0.999), skipped)))

    def _factor_at(self, step, total):
        """The schedule's factor at step number ``step`` (a tensor, from 1) of
        ``total``: 1 for a constant rate."""
        factor = self._factor(None if total is None else (step - 1.0) / total)
        return tf.ones_like(step) if factor is None else factor

    def catch_up(self, done, total):
        """Bring every row of the first kernels (``lazy``) up to step ``done``
        (see :meth:`_catch_up`): before the nets are evaluated or kept."""
        rows, m, v = self._catch_up(self.rows.read_value(), self.rows_m.read_value(),
                                    self.rows_v.read_value(), self.rows_t.read_value(), done,
                                    total)
        self.rows.assign(rows)
        self.rows_m.assign(m)
        self.rows_v.assign(v)
        self.rows_t.assign(tf.fill(tf.shape(self.rows_t), done))

    def start(self):
        """Count the steps from 0 again (a new training, ``lazy``)."""
        self.rows_t.assign(tf.zeros_like(self.rows_t))

    def weights(self):
        """Per net, its list of per-layer tuples of NumPy arrays."""
        pieces = np.split(self.params.numpy(), np.cumsum(self.sizes)[:-1])
        if not self.lazy:
            return self._unflatten(pieces, np.reshape)
        kernels = np.split(self.rows.numpy(), np.cumsum(self.widths)[:-1], axis=1)
        return self._unflatten(pieces, np.reshape, kernels)


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

    def __init__(self, nets, weights, learning_rate, lazy=False):
        self.nets = nets
        self.lazy = lazy
        rates, decays = [], []
        for net in nets:
            lr, wd = net.settings
            rates.append((learning_rate if lr is None else lr, net.schedule))
            decays.append(0.0 if wd is None else wd)
        self.groups = []
        for rate, schedule in dict.fromkeys(rates):
            members = [k for k, r in enumerate(rates) if r == (rate, schedule)]
            self.groups.append(_Group(members, [nets[k] for k in members],
                                      [weights[k] for k in members], rate,
                                      [decays[k] for k in members], schedule, lazy))
        self._moving_layout()

    def _moving_layout(self):
        """``moving`` and ``moving_pairs``: per group, None or the matching
        positions of its statistics pieces and of ``moving`` (index columns
        for ``gather_nd`` and ``scatter_nd_update``)."""
        bn_layers = [[i for i, bn in enumerate(net.bn) if bn] for net in self.nets]
        where, at = {}, 0  # (net, layer) -> (mean start, variance start) in moving
        for r in range(max(map(len, bn_layers), default=0)):
            having = [k for k, layers in enumerate(bn_layers) if len(layers) > r]
            for group in bn_groups(self.nets, having):  # as forward_passes makes its rounds
                members = [(k, bn_layers[k][r]) for k in group]
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

    def split(self, touched=None):
        """Per net (in population order), its per-layer tensor tuples
        (``touched``: a lazy step's rows per group, :meth:`touch`)."""
        if touched is None:
            touched = [None] * len(self.groups)
        return self._per_net([g.split(t) for g, t in zip(self.groups, touched)])

    def touch(self, cols, step, total):
        """Per group, the rows of ``cols`` that lazy step ``step`` of
        ``total`` reads, caught up (see :meth:`_Group.touch`)."""
        return [g.touch(cols, step, total) for g in self.groups]

    def apply(self, grads, rounds, b1p, b2p, progress=None, touched=None):
        """One optimiser step of every net (``grads`` in population order) and
        of the moving statistics (the step's batch-normalisation ``rounds``);
        ``progress``: the fraction of the training's steps taken (schedules);
        ``touched``: a lazy step's rows per group (:meth:`touch`)."""
        if touched is None:
            touched = [None] * len(self.groups)
        for g, t in zip(self.groups, touched):
            g.apply([grads[k] for k in g.index], b1p, b2p, progress, t)
        self.update_moving(rounds)

    def start(self):
        """A new training begins: its lazy steps count from 0 (``lazy``)."""
        for g in self.groups:
            g.start()

    def catch_up(self, done, total):
        """Every group's rows brought up to step ``done`` of ``total``
        (``lazy``; see :meth:`_Group.catch_up`)."""
        for g in self.groups:
            g.catch_up(done, total)

    def keep_best(self, improved):
        """Copy the weights of the nets whose ``improved`` is True to their best copy."""
        for g in self.groups:
            g.keep_best(improved)

    def restore_best(self):
        for g in self.groups:
            g.restore_best()

    def weights(self):
        """Per net (in population order), its per-layer tuples of NumPy arrays."""
        return self._per_net([g.weights() for g in self.groups])


class PopulationTrainer:
    """Train a population of candidates together in one compiled graph.

    Every candidate gets its own weights and its own Adam state; the
    population sees the same shuffled mini-batches (``batch_size`` rows, the
    last one partial, as in ``model.fit``) and one step per batch updates all
    of them, with the loop over epochs and batches compiled into the graph.
    Forward and backward passes are written out by hand with fused kernels
    (``MatMul``, ``BiasAdd``, ``ReluGrad``..., each net's loss gradient
    from its own logits alone, batch normalisation of all nets' layers
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
    n_iter_no_change : int, default=1
        Patience of ``early_stopping``, in epochs.
    sparse_product : bool, default=True
        With sparse rows, multiply each mini-batch in the first layer with
        TensorFlow's sparse-dense product; ``False`` densifies each
        mini-batch first (``benchmarks/bench_sparse.py`` compares the two).
    lazy_adam : bool or 'auto', default=False
        With sparse rows (and ``sparse_product``), update only the rows of
        the first layer's kernel whose input columns the mini-batch
        touches, with their Adam moments (and weight decay), as TensorFlow
        Addons' ``LazyAdam`` does; but first each such row catches up the
        steps it missed, which Adam would have taken on its momentum alone
        (and every row does at each epoch's end), so the weights are Adam's
        up to rounding. A step then costs in proportion to the batch's
        columns, not the table's. The other elements, and every element with
        dense rows, take Adam's usual step. ``'auto'`` (what the estimators
        use) takes lazy steps only where a mini-batch touches at most
        :data:`LAZY_MAX_SHARE` of the columns on average
        (:func:`batch_column_share`); above it, catching up each touched row
        costs more than Adam's step on every row.
    max_population_bytes : int, default=2**28
        Graph memory one population may take (about :data:`BYTES_PER_PARAM`
        bytes per trainable parameter). Candidates that would exceed it
        together train in successive populations, with the same results: a
        candidate trains identically in any population. Only wide inputs
        reach it (a 512-unit first layer on 20,000 columns holds 10 million
        parameters).
    val_losses : bool, default=False
        Also record each candidate's validation log loss after every epoch
        (:class:`CandidateResult`'s ``val_losses``: the weighted mean over
        the validation rows of the cross-entropy of its predictions, without
        label smoothing; a regressor's: its mean squared error on the
        standardised targets), which a search may reward instead of the
        accuracy (see ``BaseMLPNAS._reward_score``).

    Attributes
    ----------
    last_timings_ : dict
        Seconds spent by the last call of :meth:`train` building variables
        (``setup``), tracing the graph (``trace``) and running it (``run``).
    """

    def __init__(self, epochs=10, batch_size=32, learning_rate=0.01, early_stopping=False,
                 n_iter_no_change=1, sparse_product=True, lazy_adam=False,
                 max_population_bytes=2**28, val_losses=False):
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.n_iter_no_change = n_iter_no_change
        self.sparse_product = sparse_product
        self.lazy_adam = lazy_adam
        self.max_population_bytes = max_population_bytes
        self.val_losses = val_losses

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
            lazy = self._lazy(data)  # (a pass over the stored values with 'auto')
            key = self._graph_key(candidates, data, seed, val_outputs, lazy) + (
                _fold_inputs(row_weights),)
            pop, fn = _GRAPHS.take(key)
            if pop is None:
                nets = [_Net(layers, data.n_features, data.head, s, data.input_stats)
                        for layers, _, s in candidates]
                pop = _Population(nets, [w for _, w, _ in candidates], self.learning_rate,
                                  lazy=lazy)
            else:
                pop.reset([w for _, w, _ in candidates])
            scores, losses, bad, best_epoch, stop_epoch, outputs, fn = self._run(
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
            val_losses = losses[:int(stop_epoch[k]), k].tolist() if self.val_losses else []
            if bad[k]:
                results.append(_failed(_NAN_MESSAGE, val_scores=val_scores, fit_time=elapsed))
            elif not _all_finite(weights[k]):  # e.g. the last Adam step overflowed
                results.append(_failed(_NONFINITE_WEIGHTS_MESSAGE, val_scores=val_scores,
                                       fit_time=elapsed))
            else:
                results.append(CandidateResult(
                    val_scores=val_scores, val_losses=val_losses, weights=weights[k],
                    fit_time=elapsed,
                    best_epoch=int(best_epoch[k]), val_outputs=outputs[k] if val_outputs else None))
        return results

    def _lazy(self, data):
        """Whether the population takes lazy Adam steps on ``data``'s rows."""
        if not (self.lazy_adam and self.sparse_product and sp.issparse(data.X)):
            return False
        if isinstance(self.lazy_adam, str) and self.lazy_adam == "auto":
            return batch_column_share(data.X, self.batch_size) <= LAZY_MAX_SHARE
        return True

    def _graph_key(self, candidates, data, seed, val_outputs, lazy):
        """What a population's traced graph depends on besides its inputs'
        shapes: the nets (layers, seeds, input width, head), the population
        seed, the trainer's settings and whether it takes lazy steps. The
        initial weights are not in it: a cached population is reset to them."""
        nets = tuple((repr(layers), int(s) % (2**31 - 1)) for layers, _, s in candidates)
        stats = (None if not data.input_stats else
                 hash(b"".join(name.encode() + np.asarray(a, np.float32).tobytes()
                               for name, pair in sorted(data.input_stats.items()) for a in pair)))
        return (nets, data.n_features, repr(data.head), stats, int(seed) % (2**31 - 1),
                bool(val_outputs), self.epochs, self.batch_size, float(self.learning_rate),
                bool(self.early_stopping), self.n_iter_no_change, bool(self.sparse_product),
                lazy, bool(self.val_losses))

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
        with _quiet_retracing(), one_trace():
            graph_fn = fn.get_concrete_function(*args)  # traced once per input signature
        t2 = time.perf_counter()
        with plain_graphs():
            scores, losses, bad, best_epoch, stop_epoch, outputs = (t.numpy()
                                                                    for t in graph_fn(*args))
        self.last_timings_ = {"setup": t1 - t0, "trace": t2 - t1, "run": time.perf_counter() - t2}
        return scores, losses, bad, best_epoch, stop_epoch, outputs, fn

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
        record_losses = bool(self.val_losses)
        if patience is not None:
            pop.make_best()  # the best-weights copies are made outside the graph

        def loop(X, y, w, Xv, yv, wv, ws=None, shift=None, scale=None):
            target = None if shift is None else (shift, scale)
            source = _RowSource(X, densify=not self.sparse_product, lazy=pop.lazy)
            n = tf.shape(y)[0]
            steps = (n + bs - 1) // bs
            inf = tf.fill([n_nets], np.float32(np.inf))
            state = (tf.constant(0), tf.constant(1.0), tf.constant(1.0),
                     tf.zeros([n_nets], tf.bool), tf.TensorArray(tf.float32, size=epochs),
                     tf.TensorArray(tf.float32, size=epochs if record_losses else 0), inf,
                     tf.fill([n_nets], epochs if patience is None else 0),
                     tf.fill([n_nets], epochs),
                     tf.zeros([n_nets], tf.int32))

            def epoch_body(epoch, b1p, b2p, bad, scores, losses, best_loss, best_epoch, stop_epoch,
                           wait):
                perm = tf.argsort(tf.random.stateless_uniform([n], seed=tf.stack([seed, epoch])))
                rows = (source.permuted(perm), tf.gather(y, perm), tf.gather(w, perm, axis=-1))
                step_fn = self._make_step(pop, rows, n, epoch * steps, target, epochs * steps)
                _, b1p, b2p, bad = tf.while_loop(lambda s, *_: s < steps, step_fn,
                                                 (tf.constant(0), b1p, b2p, bad))
                if pop.lazy:
                    pop.catch_up(tf.cast((epoch + 1) * steps, tf.float32),
                                 tf.cast(epochs * steps, tf.float32))
                pop.store_moving()
                epoch_scores, val_loss, plain_loss = self._val_metrics(
                    pop, Xv, yv, wv, patience is not None, ws, target, record_losses)
                scores = scores.write(epoch, epoch_scores)
                if record_losses:
                    losses = losses.write(epoch, plain_loss)
                if patience is not None:
                    running = wait < patience
                    improved = running & (val_loss < best_loss - 1e-4)
                    pop.keep_best(improved)
                    best_loss = tf.where(improved, val_loss, best_loss)
                    best_epoch = tf.where(improved, epoch + 1, best_epoch)
                    wait = tf.where(improved, 0, tf.where(running, wait + 1, wait))
                    stop_epoch = tf.where(running & (wait >= patience), epoch + 1, stop_epoch)
                return (epoch + 1, b1p, b2p, bad, scores, losses, best_loss, best_epoch,
                        stop_epoch, wait)

            def more(epoch, *rest):
                if patience is None:
                    return epoch < epochs
                return (epoch < epochs) & tf.reduce_any(rest[-1] < patience)

            pop.load_moving()
            if pop.lazy:
                pop.start()
            epoch, _, _, bad, scores, losses, _, best_epoch, stop_epoch, _ = tf.while_loop(
                more, epoch_body, state)
            if patience is not None:
                pop.restore_best()
                stop_epoch = tf.minimum(stop_epoch, epoch)
            outputs = tf.zeros([0])
            if val_outputs:
                passes = forward_passes(pop.nets, pop.split(), Xv)
                outputs = tf.stack([_output(net.head, net.combine(z))
                                    for net, (z, _) in zip(pop.nets, passes)])
            losses = losses.stack()[:epoch] if record_losses else tf.zeros([0, n_nets])
            return scores.stack()[:epoch], losses, bad, best_epoch, stop_epoch, outputs

        return loop

    def _make_step(self, pop, rows, n, first_step, target=None, total_steps=None):
        """Body of the mini-batch loop: one Adam step of every net
        (``target``: per net ``(shift, scale)`` of a regression target;
        ``total_steps``: the training's planned steps, which schedules span)."""
        bs = self.batch_size
        nets = pop.nets

        def step(s, b1p, b2p, bad):
            lo = s * bs
            hi = tf.minimum(lo + bs, n)
            xb, yb, wb = rows[0](lo, hi), rows[1][lo:hi], rows[2][..., lo:hi]
            scale = wb / tf.cast(hi - lo, tf.float32)
            progress = (None if total_steps is None else
                        tf.cast(first_step + s, tf.float32) / tf.cast(total_steps, tf.float32))
            touched = None
            if isinstance(xb, _TouchedRows):  # a lazy step: its rows catch up first
                touched = pop.touch(xb.cols, tf.cast(first_step + s + 1, tf.float32),
                                    tf.cast(total_steps, tf.float32))
            params = pop.split(touched)
            rounds = []
            # each net its own rows (cross-validation folds): its batch statistics
            # leave out the rows it does not train on
            masks = (None if wb.shape.rank == 1 or not any(any(net.bn) for net in nets)
                     else tf.unstack(tf.cast(wb > 0, tf.float32), num=len(nets)))
            passes = forward_passes(nets, params, xb, first_step + s, rounds, masks)
            not_finite, dlogits = _loss_and_grads(
                [f[0] for f in passes], yb, scale, nets[0].head, target,
                [net.label_smoothing for net in nets], [net.members for net in nets],
                need_losses=False)
            grads = backward_passes(nets, params, [tape for _, tape in passes], dlogits)
            b1p, b2p = b1p * 0.9, b2p * 0.999
            pop.apply(grads, rounds, b1p, b2p, progress, touched)
            bad = tf.logical_or(bad, not_finite)
            return s + 1, b1p, b2p, bad

        return step

    @staticmethod
    def _val_metrics(pop, Xv, yv, wv, with_loss, ws=None, target=None, plain=False):
        """Each net's validation score (weighted accuracy or mean R^2); if
        ``with_loss``, its weighted mean validation loss (with the weights
        ``ws`` instead of ``wv`` when given: the rows early stopping
        watches); if ``plain``, its weighted mean validation loss on ``wv``
        without label smoothing (what ``val_losses`` records). ``wv`` and
        ``ws`` are shared ``(n_val,)`` or per net ``(n_nets, n_val)``. An
        R^2 whose rows' target does not vary is NaN. Returns ``(scores,
        losses or None, plain losses or None)``."""
        head = pop.nets[0].head
        scores, losses, plains, sums = [], [], [], {}

        def weight_sum(weights, shared):
            """``max(sum(weights), 1e-12)``, made once for weights the nets share."""
            if not shared:
                return tf.maximum(tf.reduce_sum(weights), 1e-12)
            if shared not in sums:
                sums[shared] = tf.maximum(tf.reduce_sum(weights), 1e-12)
            return sums[shared]

        y_all = yv
        params = pop.split()
        # inference-mode logits of every net, each input transform of Xv computed once
        logits = [z for z, _ in forward_passes(pop.nets, params, Xv)]
        for k, (net, p, z) in enumerate(zip(pop.nets, params, logits)):
            w = wv if wv.shape.rank == 1 else wv[k]
            w_sum = weight_sum(w, "wv" if wv.shape.rank == 1 else None)
            yv = y_all if target is None else (y_all - target[0][k]) / target[1][k]
            if head.is_regression:
                mean = tf.reduce_sum(w[:, None] * yv, axis=0) / w_sum
                total = tf.reduce_sum(w[:, None] * tf.square(yv - mean), axis=0)
                # no R^2 from a target that does not vary (one row, or equal values)
                total = tf.where(total > 1e-12, total, np.float32(np.nan))
            else:
                total = w_sum
            scores.append(net.score(p, Xv, yv, w, total, z))
            if with_loss:
                if ws is None:
                    w_loss, w_loss_sum = w, w_sum
                else:
                    w_loss = ws if ws.shape.rank == 1 else ws[k]
                    w_loss_sum = weight_sum(w_loss, "ws" if ws.shape.rank == 1 else None)
                loss = _loss_and_grads([z], yv, w_loss, head, smoothing=[net.label_smoothing],
                                       members=[net.members])[0][0]
                losses.append(loss / w_loss_sum)
            if plain:  # the loss of the net's prediction (a net of members: their mean's)
                if with_loss and ws is None and not net.label_smoothing and net.members == 1:
                    plains.append(losses[-1])  # the same number
                else:
                    loss = _loss_and_grads([net.combine(z)], yv, w, head)[0][0]
                    plains.append(loss / w_sum)
        return (tf.stack(scores), tf.stack(losses) if with_loss else None,
                tf.stack(plains) if plain else None)
