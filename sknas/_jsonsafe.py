"""JSON-safe copies of values, for every file sknas writes and every page it builds.

:func:`json_safe` turns what an estimator holds (NumPy scalars and arrays,
tuples, paths, NaN) into strict JSON. It is shared by the run folders
(:mod:`sknas._runlog`), the saved models (:mod:`sknas._io`) and the HTML
report (:mod:`sknas._html`), and imports nothing from sknas, so that none of
them needs another for it.
"""

from __future__ import annotations

import math
import os

import numpy as np

__all__ = ["json_safe"]


def json_safe(obj):
    """A strict-JSON copy of ``obj``: tuples become lists, NaN/inf become
    ``None``, NumPy scalars and arrays become Python values, paths become
    strings and anything else its ``repr``."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in (obj.tolist() if isinstance(obj, np.ndarray) else obj)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return repr(obj)
