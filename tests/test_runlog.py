"""Run folders: what ``log_dir`` writes, and ``load_run`` reading it back."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from sknas import MLPNASClassifier, load_run
from sknas._runlog import RunLog

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind == "f":
        return np.allclose(a, b, equal_nan=True)
    return a.tolist() == b.tolist()


@pytest.fixture
def frame_data(blobs):
    X, y = blobs
    X = pd.DataFrame(X, columns=["alpha", "beta", "gamma", "delta"])
    return X, np.array(["low", "mid", "high"])[y]


def test_default_writes_no_files(tmp_path, monkeypatch, blobs, tiny):
    monkeypatch.chdir(tmp_path)
    clf = MLPNASClassifier(**tiny).fit(*blobs)
    assert clf.run_dir_ is None
    assert list(tmp_path.iterdir()) == []


def test_run_folder_holds_every_file_and_reads_back(tmp_path, frame_data, tiny):
    tiny.update(controller_epochs=2)
    clf = MLPNASClassifier(**tiny, log_dir=tmp_path / "logs").fit(*frame_data)
    run_dir = clf.run_dir_
    assert run_dir.parent == tmp_path / "logs"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "checkpoint.npz", "controller_history.json", "meta.json", "model.keras",
        "params.json", "trials.jsonl"]

    run = load_run(run_dir)
    assert set(run.results) == set(clf.search_results_)
    for key, col in clf.search_results_.items():
        assert _same(run.results[key], col), key
    for key, col in clf.controller_history_.items():
        assert _same(run.history[key], col), key
    assert run.best_index == clf.best_index_
    assert run.classes.dtype == clf.classes_.dtype and list(run.classes) == list(clf.classes_)
    assert run.meta["feature_names"] == ["alpha", "beta", "gamma", "delta"]
    assert run.meta["n_features"] == 4 and run.meta["status"] == "finished"
    assert run.meta["stop_reason"] == "completed"
    # the space and the strategy as their repr, and their parameters one by one
    assert run.params["space"] == repr(clf.space) and run.params["space__units"] == [4, 8]
    assert run.params["strategy"] == repr(clf.strategy)
    assert run.params["strategy__lstm_units"] == 8
    assert run.params["error_score"] is None  # NaN -> null
    json.loads((run_dir / "params.json").read_text())  # strict JSON


def test_checkpoint_and_model_match_the_fitted_estimator(tmp_path, blobs, tiny):
    clf = MLPNASClassifier(**tiny, log_dir=tmp_path).fit(*blobs)
    run = load_run(clf.run_dir_)
    epoch, n_trials, state, weights = run.checkpoint()
    assert (epoch, n_trials) == (0, 2)
    for key, value in clf.controller_.get_state().items():
        np.testing.assert_array_equal(state[key], value)
    assert len(weights) > 0
    model = run.load_model()
    X = blobs[0][:20].astype(np.float32)
    np.testing.assert_allclose(model(X).numpy(), clf.model_(X).numpy(), rtol=1e-6)


def test_each_fit_gets_a_new_folder(tmp_path, blobs, tiny):
    first = MLPNASClassifier(**tiny, log_dir=tmp_path).fit(*blobs).run_dir_
    before = (first / "trials.jsonl").read_bytes()
    second = MLPNASClassifier(**tiny, log_dir=tmp_path).fit(*blobs).run_dir_
    assert first != second
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, second.name])
    assert (first / "trials.jsonl").read_bytes() == before


def test_trial_lines_are_on_disk_when_each_candidate_ends(tmp_path, blobs, tiny, monkeypatch):
    seen = []
    original = RunLog.on_trial

    def spy(self, trial):
        original(self, trial)
        with open(self.path / "trials.jsonl", encoding="utf-8") as fh:  # a separate reader
            lines = fh.read().splitlines()
        seen.append((trial.index, len(lines), json.loads(lines[-1])["architecture"]))
        assert trial.architecture == seen[-1][2]

    monkeypatch.setattr(RunLog, "on_trial", spy)
    tiny.update(samples_per_epoch=3)
    MLPNASClassifier(**tiny, log_dir=tmp_path).fit(*blobs)
    assert [(i, n) for i, n, _ in seen] == [(0, 1), (1, 2), (2, 3)]
