"""Profile where a default sknas search spends its time.

Run ``python benchmarks/profile_search.py [--pops N] [--cprofile]`` from the
repository root. It prints, for a few populations of the default search on
the reference protocol, the time to sample them, to set up, trace and run
the population graph, and to update the controller; with ``--cprofile`` also
a cProfile summary of one whole default search.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def reference_data():
    """Scaled train/test parts of the reference protocol."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from sknas.datasets import load_wine_quality
    X, y = load_wine_quality(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


def split_phases(n_pops=3, seed=0):
    """Per population of the default search: sampling, setup, tracing, running, update."""
    from sknas import MLPNASClassifier
    from sknas._trainer import PopulationTrainer, initial_weights
    X, _, y, _ = reference_data()
    est = MLPNASClassifier(random_state=seed, controller_epochs=n_pops)
    Xv, yv, w, enc = est._validate_training_data(X, y, None)
    data = est._split(Xv, yv, w, seed)
    data.n_classes = len(enc.classes_)
    space = est._make_space()
    from sknas._strategy import resolve_strategy
    ctrl = resolve_strategy(est.strategy).build(space, seed)
    trainer = PopulationTrainer()
    rng = np.random.default_rng(seed)
    for p in range(n_pops):
        t0 = time.perf_counter()
        archs, _ = ctrl.sample(10, rng)
        t_sample = time.perf_counter() - t0
        layers = [space.layers(a) for a in archs]
        cands = [(lay, initial_weights(lay, data.n_features, data.n_outputs, rng), k)
                 for k, lay in enumerate(layers)]
        res = trainer.train(cands, data, p)
        t0 = time.perf_counter()
        ctrl.update(archs, [np.mean(r.val_scores) for r in res])
        t_update = time.perf_counter() - t0
        phases = "  ".join(f"{k} {v:.2f}s" for k, v in trainer.last_timings_.items())
        print(f"population {p}: sample {t_sample:.3f}s  {phases}  update {t_update:.3f}s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pops", type=int, default=3)
    parser.add_argument("--cprofile", action="store_true", help="also cProfile a whole search")
    args = parser.parse_args(argv)
    split_phases(args.pops)
    if args.cprofile:
        from sknas import MLPNASClassifier
        X, _, y, _ = reference_data()
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        MLPNASClassifier(random_state=0).fit(X, y)
        prof.disable()
        print(f"default search + refit: {time.perf_counter() - t0:.1f}s")
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)


if __name__ == "__main__":
    main()
