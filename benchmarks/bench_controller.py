"""Controller variants on the reference protocol, over several seeds.

Usage::

    python benchmarks/bench_controller.py [--purpose choose] [--seeds ...] \\
        "dict()" "dict(strategy='random')" ...

Each positional argument is a dict of ``MLPNASClassifier`` parameters (the
default search otherwise). For each it prints, over the seeds, the mean and
standard error of: the best reward, the refit winner's test accuracy, the mean
reward of the last 3 controller epochs minus the first 3 ("lift"), and on how
many seeds that lift is positive. The first variant is the reference: for the
others, the per-seed difference in best reward and test accuracy to it (same
seed, hence the same validation split) is given with its standard error.

The data (``benchmarks/suite.py``, protocol version 2): the suite's
wine_quality table, for each seed its 70/30 stratified split with
``random_state`` = the seed and the suite's preprocessing. ``--purpose
choose`` (a comparison to choose a default by) runs on the tuning seeds
only, ``--purpose report`` (the default) on the report seeds. ``--protocol
1`` reruns version 1, the tutorial's 80/20 stratified split with
``random_state=0`` for every seed, scaled, only to reproduce a recorded row
(give its ``--seeds``; the recorded runs used 0-4).
"""

import argparse
import ast
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sknas import MLPNASClassifier  # noqa: E402
from sknas.datasets import load_wine_quality  # noqa: E402

import suite  # noqa: E402
from flat import make  # noqa: E402


def parse(text):
    """``"dict(a=1)"`` or ``"{'a': 1}"`` to a dict, without eval."""
    node = ast.parse(text, mode="eval").body
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dict":
        return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    return ast.literal_eval(node)


def data(seed=0, protocol=1):
    """The split, preprocessed: ``X_tr, X_te, y_tr, y_te``.

    ``protocol=2``: the suite's wine_quality table and its split of ``seed``
    (``suite.split``), the suite's preprocessing fitted on the training part.
    ``protocol=1`` (the default, for ``bench_screening.py`` and
    ``bench_predict.py``, which call ``data()``): version 1's split, the
    tutorial's 80/20 stratified split with ``random_state=0`` whatever the
    seed, scaled.
    """
    if protocol == 2:
        X, y, _ = suite.load("wine_quality", "classification")
        X_tr, X_te, y_tr, y_te = suite.split(X, y, "classification", seed)
        pre = suite.preprocessor(X_tr).fit(X_tr)
        return pre.transform(X_tr), pre.transform(X_te), y_tr.to_numpy(), y_te.to_numpy()
    X, y = load_wine_quality(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


def run(params, seeds, splits):
    """Per-seed best reward, test accuracy, lift and time (the fit and the
    scoring of the test rows) of one variant; ``splits[seed]`` is the seed's data."""
    rows = []
    for seed in seeds:
        X_tr, X_te, y_tr, y_te = splits[seed]
        start = time.perf_counter()
        est = make(MLPNASClassifier, random_state=seed, **params).fit(X_tr, y_tr)
        mean = est.controller_history_["mean_reward"]
        k = min(3, len(mean) // 2)
        rows.append({"best": est.best_score_, "test": est.score(X_te, y_te),
                     "lift": float(mean[-k:].mean() - mean[:k].mean()),
                     "time": time.perf_counter() - start})
    return {key: np.array([r[key] for r in rows]) for key in rows[0]}


def mean_se(values):
    values = np.asarray(values, float)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.nan
    return f"{values.mean():.4f} ± {se:.4f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=["dict()"])
    suite.add_protocol_arguments(parser)
    args = parser.parse_args(argv)
    record = suite.protocol_from_args(parser, args)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"commit {commit}, seeds {args.seeds}, {os.cpu_count()} cores; mean ± standard error "
          f"over seeds; {record['note']}")
    print("| parameters | best reward | test accuracy | lift (last 3 - first 3) | lift > 0 "
          "| Δ best vs first | Δ test vs first | fit + test score s |")
    print("|---|---|---|---|---|---|---|---|")
    splits = {seed: data(seed, args.protocol) for seed in args.seeds}
    reference = None
    for text in args.variants:
        res = run(parse(text), args.seeds, splits)
        if reference is None:
            reference, d_best, d_test = res, "", ""
        else:
            d_best = mean_se(res["best"] - reference["best"])
            d_test = mean_se(res["test"] - reference["test"])
        print(f"| `{text}` | {mean_se(res['best'])} | {mean_se(res['test'])} "
              f"| {mean_se(res['lift'])} | {int((res['lift'] > 0).sum())}/{len(args.seeds)} "
              f"| {d_best} | {d_test} | {res['time'].mean():.1f} |", flush=True)


if __name__ == "__main__":
    main()
