"""The white wine-quality reference data (UCI, Cortez et al. 2009, CC BY 4.0)."""

from __future__ import annotations

from importlib import resources

import pandas as pd
from sklearn.utils import Bunch

__all__ = ["load_wine_quality"]

TARGET = "quality_label"
#: The two targets of the file; each one leaks the other, so only one is kept.
TARGETS = ("quality_label", "quality")


def load_wine_quality(*, return_X_y=False, as_frame=False, target="quality_label"):
    """Load the bundled white wine-quality data (4,898 rows, 11 features).

    By default the target is ``quality_label``, three classes (``'low'``:
    quality 3-5, ``'medium'``: 6-7, ``'high'``: 8-9), for classification.
    With ``target='quality'`` it is the raw sensory score itself (integers
    3 to 9, mean 5.88), a numeric target for regression, as in
    :doc:`/regression`. Each of the two columns is derived from, or gives
    away, the other (a target leak), so the one that is not the target is
    dropped, as is the file's row-index column. Features are not scaled:
    put a scaler in your pipeline.

    Parameters
    ----------
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.
    as_frame : bool, default=False
        Return X as a DataFrame and y as a Series (otherwise NumPy arrays).
    target : {'quality_label', 'quality'}, default='quality_label'
        The target: the class label (strings) or the numeric quality score
        (``int64``).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data``, ``target``, ``feature_names``, ``target_names``
        (the three class names, or ``['quality']`` for the score), ``frame``
        (with ``as_frame=True``: the features and the target column) and
        ``DESCR``.
    (X, y) : tuple
        With ``return_X_y=True``.

    Examples
    --------
    >>> from sknas.datasets import load_wine_quality
    >>> X, y = load_wine_quality(return_X_y=True)
    >>> X.shape
    (4898, 11)
    >>> X, y = load_wine_quality(return_X_y=True, target="quality")
    >>> int(y.min()), int(y.max())
    (3, 9)
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}; got {target!r}")
    with resources.files(__package__).joinpath("data", "wine-quality.csv").open("r") as fh:
        frame = pd.read_csv(fh)
    leaks = [c for c in TARGETS if c != target]
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed")] + leaks)
    if target == "quality":
        y = frame[target].astype("int64")
        target_names = ["quality"]
    else:
        y = frame[target].astype(str)
        target_names = ["high", "low", "medium"]
    X = frame.drop(columns=[target]).astype(float)
    if not as_frame:
        X, y = X.to_numpy(), y.to_numpy(dtype=object if target == TARGET else "int64")
    if return_X_y:
        return X, y
    return Bunch(data=X, target=y, feature_names=list(frame.columns.drop(target)),
                 target_names=target_names,
                 frame=frame if as_frame else None, DESCR=load_wine_quality.__doc__)
