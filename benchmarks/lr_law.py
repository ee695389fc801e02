"""The LR law at 10× the compute: fit lr-opt on small grids, then test its proposal.

1. A sweep of `kind = "hparams"` (the sweep machinery): 2-layer GPTs at two sizes ×
   two token budgets (D = r·N), each on an lr grid (factors of 2) × two batch sizes.
2. `fit --law lr-opt` on its runs table (Step Law's form, lr*(N, D) and B*(D)).
3. A run at 10× the largest compute of the sweep (N and D each √10× the largest),
   at the fitted batch, on a 5-point lr grid of factors of 2 centred on the fitted lr.
   Prints the loss at the fitted lr beside the best of the grid (issue 21's target:
   within 0.25%).

    python benchmarks/lr_law.py [--workers 2] [--data SHARDS] [--out DIR]
"""

import argparse
import math
import time
from pathlib import Path

from scalinglab.laws.lropt import fit_lr_opt
from scalinglab.sweep import driver
from scalinglab.sweep.local import LocalExecutor
from scalinglab.sweep.spec import load_spec
from scalinglab.sweep.table import runs_table, write_csv

HERE = Path(__file__).resolve().parent
BLOCK = 64
LR = 8e-3  # the grid's centre: lr_factors multiply it
SPEC = """format_version = 1
name = "{name}"
data = "{data}"
archs = ["gpt"]
[model]
block_size = {block}
[train]
eval_tokens = 32768
log_every = 50
dtype = "float32"
[shape]
aspect = 4
head_size = 8
min_layers = 2
max_layers = 2
[hparams]
lr = {lr}
ref_width = 64
lr_power = 0
warmup_frac = 0.08
[design]
kind = "hparams"
{design}
"""


def sweep(out: Path, data: str, name: str, design: str, workers: int) -> list[dict]:
    path = out / f"{name}.toml"
    path.write_text(SPEC.format(name=name, data=data, block=BLOCK, lr=LR, design=design))
    driver.run_sweep(load_spec(path), out / name, LocalExecutor(workers), threads=1)
    rows = runs_table(out / name)
    write_csv(rows, out / name / "runs.csv")
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--params", default="5e3,2e4", help="target sizes N of the fitted grid")
    ap.add_argument("--ratios", default="4,16", help="tokens per parameter of the fitted grid")
    ap.add_argument("--batches", default="8,32", help="sequences per batch of the fitted grid")
    ap.add_argument("--data", default="", help="byte shards (default: prepare the stdlib)")
    ap.add_argument("--out", default=str(HERE / ".lr_law"))
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if not a.data:
        from scalinglab.data.writer import prepare

        a.data = str(out / "shards")
        prepare("stdlib", out=a.data, tokenizer="byte")
    t0 = time.perf_counter()
    design = (f"params = [{a.params}]\ntokens_per_param = [{a.ratios}]\n"
              f"lr_factors = [0.125, 0.25, 0.5, 1, 2, 4, 8]\nbatch_sizes = [{a.batches}]")  # fmt: skip
    rows = sweep(out, a.data, "fit", design, a.workers)
    law = fit_lr_opt(out / "fit" / "runs.csv", bootstrap=1000)
    print(law.report())
    done = [r for r in rows if r["status"] == "completed"]
    c_max = max(6 * r["params"] * r["tokens"] for r in done)
    big = max(done, key=lambda r: 6 * r["params"] * r["tokens"])
    n10, d10 = big["params"] * math.sqrt(10), big["tokens"] * math.sqrt(10)
    p = law.predict(n10, d10)
    bs = max(1, round(p["batch"] / BLOCK))
    print(f"\nlargest fitted C {c_max:.3g}; at 10x: N {n10:.3g}, D {d10:.3g}: fitted lr "
          f"{p['lr']:.4g} {p.get('lr_interval')}, batch {p['batch']:.4g} tokens = {bs} seqs")  # fmt: skip
    factors = ", ".join(f"{p['lr'] / LR * 2.0**k:.6g}" for k in range(-2, 3))
    design = (f"params = [{n10:.6g}]\ntokens = [{d10:.6g}]\nbatch_sizes = [{bs}]\n"
              f"lr_factors = [{factors}]")  # fmt: skip
    check = sweep(out, a.data, "check", design, a.workers)
    check = sorted((r for r in check if r["status"] == "completed"), key=lambda r: r["lr"])
    print("\n| lr | loss |\n|---|---|")
    for r in check:
        print(f"| {r['lr']:.4g} | {r['loss']:.4f} |")
    at = min(check, key=lambda r: abs(math.log(r["lr"] / p["lr"])))
    best = min(check, key=lambda r: r["loss"])
    n = check[0]["params"]
    print(f"\nthe 10x run (N {n}, D {check[0]['tokens']}): loss at the fitted lr {at['loss']:.4f}, "
          f"best of the grid {best['loss']:.4f} at lr {best['lr']:.4g}: "
          f"{100 * (at['loss'] / best['loss'] - 1):.2f}% above; {(time.perf_counter() - t0) / 60:.1f} min")  # fmt: skip


if __name__ == "__main__":
    main()
