"""The Keras reference trainer: one ``keras.Sequential`` and ``model.fit`` per candidate.

:class:`KerasTrainer` trains each candidate with the plain Keras loop, kept
as a reference for :class:`~sknas._population.PopulationTrainer` and for
users who want it; :func:`build_keras_model`, :func:`keras_weights`
and :func:`keras_optimizer` build the Keras model (and its optimiser) of a
candidate, which also serves every fitted model.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from ._data import (_NAN_MESSAGE, _NONFINITE_WEIGHTS_MESSAGE, BN_EPSILON, BN_MOMENTUM,
                    PBLD_FREQUENCIES, PBLD_WIDTH, PLE_BINS, PLR_FREQUENCIES, PLR_LR_FACTOR,
                    PLR_WIDTH, SCALE_LR_FACTOR, CandidateResult, FoldRows, Head, _all_finite,
                    _failed, _message, dense_batches, dense_shapes, embedding_shapes,
                    transform_stats)
from ._space import candidate_settings, has_adapters, n_members, optimizer_settings

__all__ = ["KerasTrainer", "build_keras_model", "keras_optimizer", "keras_weights"]

#: the ``EinsumDense`` equation of the members' input adapters (their output
#: layers are the other ``EinsumDense`` of a model)
_ADAPTERS = "bkd,kd->bkd"
#: the ``EinsumDense`` equation of learned input scaling (one vector, a net of one member)
_SCALE = "bd,d->bd"
#: the ``EinsumDense`` equations of the embeddings: each feature times its
#: frequencies (``'pbld'``: plus its phases, the layer's bias), then the linear
#: layer that the features share (``'plr'``) or each feature's own (``'pbld'``)
_FREQUENCIES = "bn,nf->bnf"
_EMBED = "bnc,cd->bnd"
_EMBED_EACH = "bnf,nfd->bnd"
_EMBEDDINGS = (_FREQUENCIES, _EMBED, _EMBED_EACH)


def build_keras_model(layers, n_features, head, weights=None, seed=None, input_stats=None,
                      sparse=False, each_member=False):
    """A ``keras.Sequential`` MLP for ``layers`` plus the output layer.

    A dense layer with batch normalisation is ``Dense(units)``,
    ``BatchNormalization()``, ``Activation(activation)``; an ``'optimizer'``
    entry builds nothing (the optimiser is :func:`keras_optimizer`'s), but
    its input transform, in built-in layers only (a file loads with
    ``safe_mode=True``): ``'robust'`` as ``Normalization(mean, variance)``
    of ``input_stats``, ``Rescaling(1/3)``, ``Activation('tanh')``,
    ``Rescaling(3)``; ``'ple'`` as ``RepeatVector``, ``Permute`` and
    ``Reshape`` (each feature ``PLE_BINS`` times in a row),
    ``Normalization`` (into its bins), ``Rescaling(6)``,
    ``Activation('relu6')``, ``Rescaling(1/6)`` (clipped to ``[0, 1]``);
    ``'plr'`` as ``'robust'``, then ``EinsumDense('bn,nf->bnf')`` (each
    feature times its frequencies), ``keras.ops.cos`` and ``keras.ops.sin``
    joined by ``Concatenate``, ``EinsumDense('bnc,cd->bnd')`` (the linear
    layer the features share), ``Activation('relu')`` and ``Reshape``, each
    ``EinsumDense`` followed by ``Rescaling(PLR_LR_FACTOR)``: Keras operations
    in a functional model, which ``safe_mode=True`` loads as it loads
    layers (the model is then a ``keras.Model``, not a ``Sequential``).
    ``'pbld'`` likewise: ``'robust'``, then ``EinsumDense('bn,nf->bnf')``
    with a bias (the phases), ``keras.ops.cos``,
    ``EinsumDense('bnf,nfd->bnd')`` (each feature's own linear layer) and
    ``Reshape``, the two ``EinsumDense`` followed by
    ``Rescaling(PLR_LR_FACTOR)``, and a ``Concatenate`` that sets the
    robust, clipped features beside their embedding.

    ``k > 1`` members (``SearchSpace``'s ``members``, TabM-mini) are built
    in built-in layers too: ``RepeatVector(k)`` after the input transform
    (rows become ``(k, features)``), ``EinsumDense('bkd,kd->bkd')`` (each
    member's input adapter), the hidden layers (on the last axis, shared by
    the members), ``EinsumDense('bkh,khc->bkc')`` with the output
    activation (each member's output layer), then
    ``GlobalAveragePooling1D`` (the members' mean prediction). Learned input
    scaling (``input_scaling``) is ``EinsumDense('bd,d->bd')`` after the
    input transform, then ``Rescaling(SCALE_LR_FACTOR)``: the scale of each
    feature is the kernel times that factor (so Adam moves it that many
    times faster).

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
    input_stats : dict, optional
        Per input transform, its ``(shift, variance)`` arrays (see
        :class:`~sknas._data.CandidateData`).
    sparse : bool, default=False
        A sparse input (``keras.Input(sparse=True)``): the first ``Dense``
        layer multiplies sparse rows as they are (dense rows are converted).
    each_member : bool, default=False
        With ``k > 1`` members, leave out the mean: the model outputs each
        member's prediction, ``(rows, k, outputs)``, which the members'
        training loss takes.
    """
    import keras
    stack = []  # the layers in order, and the embedding's operations (see _PERIODIC)
    transform = candidate_settings(layers)["input"] or "none"
    if transform != "none":
        shift, variance = transform_stats(input_stats, transform)
        if transform == "ple":
            stack.append(keras.layers.RepeatVector(PLE_BINS))
            stack.append(keras.layers.Permute((2, 1)))
            stack.append(keras.layers.Reshape((n_features * PLE_BINS,)))
        stack.append(keras.layers.Normalization(mean=shift, variance=variance))
        if transform == "ple":
            stack.append(keras.layers.Rescaling(6.0))
            stack.append(keras.layers.Activation("relu6"))
            stack.append(keras.layers.Rescaling(1 / 6))
        else:
            stack.append(keras.layers.Rescaling(1 / 3))
            stack.append(keras.layers.Activation("tanh"))
            stack.append(keras.layers.Rescaling(3.0))
    embedding = []
    if transform == "plr":
        embedding = [keras.layers.EinsumDense(_FREQUENCIES, output_shape=(n_features,
                                                                           PLR_FREQUENCIES)),
                     keras.layers.EinsumDense(_EMBED, output_shape=(n_features, PLR_WIDTH),
                                              bias_axes="d")]
        # each EinsumDense holds its arrays divided by PLR_LR_FACTOR (see there)
        stack.extend([embedding[0], keras.layers.Rescaling(PLR_LR_FACTOR), _PERIODIC,
                      embedding[1], keras.layers.Rescaling(PLR_LR_FACTOR),
                      keras.layers.Activation("relu"),
                      keras.layers.Reshape((n_features * PLR_WIDTH,))])
    elif transform == "pbld":
        embedding = [keras.layers.EinsumDense(_FREQUENCIES, bias_axes="nf",
                                              output_shape=(n_features, PBLD_FREQUENCIES)),
                     keras.layers.EinsumDense(_EMBED_EACH, output_shape=(n_features, PBLD_WIDTH),
                                              bias_axes="nd")]
        stack.extend([_KEEP, embedding[0], keras.layers.Rescaling(PLR_LR_FACTOR), _COSINE,
                      embedding[1], keras.layers.Rescaling(PLR_LR_FACTOR),
                      keras.layers.Reshape((n_features * PBLD_WIDTH,)), _JOIN])
    k = n_members(layers)
    adapter = None
    if has_adapters(layers):
        width = dense_shapes(layers, n_features, 1)[0][0]
        if k > 1:
            stack.append(keras.layers.RepeatVector(k))
            adapter = keras.layers.EinsumDense(_ADAPTERS, output_shape=(k, width))
            stack.append(adapter)
        else:  # the scale, stored divided by SCALE_LR_FACTOR (see there)
            adapter = keras.layers.EinsumDense(_SCALE, output_shape=(width,))
            stack.append(adapter)
            stack.append(keras.layers.Rescaling(SCALE_LR_FACTOR))
    pairs = []  # (Dense, BatchNormalization or None) per dense layer
    for j, layer in enumerate(layers):
        if layer["type"] == "dense":
            if layer.get("batch_norm"):
                dense = keras.layers.Dense(layer["units"])
                norm = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
                stack.append(dense)
                stack.append(norm)
                stack.append(keras.layers.Activation(layer["activation"]))
                pairs.append((dense, norm))
            else:
                pairs.append((keras.layers.Dense(layer["units"], activation=layer["activation"]),
                               None))
                stack.append(pairs[-1][0])
        elif layer["type"] == "dropout":
            stack.append(keras.layers.Dropout(layer["rate"],
                                              seed=None if seed is None else seed + j))
    head = Head.of(head)
    activation = {"binary": "sigmoid", "softmax": "softmax", "linear": None}[head.kind]
    if k > 1:
        pairs.append((keras.layers.EinsumDense("bkh,khc->bkc", output_shape=(k, head.n_outputs),
                                               bias_axes="kc", activation=activation), None))
    else:
        pairs.append((keras.layers.Dense(head.n_outputs, activation=activation), None))
    stack.append(pairs[-1][0])
    if k > 1 and not each_member:
        stack.append(keras.layers.GlobalAveragePooling1D())
    inputs = keras.Input((n_features,), sparse=sparse)
    if embedding:  # a functional model: the sines and cosines are Keras operations
        model = keras.Model(inputs, _functional(stack, inputs))
    else:
        model = keras.Sequential([inputs] + stack)
    if weights is not None and embedding:  # the embedding's arrays end the output layer's
        shapes = embedding_shapes(layers, n_features)
        arrays = [np.reshape(a, shape) for a, shape in zip(weights[-1][-len(shapes):], shapes)]
        first = len(embedding[0].weights)
        embedding[0].set_weights(arrays[:first])
        embedding[1].set_weights(arrays[first:])
        weights = list(weights[:-1]) + [weights[-1][:-len(shapes)]]
    if weights is not None:
        for (dense, norm), arrays in zip(pairs, weights):
            if dense is pairs[-1][0] and k > 1:  # (width, k * outputs) -> (k, width, outputs)
                kernel, bias, adapters = arrays
                dense.set_weights([kernel.reshape(kernel.shape[0], k, -1).transpose(1, 0, 2),
                                   bias.reshape(k, -1)])
                adapter.set_weights([adapters.reshape(k, -1)])
                continue
            if dense is pairs[-1][0] and adapter is not None:  # the input scale
                adapter.set_weights([arrays[2]])
            dense.set_weights(list(arrays[:2]))
            if norm is not None:
                norm.set_weights(list(arrays[2:6]))
    return model


#: the embeddings' steps in :func:`build_keras_model`'s stack that are not layers:
#: the cosines and sines of the input, joined (``'plr'``); its cosines (``'pbld'``);
#: keep the input, and join it after the output (``'pbld'``)
_PERIODIC, _COSINE, _KEEP, _JOIN = object(), object(), object(), object()


def _functional(stack, inputs):
    """The output of a functional model of the layers and steps of ``stack``."""
    import keras
    x, kept = inputs, None
    for item in stack:
        if item is _PERIODIC:
            x = keras.layers.Concatenate()([keras.ops.cos(x), keras.ops.sin(x)])
        elif item is _COSINE:
            x = keras.ops.cos(x)
        elif item is _KEEP:
            kept = x
        elif item is _JOIN:
            x = keras.layers.Concatenate()([x, kept])
        else:
            x = item(x)
    return x


def keras_weights(model):
    """Per dense layer of a model made by :func:`build_keras_model`, its
    weights as that function takes them (members' output layers as one,
    ``(kernel, bias, adapters)``; the input scale after the output layer's
    kernel and bias, and the embedding's arrays last)."""
    import keras
    out, adapters, scale, embedding = [], None, (), ()
    for lyr in model.layers:
        if isinstance(lyr, keras.layers.EinsumDense) and lyr.equation == _SCALE:
            scale = (lyr.get_weights()[0],)
        elif isinstance(lyr, keras.layers.EinsumDense) and lyr.equation in _EMBEDDINGS:
            embedding += tuple(lyr.get_weights())
        elif isinstance(lyr, keras.layers.Dense):
            out.append(tuple(lyr.get_weights()))
        elif isinstance(lyr, keras.layers.BatchNormalization):
            out[-1] = out[-1] + tuple(lyr.get_weights())
        elif isinstance(lyr, keras.layers.EinsumDense) and lyr.equation == _ADAPTERS:
            adapters = lyr.get_weights()[0].ravel()
        elif isinstance(lyr, keras.layers.EinsumDense):
            kernel, bias = lyr.get_weights()
            out.append((kernel.transpose(1, 0, 2).reshape(kernel.shape[1], -1), bias.ravel(),
                        adapters))
    out[-1] = out[-1] + scale + embedding
    return out


def keras_optimizer(layers, learning_rate, total_steps=None, model=None):
    """The Keras Adam a candidate trains with: its own learning rate and
    weight decay (on the kernels only: not on the members' input adapters,
    the input scale nor the embedding of ``model``) if its ``'optimizer'`` entry has them, else
    ``learning_rate`` and no decay; its own schedule over ``total_steps``
    steps, if it has one."""
    import keras
    lr, wd = optimizer_settings(layers)
    lr = learning_rate if lr is None else lr
    schedule = candidate_settings(layers)["schedule"] or "constant"
    if schedule != "constant" and total_steps:
        lr = _Schedule(lr, schedule, total_steps)
    optimizer = keras.optimizers.Adam(lr, weight_decay=wd if wd else None)
    if wd:
        adapters = [] if model is None else [
            lyr.kernel for lyr in model.layers
            if isinstance(lyr, keras.layers.EinsumDense)
            and lyr.equation in (_ADAPTERS, _SCALE) + _EMBEDDINGS]
        optimizer.exclude_from_weight_decay(var_list=adapters or None,
                                            var_names=["bias", "gamma", "beta"])
    return optimizer


class KerasTrainer:
    """Train each candidate with a plain ``model.fit`` (the tutorial's way).

    Parameters are those of :class:`PopulationTrainer`.
    """

    def __init__(self, epochs=10, batch_size=32, learning_rate=0.01, early_stopping=False,
                 n_iter_no_change=1):
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
            k = n_members(layers)
            # k > 1 members: trained on each member's loss (their mean), scored on
            # their mean prediction (the served model)
            model = build_keras_model(layers, data.n_features, head, weights, seed,
                                      data.input_stats, each_member=k > 1)
            served = model if k == 1 else build_keras_model(
                layers, data.n_features, head, None, seed, data.input_stats)
            loss = _keras_loss(head, candidate_settings(layers)["label_smoothing"])
            metric = (keras.metrics.R2Score(name="score") if head.is_regression
                      else keras.metrics.SparseCategoricalAccuracy(name="score")
                      if head.kind == "softmax" else keras.metrics.BinaryAccuracy(name="score"))
            steps = self.epochs * -(-data.X.shape[0] // self.batch_size)
            model.compile(optimizer=keras_optimizer(layers, self.learning_rate, steps, model),
                          loss=loss, weighted_metrics=[metric])
            has_val = len(data.y_val) > 0
            rows = FoldRows.of(row_weights)
            w, w_val, w_stop = rows.w, rows.w_val, rows.w_stop
            y_fit, y_val = data.y, data.y_val
            if rows.target is not None:
                y_fit = ((y_fit - rows.target[0]) / rows.target[1]).astype(np.float32)
                y_val = ((y_val - rows.target[0]) / rows.target[1]).astype(np.float32)
            y_score, w_score = y_val, w_val
            if k > 1:  # every member's target and row weight
                y_fit, y_val = (np.repeat(np.expand_dims(a, 1), k, axis=1) for a in (y_fit, y_val))
                if head.kind == "binary":  # as the outputs, (rows, k, 1)
                    y_fit, y_val = y_fit[..., None], y_val[..., None]
                w, w_val = (np.repeat(a[:, None], k, axis=1) for a in (w, w_val))
                w_stop = None if w_stop is None else np.repeat(w_stop[:, None], k, axis=1)
            callbacks = []
            if self.early_stopping and has_val:
                callbacks.append(keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=self.n_iter_no_change, min_delta=1e-4,
                    restore_best_weights=True))
            scored = None
            if (w_stop is not None or k > 1) and has_val:  # watch w_stop's rows, score w_val's
                scored = _epoch_scores(data.X_val, y_score, w_score, type(metric)(name="score"),
                                       None if k == 1 else served)
                callbacks.insert(0, scored)
                w_val = w_val if w_stop is None else w_stop
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
        if k > 1:
            served.set_weights(model.get_weights())
        if val_outputs:
            outputs = np.concatenate(
                [np.asarray(served(b, training=False), np.float32)
                 for b in dense_batches(data.X_val)] or [np.zeros((0, head.n_outputs), np.float32)])
        return CandidateResult(val_scores=val_scores, weights=weights, fit_time=fit_time,
                               best_epoch=best_epoch, val_outputs=outputs)


def _Schedule(learning_rate, name, total_steps):
    """A Keras learning-rate schedule: ``learning_rate`` times the schedule
    ``name``'s factor at the fraction of ``total_steps`` taken (the
    population graph's :func:`~sknas._nets.schedule_factor`)."""
    import keras

    from ._nets import schedule_factor

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            t = tf.minimum(tf.cast(step, tf.float32) / np.float32(total_steps), 1.0)
            return np.float32(learning_rate) * schedule_factor(name, t)

        def get_config(self):
            return {"learning_rate": learning_rate, "name": name, "total_steps": total_steps}

    return Schedule()


def _keras_loss(head, label_smoothing=None):
    """The Keras loss a candidate trains with (its label smoothing, if any)."""
    import keras
    if not label_smoothing or head.is_regression:
        return {"binary": "binary_crossentropy", "softmax": "sparse_categorical_crossentropy",
                "linear": "mean_squared_error"}[head.kind]
    if head.kind == "binary":
        return keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    n = head.n_outputs

    def smoothed(y_true, y_pred):  # Keras' label smoothing needs one-hot targets
        onehot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), n)
        onehot = keras.ops.reshape(onehot, keras.ops.shape(y_pred))  # members: (rows, k, n)
        return keras.losses.categorical_crossentropy(onehot, y_pred,
                                                     label_smoothing=label_smoothing)

    return smoothed


def _epoch_scores(X, y, w, metric, served=None):
    """A Keras callback whose ``scores`` record the weighted ``metric`` of
    every epoch on rows other than ``validation_data``'s (see
    :meth:`KerasTrainer.train`'s ``w_stop``), or of ``served``, a model of
    the same weights as the trained one (the members' mean prediction)."""
    import keras

    class EpochScores(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.scores = []

        def on_epoch_end(self, epoch, logs=None):
            model = self.model
            if served is not None:
                served.set_weights(model.get_weights())
                model = served
            metric.reset_state()
            lo = 0
            for block in dense_batches(X):
                hi = lo + len(block)
                metric.update_state(y[lo:hi], model(block, training=False),
                                    sample_weight=w[lo:hi])
                lo = hi
            self.scores.append(float(metric.result()))

    return EpochScores()
