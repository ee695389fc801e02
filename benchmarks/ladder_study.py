"""examples/ladder.toml as a benchmark of the tool's own predictive power (issue 22):
the study 6 times, seeds 0, 1, 2 x the byte tokenizer and a BPE of 320 tokens, two at a
time (one worker each), then the table of the 6 backtests: extrapolation, fit_cost_ratio,
rel_error and whether the measured loss fell in the 80% and 95% prediction intervals.

    python benchmarks/ladder_study.py --out /tmp/ladder --cache /tmp/cache [--dry-run]

`--design quickstart` runs the quickstart's GPT half instead (examples/quickstart.toml
without its LSTM sweep and [tasks]: the same budgets, trunks, seed repeats and backtest),
at seeds 0-3 (`--seeds`) under each `[hparams] rule` of `--rules` (power, mup): is its
backtest error a draw or a bias, and which rule errs least at equal cost (issue 21,
item 5). A seed's repeats use seeds 10s+1, 10s+2 (the study refuses its own seed).

`--design gpu` is the same design pushed to 100x on a GPU (issue 22's GPU target): one
study per seed (default 0) on bytes, examples/ladder.toml with its backtest at C = 7.5e13,
107x the largest fitted budget, `--workers` runs at a time on the one GPU (device auto
picks it), and `--corpus DIR` to read the `.py` files of a copy of another machine's
standard library instead of the running Python's (the same text as the CPU studies).

--dry-run prepares the corpora and prints each study's plan estimate (measured step
times on this machine now) and the total, running nothing; --report prints the table of
the studies already in --out (a rerun resumes the others: every study is resumable).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flake_hunt import cpu_name  # benchmarks/ is on sys.path when run as a script

from scalinglab.config import dumps_toml
from scalinglab.study.run import plan_study, prepare_data, run_study
from scalinglab.study.spec import parse_study, study_dict
from scalinglab.sweep.executors import ExecutorConfig

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
# the standard library holds a few files that are not UTF-8 (test data): a BPE reads them
# with U+FFFD for the bad bytes; the byte tokenizer takes them as they are. A BPE of 320
# holds the corpus in 19.5M training tokens (512: 14.8M, where the backtest would repeat
# data and the study switch to the data-constrained law) and its embedding is small
# enough that every budget keeps 3 distinct sizes (at 512 the smallest kept 2, and the
# allocation drawn through the other two budgets planned a 2.2M-parameter run on 1.6M
# tokens): the same budgets as the bytes, the same extrapolation and cost.
TOKENIZERS = {
    "byte": {"tokenizer": "byte"},
    "bpe320": {"tokenizer": "bpe", "vocab_size": 320, "errors": "replace"},
}


def quickstart_variants(seeds=(0, 1, 2, 3), rules=("power",)) -> dict:
    """The quickstart's GPT half at each seed under each lr rule (equal cost)."""
    base = tomllib.loads((ROOT / "examples" / "quickstart.toml").read_text(encoding="utf-8"))
    del base["sweeps"]["lstm"], base["tasks"]
    out = {}
    for rule in rules:
        for seed in seeds:
            d = copy.deepcopy(base)
            d["name"] = f"qs-{rule}-s{seed}"
            d["train"]["seed"] = seed
            d["hparams"]["rule"] = rule
            if seed:
                d["seed_noise"]["seeds"] = [10 * seed + 1, 10 * seed + 2]
            d["workers"] = 1
            out[d["name"]] = parse_study(d, f"quickstart.toml's GPT ({rule}, seed {seed})")
    return out


def variants(seeds=SEEDS) -> dict:
    base = tomllib.loads((ROOT / "examples" / "ladder.toml").read_text(encoding="utf-8"))
    out = {}
    for tok, data in TOKENIZERS.items():
        for seed in seeds:
            d = copy.deepcopy(base)
            d["name"] = f"ladder-{tok}-s{seed}"
            d["data"].update(data)
            d["train"]["seed"] = seed
            d["workers"] = 1  # two studies at a time share the two cores
            out[d["name"]] = parse_study(d, f"ladder.toml ({tok}, seed {seed})")
    return out


GPU_BUDGET = 7.5e13  # 107x the ladder's largest budget, 7e11: the GPU target is >= 100x


def gpu_variants(seeds=(0,), workers=8, corpus: str | None = None) -> dict:
    """The ladder's design at 107x: its sweeps and seed repeats, the backtest at 7.5e13."""
    base = tomllib.loads((ROOT / "examples" / "ladder.toml").read_text(encoding="utf-8"))
    base["backtest"]["budget"] = GPU_BUDGET
    base["workers"] = workers
    if corpus:
        del base["data"]["stdlib_tests"]
        base["data"].update(sources=[str(Path(corpus).resolve())], glob="**/*.py")
    out = {}
    for seed in seeds:
        d = copy.deepcopy(base)
        d["name"] = f"ladder-gpu-s{seed}"
        d["train"]["seed"] = seed
        out[d["name"]] = parse_study(d, f"ladder.toml at {GPU_BUDGET:.2g} (seed {seed})")
    return out


def run_cli(s, out: Path, cache: Path, workers: int, threads: int) -> int:
    """`scalinglab study` on the spec written out as a file, as a user would run it."""
    out.mkdir(parents=True, exist_ok=True)
    spec = out / f"{s.name}.toml"
    spec.write_text(dumps_toml(study_dict(s)), encoding="utf-8")
    cmd = [sys.executable, "-m", "scalinglab", "study", str(spec), "--out", str(out / s.name),
           "--cache", str(cache), "--workers", str(workers), "--threads", str(threads)]  # fmt: skip
    return subprocess.run(cmd, check=True).returncode


def device_name() -> str:
    import torch

    gpu = f" · {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return cpu_name() + gpu


def interval(pred: dict, level: float) -> list[float]:
    """The prediction's interval at another level: its half-widths scaled by the normal
    quantiles (the study writes the 95% one)."""
    from scipy.stats import norm

    p, (lo, hi) = pred["predicted_loss"], pred["interval"]
    k = norm.ppf(0.5 + level / 2) / norm.ppf(0.5 + pred["ci_level"] / 2)
    return [p - k * (p - lo), p + k * (hi - p)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--only", nargs="+", default=None, help="these studies only (by name)")
    ap.add_argument("--parallel", type=int, default=2, help="studies at a time")
    ap.add_argument("--design", choices=("ladder", "quickstart", "gpu"), default="ladder")
    ap.add_argument("--workers", type=int, default=8, help="gpu: runs at a time")
    ap.add_argument("--corpus", default=None, help="gpu: a folder of .py files, not stdlib")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="default: 0 1 2 (ladder), 0 1 2 3 (quickstart)")  # fmt: skip
    ap.add_argument("--rules", nargs="+", choices=("power", "mup"), default=["power"],
                    help="quickstart: the [hparams] rules to compare")  # fmt: skip
    ap.add_argument(
        "--report", action="store_true", help="print the table of the studies in --out, run none"
    )
    args = ap.parse_args()
    if args.design == "quickstart":
        every = quickstart_variants(tuple(args.seeds or (0, 1, 2, 3)), tuple(args.rules))
    elif args.design == "gpu":
        every = gpu_variants(tuple(args.seeds or (0,)), args.workers, args.corpus)
    else:
        every = variants(tuple(args.seeds or SEEDS))
    studies = {k: v for k, v in every.items() if not args.only or k in args.only}
    print(f"# {time.strftime('%Y-%m-%d')} · {device_name()} · {args.design} x {len(studies)}")

    def workers_threads(
        s,
    ) -> tuple[int, int]:  # (workers, threads): the gpu design's own, else 1, 1
        if args.design != "gpu":
            return 1, 1
        return s.workers, max(1, (os.cpu_count() or 1) // s.workers)

    if args.dry_run:
        total = 0.0
        for name, s in studies.items():
            shards, corpus = prepare_data(s, Path(args.cache))
            plan = plan_study(s, shards, corpus, Path(args.out) / name, *workers_threads(s))
            sec = plan.seconds(s.backtest.arch)["total"]
            total += sec
            print(
                f"{name}: {len(plan.pool_runs)} runs and the backtest, estimated {sec / 60:.1f} min"
            )
        print(
            f"estimated: {total / 60:.1f} min one at a time, about {total / 120:.1f} min 2 at a time"
        )
        return
    t0 = time.monotonic()

    def one(item):
        name, s = item
        w, t = workers_threads(s)
        if args.design == "gpu":  # one study at a time: the CLI, its progress printed
            return name, run_cli(s, Path(args.out), Path(args.cache), w, t)
        return name, run_study(s, Path(args.out) / name, Path(args.cache),
                               ExecutorConfig(workers=w, threads=t))  # fmt: skip

    if not args.report:
        with ThreadPoolExecutor(1 if args.design == "gpu" else args.parallel) as ex:
            list(ex.map(one, studies.items()))
        print(f"wall: {(time.monotonic() - t0) / 60:.1f} min")
    table(Path(args.out), studies)


def table(out: Path, studies: dict):
    """The backtests of the studies in `out` that have ended (a study not there, or not
    ended, is listed as such): the interval as each study wrote it before its run."""
    print("| study | extrapolation | fit_cost_ratio | predicted | 95% interval | measured | "
          "rel_error | in 80% | in 95% | wall (min) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in studies:
        path = out / name / "summary.json"
        bt = json.loads(path.read_text())["backtest"] if path.exists() else None
        if not bt or bt.get("actual_loss") is None:
            print(f"| {name} | not ended | | | | | | | | |")
            continue
        pred = json.loads((out / name / "prediction.json").read_text())
        lo80, hi80 = interval(pred, 0.8)
        a, (lo, hi) = bt["actual_loss"], pred["interval"]
        wall = json.loads(path.read_text()).get("wall_seconds", float("nan")) / 60
        print(f"| {name} | {bt['extrapolation']:.1f} | {bt['fit_cost_ratio']:.3f} | "
              f"{bt['predicted_loss']:.4f} | [{lo:.4f}, {hi:.4f}] | {a:.4f} | "
              f"{100 * bt['signed_rel_error']:+.2f}% | {lo80 <= a <= hi80} | "
              f"{bt['in_interval']} | {wall:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
