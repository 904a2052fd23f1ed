"""Would stacking the finalists' same-shaped fold networks into batched matrix
products pay? (issue #35, item 4)

The finalists' cross-validation trains ``n_finalists x k`` networks side by
side, and the k folds of a finalist have the same shapes. This script times,
in one process and one thread (as the benchmarks run), 200 steps of a
hand-written forward and backward pass of 8 wine-shaped two-layer
architectures x 5 folds: once as 40 separate networks (two-dimensional
``matmul`` per layer, as the population trainer computes them), once as 8
stacks of 5 (three-dimensional ``matmul`` per layer, the folds along the
batch dimension). It prints the seconds of each (the second call of each
traced loop, so tracing is left out) and their ratio::

    python benchmarks/bench_stacking.py

It is a ceiling check, not the trainer: no Adam, batch normalisation or
dropout, a stand-in for the loss gradient.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

BATCH, FEATURES, FOLDS, CLASSES, STEPS = 64, 11, 5, 3, 200
#: hidden widths of the 8 finalists of a default fit on wine-quality (tuning seed 0)
ARCHS = [(512, 512), (512, 16), (32, 512), (32, 128), (512, 32), (512, 128), (32, 8), (512, 256)]


def passes(x, kernels):
    """Gradients of a relu-relu-linear net's kernels (2-D, or 3-D stacked)."""
    a1 = tf.nn.relu(tf.linalg.matmul(x, kernels[0]))
    a2 = tf.nn.relu(tf.linalg.matmul(a1, kernels[1]))
    dz = tf.linalg.matmul(a2, kernels[2]) * np.float32(1 / BATCH)  # stand-in for dloss/dlogits
    da2 = tf.linalg.matmul(dz, kernels[2], transpose_b=True) * tf.cast(a2 > 0, tf.float32)
    da1 = tf.linalg.matmul(da2, kernels[1], transpose_b=True) * tf.cast(a1 > 0, tf.float32)
    return [tf.linalg.matmul(x, da1, transpose_a=True), tf.linalg.matmul(a1, da2, transpose_a=True),
            tf.linalg.matmul(a2, dz, transpose_a=True)]


def loop(nets, x):
    """A traced loop of STEPS plain gradient steps on every net in ``nets``."""
    @tf.function(autograph=False)
    def run():
        def body(i):
            for kernels in nets:
                for var, grad in zip(kernels, passes(x, kernels)):
                    var.assign_sub(np.float32(1e-3) * grad)
            return (i + 1,)
        return tf.while_loop(lambda i: i < STEPS, body, (tf.constant(0),))
    return run


def main():
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)

    def kernel(*shape):
        return tf.Variable((rng.normal(size=shape) * 0.05).astype(np.float32))

    x = tf.constant(rng.normal(size=(BATCH, FEATURES)).astype(np.float32))
    shapes = [((FEATURES, h1), (h1, h2), (h2, CLASSES)) for h1, h2 in ARCHS]
    separate = loop([[kernel(*s) for s in net] for net in shapes for _ in range(FOLDS)], x)
    stacked = loop([[kernel(FOLDS, *s) for s in net] for net in shapes],
                   tf.broadcast_to(x, (FOLDS, BATCH, FEATURES)))
    seconds = {}
    for name, run in (("separate", separate), ("stacked", stacked)) * 2:
        run()  # the first call traces; the second (and a repeat) are timed
        start = time.perf_counter()
        run()
        seconds.setdefault(name, []).append(time.perf_counter() - start)
    best = {name: min(times) for name, times in seconds.items()}
    print(f"{len(ARCHS)} architectures x {FOLDS} folds, {STEPS} steps on batches of {BATCH}, "
          f"1 thread:")
    for name, s in best.items():
        print(f"  {name:9s} {s:6.2f} s")
    print(f"  stacked / separate: {best['stacked'] / best['separate']:.2f}")


if __name__ == "__main__":
    main()
