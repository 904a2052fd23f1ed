"""The white wine-quality reference data (UCI, Cortez et al. 2009, CC BY 4.0)."""

from __future__ import annotations

from importlib import resources

import pandas as pd
from sklearn.utils import Bunch

__all__ = ["load_wine_quality"]

TARGET = "quality_label"
LEAKS = ("quality",)


def load_wine_quality(*, return_X_y=False, as_frame=False):
    """Load the bundled white wine-quality data (4,898 rows, 11 features, 3 classes).

    The target is ``quality_label`` (``'low'``: quality 3-5, ``'medium'``:
    6-7, ``'high'``: 8-9). The row-index column and the raw ``quality``
    score, from which the label is derived (a target leak), are dropped.
    Features are not scaled: put a scaler in your pipeline.

    Parameters
    ----------
    return_X_y : bool, default=False
        Return ``(X, y)`` instead of a Bunch.
    as_frame : bool, default=False
        Return X as a DataFrame and y as a Series (otherwise NumPy arrays).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data``, ``target``, ``feature_names``, ``target_names``, ``frame``
        (with ``as_frame=True``) and ``DESCR``.
    (X, y) : tuple
        With ``return_X_y=True``.

    Examples
    --------
    >>> from sknas.datasets import load_wine_quality
    >>> X, y = load_wine_quality(return_X_y=True)
    >>> X.shape
    (4898, 11)
    """
    with resources.files(__package__).joinpath("data", "wine-quality.csv").open("r") as fh:
        frame = pd.read_csv(fh)
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed")] + list(LEAKS))
    target = frame[TARGET].astype(str)
    X = frame.drop(columns=[TARGET]).astype(float)
    if not as_frame:
        X, target = X.to_numpy(), target.to_numpy(dtype=object)
    if return_X_y:
        return X, target
    return Bunch(data=X, target=target, feature_names=list(frame.columns.drop(TARGET)),
                 target_names=["high", "low", "medium"],
                 frame=frame if as_frame else None, DESCR=load_wine_quality.__doc__)
