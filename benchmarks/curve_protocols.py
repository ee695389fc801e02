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
- `gamma=V`: gamma fixed at V (the other six parameters fitted);
- `dedup`: a checkpoint that a branch shares with the run it branched from
  (same step and loss: wsdcon_9 is constant_24000 until step 8000 at 100M and
  400M) counts once, not twice;
- `offset`: each independent training run of the fitted set (branches are one
  run) gets its own factor exp(o_r) on the predicted loss, the o_r summing to
  zero; held-out runs are predicted with o = 0 (the run-to-run offsets of the
  table's data taken out of the law's parameters);
- `oracle`: fitted on all 9 curves (held-out ones included): what the form
  can reach on the test curves, not a prediction.

`--cv` instead scores protocols on the *fit* split alone (no test curve is
read): leave-one-curve-out (fit 2 of the 3 curves, predict the third; its
mean |error| %) and half-to-rest (fit the 3 curves' points before step 12000,
predict their points from 12000 on), so that a setting can be chosen before
the test curves are looked at.
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
HALF = 12000  # --cv half-to-rest: fit before this step, predict from it on


class Fixed:
    """Multi-power with one parameter (index `i` of theta) held at `value`."""

    def __init__(self, i, value, delta):
        self.base = MultiPower(delta=delta)
        self.delta, self.i, self.value = delta, i, value
        self.keep = [j for j in range(len(MultiPower.param_names)) if j != i]

    def full(self, th):
        out = np.empty((len(th), len(MultiPower.param_names)))
        out[:, self.keep] = th
        out[:, self.i] = self.value
        return out

    def prepare(self, runs):
        return self.base.prepare(runs)

    def starts(self, ctx):
        return self.base.starts(ctx)[:, self.keep]

    def pred(self, ctx, th, grad=True):
        p, d = self.base.pred(ctx, self.full(th), grad)
        return p, (d[self.keep] if grad else None)


def branch_groups(runs):
    """The independent training run of each curve: a curve whose first 3 checkpoints
    (steps and losses) equal an earlier curve's is a branch of that run."""
    group = []
    for i, (s, _, L) in enumerate(runs):
        g = len(set(group))
        for j in range(i):
            sj, _, Lj = runs[j]
            if (
                len(s) > 3
                and len(sj) > 3
                and np.array_equal(s[:3], sj[:3])
                and (np.array_equal(L[:3], Lj[:3]))
            ):
                g = group[j]
                break
        group.append(g)
    return group


class Offset:
    """Multi-power times exp(o_r) per independent run r of the fitted set, sum of o_r = 0."""

    def __init__(self, runs, delta):
        self.base = MultiPower(delta=delta)
        self.delta = delta
        group = branch_groups(runs)
        self.G = len(set(group))
        self.of_point = np.concatenate(
            [np.full(len(s), g) for g, (s, _, _) in zip(group, runs, strict=True)]
        )
        self.M = np.zeros((self.G, self.G - 1))  # o = M @ free: the last is minus the others
        self.M[np.arange(self.G - 1), np.arange(self.G - 1)] = 1.0
        self.M[-1] = -1.0

    def prepare(self, runs):
        return self.base.prepare(runs)

    def starts(self, ctx):
        s = self.base.starts(ctx)
        return np.concatenate([s, np.zeros((len(s), self.G - 1))], axis=1)

    def pred(self, ctx, th, grad=True):
        p, d = self.base.pred(ctx, th[:, :7], grad)
        e = np.exp((th[:, 7:] @ self.M.T)[:, self.of_point])
        pred = p * e
        if not grad:
            return pred, None
        extra = [pred * self.M[self.of_point, j] for j in range(self.G - 1)]
        return pred, np.concatenate([d * e[None], np.array(extra).reshape(-1, *pred.shape)])


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
    elif scheme == "dedup":
        seen, k = set(), 0
        for g, (s, _, L) in zip(branch_groups(runs), runs, strict=True):
            for step, loss in zip(s, L, strict=True):
                w[k] = 0.0 if (g, step, loss) in seen else 1.0
                seen.add((g, step, loss))
                k += 1
    return w * len(w) / w.sum()


def fit_one(protocol, runs, delta):
    """The multi-power parameters {name: value} of one size's runs under `protocol`."""
    if protocol.startswith("gamma="):
        form = Fixed(MultiPower.param_names.index("gamma"), float(protocol[6:]), delta)
        th = form.full(minimise(form, form.prepare(runs), point_weights(runs, "")))[0]
    elif protocol == "offset":
        form = Offset(runs, delta)
        th = minimise(form, form.prepare(runs), point_weights(runs, ""))[:7]
    else:
        form = MultiPower(delta=delta)
        th = minimise(form, form.prepare(runs), point_weights(runs, protocol))
    return {k: float(v[0]) for k, v in MultiPower().natural(th).items()}


def abs_error(params, r, since=0):
    pred = predict_curve(MultiPower(), params, r.steps, r.schedule("linear"))
    keep = r.steps >= since
    return 100 * np.mean(np.abs(pred[keep] - r.loss[keep]) / r.loss[keep])


def cross_validate(protocol):
    """Leave-one-curve-out and half-to-rest errors on the fit split (no test curve read)."""
    delta = 1e-3 if protocol == "delta3" else 1e-2
    for s in SIZES:
        fit_runs = table(s, "linear").fit_runs
        loco = []
        for i, r in enumerate(fit_runs):
            rest = [
                (q.steps, q.schedule("linear"), q.loss) for j, q in enumerate(fit_runs) if j != i
            ]
            loco.append(abs_error(fit_one(protocol, rest, delta), r))
        early = []
        for q in fit_runs:
            k = q.steps < HALF
            early.append((q.steps[k], q.schedule("linear")[: q.steps[k][-1] + 1], q.loss[k]))
        p = fit_one(protocol, early, delta)
        half = [abs_error(p, q, HALF) for q in fit_runs if q.steps[-1] >= HALF]
        each = " ".join(f"{r.run_id}:{e:.3f}" for r, e in zip(fit_runs, loco, strict=True))
        print(
            f"{protocol:<24}{s:<6}{np.mean(loco):>7.3f}{np.mean(half):>8.3f}   LOCO {each}",
            flush=True,
        )


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
            fitted[s] = fit_one(protocol, runs, delta)
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
    ap.add_argument(
        "--cv", action="store_true",
        help="score the protocols on the fit split only: leave-one-curve-out and half-to-rest",
    )  # fmt: skip
    args = ap.parse_args()
    if args.cv:
        print(
            f"{'protocol':<24}{'size':<6}{'LOCO':>7}{'half':>8}   (mean |error| %, fit split only)"
        )
        for p in args.protocols:
            cross_validate(p)
        return
    print(
        f"{'protocol':<24}{'size':<6}{'PredE':>7}{'WorstE':>8}   (signed mean error per test curve, %)"
    )
    for p in args.protocols:
        run(p)


if __name__ == "__main__":
    main()
