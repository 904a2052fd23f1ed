"""Predictor screening: ``screen_factor=1`` against larger factors at equal trained candidates.

Usage::

    python benchmarks/bench_screening.py [--seeds 0 1 2] [--factors 1 3]

The wine data of ``bench_controller.py`` (same split and scaling), the default
search (10 controller epochs of 10 trained candidates) with ``cv=None`` so that
the best reward is the holdout reward for every variant. For each factor and
seed it records the best holdout reward, the mean reward of all trained
candidates and of those of controller epochs 5-9, the refit winner's test
accuracy, the predictor's Spearman correlation per controller epoch (the
``predictor_spearman`` column) and its mean over epochs 5-9, and the wall time
of ``fit``. It prints a per-seed table, then means with the standard error over
seeds and, for every factor but the first, the paired difference to the first
(same seed, hence the same split and validation rows) with its standard error.

The Spearman correlations are computed here from ``search_results_`` (as the
``predictor_spearman`` column is), and ``screen_factor`` is passed only when it
is not 1, so ``--factors 1`` also measures the predictor of an sknas that
predates both (``PYTHONPATH=old-checkout python benchmarks/bench_screening.py
--factors 1``). "pooled" is the rank correlation over all the successful
candidates of controller epochs 5-9 together: it also counts whether the
predictions of different epochs are comparable.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from bench_controller import data, mean_se  # noqa: E402

from sknas import MLPNASClassifier  # noqa: E402
from sknas._trial import predictor_spearman as rank_correlation  # noqa: E402

from flat import make  # noqa: E402

METRICS = ("best", "mean_all", "mean_late", "spearman_late", "spearman_pooled", "test", "time")


def run(factor, seed, split):
    X_tr, X_te, y_tr, y_te = split
    start = time.perf_counter()
    extra = {} if factor == 1 else {"screen_factor": factor}
    # batches of 32, as the recorded rows (batch_size='auto' takes 64 on these 3,918 rows)
    est = make(MLPNASClassifier, cv=None, random_state=seed, batch_size=32, **extra).fit(X_tr, y_tr)
    elapsed = time.perf_counter() - start
    res, hist = est.search_results_, est.controller_history_
    ok = res["status"] == "ok"
    late = ok & (res["controller_epoch"] >= 5)
    epoch, pred, reward = res["controller_epoch"], res["predicted_reward"], res["reward"]
    rho = np.array([rank_correlation(pred[ok & (epoch == e)], reward[ok & (epoch == e)])
                    for e in hist["controller_epoch"]])
    return {"best": est.best_score_, "mean_all": float(res["reward"][ok].mean()),
            "mean_late": float(res["reward"][late].mean()),
            "spearman_late": float(np.nanmean(rho[5:])),
            "spearman_pooled": rank_correlation(pred[late], reward[late]),
            "test": est.score(X_te, y_te), "time": elapsed, "n_trained": int(len(res["reward"])),
            "n_screened": int(np.sum(hist.get("n_screened", 0))), "rho": rho,
            "span": (np.nanmin(pred[ok]), np.nanmax(pred[ok]),
                     np.nanmin(reward[ok]), np.nanmax(reward[ok]))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--factors", type=float, nargs="+", default=[1, 3])
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}{'+dirty' if dirty else ''}, seeds {args.seeds}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    split = data()
    out = {}
    print("\n| screen_factor | seed | trained | screened | best reward | mean reward | "
          "mean reward, epochs 5-9 | Spearman, epochs 5-9 (mean, pooled) | predictions span | "
          "rewards span | test accuracy | fit s | Spearman per controller epoch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for factor in args.factors:
        out[factor] = []
        for seed in args.seeds:
            r = run(factor, seed, split)
            out[factor].append(r)
            rho = " ".join("nan" if np.isnan(v) else f"{v:+.2f}" for v in r["rho"])
            print(f"| {factor:g} | {seed} | {r['n_trained']} | {r['n_screened']} | "
                  f"{r['best']:.4f} | {r['mean_all']:.4f} | {r['mean_late']:.4f} | "
                  f"{r['spearman_late']:.3f}, {r['spearman_pooled']:.3f} | "
                  f"{r['span'][0]:.2f}-{r['span'][1]:.2f} | "
                  f"{r['span'][2]:.2f}-{r['span'][3]:.2f} | "
                  f"{r['test']:.4f} | {r['time']:.1f} | {rho} |",
                  flush=True)
    print("\nmean ± standard error over seeds; Δ: paired difference to screen_factor="
          f"{args.factors[0]:g}, mean ± standard error\n")
    print("| screen_factor | " + " | ".join(METRICS) + " |")
    print("|---" * (len(METRICS) + 1) + "|")
    ref = out[args.factors[0]]
    for factor in args.factors:
        rows = out[factor]
        print(f"| {factor:g} | " + " | ".join(mean_se([r[m] for r in rows]) for m in METRICS)
              + " |")
        if factor != args.factors[0]:
            print(f"| Δ {factor:g} - {args.factors[0]:g} | " + " | ".join(
                mean_se([r[m] - q[m] for r, q in zip(rows, ref)]) for m in METRICS) + " |")


if __name__ == "__main__":
    main()
