"""One self-contained HTML page per search.

:func:`run_report` (behind :meth:`sknas.Run.to_html` and ``sknas report RUN_DIR
--html``) and :func:`estimator_report` (for a fitted estimator) write a single
HTML file that a person opens in a browser, mails or attaches to a ticket:

- no server and no network: the plots are PNG images inlined as base64
  ``data:`` URIs, the styles are inline, the leaderboard sorts with a small
  inline script, and a Content-Security-Policy ``<meta>`` tag forbids the
  page to load anything from anywhere else;
- every value taken from the run is escaped with :func:`html.escape`;
- nothing is written but the page itself: the run folder is only read.

The page is built with the standard library (no template engine); the plots
need matplotlib (the ``plot`` extra), and without it the page says so and
shows everything else. The labels are generic ("reward", "validation score")
so that classification and regression runs read the same way, and columns
that the results table may gain (cross-validated scores, ensemble weights)
show up in the leaderboard when they are present.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._jsonsafe import json_safe

__all__ = ["estimator_report", "render_report", "run_report"]

#: Why a search stopped, in words (``stop_reason`` / ``stop_reason_``).
STOP_REASONS = {
    "completed": "every controller epoch ran",
    "max_time": "the max_time budget ran out",
    "max_candidates": "the max_candidates budget was reached",
    "interrupted": "stopped by Ctrl-C; the best candidate so far was refit",
    "exhausted": "every architecture of the search space had been tried",
}

#: Leaderboard columns in the order shown; other numeric columns of the results
#: table (e.g. ``cv_score``, ``cv_std``, ``ensemble_weight``) follow ``reward``.
_LEAD = ("rank", "architecture", "reward")
_TAIL = ("predicted_reward", "last_score", "max_score", "n_layers", "n_params",
         "controller_epoch", "fit_time", "status", "message")
#: Columns of the results table never shown in the leaderboard.
_HIDDEN = frozenset({"layers", "host", "pid"})
#: Per-fold columns (``split0_score``, ``split1_score``, ...): one leaderboard column
#: per suffix lists them all.
_FOLD = re.compile(r"^split(\d+)_(\w+)$")

_COLUMN_HELP = {
    "#": "row of the results table: the order in which the candidates were trained",
    "rank": "1 for the best: cross-validated finalists (if any) first by cv score, then "
            "the others by reward; failed candidates rank last",
    "architecture": "hidden layers, then the output layer",
    "reward": "the validation score the controller learned from",
    "best_epoch": "training epochs behind the candidate's weights",
    "predicted_reward": "the controller's predicted reward, made before training",
    "last_score": "validation score after the last training epoch",
    "max_score": "best per-epoch validation score",
    "n_layers": "hidden layers (a dropout layer counts)",
    "n_params": "trainable parameters",
    "learning_rate": "the candidate's own Adam learning rate (searched by the space)",
    "weight_decay": "the candidate's own weight decay (searched by the space)",
    "controller_epoch": "controller epoch that sampled the candidate (0-based)",
    "fit_time": "seconds of training charged to the candidate",
    "status": "'ok', or 'failed' with the error in 'message'",
    "message": "the error of a failed candidate",
    "cv_score": "cross-validated score",
    "cv_std": "standard deviation of the cross-validated score over the folds",
    "ensemble_weight": "weight of the candidate in the refit ensemble",
}

_PLOTS = (("reward_history", "Reward of every candidate in search order, with the best so far "
           "and the controller-epoch boundaries"),
          ("reward_distribution", "Distribution of the rewards of the successful candidates"),
          ("predictor", "The controller's predicted reward against the observed reward; "
           "inset: the predictor's Spearman rank correlation within each controller epoch "
           "(the predictor_spearman column of the controller history)"),
          ("controller_history", "The controller's loss, baseline, entropy and mean reward "
           "per controller epoch"))


# --------------------------------------------------------------- the data
@dataclass
class _Page:
    """What one page shows, whatever it was built from."""

    title: str
    source: str
    results: dict
    history: dict
    params: dict
    meta: dict = field(default_factory=dict)
    task: str = "classification"
    classes: object = None
    n_features: object = None
    feature_names: object = None
    state: str = "finished"   # 'finished' or 'running'
    stop_reason: object = None
    best_index: object = None
    held_out: dict = field(default_factory=dict)
    times: list = field(default_factory=list)
    notes: list = field(default_factory=list)


def _held_out(score):
    """``held_out_score`` as an ordered ``{label: value}`` dict."""
    if score is None:
        return {}
    if isinstance(score, Mapping):
        return {str(k): v for k, v in score.items()}
    return {"held-out score": score}


def _columns(table):
    """A results table or history (dict of arrays or DataFrame) as a dict of 1-D arrays."""
    if hasattr(table, "columns") and hasattr(table, "to_numpy"):
        return {str(c): table[c].to_numpy() for c in table.columns}
    return {str(k): np.asarray(v) if not isinstance(v, np.ndarray) else v
            for k, v in dict(table or {}).items()}


def _best_index(results, *candidates):
    """The first candidate index that names a row, else the best successful row."""
    from ._trial import best_row
    n = len(results.get("reward", ()))
    for idx in candidates:
        if isinstance(idx, (int, np.integer)) and not isinstance(idx, bool) and 0 <= idx < n:
            return int(idx)
    return best_row(results) if n and "status" in results else None


def _page_from_run(run, held_out_score, notes):
    meta = dict(run.meta)
    results = _columns(run.results)
    task = meta.get("task") or "classification"
    times = [("run folder created", meta.get("created"))]
    times += [("resumed", when) for when in meta.get("resumed") or ()]
    history = _columns(run.history)
    if "elapsed" in history and len(history["elapsed"]):
        times.append(("search time (at the last controller epoch)",
                      _seconds(history["elapsed"][-1])))
    trials_file = Path(run.path) / "trials.jsonl"
    if trials_file.exists():
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(trials_file.stat().st_mtime))
        times.append(("trials.jsonl last written", stamp))
    state = "running" if meta.get("status") == "running" else "finished"
    return _Page(title=f"sknas search report: {Path(run.path).name}", source=str(run.path),
                 results=results, history=history, params=dict(run.params), meta=meta,
                 task=task, classes=getattr(run, "classes", None),
                 n_features=meta.get("n_features"), feature_names=meta.get("feature_names"),
                 state=state, stop_reason=meta.get("stop_reason"),
                 best_index=_best_index(results, meta.get("best_index")),
                 held_out=_held_out(held_out_score), times=times, notes=list(notes))


def _page_from_estimator(estimator, held_out_score):
    from sklearn.base import is_regressor

    from ._plotting import _final
    est = _final(estimator)
    task = "regression" if is_regressor(est) else "classification"
    results = _columns(est.search_results_)
    run_dir = getattr(est, "run_dir_", None)
    times = [("search time", _seconds(getattr(est, "search_time_", None))),
             ("cross-validation time", _seconds(getattr(est, "cv_time_", None))),
             ("refit time", _seconds(getattr(est, "refit_time_", None)))]
    if getattr(est, "refit_epochs_", None) is not None:
        times.append(("refit epochs", est.refit_epochs_))
    refit = getattr(est, "refit_", None)
    if refit is not None:
        times.append(("served", "the finalists' fold models" if refit == "folds" else
                      "refit on all training rows" if refit else "as the search trained it"))
    source = f"fitted {type(est).__name__}" + (f" (run folder {run_dir})" if run_dir else "")
    return _Page(title=f"sknas search report: {type(est).__name__}", source=source,
                 results=results, history=_columns(getattr(est, "controller_history_", {})),
                 params=json_safe(est.get_params()), task=task,
                 classes=getattr(est, "classes_", None),
                 n_features=getattr(est, "n_features_in_", None),
                 feature_names=json_safe(getattr(est, "feature_names_in_", None)),
                 stop_reason=getattr(est, "stop_reason_", None),
                 best_index=_best_index(results, getattr(est, "best_index_", None)),
                 held_out=_held_out(held_out_score), times=times)


# ------------------------------------------------------------- formatting
def _e(value):
    """Escape any value for HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


def _finite(value):
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _seconds(value):
    return f"{float(value):.1f} s" if _finite(value) else None


def _number(value, digits=4):
    """A number for a table cell: integers plainly, floats with ``digits`` decimals."""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if not _finite(value):
        return ""
    return f"{float(value):.{digits}f}"


def _json(value):
    return json.dumps(value, ensure_ascii=False, allow_nan=False, default=repr) \
        if not isinstance(value, str) else value


def _short(value):
    """A meta value in few characters: floats with 6 significant digits, lists joined."""
    if isinstance(value, (list, tuple)) and all(_finite(v) for v in value):
        return ", ".join(_short(v) for v in value)
    if _finite(value) and not isinstance(value, (bool, int, np.integer)):
        return f"{float(value):.6g}"
    return _json(value)


def _label(name):
    return name.replace("_", " ")


def _table(header, rows, cls=""):
    """A plain table; ``rows`` are lists of already escaped cells."""
    head = "".join(f"<th scope='col'>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _facts(pairs):
    """A two-column table of ``(label, value)``; ``None`` values are left out."""
    rows = "".join(f"<tr><th scope='row'>{_e(k)}</th><td>{_e(v)}</td></tr>"
                   for k, v in pairs if v is not None)
    return f"<table class='facts'><tbody>{rows}</tbody></table>"


# ---------------------------------------------------------------- analysis
def spearman(predicted, observed):
    """Spearman rank correlation of two samples (average ranks for ties).

    Parameters
    ----------
    predicted, observed : array-like of shape (n,)
        Pairs with a NaN in either member are left out.

    Returns
    -------
    rho : float
        NaN with fewer than two pairs or when either side is constant.
    n : int
        The number of pairs used.
    """
    from ._trial import predictor_spearman
    n = int(np.sum(np.isfinite(np.asarray(predicted, dtype=float))
                   & np.isfinite(np.asarray(observed, dtype=float))))
    return predictor_spearman(predicted, observed, min_pairs=2), n


def _ok_mask(results):
    n = len(results.get("reward", ()))
    status = np.asarray(results.get("status", np.full(n, "ok")), dtype=object)
    return status == "ok"


# ------------------------------------------------------------------- plots
def _plots(page):
    """``{name: base64 PNG or error text}``, or a string saying why there are none."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return ("The plots need matplotlib, which is not installed: "
                "pip install 'sknas[plot]' and write the page again.")
    from ._plotting import (ControllerHistoryDisplay, PredictorDisplay,
                            RewardDistributionDisplay, RewardHistoryDisplay)
    n = len(page.results.get("reward", ()))
    if n == 0:
        return "No candidate has been recorded yet, so there is nothing to plot."

    def draw(name):
        if name == "controller_history":
            if not any(len(v) for v in page.history.values()):
                raise LookupError("no controller epoch has finished yet")
            fig = Figure(figsize=(8, 6), layout="constrained")
            ControllerHistoryDisplay.from_history(page.history, ax=fig.subplots(2, 2))
            return fig
        fig = Figure(figsize=(6.4, 4.8), layout="constrained")
        ax = fig.subplots()
        if name == "reward_history":
            RewardHistoryDisplay.from_results(page.results, ax=ax)
        elif name == "reward_distribution":
            RewardDistributionDisplay.from_results(page.results, ax=ax)
        else:
            PredictorDisplay.from_results(page.results, ax=ax)
        return fig

    images = {}
    for name, _ in _PLOTS:
        try:
            fig = draw(name)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=90)
            images[name] = base64.b64encode(buf.getvalue()).decode("ascii")
        except LookupError as exc:
            images[name] = f"Not drawn: {exc}."
        except Exception as exc:  # noqa: BLE001 - one broken plot must not lose the page
            images[name] = f"This plot could not be drawn ({type(exc).__name__}: {exc})."
    return images


# ------------------------------------------------------------------ sections
def _notices(page, n, n_ok):
    out = []
    if page.state == "running":
        out.append(
            f"<p class='notice running' id='running-notice'><strong>This search is still running, "
            f"or it was interrupted before it finished.</strong> The run folder's meta.json says "
            f"status 'running': either the search is writing it now, or its process was killed. "
            f"The page shows the {n} candidate{'s' * (n != 1)} recorded so far; write it again "
            f"for a newer one, or continue an interrupted search with "
            f"<code>resume={_e(page.source)}</code>.</p>")
    for note in page.notes:
        out.append(f"<p class='notice'>{_e(note)}</p>")
    if n and not n_ok:
        out.append("<p class='notice'>No candidate succeeded: every candidate failed "
                   "(see the messages in the leaderboard).</p>")
    return "".join(out)


def _summary(page, n, n_ok):
    reason = page.stop_reason
    status = "still running or interrupted" if page.state == "running" else "finished"
    stop = None if reason is None else (
        f"{reason}: {STOP_REASONS[reason]}" if reason in STOP_REASONS else str(reason))
    n_epochs = max((len(v) for v in page.history.values()), default=0)
    search = [("status", status), ("stop reason", stop),
              ("candidates", f"{n} ({n_ok} succeeded, {n - n_ok} failed)"),
              ("controller epochs finished", n_epochs)]
    search += [(k, v) for k, v in page.times]
    search.append(("source", page.source))
    if page.meta.get("sknas_version"):
        search.append(("written by", f"sknas {page.meta['sknas_version']}"))
    return ("<section id='search'><h2>Search</h2>" + _facts(search) + "</section>"
            + "<section id='data'><h2>Data</h2>" + _facts(_data_facts(page)) + "</section>")


def _data_facts(page):
    meta = page.meta
    facts = [("task", page.task)]
    for key, label in _ROWS.items():
        if meta.get(key) is not None:
            facts.append((label, meta[key]))
    if not any(meta.get(k) is not None for k in _ROWS):
        frac = page.params.get("validation_fraction")
        facts.append(("rows", "not recorded" + (f" (validation fraction {frac})"
                                                if frac is not None else "")))
    facts.append(("features", page.n_features))
    names = page.feature_names
    if isinstance(names, (list, tuple, np.ndarray)) and len(names):
        facts.append(("feature names", ", ".join(map(str, names))))
    classes = page.classes
    if page.task != "regression" and classes is not None:
        values = list(np.asarray(classes, dtype=object).tolist())
        shown = ", ".join(map(str, values[:50])) + (", ..." if len(values) > 50 else "")
        facts.append(("classes", f"{len(values)}: {shown}"))
    for key in sorted(meta):
        if key.startswith("target") and meta[key] is not None:
            value = meta[key]
            items = value.items() if isinstance(value, Mapping) else [("", value)]
            for sub, v in items:
                label = _label(f"{key} {sub}".strip())
                if label.endswith("range") and isinstance(v, (list, tuple)) and len(v) == 2 \
                        and all(_finite(x) for x in v):
                    v = f"{_short(v[0])} to {_short(v[1])}"
                facts.append((label, _short(v)))
    if meta.get("data_sha256"):
        facts.append(("data fingerprint (SHA-256)", meta["data_sha256"]))
    for key in sorted(meta):
        if key not in _META_SHOWN and not key.startswith("target") and meta[key] is not None:
            facts.append((_label(key), _json(meta[key])))
    if meta.get("seed") is not None:
        facts.append(("search seed", meta["seed"]))
    return facts


#: Row counts a run folder's meta.json may record, and their labels.
_ROWS = {"n_samples": "rows", "n_train": "training rows", "n_val": "validation rows"}
#: meta.json keys shown elsewhere on the page (or not at all); any other key is
#: listed under Data as it is.
_META_SHOWN = frozenset({"format", "format_version", "sknas_version", "created", "seed",
                         "classes", "feature_names", "n_features", "data_sha256", "status",
                         "stop_reason", "resumed", "best_index", "best_architecture", "task",
                         *_ROWS})


def _winner(page):
    r = page.results
    i = page.best_index
    heading = "Best so far" if page.state == "running" else "Winner"
    parts = [f"<section id='winner'><h2>{heading}</h2>"]
    if i is None:
        parts.append("<p>No successful candidate yet.</p></section>")
        return "".join(parts)
    facts = [("architecture", r["architecture"][i] if "architecture" in r else None),
             ("row", i), ("reward (validation score)", _number(r["reward"][i]))]
    for col in ("cv_score", "cv_std", "predicted_reward", "best_epoch", "n_params",
                "controller_epoch"):
        if col in r and _number(r[col][i]):
            facts.append((_label(col), _number(r[col][i])))
    if page.held_out:
        facts += [(k, _number(v) if _finite(v) else v) for k, v in page.held_out.items()]
    else:
        facts.append(("held-out score", "not known to the run folder (pass held_out_score "
                      "to write it on the page)"))
    parts.append(_facts(facts))
    if page.state == "running":
        parts.append("<p class='small'>The search has not chosen and refit its winner "
                     "yet.</p>")
    weights = r.get("ensemble_weight")
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        members = [j for j in np.argsort(-np.nan_to_num(w, nan=0.0), kind="stable") if w[j] > 0]
        if members:
            rows = [[_e(j), _e(r["architecture"][j]), _e(_number(w[j])),
                     _e(_number(r["reward"][j]))] for j in members]
            parts.append(f"<h3>Ensemble ({len(members)} members)</h3>"
                         + _table(["row", "architecture", "weight", "reward"], rows))
    parts.append("</section>")
    return "".join(parts)


def _is_numeric_column(values):
    arr = np.asarray(values)
    if arr.ndim != 1:
        return False
    if arr.dtype.kind in "biuf":
        return True
    if arr.dtype == object:
        return all(v is None or (isinstance(v, (int, float, np.number, bool, np.bool_)))
                   for v in arr)
    return False


def leaderboard_columns(results):
    """Columns of a results table that the leaderboard shows, in order.

    Parameters
    ----------
    results : dict of array-like
        ``search_results_`` or a loaded run's ``results``.

    Returns
    -------
    columns : list of str
        ``rank``, ``architecture``, ``reward``, then every further numeric
        column with a value (such as ``cv_score``, ``cv_std``, ``best_epoch``,
        and ``ensemble_weight`` when a weight is positive), then one ``'SUFFIX per fold'`` entry for the
        per-fold columns ``split0_SUFFIX``, ``split1_SUFFIX``, ..., then
        ``predicted_reward``, ``last_score``, ``max_score``, ``n_layers``,
        ``n_params``, ``controller_epoch``, ``fit_time``, ``status``,
        ``message`` (those present; ``message`` only when a candidate has
        one).
    """
    known = set(_LEAD) | set(_TAIL) | _HIDDEN
    extra, folds = [], []
    for c in results:
        if c in known or not _is_numeric_column(results[c]):
            continue
        values = np.asarray(results[c], dtype=float)
        if len(values) and not np.isfinite(values).any():
            continue  # e.g. cv_score when no candidate was cross-validated
        if c == "ensemble_weight" and not (np.nan_to_num(values) > 0).any():
            continue  # no ensemble
        fold = _FOLD.match(c)
        if fold is None:
            extra.append(c)
        elif f"{fold.group(2)} per fold" not in folds:
            folds.append(f"{fold.group(2)} per fold")
    tail = [c for c in _TAIL if c in results]
    if "message" in tail and not any(str(m or "") for m in results["message"]):
        tail.remove("message")  # no candidate failed
    return [c for c in _LEAD if c in results] + extra + folds + tail


def _leaderboard(page):
    r = page.results
    n = len(r.get("reward", ()))
    cols = leaderboard_columns(r)
    text_cols = {"architecture", "status", "message"}
    folds = {c: sorted((int(m.group(1)), k) for k in r for m in [_FOLD.match(k)]
                       if m and f"{m.group(2)} per fold" == c)
             for c in cols if c.endswith(" per fold")}
    row_help = _e(_COLUMN_HELP["#"])
    head = [f"<th scope='col' data-type='num' title='{row_help}' tabindex='0'>#</th>"]
    for c in cols:
        kind = "text" if c in text_cols else "num"
        sort = " aria-sort='ascending'" if c == "rank" else ""
        label = _label(c) + (" (s)" if c == "fit_time" else "")
        help_ = _COLUMN_HELP.get(c, f"column {c!r} of the results table")
        if c in folds:
            kind, help_ = "num", (f"the per-fold columns {', '.join(k for _, k in folds[c])}; "
                                  "sorts by their mean")
        head.append(f"<th scope='col' data-type='{kind}' data-col='{_e(c)}' "
                    f"title='{_e(help_)}' tabindex='0'{sort}>{_e(label)}</th>")
    order = np.arange(n)
    if "rank" in r and n:
        order = np.argsort(np.asarray(r["rank"]), kind="stable")
    rows = []
    for i in order:
        ok = str(r["status"][i]) == "ok" if "status" in r else True
        cls = "best" if i == page.best_index else ("failed" if not ok else "")
        cells = [f"<td data-v='{i}'>{i}</td>"]
        for c in cols:
            if c in folds:
                values = np.array([r[k][i] for _, k in folds[c]], dtype=float)
                shown = " ".join(_number(v, 3) or "-" for v in values)
                raw = repr(float(np.nanmean(values))) if np.isfinite(values).any() else ""
                cells.append(f"<td class='num folds' data-v='{_e(raw)}'>"
                             f"{_e(shown if raw else '')}</td>")
                continue
            v = r[c][i]
            if c in text_cols:
                text = "" if v is None else str(v)
                cells.append(f"<td class='{_e(c)}' data-v='{_e(text)}'>{_e(text)}</td>")
            else:
                shown = _number(v, 2 if c == "fit_time" else 4)
                if c == "n_params" and shown:
                    shown = f"{int(v):,}"
                raw = repr(float(v)) if _finite(v) else ""
                cells.append(f"<td class='num' data-v='{_e(raw)}'>{_e(shown)}</td>")
        rows.append(f"<tr class='{cls}' data-row='{i}'>" + "".join(cells) + "</tr>")
    return ("<section id='leaderboard'><h2>Leaderboard</h2>"
            f"<p class='small'>Every candidate ({n}), by rank; click a column header to sort "
            "by it (again to reverse). The winner is highlighted, failed candidates are "
            "shaded; <em>reward</em> is the validation score the controller learned from "
            "(hover over a header for its meaning).</p>"
            "<div class='scroll'><table class='sortable' id='leaderboard-table'><thead><tr>"
            + "".join(head) + "</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></div></section>")


def _plots_section(page, images):
    parts = ["<section id='plots'><h2>Plots</h2>"]
    r = page.results
    ok = _ok_mask(r)
    rho, m = spearman(np.asarray(r.get("predicted_reward", []), dtype=float)[ok],
                      np.asarray(r.get("reward", []), dtype=float)[ok]) if len(ok) else (np.nan, 0)
    rho_text = "n/a" if not np.isfinite(rho) else f"{rho:.3f}"
    parts.append(f"<p id='spearman'>Predictor: Spearman rank correlation between predicted "
                 f"and observed reward <strong>&rho; = {_e(rho_text)}</strong> over {m} "
                 f"successful candidate{'s' * (m != 1)} with a prediction"
                 + (" (fewer than two, or no spread: not defined)" if rho_text == "n/a" else "")
                 + ".</p>")
    if isinstance(images, str):
        parts.append(f"<p class='notice' id='no-plots'>{_e(images)}</p></section>")
        return "".join(parts)
    parts.append("<div class='plots'>")
    for name, caption in _PLOTS:
        data = images[name]
        if data.startswith("Not drawn") or data.startswith("This plot"):
            parts.append(f"<figure><figcaption>{_e(caption)}</figcaption>"
                         f"<p class='notice'>{_e(data)}</p></figure>")
        else:
            parts.append(f"<figure><img class='plot' id='plot-{name}' alt='{_e(caption)}' "
                         f"src='data:image/png;base64,{data}'>"
                         f"<figcaption>{_e(caption)}</figcaption></figure>")
    parts.append("</div></section>")
    return "".join(parts)


def _history_section(page):
    h = page.history
    parts = ["<section id='controller-history'><h2>Controller history</h2>"]
    n = max((len(v) for v in h.values()), default=0)
    if not n:
        parts.append("<p>No controller epoch has finished yet.</p></section>")
        return "".join(parts)
    cols = [c for c in h if np.asarray(h[c]).ndim == 1]
    rows = []
    for i in range(n):
        row = []
        for c in cols:
            v = h[c][i] if i < len(h[c]) else None
            digits = 1 if c in ("started", "elapsed") else 4
            row.append(_e(_number(v, digits) if _is_numeric_column([v]) else _json(v)))
        rows.append(row)
    parts.append("<p class='small'>One row per finished controller epoch (0-based); "
                 "<em>started</em> and <em>elapsed</em> are seconds into the search.</p>")
    parts.append("<div class='scroll'>" + _table([_e(_label(c)) for c in cols], rows, "numeric")
                 + "</div></section>")
    return "".join(parts)


def _params_section(page):
    items = "".join(f"<div><span class='key'>{_e(k)}</span> <code>{_e(_json(page.params[k]))}"
                    "</code></div>" for k in sorted(page.params))
    return ("<section id='parameters'><h2>Parameters</h2><p class='small'>The estimator's "
            f"parameters (<code>get_params()</code>).</p><div class='params'>{items}</div>"
            "</section>")


# --------------------------------------------------------------- the page
_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       margin: 0 auto; max-width: 1400px; padding: 1.5em 2em 3em; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 .2em; }
h2 { font-size: 1.25em; margin: 1.6em 0 .5em; border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }
h3 { font-size: 1.05em; }
.sub { color: #57606a; margin: 0 0 1em; }
.small { color: #57606a; font-size: .92em; }
.notice { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: .6em .9em; }
.notice.running { background: #ffebe9; border-color: #cf222e; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 0 2em; }
#leaderboard-table { font-size: .86em; }
#leaderboard-table th, #leaderboard-table td { padding: .25em .45em; }
table { border-collapse: collapse; font-size: .93em; }
th, td { padding: .28em .6em; border-bottom: 1px solid #eaeef2; text-align: left; vertical-align: top; }
table.facts { width: 100%; table-layout: fixed; }
table.facts th { color: #57606a; font-weight: 600; width: 40%; }
table.facts td { overflow-wrap: anywhere; }
thead th { background: #f6f8fa; position: sticky; top: 0; z-index: 1; vertical-align: bottom; }
td.num, table.numeric td { text-align: right; font-variant-numeric: tabular-nums; }
td.folds { white-space: nowrap; font-size: .85em; color: #57606a; }
td.message { max-width: 28em; white-space: normal; color: #cf222e; font-size: .9em; }
td.architecture { white-space: nowrap; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
tr.best td { background: #dafbe1; font-weight: 600; }
tr.failed td { background: #fff0ee; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th:hover { background: #eaeef2; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; font-size: .8em; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; font-size: .8em; }
.scroll { overflow: auto; max-height: 80vh; border: 1px solid #d0d7de; border-radius: 6px; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 1em; }
figure { margin: 0; border: 1px solid #d0d7de; border-radius: 6px; padding: .5em; }
figure img { width: 100%; height: auto; display: block; }
figcaption { color: #57606a; font-size: .9em; margin-top: .3em; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .9em; }
.params { columns: 3 17em; column-gap: 2em; font-size: .93em; }
.params div { break-inside: avoid; padding: .18em 0; border-bottom: 1px solid #eaeef2; }
.params .key { color: #57606a; font-weight: 600; margin-right: .4em; }
footer { margin-top: 3em; color: #8c959f; font-size: .85em; }
@media print { .scroll { max-height: none; overflow: visible; } thead th { position: static; } }
"""

# Sorting: click (or Enter on) a header; numbers compare as numbers, empty cells last.
_JS = """
(function () {
  function sortBy(table, th) {
    var col = th.cellIndex, body = table.tBodies[0];
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    var num = th.getAttribute('data-type') === 'num';
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute('data-v'), y = b.cells[col].getAttribute('data-v');
      if (x === '' || y === '') { return (x === '') - (y === ''); }
      var d = num ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      if (d === 0) { d = parseInt(a.getAttribute('data-row'), 10) - parseInt(b.getAttribute('data-row'), 10); return d; }
      return asc ? d : -d;
    });
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    rows.forEach(function (r) { body.appendChild(r); });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.addEventListener('click', function () { sortBy(table, th); });
      th.addEventListener('keydown', function (ev) {
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); sortBy(table, th); }
      });
    });
  });
})();
"""

#: The page may load nothing from anywhere: images only from data: URIs,
#: styles and script only inline.
_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")


def render_report(page):
    """The HTML text of a page (see :func:`run_report`)."""
    from ._version import __version__
    r = page.results
    n = len(r.get("reward", ()))
    n_ok = int(_ok_mask(r).sum()) if n else 0
    images = _plots(page)
    headline = f"{n} candidate{'s' * (n != 1)}"
    if page.best_index is not None:
        headline += (f"; {'best so far' if page.state == 'running' else 'winner'}: "
                     f"{r['architecture'][page.best_index]} "
                     f"(reward {_number(r['reward'][page.best_index])})")
    body = [f"<header><h1>{_e(page.title)}</h1><p class='sub'>{_e(headline)}</p></header>",
            _notices(page, n, n_ok),
            "<div class='cards'>", _winner(page), _summary(page, n, n_ok), "</div>",
            _leaderboard(page), _plots_section(page, images), _history_section(page),
            _params_section(page),
            f"<footer>Written by sknas {_e(__version__)} on "
            f"{_e(time.strftime('%Y-%m-%d %H:%M:%S %z'))}. One self-contained file: "
            "it loads nothing from a network.</footer>"]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<meta name='generator' content='sknas {_e(__version__)}'>"
            f"<title>{_e(page.title)}</title><style>{_CSS}</style></head>\n<body>"
            + "\n".join(body) + f"\n<script>{_JS}</script>\n</body></html>\n")


def _write(text, path, run_dir=None):
    """Write ``text`` to ``path`` (UTF-8), refusing any place inside ``run_dir``."""
    path = Path(path)
    if run_dir is not None:
        target = path.resolve()
        folder = Path(run_dir).resolve()
        if target == folder or folder in target.parents:
            raise ValueError(f"{path} is inside the run folder {run_dir}: a report never "
                             "writes into the run folder; choose a file elsewhere")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def run_report(run, path=None, *, held_out_score=None, notes=()):
    """The HTML report of a run folder read by :func:`sknas.load_run`.

    Parameters
    ----------
    run : Run
        What :func:`sknas.load_run` returned; a run still being written (its
        ``meta.json`` says ``status: 'running'``) gives the page as it stands,
        with a notice that the search is still running or was interrupted.
    path : str or path-like, default=None
        File to write. ``None`` returns the HTML text instead. A path inside
        the run folder is refused: writing a report never changes the run
        folder.
    held_out_score : float or dict of str to float, default=None
        The winner's score on held-out data, which the run folder does not
        know; a dict gives several (e.g. ``{"R^2": 0.81, "RMSE": 3.2}``).
    notes : sequence of str, default=()
        Further notices shown at the top of the page (for example the
        warnings :func:`sknas.load_run` gave).

    Returns
    -------
    html_or_path : str or pathlib.Path
        The HTML text when ``path`` is ``None``, else ``path``.

    Raises
    ------
    ValueError
        If ``path`` is inside the run folder.
    OSError
        If ``path`` cannot be written.
    """
    text = render_report(_page_from_run(run, held_out_score, notes))
    return text if path is None else _write(text, path, run_dir=run.path)


def estimator_report(estimator, path=None, *, held_out_score=None):
    """The HTML report of a fitted search estimator.

    Parameters
    ----------
    estimator : MLPNASClassifier or Pipeline
        A fitted search estimator, or a Pipeline ending in one (its
        ``search_results_``, ``controller_history_``, parameters, classes and
        times are shown).
    path : str or path-like, default=None
        File to write; ``None`` returns the HTML text instead.
    held_out_score : float or dict of str to float, default=None
        The winner's score on held-out data, e.g. ``estimator.score(X_test,
        y_test)``.

    Returns
    -------
    html_or_path : str or pathlib.Path
        The HTML text when ``path`` is ``None``, else ``path``.

    Raises
    ------
    ValueError
        If the estimator is not fitted.
    OSError
        If ``path`` cannot be written.
    """
    text = render_report(_page_from_estimator(estimator, held_out_score))
    if path is None:
        return text
    run_dir = getattr(_final_or_none(estimator), "run_dir_", None)
    return _write(text, path, run_dir=run_dir if run_dir and os.path.isdir(run_dir) else None)


def _final_or_none(estimator):
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
