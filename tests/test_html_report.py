"""The HTML report of a search, used as a person uses it: the command line in a real
subprocess writes one page, which a headless Chromium with no network opens."""

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sknas import load_run

from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
N_CANDIDATES = 6  # 2 controller epochs x 3 candidates

#: What a page that loads nothing from elsewhere never contains.
EXTERNAL = re.compile(r"https?://|//cdn|\bsrc\s*=\s*(?!['\"]?data:)|@import|url\(\s*['\"]?http"
                      r"|<link\b", re.I)


def in_ci():
    """True when the environment variable ``CI`` is set (and not to false, 0 or no)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def sknas(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-m", "sknas", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def folder_hashes(path):
    """SHA-256 of every file under ``path``, and every folder in it."""
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "folder" for p in sorted(Path(path).rglob("*"))}


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A real tiny search with a run folder; the page is also written from inside the
    search, after its first controller epoch, as ``sknas report`` would see it then."""
    from sklearn.datasets import load_iris

    from sknas import MLPNASClassifier
    from sknas._runlog import RunLog

    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    logs = tmp_path_factory.mktemp("logs")
    during = []
    original = RunLog.on_epoch

    def on_epoch(self, row, search):
        original(self, row, search)
        if not during:
            during.append(load_run(self.path).to_html())

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RunLog, "on_epoch", on_epoch)
        clf = MLPNASClassifier(**dict(TINY, controller_epochs=2, samples_per_epoch=3),
                               log_dir=logs).fit(X, y)
    return clf, Path(clf.run_dir_), during[0]


@pytest.fixture(scope="module")
def page(searched, tmp_path_factory):
    """``sknas report RUN --html report.html`` in a subprocess: the process, the page,
    and the run folder's files before and after."""
    _, run_dir, _ = searched
    cwd = tmp_path_factory.mktemp("report")
    before = folder_hashes(run_dir)
    proc = sknas("report", run_dir, "--html", "report.html", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return SimpleNamespace(proc=proc, path=cwd / "report.html", before=before,
                           after=folder_hashes(run_dir))


def leaderboard_rows(text):
    table = text.split("id='leaderboard-table'")[1].split("</table>")[0]
    return re.findall(r"<tr class='[^']*' data-row='(\d+)'", table)


# ------------------------------------------------------------- the command
def test_cli_writes_one_page_with_every_candidate_and_the_winner(searched, page):
    clf, run_dir, _ = searched
    proc, path = page.proc, page.path
    assert "wrote report.html" in proc.stdout
    assert "Traceback" not in proc.stderr and "still running" not in proc.stdout
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert sorted(map(int, leaderboard_rows(text))) == list(range(N_CANDIDATES))
    # best first, highlighted; the winner section names the refit winner
    assert re.search(rf"<tr class='best' data-row='{clf.best_index_}'>", text)
    assert leaderboard_rows(text)[0] == str(clf.best_index_)
    winner = text.split("id='winner'")[1].split("</section>")[0]
    assert html.escape(clf.best_architecture_, quote=True) in winner
    assert f"{clf.best_score_:.4f}" in winner
    for section in ("search", "data", "leaderboard", "plots", "controller-history", "parameters"):
        assert f"<section id='{section}'>" in text
    assert "stop reason</th><td>completed: every controller epoch ran" in text
    assert "classes</th><td>3: 0, 1, 2" in text and "features</th><td>4" in text
    assert len(re.findall(r"<img class='plot' id='plot-(\w+)'", text)) == 4
    history = text.split("id='controller-history'")[1].split("</section>")[0]
    assert history.count("<tr>") == 1 + 2  # header and one row per controller epoch


def test_writing_the_page_changes_nothing_in_the_run_folder(page):
    assert len(page.before) >= 6 and {"trials.jsonl", "model.keras"} <= set(page.before)
    assert page.after == page.before


def test_default_file_is_the_run_folder_name_in_the_current_directory(searched, tmp_path):
    _, run_dir, _ = searched
    proc = sknas("report", run_dir, "--html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / f"{run_dir.name}.html").is_file()
    assert not (run_dir / f"{run_dir.name}.html").exists() and not (run_dir / "plots").exists()


def test_page_loads_nothing_from_a_network(page):
    text = page.path.read_text(encoding="utf-8")
    assert not EXTERNAL.search(text), EXTERNAL.search(text)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    srcs = re.findall(r"\bsrc\s*=\s*['\"]([^'\"]{0,30})", text)
    assert len(srcs) == 4 and all(s.startswith("data:image/png;base64,") for s in srcs)


def test_the_check_for_external_urls_catches_them():
    for bad in ("<img src='https://example.org/a.png'>", "<script src=\"x.js\">",
                "<style>@import 'a.css'</style>", "<link rel=stylesheet href=a.css>",
                "background: url(http://x)", "<script src='//cdn.example/x.js'>"):
        assert EXTERNAL.search(bad), bad


# ------------------------------------------------------------- the browser
def chromium():
    """Debian's headless Chromium: skipped where missing, but never under CI."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None and os.path.exists("/usr/bin/chromium"):
        exe = "/usr/bin/chromium"
    if exe is None:
        if in_ci():
            pytest.fail("headless Chromium is not installed: .ci/run installs Debian's "
                        "'chromium' package; the browser tests must run in CI")
        pytest.skip("headless Chromium not found (Debian: apt-get install chromium): "
                    "the page is not rendered in a browser here")
    return exe


def test_missing_chromium_skips_locally_but_fails_under_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os.path, "exists", lambda path: False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install chromium"):
        chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="must run in CI"):
        chromium()


def browse(url, tmp_path, *extra):
    """Run headless Chromium on ``url`` with networking disabled."""
    profile = tmp_path / "chromium-profile"
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--hide-scrollbars", "--no-first-run", "--disable-extensions", "--disable-sync",
           "--disable-background-networking", "--disable-component-update",
           f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9",
           "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,3000", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


#: Appended to a copy of the page: once it has loaded, records what a person would
#: see (images decoded and laid out, rows, resources fetched) and sorts the
#: leaderboard by clicking the reward header, twice.
PROBE = """<script>
window.addEventListener('load', function () {
  var table = document.getElementById('leaderboard-table');
  var th = table.querySelector("th[data-col='reward']");
  function column() {
    return Array.prototype.map.call(table.tBodies[0].rows,
                                    function (r) { return r.cells[th.cellIndex].getAttribute('data-v'); });
  }
  function ink(img) {  // share of dark, opaque pixels and distinct colours, as decoded
    var c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    if (!c.width || !c.height) { return {dark: 0, colours: 0}; }
    var g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    var d = g.getImageData(0, 0, c.width, c.height).data, dark = 0, colours = {};
    for (var k = 0; k < d.length; k += 4) {
      if (d[k + 3] > 200 && (d[k] < 200 || d[k + 1] < 200 || d[k + 2] < 200)) { dark++; }
      colours[d[k] + ',' + d[k + 1] + ',' + d[k + 2] + ',' + d[k + 3]] = 1;
    }
    return {dark: dark / (c.width * c.height), colours: Object.keys(colours).length};
  }
  var out = {
    images: Array.prototype.map.call(document.images, function (i) {
      var box = i.getBoundingClientRect(), style = getComputedStyle(i), drawn = ink(i);
      return {id: i.id, complete: i.complete, width: i.naturalWidth,
              shown: box.width * box.height * (style.visibility === 'visible') * parseFloat(style.opacity),
              dark: drawn.dark, colours: drawn.colours};
    }),
    rows: table.tBodies[0].rows.length,
    resources: performance.getEntriesByType('resource').map(function (e) { return e.name; })
  };
  th.click(); out.ascending = column(); out.ascending_state = th.getAttribute('aria-sort');
  th.click(); out.descending = column();
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def probe(page_text, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(page_text.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = browse(probed.as_uri(), tmp_path, "--virtual-time-budget=10000", "--dump-dom")
    found = re.search(r"<pre id=\"probe\">(.*?)</pre>", proc.stdout, re.S)
    assert found, f"the probe did not run: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_chromium_without_network_shows_the_leaderboard_and_every_plot(page, tmp_path):
    seen = probe(page.path.read_text(encoding="utf-8"), tmp_path)
    assert seen["rows"] == N_CANDIDATES
    assert [i["id"] for i in seen["images"]] == [
        "plot-reward_history", "plot-reward_distribution", "plot-predictor",
        "plot-controller_history"]
    for image in seen["images"]:
        assert image["complete"] and image["width"] > 0 and image["shown"] > 10_000, image
        # decoded in full: axes, points and text, not a blank or half-read image
        assert image["dark"] > 0.01 and image["colours"] > 50, image
    assert all(url.startswith("data:") for url in seen["resources"]), seen["resources"]
    # sorting by clicking the header: rewards ascending, then descending
    asc = [float(v) for v in seen["ascending"]]
    assert seen["ascending_state"] == "ascending"
    assert asc == sorted(asc) and len(asc) == N_CANDIDATES
    assert [float(v) for v in seen["descending"]] == sorted(asc, reverse=True)


def test_chromium_screenshot_of_the_page_is_not_blank(page, tmp_path):
    shot = tmp_path / "report.png"
    proc = browse(page.path.as_uri(), tmp_path, f"--screenshot={shot}")
    assert shot.is_file(), proc.stderr[-2000:]
    assert shot.stat().st_size > 50_000
    import matplotlib.image as mpimg
    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (3000, 1280)
    colours = np.unique((pixels.reshape(-1, 3) * 255).astype(np.uint8), axis=0)
    assert len(colours) > 200
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert not_white > 0.05


# ----------------------------------------------------- a search not finished
def test_page_written_while_the_search_runs_says_so(searched):
    _, _, during = searched
    assert "id='running-notice'" in during
    assert "still running, or it was interrupted" in during
    assert len(leaderboard_rows(during)) == 3  # the first controller epoch's candidates
    assert "status</th><td>still running or interrupted" in during


def test_interrupted_run_folder_gives_the_page_so_far_with_a_notice(searched, tmp_path):
    _, run_dir, _ = searched
    killed = tmp_path / run_dir.name
    shutil.copytree(run_dir, killed)
    meta = json.loads((killed / "meta.json").read_text())
    meta.update(status="running", stop_reason=None)
    del meta["best_index"], meta["best_architecture"]
    (killed / "meta.json").write_text(json.dumps(meta))
    (killed / "model.keras").unlink()
    trials = (killed / "trials.jsonl").read_bytes()
    (killed / "trials.jsonl").write_bytes(trials[:-40])  # killed while writing the last line
    before = folder_hashes(killed)
    proc = sknas("report", killed, "--html", "page.html", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "still running or was interrupted" in proc.stdout
    assert f"the {N_CANDIDATES - 1} candidates recorded so far" in proc.stdout
    warning = [line for line in proc.stderr.splitlines() if "truncated" in line]
    assert len(warning) == 1 and warning[0].startswith("sknas: warning: ")
    text = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert "id='running-notice'" in text and "the last line is truncated" in text
    assert len(leaderboard_rows(text)) == N_CANDIDATES - 1
    assert folder_hashes(killed) == before


def test_run_with_no_candidate_yet_gives_a_page(searched, tmp_path):
    _, run_dir, _ = searched
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    for name in ("meta.json", "params.json"):
        shutil.copy(run_dir / name, fresh / name)
    text = load_run(fresh).to_html()
    assert "id='running-notice'" not in text  # this copy's meta.json says finished
    assert "No candidate has been recorded yet" in text
    assert "No controller epoch has finished yet" in text
    assert leaderboard_rows(text) == []


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("case", ["not a run folder", "no such folder", "damaged trials",
                                  "missing directory", "a directory", "inside the run folder"])
def test_bad_input_is_one_line_and_status_2_and_changes_nothing(case, searched, tmp_path):
    _, run_dir, _ = searched
    run, out = run_dir, tmp_path / "out.html"
    if case == "not a run folder":
        run = tmp_path / "plain"
        run.mkdir()
        (run / "notes.txt").write_text("hello")
    elif case == "no such folder":
        run = tmp_path / "nope"
    elif case == "damaged trials":
        run = tmp_path / "damaged"
        shutil.copytree(run_dir, run)
        lines = (run / "trials.jsonl").read_text().splitlines(keepends=True)
        lines[1] = lines[1][:30] + "\n"
        (run / "trials.jsonl").write_text("".join(lines))
    elif case == "missing directory":
        out = tmp_path / "no" / "such" / "dir" / "out.html"
    elif case == "a directory":
        out = tmp_path / "existing"
        out.mkdir()
    else:
        out = run_dir / "report.html"
    before = folder_hashes(run) if run.exists() else None
    proc = sknas("report", run, "--html", out, cwd=tmp_path)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sknas: error: "), proc.stderr
    assert proc.stdout == ""
    expected = {"not a run folder": "cannot read the run", "no such folder": "no such run folder",
                "damaged trials": "line 2: not valid JSON", "missing directory": "cannot write",
                "a directory": "cannot write", "inside the run folder": "inside the run folder"}
    assert expected[case] in lines[0]
    if before is not None:
        assert folder_hashes(run) == before
    assert not (tmp_path / "out.html").exists()


def test_run_to_html_refuses_a_path_in_the_run_folder(searched):
    _, run_dir, _ = searched
    with pytest.raises(ValueError, match="inside the run folder"):
        load_run(run_dir).to_html(run_dir / "plots" / "page.html")


# ------------------------------------------------------ what the page shows
def test_to_html_returns_or_writes_the_page_with_the_held_out_score(searched, tmp_path):
    _, run_dir, _ = searched
    run = load_run(run_dir)
    text = run.to_html()
    assert "held-out score</th><td>not known to the run folder" in text
    path = run.to_html(tmp_path / "r.html", held_out_score={"accuracy": 0.93125, "note": "x<y"})
    assert path == tmp_path / "r.html"
    written = path.read_text(encoding="utf-8")
    assert "accuracy</th><td>0.9313" in written and "note</th><td>x&lt;y" in written


def test_predictor_rank_correlation_is_spearman_over_successful_candidates(searched):
    from scipy.stats import spearmanr

    from sknas._html import spearman
    _, run_dir, _ = searched
    run = load_run(run_dir)
    r = run.results
    expected = spearmanr(r["predicted_reward"], r["reward"]).statistic
    assert spearman(r["predicted_reward"], r["reward"]) == (pytest.approx(expected),
                                                             N_CANDIDATES)
    assert f"&rho; = {expected:.3f}</strong> over {N_CANDIDATES} successful" in run.to_html()
    # failed candidates, missing predictions and constant input are left out or n/a
    rho, n = spearman([0.1, 0.2, np.nan, 0.4], [0.3, 0.1, 0.5, np.nan])
    assert n == 2 and rho == pytest.approx(-1.0)
    assert np.isnan(spearman([0.5, 0.5, 0.5], [0.1, 0.2, 0.3])[0])


def test_failed_candidates_extra_columns_and_escaping(searched):
    """Columns other work adds (cv_score, cv_std, ensemble_weight) are shown when present;
    a failed candidate shows its message; every value is escaped."""
    _, run_dir, _ = searched
    run = load_run(run_dir)
    r = run.results
    n = len(r["reward"])
    r["status"][1] = "failed"
    r["reward"][1] = np.nan
    r["message"][1] = "ValueError: <script>alert('x')</script> & NaN loss"
    r["cv_score"] = np.linspace(0.5, 0.9, n)
    r["cv_std"] = np.full(n, 0.01)
    r["ensemble_weight"] = np.array([0.5, 0, 0.25, 0.25, 0, 0][:n])
    for k in [k for k in r if k.startswith("split")]:
        del r[k]
    r["split0_score"] = np.full(n, 0.5)
    r["split1_score"] = np.full(n, 0.25)
    r["fold_scores"] = np.zeros((n, 3))  # not one value per row: left out
    r["never_set"] = np.full(n, np.nan)  # no value at all: left out
    text = run.to_html()
    head = text.split("id='leaderboard-table'")[1].split("</thead>")[0]
    labels = re.findall(r"data-col='([\w ]+)'", head)
    assert labels[:3] == ["rank", "architecture", "reward"]
    assert {"cv_score", "cv_std", "ensemble_weight", "score per fold", "message"} <= set(labels)
    assert not {"fold_scores", "never_set", "split0_score", "host", "pid"} & set(labels)
    assert "<td class='num folds' data-v='0.375'>0.500 0.250</td>" in text
    assert "<script>alert" not in text
    assert "ValueError: &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; NaN loss" in text
    assert "<tr class='failed' data-row='1'>" in text
    assert "Ensemble (3 members)" in text
    assert "1 failed" in text
    r["ensemble_weight"] = np.zeros(n)  # no ensemble: neither the column nor the list
    text = run.to_html()
    assert "data-col='ensemble_weight'" not in text and "Ensemble (" not in text


def test_regression_meta_without_classes_shows_what_is_known_of_the_target(searched):
    _, run_dir, _ = searched
    run = load_run(run_dir)
    run.meta = dict(run.meta, task="regression", classes=None, target_range=[1.5, 9.0],
                    target={"n_outputs": 1, "mean": [5.87654321], "std": [0.88]},
                    n_samples=500)
    run.classes = None
    text = run.to_html()
    assert "task</th><td>regression" in text
    assert "target range</th><td>1.5 to 9" in text and "rows</th><td>500" in text
    assert "target mean</th><td>5.87654" in text and "target n outputs</th><td>1" in text
    assert "classes</th>" not in text
    del run.meta["classes"]  # absent altogether
    assert "task</th><td>regression" in run.to_html()


def test_regressor_run_folder_gives_a_page(tmp_path):
    from sklearn.datasets import make_regression

    from sknas import MLPNASRegressor
    X, y = make_regression(n_samples=120, n_features=4, noise=5.0, random_state=0)
    reg = MLPNASRegressor(**TINY, log_dir=tmp_path / "logs").fit(X, y)
    run = load_run(reg.run_dir_)
    assert run.meta.get("classes") is None
    path = run.to_html(tmp_path / "reg.html", held_out_score={"R^2": 0.5, "RMSE": 12.25})
    text = path.read_text(encoding="utf-8")
    assert "task</th><td>regression" in text and "classes</th>" not in text
    assert "R^2</th><td>0.5000" in text and "RMSE</th><td>12.2500" in text
    assert len(leaderboard_rows(text)) == len(reg.search_results_["reward"])
    assert len(re.findall(r"<img class='plot'", text)) == 4


def test_without_matplotlib_the_page_says_plots_need_it(searched, monkeypatch):
    _, run_dir, _ = searched
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    text = load_run(run_dir).to_html()
    assert "The plots need matplotlib" in text and "<img" not in text
    assert len(leaderboard_rows(text)) == N_CANDIDATES


def test_estimator_report_of_a_fitted_estimator_and_a_pipeline(searched, tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from sknas._html import estimator_report
    clf, _, _ = searched
    text = estimator_report(clf, held_out_score=0.9)
    assert len(leaderboard_rows(text)) == N_CANDIDATES
    assert "search time</th><td>" in text and "refit time</th><td>" in text
    assert "cross-validation time</th><td>" in text
    assert f"refit epochs</th><td>{clf.refit_epochs_}</td>" in text
    served = {"folds": "the finalists&#x27; fold models", True: "refit on all training rows",
              False: "as the search trained it"}[clf.refit_]
    assert f"served</th><td>{served}</td>" in text
    assert "held-out score</th><td>0.9000" in text
    assert "status</th><td>finished" in text
    pipe = make_pipeline(FunctionTransformer(), clf)
    path = estimator_report(pipe, tmp_path / "p.html")
    assert len(leaderboard_rows(path.read_text(encoding="utf-8"))) == N_CANDIDATES
    with pytest.raises(ValueError, match="inside the run folder"):
        estimator_report(clf, clf.run_dir_ / "p.html")


def test_a_fitted_estimator_writes_its_own_page(tmp_path):
    """``est.to_html`` needs no run folder: the page comes from the fitted attributes."""
    from sklearn.datasets import make_classification

    from sknas import MLPNASClassifier
    from conftest import TINY
    X, y = make_classification(120, 4, n_informative=3, n_redundant=0, random_state=0)
    est = MLPNASClassifier(**{**TINY, "samples_per_epoch": 3}).fit(X, y)
    path = est.to_html(tmp_path / "est.html", held_out_score=0.5)
    text = path.read_text(encoding="utf-8")
    for arch in est.search_results_["architecture"]:
        assert html.escape(arch) in text
    assert "http://" not in text and "https://" not in text
    with pytest.raises(Exception, match="not fitted|NotFitted"):
        MLPNASClassifier().to_html()


def test_winner_card_of_a_cross_validated_search_shows_its_cv_score_and_spread(tmp_path):
    """Guards against the winner card leaving out the cross-validated score and its
    standard deviation over the folds (the other pages here come from ``cv=None``)."""
    from sklearn.datasets import make_classification

    from sknas import MLPNASClassifier
    X, y = make_classification(120, 4, n_informative=3, n_redundant=0, random_state=0)
    est = MLPNASClassifier(**{**TINY, "samples_per_epoch": 3, "cv": 2, "n_finalists": 2,
                              "ensemble_size": 0}, log_dir=tmp_path / "logs").fit(X, y)
    res, best = est.search_results_, est.best_index_
    cv_score, cv_std = res["cv_score"][best], res["cv_std"][best]
    assert np.isfinite(cv_score) and np.isfinite(cv_std)  # the winner is a finalist
    for text in (est.to_html(), load_run(est.run_dir_).to_html()):
        winner = text.split("id='winner'")[1].split("</section>")[0]
        facts = dict(re.findall(r"<th scope='row'>([^<]*)</th><td>([^<]*)</td>", winner))
        shown = {label: value for label, value in facts.items() if label.startswith("cv")}
        assert len(shown) == 2, facts
        (score,) = [v for k, v in shown.items() if "score" in k]
        (std,) = [v for k, v in shown.items() if "std" in k]
        assert float(score) == pytest.approx(cv_score, abs=5e-5)
        assert float(std) == pytest.approx(cv_std, abs=5e-5)
