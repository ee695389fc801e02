"""Fitting protocols for the Multi-Power Law on Luo et al.'s curves: what each changes.

    .venv/bin/python benchmarks/curve_protocols.py [--protocols default weights ...]

Every protocol fits the 3 `split=fit` curves of each model size (LR rebuilt
with `--lr-fill linear`) and predicts the 6 `split=test` ones; printed: Luo et
al.'s PredE / WorstE (%) per size and each held-out curve's mean signed error
(%; negative: predicted too low). Protocols:

- `default`: the law's defaults (Huber delta 1e-2); `delta3`: delta 1e-3;
- `w-inv`, `w-sqrtinv`, `w-sqrt`, `w-lin`: each fitted point weighted by
  1/t, 1/sqrt(t), sqrt(t), t (normalised to mean 1), so that early or late
  points count more than the uniform logging gives them;
- `from3000`, `from5000`: the fitted points before that step left out;
- `joint-...`: the three sizes fitted at once, the named parameters shared
  (e.g. `joint-beta,gamma`), the others per size;
- `oracle`: fitted on all 9 curves (held-out ones included): what the form
  can reach on the test curves, not a prediction.
"""

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from curve_laws import SIZES, table

from scalinglab.laws.curvelaws import MultiPower, curve_objective, predict_curve
from scalinglab.laws.fit import fit_best

WEIGHTS = {"w-inv": -1.0, "w-sqrtinv": -0.5, "w-sqrt": 0.5, "w-lin": 1.0}


class Joint:
    """Multi-power for several curve sets at once: `shared` parameters common to all."""

    def __init__(self, groups, shared, delta):
        self.base = MultiPower(delta=delta)
        self.delta = delta
        names = MultiPower.param_names
        sh = [names.index(s) for s in shared]
        own = [i for i in range(len(names)) if i not in sh]
        self.P = groups * len(own) + len(sh)
        self.idx = []
        for g in range(groups):
            m = np.empty(len(names), dtype=int)
            m[own] = np.arange(g * len(own), (g + 1) * len(own))
            m[sh] = np.arange(groups * len(own), self.P)
            self.idx.append(m)

    def prepare(self, groups):
        parts = [self.base.prepare(runs) for runs in groups]
        edges = np.cumsum([0] + [len(p["logL"]) for p in parts])
        return {
            "parts": parts,
            "slices": [slice(a, b) for a, b in itertools.pairwise(edges)],
            "logL": np.concatenate([p["logL"] for p in parts]),
            "drop": np.zeros(sum(len(p["drop"]) for p in parts)),  # sizes the chunks
        }

    def starts(self, ctx):
        out = np.zeros((8, self.P))
        for g, part in enumerate(ctx["parts"]):
            out[:, self.idx[g]] = self.base.starts(part)  # shared: the last size's grid
        return out

    def pred(self, ctx, th, grad=True):
        pred = np.empty((len(th), len(ctx["logL"])))
        dpred = np.zeros((self.P, *pred.shape)) if grad else None
        for g, (part, sl) in enumerate(zip(ctx["parts"], ctx["slices"], strict=True)):
            p, d = self.base.pred(part, th[:, self.idx[g]], grad)
            pred[:, sl] = p
            if grad:
                dpred[self.idx[g], :, sl] = d
        return pred, dpred


def minimise(form, ctx, weights):
    obj = curve_objective(form, ctx, weights[None, :])
    _res, out = fit_best(
        lambda th, rows: obj(th, rows, np.zeros(len(th), dtype=int)), form.starts(ctx), True, "fit"
    )
    return out["theta"]


def errors(params, held):
    form = MultiPower()
    rels = []
    for r in held:
        pred = predict_curve(form, params, r.steps, r.schedule("linear"))
        rels.append((pred - r.loss) / r.loss)
    pe = 100 * np.mean([np.mean(np.abs(x)) for x in rels])
    we = 100 * np.mean([np.max(np.abs(x)) for x in rels])
    signed = " ".join(
        f"{r.run_id}:{100 * np.mean(x):+.2f}" for r, x in zip(held, rels, strict=True)
    )
    return pe, we, signed


def point_weights(runs, scheme):
    w = np.concatenate([np.ones(len(s)) for s, _, _ in runs])
    t = np.concatenate([s for s, _, _ in runs]).astype(float)
    if scheme in WEIGHTS:
        w = t ** WEIGHTS[scheme]
    elif scheme.startswith("from"):
        w = (t >= float(scheme[4:])).astype(float)
    return w * len(w) / w.sum()


def run(protocol):
    delta = 1e-3 if protocol == "delta3" else 1e-2
    tabs = {s: table(s, "linear") for s in SIZES}
    fitted = {}
    t0 = time.process_time()
    if protocol.startswith("joint-"):
        groups = [
            [(r.steps, r.schedule("linear"), r.loss) for r in tabs[s].fit_runs] for s in SIZES
        ]
        form = Joint(len(SIZES), protocol[6:].split(","), delta)
        ctx = form.prepare(groups)
        th = minimise(form, ctx, np.ones(len(ctx["logL"])))
        for g, s in enumerate(SIZES):
            fitted[s] = {k: float(v[0]) for k, v in form.base.natural(th[form.idx[g]]).items()}
    else:
        for s in SIZES:
            src = tabs[s].runs if protocol == "oracle" else tabs[s].fit_runs
            runs = [(r.steps, r.schedule("linear"), r.loss) for r in src]
            form = MultiPower(delta=delta)
            th = minimise(form, form.prepare(runs), point_weights(runs, protocol))
            fitted[s] = {k: float(v[0]) for k, v in form.natural(th).items()}
    secs = time.process_time() - t0
    for s in SIZES:
        pe, we, signed = errors(fitted[s], tabs[s].held_runs)
        p = fitted[s]
        print(
            f"{protocol:<24}{s:<6}{pe:>7.3f}{we:>8.3f}   L0 {p['L0']:.3f} alpha {p['alpha']:.3f} "
            f"B {p['B']:.0f}   {signed}",
            flush=True,
        )
    print(f"{'':<24}CPU {secs:.1f} s", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--protocols",
        nargs="+",
        default=["default", "delta3", *WEIGHTS, "from3000", "from5000", "joint-beta,gamma",
                 "joint-C,beta,gamma", "joint-alpha", "joint-alpha,beta,gamma", "oracle"],
    )  # fmt: skip
    args = ap.parse_args()
    print(
        f"{'protocol':<24}{'size':<6}{'PredE':>7}{'WorstE':>8}   (signed mean error per test curve, %)"
    )
    for p in args.protocols:
        run(p)


if __name__ == "__main__":
    main()
