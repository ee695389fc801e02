"""examples/ladder.toml as a benchmark of the tool's own predictive power (issue 22):
the study 6 times, seeds 0, 1, 2 x the byte tokenizer and a BPE of 512 tokens, two at a
time (one worker each), then the table of the 6 backtests: extrapolation, fit_cost_ratio,
rel_error and whether the measured loss fell in the 80% and 95% prediction intervals.

    python benchmarks/ladder_study.py --out /tmp/ladder --cache /tmp/cache [--dry-run]

--dry-run prepares the corpora and prints each study's plan estimate (measured step
times on this machine now) and the total, running nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flake_hunt import cpu_name  # benchmarks/ is on sys.path when run as a script

from scalinglab.study.run import plan_study, prepare_data, run_study
from scalinglab.study.spec import parse_study
from scalinglab.sweep.executors import ExecutorConfig

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
# the standard library holds a few files that are not UTF-8 (test data): a BPE reads them
# with U+FFFD for the bad bytes; the byte tokenizer takes them as they are
TOKENIZERS = {
    "byte": {"tokenizer": "byte"},
    "bpe512": {"tokenizer": "bpe", "vocab_size": 512, "errors": "replace"},
}
# A BPE of 512 holds the corpus in 14.8M training tokens, the bytes in 31M: at the byte
# study's budgets its backtest run (17.5M tokens) would repeat data (1.2 epochs) and the
# study would switch to the data-constrained law. Every budget x0.68 (sweep, seeds and
# backtest alike: the same extrapolation and cost) keeps it inside one epoch (14.5M).
SCALE = {"byte": 1.0, "bpe512": 0.68}


def variants() -> dict:
    base = tomllib.loads((ROOT / "examples" / "ladder.toml").read_text(encoding="utf-8"))
    out = {}
    for tok, data in TOKENIZERS.items():
        for seed in SEEDS:
            d = copy.deepcopy(base)
            d["name"] = f"ladder-{tok}-s{seed}"
            d["data"].update(data)
            k = SCALE[tok]
            d["sweeps"]["gpt"]["budgets"] = [k * b for b in d["sweeps"]["gpt"]["budgets"]]
            d["seed_noise"]["budget"] *= k
            d["backtest"]["budget"] *= k
            d["train"]["seed"] = seed
            d["workers"] = 1  # two studies at a time share the two cores
            out[d["name"]] = parse_study(d, f"ladder.toml ({tok}, seed {seed})")
    return out


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
    args = ap.parse_args()
    studies = variants()
    print(f"# {time.strftime('%Y-%m-%d')} · {cpu_name()} · examples/ladder.toml x 6")
    if args.dry_run:
        total = 0.0
        for name, s in studies.items():
            shards, corpus = prepare_data(s, Path(args.cache))
            plan = plan_study(s, shards, corpus, Path(args.out) / name, 1, 1)
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
        return name, run_study(s, Path(args.out) / name, Path(args.cache),
                               ExecutorConfig(workers=1, threads=1))  # fmt: skip

    with ThreadPoolExecutor(2) as pool:
        results = dict(pool.map(one, studies.items()))
    print(f"wall: {(time.monotonic() - t0) / 60:.1f} min")
    print(
        "| study | extrapolation | fit_cost_ratio | predicted | measured | rel_error | in 80% | in 95% |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, summ in results.items():
        bt = summ["backtest"]
        pred = json.loads((Path(args.out) / name / "prediction.json").read_text())
        lo80, hi80 = interval(pred, 0.8)
        a = bt["actual_loss"]
        print(f"| {name} | {bt['extrapolation']:.1f} | {bt['fit_cost_ratio']:.3f} | "
              f"{bt['predicted_loss']:.4f} | {a:.4f} | {100 * bt['signed_rel_error']:+.2f}% | "
              f"{lo80 <= a <= hi80} | {bt['in_interval']} |")  # fmt: skip


if __name__ == "__main__":
    main()
