"""Pickle-free shipping of a fitted search's winner: ``save_model`` / ``load_model``.

A saved model is a folder with two plain files:

* ``model.keras``: the refit Keras model (probabilities out: one sigmoid unit
  for two classes, a softmax otherwise);
* ``sknas_model.json``: format version, sknas version, classes with their
  dtype, feature names, number of features, the architecture (readable and
  machine form), its search reward and the estimator's parameters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._runlog import (RunFormatError, decode_classes, encode_classes, json_safe, load_keras,
                      read_json, save_keras_atomic, write_json_atomic)

__all__ = ["SavedModel", "keras_proba", "load_model", "save_model"]

MODEL_FORMAT = "sknas-model"
MODEL_FORMAT_VERSION = 1
_META = "sknas_model.json"
_KERAS = "model.keras"


def save_model(estimator, path):
    """Write a fitted :class:`MLPNASClassifier`'s winner to the folder ``path``.

    See :meth:`MLPNASClassifier.save_model`.
    """
    from sklearn.utils.validation import check_is_fitted

    from . import __version__
    check_is_fitted(estimator, "model_")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_keras_atomic(estimator.model_, path / _KERAS)
    meta = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION,
            "sknas_version": __version__, "classes": encode_classes(estimator.classes_),
            "feature_names": json_safe(getattr(estimator, "feature_names_in_", None)),
            "n_features": int(estimator.n_features_in_),
            "architecture": estimator.best_architecture_,
            "layers": json_safe(estimator.best_layers_),
            "best_score": json_safe(estimator.best_score_),
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
        A predictor with ``predict``, ``predict_proba``, ``score`` and
        ``classes_``, giving the same probabilities as the estimator.

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
    if missing:
        raise RunFormatError(f"{path / _META} lacks {sorted(missing)}")
    return SavedModel(load_keras(path / _KERAS), meta)


def keras_proba(model, X, n_classes):
    """Class probabilities of a winner's Keras ``model`` on float32 rows ``X``.

    Runs the model in batches of 8192 rows; a binary model's one sigmoid
    column becomes two columns (``1 - p``, ``p``); rows are normalised to
    sum to 1. Serves :class:`MLPNASClassifier` and :class:`SavedModel` alike.
    """
    if len(X) == 0:
        out = np.zeros((0, 1 if n_classes == 2 else n_classes))
    else:
        out = np.concatenate([np.asarray(model(X[i:i + 8192], training=False), np.float64)
                              for i in range(0, len(X), 8192)])
    if n_classes == 2:
        out = np.hstack([1.0 - out, out])
    return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-300)


class SavedModel:
    """A shipped search winner: a Keras model plus its classes and metadata.

    Built by :func:`load_model`.

    Attributes
    ----------
    model_ : keras.Model
    classes_ : ndarray of shape (n_classes,)
        Labels with their original dtype.
    n_features_in_ : int
    feature_names_in_ : ndarray of str or None
    architecture_ : str
    layers_ : list of dict
    params_ : dict
        The estimator's parameters when it was saved (JSON-safe).
    """

    def __init__(self, model, meta):
        self.model_ = model
        self.meta = meta
        self.classes_ = decode_classes(meta["classes"])
        self.n_features_in_ = int(meta["n_features"])
        names = meta.get("feature_names")
        self.feature_names_in_ = None if names is None else np.array(names, dtype=object)
        self.architecture_ = meta["architecture"]
        self.layers_ = meta["layers"]
        self.params_ = meta["params"]

    def _check_X(self, X):
        names = getattr(X, "columns", None)
        if names is not None and self.feature_names_in_ is not None:
            if [str(c) for c in names] != list(self.feature_names_in_):
                raise ValueError("The feature names of X differ from those seen in fit: "
                                 f"expected {list(self.feature_names_in_)}")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has shape {X.shape}; the model expects "
                             f"(n_samples, {self.n_features_in_})")
        return X

    def predict_proba(self, X):
        """Class probabilities, columns in the order of ``classes_``."""
        return keras_proba(self.model_, self._check_X(X), len(self.classes_))

    def predict(self, X):
        """Predicted labels, from ``classes_``."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X, y):
        """Accuracy on ``(X, y)``."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def __repr__(self):
        return f"SavedModel({self.architecture_!r}, classes={self.classes_.tolist()!r})"
