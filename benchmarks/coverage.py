"""Do the prediction intervals cover at their stated rate? Leave-larger-out backtests
of the public runs tables, by C and by N, and `--law auto` on each.

For every table: `rolling_backtest` (thresholds at 50..90% of the rows) of the law
(chinchilla; data-constrained for the datablations runs) with `calibrate` set to the backtest's own variable, so
every fit calibrates its intervals on its own rows only; prints the share of held-out
losses inside the 80% and 95% prediction intervals, raw and calibrated, per table and
pooled over every table (`--pool` pools the --json files of parts run in parallel).
Then `--law auto` on each table: its nested backtest (the law chosen at each threshold
by a backtest of the training rows only) against every single candidate's backtest.

    python benchmarks/coverage.py [--data ../shared/scaling_data] [--bootstrap 1000]
        [--only epoch,gadre] [--no-auto]
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from flake_hunt import cpu_name  # benchmarks/ is the script's folder

from scalinglab.errors import FitError
from scalinglab.laws import ScalingLaw, intervals
from scalinglab.laws.backtest import (
    AUTO_LAWS,
    LEVELS,
    TRAIN_FRACS,
    auto_candidates,
    pick,
    predict_rows,
    read_for,
    rolling_backtest,
)
from scalinglab.laws.intervals import held_out, thresholds_for

C4 = "c4_val/shard-{0000000..0000010}.tar"
# The law backtested on each table: chinchilla, but data-constrained where data repeats.
LAW = {"datablations": "data-constrained"}
TABLES = {
    "epoch": ("epoch_chinchilla_svg_extracted_data.csv", {"drop_highest": 5}),
    "gadre": ("gadre2024_overtraining_losses.csv", {"where": [f"eval_set={C4}"]}),
    "datablations": ("datablations_val_losses.csv", {}),
    "misfitting": ("misfitting_scaling_results_last_ckpt_only.csv", {"min_over": ["peak_lr"]}),
    "ml_scalefit": ("openathena_ml_scalefit_chinchilla_isoflops.csv", {}),
    "marin-comma": ("openathena_marin_isoflops.csv", {"where": ["dataset=comma"]}),
    "marin-dclm": ("openathena_marin_isoflops.csv", {"where": ["dataset=dclm"]}),
    "marin-nemotron": ("openathena_marin_isoflops.csv", {"where": ["dataset=nemotron"]}),
    "llama3-raw": ("openathena_llama3_isoflops_digitized.csv", {"where": ["condition=raw_loss"]}),
}
# Named with --only, never in the default nine: Gadre's runs one training set a table (its
# rows of equal (N, D) are its three sets, which the noise model would read as seeds).
EXTRA = {
    f"gadre-{ds}": (
        "gadre2024_overtraining_losses.csv",
        {"where": [f"eval_set={C4}", f"train_dataset={ds}"]},
    )
    for ds in ("c4_original", "rpj", "rw_original")
}
ALL = {**TABLES, **EXTRA}


def table_names(only: str) -> list[str]:
    """The tables of --only (a comma-separated list, EXTRA's allowed), else the nine."""
    return [n for n in ALL if n in only.split(",")] if only else list(TABLES)


def print_pooled(paths):
    """The coverage over every table of the --json files (each table once)."""
    seen = {}
    for path in paths:
        for key, r in json.loads(Path(path).read_text()).items():
            if key.endswith(("/C", "/N")):
                seen[key] = r["overall"]
    print(f"{'tables':<16}{'by':>3}{'pred':>6}{'80%':>6}{'95%':>6}{'cal80':>7}{'cal95':>7}")
    for by in ("C", "N"):
        rows = [o for k, o in seen.items() if k.endswith("/" + by)]
        n = sum(o["n"] for o in rows)
        if not n:
            continue
        cells = []
        for key in ("coverage", "calibrated_coverage"):
            for lv in ("0.8", "0.95"):
                cells.append(sum(o.get(key, o["coverage"])[lv] * o["n"] for o in rows) / n)
        print(f"{f'all {len(rows)}':<16}{by:>3}{n:>6}" + "".join(f"{c:>7.1%}" for c in cells))


def auto_study(t, opts):
    """Every candidate's leave-larger-out error per threshold (by C, point fits) and, at
    each threshold, the candidates' backtest errors on that threshold's training rows
    only: what a nested `--law auto` sees. Any selection rule's nested error follows
    (`rule_error`) without refitting."""
    point = {**opts, "bootstrap": 0, "calibrate": "none"}
    thresholds = thresholds_for(t, "C", TRAIN_FRACS)
    outer = {}
    for law in auto_candidates(t):
        try:
            r = rolling_backtest(law, t, by="C", thresholds=thresholds, settings=point)
        except FitError:
            continue
        outer[law] = {
            f"{row['threshold']:.6g}": [row["mean_abs_rel_error"], row["n"]]
            for row in r["thresholds"]
        }
    inner = {}
    for thr in thresholds:
        train = t.subset(~held_out(t, "C", thr))
        rows = inner_rows(train, point)
        if pick(rows) is not None:
            inner[f"{thr:.6g}"] = rows
    return {"outer": outer, "inner": inner}


def inner_rows(train, point):
    """`choose_law`'s table of candidates on these training rows, each row with its
    per-threshold errors too ("per": [[threshold, mean |rel err|, n], ...]), which the
    selection rules other than `pick` read."""
    rows = []
    for law in auto_candidates(train):
        try:
            r = rolling_backtest(law, train, by="C", fracs=TRAIN_FRACS, settings=point)
        except FitError as exc:
            rows.append({"law": law, "error": str(exc)})
            continue
        o = r["overall"]
        rows.append(
            {
                "law": law,
                "n": o["n"],
                "mean_abs_rel_error": o["mean_abs_rel_error"],
                "per": [[x["threshold"], x["mean_abs_rel_error"], x["n"]] for x in r["thresholds"]],
            }
        )
    return rows


def rule_error(study, margin):
    """(nested mean |rel err|, picks) of `pick` with this margin: at each threshold the law
    picked from the inner table, scored on that threshold's held-out runs."""
    tot = n = 0.0
    picks = []
    for thr, rows in study["inner"].items():
        law = pick(rows, margin)
        if law is None or thr not in study["outer"].get(law, {}):
            continue
        err, k = study["outer"][law][thr]
        tot += err * k
        n += k
        picks.append(law)
    return tot / n, picks


def single_errors(study):
    """Each candidate's error over the thresholds the nested rule was scored on."""
    out = {}
    for law, per in study["outer"].items():
        keys = [k for k in study["inner"] if k in per]
        n = sum(per[k][1] for k in keys)
        out[law] = sum(per[k][0] * per[k][1] for k in keys) / n if n else None
    return out


def print_auto(name, study, margins):
    errs = single_errors(study)
    best = min(e for e in errs.values() if e is not None)
    cells = "  ".join(f"{k} {v:.3%}" for k, v in errs.items() if v is not None)
    print(f"{name}: single laws: {cells} ({study['cpu_s']:.0f} s CPU)")
    for m in margins:
        err, picks = rule_error(study, m)
        ratio = err / best
        vs = err / errs["chinchilla"]
        print(
            f"  margin {m:.2f}: nested auto {err:.3%}  / best {ratio:.3f}  / chinchilla "
            f"{vs:.3f}  picks {','.join(picks)}",
            flush=True,
        )


def print_auto_summary(studies, margins):
    print("\nmargin  tables within 10% of the best  tables at least as good as chinchilla")
    for m in margins:
        ok10 = okc = 0
        for study in studies.values():
            errs = single_errors(study)
            err, _ = rule_error(study, m)
            ok10 += err <= 1.10 * min(e for e in errs.values() if e is not None)
            okc += err <= errs["chinchilla"] * (1 + 1e-9)
        print(f"{m:>6.2f}  {ok10:>2} of {len(studies)}  {okc:>2} of {len(studies)}")


def noise_as_calibrated(law, settings, t, mask):
    """fit_subset, its noise taken as a calibrated fit takes it (the seed repeats' spread
    first: ScalingLaw.calibrated_noise), so that the raw intervals dumped are those the
    calibration scales."""
    if law == "data-constrained":
        t.require(law, "U")
    fitted = ScalingLaw.from_settings(law, settings)
    fitted.calibration_refit = True
    return fitted.fit(t.subset(mask))


def dump_fold(law, s, t, by, thr):
    """One outer fold of a backtest, as a calibration study needs it: the held-out rows'
    losses, predictions and raw interval half-widths (log), their distance beyond the fit,
    and the conformal scores and distances of the fit's own calibration backtest."""
    test = held_out(t, by, thr)
    raw = {**s, "calibrate": "none"}
    fitted = noise_as_calibrated(law, raw, t, ~test)
    p = predict_rows(fitted, t, test)
    x = getattr(t, by)
    out = {
        "threshold": thr,
        "logL": np.log(p["L"]).tolist(),
        "logpred": np.log(p["pred"]).tolist(),
        "d": np.maximum(np.log(x[test] / x[~test].max()), 0.0).tolist(),
        "x": x[test].tolist(),
    }
    for lv in LEVELS:
        lo, hi = p["pi"][lv]
        out[f"lo{lv:g}"] = np.log(lo).tolist()
        out[f"hi{lv:g}"] = np.log(hi).tolist()
    inner_s = {**raw, "bootstrap": min(s["bootstrap"], intervals.CAL_BOOTSTRAP)}
    train = t.subset(~test)
    bt = intervals.calibration_scores(
        lambda mask: noise_as_calibrated(law, inner_s, train, mask), train, by
    )
    out["inner_d"] = bt["d"].tolist()
    out["inner_fitted"] = bt["fitted"].tolist()
    out["fitted"] = int((~test).sum())
    for lv in LEVELS:
        out[f"inner_s{lv:g}"] = bt["scores"][lv].tolist()
    return out


def dump_synthetic(k, bootstrap, path, sigma=0.01):
    """`dump_fold` for k synthetic power-c tables: the fold's held-out rows are the 10 new
    runs beyond each table (tests/laws/synth.py)."""
    from tests.laws.synth import power_c_draw

    from scalinglab.laws import ScalingLaw
    from scalinglab.laws.table import read_table

    rng = np.random.default_rng(0)
    folds = []
    t0 = time.process_time()
    for i in range(k):
        table, newC, true_new = power_c_draw(rng, sigma)
        s = {"bootstrap": bootstrap, "seed": i}
        fitted = ScalingLaw("power-c", **s).fit(table)
        obs = true_new * np.exp(sigma * rng.standard_normal(true_new.size))
        pred, draws = fitted.prediction_draws(C=newC)
        fold = {
            "threshold": float(table["C"].max()),
            "logL": np.log(obs).tolist(),
            "logpred": np.log(pred).tolist(),
            "d": np.log(newC / table["C"].max()).tolist(),
            "x": newC.tolist(),
        }
        for lv in LEVELS:
            lo, hi = intervals.interval(fitted, pred, draws, "prediction", lv, calibrate=False)
            fold[f"lo{lv:g}"], fold[f"hi{lv:g}"] = np.log(lo).tolist(), np.log(hi).tolist()
        t = read_table(table, need=("C",))
        inner_s = {**s, "bootstrap": min(bootstrap, intervals.CAL_BOOTSTRAP)}
        bt = intervals.calibration_scores(
            lambda mask, t=t, inner_s=inner_s: ScalingLaw("power-c", **inner_s).fit(t.subset(mask)),
            t,
            "C",
        )
        fold["inner_d"] = bt["d"].tolist()
        fold["inner_fitted"] = bt["fitted"].tolist()
        fold["fitted"] = int(t.C.size)
        for lv in LEVELS:
            fold[f"inner_s{lv:g}"] = bt["scores"][lv].tolist()
        folds.append(fold)
        if (i + 1) % 10 == 0:
            res = {"synthetic/C": {"table": "synthetic power-c", "folds": folds}}
            Path(path).write_text(json.dumps(res))
            print(f"synthetic: {i + 1} tables, {time.process_time() - t0:.0f} s CPU", flush=True)


# (growth power, floor) of the calibrations compared by --score: the rule of 2026-12-01
# (linear, may narrow), that of 2026-12-02 (square, never narrower than the raw), the rule
# now (floor "z": FLOOR unless the calibration backtest shows the raw interval too wide,
# intervals.narrowing_floors) and neighbours.
RULES = {
    "old (1, none)": (1.0, 0.0),
    "sq (2, none)": (2.0, 0.0),
    "sq floor (2, 1)": (2.0, 1.0),
    "NOW (2, 1 or 0)": (intervals.GROWTH_POWER, "z"),
    "cube floor (3, 1)": (3.0, 1.0),
    # the scores of the calibration's larger refits only, or all weighted by their rows
    # (2026-12-05: do its smaller refits make the factor too large?)
    "NOW, refits >= 70%": (intervals.GROWTH_POWER, "z", "nearest"),
    "NOW, weighted by rows": (intervals.GROWTH_POWER, "z", "weighted"),
}
NEAREST = 0.7  # "nearest": refits on at least this share of the fold's rows
MIN_NEAREST = 5  # ... and all of its scores when fewer than this many remain


def weighted_quantile(s, w, w_new, level):
    """The weighted conformal quantile (Tibshirani et al. 2019): the smallest score whose
    weighted share, the new point's weight w_new counted at infinity, reaches `level`;
    the largest score when none does (as conformal_factors caps the rank at n)."""
    order = np.argsort(s)
    s, w = s[order], w[order]
    cum = np.cumsum(w) / (w.sum() + w_new)
    k = np.searchsorted(cum, level - 1e-12)
    return float(s[min(k, s.size - 1)])


def fold_inside(fold, lv, power, floor, mode=None):
    """Booleans: each held-out run of a dumped fold inside its calibrated interval at
    level lv under the rule max(floor, q (1 + d/d0)^power), q and d0 from the fold's own
    calibration backtest exactly as intervals.calibrate computes them (power None: the raw
    interval; floor "z": intervals.narrowing_floors of that backtest; mode "nearest" or
    "weighted": the two readings of RULES that use each score's refit size)."""
    e = np.array(fold["logL"]) - np.array(fold["logpred"])
    up = np.array(fold[f"hi{lv:g}"]) - np.array(fold["logpred"])
    down = np.array(fold["logpred"]) - np.array(fold[f"lo{lv:g}"])
    half = np.where(e >= 0, up, down)
    if power is None:
        return np.abs(e) <= half
    s, di = np.array(fold[f"inner_s{lv:g}"]), np.array(fold["inner_d"])
    d = np.array(fold["d"])
    rows = np.array(fold.get("inner_fitted", []), dtype=float)
    if mode == "nearest":
        keep = rows >= NEAREST * fold["fitted"]
        if keep.sum() >= MIN_NEAREST:
            s, di = s[keep], di[keep]
    d0 = float(np.median(di[di > 0])) if np.any(di > 0) else 0.0
    if d0 > 0:
        pooled = s / (1 + di / d0) ** power
        if mode == "weighted":
            ok = np.isfinite(s)
            q = weighted_quantile(pooled[ok], rows[ok], fold["fitted"], lv)
        else:
            q = intervals.conformal_factors({lv: pooled}, floor=0.0)[lv]
        if floor == "z":
            floor = intervals.narrowing_floors({lv: s})[lv]
        f = np.maximum(floor, q * (1 + d / d0) ** power)
    else:
        f = intervals.conformal_factors({lv: s})[lv]
    return np.abs(e) <= f * half


def score(paths):
    """The coverage of each calibration rule (RULES) on dumped folds, per table and by,
    and pooled over the public tables by C and by N."""
    cells = {}
    for path in paths:
        cells.update(json.loads(Path(path).read_text()))
    rules = {"raw": (None, 0.0), **RULES}
    print(f"{'cell':<18}{'pred':>5}" + "".join(f"{r[:13]:>14}" for r in rules))
    got = {}
    for key, cell in sorted(cells.items()):
        row = []
        for name, (power, floor, *mode) in rules.items():
            if mode and "inner_fitted" not in cell["folds"][0]:
                row.append(f"{'-':>14}")  # dumped before the refits' rows were saved
                continue
            ins = {
                lv: np.concatenate([fold_inside(f, lv, power, floor, *mode) for f in cell["folds"]])
                for lv in LEVELS
            }
            got[key, name] = ins
            row.append(f"{ins[0.8].mean():>7.1%}/{ins[0.95].mean():<6.1%}")
        print(f"{key:<18}{len(got[key, 'raw'][0.8]):>5}" + "".join(f"{c:>14}" for c in row))
    for by in ("C", "N"):
        keys = [k for k in cells if k.endswith("/" + by) and not k.startswith("synthetic")]
        if not keys:
            continue
        row = []
        for name in rules:
            a = {lv: np.concatenate([got[k, name][lv] for k in keys]) for lv in LEVELS}
            row.append(f"{a[0.8].mean():>7.1%}/{a[0.95].mean():<6.1%}")
        n = sum(len(got[k, "raw"][0.8]) for k in keys)
        print(f"{f'pooled {len(keys)} by {by}':<18}{n:>5}" + "".join(f"{c:>14}" for c in row))
    for name in rules:
        ok = [
            k
            for k in cells
            if not k.startswith("synthetic")
            and abs(got[k, name][0.8].mean() - 0.8) <= 0.1
            and abs(got[k, name][0.95].mean() - 0.95) <= 0.1
        ]
        print(f"{name}: {len(ok)} of {len(cells) - ('synthetic/C' in cells)} cells within 10")


def dump(names, data, bootstrap, path):
    """Every outer fold of every table, by C and by N (`dump_fold`), to a JSON file."""
    res = {}
    for name in names:
        fname, opts = ALL[name]
        law = LAW.get(name, "chinchilla")
        for by in ("C", "N"):
            s = {"bootstrap": bootstrap, **opts}
            t = read_for(Path(data) / fname, [law], s, by=by)
            t0 = time.process_time()
            folds = []
            for thr in thresholds_for(t, by, TRAIN_FRACS):
                try:
                    folds.append(dump_fold(law, s, t, by, thr))
                except FitError as exc:
                    print(f"{name}/{by} {thr:.3g}: {exc}")
            res[f"{name}/{by}"] = {"table": fname, "folds": folds}
            print(
                f"{name}/{by}: {len(folds)} folds, {time.process_time() - t0:.0f} s CPU", flush=True
            )
            Path(path).write_text(json.dumps(res))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/scaling_data")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--only", default="")
    ap.add_argument("--no-auto", action="store_true")
    ap.add_argument("--auto-only", action="store_true", help="only the --law auto tables")
    ap.add_argument("--json", help="write every backtest here")
    ap.add_argument(
        "--margins",
        type=float,
        nargs="+",
        default=[0.0, 0.1, 0.2, 0.25, 0.3, 0.4, 1.0],
        help="--law auto: the margins of the rule to score (1: always chinchilla)",
    )
    ap.add_argument(
        "--score", nargs="+", metavar="JSON", help="only score the calibrations on --dump files"
    )
    ap.add_argument("--dump", metavar="JSON", help="only write every outer fold (dump_fold)")
    ap.add_argument("--auto-from", metavar="JSON", help="score the margins on a saved --json")
    ap.add_argument(
        "--pool",
        nargs="+",
        metavar="JSON",
        help="only print the pooled coverage of these --json files (parts run in parallel)",
    )
    ap.add_argument(
        "--synthetic", type=int, default=0, metavar="K", help="also K synthetic tables per law"
    )
    ap.add_argument("--synthetic-laws", default="power-c,chinchilla")
    ap.add_argument(
        "--synthetic-calibrate",
        default="none",
        help="calibrate setting of the synthetic fits (C: the calibrated intervals)",
    )
    ap.add_argument(
        "--synthetic-no-floor", action="store_true", help="power-c without E (as the CI test)"
    )
    ap.add_argument("--synthetic-new-runs", type=int, default=10, help="new runs per table")
    args = ap.parse_args()
    if args.pool:
        return print_pooled(args.pool)
    if args.score:
        return score(args.score)
    if args.dump and args.synthetic:
        return dump_synthetic(args.synthetic, args.bootstrap, args.dump)
    names = table_names(args.only)
    if args.dump:
        return dump(names, args.data, args.bootstrap, args.dump)
    if args.auto_from:
        studies = {
            k[: -len("/auto")]: v
            for k, v in json.loads(Path(args.auto_from).read_text()).items()
            if k.endswith("/auto")
        }
        for name, study in studies.items():
            print_auto(name, study, args.margins)
        return print_auto_summary(studies, args.margins)
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; bootstrap {args.bootstrap}")
    if args.synthetic:
        from tests.laws.synth import synthetic_coverage

        for law in args.synthetic_laws.split(","):
            t0 = time.process_time()
            cov, n = synthetic_coverage(
                law,
                args.synthetic,
                bootstrap=args.bootstrap,
                calibrate=args.synthetic_calibrate,
                floor=not args.synthetic_no_floor,
                new_runs=args.synthetic_new_runs,
            )
            print(
                f"synthetic {law} (calibrate {args.synthetic_calibrate}, floor "
                f"{not args.synthetic_no_floor}): {args.synthetic} tables, {n} new runs: "
                f"in 80% {cov[0.8]:.1%}, "
                f"in 95% {cov[0.95]:.1%} ({time.process_time() - t0:.0f} s CPU)",
                flush=True,
            )
    print(
        f"\n{'table':<16}{'by':>3}{'rows':>6}{'pred':>6}{'|err|':>8}"
        f"{'80%':>6}{'95%':>6}{'cal80':>7}{'cal95':>7}{'cpu s':>7}"
    )
    pooled = {}
    results = {}
    for name in names if not args.auto_only else ():
        fname, opts = ALL[name]
        for by in ("C", "N"):
            s = {"bootstrap": args.bootstrap, "calibrate": by, **opts}
            law = LAW.get(name, "chinchilla")
            t = read_for(Path(args.data) / fname, [law], s, by=by)
            t0 = time.process_time()
            r = rolling_backtest(law, t, by=by, settings=s)
            cpu = time.process_time() - t0
            o = r["overall"]
            cov, cal = o["coverage"], o.get("calibrated_coverage", o["coverage"])
            print(
                f"{name:<16}{by:>3}{len(t):>6}{o['n']:>6}{o['mean_abs_rel_error']:>8.2%}"
                f"{cov['0.8']:>6.0%}{cov['0.95']:>6.0%}{cal['0.8']:>7.0%}{cal['0.95']:>7.0%}"
                f"{cpu:>7.1f}",
                flush=True,
            )
            results[f"{name}/{by}"] = r
            acc = pooled.setdefault(by, {"n": 0, "80": 0.0, "95": 0.0, "c80": 0.0, "c95": 0.0})
            acc["n"] += o["n"]
            acc["80"] += cov["0.8"] * o["n"]
            acc["95"] += cov["0.95"] * o["n"]
            acc["c80"] += cal["0.8"] * o["n"]
            acc["c95"] += cal["0.95"] * o["n"]
    for by, acc in pooled.items():
        n = acc["n"]
        print(
            f"{'all tables':<16}{by:>3}{'':>6}{n:>6}{'':>8}{acc['80'] / n:>6.0%}"
            f"{acc['95'] / n:>6.0%}{acc['c80'] / n:>7.0%}{acc['c95'] / n:>7.0%}"
        )
    if not args.no_auto:
        print(
            f"\n--law auto (by C, point fits): candidates {', '.join(AUTO_LAWS)}; nested: "
            "the law chosen at each threshold by a backtest of its training rows only"
        )
        for name in names:
            fname, opts = ALL[name]
            t = read_for(Path(args.data) / fname, AUTO_LAWS, {**opts}, by="C")
            t0 = time.process_time()
            study = auto_study(t, opts)
            study["cpu_s"] = time.process_time() - t0
            results[f"{name}/auto"] = study
            print_auto(name, study, args.margins)
            if args.json:  # table by table: a stopped run keeps what it measured
                Path(args.json).write_text(json.dumps(results, indent=1))
        if len(names) > 1:
            print_auto_summary({n: results[f"{n}/auto"] for n in names}, args.margins)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
