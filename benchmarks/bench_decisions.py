"""Does the controller learn which decisions help on a table? (issue #34, item 3)

From the repository root::

    python benchmarks/bench_decisions.py --purpose choose          # tuning seeds 0-2
    python benchmarks/bench_decisions.py --purpose choose --tables pima --seeds 0 --quick
    python benchmarks/bench_decisions.py --purpose choose --json decisions.json \\
        --out decisions.md
    python benchmarks/bench_decisions.py --from-json decisions.json   # report again, no fit

For each table (``--tables``, classification tables of ``benchmarks/suite.py``)
and seed (``--seeds``, ``--purpose``: the suite's protocol, version 2) the
training part of the seed's split is fitted, in a ``Pipeline`` after the
suite's preprocessor as in ``bench_quality.py``, by two searches of the
space ``--space`` (default 'modern'; ``--members 1 8`` adds the number of
members to its decisions, ``--input-scaling`` the learned input scaling,
``--input-transforms none robust plr`` sets the input transforms)
with ``random_state`` = the seed:
REINFORCE (``MLPNASClassifier``'s default strategy and budget, 10 controller
epochs of 10 candidates) and ``strategy='random'``. ``BENCH_THREADS`` sets
TensorFlow's threads (default 1), as in ``bench_quality.py``.

The Markdown report (printed; ``--out`` writes it too) has, for each decision
kind (input transform, schedule, label smoothing, learning rate, weight decay,
members, input scaling, activation, depth, batch norm, dropout) and each of its values:

- the share of REINFORCE's candidates with that value in its first two and
  its last two controller epochs, pooled over the fits, and random search's
  share in its last two epochs (the uniform reference); per table too, as
  ``first -> last (random)``. A candidate's activations and batch norm count
  per dense layer: a candidate with layers relu, relu, tanh adds 2/3 to relu;
- the mean reward of the candidates with that value minus the mean reward of
  all candidates of the fit (all epochs; again per dense layer for activation
  and batch norm), averaged over the fits, with its standard error over them,
  for REINFORCE and for random search. Random search samples each value
  uniformly in every epoch, so its column is the less confounded one: with
  shared weights later candidates score higher, and REINFORCE's late choices
  inherit that. A dropout layer takes one of the space's ``max_layers`` slots,
  so depth and dropout are not independent.

Then a line per fit: the test accuracy of both searches, their difference and
fit times, and the mean difference with its standard error over the fits.
``--json`` keeps the raw rows (one per candidate: table, seed, strategy,
controller epoch, reward, status and its decisions; one per fit), from which
``--from-json`` rebuilds the report. ``--quick``: a smoke run (4 controller
epochs of 3 candidates, 2 training epochs, no cross-validated finalists).
``--baseline batch`` runs REINFORCE with ``Reinforce(baseline='batch')``
(each epoch's advantages centred), and ``--reuse-random A.json`` takes random
search's fits from an earlier run instead of fitting them again.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_quality  # noqa: E402  (first: sets BENCH_THREADS' thread variables before TensorFlow)
import suite  # noqa: E402
from bench_speed import _table  # noqa: E402

#: Settings decisions: report name -> key of the candidate's 'optimizer' entry.
SETTINGS = {"input": "input", "schedule": "schedule", "label smoothing": "label_smoothing",
            "learning rate": "learning_rate", "weight decay": "weight_decay",
            "members": "members", "input scaling": "scaling"}
DECISIONS = (*SETTINGS, "activation", "depth", "batch norm", "dropout")
STRATEGIES = ("reinforce", "random")
QUICK = {"controller_epochs": 4, "samples_per_epoch": 3, "epochs": 2, "cv": None}
DEFAULT_TABLES = ("wine_quality", "pima", "titanic")


# ------------------------------------------------------------- fitting
def candidate_row(layers):
    """The decisions of one candidate from its machine form (``search_results_['layers']``)."""
    settings = layers[0] if layers and layers[0]["type"] == "optimizer" else {}
    dense = [layer for layer in layers if layer["type"] == "dense"]
    row = {key: settings[key] for key in SETTINGS.values() if key in settings}
    row["activations"] = [layer["activation"] for layer in dense]
    row["batch_norm"] = [bool(layer.get("batch_norm", False)) for layer in dense]
    row["dropouts"] = [layer["rate"] for layer in layers if layer["type"] == "dropout"]
    return row


def fit_one(table, seed, strategy, data, args):
    """Fit one search; return its fit row and its candidates' rows."""
    from sklearn.pipeline import Pipeline

    from sknas import MLPNASClassifier
    X_tr, X_te, y_tr, y_te = data
    space = args.space
    if args.members or args.input_scaling or args.input_transforms:  # the preset, changed
        from sknas import SearchSpace
        space = SearchSpace.from_preset(args.space)
        if args.input_transforms:
            space.set_params(input_transforms=tuple(args.input_transforms))
        if args.members:
            space.set_params(members=tuple(args.members))
        if args.input_scaling:
            space.set_params(input_scaling=(False, True))
    params = {"space": space, "random_state": seed, **(QUICK if args.quick else {})}
    if strategy == "random":
        params["strategy"] = "random"
    elif args.baseline is not None:
        from sknas import Reinforce
        baseline = args.baseline if args.baseline in ("ema", "batch") else float(args.baseline)
        params["strategy"] = Reinforce(baseline=baseline)
    fit = {"table": table, "seed": seed, "strategy": strategy, "status": "ok"}
    start = time.perf_counter()
    try:
        pipe = Pipeline([("pre", suite.preprocessor(X_tr)),
                         ("model", MLPNASClassifier(**params))]).fit(X_tr, y_tr)
        fit["fit_s"] = time.perf_counter() - start
        fit["test_accuracy"] = float(pipe.score(X_te, y_te))
    except Exception as exc:  # noqa: BLE001 - one failed fit must not stop the others
        fit.update(status="failed", message=f"{type(exc).__name__}: {exc}"[:500])
        return fit, []
    res = pipe[-1].search_results_
    fit.update(best=pipe[-1].best_architecture_, threads=bench_quality.threads("sknas"))
    rows = [{"table": table, "seed": seed, "strategy": strategy,
             "controller_epoch": int(epoch), "reward": float(reward), "status": str(status),
             "architecture": str(arch), **candidate_row(layers)}
            for epoch, reward, status, arch, layers in zip(
                res["controller_epoch"], res["reward"], res["status"], res["architecture"],
                res["layers"])]
    return fit, rows


def run(args, meta):
    """All fits, as the ``--json`` record ``{'meta', 'fits', 'candidates'}``."""
    import tensorflow as tf
    tf.config.threading.set_intra_op_parallelism_threads(bench_quality.THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(bench_quality.THREADS)
    record = {"meta": meta, "fits": [], "candidates": []}
    reused = {"fits": [], "candidates": []}
    if args.reuse_random:  # random search's rows of an earlier run, not fitted again
        with open(args.reuse_random) as fh:
            reused = json.load(fh)
    for table in args.tables:
        X, y, _ = suite.load(table, "classification")
        for seed in args.seeds:
            X_tr, X_te, y_tr, y_te = suite.split(X, y, "classification", seed,
                                                 protocol=args.protocol)
            for strategy in STRATEGIES:
                mine = lambda r: (r["table"], r["seed"], r["strategy"]) == (  # noqa: E731
                    table, seed, strategy)
                old = [f for f in reused["fits"] if mine(f)] if strategy == "random" else []
                if old:
                    fit, rows = old[0], [r for r in reused["candidates"] if mine(r)]
                else:
                    fit, rows = fit_one(table, seed, strategy, (X_tr, X_te, y_tr, y_te), args)
                record["fits"].append(fit)
                record["candidates"] += rows
                print(f"{table} seed {seed} {strategy}: {fit['status']}, test accuracy "
                      f"{fit.get('test_accuracy', float('nan')):.4f}, "
                      f"{fit.get('fit_s', 0):.0f} s", file=sys.stderr, flush=True)
                if args.json:
                    with open(args.json, "w") as fh:
                        json.dump(record, fh, indent=1)
    return record


# ---------------------------------------------------------------- report
def weights(row):
    """Decision -> {value: weight} of one candidate; each decision's weights sum to 1."""
    out = {name: {row[key]: 1.0} for name, key in SETTINGS.items() if key in row}
    n = len(row["activations"])
    for name, values in (("activation", row["activations"]),
                         ("batch norm", ["yes" if b else "no" for b in row["batch_norm"]])):
        if n:
            out[name] = {v: values.count(v) / n for v in set(values)}
    out["depth"] = {n: 1.0}
    out["dropout"] = {"yes" if row["dropouts"] else "no": 1.0}
    return out


def share(rows, decision, value):
    """Mean weight of ``value`` over ``rows`` (None without rows)."""
    w = [weights(r).get(decision, {}).get(value, 0.0) for r in rows]
    return sum(w) / len(w) if w else None


def epochs_part(rows, part):
    """The candidates of each fit's first two (``part='first'``) or last two controller epochs."""
    last = defaultdict(int)
    for r in rows:
        key = (r["table"], r["seed"], r["strategy"])
        last[key] = max(last[key], r["controller_epoch"])
    return [r for r in rows if (r["controller_epoch"] < 2 if part == "first" else
                                r["controller_epoch"] >= last[(r["table"], r["seed"],
                                                               r["strategy"])] - 1)]


def reward_effects(rows, decision, value):
    """Per fit: weighted mean reward of ``value`` minus the fit's mean reward."""
    fits = defaultdict(list)
    for r in rows:
        if r["status"] == "ok" and math.isfinite(r["reward"]):
            fits[(r["table"], r["seed"])].append(r)
    effects = []
    for fit_rows in fits.values():
        w = [weights(r).get(decision, {}).get(value, 0.0) for r in fit_rows]
        if sum(w) > 0:
            mean = sum(r["reward"] for r in fit_rows) / len(fit_rows)
            effects.append(sum(wi * r["reward"] for wi, r in zip(w, fit_rows)) / sum(w) - mean)
    return effects


def _num(x, digits=2, sign=False):
    """``x`` to ``digits`` decimals, '-' for None."""
    return "-" if x is None else f"{x:{'+' if sign else ''}.{digits}f}"


def _pm(values, digits=4):
    """``+mean ± se (n)`` of ``values``."""
    mean, se = bench_quality._mean_se(values)
    return "-" if mean is None else _num(mean, digits, True) + (
        f" ± {se:.{digits}f}" if se is not None else "") + f" ({len(values)})"


def decision_table(cands, decision, tables):
    """Markdown table of one decision: shares and reward effects of its values."""
    by = {s: [r for r in cands if r["strategy"] == s] for s in STRATEGIES}
    values = sorted({v for r in cands for v in weights(r).get(decision, {})})
    if not values:
        return None
    head = ["value", "REINFORCE first 2", "REINFORCE last 2", "random last 2",
            "Δ reward REINFORCE (fits)", "Δ reward random (fits)", *tables]
    lines = [head]
    for v in values:
        parts = {(s, p): epochs_part(by[s], p) for s in STRATEGIES for p in ("first", "last")}
        cells = [_num(share(parts[("reinforce", "first")], decision, v)),
                 _num(share(parts[("reinforce", "last")], decision, v)),
                 _num(share(parts[("random", "last")], decision, v)),
                 _pm(reward_effects(by["reinforce"], decision, v)),
                 _pm(reward_effects(by["random"], decision, v))]
        for t in tables:
            f, l, r = (share([x for x in parts[key] if x["table"] == t], decision, v)
                       for key in (("reinforce", "first"), ("reinforce", "last"),
                                   ("random", "last")))
            cells.append(f"{_num(f)} → {_num(l)} ({_num(r)})")
        lines.append([f"{v:g}" if isinstance(v, float) else str(v), *cells])
    return _table(lines)


def report(record):
    """The Markdown report of a run's record (see the module docstring)."""
    meta, fits, cands = record["meta"], record["fits"], record["candidates"]
    tables = list(dict.fromkeys(f["table"] for f in fits))
    out = [f"## Decisions learned: space '{meta['space']}'", "",
           f"`{meta['command']}`; commit {meta['env']['commit']}, {meta['env']['cpu']}, "
           f"BENCH_THREADS={meta['threads']}; {meta['protocol']['note']}."
           + (" **Quick run.**" if meta["quick"] else ""), "",
           "Shares of candidates with each value (a dense layer's activation and batch norm "
           "count per layer); Δ reward: mean reward of the candidates with the value minus the "
           "fit's mean (all epochs), mean ± standard error over fits (their number). Per "
           "table: REINFORCE first 2 → last 2 epochs (random last 2).", ""]
    for strategy in STRATEGIES:
        rows = [r for r in cands if r["strategy"] == strategy and r["status"] == "ok"]
        first, last = (sum(r["reward"] for r in p) / max(len(p), 1)
                       for p in (epochs_part(rows, "first"), epochs_part(rows, "last")))
        out.append(f"- {strategy}: {len(rows)} successful candidates, mean reward "
                   f"{first:.4f} in the first two epochs, {last:.4f} in the last two.")
    for decision in DECISIONS:
        text = decision_table(cands, decision, tables)
        if text:
            out += ["", f"### {decision}", "", text]
    out += ["", "### Test accuracy per fit", ""]
    runs = {(f["table"], f["seed"], f["strategy"]): f for f in fits}
    lines, diffs = [["table", "seed", "REINFORCE", "random", "difference", "REINFORCE fit s",
                     "random fit s"]], []
    for table, seed in dict.fromkeys((f["table"], f["seed"]) for f in fits):
        a, b = (runs.get((table, seed, s), {}) for s in STRATEGIES)
        acc = [f.get("test_accuracy") for f in (a, b)]
        d = acc[0] - acc[1] if None not in acc else None
        diffs += [d] if d is not None else []
        lines.append([table, seed, _num(acc[0], 4), _num(acc[1], 4), _num(d, 4, True),
                      _num(a.get("fit_s"), 0), _num(b.get("fit_s"), 0)])
    out += [_table(lines), "", f"Mean difference (REINFORCE - random): {_pm(diffs)} fits."]
    failed = [f for f in fits if f["status"] != "ok"]
    out += [f"- failed: {f['table']} seed {f['seed']} {f['strategy']}: {f['message']}"
            for f in failed]
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=list(DEFAULT_TABLES),
                        choices=suite.tables("classification"))
    parser.add_argument("--space", default="modern", help="a preset's name (default: modern)")
    parser.add_argument("--members", nargs="+", type=int, metavar="K",
                        help="add the number of members to the space's decisions, among "
                             "these values (e.g. 1 8)")
    parser.add_argument("--input-transforms", nargs="+", metavar="NAME",
                        help="the space's input transforms instead of the preset's, e.g. "
                        "none robust plr")
    parser.add_argument("--input-scaling", action="store_true",
                        help="add learned input scaling (on or off) to the space's decisions")
    parser.add_argument("--quick", action="store_true", help="a smoke run's tiny budget")
    parser.add_argument("--baseline", help="REINFORCE's baseline ('ema', 'batch' or a number; "
                                           "default: Reinforce()'s)")
    parser.add_argument("--reuse-random", metavar="JSON",
                        help="take random search's fits from this earlier --json file "
                             "(same tables, seeds and space) instead of fitting them again")
    parser.add_argument("--json", help="write the raw rows to this file (after every fit)")
    parser.add_argument("--from-json", help="report the rows of this file; fit nothing")
    parser.add_argument("--out", help="also write the report to this file")
    suite.add_protocol_arguments(parser)
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as fh:
            record = json.load(fh)
    else:
        meta = {"command": " ".join(["python", *sys.argv]), "space": args.space,
                "members": args.members, "input_scaling": args.input_scaling,
                "input_transforms": args.input_transforms,
                "baseline": args.baseline,
                "quick": args.quick, "threads": bench_quality.THREADS,
                "protocol": suite.protocol_from_args(parser, args),
                "env": bench_quality.environment()}
        record = run(args, meta)
    text = report(record)
    print(text, end="")
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
