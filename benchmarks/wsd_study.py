"""A tiny scaling study two ways: independent runs (`ladder`, cosine) against WSD branching.

The same sizes and token budgets (tokens_per_param × N), byte-level tinyshakespeare (or
any text), the same hyperparameter rule. Prints the FLOPs each design trained (the
model's own count), its wall time, and the Chinchilla fit of each runs table side by side.

    python benchmarks/wsd_study.py [--workers 2] [--text FILE] [--out DIR]
"""

import argparse
import tempfile
import time
from pathlib import Path

from scalinglab.data.writer import prepare
from scalinglab.laws.estimator import ScalingLaw
from scalinglab.runfolder import read_result
from scalinglab.sweep import driver
from scalinglab.sweep.design import trained_flops, wsd_sizes
from scalinglab.sweep.local import LocalExecutor
from scalinglab.sweep.spec import load_spec
from scalinglab.sweep.table import runs_table, write_csv

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared/corpora/tinyshakespeare.txt"
PARAMS = "[2e3, 6e3, 2e4]"
RATIOS = "[20, 40, 80]"
SPEC = """format_version = 1
name = "{name}"
data = "{data}"
archs = ["gpt"]
[model]
block_size = 64
[train]
batch_size = 8
eval_tokens = 16384
log_every = 50
deterministic = true
{train}
[shape]
aspect = 8
head_size = 4
max_layers = 2
[hparams]
lr = 1e-2
ref_width = 16
lr_power = 0.5
warmup_frac = 0.05
[design]
kind = "{kind}"
params = {params}
tokens_per_param = {ratios}
{design}
"""


def run(out: Path, data: Path, name: str, kind: str, workers: int, train="", design=""):
    text = SPEC.format(
        name=name, data=data, kind=kind, params=PARAMS, ratios=RATIOS, train=train, design=design
    )
    (out / f"{name}.toml").write_text(text)
    spec = load_spec(out / f"{name}.toml")
    t0 = time.perf_counter()
    driver.run_sweep(spec, out / name, LocalExecutor(workers), threads=1)
    wall = time.perf_counter() - t0
    rows = runs_table(out / name)
    write_csv(rows, out / name / "runs.csv")
    law = ScalingLaw("chinchilla", bootstrap=0).fit(str(out / name / "runs.csv"))
    return spec, rows, wall, law


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--text", default=str(SHAKESPEARE))
    ap.add_argument("--out", default=None, help="keep the study here (default: a temp folder)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        out = Path(a.out or d)
        out.mkdir(parents=True, exist_ok=True)
        data = out / "shards"
        prepare(a.text, data, tokenizer="byte")
        _, lrows, lwall, llaw = run(out, data, "ladder", "ladder", a.workers)
        wspec, wrows, wwall, wlaw = run(
            out,
            data,
            "wsd",
            "wsd",
            a.workers,
            design='cooldown_frac = 0.2\nflops_convention = "model"',
        )
        sizes = wsd_sizes(driver.open_context(wspec))
        planned_wsd, planned_indep = trained_flops(sizes)
        ladder_flops = sum(r["flops"] for r in lrows)
        stable = [read_result(out / "wsd" / "stable" / "runs" / s.stable.name) for s in sizes]
        print(f"sizes {PARAMS} x tokens_per_param {RATIOS}: {len(lrows)} runs each")
        print(f"  ladder (independent, cosine): {ladder_flops:.3e} FLOPs trained, {lwall:.0f} s")
        print(
            f"  wsd (branches):               {planned_wsd:.3e} FLOPs trained "
            f"({planned_wsd / planned_indep:.0%} of its runs trained independently, "
            f"{planned_wsd / ladder_flops:.0%} of ladder's), {wwall:.0f} s "
            f"({wwall / lwall:.0%}); stable runs: {[r['status'] for r in stable]}"
        )
        print(f"  {'':8s} {'ladder':>10s} {'wsd':>10s}")
        for k in ("alpha", "beta", "E", "A", "B"):
            print(f"  {k:8s} {llaw.params_[k]:10.4g} {wlaw.params_[k]:10.4g}")
        print("  loss per run (ladder | wsd):")
        key = lambda r: (r["params"], r["tokens"])  # noqa: E731
        for lr_, wr in zip(sorted(lrows, key=key), sorted(wrows, key=key), strict=True):
            print(
                f"    N={lr_['params']:>6} D={lr_['tokens']:>8}  {lr_['loss']:.4f} | "
                f"{wr['loss']:.4f}"
            )


if __name__ == "__main__":
    main()
