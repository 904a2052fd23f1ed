"""The two estimators: MLPNASClassifier and MLPNASRegressor.

Both run the search of :class:`~sknas._base.BaseMLPNAS`; each adds how its
target is checked and encoded, how the validation split is drawn, and how
predictions are served.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import compute_sample_weight
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from ._base import BaseMLPNAS
from ._data import scale_outputs
from ._params import (ATTRIBUTES_DOC, ESTIMATOR_PARAMETERS, NOTES_DOC, PARAMETERS_DOC,
                      _estimator_init)
from ._io import keras_predict, keras_proba

__all__ = ["MLPNASClassifier", "MLPNASRegressor"]

_CLASS_WEIGHT_DOC = """    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, as ``{label: weight}``, or ``'balanced'`` to
        weight rows inversely to their class frequency. They multiply
        ``sample_weight`` in candidate training, the reward and the refit.
        Classes missing from a dict get weight 1.
"""


def _docstring(summary, parameters, task_attributes, see_also):
    """A class docstring from the shared numpydoc pieces."""
    return (summary + "\n    Parameters\n    ----------\n" + parameters
            + "\n    Attributes\n    ----------\n"
            + ATTRIBUTES_DOC.replace("{task_attributes}\n", task_attributes)
            + "\n" + NOTES_DOC + "\n" + see_also)


class MLPNASClassifier(ClassifierMixin, BaseMLPNAS):
    __doc__ = _docstring(
        """Neural architecture search for multilayer perceptrons, as a classifier.

    ``fit`` runs a whole search: an LSTM controller samples MLP architectures
    token by token, each candidate is trained with TensorFlow (starting from
    one-shot shared weights) and scored by its accuracy on a fixed
    validation split, the rewards train the controller by REINFORCE, the
    best candidates are cross-validated, and by default an ensemble of them
    (each member the average of its fold models; see ``refit`` and
    ``ensemble_size``) serves ``predict``.

    Read more in the :doc:`algorithm guide </algorithm>`.
""",
        PARAMETERS_DOC.replace("    refit : 'auto', 'folds' or bool, default='auto'", _CLASS_WEIGHT_DOC
                               + "    refit : 'auto', 'folds' or bool, default='auto'"),
        """    classes_ : ndarray of shape (n_classes,)
        Class labels.
""",
        """    See Also
    --------
    sklearn.neural_network.MLPClassifier : A single, hand-sized MLP.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sknas import MLPNASClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPNASClassifier(controller_epochs=1, samples_per_epoch=2, epochs=2,
    ...                        random_state=0).fit(X, y)
    >>> clf.predict(X[:3]).shape
    (3,)
    >>> len(clf.search_results_["reward"])
    2
""")

    _parameter_constraints: dict = {
        **BaseMLPNAS._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    __init__ = _estimator_init({**ESTIMATOR_PARAMETERS, "class_weight": None})

    # ---------------------------------------------------------------- target
    def _encode_target(self, y):
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError("The target has only one class "
                             f"({encoder.classes_[0]!r}); a classifier needs at least 2 classes.")
        self.classes_ = encoder.classes_
        return encoder.transform(y).astype(np.int32)

    def _row_weights(self, y, w):
        if self.class_weight is not None:
            w = w * compute_sample_weight(self.class_weight, y)
        return w

    def _stratify(self, y, n_val):
        n_classes = len(self.classes_)
        return y if np.bincount(y).min() >= 2 and n_val >= n_classes else None

    def _task_fields(self):
        return {"n_classes": len(self.classes_)}

    def _max_folds(self, y):
        return int(np.bincount(y).min())

    def _folds_need(self, cv, y):
        return (f"at least {cv} rows of every class; the smallest class has "
                f"{self._max_folds(y)}")

    def _oof_loss(self, pred, y, w):
        """Weighted log loss of averaged out-of-fold probabilities."""
        if pred.shape[1] == 1:  # one sigmoid column: the probability of class 1
            p = np.where(y == 1, pred[:, 0], 1 - pred[:, 0])
        else:
            p = pred[np.arange(len(y)), y]
        return float(np.average(-np.log(np.clip(p, 1e-7, 1)), weights=w))

    def _oof_score(self, pred, y, w):
        """Weighted accuracy of averaged out-of-fold probabilities."""
        label = (pred[:, 0] > 0.5).astype(int) if pred.shape[1] == 1 else pred.argmax(axis=1)
        return float(np.average(label == y, weights=w))

    def _kfold(self, n_splits, seed):
        return StratifiedKFold(n_splits, shuffle=True, random_state=seed)

    # ------------------------------------------------------------ inference
    def predict_proba(self, X):
        """Class probabilities of the served model (``model_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; rows sum to 1.
        """
        X = self._model_input(X)
        return keras_proba(self.model_, X, len(self.classes_))

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """Class labels predicted by the served model (``model_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,)
            Labels from ``classes_``.
        """
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

class MLPNASRegressor(RegressorMixin, BaseMLPNAS):
    __doc__ = _docstring(
        """Neural architecture search for multilayer perceptrons, as a regressor.

    The same search as :class:`MLPNASClassifier`: candidates end in a linear
    output layer (one unit per target) trained with squared error on the
    standardised target, and each is scored by its R^2 on a fixed validation
    split. The controller learns from ``max(R^2, 0)``: a candidate worse than
    predicting the mean counts as a failure would. ``predict`` returns the
    targets in their original units; ``score`` is R^2.

    Read more in the :doc:`regression guide </regression>`.
""",
        PARAMETERS_DOC,
        """    n_outputs_ : int
        Number of targets.
    y_mean_, y_scale_ : ndarray of shape (`n_outputs_`,)
        Mean and standard deviation of each target over the training rows:
        candidates train on ``(y - y_mean_) / y_scale_``.
""",
        """    See Also
    --------
    sklearn.neural_network.MLPRegressor : A single, hand-sized MLP.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from sknas import MLPNASRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = MLPNASRegressor(controller_epochs=1, samples_per_epoch=2, epochs=2,
    ...                       random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3,)
""")

    _target_validation = {"multi_output": True, "y_numeric": True}
    #: R^2 needs a target that varies: the validation split holds at least two rows,
    #: and so does every held-out fold of the finalists' cross-validation
    _min_validation_rows = 2

    def _max_folds(self, y):
        return len(y) // 2

    def _fold_target(self, y, train):
        """The fold's own standardisation: its training rows' mean and
        standard deviation (of the target standardised on all rows), so that
        no held-out row shapes the target its fold trains on."""
        part = y[train]
        scale = part.std(axis=0)
        return part.mean(axis=0), np.where(scale > 0, scale, 1.0)

    def _folds_need(self, cv, y):
        return f"at least {2 * cv} rows (two held out in each fold); there are {len(y)}"

    def _scores_candidates(self, y_val):
        """R^2 needs a validation target that varies in every column: a split
        whose target is constant is drawn again with the next seed."""
        return bool((np.ptp(y_val, axis=0) > 0).all())

    # ---------------------------------------------------------------- target
    def _check_target_kind(self, y):
        values = np.asarray(getattr(y, "values", y))
        if values.dtype.kind in "OUS":
            try:
                values.astype(np.float64)
            except (TypeError, ValueError):
                sample = next((v for v in values.ravel() if isinstance(v, str)), values.ravel()[0])
                raise ValueError(
                    f"MLPNASRegressor needs a numeric target; y holds values such as {sample!r}. "
                    "For class labels use MLPNASClassifier.") from None

    def _encode_target(self, y):
        y = np.asarray(y, dtype=np.float64)
        y = y.reshape(len(y), -1)
        scale = y.std(axis=0)
        constant = np.flatnonzero(scale == 0)
        if constant.size:
            raise ValueError(f"The target is constant (column {int(constant[0])} is always "
                             f"{float(y[0, constant[0]])!r}): there is nothing to learn.")
        self.n_outputs_ = y.shape[1]
        self.y_mean_ = y.mean(axis=0)
        self.y_scale_ = scale
        return ((y - self.y_mean_) / self.y_scale_).astype(np.float32)

    def _task_fields(self):
        return {"n_classes": 0, "task": "regression"}

    def _served_weights(self, weights):
        """Fold the target's standardisation into the linear output layer (each
        member's, for a net of members)."""
        return scale_outputs(weights, self.y_scale_, self.y_mean_)

    # ------------------------------------------------------------- inference
    def predict(self, X):
        """Targets predicted by the served model (``model_``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, `n_outputs_`)
            In the target's original units; one-dimensional for one target.
        """
        X = self._model_input(X)
        out = keras_predict(self.model_, X)
        return out.ravel() if self.n_outputs_ == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        # tiny search budgets (as in the estimator checks) can score low
        tags.regressor_tags.poor_score = True
        return tags
