"""Retrain a finished study's GPT runs with another warmup and refit its prediction.

The question: does the sweep's warmup rule bias the frontier? On trunks every branch
warms up over warmup_frac of its trunk's *shortest* branch, so the smallest budget's
optima warm up over 5% of their steps and the larger budgets' over less (the quickstart's
7e11 optimum: 50 of 3,017 steps). Each sweep run (a branch is the same run as a
standalone WSD run with its warmup: bit for bit) is trained again with `--warmup` set
either to a fixed number of steps (`--steps W`) or to a share of its own steps
(`--frac F`), optionally only at some budgets (`--budgets`), and with `--backtest` the
study's backtest run too (with `--steps`); then the frontier is refitted in the study's
own count and scored against the backtest run that was trained the same way (or the
study's, without `--backtest`), N counted as the study counts it or as `--n-kind` says.
No study is changed: the runs go under --out.

    python benchmarks/warmup_refit.py QS1 ... --out WU --frac 0.0166 --budgets 7.5e10
    python benchmarks/warmup_refit.py QS1 ... --out W32 --steps 32 --backtest [--n-kind K]
"""

import argparse
import json
import subprocess
import sys
import tomllib
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from count_refit import frontier_at  # benchmarks/ is on sys.path when run as a script

from scalinglab.plan import analysis as an
from scalinglab.report.collect import collect


def warmup_for(config: Path, args) -> int:
    t = tomllib.loads(config.read_text())
    steps = t["train"]["tokens"] // (t["train"]["batch_size"] * t["model"]["block_size"])
    return args.steps if args.steps is not None else round(args.frac * steps)


def jobs_for(study: Path, args) -> list[tuple[list[str], Path]]:
    c = collect(study)
    out = []
    for r in c.by_role("sweep"):
        budget = r.get("budget")
        if r["arch"] != "gpt" or (args.budgets and not any(
                abs(budget / b - 1) < 1e-6 for b in args.budgets)):  # fmt: skip
            continue
        out.append((Path(r["dir"]), "1"))
    if args.backtest:
        out.append((study / "backtest" / "runs" / c.prediction["run_name"], "2"))
    cmds = []
    for run, threads in out:
        w = warmup_for(run / "config.toml", args)
        dest = args.out / study.name / f"{run.name}-wu{w}"
        if not (dest / "result.json").exists():
            cmds.append(([sys.executable, "-m", "scalinglab", "train", "--config",
                          str(run / "config.toml"), "--out", str(dest), "--warmup", str(w),
                          "--threads", threads, "-q"], dest))  # fmt: skip
    return cmds


def train(cmds, parallel: int) -> None:
    def one(job):
        cmd, dest = job
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"{dest}: training failed: {p.stderr.strip().splitlines()[-1]}")
        print(f"trained {dest}", flush=True)

    with ThreadPoolExecutor(parallel) as ex:
        list(ex.map(one, cmds))


def retrained(study: Path, out: Path) -> dict[str, float]:
    """{run name: validation loss} of the runs trained again for `study`."""
    d = out / study.name
    if not d.is_dir():
        return {}
    return {x.name.rsplit("-wu", 1)[0]: json.loads((x / "result.json").read_text())["val_loss"]
            for x in d.iterdir() if (x / "result.json").exists()}  # fmt: skip


def score(study: Path, out: Path, kind: str | None) -> tuple[float, float]:
    c = collect(study)
    fs, own = an.fit_settings(c.study.get("fit", {}), str(study))
    kind = kind or own
    name = c.prediction["run_name"]
    bt = next(r for r in c.by_role("backtest") if r["run_id"] == name)
    rows = [r for r in c.by_role("sweep") if r["arch"] == "gpt"]
    noise = an.seed_noise(c.by_role("sweep", "seed"))
    new = retrained(study, out)
    rows2 = [{**r, "loss": new.get(Path(r["dir"]).name, r["loss"])} for r in rows]
    measured = new.get(name, bt["loss"])
    errs = []
    for label, rr, m in (("study", rows, bt["loss"]), ("retrained", rows2, measured)):
        fits = an.fit_arch("gpt", rr, fs, kind, chinchilla=False)
        pred, lo, hi = frontier_at(fits, bt, kind, noise, fs.ci_level)
        e = 100 * (pred / m - 1)
        errs.append(e)
        vs = " / ".join(f"{q['L']:.4f}" for q in fits.frontier_points)
        print(f"| {study.name} | {label} | {vs} | {fits.frontier.params_['alpha']:.3f} | "
              f"{pred:.4f} | [{lo:.4f}, {hi:.4f}] | {m:.4f} | {e:+.2f}% | "
              f"{'yes' if lo <= m <= hi else 'no'} |")  # fmt: skip
    return errs[0], errs[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("studies", nargs="+", type=Path, help="finished study folders")
    ap.add_argument("--out", type=Path, required=True, help="where the runs trained again go")
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--steps", type=int, help="warm up every run over this many steps")
    how.add_argument("--frac", type=float, help="warm up each run over this share of its steps")
    ap.add_argument("--budgets", type=float, nargs="*", help="only the sweep runs of these budgets")
    ap.add_argument("--backtest", action="store_true", help="train the backtest run again too")
    ap.add_argument("--n-kind", choices=an.N_KINDS, help="the fits' count (default: the study's)")
    ap.add_argument("--parallel", type=int, default=2, help="sweep runs at a time (1 thread each)")
    args = ap.parse_args()
    if args.backtest and args.steps is None:
        ap.error("--backtest needs --steps (one warmup rule for every run)")
    warnings.simplefilter("ignore")
    cmds = [j for s in args.studies for j in jobs_for(s, args)]
    train([j for j in cmds if j[0][-2] == "1"], args.parallel)
    train([j for j in cmds if j[0][-2] == "2"], 1)
    print("| study | sweep | vertices | α | predicted | 95% interval | measured | error | inside |")
    print("|---|---|---|---|---|---|---|---|---|")
    pairs = [score(s, args.out, args.n_kind) for s in args.studies]
    for i, label in enumerate(("the study's runs", "retrained")):
        e = [abs(p[i]) for p in pairs]
        print(f"{label}: mean |error| {sum(e) / len(e):.2f}% over {len(e)} studies")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
