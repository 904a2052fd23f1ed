"""Where candidates train: in this process, or spread over joblib workers."""

from __future__ import annotations

import os

import joblib

from ._trainer import CandidateResult

__all__ = ["CandidateExecutor"]


def _limit_threads(n_threads):
    import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n_threads)
        tf.config.threading.set_inter_op_parallelism_threads(n_threads)
    except RuntimeError:  # TF already initialised in this worker: keep its setting
        pass


def _train_chunk(trainer, chunk, data, seed, n_workers):
    """Runs in a worker: train one chunk of a population."""
    _limit_threads(max(1, (os.cpu_count() or 1) // max(1, n_workers)))
    return trainer.train(chunk, data, seed)


class CandidateExecutor:
    """Train populations in-process or in parallel through joblib.

    With one effective job, a population trains in this process. Otherwise it
    is split into contiguous chunks, one per worker, run through the active
    joblib backend (loky processes by default, Dask inside
    ``joblib.parallel_backend('dask')``). A failed call (a worker died) is
    retried one candidate at a time; a candidate that fails again is
    recorded as failed.

    Use as a context manager so the worker pool lives for the whole search.

    Parameters
    ----------
    trainer : PopulationTrainer or KerasTrainer
    n_jobs : int or None
        As in joblib: ``None`` means 1 unless a ``parallel_backend`` context
        says otherwise, ``-1`` all cores.
    """

    def __init__(self, trainer, n_jobs=None):
        self.trainer = trainer
        self.n_jobs = n_jobs
        self._parallel = None

    @property
    def n_workers(self):
        return joblib.effective_n_jobs(self.n_jobs)

    def __enter__(self):
        if self.n_workers > 1:
            self._parallel = joblib.Parallel(n_jobs=self.n_jobs, max_nbytes="1K")
            self._parallel.__enter__()
        return self

    def __exit__(self, *exc):
        if self._parallel is not None:
            self._parallel.__exit__(*exc)
            self._parallel = None

    def run(self, candidates, data, seed):
        """Train ``candidates``; results come back in candidate order."""
        if self._parallel is None or len(candidates) == 1:
            return self.trainer.train(candidates, data, seed)
        n = min(self.n_workers, len(candidates))
        bounds = [round(i * len(candidates) / n) for i in range(n + 1)]
        chunks = [candidates[a:b] for a, b in zip(bounds, bounds[1:])]
        try:
            out = self._parallel(joblib.delayed(_train_chunk)(self.trainer, c, data, seed, n)
                                 for c in chunks)
            return [r for chunk_results in out for r in chunk_results]
        except Exception:  # noqa: BLE001 - a worker died or the backend broke
            return [self._retry_one(c, data, seed, n) for c in candidates]

    def _retry_one(self, candidate, data, seed, n):
        try:
            return self._parallel([joblib.delayed(_train_chunk)(self.trainer, [candidate],
                                                                data, seed, n)])[0][0]
        except Exception as exc:  # noqa: BLE001
            return CandidateResult(status="failed", error=exc,
                                   message=f"worker failed twice: {type(exc).__name__}: {exc}")
