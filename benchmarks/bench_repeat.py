"""Repeated fits: what the process-wide graph caches save (tracing once per shape).

One command, from the repository root::

    python benchmarks/bench_repeat.py --out benchmarks/RESULTS.md   # full run
    python benchmarks/bench_repeat.py --quick                      # smoke run

A search traces two kinds of TensorFlow graphs: the controller's update
(one shape per search space and controller size) and each population's
training loop. Both are cached for the process: the controller update by its
shape, the last few small populations with their variables (see
``docs/performance.rst``). A single ``fit`` gains nothing; fitting again
does. In one process, on the bundled wine data (reference protocol: 80/20
stratified split, ``random_state=0``, scaled), this runs three workloads, each
with the caches off (emptied and bounded at zero, as before they existed)
and on, alternating off/on ``--repeats`` times so that a busy machine hurts
both alike:

``refit``
    the same ``MLPNASClassifier`` fit twice in a row (the second time is
    timed): a user refitting after looking at the results, a script rerun in
    a notebook;
``grid``
    ``GridSearchCV`` over ``controller_learning_rate`` (3 values) with
    ``cv=3``: 9 searches and the final refit;
``cross_val``
    ``cross_val_score`` with ``cv=5``: 5 searches on 5 folds.

The budget is the default search's unless ``--budget`` says otherwise. It
prints the wall time of each workload with the caches off and on and their
ratio, and with ``--out`` writes a section into that file between the
``bench_repeat`` markers.
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

from bench_speed import _table, environment, reference_data, write_section  # noqa: E402

START = "<!-- bench_repeat:start -->"
END = "<!-- bench_repeat:end -->"


def caches(on):
    """Empty both caches and bound them at their defaults (``on``) or at zero."""
    from sknas import _controller, _trainer
    _controller._UPDATE_FNS.clear()
    _controller._MAX_UPDATE_FNS = 16 if on else 0
    _trainer._GRAPHS.clear()
    _trainer._GRAPHS.size = type(_trainer._GRAPHS).size if on else 0


def workloads(X, y, budget):
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sknas import MLPNASClassifier
    from flat import make

    def est():
        return make(MLPNASClassifier, random_state=0, **budget)

    def refit():
        est().fit(X, y)  # untimed: fills the caches (or not)
        start = time.perf_counter()
        est().fit(X, y)
        return time.perf_counter() - start

    def grid():
        start = time.perf_counter()
        GridSearchCV(est(), {"controller_learning_rate": [0.003, 0.01, 0.03]}, cv=3).fit(X, y)
        return time.perf_counter() - start

    def cross_val():
        start = time.perf_counter()
        cross_val_score(est(), X, y, cv=5)
        return time.perf_counter() - start

    return {"refit": refit, "grid": grid, "cross_val": cross_val}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", default="dict()",
                        help="MLPNASClassifier parameters of every search (default: dict())")
    parser.add_argument("--workloads", nargs="+", default=["refit", "grid", "cross_val"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: a 2 x 3-candidate budget, one repeat")
    parser.add_argument("--out", help="Markdown file to write the section into")
    args = parser.parse_args(argv)
    budget = eval(args.budget, {"__builtins__": {}}, {"dict": dict})  # noqa: S307
    if args.quick:
        budget = dict(budget, controller_epochs=2, samples_per_epoch=3, epochs=2)
        args.repeats = 1
    env = environment()
    X, _, y, _ = reference_data()  # the training rows only
    jobs = workloads(X, y, budget)
    times = {name: {"off": [], "on": []} for name in args.workloads}
    for rep in range(args.repeats):
        for name in args.workloads:
            for mode in ("off", "on"):
                caches(mode == "on")
                seconds = jobs[name]()
                times[name][mode].append(seconds)
                print(f"repeat {rep} {name:9s} caches {mode:3s}: {seconds:7.2f} s", flush=True)
    caches(True)
    rows = [["workload", "caches off (s)", "caches on (s)", "off / on (each repeat)",
             "off / on (mean)"]]
    for name, t in times.items():
        ratios = [a / b for a, b in zip(t["off"], t["on"])]
        rows.append([name, " / ".join(f"{x:.1f}" for x in t["off"]),
                     " / ".join(f"{x:.1f}" for x in t["on"]),
                     ", ".join(f"{r:.2f}" for r in ratios), f"{np.mean(ratios):.2f}x"])
    command = "python benchmarks/bench_repeat.py " + shlex.join(argv or sys.argv[1:])
    section = "\n".join([
        START, "## Repeated fits: the graph caches (`benchmarks/bench_repeat.py`)", "",
        f"Run: `{command.strip()}` ({time.strftime('%Y-%m-%d %H:%M')}). Budget: "
        f"`MLPNASClassifier(random_state=0, **{budget!r})` on the wine reference protocol's "
        f"training rows. Machine: {env['cpu']}, {env['cores']} cores; TensorFlow "
        f"{env['tensorflow']}, Keras {env['keras']}, scikit-learn {env['scikit-learn']}; "
        f"code: commit {env['commit']}. Load average at start "
        f"{env['loadavg_start'][0]:.1f}, at end {os.getloadavg()[0]:.1f}.", "",
        "Each workload ran with the caches off (emptied, bounded at zero: every fit traces "
        "its controller update and every population graph, as before the caches) and on "
        "(emptied first, so the workload's own first fit fills them), alternating, "
        f"{args.repeats} time(s). `refit` times the second of two identical fits; `grid` "
        "is `GridSearchCV` over `controller_learning_rate` (3 values, `cv=3`) with its "
        "final refit; `cross_val` is `cross_val_score(cv=5)`.", "",
        _table(rows), "", END])
    print(section)
    if args.out:
        write_section(section, args.out, START, END)


if __name__ == "__main__":
    main()
