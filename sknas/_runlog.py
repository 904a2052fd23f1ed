"""Run folders: what a search writes to disk, how it is read back and resumed.

A run folder holds only plain formats, so nothing in it is ever unpickled:

==========================  ==================================================
``meta.json``               format and sknas versions, seed, classes, feature
                            names, data fingerprint, status and stop reason
``params.json``             the estimator's ``get_params()``, JSON-safe
``trials.jsonl``            one JSON object per finished candidate, appended,
                            flushed and ``fsync``-ed as each one ends
``controller_history.json`` one row per finished controller epoch
``checkpoint.npz``          controller state (``controller/*``: weights, Adam
                            slots, step, baseline) and shared weights
                            (``weights/*``) after the last finished controller
                            epoch, replaced atomically at each epoch's end
``model.keras``             the served model, written when ``fit`` ends
==========================  ==================================================

A controller epoch is the unit of commit: ``checkpoint.npz`` is written (to a
temporary name, then renamed) only after the epoch's trials and history row,
so it always describes a consistent state. Resuming restores that state and
runs the next controller epoch; trials recorded for an epoch that had not
been checkpointed yet are dropped and that epoch runs again (it samples the
same architectures, because epoch ``e`` draws from
``np.random.default_rng([seed, e])``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import random
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ._jsonsafe import json_safe
from ._trial import Trial, best_row, history_table, results_table
from ._weights import SharedWeights

__all__ = ["Run", "RunFormatError", "RunLog", "load_run"]

FORMAT = "sknas-run"
FORMAT_VERSION = 1

_TRIAL_FIELDS = frozenset(f.name for f in fields(Trial))
#: Trial fields a run folder written before they existed may lack.
_OPTIONAL_TRIAL_FIELDS = frozenset({"best_epoch", "cv_scores", "cv_best_epoch",
                                    "ensemble_weight"})

#: Parameters that may change when a run is resumed; all others must match.
_RESUMABLE_PARAMS = frozenset({"controller_epochs", "n_jobs", "error_score", "max_time",
                               "max_candidates", "refit", "log_dir", "resume",
                               "verbose", "cv", "n_finalists", "finalist_epochs",
                               "ensemble_size"})


class RunFormatError(ValueError):
    """A run folder is missing, from another format version, or tampered with."""


# ------------------------------------------------------------------ helpers
def encode_classes(classes):
    """Class labels as ``{'dtype': ..., 'values': [...]}`` (JSON-safe); a
    regressor's ``None`` stays ``None``."""
    if classes is None:
        return None
    classes = np.asarray(classes)
    return {"dtype": classes.dtype.str if classes.dtype != object else "object",
            "values": [v.item() if isinstance(v, np.generic) else v for v in classes.tolist()]}


def decode_classes(spec):
    """Inverse of :func:`encode_classes`."""
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != {"dtype", "values"}:
        raise RunFormatError(f"classes must be {{'dtype', 'values'}}; got {spec!r}")
    if spec["dtype"] == "object":
        out = np.empty(len(spec["values"]), dtype=object)
        out[:] = spec["values"]
        return out
    return np.array(spec["values"], dtype=np.dtype(spec["dtype"]))


@contextlib.contextmanager
def _atomic_open(path, mode="w"):
    """Open ``path + '.tmp'`` for writing; on success flush it to disk and
    rename it over ``path``, so a reader sees the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path, obj):
    """Write strict JSON to ``path`` through a temporary file and a rename."""
    with _atomic_open(path) as fh:
        json.dump(obj, fh, indent=1, allow_nan=False)


def _savez_atomic(path, arrays):
    with _atomic_open(path, "wb") as fh:
        np.savez(fh, **arrays)


def save_keras_atomic(model, path):
    """Save ``model`` to the ``.keras`` file ``path`` through a temporary file
    (Keras wants the suffix, hence ``NAME.tmp.keras``) and a rename."""
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def keeps_python_random_state(func):
    """Restore the caller's global ``random`` state after ``func``: Keras
    draws the default seeds of its layers from it."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        state = random.getstate()
        try:
            return func(*args, **kwargs)
        finally:
            random.setstate(state)
    return wrapper


@keeps_python_random_state
def load_keras(path):
    """A ``.keras`` file loaded with ``safe_mode=True`` (no code runs from the
    file), without Keras' warnings about the training state it leaves out.
    Python's ``random`` state is left as it was."""
    import keras
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return keras.models.load_model(path, safe_mode=True)


def read_json(path, what):
    """Read a JSON file, turning a parse error into a :class:`RunFormatError`."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise RunFormatError(f"{path} is missing: not a complete sknas {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunFormatError(f"{path} is not valid JSON ({exc}); the {what} is damaged") from None


def data_fingerprint(data):
    """SHA-256 of the training and validation arrays of a search (of a sparse
    matrix's shape, stored values and their positions)."""
    h = hashlib.sha256()
    for name in ("X", "y", "w", "X_val", "y_val", "w_val"):
        value = getattr(data, name)
        if sp.issparse(value):
            value = value.tocsr()
            h.update(f"{name}sparse{value.shape}".encode())
            parts = [(f"{name}.{p}", getattr(value, p)) for p in ("indptr", "indices", "data")]
        else:
            parts = [(name, value)]
        for label, arr in parts:
            arr = np.ascontiguousarray(arr)
            h.update(f"{label}{arr.dtype.str}{arr.shape}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def _unique_run_dir(log_dir):
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    stem = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    for n in range(10_000):
        path = log_dir / (stem if n == 0 else f"{stem}-{n}")
        try:
            path.mkdir()  # fails if it exists: never reuse a folder
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run folder in {log_dir}")


# -------------------------------------------------------------- reading
def read_meta(path):
    """``meta.json`` of a run folder, checked for format and version."""
    from ._version import __version__
    path = Path(path)
    if not path.is_dir():
        raise RunFormatError(f"{path} is not a run folder (no such directory)")
    meta = read_json(path / "meta.json", "run folder")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RunFormatError(f"{path / 'meta.json'} does not describe an sknas run folder")
    if meta.get("format_version") != FORMAT_VERSION:
        raise RunFormatError(
            f"{path} was written by sknas {meta.get('sknas_version')!r} in run-folder format "
            f"{meta.get('format_version')!r}; sknas {__version__} reads format {FORMAT_VERSION} only")
    for key, kind in (("seed", int), ("n_features", int)):
        if not isinstance(meta.get(key), kind):
            raise RunFormatError(f"{path / 'meta.json'}: {key!r} is missing or not {kind.__name__}")
    regression = meta.get("task") == "regression"
    if not (meta.get("classes") is None if regression else isinstance(meta.get("classes"), dict)):
        raise RunFormatError(f"{path / 'meta.json'}: 'classes' is missing or not "
                             f"{'null (a regression run)' if regression else 'dict'}")
    return meta


def task_of(estimator):
    """``'regression'`` or ``'classification'``: what a fitted estimator learned."""
    return "regression" if hasattr(estimator, "y_mean_") else "classification"


def target_summary(estimator, data=None):
    """A regressor's target: number of outputs, mean, standard deviation and,
    given the search's data, its range over the training rows."""
    if not hasattr(estimator, "y_mean_"):
        return None
    summary = {"n_outputs": int(estimator.n_outputs_), "mean": json_safe(estimator.y_mean_),
               "std": json_safe(estimator.y_scale_)}
    if data is not None:
        y = np.vstack([data.y, data.y_val]) * estimator.y_scale_ + estimator.y_mean_
        summary["range"] = [json_safe(y.min(axis=0)), json_safe(y.max(axis=0))]
    return summary


def _trial_from_line(obj, lineno, path):
    if not isinstance(obj, dict) or not (
            _TRIAL_FIELDS - _OPTIONAL_TRIAL_FIELDS <= set(obj) <= _TRIAL_FIELDS):
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise RunFormatError(f"{path}, line {lineno}: a trial needs the keys "
                             f"{sorted(_TRIAL_FIELDS)}; got {got}")
    try:
        obj = dict(obj, val_scores=[np.nan if s is None else float(s) for s in obj["val_scores"]])
        trial = Trial.from_json(obj)
        ok = (isinstance(trial.index, int) and isinstance(trial.controller_epoch, int)
              and all(isinstance(t, int) for t in trial.arch) and isinstance(trial.layers, list)
              and trial.status in ("ok", "failed") and isinstance(trial.message, str))
    except (TypeError, ValueError) as exc:
        raise RunFormatError(f"{path}, line {lineno}: bad trial ({exc})") from None
    if not ok:
        raise RunFormatError(f"{path}, line {lineno}: a trial field has the wrong type")
    return trial


def read_trials(path):
    """Trials of ``trials.jsonl``; a truncated last line is skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, "rb") as fh:
        raw = fh.read()
    lines = raw.split(b"\n")
    complete = raw.endswith(b"\n") or not raw
    trials = []
    for lineno, line in enumerate(lines[:-1] if complete else lines, start=1):
        if not line.strip():
            continue
        last = lineno == len(lines) and not complete
        try:
            obj = json.loads(line.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            if last:
                warnings.warn(f"{path}: the last line is truncated (the search was killed while "
                              "writing it); skipping it.", UserWarning, stacklevel=3)
                break
            raise RunFormatError(f"{path}, line {lineno}: not valid JSON ({exc}); the run "
                                 "folder is damaged") from None
        trials.append(_trial_from_line(obj, lineno, path))
    if [t.index for t in trials] != list(range(len(trials))):
        raise RunFormatError(f"{path}: trial indices are not 0, 1, 2, ... in order")
    return trials


def _history_rows(path):
    rows = read_json(path, "run folder") if Path(path).exists() else []
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise RunFormatError(f"{path} must hold a list of objects (one per controller epoch)")
    return [{k: np.nan if v is None else v for k, v in r.items()} for r in rows]


def read_checkpoint(path):
    """``(epoch, n_trials, controller_state, weight_arrays)`` or ``None``."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        epoch, n_trials = int(arrays.pop("epoch")), int(arrays.pop("n_trials"))
    except (ValueError, KeyError, OSError, EOFError) as exc:
        raise RunFormatError(f"{path} is not a valid checkpoint ({exc})") from None
    state = {k[len("controller/"):]: v for k, v in arrays.items() if k.startswith("controller/")}
    weights = {k[len("weights/"):]: v for k, v in arrays.items() if k.startswith("weights/")}
    return epoch, n_trials, state, weights


@dataclass
class Run:
    """A run folder read back by :func:`load_run`.

    Attributes
    ----------
    path : pathlib.Path
    meta : dict
        ``meta.json`` (versions, seed, feature names, status, stop reason).
    params : dict
        The estimator's parameters (JSON-safe).
    classes : ndarray or None
        Class labels, with their original dtype.
    trials : list of Trial
    results : dict of ndarray
        The results table, as ``search_results_``.
    history : dict of ndarray
        Per controller epoch, as ``controller_history_``.
    """

    path: Path
    meta: dict
    params: dict
    classes: np.ndarray
    trials: list
    results: dict
    history: dict

    @property
    def best_index(self):
        """Row of the best successful candidate, or ``None``."""
        return best_row(self.results)

    def checkpoint(self):
        """``(epoch, n_trials, controller_state, shared_weights)`` of the last
        finished controller epoch, or ``None`` if none finished."""
        ckpt = read_checkpoint(self.path / "checkpoint.npz")
        if ckpt is None:
            return None
        epoch, n_trials, state, weights = ckpt
        return epoch, n_trials, state, SharedWeights.from_arrays(weights)

    def load_model(self):
        """The served model (``model.keras``, loaded with ``safe_mode=True``)."""
        path = self.path / "model.keras"
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: the run has not finished its refit")
        return load_keras(path)

    def to_html(self, path=None, *, held_out_score=None):
        """Write the run's report: one self-contained HTML page.

        The page holds the run's parameters and data summary, its status,
        stop reason and times, the leaderboard of every candidate (sortable),
        the winner, the four plots (inline PNG images; they need matplotlib)
        with the predictor's rank correlation, and the controller history. It
        loads nothing from a network, so it can be mailed. A run that is
        still being written gives the page as it stands, with a notice.

        Parameters
        ----------
        path : str or path-like, default=None
            File to write; ``None`` returns the HTML text instead. A path
            inside the run folder is refused: the run folder is only read.
        held_out_score : float or dict of str to float, default=None
            The winner's held-out score, which the run folder does not know.

        Returns
        -------
        html_or_path : str or pathlib.Path
            The HTML text when ``path`` is ``None``, else ``path``.

        Examples
        --------
        >>> run = load_run("runs/run-20250101-120000-1234")  # doctest: +SKIP
        >>> run.to_html("report.html")  # doctest: +SKIP
        PosixPath('report.html')
        """
        from ._html import run_report
        return run_report(self, path, held_out_score=held_out_score)


def load_run(path):
    """Read a run folder written with ``log_dir`` back into a results table.

    Nothing is unpickled: the files are JSON, JSON lines and ``.npz`` arrays
    read with ``allow_pickle=False``; the model loads with ``safe_mode=True``.

    Parameters
    ----------
    path : str or path-like
        A run folder (``MLPNASClassifier(log_dir=...).fit(...).run_dir_``).

    Returns
    -------
    run : Run
        With ``results`` (as ``search_results_``), ``history`` (as
        ``controller_history_``), ``trials``, ``meta``, ``params`` and
        ``classes``.

    Raises
    ------
    RunFormatError
        If the folder is not a run folder, was written in another format
        version, or a file in it was damaged or tampered with. A truncated
        last line of ``trials.jsonl`` (a killed search) only warns.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import load_iris
    >>> from sknas import MLPNASClassifier, load_run
    >>> X, y = load_iris(return_X_y=True)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     clf = MLPNASClassifier(controller_epochs=1, samples_per_epoch=2, epochs=2,
    ...                            log_dir=tmp, random_state=0).fit(X, y)
    ...     run = load_run(clf.run_dir_)
    ...     len(run.results["reward"])
    2
    """
    path = Path(path)
    meta = read_meta(path)
    params = read_json(path / "params.json", "run folder")
    if not isinstance(params, dict):
        raise RunFormatError(f"{path / 'params.json'} must hold an object")
    trials = read_trials(path / "trials.jsonl")
    rows = _history_rows(path / "controller_history.json")
    return Run(path=path, meta=meta, params=params, classes=decode_classes(meta["classes"]),
               trials=trials, results=results_table(trials), history=history_table(rows))


# -------------------------------------------------------------- writing
class RunLog:
    """Search callback that writes (or continues) a run folder.

    Create with :meth:`create` (a new folder under ``log_dir``) or
    :meth:`open` (an existing folder, to resume). :meth:`begin` then writes
    the metadata of a new run, or restores a search from a resumed one.

    Parameters
    ----------
    path : path-like
        The run folder.
    resuming : bool
        Whether the folder holds an earlier, unfinished search.
    """

    def __init__(self, path, resuming=False):
        self.path = Path(path)
        self.resuming = resuming

    @classmethod
    def create(cls, log_dir):
        """A new, uniquely named run folder under ``log_dir``."""
        return cls(_unique_run_dir(log_dir))

    @classmethod
    def open(cls, run_dir):
        """An existing run folder, to resume."""
        read_meta(run_dir)
        return cls(run_dir, resuming=True)

    # ----------------------------------------------------------- start
    def begin(self, estimator, search):
        """Write the run's metadata, or restore ``search`` when resuming.

        Returns
        -------
        start_epoch : int
            The controller epoch to run next.
        """
        if self.resuming:
            return self._resume(estimator, search)
        from ._version import __version__
        write_json_atomic(self.path / "params.json", json_safe(estimator.get_params()))
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "sknas_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seed": int(search.seed),
                "task": task_of(estimator),
                "classes": encode_classes(getattr(estimator, "classes_", None)),
                "target": target_summary(estimator, search.data),
                "n_samples": int(len(search.data.y) + len(search.data.y_val)),
                "n_train": int(len(search.data.y)), "n_val": int(len(search.data.y_val)),
                "feature_names": json_safe(getattr(estimator, "feature_names_in_", None)),
                "n_features": int(estimator.n_features_in_),
                "data_sha256": data_fingerprint(search.data), "status": "running",
                "stop_reason": None, "resumed": []}
        write_json_atomic(self.path / "meta.json", meta)
        return 0

    def _resume(self, estimator, search):
        meta = read_meta(self.path)
        self._check_compatible(meta, estimator, search)
        ckpt = read_checkpoint(self.path / "checkpoint.npz")
        trials = read_trials(self.path / "trials.jsonl")
        rows = _history_rows(self.path / "controller_history.json")
        epoch, n_trials = (-1, 0) if ckpt is None else ckpt[:2]
        kept = [t for t in trials if t.controller_epoch <= epoch]
        rows = [r for r in rows if r.get("controller_epoch", np.inf) <= epoch]
        if len(kept) != n_trials or len(rows) != epoch + 1:
            raise RunFormatError(f"{self.path}: the checkpoint (controller epoch {epoch}, "
                                 f"{n_trials} candidates) does not match trials.jsonl "
                                 f"({len(kept)} candidates) or controller_history.json")
        if ckpt is not None:
            search.strategy.set_state(ckpt[2])
            if search.store is not None:
                search.store.table = SharedWeights.from_arrays(ckpt[3]).table
        search.trials, search.history = kept, rows
        self._rewrite_trials(kept)
        write_json_atomic(self.path / "controller_history.json", json_safe(rows))
        meta["resumed"] = meta.get("resumed", []) + [time.strftime("%Y-%m-%dT%H:%M:%S%z")]
        meta["status"] = "running"
        write_json_atomic(self.path / "meta.json", meta)
        return epoch + 1

    def _check_compatible(self, meta, estimator, search):
        from ._version import __version__
        if meta.get("sknas_version") != __version__:
            raise RunFormatError(f"{self.path} was written by sknas {meta.get('sknas_version')}; "
                                 f"this is sknas {__version__}: a search can only be resumed by "
                                 "the version that started it")
        saved = read_json(self.path / "params.json", "run folder")
        now = json_safe(estimator.get_params())
        diff = sorted(k for k in set(saved) | set(now)
                      if k not in _RESUMABLE_PARAMS and saved.get(k) != now.get(k)
                      and not (k == "random_state" and now.get(k) is None))
        if diff:
            raise ValueError(f"Cannot resume {self.path}: these parameters differ from the "
                             f"run's: {', '.join(f'{k}={saved.get(k)!r} (now {now.get(k)!r})' for k in diff)}")
        if meta.get("data_sha256") != data_fingerprint(search.data):
            raise ValueError(f"Cannot resume {self.path}: the training data (X, y, sample_weight) "
                             "differs from the data of the interrupted search")
        if json_safe(decode_classes(meta["classes"])) != json_safe(getattr(estimator, "classes_", None)):
            raise ValueError(f"Cannot resume {self.path}: the classes differ")

    def _rewrite_trials(self, trials):
        with _atomic_open(self.path / "trials.jsonl") as fh:
            for trial in trials:
                fh.write(_trial_line(trial))

    # ------------------------------------------------------- callbacks
    def on_trial(self, trial):
        """Append one candidate to ``trials.jsonl``, flushed to disk."""
        with open(self.path / "trials.jsonl", "a", encoding="utf-8") as fh:
            fh.write(_trial_line(trial))
            fh.flush()
            os.fsync(fh.fileno())

    def on_epoch(self, row, search):
        """Write the history, then the checkpoint of a finished controller epoch."""
        write_json_atomic(self.path / "controller_history.json", json_safe(search.history))
        arrays = {"epoch": np.array(row["controller_epoch"]), "n_trials": np.array(len(search.trials))}
        arrays.update({f"controller/{k}": np.asarray(v) for k, v in search.strategy.get_state().items()})
        if search.store is not None:
            arrays.update({f"weights/{k}": v for k, v in search.store.to_arrays().items()})
        _savez_atomic(self.path / "checkpoint.npz", arrays)

    def on_refit(self, estimator, search=None):
        """Save the served model as ``model.keras`` and mark the run finished;
        with ``search``, rewrite the trials with what the finalists'
        cross-validation added."""
        if search is not None and any(t.cv_scores for t in search.trials):
            self._rewrite_trials(search.trials)
        save_keras_atomic(estimator.model_, self.path / "model.keras")
        meta = read_meta(self.path)
        meta.update(status="finished", stop_reason=estimator.stop_reason_,
                    best_index=int(estimator.best_index_),
                    best_architecture=estimator.best_architecture_)
        write_json_atomic(self.path / "meta.json", meta)


def _trial_line(trial):
    return json.dumps(json_safe(trial.to_json()), allow_nan=False) + "\n"
