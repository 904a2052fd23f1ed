"""Controller variants on the reference protocol, over seeds 0-4.

Usage: ``python benchmarks/bench_controller.py "dict(baseline='ema')" ...``

Each argument is a dict of ``MLPNASClassifier`` parameters (the default search
otherwise). For each it prints the mean best reward, the mean test accuracy of
the refit winner, and on how many seeds the controller learns (mean reward of
the last 3 controller epochs above the first 3).
"""

import ast
import os
import sys

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


def run(params, seeds=range(5)):
    X, y = load_wine_quality(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
    best, test, learns = [], [], 0
    for seed in seeds:
        est = MLPNASClassifier(random_state=seed, **params).fit(X_tr, y_tr)
        mean = est.controller_history_["mean_reward"]
        learns += bool(mean[-3:].mean() > mean[:3].mean())
        best.append(est.best_score_)
        test.append(est.score(X_te, y_te))
    return np.mean(best), np.mean(test), learns, len(best)


if __name__ == "__main__":
    print("| parameters | mean best reward | mean test accuracy | learns |")
    print("|---|---|---|---|")
    for arg in sys.argv[1:] or ["dict()"]:
        b, t, n, total = run(parse(arg))
        print(f"| `{arg}` | {b:.4f} | {t:.4f} | {n}/{total} |", flush=True)
