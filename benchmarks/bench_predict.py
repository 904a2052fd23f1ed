"""Prediction cost of the served model: the finalists' fold models against a refit.

Usage::

    python benchmarks/bench_predict.py [--seed 0] [--rounds 3] [--calls 20]

On the reference protocol (wine quality, stratified 80/20 split,
``StandardScaler``) it fits the default search (``refit='auto'``: the ensemble
served as its members' fold models) and the same search with ``refit=True``
(the members retrained on all rows), then times ``predict_proba`` on the test
rows and on a single row, alternating the two models in each round (one
process, so the ratio is what to read on a shared machine). A model's first
predict call traces the compiled graph that every call runs; its time is
printed apart.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_controller import data  # noqa: E402  (the reference protocol's split)
from sknas import MLPNASClassifier  # noqa: E402

from flat import make  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args(argv)
    X_tr, X_te, y_tr, y_te = data()
    fitted = {}
    for label, params in (("refit=True", {"refit": True}), ("default (fold models)", {})):
        clf = make(MLPNASClassifier, random_state=args.seed, **params).fit(X_tr, y_tr)
        fitted[label] = (clf, sum(1 for layer in clf.model_.layers if hasattr(layer, "layers")))
    for label, (clf, nets) in fitted.items():
        start = time.perf_counter()
        clf.predict_proba(X_te[:10])
        print(f"{label}: first call (tracing) {1000 * (time.perf_counter() - start):.0f} ms")
    for r in range(args.rounds):
        for label, (clf, nets) in fitted.items():
            times = {}
            for name, rows in (("test rows", X_te), ("one row", X_te[:1])):
                start = time.perf_counter()
                for _ in range(args.calls):
                    clf.predict_proba(rows)
                times[name] = 1000 * (time.perf_counter() - start) / args.calls
            print(f"round {r} {label}: {nets} networks; predict_proba on {len(X_te)} rows "
                  f"{times['test rows']:.1f} ms, on one row {times['one row']:.1f} ms; "
                  f"test accuracy {clf.score(X_te, y_te):.4f}")


if __name__ == "__main__":
    main()
