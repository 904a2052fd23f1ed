"""Controller variants on the reference protocol, over several seeds.

Usage::

    python benchmarks/bench_controller.py [--seeds 0 1 2 3 4] "dict()" "dict(strategy='random')" ...

Each positional argument is a dict of ``MLPNASClassifier`` parameters (the
default search otherwise). For each it prints, over the seeds, the mean and
standard error of: the best reward, the refit winner's test accuracy, the mean
reward of the last 3 controller epochs minus the first 3 ("lift"), and on how
many seeds that lift is positive. The first variant is the reference: for the
others, the per-seed difference in best reward and test accuracy to it (same
seed, hence the same validation split) is given with its standard error.
"""

import argparse
import ast
import os
import subprocess
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sknas import MLPNASClassifier  # noqa: E402
from sknas.datasets import load_wine_quality  # noqa: E402


def parse(text):
    """``"dict(a=1)"`` or ``"{'a': 1}"`` to a dict, without eval."""
    node = ast.parse(text, mode="eval").body
    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dict":
        return {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords}
    return ast.literal_eval(node)


def data():
    X, y = load_wine_quality(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


def run(params, seeds, split):
    """Per-seed best reward, test accuracy, lift and time (the fit and the
    scoring of the test rows) of one variant."""
    X_tr, X_te, y_tr, y_te = split
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        est = MLPNASClassifier(random_state=seed, **params).fit(X_tr, y_tr)
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
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"commit {commit}, seeds {args.seeds}, {os.cpu_count()} cores; mean ± standard error "
          "over seeds")
    print("| parameters | best reward | test accuracy | lift (last 3 - first 3) | lift > 0 "
          "| Δ best vs first | Δ test vs first | fit + test score s |")
    print("|---|---|---|---|---|---|---|---|")
    split = data()
    reference = None
    for text in args.variants:
        res = run(parse(text), args.seeds, split)
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
