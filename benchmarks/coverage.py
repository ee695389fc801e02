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

from flake_hunt import cpu_name  # benchmarks/ is the script's folder

from scalinglab.laws.backtest import AUTO_LAWS, choose_law, read_for, rolling_backtest

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/scaling_data")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--only", default="")
    ap.add_argument("--no-auto", action="store_true")
    ap.add_argument("--auto-only", action="store_true", help="only the --law auto tables")
    ap.add_argument("--json", help="write every backtest here")
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
    args = ap.parse_args()
    if args.pool:
        return print_pooled(args.pool)
    names = [n for n in TABLES if not args.only or n in args.only.split(",")]
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; bootstrap {args.bootstrap}")
    if args.synthetic:
        from tests.laws.synth import synthetic_coverage

        for law in args.synthetic_laws.split(","):
            t0 = time.process_time()
            cov, n = synthetic_coverage(
                law, args.synthetic, bootstrap=args.bootstrap, calibrate=args.synthetic_calibrate
            )
            print(
                f"synthetic {law} (calibrate {args.synthetic_calibrate}): {args.synthetic} tables, {n} new runs: in 80% {cov[0.8]:.1%}, "
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
        fname, opts = TABLES[name]
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
            fname, opts = TABLES[name]
            t = read_for(Path(args.data) / fname, AUTO_LAWS, {**opts}, by="C")
            t0 = time.process_time()
            law, rows = choose_law(t, by="C", settings=opts)
            point = {**opts, "bootstrap": 0, "calibrate": "none"}
            nested = rolling_backtest("auto", t, by="C", settings=point)
            errs = {r["law"]: r.get("mean_abs_rel_error") for r in rows}
            best = min(e for e in errs.values() if e is not None)
            err = nested["overall"]["mean_abs_rel_error"]
            picks = ",".join(r["law"] for r in nested["thresholds"])
            cells = "  ".join(f"{k} {'-' if v is None else f'{v:.3%}'}" for k, v in errs.items())
            print(
                f"{name:<16} nested auto {err:.3%} (best single {best:.3%}: ratio "
                f"{err / best:.3f}; chinchilla {errs['chinchilla']:.3%}) picks {picks}; "
                f"on all rows {law} | {cells} ({time.process_time() - t0:.1f} s CPU)",
                flush=True,
            )
            results[f"{name}/auto"] = {"candidates": rows, "nested": nested, "chosen": law}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
