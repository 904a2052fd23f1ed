"""Robust searches, each failure provoked for real: failing candidates, budgets,
Ctrl-C (real SIGINT), SIGKILL and resume, damaged run folders, pickle-free models."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sknas import MLPNASClassifier, Reinforce, RunFormatError, SearchSpace, load_model, load_run
from sknas._search import Search

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# ---------------------------------------------------------------- 1. failures
def _exploding(blobs, tiny, activations=("tanh", "exponential"), **extra):
    """'exponential' layers overflow on features scaled by 1000: a real NaN loss."""
    X, y = blobs
    tiny["space"].set_params(activations=activations)
    tiny.update(extra)
    return MLPNASClassifier(**tiny), X * 1000, y


def test_nan_candidates_are_recorded_failed_and_the_search_goes_on(blobs, tiny):
    clf, X, y = _exploding(blobs, tiny, controller_epochs=2, samples_per_epoch=4)
    clf.fit(X, y)
    res = pd.DataFrame(clf.search_results_)
    assert len(res) == 8 and clf.stop_reason_ == "completed"
    failed = res[res.status == "failed"]
    assert len(failed) >= 1 and (res.status == "ok").any()
    assert failed.message.str.contains("NaN").all()
    assert failed.reward.isna().all()
    assert failed.architecture.str.contains("exponential").all()
    assert clf.search_results_["status"][clf.best_index_] == "ok"
    assert clf.predict(X[:5]).shape == (5,)


def test_numeric_error_score_is_the_failed_reward(blobs, tiny):
    clf, X, y = _exploding(blobs, tiny, samples_per_epoch=4, error_score=-1.0)
    res = clf.fit(X, y).search_results_
    assert (res["reward"][res["status"] == "failed"] == -1.0).all()
    assert (res["status"] == "failed").any()


def test_error_score_raise_reraises(blobs, tiny):
    clf, X, y = _exploding(blobs, tiny, samples_per_epoch=4, error_score="raise")
    with pytest.raises(FloatingPointError, match="NaN"):
        clf.fit(X, y)


def test_every_candidate_failing_gives_one_clear_error(blobs, tiny):
    clf, X, y = _exploding(blobs, tiny, activations=("exponential",))
    with pytest.raises(RuntimeError, match="Every candidate.*first error was: training loss became NaN"):
        clf.fit(X, y)


def test_a_candidate_too_big_for_memory_fails_alone(blobs, tiny):
    # 2**36 units: allocating its weights raises MemoryError for real
    tiny["space"].set_params(units=(4, 8, 2**36), max_layers=1)
    tiny.update(controller_epochs=2, samples_per_epoch=3)
    res = MLPNASClassifier(**tiny).fit(*blobs).search_results_
    huge = np.array(["68719476736" in a for a in res["architecture"]])
    assert huge.any() and (~huge).any()
    assert (res["status"][huge] == "failed").all() and (res["status"][~huge] == "ok").all()
    assert all(m.startswith("MemoryError") for m in res["message"][huge])


# ----------------------------------------------------------------- 2. budgets
def test_max_time_starts_no_epoch_after_the_budget(tmp_path, blobs, tiny):
    tiny.update(controller_epochs=500, max_time=1.0)
    clf = MLPNASClassifier(**tiny, log_dir=tmp_path).fit(*blobs)
    started = clf.controller_history_["started"]
    assert clf.stop_reason_ == "max_time"
    assert 1 <= len(started) < 500 and (started < 1.0).all()
    assert len(clf.search_results_["reward"]) == 2 * len(started)
    assert clf.predict(blobs[0][:3]).shape == (3,)
    assert load_run(clf.run_dir_).meta["stop_reason"] == "max_time"


def test_max_candidates_stops_mid_epoch(blobs, tiny):
    tiny.update(controller_epochs=5, max_candidates=3)
    clf = MLPNASClassifier(**tiny).fit(*blobs)
    assert clf.stop_reason_ == "max_candidates"
    assert list(clf.search_results_["controller_epoch"]) == [0, 0, 1]


# ---------------------------------------------------------------- 3. Ctrl-C
CHILD = textwrap.dedent("""
    import json, os, signal, sys, warnings
    import numpy as np
    from sklearn.datasets import make_blobs
    from sknas import MLPNASClassifier, Reinforce, SearchSpace
    from sknas._runlog import RunLog

    mode, log_dir, n_epochs, n_jobs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if mode.startswith("kill-after-trial-"):  # SIGKILL ourselves at a chosen moment
        at, original = int(mode.rsplit("-", 1)[1]), RunLog.on_trial
        def on_trial(self, trial):
            original(self, trial)
            if trial.index == at:
                os.kill(os.getpid(), signal.SIGKILL)
        RunLog.on_trial = on_trial
    if mode == "print":  # a refit long enough that the second Ctrl-C always lands before it ends
        import time
        fit_best = MLPNASClassifier._fit_best
        def slow_fit_best(self, *args):
            time.sleep(600)
            return fit_best(self, *args)
        MLPNASClassifier._fit_best = slow_fit_best
    X, y = make_blobs(n_samples=300, centers=3, n_features=4, random_state=0)
    X = (X - X.mean(0)) / X.std(0)
    clf = MLPNASClassifier(controller_epochs=n_epochs, samples_per_epoch=2,
                           epochs=3000 if mode == "slow" else 2,  # slow: workers busy most of the time
                           strategy=Reinforce(train_steps=1, lstm_units=8),
                           space=SearchSpace(units=(4, 8), activations=("relu", "tanh")),
                           random_state=0, log_dir=log_dir, n_jobs=n_jobs)
    with warnings.catch_warnings(record=mode in ("record", "slow")) as caught:
        warnings.simplefilter("always")
        clf.fit(X, y)
    print("RESULT " + json.dumps({
        "stop_reason": clf.stop_reason_, "n": len(clf.search_results_["reward"]),
        "pred": len(clf.predict(X[:4])), "warnings": [type(w.message).__name__ for w in caught or []],
        "run_dir": str(clf.run_dir_), "status": sorted(set(clf.search_results_["status"])),
        "refit": clf.refit_,
        "messages": sorted(set(clf.search_results_["message"]))}), flush=True)
""")


def _spawn(tmp_path, mode, n_epochs, n_jobs=1):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    err = open(tmp_path / f"{mode}.stderr", "w+")
    # a session of its own, like a shell's foreground job: os.killpg(proc.pid, ...)
    # then signals the child and its workers, as a terminal's Ctrl-C does
    proc = subprocess.Popen([sys.executable, "-c", CHILD, mode, str(tmp_path / "logs"), str(n_epochs),
                             str(n_jobs)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=err, text=True, start_new_session=True)
    return proc, err


def _wait_for(predicate, proc, timeout=90):
    end = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, "the child ended too early"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def _trial_lines(tmp_path):
    files = list((tmp_path / "logs").glob("run-*/trials.jsonl"))
    return files[0].read_text().splitlines() if files else []


def test_ctrl_c_ends_the_search_and_refits_the_best_so_far(tmp_path):
    proc, _ = _spawn(tmp_path, "record", 1000)
    _wait_for(lambda: len(_trial_lines(tmp_path)) >= 1, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0
    result = json.loads(out.split("RESULT ", 1)[1])
    assert result["stop_reason"] == "interrupted"
    assert "SearchInterrupted" in result["warnings"]
    assert 2 <= result["n"] < 2000 and result["pred"] == 4
    assert result["n"] == len(_trial_lines(tmp_path))  # every finished candidate is kept
    assert (Path(result["run_dir"]) / "model.keras").exists()
    # the interrupted search skipped the cross-validation: the best so far is retrained
    assert result["refit"] is True


def _group_alive(pgid):
    """Processes left in the process group ``pgid`` (the child and its workers)."""
    import psutil
    alive = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
        except (ProcessLookupError, psutil.Error):
            pass
    return alive


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_in_a_terminal_reaches_the_workers_too(tmp_path, presses):
    # A terminal sends SIGINT to the whole foreground process group: the loky
    # workers get it too. They must leave the decision to the main process:
    # one press ends the search cleanly, two abort it and leave no worker behind.
    proc, err = _spawn(tmp_path, "slow", 1000, n_jobs=2)
    # after two controller epochs (the first update traces the controller's
    # graph), the next one trains in both workers for a few seconds
    _wait_for(lambda: len(_trial_lines(tmp_path)) >= 4, proc, timeout=120)
    time.sleep(0.5)
    for _ in range(presses):
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.3)
    out, _ = proc.communicate(timeout=120)
    err.seek(0)
    if presses == 1:
        assert proc.returncode == 0, err.read()[-2000:]
        result = json.loads(out.split("RESULT ", 1)[1])
        assert result["stop_reason"] == "interrupted"
        # no candidate lost to the signal, none trained twice
        assert result["status"] == ["ok"] and result["messages"] == [""], result["messages"]
        assert result["n"] == len(_trial_lines(tmp_path)) >= 6 and result["pred"] == 4
        assert (Path(result["run_dir"]) / "model.keras").exists()
    else:
        assert proc.returncode != 0 and "RESULT" not in out
        assert "KeyboardInterrupt" in err.read()
    end = time.monotonic() + 30
    while _group_alive(proc.pid) and time.monotonic() < end:
        time.sleep(0.2)
    assert not _group_alive(proc.pid)  # the workers are gone with the search


def test_a_second_ctrl_c_aborts_at_once(tmp_path):
    proc, err = _spawn(tmp_path, "print", 1000)
    _wait_for(lambda: len(_trial_lines(tmp_path)) >= 1, proc)
    proc.send_signal(signal.SIGINT)
    _wait_for(lambda: "Interrupted:" in (tmp_path / "print.stderr").read_text(), proc)
    proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)  # the refit sleeps 600 s unless aborted
    finally:
        proc.kill()
    err.seek(0)
    assert proc.returncode != 0 and "RESULT" not in out
    assert "KeyboardInterrupt" in err.read()
    assert not list((tmp_path / "logs").glob("run-*/model.keras"))  # no refit happened


# ------------------------------------------------------- 4. SIGKILL and resume
def _resume_fit(run_dir, n_epochs, monkeypatch):
    """Resume in this process, recording the controller and shared weights as
    they are when the search starts again."""
    from sklearn.datasets import make_blobs
    seen = {}
    original = Search.run

    def run(self, start_epoch=0):
        seen.update(start=start_epoch, state=self.strategy.get_state(),
                    weights=self.store.to_arrays(), n_trials=len(self.trials))
        return original(self, start_epoch)

    monkeypatch.setattr(Search, "run", run)
    X, y = make_blobs(n_samples=300, centers=3, n_features=4, random_state=0)
    X = (X - X.mean(0)) / X.std(0)
    clf = MLPNASClassifier(controller_epochs=n_epochs, samples_per_epoch=2, epochs=2,
                           strategy=Reinforce(train_steps=1, lstm_units=8),
                           space=SearchSpace(units=(4, 8), activations=("relu", "tanh")),
                           random_state=None, resume=run_dir)
    return clf.fit(X, y), seen


@pytest.mark.parametrize("kill", ["external", "kill-after-trial-2"])
def test_a_killed_run_resumes_without_retraining_finished_work(tmp_path, kill, monkeypatch):
    n_epochs = 6 if kill == "external" else 3
    proc, _ = _spawn(tmp_path, kill, n_epochs)
    if kill == "external":  # the test's own SIGKILL, at whatever moment the 3rd line lands
        _wait_for(lambda: len(_trial_lines(tmp_path)) >= 3, proc)
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=90)
    assert proc.returncode == -signal.SIGKILL
    run_dir = next((tmp_path / "logs").glob("run-*"))
    before = []
    for line in _trial_lines(tmp_path):
        try:
            before.append(json.loads(line))
        except json.JSONDecodeError:  # killed while writing this line
            break
    epoch, n_done, state, weights = load_run(run_dir).checkpoint()

    clf, seen = _resume_fit(run_dir, n_epochs, monkeypatch)

    # the controller (weights, Adam slots, step, baseline, predictor) and the
    # shared weights are back exactly as checkpointed
    assert seen["start"] == epoch + 1 and seen["n_trials"] == n_done
    assert set(seen["state"]) == set(state)
    for key in state:
        np.testing.assert_array_equal(seen["state"][key], state[key])
    assert set(seen["weights"]) == set(weights.to_arrays())
    for key, value in weights.to_arrays().items():
        np.testing.assert_array_equal(seen["weights"][key], value)
    # every candidate exactly once; finished epochs were not trained again
    res = clf.search_results_
    assert len(res["architecture"]) == 2 * n_epochs == len(set(res["architecture"]))
    assert list(res["controller_epoch"]) == [e for e in range(n_epochs) for _ in range(2)]
    assert (res["pid"][:n_done] == proc.pid).all() and (res["pid"][n_done:] == os.getpid()).all()
    for old in before[:n_done]:
        assert res["architecture"][old["index"]] == old["architecture"]
        assert res["fit_time"][old["index"]] == old["fit_time"]
    # a dropped, unfinished epoch is run again with the same architectures
    for old in before[n_done:]:
        assert res["architecture"][old["index"]] == old["architecture"]
    run = load_run(run_dir)
    assert len(run.trials) == 2 * n_epochs and len(run.history["controller_epoch"]) == n_epochs
    assert run.meta["status"] == "finished" and len(run.meta["resumed"]) == 1


def test_resume_refuses_different_settings_or_data(tmp_path, blobs, tiny):
    run_dir = MLPNASClassifier(**tiny, log_dir=tmp_path).fit(*blobs).run_dir_
    with pytest.raises(ValueError, match="parameters differ.*epochs=2"):
        MLPNASClassifier(**{**tiny, "epochs": 3}, resume=run_dir).fit(*blobs)
    # the strategy's and the space's own parameters are settings of the search too
    with pytest.raises(ValueError, match="parameters differ.*strategy__discount=0.9 .now 0.5"):
        MLPNASClassifier(**{**tiny, "strategy": Reinforce(train_steps=1, lstm_units=8,
                                                          discount=0.5)},
                         resume=run_dir).fit(*blobs)
    other_space = SearchSpace(units=(4, 16), activations=("relu", "tanh"))
    with pytest.raises(ValueError, match=r"differ.*space__units=\[4, 8\] .now \[4, 16\]"):
        MLPNASClassifier(**{**tiny, "space": other_space}, resume=run_dir).fit(*blobs)
    with pytest.raises(ValueError, match="training data .* differs"):
        MLPNASClassifier(**tiny, resume=run_dir).fit(blobs[0] + 1, blobs[1])
    # what acts after the search may differ: here the finalists' cross-validation and length
    more = MLPNASClassifier(**{**tiny, "controller_epochs": 2, "cv": 3, "finalist_epochs": 4},
                            resume=run_dir).fit(*blobs)
    assert list(more.search_results_["controller_epoch"]) == [0, 0, 1, 1]
    assert more.refit_epochs_ == 4 and np.isfinite(more.search_results_["cv_score"]).any()


# ------------------------------------------------------------- 5. safe files
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from sklearn.datasets import make_blobs
    X, y = make_blobs(n_samples=120, centers=2, n_features=3, random_state=0)
    tmp = tmp_path_factory.mktemp("runs")
    clf = MLPNASClassifier(controller_epochs=2, samples_per_epoch=2, epochs=2,
                           strategy=Reinforce(train_steps=1, lstm_units=8),
                           space=SearchSpace(units=(4,), activations=("relu",)),
                           random_state=0, log_dir=tmp).fit(X, y)
    return clf.run_dir_


@pytest.fixture
def copy_run(finished_run, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(finished_run, dest)
    return dest


def test_truncated_last_trial_line_is_skipped_with_a_warning(copy_run):
    path = copy_run / "trials.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[:-25])  # killed while writing the last line
    with pytest.warns(UserWarning, match="last line is truncated"):
        run = load_run(copy_run)
    assert len(run.results["reward"]) == data.count(b"\n") - 1


@pytest.mark.parametrize("damage, message", [
    (lambda p: _edit_line(p, 0, lambda s: s[:len(s) // 2]), "line 1: not valid JSON"),
    (lambda p: _edit_line(p, 1, lambda s: json.dumps({**json.loads(s), "evil": 1})),
     "line 2: a trial needs the keys"),
    (lambda p: _edit_line(p, 0, lambda s: json.dumps({**json.loads(s), "index": "0"})),
     "wrong type"),
    (lambda p: _edit_json(p / "meta.json", format_version=99), "format 99.*reads format 1"),
    (lambda p: (p / "meta.json").write_text("{not json"), "meta.json is not valid JSON"),
    (lambda p: _edit_json(p / "meta.json", format="other"), "not describe an sknas run"),
    (lambda p: (p / "meta.json").unlink(), "meta.json is missing"),
])
def test_tampered_run_folders_give_a_clear_error(copy_run, damage, message):
    damage(copy_run)
    with pytest.raises(RunFormatError, match=message):
        load_run(copy_run)


def test_nothing_in_a_run_folder_is_unpickled(copy_run):
    # an object array in the checkpoint would need pickle: refused
    np.savez(copy_run / "checkpoint.npz", epoch=np.array(0), n_trials=np.array(2),
             **{"controller/baseline": np.array([{"evil": 1}], dtype=object)})
    with pytest.raises(RunFormatError, match="checkpoint"):
        load_run(copy_run).checkpoint()


def test_keras_files_load_in_safe_mode(copy_run):
    import keras
    evil = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])
    evil.save(copy_run / "model.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        load_run(copy_run).load_model()


def test_resume_refuses_a_run_from_another_sknas_version(copy_run):
    _edit_json(copy_run / "meta.json", sknas_version="0.0.1")
    assert load_run(copy_run).meta["sknas_version"] == "0.0.1"  # still readable
    with pytest.raises(RunFormatError, match="sknas 0.0.1"):
        MLPNASClassifier(resume=copy_run).fit(np.zeros((10, 3)), [0, 1] * 5)


def _edit_line(run_dir, i, fn):
    path = run_dir / "trials.jsonl"
    lines = path.read_text().splitlines()
    lines[i] = fn(lines[i])
    path.write_text("\n".join(lines) + "\n")


def _edit_json(path, **changes):
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# ------------------------------------------------------ 6. pickle-free models
@pytest.mark.parametrize("labels", [np.array([False, True]), np.array(["cat", "dog", "eel"]),
                                    np.array([3, 7, 11])])
def test_save_model_round_trips_without_pickle(tmp_path, blobs, tiny, labels, monkeypatch):
    import pickle
    X, y = blobs
    X = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    y = labels[y % len(labels)]
    clf = MLPNASClassifier(**tiny).fit(X, y)
    clf.save_model(tmp_path / "shipped")
    assert sorted(p.name for p in (tmp_path / "shipped").iterdir()) == ["model.keras", "sknas_model.json"]

    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle was used")
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "loads", no_pickle)
    model = load_model(tmp_path / "shipped")
    assert model.classes_.dtype == clf.classes_.dtype and list(model.classes_) == list(clf.classes_)
    np.testing.assert_allclose(model.predict_proba(X), clf.predict_proba(X), rtol=1e-6)
    assert (model.predict(X) == clf.predict(X)).all()
    assert model.architecture_ == clf.best_architecture_
    assert list(model.feature_names_in_) == ["a", "b", "c", "d"]
    assert model.params_["space__units"] == [4, 8] and "units" not in model.params_
    assert model.params_["space"] == repr(clf.space)
    assert model.params_["strategy"] == "Reinforce(lstm_units=8, train_steps=1)"
    with pytest.raises(ValueError, match="feature names"):
        model.predict(X[["d", "c", "b", "a"]])


def test_load_model_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "sknas_model.json").write_text(json.dumps({"format": "sknas-model", "format_version": 2}))
    with pytest.raises(RunFormatError, match="model format 2"):
        load_model(tmp_path)
