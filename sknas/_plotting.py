"""Plots of a search, as scikit-learn style Display objects.

Each display stores its data in ``__init__``, draws in ``plot(ax=None)``
(returning itself) and is built with ``from_estimator(est)`` from a fitted
:class:`~sknas.MLPNASClassifier`, or with ``from_results(results)`` from a
results table (``search_results_``, its DataFrame, or a run read back by
:func:`sknas.load_run`). Matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["ControllerHistoryDisplay", "PredictorDisplay", "RewardDistributionDisplay",
           "RewardHistoryDisplay"]


# ---------------------------------------------------------------- helpers
def _pyplot(caller):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is a test dependency
        raise ImportError(f"{caller} requires matplotlib: pip install 'sknas[plot]'") from exc
    return plt


def _new_ax(ax, caller):
    if ax is None:
        _, ax = _pyplot(caller).subplots()
    return ax


def _columns(source, attribute):
    """Columns of a results table or history as a dict of arrays.

    ``source`` is a fitted estimator (``attribute`` is read from it), an object
    with ``.results``/``.history`` (a loaded run), a mapping of columns or a
    DataFrame.
    """
    if hasattr(source, attribute):
        source = getattr(source, attribute)
    elif attribute == "search_results_" and hasattr(source, "results"):
        source = source.results
    elif attribute == "controller_history_" and hasattr(source, "history"):
        source = source.history
    if hasattr(source, "to_dict") and hasattr(source, "columns"):
        return {c: source[c].to_numpy() for c in source.columns}
    if isinstance(source, Mapping):
        return {k: np.asarray(v) for k, v in source.items()}
    raise TypeError(f"Expected a fitted MLPNASClassifier, a loaded run, a dict of columns or a "
                    f"DataFrame; got {type(source).__name__}. Is the estimator fitted?")


def _results(source):
    cols = _columns(source, "search_results_")
    if "reward" not in cols:
        raise ValueError("The results table has no 'reward' column.")
    n = len(cols["reward"])
    rewards = np.asarray(cols["reward"], dtype=float)
    status = np.asarray(cols.get("status", np.full(n, "ok")), dtype=object)
    epochs = np.asarray(cols.get("controller_epoch", np.zeros(n)), dtype=int)
    predicted = np.asarray(cols.get("predicted_reward", np.full(n, np.nan)), dtype=float)
    return rewards, status, epochs, predicted


class _ResultsDisplay:
    """What the displays of the results table share: building from an estimator."""

    @classmethod
    def from_estimator(cls, estimator, **kwargs):
        """Plot the search of a fitted :class:`~sknas.MLPNASClassifier`.

        Parameters
        ----------
        estimator : MLPNASClassifier
            Fitted estimator (or a Pipeline ending in one).
        **kwargs
            Passed to :meth:`from_results` (``ax``, and ``bins`` for the
            histogram).

        Returns
        -------
        display
            The display, drawn.
        """
        return cls.from_results(_final(estimator), **kwargs)


# ---------------------------------------------------------- reward history
class RewardHistoryDisplay(_ResultsDisplay):
    """Reward of every candidate in search order, with the running best.

    Vertical lines separate controller epochs; failed candidates are marked
    with a red cross on the x axis (the controller saw them as reward 0).

    Parameters
    ----------
    rewards : array-like of shape (n_candidates,)
        Reward of each candidate, in the order they were trained.
    controller_epoch : array-like of shape (n_candidates,), default=None
        Controller epoch of each candidate; ``None`` draws no boundaries.
    status : array-like of shape (n_candidates,), default=None
        ``'ok'`` or ``'failed'`` per candidate; ``None`` means all ok.

    Attributes
    ----------
    points_ : matplotlib.collections.PathCollection
        The rewards of the successful candidates.
    failed_ : matplotlib.collections.PathCollection or None
        The failed candidates, if any.
    best_line_ : matplotlib.lines.Line2D
        The running best reward.
    boundary_lines_ : list of matplotlib.lines.Line2D
        One vertical line per controller-epoch boundary.
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sknas import RewardHistoryDisplay
    >>> disp = RewardHistoryDisplay([0.5, 0.7, 0.6, 0.8], [0, 0, 1, 1]).plot()
    >>> disp.best_line_.get_ydata().tolist()
    [0.5, 0.7, 0.7, 0.8]
    """

    def __init__(self, rewards, controller_epoch=None, status=None):
        self.rewards = np.asarray(rewards, dtype=float)
        self.controller_epoch = None if controller_epoch is None else np.asarray(controller_epoch)
        self.status = (np.full(len(self.rewards), "ok", dtype=object) if status is None
                       else np.asarray(status, dtype=object))

    def plot(self, ax=None):
        """Draw the plot.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
            Axes to draw on; a new figure is created if ``None``.

        Returns
        -------
        display : RewardHistoryDisplay
        """
        ax = _new_ax(ax, "RewardHistoryDisplay")
        x = np.arange(len(self.rewards))
        ok = (self.status == "ok") & np.isfinite(self.rewards)
        self.points_ = ax.scatter(x[ok], self.rewards[ok], s=18, label="candidate")
        running = np.fmax.accumulate(np.where(ok, self.rewards, np.nan)) if len(x) else x
        (self.best_line_,) = ax.plot(x, running, color="C1", drawstyle="steps-post",
                                     label="best so far")
        self.failed_ = None
        if (~ok).any():
            self.failed_ = ax.scatter(x[~ok], np.zeros((~ok).sum()), marker="x", color="red",
                                      label="failed")
        self.boundary_lines_ = [ax.axvline(b - 0.5, color="grey", linestyle=":", linewidth=1)
                                for b in self._boundaries()]
        ax.set(xlabel="candidate (row of search_results_)", ylabel="reward (validation score)",
               title="Reward over the search")
        ax.xaxis.set_major_locator(_integer_locator())
        ax.legend(loc="best")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    def _boundaries(self):
        if self.controller_epoch is None or len(self.controller_epoch) < 2:
            return []
        return (np.flatnonzero(np.diff(self.controller_epoch) != 0) + 1).tolist()

    @classmethod
    def from_results(cls, results, *, ax=None):
        """Plot from a results table.

        Parameters
        ----------
        results : dict of array-like, DataFrame or loaded run
            ``search_results_``, ``pd.DataFrame(search_results_)`` or the
            return value of :func:`sknas.load_run`.
        ax : matplotlib.axes.Axes, default=None

        Returns
        -------
        display : RewardHistoryDisplay
        """
        rewards, status, epochs, _ = _results(results)
        return cls(rewards, epochs, status).plot(ax=ax)



# ----------------------------------------------------- reward distribution
class RewardDistributionDisplay(_ResultsDisplay):
    """Histogram of the rewards of the successful candidates.

    Parameters
    ----------
    rewards : array-like of shape (n_candidates,)
        Rewards; NaN (failed candidates) are left out.
    bins : int or sequence, default=20
        Passed to :func:`numpy.histogram`.

    Attributes
    ----------
    bars_ : matplotlib.container.BarContainer
        One bar per bin.
    counts_ : ndarray of shape (n_bins,)
    bin_edges_ : ndarray of shape (n_bins + 1,)
    best_line_ : matplotlib.lines.Line2D or None
        Vertical line at the best reward.
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sknas import RewardDistributionDisplay
    >>> disp = RewardDistributionDisplay([0.5, 0.7, 0.6, 0.8], bins=3).plot()
    >>> int(disp.counts_.sum())
    4
    """

    def __init__(self, rewards, bins=20):
        self.rewards = np.asarray(rewards, dtype=float)
        self.bins = bins

    def plot(self, ax=None):
        """Draw the histogram.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None

        Returns
        -------
        display : RewardDistributionDisplay
        """
        ax = _new_ax(ax, "RewardDistributionDisplay")
        r = self.rewards[np.isfinite(self.rewards)]
        self.counts_, self.bin_edges_ = np.histogram(r, bins=self.bins)
        self.bars_ = ax.bar(self.bin_edges_[:-1], self.counts_, width=np.diff(self.bin_edges_),
                            align="edge", edgecolor="white")
        self.best_line_ = None
        if r.size:
            self.best_line_ = ax.axvline(r.max(), color="C1", linestyle="--",
                                         label=f"best = {r.max():.4f}")
            ax.legend(loc="upper left")
        ax.set(xlabel="reward (validation score)", ylabel="candidates",
               title=f"Distribution of rewards ({r.size} candidates)")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_results(cls, results, *, bins=20, ax=None):
        """Plot from a results table (see :meth:`RewardHistoryDisplay.from_results`).

        Parameters
        ----------
        results : dict of array-like, DataFrame or loaded run
        bins : int or sequence, default=20
        ax : matplotlib.axes.Axes, default=None

        Returns
        -------
        display : RewardDistributionDisplay
        """
        rewards, status, _, _ = _results(results)
        return cls(np.where(status == "ok", rewards, np.nan), bins=bins).plot(ax=ax)



# -------------------------------------------------------------- predictor
class PredictorDisplay(_ResultsDisplay):
    """Reward predicted by the controller against the reward observed.

    Points on the diagonal are perfect predictions; the title gives the
    Pearson correlation. Candidates without a prediction (NaN, e.g. with
    ``Reinforce(use_predictor=False)`` or ``strategy='random'``) or without a reward
    are left out and counted in ``n_missing_``. Given each candidate's
    controller epoch, an inset panel draws the predictor's Spearman rank
    correlation within each controller epoch (the ``predictor_spearman``
    column of ``controller_history_``): how well it ranks the candidates
    it is asked to screen.

    Parameters
    ----------
    predicted : array-like of shape (n_candidates,)
    observed : array-like of shape (n_candidates,)
    controller_epoch : array-like of shape (n_candidates,), default=None
        Controller epoch of each candidate; ``None`` draws no inset.

    Attributes
    ----------
    correlation_ : float
        Pearson correlation of the drawn points (NaN with fewer than two
        points or no spread).
    n_missing_ : int
        Candidates left out.
    spearman_ : dict of int to float
        Spearman rank correlation per controller epoch (NaN with fewer than
        3 candidates or no spread); empty without ``controller_epoch``.
    points_ : matplotlib.collections.PathCollection
    diagonal_line_ : matplotlib.lines.Line2D
    spearman_line_ : matplotlib.lines.Line2D or None
        The per-epoch Spearman correlation, in the inset ``inset_ax_``
        (both ``None`` without ``controller_epoch``).
    inset_ax_ : matplotlib.axes.Axes or None
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sknas import PredictorDisplay
    >>> disp = PredictorDisplay([0.5, 0.6, 0.7], [0.4, 0.6, 0.8]).plot()
    >>> round(disp.correlation_, 3)
    1.0
    """

    def __init__(self, predicted, observed, controller_epoch=None):
        self.predicted = np.asarray(predicted, dtype=float)
        self.observed = np.asarray(observed, dtype=float)
        self.controller_epoch = controller_epoch

    def plot(self, ax=None):
        """Draw the scatter plot.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None

        Returns
        -------
        display : PredictorDisplay
        """
        ax = _new_ax(ax, "PredictorDisplay")
        keep = np.isfinite(self.predicted) & np.isfinite(self.observed)
        p, o = self.predicted[keep], self.observed[keep]
        self.n_missing_ = int((~keep).sum())
        self.correlation_ = _pearson(p, o)
        self.points_ = ax.scatter(o, p, s=18, label="candidate")
        both = np.concatenate([p, o])
        lo, hi = (both.min(), both.max()) if both.size else (0.0, 1.0)
        (self.diagonal_line_,) = ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--",
                                         label="perfect prediction")
        r = "n/a" if np.isnan(self.correlation_) else f"{self.correlation_:.3f}"
        title = f"Reward predictor: Pearson r = {r}"
        if self.n_missing_:
            title += f" ({self.n_missing_} without prediction)"
        ax.set(xlabel="observed reward (validation score)", ylabel="predicted reward",
               title=title)
        ax.legend(loc="upper left")
        self._plot_spearman(ax)
        self.ax_, self.figure_ = ax, ax.figure
        return self

    def _plot_spearman(self, ax):
        """The inset of per-epoch Spearman correlations."""
        self.spearman_, self.spearman_line_, self.inset_ax_ = {}, None, None
        if self.controller_epoch is None:
            return
        from ._trial import epoch_spearman
        self.spearman_ = epoch_spearman({"controller_epoch": self.controller_epoch,
                                         "predicted_reward": self.predicted,
                                         "reward": self.observed})
        inset = ax.inset_axes([0.6, 0.1, 0.37, 0.32])
        epochs = np.array(sorted(self.spearman_), dtype=float)
        rho = np.array([self.spearman_[int(e)] for e in epochs])
        (self.spearman_line_,) = inset.plot(epochs + 1, rho, marker="o", markersize=3)
        inset.axhline(0.0, color="grey", linewidth=0.8)
        inset.set_ylim(-1.05, 1.05)
        inset.set_title("Spearman per controller epoch", fontsize=7)
        inset.tick_params(labelsize=6)
        inset.xaxis.set_major_locator(_integer_locator())
        if not np.isfinite(rho).any():
            inset.text(0.5, 0.5, "not defined", ha="center", va="center", fontsize=7,
                       transform=inset.transAxes)
        self.inset_ax_ = inset

    @classmethod
    def from_results(cls, results, *, ax=None):
        """Plot from a results table (see :meth:`RewardHistoryDisplay.from_results`).

        Parameters
        ----------
        results : dict of array-like, DataFrame or loaded run
        ax : matplotlib.axes.Axes, default=None

        Returns
        -------
        display : PredictorDisplay
        """
        rewards, status, epochs, predicted = _results(results)
        return cls(predicted, np.where(status == "ok", rewards, np.nan), epochs).plot(ax=ax)



def _pearson(a, b):
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


# ----------------------------------------------------- controller history
class ControllerHistoryDisplay:
    """The controller's training, one subplot per quantity.

    Parameters
    ----------
    history : dict of array-like or DataFrame
        ``controller_history_``: one row per controller epoch.
    metrics : sequence of str, default=('loss', 'baseline', 'entropy', 'mean_reward')
        Columns to draw, one subplot each. A missing column is drawn as
        "not recorded".

    Attributes
    ----------
    lines_ : dict of str to matplotlib.lines.Line2D
        The line of each metric (absent for metrics not recorded).
    axes_ : ndarray of matplotlib.axes.Axes
        One per metric, in the order of ``metrics``.
    figure_ : matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sknas import ControllerHistoryDisplay
    >>> history = {"loss": [1.0, 0.5], "baseline": [0.5, 0.55],
    ...            "entropy": [2.0, 1.9], "mean_reward": [0.6, 0.7]}
    >>> disp = ControllerHistoryDisplay(history).plot()
    >>> len(disp.axes_)
    4
    """

    def __init__(self, history, metrics=("loss", "baseline", "entropy", "mean_reward")):
        self.history = history
        self.metrics = tuple(metrics)

    def plot(self, ax=None):
        """Draw the subplots.

        Parameters
        ----------
        ax : array-like of matplotlib.axes.Axes, default=None
            One axes per metric; a new figure with a grid of subplots is
            created if ``None``.

        Returns
        -------
        display : ControllerHistoryDisplay
        """
        cols = _columns(self.history, "controller_history_")
        axes = self._axes(ax)
        n = max((len(v) for v in cols.values()), default=0)
        x = np.asarray(cols.get("controller_epoch", np.arange(n)), dtype=float) + 1
        self.lines_ = {}
        for name, a in zip(self.metrics, axes):
            a.set(title=name.replace("_", " "), xlabel="controller epoch")
            y = np.asarray(cols[name], dtype=float) if name in cols else np.full(n, np.nan)
            if not np.isfinite(y).any():
                a.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=a.transAxes)
                continue
            (self.lines_[name],) = a.plot(x, y, marker="o")
            a.xaxis.set_major_locator(_integer_locator())
            a.ticklabel_format(axis="y", useOffset=False)
        self.axes_ = np.asarray(axes, dtype=object)
        self.figure_ = axes[0].figure
        self.figure_.suptitle("Controller history")
        return self

    def _axes(self, ax):
        if ax is not None:
            axes = list(np.ravel(np.asarray(ax, dtype=object)))
            if len(axes) != len(self.metrics):
                raise ValueError(f"ax must hold {len(self.metrics)} axes, one per metric; "
                                 f"got {len(axes)}.")
            return axes
        plt = _pyplot("ControllerHistoryDisplay")
        ncols = 2 if len(self.metrics) > 1 else 1
        nrows = -(-len(self.metrics) // ncols)
        fig, grid = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False,
                                 layout="constrained")
        for extra in grid.ravel()[len(self.metrics):]:
            extra.remove()
        return list(grid.ravel()[:len(self.metrics)])

    @classmethod
    def from_history(cls, history, *, ax=None):
        """Plot a controller history.

        Parameters
        ----------
        history : dict of array-like, DataFrame or loaded run
            ``controller_history_``, its DataFrame or the return value of
            :func:`sknas.load_run`.
        ax : array-like of matplotlib.axes.Axes, default=None

        Returns
        -------
        display : ControllerHistoryDisplay
        """
        return cls(_columns(history, "controller_history_")).plot(ax=ax)

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Plot the controller history of a fitted :class:`~sknas.MLPNASClassifier`.

        Parameters
        ----------
        estimator : MLPNASClassifier
            Fitted estimator (or a Pipeline ending in one).
        ax : array-like of matplotlib.axes.Axes, default=None

        Returns
        -------
        display : ControllerHistoryDisplay
        """
        return cls.from_history(_final(estimator), ax=ax)


def _integer_locator():
    from matplotlib.ticker import MaxNLocator
    return MaxNLocator(integer=True)


def _final(estimator):
    """The search estimator itself, or the last step of a Pipeline."""
    if hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    if not hasattr(estimator, "search_results_"):
        raise ValueError(f"{type(estimator).__name__} is not fitted: call fit first.")
    return estimator
