"""Does the learning rate transfer? An LR grid (factors of 2) per shape and parametrisation.

Width (default): 2-layer GPTs of --widths (default 32, 128, 256; 4 heads) under --params
(default sp and mup; mup's base width --base-width, 32 by default: at the base width mup
is the sp model, so those runs are shared). Depth (`--depth`): width 64, depths 2 and 8
under mup (the control: no depth scaling) and completep (base depth 2).

Budget: equal tokens per parameter at every shape (issue 21's setting), --tpp tokens
per parameter (N counted by `models.counting`, embeddings included), so a wider model
trains proportionally more steps; `--tokens T` instead trains every shape on T tokens
(the equal-steps setting of the earlier records). Batch --batch sequences of --block
tokens, 2 x 64 by default: at 1 token per parameter that gives the width-32 model 279
steps (at batch 8 its 69 steps end on the bytes' unigram plateau, where the best LR is
seed noise). Byte-level Python standard library, float32, one thread per run, cosine
schedule, warmup 1/12 of the steps. --readout-mult sets mup's output multiplier at the
base shape (the model's `readout_mult`, 1 by default). --duration-power B also runs, at
each wider shape, the lr a sweep's `[hparams] duration_power = B` gives it: the first
shape's best LR x (D / D_first)^B, computed by the library's rule (`sweep.shapes.lr_for`
with rule "mup", ref_tokens = the first shape's D; "power" with lr_power 0 for sp): at
equal tokens per parameter the wider model trains longer, which μP does not carry (the
lr law's B).

The grid starts at 5 points around --centre and grows by a factor of 2 past an edge
until the best LR is inside it; `--lrs=E1,E2,...` trains exactly the lrs 2^E1, 2^E2, ...
at every shape instead (no growth: a wide shape's points chosen by hand, e.g. around the
lr the duration rule gives it, -8.737 at width 256). Prints the loss table (LR × shape) per parametrisation,
the best LR per shape, and the criterion of issue 21: the LR best at the smallest shape
is within one grid step of each shape's best, and its loss within 0.5% of that optimum.

    nice -n 15 python benchmarks/mup_transfer.py [--depth] [--widths 32,128,256]
        [--tpp 1 | --tokens T] [--batch 2] [--base-width 128] [--readout-mult 1]
        [--seeds S [--seeds-upto W]] [--duration-power 0.228] [--lrs=E1,E2,...]
        [--workers 2] [--out DIR]
        [--data SHARDS] [--report] [--rule-lr E]

Runs are kept in --out (default benchmarks/.mup_transfer, git-ignored); a rerun reuses
finished runs, so an interrupted benchmark continues, and `--report` prints the tables
of whatever runs are there (more seeds at some points than others included) without
training; `--rule-lr E --duration-power B` prints, training nothing, the lr the rule gives
each shape when the first shape's best is 2^E.
"""

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from scalinglab.config import ModelConfig, RunConfig, TrainConfig
from scalinglab.models.counting import count
from scalinglab.sweep.shapes import lr_for
from scalinglab.sweep.spec import HparamRule

HERE = Path(__file__).resolve().parent


def shapes(a) -> tuple[list[str], list[tuple[int, int]], dict]:
    """(parametrisations, [(n_embd, n_layer)], base shape)."""
    if a.depth:
        return ["mup", "completep"], [(64, 2), (64, 8)], {"base_width": 64, "base_depth": 2}
    widths = [int(w) for w in a.widths.split(",")]
    return a.params, [(w, 2) for w in widths], {"base_width": a.base_width, "base_depth": 2}


def same_model(param: str, width: int, layers: int, base: dict) -> str:
    """The plainest parametrisation that builds the same model at this shape: mup at the
    base width is sp, completep at the base depth is mup (their runs are shared)."""
    if param == "completep" and layers == base["base_depth"]:
        param = "mup"
    if param == "mup" and width == base["base_width"]:
        param = "sp"
    return param


def tokens(a, width: int, layers: int) -> int:
    """Training tokens of a run at this shape: --tokens, or --tpp x its parameter count."""
    if a.tokens:
        return a.tokens
    model = ModelConfig(n_layer=layers, n_embd=width, n_head=4, block_size=a.block)
    return round(a.tpp * count(model, 256).params)


def config(a, param: str, width: int, layers: int, base: dict, lr: float, seed: int) -> RunConfig:
    model = ModelConfig(n_layer=layers, n_embd=width, n_head=4, block_size=a.block,
                        param=param, readout_mult=a.readout_mult, **base)  # fmt: skip
    steps = max(1, tokens(a, width, layers) // (a.batch * a.block))
    train = TrainConfig(
        data=a.data, batch_size=a.batch, lr=lr, steps=steps, warmup=max(1, steps // 12),
        eval_tokens=a.eval_tokens, eval_every=0, log_every=50, dtype="float32", threads=1,
        ckpt_every=0, seed=seed,
    )  # fmt: skip
    return RunConfig(model=model, train=train)


def one(args) -> tuple[str, float]:
    cfg, folder = args
    result_file = Path(folder) / "result.json"
    if result_file.exists():
        r = json.loads(result_file.read_text())
        if r.get("status") in ("completed", "diverged"):
            return folder, r.get("val_loss", math.inf) if r["status"] == "completed" else math.inf
    from scalinglab.train import train

    r = train(cfg, folder)
    return folder, r["val_loss"] if r["status"] == "completed" else math.inf


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", action="store_true", help="depth 2 -> 8 (mup vs completep)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--base-width", type=int, default=128, help="width: mup's base width")
    ap.add_argument("--params", default="sp,mup", help="width: parametrisations compared")
    ap.add_argument("--tpp", type=float, default=1.0, help="training tokens per parameter")
    ap.add_argument("--tokens", type=int, default=0, help="equal tokens at every shape instead")
    ap.add_argument("--widths", default="32,128,256", help="width: the widths compared")
    ap.add_argument("--batch", type=int, default=2, help="sequences per step")
    ap.add_argument("--readout-mult", type=float, default=1.0, help="mup's output multiplier")
    ap.add_argument("--block", type=int, default=64)
    ap.add_argument("--eval-tokens", type=int, default=1 << 15)
    ap.add_argument("--seeds", type=int, default=1, help="seeds 1..S averaged per point")
    ap.add_argument(
        "--seeds-upto",
        type=int,
        default=0,
        help="average seeds only at widths up to this (default: every width)",
    )
    ap.add_argument("--centre", type=float, default=-7, help="log2 of the grid's centre LR")
    ap.add_argument(
        "--lrs",
        default="",
        metavar="E1,E2,...",
        help="train exactly the lrs 2^E at every shape (no grid growth); write --lrs=-9,-8.737",
    )
    ap.add_argument("--data", default="", help="byte shards (default: prepare the stdlib)")
    ap.add_argument("--out", default=str(HERE / ".mup_transfer"))
    ap.add_argument(
        "--duration-power",
        type=float,
        default=0.0,
        help="also run at each wider shape the first shape's best lr x (D / D_first)^B, "
        "the lr law's duration exponent (lr_law.md: 0.228); 0: off",
    )
    ap.add_argument(
        "--report",
        action="store_true",
        help="train nothing: the tables of the finished runs in --out (each point the mean "
        "of the seeds found there)",
    )
    ap.add_argument(
        "--rule-lr",
        type=float,
        default=None,
        metavar="E",
        help="train nothing: print the lr the duration rule gives each shape when the first "
        "shape's best is 2^E (with --duration-power)",
    )
    a = ap.parse_args()
    if a.rule_lr is not None:
        return print_rule(a)
    budget = f"tokens{a.tokens}" if a.tokens else f"tpp{a.tpp:g}-b{a.batch}"
    budget += f"-c{a.readout_mult:g}" if a.readout_mult != 1 else ""
    out = Path(a.out) / budget / ("depth" if a.depth else "width")
    out.mkdir(parents=True, exist_ok=True)
    if not a.data:
        from scalinglab.data.writer import prepare

        a.data = str(Path(a.out) / "shards")
        prepare("stdlib", out=a.data, tokenizer="byte")
    a.params = a.params.split(",")
    params, shape_list, base = shapes(a)
    if a.report:
        grid, loss, seeds = finished(out, params, shape_list, base)
        shape_list = [s for s in shape_list if all(grid[(p, s)] for p in params)]
        extra = horizon_points(a, params, shape_list, grid, loss, base)
        for (key, e), (val, n) in extra_losses(out, base, extra).items():
            loss[(key, e)], seeds[(key, e)] = val, n
        for key, n in sorted(seeds.items()):
            print(f"  {key[0][0]:9s} width {key[0][1][0]:4d} lr 2^{key[1]:<7g} seeds {n}")
        return report(params, shape_list, grid, loss, a, 0.0, extra)
    fixed = [exponent(e) for e in a.lrs.split(",")] if a.lrs else []
    start = fixed or range(int(a.centre) - 2, int(a.centre) + 3)
    grid = {(p, s): set(start) for p in params for s in shape_list}
    loss: dict = {}
    extra: dict = {}
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.workers, mp_context=get_context("spawn")) as pool:
        while True:
            todo = [(key, e) for key, es in grid.items() for e in sorted(es)
                    if (key, e) not in loss]  # fmt: skip
            todo += [(key, e) for key, e in extra.items() if (key, e) not in loss]
            if not todo:
                break
            jobs = []
            for (p, (w, nl)), e in todo:
                q, name = same_model(p, w, nl, base), run_name(p, w, nl, base, e)
                seeds = range(1, a.seeds + 1) if w <= (a.seeds_upto or w) else [1]
                jobs.append([(config(a, q, w, nl, base, 2.0**e, s),
                              str(out / (name + (f"-s{s}" if s > 1 else "")))) for s in seeds])  # fmt: skip
            # a run shared by two parametrisations (the same model) is trained once
            unique = {folder: cfg for runs in jobs for cfg, folder in runs}
            done = dict(pool.map(one, [(cfg, f) for f, cfg in unique.items()]))
            for (key, e), runs in zip(todo, jobs, strict=True):
                val = float(np.mean([done[folder] for _, folder in runs]))
                loss[(key, e)] = val
                print(f"  {key[0]:9s} width {key[1][0]:4d} depth {key[1][1]}  lr 2^{e:<7g}"
                      f" loss {val:.4f}  ({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
            if fixed:  # --lrs: exactly those points
                break
            for key, es in grid.items():  # grow past an edge that holds the best
                best = min(es, key=lambda e, k=key: loss[(k, e)])
                if best == min(es) and best > -16:
                    es.add(best - 1)
                if best == max(es) and best < 0:
                    es.add(best + 1)
            for p in params:  # the lr transferred from the first shape is run at every shape
                ref = {e: loss[k] for k in loss if k[0] == (p, shape_list[0]) for e in [k[1]]}
                best = min(ref, key=ref.get)
                for s in shape_list[1:]:
                    grid[(p, s)].add(best)
            extra = horizon_points(a, params, shape_list, grid, loss, base)
    report(params, shape_list, grid, loss, a, time.perf_counter() - t0, extra)


def horizon_rule(a, p: str, lr: float, ref: tuple[int, int], base: dict) -> HparamRule:
    """The sweeps' [hparams] rule of the duration points: `lr` tuned at shape `ref` on its
    tokens, × (D / D_ref)^--duration-power; "mup" (one lr at every width, the model's
    multipliers do the rest) for mup and completep, one lr at every width for sp."""
    return HparamRule(
        lr=lr, rule="power" if p == "sp" else "mup", lr_power=0.0,
        ref_width=ref[0] if p == "sp" else base["base_width"],
        duration_power=a.duration_power, ref_tokens=tokens(a, *ref),
    )  # fmt: skip


def print_rule(a) -> None:
    """--rule-lr: each shape's tokens and the lr of `horizon_rule` from 2^E at the first."""
    a.params = a.params.split(",")
    params, shape_list, base = shapes(a)
    for p in params:
        rule = horizon_rule(a, p, 2.0**a.rule_lr, shape_list[0], base)
        for w, nl in shape_list:
            lr = lr_for(rule, w, tokens(a, w, nl))
            print(f"{p:9s} width {w:4d} depth {nl}  D {tokens(a, w, nl):>9,}  "
                  f"lr 2^{math.log2(lr):.4f} = {lr:.5g}")  # fmt: skip


def horizon_points(a, params, shape_list, grid, loss, base) -> dict:
    """{(param, shape): log2 lr, to 3 decimals} of the duration rule at each wider shape:
    the lr `horizon_rule` gives a run of that shape's tokens ({} at --duration-power 0)."""
    if not a.duration_power:
        return {}
    out = {}
    for p in params:
        ref = shape_list[0]
        if not all(((p, ref), e) in loss for e in grid[(p, ref)]):
            continue
        best = min(on_grid(grid[(p, ref)]), key=lambda e, p=p: loss[((p, ref), e)])
        rule = horizon_rule(a, p, 2.0**best, ref, base)
        for s in shape_list[1:]:
            out[(p, s)] = round(math.log2(lr_for(rule, s[0], tokens(a, *s))), 3)
    return out


def extra_losses(out: Path, base: dict, extra: dict) -> dict:
    """{((param, shape), e): (mean loss, seeds)} of the duration points already run."""
    found = {}
    for (p, (w, nl)), e in extra.items():
        vals = seed_losses(out, run_name(p, w, nl, base, e))
        if vals:
            found[((p, (w, nl)), e)] = (float(np.mean(vals)), len(vals))
    return found


def seed_losses(out: Path, name: str) -> list[float]:
    """The losses of the finished runs of one point (seed 1 and any -s<k>), inf if diverged."""
    if not (out / name / "result.json").exists():
        return []
    vals = []
    for folder in [out / name, *sorted(out.glob(name + "-s*"))]:
        r = folder / "result.json"
        r = json.loads(r.read_text()) if r.exists() else {}
        if r.get("status") in ("completed", "diverged"):
            vals.append(r["val_loss"] if r["status"] == "completed" else math.inf)
    return vals


def exponent(text: str) -> float | int:
    """A log2 lr as the run folders name it: an int when whole, else 3 decimals."""
    e = round(float(text), 3)
    return int(e) if e == int(e) else e


def run_name(p: str, w: int, nl: int, base: dict, e: float) -> str:
    """The folder name of a grid point's seed-1 run (seed s adds -s<s>)."""
    q = same_model(p, w, nl, base)
    bw = f"-base{base['base_width']}" if q != "sp" else ""
    bd = f"-based{base['base_depth']}" if q == "completep" else ""
    return f"{q}{bw}{bd}-w{w}-l{nl}-lr2e{e:g}"


def finished(out: Path, params, shape_list, base) -> tuple[dict, dict, dict]:
    """(grid, loss, seeds) of the finished runs in `out`: every lr 2^E with a completed
    (or diverged: inf) seed-1 run, its loss the mean over the seeds found."""
    grid, loss, seeds = {}, {}, {}
    for p in params:
        for w, nl in shape_list:
            grid[(p, (w, nl))] = set()
            prefix = run_name(p, w, nl, base, 0)[:-1]  # the name up to its exponent
            found = {f.name[len(prefix) :].split("-s")[0] for f in out.glob(prefix + "*")}
            for e in sorted({exponent(t) for t in found}):
                vals = seed_losses(out, run_name(p, w, nl, base, e))
                if vals:
                    grid[(p, (w, nl))].add(e)
                    loss[((p, (w, nl)), e)] = float(np.mean(vals))
                    seeds[((p, (w, nl)), e)] = len(vals)
    return grid, loss, seeds


def on_grid(es) -> list:
    """The points of a grid of factors of 2 (whole exponents) among `es`; all if none is:
    a shape's best lr, and grid steps, are counted on the grid, not at the rule's points."""
    return [e for e in es if e == int(e)] or list(es)


def report(params, shape_list, grid, loss, a, seconds, extra=None):
    per = a.batch * a.block
    runs = ", ".join(f"w{w} L{nl}: {tokens(a, w, nl) // per} steps" for w, nl in shape_list)
    budget = f"{a.tokens} tokens per run" if a.tokens else f"{a.tpp:g} tokens per parameter"
    seeds = f"mean of seeds 1..{a.seeds}" + (f" up to width {a.seeds_upto}" if a.seeds_upto else "")
    if a.report:
        a.seeds, seeds = 2, "mean of the seeds listed above"
    print(f"\n{budget} (batch {a.batch} x block {a.block}; {runs}), eval on {a.eval_tokens} "
          f"val tokens; {seeds if a.seeds > 1 else 'seed 1'}; {seconds / 60:.1f} min")  # fmt: skip
    summary = {}
    for p in params:
        extra = extra or {}
        es = sorted(set().union(*(grid[(p, s)] for s in shape_list))
                    | {e for (q, sh), e in extra.items() if q == p and ((q, sh), e) in loss})  # fmt: skip
        head = "| lr | " + " | ".join(f"w{w} L{nl}" for w, nl in shape_list) + " |"
        print(f"\n--param {p}: validation loss\n{head}\n|" + "---|" * (len(shape_list) + 1))
        best = {s: min(on_grid(grid[(p, s)]), key=lambda e, s=s: loss[((p, s), e)])
                for s in shape_list}  # fmt: skip
        for e in es:
            cells = []
            for s in shape_list:
                v = loss.get(((p, s), e))
                cell = "" if v is None else f"{v:.4f}"
                cells.append(f"**{cell}**" if best[s] == e else cell)
            print(f"| 2^{e:g} = {2.0**e:.3g} | " + " | ".join(cells) + " |")
        ref = shape_list[0]
        e0 = best[ref]
        rows = []
        for s in shape_list[1:]:
            at = loss.get(((p, s), e0), math.inf)
            opt = loss[((p, s), best[s])]
            rows.append({"shape": s, "best": best[s], "steps_off": best[s] - e0,
                         "excess": at / opt - 1})  # fmt: skip
            print(f"{p}: best at {ref} is 2^{e0:g}; at {s} the best is 2^{best[s]:g} "
                  f"({best[s] - e0:+g} grid steps); loss at 2^{e0:g} is "
                  + (f"{100 * (at / opt - 1):.2f}% above that optimum"
                     if ((p, s), e0) in loss else "not run"))  # fmt: skip
            eh = extra.get((p, s))
            if eh is not None and ((p, s), eh) in loss:
                rows[-1]["duration_rule"] = {"log2_lr": eh, "excess": loss[((p, s), eh)] / opt - 1}
                print(f"{p}: with the duration rule ([hparams] duration_power = "
                      f"{a.duration_power:g}, x (D/D_first)^{a.duration_power:g}) the lr at "
                      f"{s} is 2^{eh:g}, {100 * (loss[((p, s), eh)] / opt - 1):+.2f}% against "
                      "that optimum")  # fmt: skip
        summary[p] = {"best": {f"w{w}-L{nl}": best[(w, nl)] for w, nl in shape_list},
                      "transfer": [{**r, "shape": list(r["shape"])} for r in rows]}  # fmt: skip
    print("\n" + json.dumps(summary))


if __name__ == "__main__":
    main()
