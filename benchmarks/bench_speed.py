"""Speed and quality benchmark of the sknas search against plain Keras and peers.

One command, from the repository root::

    python benchmarks/bench_speed.py            # the full run (about 10 minutes on 2 cores)
    python benchmarks/bench_speed.py --quick    # a smoke run (a minute or two)
    python benchmarks/bench_speed.py --speed    # A, C, B and F only (about 6 minutes)

It runs, on the reference protocol (bundled wine-quality data, stratified
80/20 split with ``random_state=0``, ``StandardScaler``), in one process:

A. the default sknas search on batches of 32, as B's (wall time, best reward, refit
   winner's test accuracy);
B. the same architectures trained with plain ``model.fit`` one after the other;
C. sknas's ``PopulationTrainer`` on the same architectures, without the controller;
Q. 10 fixed architectures x 3 seeds, ``model.fit`` against the population trainer;
D. peers: ``MLPClassifier()`` and ``RandomizedSearchCV`` over ``MLPClassifier``;
E. ``strategy='random'`` against ``'reinforce'`` over several seeds;
M. (in a fresh subprocess) the resident memory of a 300-candidate search;
F. (``--speed`` only) the share of the FP32 peak: A's and C's useful work
   (``6 x params x rows x epochs``) per second against the GFLOP/s of a
   1024 x 1024 matrix product measured in the same process, and against the
   nominal peak (cores x clock x 32).

The table goes into ``benchmarks/RESULTS.md`` between the ``bench_speed``
markers (other sections of that file are kept) and the raw numbers into
``benchmarks/results/results_speed.json``. Only full runs write ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

START, END = "<!-- bench_speed:start -->", "<!-- bench_speed:end -->"

#: The 10 fixed architectures of the training-quality check (Q).
FIXED = ["64-relu", "32-tanh > 16-relu", "128-elu > 64-tanh", "16-sigmoid",
         "256-relu > dropout(0.2)", "8-tanh > 8-elu", "512-tanh > 32-sigmoid",
         "32-relu > dropout(0.2) > 32-relu", "128-sigmoid > 256-relu", "64-elu > 512-elu"]


# ---------------------------------------------------------------- the data
def reference_data():
    """Scaled ``X_train, X_test, y_train, y_test`` of the reference protocol."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from sknas.datasets import load_wine_quality
    X, y = load_wine_quality(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


def candidate_data(X, y):
    """The candidates' training/validation rows: 10% stratified, ``random_state=0``."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import LabelEncoder
    from sknas._trainer import CandidateData
    yi = LabelEncoder().fit_transform(y).astype(np.int32)
    X = X.astype(np.float32)
    X_fit, X_val, y_fit, y_val = train_test_split(X, yi, test_size=0.1, stratify=yi, random_state=0)
    return CandidateData(X_fit, y_fit, np.ones(len(y_fit), np.float32), X_val, y_val,
                         np.ones(len(y_val), np.float32), int(yi.max()) + 1)


def cpu_name():
    """The processor's model name (from /proc/cpuinfo where there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return cpu


def environment():
    """Machine, load and library versions."""
    import keras
    import sklearn
    import tensorflow as tf
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "scikit-learn": sklearn.__version__,
            "numpy": np.__version__, "loadavg_start": list(os.getloadavg()),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "commit": _git_commit()}


def _git_commit():
    """Short hash of the checked-out commit (plus '+dirty' with local changes), or '?'."""
    try:
        run = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True,  # noqa: E731
                                        cwd=HERE, check=True).stdout.strip()
        return run("rev-parse", "--short", "HEAD") + ("+dirty" if run("status", "--porcelain", "-uno") else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


class Clock:
    """Wall and process-CPU seconds of a block."""

    def __enter__(self):
        self.t, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t
        self.cpu = time.process_time() - self.c


# ------------------------------------------------------------- the parts
def run_search(X_tr, y_tr, X_te, y_te, **params):
    """Fit an ``MLPNASClassifier``; returns it with wall/CPU time and test accuracy."""
    from sknas import MLPNASClassifier
    from flat import make
    # batches of 32, as B's model.fit and C's trainer: batch_size='auto' would take 64 on
    # these 3,918 training rows, and the comparison would no longer be like for like
    est = make(MLPNASClassifier, **{"batch_size": 32, **params})
    with Clock() as clock:
        est.fit(X_tr, y_tr)
    return est, {"wall": clock.wall, "cpu": clock.cpu, "search_time": est.search_time_,
                 "refit_time": est.refit_time_, "best_reward": est.best_score_,
                 "best_architecture": est.best_architecture_,
                 "test_accuracy": float(est.score(X_te, y_te))}


def part_a(X_tr, y_tr, X_te, y_te, controller_epochs):
    est, out = run_search(X_tr, y_tr, X_te, y_te, random_state=0,
                          controller_epochs=controller_epochs)
    top = est.top_architectures(5)
    out["top5"] = [[r.architecture, float(r.reward)] for r in top.itertuples()]
    out["n_candidates"] = int(est.n_candidates_)
    out["controller_epoch"] = est.search_results_["controller_epoch"].tolist()
    out["layers"] = list(est.search_results_["layers"])
    return est, out


def initial(layers_list, data, seed):
    """Fresh Glorot/zeros initial weights, the same for B and C."""
    from sknas._trainer import initial_weights
    rng = np.random.default_rng(seed)
    return [initial_weights(lay, data.n_features, data.n_outputs, rng) for lay in layers_list]


def part_b(layers_list, inits, data):
    """Plain Keras: build, compile, ``model.fit`` each architecture in turn."""
    import keras
    from sknas._trainer import build_keras_model
    from sknas._trial import reward_from_scores
    rewards = []
    with Clock() as clock:
        for layers, init in zip(layers_list, inits):
            model = build_keras_model(layers, data.n_features, data.n_classes, init)
            model.compile(optimizer=keras.optimizers.Adam(0.01),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            hist = model.fit(data.X, data.y, epochs=10, batch_size=32, verbose=0,
                             validation_data=(data.X_val, data.y_val))
            rewards.append(reward_from_scores(hist.history["val_accuracy"], "weighted"))
    return {"wall": clock.wall, "cpu": clock.cpu, "n": len(rewards),
            "per_model": clock.wall / max(len(rewards), 1), "rewards": rewards,
            "mean_reward": float(np.mean(rewards))}


def part_c(layers_list, inits, data, groups):
    """sknas's PopulationTrainer on the same architectures, population by population."""
    from sknas._trainer import PopulationTrainer
    from sknas._trial import reward_from_scores
    trainer, rewards, timings = PopulationTrainer(), [], {"setup": 0.0, "trace": 0.0, "run": 0.0}
    with Clock() as clock:
        for g in sorted(set(groups)):
            idx = [i for i, k in enumerate(groups) if k == g]
            cands = [(layers_list[i], inits[i], 1000 + i) for i in idx]
            results = trainer.train(cands, data, seed=g)
            rewards += [reward_from_scores(r.val_scores, "weighted") for r in results]
            for k, v in trainer.last_timings_.items():
                timings[k] += v
    return {"wall": clock.wall, "cpu": clock.cpu, "rewards": rewards, "phases": timings,
            "mean_reward": float(np.mean(rewards))}


def part_q(data, n_seeds):
    """Training quality on 10 fixed architectures: model.fit against the population trainer."""
    from sknas._space import parse_layers
    from sknas._trainer import KerasTrainer, PopulationTrainer
    from sknas._trial import reward_from_scores
    layers_list = [parse_layers(text) for text in FIXED]
    keras_r, pop_r = [], []
    for seed in range(n_seeds):
        inits = initial(layers_list, data, 100 + seed)
        cands = [(lay, w, 10 * seed + i) for i, (lay, w) in enumerate(zip(layers_list, inits))]
        keras_r += [reward_from_scores(r.val_scores, "weighted")
                    for r in KerasTrainer().train(cands, data, seed)]
        pop_r += [reward_from_scores(r.val_scores, "weighted")
                  for r in PopulationTrainer().train(cands, data, seed)]
    return {"architectures": FIXED, "seeds": n_seeds, "keras_mean": float(np.mean(keras_r)),
            "population_mean": float(np.mean(pop_r)),
            "difference": float(np.mean(pop_r) - np.mean(keras_r)),
            "keras": keras_r, "population": pop_r}


def peer_space(units=(8, 16, 32, 64, 128, 256, 512)):
    """sknas's default hidden-layer space in ``MLPClassifier`` terms (1-2 layers).

    sklearn has one activation for all layers and no ELU: sigmoid maps to
    ``'logistic'``, tanh and relu to themselves, elu is left out.
    """
    sizes = [(u,) for u in units] + [(a, b) for a in units for b in units]
    return {"hidden_layer_sizes": sizes, "activation": ["logistic", "tanh", "relu"]}


def part_d(X_tr, y_tr, X_te, y_te, n_iter):
    """Peers: MLPClassifier() defaults, and RandomizedSearchCV at sknas's budget.

    The peer search trains 10 epochs at learning rate 0.01 like sknas, but with
    sklearn's default batch of 200 rows: with 32-row batches sklearn's Python
    loop needs about 3.6 s per candidate on this machine (6 minutes for 100).
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import RandomizedSearchCV, StratifiedShuffleSplit
    from sklearn.neural_network import MLPClassifier
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with Clock() as clock:
            mlp = MLPClassifier(random_state=0).fit(X_tr, y_tr)
        out["mlp_default"] = {"wall": clock.wall, "test_accuracy": float(mlp.score(X_te, y_te))}
        budget = MLPClassifier(max_iter=10, learning_rate_init=0.01, random_state=0)
        search = RandomizedSearchCV(budget, peer_space(), n_iter=n_iter, random_state=0,
                                    cv=StratifiedShuffleSplit(1, test_size=0.1, random_state=0))
        with Clock() as clock:
            search.fit(X_tr, y_tr)
    out["random_search_mlp"] = {
        "wall": clock.wall, "n_candidates": n_iter, "best_params": str(search.best_params_),
        "best_val_accuracy": float(search.best_score_),
        "test_accuracy": float(search.score(X_te, y_te))}
    return out


def part_e(X_tr, y_tr, X_te, y_te, seeds, controller_epochs, reuse):
    """``strategy='random'`` against ``'reinforce'`` on the same seeds."""
    rows = []
    for seed in seeds:
        for strategy in ("reinforce", "random"):
            if strategy == "reinforce" and seed in reuse:
                est, out = reuse[seed]
            else:
                est, out = run_search(X_tr, y_tr, X_te, y_te, random_state=seed,
                                      strategy=strategy, controller_epochs=controller_epochs)
            mean = est.controller_history_["mean_reward"]
            rows.append({"seed": seed, "strategy": strategy, "wall": out["wall"],
                         "best_reward": out["best_reward"], "test_accuracy": out["test_accuracy"],
                         "first3": float(np.mean(mean[:3])), "last3": float(np.mean(mean[-3:]))})
            print(f"  E seed {seed} {strategy}: best {out['best_reward']:.4f} "
                  f"test {out['test_accuracy']:.4f}", flush=True)
    return rows


# ------------------------------------------------------------ memory (M)
def memory_probe(controller_epochs):
    """In this process: a ``controller_epochs`` x 10 search with RSS sampled by a thread."""
    import psutil
    X_tr, _, y_tr, _ = reference_data()
    proc, samples, stop = psutil.Process(), [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((time.perf_counter(), proc.memory_info().rss))
            stop.wait(0.1)

    from sknas import MLPNASClassifier
    est = MLPNASClassifier(random_state=0, controller_epochs=controller_epochs, refit=False,
                           batch_size=32)
    thread = threading.Thread(target=sample, daemon=True)
    t0 = time.perf_counter()
    thread.start()
    est.fit(X_tr, y_tr)
    stop.set()
    thread.join()
    times = np.array([t - t0 for t, _ in samples])
    rss = np.array([r for _, r in samples]) / 2**20
    # RSS when each controller epoch ended (the search records its elapsed time)
    ends = est.controller_history_["elapsed"]
    per_epoch = [float(rss[max(np.searchsorted(times, e) - 1, 0)]) for e in ends]
    return {"candidates": int(est.n_candidates_), "peak_mb": float(rss.max()),
            "rss_per_epoch_mb": per_epoch, "wall": float(times[-1])}


def part_m(controller_epochs):
    """Run :func:`memory_probe` in a fresh interpreter, so nothing else is counted."""
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-probe", str(controller_epochs)]
    env = dict(os.environ, PYTHONPATH=os.path.dirname(HERE))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    per = res["rss_per_epoch_mb"]
    k = max(len(per) - 21, 0)  # the end of epoch k: the last 200 candidates start after it
    res["growth_last_200_mb"] = per[-1] - per[k] if len(per) > 1 else 0.0
    return res


# ---------------------------------------------------------------- report
def gemm_gflops(seconds=3.0, n=1024):
    """FP32 GFLOP/s of TensorFlow's matrix product (``n`` x ``n``) in this
    process: the machine's attainable FP32 peak, measured under the same load."""
    import tensorflow as tf
    a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
    product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    product().numpy()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        product().numpy()
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - start) / 1e9


def part_f(layers_list, data, a, c, epochs=10):
    """Share of the FP32 peak: the search's useful work, ``6 x params x rows x
    epochs`` (forward and backward passes over the training rows; validation
    left out), over A's search wall time and over C's training wall time,
    against the matrix product's measured GFLOP/s and against the nominal peak
    (cores x clock x 32 FP32 FLOPs a cycle: two 8-wide FMA units)."""
    from sknas._data import n_params
    work = sum(6.0 * n_params(layers, data.n_features, data.n_outputs) * len(data.y) * epochs
               for layers in layers_list)
    mhz = None
    try:
        with open("/proc/cpuinfo") as fh:
            mhz = next(float(line.split(":")[1]) for line in fh if line.startswith("cpu MHz"))
    except (OSError, StopIteration, ValueError):
        pass
    nominal = None if mhz is None else os.cpu_count() * mhz * 1e6 * 32 / 1e9
    gemm = gemm_gflops()
    out = {"gflop": work / 1e9, "gemm_gflops": gemm, "nominal_gflops": nominal}
    for name, wall in (("search", a["search_time"]), ("trainer", c["wall"])):
        out[f"{name}_gflops"] = work / wall / 1e9
        out[f"{name}_share_gemm"] = work / wall / 1e9 / gemm
        out[f"{name}_share_nominal"] = None if nominal is None else work / wall / 1e9 / nominal
    return out


def speed_report(res):
    """The speed tables alone (``--parts`` without the quality parts)."""
    a, b, c, f = (res.get(k) for k in ("A", "B", "C", "F"))
    lines = [f"commit {res['env'].get('commit')}; load average at start "
             f"{res['env']['loadavg_start'][0]:.1f}, at end {os.getloadavg()[0]:.1f}"]
    if a:
        lines.append(f"A: default search of {a['n_candidates']} candidates (batches of 32) + refit: "
                     f"{a['wall']:.1f} s wall, of which search {a['search_time']:.1f} s")
    if c:
        lines.append(f"C: PopulationTrainer, same architectures: {c['wall']:.1f} s "
                     f"(trace {c['phases']['trace']:.1f}, run {c['phases']['run']:.1f})")
    if b:
        lines.append(f"B: model.fit, same architectures: {b['wall']:.1f} s "
                     f"({b['per_model']:.2f} s a model)")
    if a and b:
        lines.append(f"B / A search: {b['wall'] / a['search_time']:.1f}x (target >= 10x); "
                     f"B / A whole fit: {b['wall'] / a['wall']:.1f}x; B / C: "
                     f"{b['wall'] / c['wall']:.1f}x")
    if f:
        nominal = ("" if f["nominal_gflops"] is None else
                   f"; nominal peak {f['nominal_gflops']:.0f} GFLOP/s: search "
                   f"{f['search_share_nominal']:.1%}, trainer {f['trainer_share_nominal']:.1%}")
        lines.append(f"F: useful work {f['gflop']:.1f} GFLOP; search {f['search_gflops']:.1f} "
                     f"GFLOP/s, trainer {f['trainer_gflops']:.1f} GFLOP/s; matrix product "
                     f"{f['gemm_gflops']:.1f} GFLOP/s: search {f['search_share_gemm']:.1%}, "
                     f"trainer {f['trainer_share_gemm']:.1%}{nominal} (target >= 20%)")
    return "\n".join(lines)


def _table(rows):
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows[1:]])


def report(res):
    """The Markdown section of RESULTS.md."""
    env, a, b, c, q, d, m = (res[k] for k in ("env", "A", "B", "C", "Q", "D", "M"))
    e = res["E"]
    ctrl = a["search_time"] - c["wall"]
    learn = [r for r in e if r["strategy"] == "reinforce"]
    rand = {r["seed"]: r for r in e if r["strategy"] == "random"}
    n_learn = sum(r["last3"] > r["first3"] for r in learn)
    speed = [["part", "what", "wall s", "CPU s", "result"],
             ["A", "default sknas search (100 candidates) + refit", f"{a['wall']:.1f}",
              f"{a['cpu']:.1f}", f"best reward {a['best_reward']:.4f}, test acc {a['test_accuracy']:.4f}"],
             ["A", "  of which search / refit", f"{a['search_time']:.1f} / {a['refit_time']:.1f}", "", ""],
             ["B", f"plain model.fit, same {b['n']} architectures", f"{b['wall']:.1f}", f"{b['cpu']:.1f}",
              f"mean reward {b['mean_reward']:.4f} ({b['per_model']:.2f} s per model)"],
             ["C", "PopulationTrainer, same architectures, no controller", f"{c['wall']:.1f}",
              f"{c['cpu']:.1f}", f"mean reward {c['mean_reward']:.4f}; trace {c['phases']['trace']:.1f} s, "
              f"run {c['phases']['run']:.1f} s"]]
    ratios = [["ratio", "value", "target"],
              ["B wall / A wall (whole fit, refit included)", f"{b['wall'] / a['wall']:.1f}x", ">= 5x (aim 10x)"],
              ["B wall / A search wall", f"{b['wall'] / a['search_time']:.1f}x", ""],
              ["B wall / C wall (training only)", f"{b['wall'] / c['wall']:.1f}x", ""],
              ["controller + search loop (A search - C) / A search",
               f"{ctrl / a['search_time']:.1%}", "< 10%"],
              ["mean reward, 10 fixed archs x %d seeds: population - model.fit" % q["seeds"],
               f"{q['difference']:+.4f} ({q['population_mean']:.4f} vs {q['keras_mean']:.4f})", "|d| <= 0.01"],
              ["mean reward, A's 100 archs, same init: C - B",
               f"{c['mean_reward'] - b['mean_reward']:+.4f}", ""]]
    peers = [["model", "wall s", "test accuracy"],
             ["sknas default search (A), refit winner", f"{a['wall']:.1f}", f"{a['test_accuracy']:.4f}"],
             ["MLPClassifier() defaults", f"{d['mlp_default']['wall']:.1f}", f"{d['mlp_default']['test_accuracy']:.4f}"],
             ["RandomizedSearchCV(MLPClassifier), %d candidates, 10 epochs, batch 200, lr 0.01"
              % d["random_search_mlp"]["n_candidates"], f"{d['random_search_mlp']['wall']:.1f}",
              f"{d['random_search_mlp']['test_accuracy']:.4f} (best {d['random_search_mlp']['best_params']})"]]
    strat = [["seed", "reinforce best", "random best", "reinforce test", "random test",
              "reinforce first3 -> last3 mean reward", "learns"]]
    for r in learn:
        o = rand[r["seed"]]
        strat.append([r["seed"], f"{r['best_reward']:.4f}", f"{o['best_reward']:.4f}",
                      f"{r['test_accuracy']:.4f}", f"{o['test_accuracy']:.4f}",
                      f"{r['first3']:.4f} -> {r['last3']:.4f}", "yes" if r["last3"] > r["first3"] else "no"])
    mean_t = np.mean([r["test_accuracy"] for r in learn])
    mean_r = np.mean([r["best_reward"] for r in learn])
    mean_o = np.mean([rand[r["seed"]]["best_reward"] for r in learn])
    strat.append(["mean", f"{mean_r:.4f}", f"{mean_o:.4f}",
                  f"{mean_t:.4f}",
                  f"{np.mean([rand[r['seed']]['test_accuracy'] for r in learn]):.4f}", "",
                  f"{n_learn}/{len(learn)}"])
    quality = [["search-quality target", "value", "target", "met"],
               ["refit winner's test accuracy, default search (A, random_state=0)",
                f"{a['test_accuracy']:.4f}", ">= 0.77", "yes" if a["test_accuracy"] >= 0.77 else "no"],
               [f"the same, mean over seeds 0-{len(learn) - 1}", f"{mean_t:.4f}", "(>= 0.77)",
                "yes" if mean_t >= 0.77 else "no"],
               ["seeds on which the controller learns (last 3 epochs' mean reward > first 3)",
                f"{n_learn}/{len(learn)}", ">= 4/5", "yes" if n_learn >= 0.8 * len(learn) else "no"],
               ["mean best reward, REINFORCE - random search", f"{mean_r - mean_o:+.4f}", ">= 0",
                "yes" if mean_r >= mean_o else "no"]]
    top = "\n".join(f"{i + 1}. `{arch}`: {rew:.4f}" for i, (arch, rew) in enumerate(a["top5"]))
    return "\n\n".join([
        START, "## Speed and quality (`benchmarks/bench_speed.py`)",
        f"Run: `python benchmarks/bench_speed.py` ({res['finished']}, {res['total_wall']:.0f} s in all). "
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['platform']}; Python {env['python']}, "
        f"TensorFlow {env['tensorflow']}, Keras {env['keras']}, scikit-learn {env['scikit-learn']}, "
        f"NumPy {env['numpy']}; GPU: {', '.join(env['gpus']) or 'none'}; code: commit "
        f"{env.get('commit', '?')}. Load average at start "
        f"{env['loadavg_start'][0]:.1f}, at end {res['loadavg_end'][0]:.1f} (the machine is shared: "
        "wall times are noisy, ratios within this one process are the numbers to read).",
        "Reference protocol: bundled wine-quality data, stratified 80/20 split with "
        "`random_state=0`, `StandardScaler`; accuracy on the test part. B and C use the same "
        "architectures (A's `search_results_['layers']`), the same initial weights and the same "
        "90/10 validation rows; C trains them in A's populations of 10.",
        "### Speed", _table(speed), _table(ratios),
        f"Top 5 of A (search {a['search_time']:.1f} s, winner `{a['best_architecture']}`):\n\n{top}",
        "### Peers", _table(peers),
        "sklearn's `MLPClassifier` has one activation for all layers and no ELU: the peer search "
        "draws 1-2 layers of the same widths with `logistic` (sigmoid), `tanh` or `relu`, on one "
        "10% stratified validation split, for 10 epochs at learning rate 0.01 (the tutorial's budget) "
        "but with sklearn's default batch of 200 rows (with 32-row batches sklearn's Python loop "
        "takes about 3.6 s per candidate here).",
        "### REINFORCE against random search (same budget, same seeds)", _table(strat),
        "### Search-quality targets", _table(quality),
        "### Memory",
        f"A {m['candidates']}-candidate search (`controller_epochs={len(m['rss_per_epoch_mb'])}`, "
        f"fresh process, RSS sampled every 0.1 s by a thread): peak {m['peak_mb']:.0f} MB "
        f"(target < 1536 MB), growth over the last 200 candidates {m['growth_last_200_mb']:+.1f} MB "
        f"(target < 100 MB). RSS at the end of each controller epoch (MB): "
        + ", ".join(f"{x:.0f}" for x in m["rss_per_epoch_mb"]) + ".",
        END])


def write_section(section, path, start=START, end=END):
    """Replace the section of ``path`` between the ``start`` and ``end`` markers
    (or append it), keeping the rest of the file."""
    text = open(path).read() if os.path.exists(path) else "# Benchmark results\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as fh:
        fh.write(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run; RESULTS.md is not written")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of part E")
    parser.add_argument("--memory-probe", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--speed", action="store_true",
                        help="parts A, C, B and F only (F: the share of the FP32 peak); "
                             "prints them and writes results/results_speed_parts.json, "
                             "not RESULTS.md")
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe)))
        return
    if args.speed:
        return speed_only()
    t0 = time.perf_counter()
    ce = 2 if args.quick else 10
    res = {"env": environment(), "quick": args.quick}
    X_tr, X_te, y_tr, y_te = reference_data()
    est, res["A"] = part_a(X_tr, y_tr, X_te, y_te, ce)
    print(f"A: {res['A']['wall']:.1f}s best {res['A']['best_reward']:.4f} test {res['A']['test_accuracy']:.4f}", flush=True)
    data = candidate_data(X_tr, y_tr)
    layers, groups = res["A"]["layers"], res["A"]["controller_epoch"]
    inits = initial(layers, data, 7)
    res["C"] = part_c(layers, inits, data, groups)
    print(f"C: {res['C']['wall']:.1f}s", flush=True)
    res["B"] = part_b(layers, inits, data)
    print(f"B: {res['B']['wall']:.1f}s", flush=True)
    res["Q"] = part_q(data, 1 if args.quick else 3)
    print(f"Q: diff {res['Q']['difference']:+.4f}", flush=True)
    res["D"] = part_d(X_tr, y_tr, X_te, y_te, 10 if args.quick else 100)
    print("D:", res["D"], flush=True)
    seeds = list(range(2 if args.quick else args.seeds))
    res["E"] = part_e(X_tr, y_tr, X_te, y_te, seeds, ce, {0: (est, res["A"])})
    res["loadavg_end"] = list(os.getloadavg())
    res["M"] = part_m(3 if args.quick else 30)
    print(f"M: peak {res['M']['peak_mb']:.0f} MB growth {res['M']['growth_last_200_mb']:+.1f} MB", flush=True)
    res["total_wall"] = time.perf_counter() - t0
    res["finished"] = time.strftime("%Y-%m-%d %H:%M")
    for k in ("A",):
        res[k].pop("layers")
    section = report(res)
    print(section)
    if not args.quick:
        os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
        with open(os.path.join(HERE, "results", "results_speed.json"), "w") as fh:
            json.dump(res, fh, indent=1, default=str)
        write_section(section, os.path.join(HERE, "RESULTS.md"))


def speed_only():
    """Parts A, C, B and F: the search against ``model.fit``, and the share of
    the FP32 peak that the search and the trainer reach."""
    res = {"env": environment()}
    X_tr, X_te, y_tr, y_te = reference_data()
    _, res["A"] = part_a(X_tr, y_tr, X_te, y_te, 10)
    data = candidate_data(X_tr, y_tr)
    layers, groups = res["A"].pop("layers"), res["A"]["controller_epoch"]
    inits = initial(layers, data, 7)
    res["C"] = part_c(layers, inits, data, groups)
    res["B"] = part_b(layers, inits, data)
    res["F"] = part_f(layers, data, res["A"], res["C"])
    res["finished"] = time.strftime("%Y-%m-%d %H:%M")
    print(speed_report(res))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "results_speed_parts.json"), "w") as fh:
        json.dump(res, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
