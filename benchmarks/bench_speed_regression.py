"""Speed of the ``MLPNASRegressor`` search against a plain ``model.fit`` loop (issue #13).

One command, from the repository root::

    python benchmarks/bench_speed_regression.py --out benchmarks/RESULTS.md  # full run
    python benchmarks/bench_speed_regression.py --quick                     # smoke run

In one process, on the bundled wine data with ``quality`` as a numeric target
(80/20 split with ``random_state=0``, not stratified; ``StandardScaler``
fitted on the training part):

A. ``MLPNASRegressor(random_state=0, batch_size=32).fit``: the default search (100
   candidates), the finalists' cross-validation and the refit
   (``search_time_``, ``cv_time_``, ``refit_time_``);
B. the same architectures (A's ``search_results_['layers']``) as a tutorial
   user trains them: ``build_keras_model`` with a linear head, ``Adam(0.01)``,
   mean squared error, ``model.fit(epochs=10, batch_size=32)`` with
   ``validation_data``, one after the other, on the search's own
   training/validation rows (captured from the estimator's ``_split``).

It prints a Markdown section with the times, the ratios B / A, and the
validation R^2 of both (B's last epoch against ``search_results_['last_score']``,
on the same validation rows), and with ``--out`` writes it into that file
between the ``bench_speed_regression`` markers (replacing an earlier section,
else appended; the rest of the file is kept).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

from bench_speed import Clock, _table, environment, write_section  # noqa: E402

START = "<!-- bench_speed_regression:start -->"
END = "<!-- bench_speed_regression:end -->"


# ---------------------------------------------------------------- the data
def reference_data():
    """Scaled ``X_train, X_test, y_train, y_test``: wine ``quality`` as a number."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from sknas.datasets import load_wine_quality
    X, y = load_wine_quality(return_X_y=True, target="quality")
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


# ------------------------------------------------------------- the parts
def part_a(X_tr, y_tr, X_te, y_te, controller_epochs):
    """The default search + refit; also returns the ``CandidateData`` its ``_split`` drew."""
    from sknas import MLPNASRegressor
    # batches of 32, as B's model.fit (batch_size='auto' would take 64 on 3,918 rows)
    est = MLPNASRegressor(random_state=0, controller_epochs=controller_epochs, batch_size=32)
    captured = []
    split = est._split  # the bound method; the spy is an instance attribute, not a parameter

    def spy(*args, **kwargs):
        data = split(*args, **kwargs)
        captured.append(data)
        return data

    est._split = spy
    try:
        with Clock() as clock:
            est.fit(X_tr, y_tr)
    finally:
        del est._split
    if len(captured) != 1:
        raise RuntimeError(f"expected one call of _split, got {len(captured)}")
    res = est.search_results_
    ok = res["status"] == "ok"
    out = {"wall": clock.wall, "cpu": clock.cpu, "search_time": est.search_time_,
           "cv_time": est.cv_time_, "refit_time": est.refit_time_,
           "n_candidates": int(est.n_candidates_), "n_failed": int((~ok).sum()),
           "best_score": float(est.best_score_), "best_architecture": est.best_architecture_,
           "test_r2": float(est.score(X_te, y_te)),
           "last_score": np.asarray(res["last_score"], dtype=float),
           "architectures": list(res["architecture"]), "layers": list(res["layers"])}
    return est, captured[0], out


def part_b(layers_list, data, y_fit, y_val):
    """Plain Keras: build, compile, ``model.fit`` each architecture in turn."""
    import keras
    from sknas._trainer import Head, build_keras_model
    keras.utils.set_random_seed(0)  # reproducible initialisation and shuffling of B
    head = Head("linear", y_fit.shape[1])
    r2 = []
    with Clock() as clock:
        for layers in layers_list:
            model = build_keras_model(layers, data.n_features, head)
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                          loss="mean_squared_error", metrics=[keras.metrics.R2Score(name="r2")])
            hist = model.fit(data.X, y_fit, epochs=10, batch_size=32, verbose=0,
                             validation_data=(data.X_val, y_val))
            r2.append(float(hist.history["val_r2"][-1]))
    return {"wall": clock.wall, "cpu": clock.cpu, "n": len(r2),
            "per_model": clock.wall / max(len(r2), 1), "last_r2": np.array(r2)}


def check_r2_metric(layers, data):
    """Keras' ``R2Score`` against sklearn's ``r2_score`` on one small model (untimed)."""
    import keras
    from sklearn.metrics import r2_score
    from sknas._trainer import Head, build_keras_model
    model = build_keras_model(layers, data.n_features, Head("linear", data.y.shape[1]))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mean_squared_error",
                  metrics=[keras.metrics.R2Score(name="r2")])
    hist = model.fit(data.X, data.y, epochs=1, batch_size=32, verbose=0,
                     validation_data=(data.X_val, data.y_val))
    pred = model.predict(data.X_val, verbose=0)
    return abs(float(hist.history["val_r2"][-1]) - r2_score(data.y_val, pred))


# ---------------------------------------------------------------- report
def report(res):
    env, a, b, cmd = res["env"], res["A"], res["B"], res["command"]
    a_total = a["search_time"] + a["cv_time"] + a["refit_time"]
    last_a, last_b = a["last_score"], b["last_r2"]
    both = np.isfinite(last_a) & np.isfinite(last_b)
    diff = last_b[both] - last_a[both]
    speed = [["part", "what", "wall s", "CPU s", "result"],
             ["A", "`MLPNASRegressor(random_state=0, batch_size=32).fit` "
                   f"({a['n_candidates']} candidates, "
              f"{a['n_failed']} failed)", f"{a['wall']:.1f}", f"{a['cpu']:.1f}",
              f"best score {a['best_score']:.4f} (`{a['best_architecture']}`), "
              f"test R^2 {a['test_r2']:.4f}"],
             ["A", "  of which search / cv / refit",
              f"{a['search_time']:.1f} / {a['cv_time']:.1f} / {a['refit_time']:.1f}", "", ""],
             ["B", f"plain `model.fit`, same {b['n']} architectures", f"{b['wall']:.1f}",
              f"{b['cpu']:.1f}", f"{b['per_model']:.2f} s per model"]]
    ratios = [["ratio", "value", "target"],
              ["B wall / A search time", f"{b['wall'] / a['search_time']:.1f}x", ">= 10x"],
              ["B wall / A search + cv + refit time", f"{b['wall'] / a_total:.1f}x", ""],
              ["B wall / A whole `fit` wall", f"{b['wall'] / a['wall']:.1f}x", ""]]
    quality = [["validation R^2 (search's validation rows)", "value"],
               ["A: mean `search_results_['last_score']`", f"{np.nanmean(last_a):.4f}"],
               ["B: mean last-epoch `val_r2`", f"{np.nanmean(last_b):.4f}"],
               [f"mean of B - A per architecture ({int(both.sum())} pairs)",
                f"{diff.mean():+.4f} (sd {diff.std():.4f}, median absolute "
                f"{np.median(np.abs(diff)):.4f})"],
               ["A: mean `last_score`, clipped at 0 / B: the same",
                f"{np.nanmean(np.maximum(last_a, 0)):.4f} / {np.nanmean(np.maximum(last_b, 0)):.4f}"],
               ["rows with R^2 < 0: A / B",
                f"{int(np.sum(last_a[np.isfinite(last_a)] < 0))} / "
                f"{int(np.sum(last_b[np.isfinite(last_b)] < 0))}"]]
    la = env["loadavg_start"]
    text = [
        START, "## Regressor speed (`benchmarks/bench_speed_regression.py`)",
        f"Run: `{cmd}` ({res['finished']}, {res['total_wall']:.0f} s in all"
        f"{', quick smoke run: not the reference numbers' if res['quick'] else ''}). "
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['platform']}; Python {env['python']}, "
        f"TensorFlow {env['tensorflow']}, Keras {env['keras']}, scikit-learn {env['scikit-learn']}, "
        f"NumPy {env['numpy']}; GPU: {', '.join(env['gpus']) or 'none'}; code: commit "
        f"{env['commit']}. Load average (1/5/15 min) at start {la[0]:.2f}/{la[1]:.2f}/{la[2]:.2f}, "
        f"after A {res['loadavg_after_a'][0]:.2f}, at end "
        + "/".join(f"{x:.2f}" for x in res["loadavg_end"])
        + " (the machine is shared: wall times are noisy, the ratios within this one process "
        "are the numbers to read).",
        "Protocol: bundled wine data, target `quality` (numeric, 3-9), 80/20 split with "
        "`random_state=0` (not stratified), `StandardScaler` fitted on the training part; R^2 on "
        "the test part. B trains A's architectures (`search_results_['layers']`, duplicates "
        "included) from fresh Keras initialisation (`keras.utils.set_random_seed(0)`) with "
        "`Adam(learning_rate=0.01)`, mean squared error, `epochs=10`, `batch_size=32`, and "
        "`validation_data`, on the search's own training/validation rows (the `CandidateData` "
        f"the estimator's `_split` returned: {res['n_fit']} + {res['n_val']} rows) and "
        f"{'the target in its original units' if res['raw_target'] else 'the standardised target the search trains on'}"
        " (R^2 does not change under that affine map). A's candidates start from the search's "
        "shared weights, B's from scratch, so the R^2 columns compare training budgets, not "
        "identical runs.",
        "### Speed", _table(speed), _table(ratios),
        "### Validation R^2", _table(quality),
        f"Keras' `R2Score` agrees with sklearn's `r2_score` on the validation rows to "
        f"{res['r2_check']:.1e} (one check model).",
        END]
    return "\n\n".join(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: a one-epoch search, so 10 architectures in A and B")
    parser.add_argument("--out", help="Markdown file to write the section into")
    parser.add_argument("--raw-target", action="store_true",
                        help="B trains on the target in its original units, not standardised")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    command = "python benchmarks/bench_speed_regression.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    t0 = time.perf_counter()
    res = {"env": environment(), "quick": args.quick, "command": command.strip(),
           "raw_target": args.raw_target}
    print(f"load average at start: {res['env']['loadavg_start']}", flush=True)
    X_tr, X_te, y_tr, y_te = reference_data()
    est, data, res["A"] = part_a(X_tr, y_tr, X_te, y_te, 1 if args.quick else 10)
    res["loadavg_after_a"] = list(os.getloadavg())
    a = res["A"]
    print(f"A: fit {a['wall']:.1f}s = search {a['search_time']:.1f}s + cv {a['cv_time']:.1f}s "
          f"+ refit {a['refit_time']:.1f}s; best {a['best_score']:.4f}, test R^2 "
          f"{a['test_r2']:.4f}; load {res['loadavg_after_a']}", flush=True)
    res["n_fit"], res["n_val"] = len(data.y), len(data.y_val)
    y_fit, y_val = data.y, data.y_val
    if args.raw_target:
        y_fit = (data.y * est.y_scale_ + est.y_mean_).astype(np.float32)
        y_val = (data.y_val * est.y_scale_ + est.y_mean_).astype(np.float32)
    res["B"] = part_b(a["layers"], data, y_fit, y_val)
    print(f"B: {res['B']['wall']:.1f}s for {res['B']['n']} models", flush=True)
    res["r2_check"] = check_r2_metric(a["layers"][0], data)
    res["loadavg_end"] = list(os.getloadavg())
    res["total_wall"] = time.perf_counter() - t0
    res["finished"] = time.strftime("%Y-%m-%d %H:%M")
    section = report(res)
    print(section)
    if args.out:
        write_section(section, args.out, START, END)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main()
