"""The one place that prints search progress."""

from __future__ import annotations

import time

__all__ = ["Reporter"]


class Reporter:
    """Progress output of a search, gated by ``verbose``.

    Levels: 0 silent; 1 one line per controller epoch (best so far, mean
    reward, elapsed time), the end of the search, and the stages after it
    (the finalists' cross-validation, the ensemble, the served model); 2
    also one line per candidate (architecture, reward, predicted reward,
    time) and per finalist (its cross-validated score).

    Parameters
    ----------
    verbose : int
    sink : callable, default=print
        Receives each line; pass ``logging.getLogger(...).info`` to log.
    """

    def __init__(self, verbose=0, sink=print):
        self.verbose = verbose
        self.sink = sink
        self._start = time.perf_counter()

    def _emit(self, level, line):
        if self.verbose >= level:
            self.sink(line)

    def search_start(self, n_epochs, per_epoch, space_size):
        self._start = time.perf_counter()
        self._emit(1, f"[sknas] searching {n_epochs} controller epochs x {per_epoch} "
                      f"candidates in a space of {space_size} architectures")

    def candidate(self, trial, n_total):
        pred = "" if trial.predicted_reward != trial.predicted_reward else \
            f", predicted={trial.predicted_reward:.3f}"
        if trial.status == "ok":
            what = f"reward={trial.reward:.4f}{pred}"
        else:
            what = f"FAILED ({trial.message}){pred}"
        self._emit(2, f"[sknas] [{trial.index + 1}/{n_total}] {trial.architecture}; "
                      f"{what}; {trial.fit_time:.2f}s")

    def epoch(self, row, n_epochs):
        failed = row.get("n_failed", 0)
        failed = f", {failed} failed" if failed else ""
        self._emit(1, f"[sknas] controller epoch {row['controller_epoch'] + 1}/{n_epochs}: "
                      f"best so far={row['best_reward']:.4f}, mean reward={row['mean_reward']:.4f}"
                      f"{failed}, elapsed={time.perf_counter() - self._start:.1f}s")

    def message(self, line):
        self._emit(1, f"[sknas] {line}")

    def detail(self, line):
        """A line shown from ``verbose=2`` on (as the per-candidate lines)."""
        self._emit(2, f"[sknas] {line}")
