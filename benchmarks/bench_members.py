"""What members cost to train: the population trainer on nets of k members.

From the repository root::

    python benchmarks/bench_members.py                  # 20 architectures, k = 1, 4, 8
    python benchmarks/bench_members.py --n 6 --keras 3  # a quick look

On the reference protocol (the bundled wine-quality data, stratified 80/20
split with ``random_state=0``, ``StandardScaler``), in one process:
``--n`` architectures drawn at random from the tutorial's space (seed 0) are
trained for 10 epochs on batches of 32 by the population trainer, once as
plain nets and once as nets of each ``--members`` value (``SearchSpace``'s
``members``: TabM-mini), from the same start for the shared layers; and the
first ``--keras`` of them with ``k = max(--members)`` by ``model.fit`` (the
Keras reference trainer), one after the other. Printed: wall time of each
run, its ratio to the plain nets', the population's speed-up over
``model.fit`` on the same nets of members (per net), and the mean validation
accuracy of each run (the last epoch's). ``BENCH_THREADS`` sets TensorFlow's
threads (default 1). Times are ratios within one process; the machine is
shared.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_quality  # noqa: E402  (first: sets BENCH_THREADS' thread variables)
from bench_speed import reference_data  # noqa: E402

import numpy as np  # noqa: E402


def architectures(n, seed=0):
    """``n`` distinct random architectures of the tutorial's space (machine form)."""
    from sknas import SearchSpace
    space = SearchSpace()
    rng = np.random.default_rng(seed)
    seen, out = set(), []
    while len(out) < n:
        prefix = []
        while True:
            tok = int(rng.choice(np.flatnonzero(space.allowed(prefix))))
            if tok == space.end_token:
                break
            prefix.append(tok)
        if tuple(prefix) not in seen:
            seen.add(tuple(prefix))
            out.append(space.layers(tuple(prefix)))
    return out


def with_members(layers, k):
    return ([{"type": "optimizer", "members": k}] + layers) if k > 1 else layers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="architectures (default: 20)")
    parser.add_argument("--members", type=int, nargs="+", default=[4, 8],
                        help="numbers of members to time (default: 4 8)")
    parser.add_argument("--keras", type=int, default=5,
                        help="how many of them model.fit trains with the largest k (default: 5)")
    args = parser.parse_args(argv)
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(bench_quality.THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(bench_quality.THREADS)
    from sklearn.model_selection import train_test_split

    from sknas._trainer import CandidateData, KerasTrainer, PopulationTrainer, initial_weights

    X_train, _, y_train, _ = reference_data()
    X_fit, X_val, y_fit, y_val = train_test_split(X_train, y_train, test_size=0.2,
                                                  stratify=y_train, random_state=0)
    classes, y_fit = np.unique(y_fit, return_inverse=True)
    y_val = np.searchsorted(classes, y_val)
    f32 = np.float32
    data = CandidateData(X_fit.astype(f32), y_fit.astype(np.int32), np.ones(len(y_fit), f32),
                         X_val.astype(f32), y_val.astype(np.int32), np.ones(len(y_val), f32),
                         len(classes))
    archs = architectures(args.n)

    def candidates(k, count=None):
        out = []
        for j, layers in enumerate(archs[:count]):
            layers = with_members(layers, k)
            rng = np.random.default_rng([0, j])
            out.append((layers, initial_weights(layers, data.n_features, data.n_outputs, rng),
                        10 + j))
        return out

    def timed(trainer, cands):
        start = time.perf_counter()
        results = trainer.train(cands, data, seed=0)
        seconds = time.perf_counter() - start
        acc = np.mean([r.val_scores[-1] for r in results if r.status == "ok"])
        return seconds, acc

    trainer = PopulationTrainer(epochs=10, batch_size=32)
    timed(trainer, candidates(1, 2))  # warm-up: TensorFlow's first graph
    rows = [("plain (k = 1)", *timed(trainer, candidates(1)))]
    for k in args.members:
        rows.append((f"k = {k}", *timed(trainer, candidates(k))))
    k = max(args.members)
    few = candidates(k, args.keras)
    pop_few = timed(trainer, few)
    keras_few = timed(KerasTrainer(epochs=10, batch_size=32), few)
    print(f"{args.n} architectures of the tutorial's space, wine-quality reference split, "
          f"10 epochs, batches of 32, {bench_quality.THREADS} thread(s)\n")
    print("| run | wall s | x plain | mean validation accuracy |")
    print("|---|---|---|---|")
    for name, seconds, acc in rows:
        print(f"| population, {name} | {seconds:.1f} | {seconds / rows[0][1]:.2f} | {acc:.4f} |")
    print(f"\nThe first {args.keras} with k = {k}: population {pop_few[0]:.1f} s "
          f"(accuracy {pop_few[1]:.4f}), model.fit {keras_few[0]:.1f} s "
          f"(accuracy {keras_few[1]:.4f}): the population is "
          f"{keras_few[0] / pop_few[0]:.1f}x model.fit.")


if __name__ == "__main__":
    main()
