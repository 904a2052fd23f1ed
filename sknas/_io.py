"""Pickle-free shipping of a fitted search's served model: ``save_model`` / ``load_model``.

A saved model is a folder with two plain files:

* ``model.keras``: the served Keras model (a classifier's gives probabilities:
  one sigmoid unit for two classes, a softmax otherwise; a regressor's gives
  the targets in their original units);
* ``sknas_model.json``: format version, sknas version, the task, classes with
  their dtype (``null`` for a regressor) or the targets' summary, feature
  names, number of features, the winner's architecture (readable and machine
  form) and score, what ``model.keras`` serves (``served``, ``refit``,
  ``n_networks`` and ``members``: see :func:`served_description`) and the
  estimator's parameters.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ._jsonsafe import json_safe
from ._runlog import (RunFormatError, decode_classes, encode_classes, load_keras, read_json,
                      save_keras_atomic, target_summary, task_of, write_json_atomic)

__all__ = ["SavedModel", "keras_predict", "keras_proba", "load_model", "save_model",
           "served_description"]

MODEL_FORMAT = "sknas-model"
MODEL_FORMAT_VERSION = 1
_META = "sknas_model.json"
_KERAS = "model.keras"


def served_description(estimator):
    """What a fitted estimator's ``model_`` serves, as JSON-safe values.

    Read from the fitted attributes ``ensemble_weights_``, ``best_index_``,
    ``refit_`` and ``search_results_``:

    ``served``
        ``'ensemble'`` when the ensemble selection's members are served
        (several finalists, or one finalist other than the winner), else
        ``'winner'``.
    ``refit``
        How each member's networks were made (``refit_``): ``'folds'``, its
        fold models from the finalists' cross-validation, averaged; ``True``,
        retrained on all the training rows; ``False``, the winner as the
        search trained it.
    ``members``
        One dict per served member, in ``search_results_`` row order:
        ``row`` (its row of ``search_results_``), ``architecture`` and
        ``layers`` (readable and machine form), ``weight`` (its share of the
        served output; 1.0 for a winner served alone) and ``n_fold_models``
        (the fold models averaged for it with ``refit='folds'``, else 0).
    ``n_networks``
        The number of networks ``model_`` averages: the members' fold models,
        or one network per member.
    """
    from ._trial import serves_ensemble
    results = estimator.search_results_
    best = int(estimator.best_index_)
    picked = getattr(estimator, "ensemble_weights_", {})
    weights = {int(row): float(weight) for row, weight in picked.items()}
    ensemble = serves_ensemble(weights, best)
    members = weights if ensemble else {best: 1.0}
    refit = getattr(estimator, "refit_", True)
    splits = [key for key in results if key.startswith("split") and key.endswith("_score")]
    described = []
    for row in sorted(members):
        # a served member's folds all trained: one finite score per fold model
        n_folds = sum(1 for key in splits if np.isfinite(results[key][row]))
        described.append({"row": row,
                          "architecture": str(results["architecture"][row]),
                          "layers": json_safe(results["layers"][row]),
                          "weight": members[row],
                          "n_fold_models": n_folds if refit == "folds" else 0})
    return {"served": "ensemble" if ensemble else "winner",
            "refit": json_safe(refit),
            "n_networks": sum(m["n_fold_models"] or 1 for m in described),
            "members": described}


def save_model(estimator, path):
    """Write a fitted estimator's served model and its metadata to the folder ``path``.

    ``sknas_model.json`` keeps the winner's ``architecture``, ``layers`` and
    ``best_score`` (the best finalist, or the best candidate without
    cross-validation, whatever is served) and
    describes the served model in ``served``, ``refit``, ``n_networks`` and
    ``members`` (see :func:`served_description`): by default an ensemble of
    the finalists, each member the average of its fold models.

    See :meth:`MLPNASClassifier.save_model` and :meth:`MLPNASRegressor.save_model`.
    """
    from sklearn.utils.validation import check_is_fitted

    from ._version import __version__
    check_is_fitted(estimator, "model_")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_keras_atomic(estimator.model_, path / _KERAS)
    meta = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
            "sknas_version": __version__,
            "task": task_of(estimator),
            "classes": encode_classes(getattr(estimator, "classes_", None)),
            "target": target_summary(estimator),
            "feature_names": json_safe(getattr(estimator, "feature_names_in_", None)),
            "n_features": int(estimator.n_features_in_),
            "architecture": estimator.best_architecture_,
            "layers": json_safe(estimator.best_layers_),
            "best_score": json_safe(estimator.best_score_),
            **served_description(estimator),
            "params": json_safe(estimator.get_params())}
    write_json_atomic(path / _META, meta)
    return path


def load_model(path):
    """Load a model written by :meth:`MLPNASClassifier.save_model`, without pickle.

    Parameters
    ----------
    path : str or path-like
        The folder given to ``save_model``.

    Returns
    -------
    model : SavedModel
        A predictor with ``predict`` and ``score`` (and, for a classifier,
        ``predict_proba`` and ``classes_``), giving the same predictions as
        the estimator, and what it serves: ``served_``, ``refit_`` and
        ``members_`` (``None`` in a folder saved before sknas recorded them).

    Raises
    ------
    RunFormatError
        If the folder is not a saved sknas model, comes from another format
        version, or its metadata was damaged.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import load_iris
    >>> from sknas import MLPNASClassifier, load_model
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPNASClassifier(controller_epochs=1, samples_per_epoch=2, epochs=2,
    ...                        random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = clf.save_model(tmp)
    ...     model = load_model(tmp)
    >>> bool((model.predict(X) == clf.predict(X)).all())
    True
    >>> model.refit_, round(sum(member["weight"] for member in model.members_), 6)
    ('folds', 1.0)
    """
    path = Path(path)
    meta = read_json(path / _META, "saved model")
    if not isinstance(meta, dict) or meta.get("format") != MODEL_FORMAT:
        raise RunFormatError(f"{path / _META} does not describe a saved sknas model")
    if meta.get("format_version") != MODEL_FORMAT_VERSION:
        raise RunFormatError(f"{path} was saved by sknas {meta.get('sknas_version')!r} in model "
                             f"format {meta.get('format_version')!r}; this sknas reads format "
                             f"{MODEL_FORMAT_VERSION} only")
    missing = {"classes", "n_features", "architecture", "layers", "params"} - set(meta)
    if meta.get("task", "classification") == "classification" and meta.get("classes") is None:
        missing.add("classes")
    if missing:
        raise RunFormatError(f"{path / _META} lacks {sorted(missing)}")
    return SavedModel(load_keras(path / _KERAS), meta)


#: model -> its compiled forward pass
_PREDICT_FNS = weakref.WeakKeyDictionary()


def _forward(model, n_features):
    """``model``'s forward pass as a compiled graph, traced at its first
    predict call, once for any number of rows. Eager calls cost about a
    millisecond per served network and call, the graph a fraction of that
    (``benchmarks/bench_predict.py``). Every call runs the graph: eager
    outputs differ from it in the last bits, and a model must give the same
    outputs at every call and after pickling."""
    import tensorflow as tf
    fn = _PREDICT_FNS.get(model)
    if fn is None:
        ref = weakref.ref(model)  # the cache must not keep the model alive
        spec = (tf.SparseTensorSpec if _sparse_input(model) else tf.TensorSpec)(
            [None, n_features], tf.float32)
        fn = tf.function(lambda batch: ref()(batch, training=False), input_signature=[spec])
        _PREDICT_FNS[model] = fn
    return fn


def _sparse_input(model):
    """Whether ``model`` takes sparse rows (``keras.Input(sparse=True)``)."""
    return bool(getattr(model.inputs[0], "sparse", False))


def _sparse_batches(X, rows=8192):
    """Blocks of ``rows`` rows of ``X`` (sparse or dense) as ``tf.SparseTensor``
    (as the population graph takes them, :func:`~sknas._nets._graph_rows`)."""
    from ._nets import _graph_rows
    X = sp.csr_matrix(X, dtype=np.float32)
    for i in range(0, X.shape[0], rows):
        yield _graph_rows(X[i:i + rows])


def keras_predict(model, X):
    """Outputs of a Keras ``model`` on float32 rows ``X``, in batches of at
    most 8192 rows, as float64 (serves the regressor and
    :class:`SavedModel`). A model of sparse input (fitted on sparse rows)
    takes its rows sparse (dense ``X`` converted); otherwise sparse ``X``
    is densified a batch at a time."""
    from ._data import _quiet_retracing, dense_batches
    if X.shape[0] == 0:
        return np.zeros((0,) + tuple(model.output_shape[1:]))
    forward = _forward(model, X.shape[1])
    batches = _sparse_batches(X) if _sparse_input(model) else dense_batches(X)
    with _quiet_retracing():  # every model traces its own graph, once: by design
        return np.concatenate([np.asarray(forward(batch), np.float64) for batch in batches])


def keras_proba(model, X, n_classes):
    """Class probabilities of a winner's Keras ``model`` on float32 rows ``X``.

    Runs the model in batches of 8192 rows; a binary model's one sigmoid
    column becomes two columns (``1 - p``, ``p``); rows are normalised to
    sum to 1. Serves :class:`MLPNASClassifier` and :class:`SavedModel` alike.
    """
    out = keras_predict(model, X)
    if n_classes == 2:
        out = np.hstack([1.0 - out, out])
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-300)


class SavedModel:
    """A shipped search's served model: a Keras model plus its classes and metadata.

    Built by :func:`load_model`.

    Attributes
    ----------
    model_ : keras.Model
    task : {'classification', 'regression'}
    classes_ : ndarray of shape (n_classes,) or None
        Labels with their original dtype (``None`` for a regressor).
    n_features_in_ : int
    feature_names_in_ : ndarray of str or None
    architecture_ : str
        The winner's architecture (``best_architecture_``), whatever is
        served.
    layers_ : list of dict
        The winner's architecture, machine form.
    served_ : {'ensemble', 'winner'} or None
        Whether ``model_`` serves the ensemble selection's members or the
        winner alone. ``served_``, ``refit_`` and ``members_`` are ``None``
        for a folder saved by an sknas that did not record them.
    refit_ : 'folds' or bool or None
        How the served networks were made: the finalists' fold models
        (``'folds'``, the default), retrained on all the training rows
        (True), or the winner as the search trained it (False).
    members_ : list of dict or None
        The served members, in row order: ``row`` (of the estimator's
        ``search_results_``), ``architecture``, ``layers``, ``weight`` (its
        share of the output; 1.0 for a winner served alone) and
        ``n_fold_models`` (the fold models averaged for it; 0 unless
        ``refit_`` is ``'folds'``).
    params_ : dict
        The estimator's parameters when it was saved (JSON-safe).
    """

    def __init__(self, model, meta):
        self.model_ = model
        self.meta = meta
        self.task = meta.get("task", "classification")
        self.classes_ = decode_classes(meta["classes"])
        self.n_features_in_ = int(meta["n_features"])
        names = meta.get("feature_names")
        self.feature_names_in_ = None if names is None else np.array(names, dtype=object)
        self.architecture_ = meta["architecture"]
        self.layers_ = meta["layers"]
        self.served_ = meta.get("served")
        self.refit_ = meta.get("refit")
        self.members_ = meta.get("members")
        self.params_ = meta["params"]

    def _check_X(self, X):
        names = getattr(X, "columns", None)
        if names is not None and self.feature_names_in_ is not None:
            if [str(c) for c in names] != list(self.feature_names_in_):
                raise ValueError("The feature names of X differ from those seen in fit: "
                                 f"expected {list(self.feature_names_in_)}")
        if sp.issparse(X):
            X = sp.csr_matrix(X, dtype=np.float32)
        else:
            X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}; the model expects "
                             f"(n_samples, {self.n_features_in_})")
        return X

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_`` (classifiers only)."""
        if self.task == "regression":
            raise AttributeError("a saved regressor has no predict_proba; use predict")
        return keras_proba(self.model_, self._check_X(X), len(self.classes_))

    def predict(self, X):
        """Predicted labels from ``classes_``, or a regressor's targets."""
        if self.task == "regression":
            out = keras_predict(self.model_, self._check_X(X))
            return out.ravel() if out.shape[1] == 1 else out
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X, y):
        """Accuracy on ``(X, y)``, or R^2 (averaged over targets) for a regressor."""
        if self.task == "regression":
            from sklearn.metrics import r2_score
            return float(r2_score(y, self.predict(X)))
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def __repr__(self):
        if self.task == "regression":
            return f"SavedModel({self.architecture_!r}, task='regression')"
        return f"SavedModel({self.architecture_!r}, classes={self.classes_.tolist()!r})"
