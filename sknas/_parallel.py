"""Where candidates train: in this process, or spread over joblib workers.

The executor keeps one ``joblib.Parallel`` open for the whole search, so the
workers (and what they hold) live from the first controller epoch to the
last:

* with loky (the default backend), arrays above ``max_nbytes`` are dumped
  once to a memory-mapped file in the pool's temporary folder and every task
  sends only a reference to it: the training data is written once per fit;
* with Dask, the :class:`~sknas._data.CandidateData` is scattered once per
  fit to every worker (``broadcast=True``) and the tasks carry its future.
  Dask's active memory manager may drop the extra copies between controller
  epochs; a worker that needs the rows again fetches them from a peer, never
  from the client.

Each worker limits TensorFlow's intra- and inter-op thread pools to its share
of the cores before TensorFlow is initialised in it, so parallel workers do
not oversubscribe a machine.
"""

from __future__ import annotations

import os
import signal
import socket

import joblib
from joblib._parallel_backends import LokyBackend
from joblib.parallel import get_active_backend

from ._data import CandidateResult

__all__ = ["CandidateExecutor", "thread_share"]


def thread_share(n_procs):
    """TensorFlow threads for one of ``n_procs`` worker processes on this host.

    Parameters
    ----------
    n_procs : int
        Worker processes sharing this machine's cores.

    Returns
    -------
    n_threads : int
        ``cpu_count() // n_procs``, at least 1 (``joblib.cpu_count`` honours
        CPU affinity and container quotas).
    """
    return max(1, joblib.cpu_count() // max(1, int(n_procs)))


def _limit_threads(n_threads):
    """Set TensorFlow's thread pools to ``n_threads``; return the values in force.

    TensorFlow reads these settings once, when its runtime starts in the
    process; afterwards a different value cannot be applied and the first one
    stays (reported by the returned values).
    """
    import tensorflow as tf
    threading = tf.config.threading
    try:
        threading.set_intra_op_parallelism_threads(n_threads)
        threading.set_inter_op_parallelism_threads(n_threads)
    except RuntimeError:  # runtime already started with another setting: keep it
        pass
    return (threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads())


def _ignore_sigint():
    """Loky worker initializer: leave Ctrl-C to the main process.

    A terminal sends SIGINT to the whole foreground process group, so the
    workers get it too; left alone, it would raise ``KeyboardInterrupt`` in
    the middle of a chunk (or kill an idle worker) and lose that work. The
    main process decides instead: its first Ctrl-C stops the search after the
    candidates now training, the second aborts and terminates the workers.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _procs_on_this_host(procs_per_host, default):
    """Worker processes on this machine: from the Dask scheduler's view, if any."""
    if not procs_per_host:
        return default
    try:
        from distributed import get_worker
        from distributed.comm import get_address_host
        host = get_address_host(get_worker().address)
    except (ImportError, ValueError):
        return default
    return procs_per_host.get(host, default)


def _train_chunk(trainer, start, chunk, data, seed, n_procs, procs_per_host=None):
    """Runs in a worker: train one contiguous chunk of a controller epoch.

    Returns ``(start, results, info)``; ``info`` says where and how it ran.
    """
    threads = _limit_threads(thread_share(_procs_on_this_host(procs_per_host, n_procs)))
    results = trainer.train(chunk, data, seed)
    info = {"host": socket.gethostname(), "pid": os.getpid(), "start": start,
            "n_candidates": len(chunk), "intra_op_threads": threads[0],
            "inter_op_threads": threads[1], "data_id": id(data),
            "data_memmap": getattr(data.X, "filename", None)}
    return start, results, info


class CandidateExecutor:
    """Train the candidates of a controller epoch in-process or through joblib.

    With one effective job, a population trains in this process. Otherwise it
    is split into contiguous chunks, one per worker, run through the active
    joblib backend (loky processes by default, Dask workers inside
    ``joblib.parallel_backend('dask')``, Ray inside
    ``joblib.parallel_backend('ray')``). Results come back in candidate
    order, so the caller merges shared weights exactly as when training
    sequentially.

    If a call fails (a worker died, the backend broke), the results of the
    chunks that finished are kept and every candidate of the other chunks is
    trained again, one per task; its message then says it was retried. A
    candidate whose retry fails too is recorded as failed. The search goes on
    either way.

    Use as a context manager, so the worker pool lives for the whole search.

    Parameters
    ----------
    trainer : PopulationTrainer or KerasTrainer
        What trains a list of candidates; pickled to the workers.
    n_jobs : int or None, default=None
        As in joblib: ``None`` means 1 unless a ``parallel_backend`` context
        says otherwise, ``-1`` all cores (all Dask worker threads).
    max_nbytes : str or int, default='1K'
        Arrays larger than this are memory-mapped to the loky workers.

    Attributes
    ----------
    worker_log : list of dict
        One entry per task that completed in a worker: ``host``, ``pid``,
        ``start`` (first candidate of the chunk), ``n_candidates``,
        ``intra_op_threads``, ``inter_op_threads`` (TensorFlow's settings in
        that worker), ``data_id`` (identity of the data object in the
        worker) and ``data_memmap`` (file backing the training rows, or
        ``None`` when they were not memory-mapped).
    n_retried : int
        Candidates trained again after a worker failure.
    """

    def __init__(self, trainer, n_jobs=None, max_nbytes="1K"):
        self.trainer = trainer
        self.n_jobs = n_jobs
        self.max_nbytes = max_nbytes
        self.worker_log = []
        self.n_retried = 0
        self._parallel = None
        self._client = None
        self._scattered = None

    @property
    def n_workers(self):
        """Number of parallel workers the active backend gives ``n_jobs``."""
        return joblib.effective_n_jobs(self.n_jobs)

    def __enter__(self):
        if self.n_workers > 1:
            self._open()
        return self

    def __exit__(self, *exc):
        self._close(*exc)
        self._scattered = None
        self._client = None

    def _open(self):
        backend, _ = get_active_backend()
        extra = {"initializer": _ignore_sigint} if isinstance(backend, LokyBackend) else {}
        self._parallel = joblib.Parallel(n_jobs=self.n_jobs, max_nbytes=self.max_nbytes,
                                         return_as="generator_unordered", **extra)
        self._parallel.__enter__()
        self._client = getattr(backend, "client", None)  # a Dask backend has one

    def _close(self, *exc):
        if self._parallel is not None:
            self._parallel.__exit__(*(exc or (None, None, None)))
            self._parallel = None

    def _reopen(self):
        """A broken pool (a worker died) is replaced by a fresh one."""
        self._close()
        self._open()

    # ------------------------------------------------------------ training
    def run(self, candidates, data, seed):
        """Train ``candidates``; results come back in candidate order.

        Parameters
        ----------
        candidates : list of (layers, initial_weights, seed)
        data : CandidateData
        seed : int
            Population seed.

        Returns
        -------
        results : list of CandidateResult
        """
        if self._parallel is None:
            return self.trainer.train(candidates, data, seed)
        n = min(self.n_workers, len(candidates))
        bounds = [round(i * len(candidates) / n) for i in range(n + 1)]
        tasks = [(a, candidates[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]
        done, error = self._submit(tasks, data, seed)
        results = [None] * len(candidates)
        for start, chunk_results in done.items():
            results[start:start + len(chunk_results)] = chunk_results
        for i, result in enumerate(results):
            if result is None:
                results[i] = self._retry_one(candidates[i], data, seed, error)
        return results

    def _submit(self, tasks, data, seed):
        """Run ``(start, chunk)`` tasks; return finished chunks and the error, if any."""
        ref, n_procs, per_host = self._data_ref(data), self.n_workers, self._procs_per_host()
        jobs = (joblib.delayed(_train_chunk)(self.trainer, start, chunk, ref, seed, n_procs,
                                             per_host) for start, chunk in tasks)
        done = {}
        try:
            for start, chunk_results, info in self._parallel(jobs):
                done[start] = chunk_results
                self.worker_log.append(info)
        except Exception as exc:  # noqa: BLE001 - a worker died or the backend broke
            self._reopen()
            return done, exc
        return done, None

    def _retry_one(self, candidate, data, seed, error):
        """Train one candidate again after ``error``; record it failed if that fails too."""
        self.n_retried += 1
        why = f"{type(error).__name__}: {error}".splitlines()[0]
        done, again = self._submit([(0, [candidate])], data, seed)
        if 0 in done:
            result = done[0][0]
            note = f"retried after a worker failure ({why})"
            result.message = f"{result.message}; {note}" if result.message else note
            return result
        return CandidateResult(status="failed", error=again,
                               message=f"worker failed twice: {why}; then "
                                       f"{type(again).__name__}: {again}".splitlines()[0])

    # ------------------------------------------------------------ placement
    def _data_ref(self, data):
        """What the tasks carry for ``data``: itself, or its Dask future (scattered once)."""
        if self._client is None:
            return data
        if self._scattered is None or self._scattered[0] is not data:
            future = self._client.scatter(data, broadcast=True, hash=False)
            self._scattered = (data, future)
        return self._scattered[1]

    def _procs_per_host(self):
        """Dask only: worker processes per host, for each worker's thread share."""
        if self._client is None:
            return None
        counts = {}
        for info in self._client.scheduler_info(n_workers=-1)["workers"].values():
            counts[info["host"]] = counts.get(info["host"], 0) + 1
        return counts
