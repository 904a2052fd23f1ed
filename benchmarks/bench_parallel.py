"""Scale-out benchmark: the default search with n_jobs=1, n_jobs=2 and a local Dask cluster.

Run ``python benchmarks/bench_parallel.py`` from the repository root. On the
reference protocol (bundled wine-quality data, stratified 80/20 split with
``random_state=0``, ``StandardScaler`` in a pipeline) it fits the default
``MLPNASClassifier(random_state=0)`` three ways and prints a Markdown table:

* ``n_jobs=1``: every controller epoch trains in this process;
* ``n_jobs=2``: two loky worker processes;
* ``dask``: a ``LocalCluster`` of two worker processes with one thread each,
  through ``joblib.parallel_backend('dask')``. The cluster is started before
  the clock starts (a user points the search at a running cluster).

Times are wall-clock seconds of ``Pipeline.fit`` (search and refit), the
first repeat includes starting the loky workers and importing TensorFlow in
them. Each run is also compared with the ``n_jobs=1`` run: same architectures
in the same order, and the largest reward difference.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import joblib  # noqa: E402
import numpy as np  # noqa: E402


def reference_data():
    """Unscaled train/test parts of the reference protocol (the pipeline scales)."""
    from sklearn.model_selection import train_test_split
    from sknas.datasets import load_wine_quality
    X, y = load_wine_quality(return_X_y=True)
    return train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)


def fit_once(params, data):
    """Fit the pipeline; return seconds, test accuracy and the search results."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sknas import MLPNASClassifier
    from flat import make
    X_tr, X_te, y_tr, y_te = data
    pipe = make_pipeline(StandardScaler(), make(MLPNASClassifier, random_state=0, **params))
    start = time.perf_counter()
    pipe.fit(X_tr, y_tr)
    seconds = time.perf_counter() - start
    return seconds, pipe.score(X_te, y_te), pipe[-1].search_results_


def run_mode(mode, params, data, repeats):
    """Time ``repeats`` fits in one mode: 'n_jobs=1', 'n_jobs=2' or 'dask'."""
    if mode != "dask":
        n_jobs = int(mode.split("=")[1])
        return [fit_once(dict(params, n_jobs=n_jobs), data) for _ in range(repeats)]
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        with joblib.parallel_backend("dask"):
            return [fit_once(params, data) for _ in range(repeats)]


def compare(results, reference):
    """Candidates equal to the reference's, and the largest reward difference among them.

    Returns how many leading candidates have the same architecture as the
    reference's (all of them when the two searches sampled alike) and the
    largest absolute reward difference over those.
    """
    a, b = list(results["architecture"]), list(reference["architecture"])
    n = next((i for i, (x, z) in enumerate(zip(a, b)) if x != z), min(len(a), len(b)))
    diff = float(np.max(np.abs(results["reward"][:n] - reference["reward"][:n]))) if n else float("nan")
    return f"{n}/{len(b)}", diff


def environment():
    """One line on the machine and the versions."""
    import distributed
    import sklearn
    import tensorflow as tf
    return (f"{platform.platform()}, {joblib.cpu_count()} cores ({platform.processor() or 'cpu'}), "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
            f"scikit-learn {sklearn.__version__}, joblib {joblib.__version__}, "
            f"dask.distributed {distributed.__version__}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--controller-epochs", type=int, default=10,
                        help="controller epochs (default 10, the default search)")
    parser.add_argument("--repeats", type=int, default=1, help="fits per mode (default 1)")
    parser.add_argument("--modes", default="n_jobs=1,n_jobs=2,dask")
    args = parser.parse_args(argv)
    params = {"controller_epochs": args.controller_epochs}
    data = reference_data()
    print(environment())
    print(f"budget: controller_epochs={args.controller_epochs}, other parameters default\n")
    runs = {mode: run_mode(mode, params, data, args.repeats) for mode in args.modes.split(",")}
    base = min(r[0] for r in runs[args.modes.split(",")[0]])
    reference = runs[args.modes.split(",")[0]][0][2]
    print("| mode | fit seconds (each repeat) | best | speed-up vs first mode | "
          "test accuracy | same leading architectures | max reward diff on them | distinct pids |")
    print("|---|---|---|---|---|---|---|---|")
    for mode, fits in runs.items():
        secs = [f[0] for f in fits]
        same, diff = compare(fits[-1][2], reference)
        pids = len(set(fits[0][2]["pid"]))
        print(f"| {mode} | {', '.join(f'{s:.1f}' for s in secs)} | {min(secs):.1f} | "
              f"{base / min(secs):.2f}x | {fits[-1][1]:.4f} | {same} | {diff:.2e} | {pids} |")


if __name__ == "__main__":
    main()
