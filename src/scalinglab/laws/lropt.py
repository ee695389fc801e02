"""Fitted hyperparameter laws (`fit --law lr-opt`): the best learning rate and batch size
as power laws of the model size N, the data D, or the compute C.

From a runs table of learning-rate × batch grids at several (N, D) (a sweep of
`kind = "hparams"`, or any CSV with the columns below):

1. each (N, D) cell's optimum (runs of one N whose D are within 10% form one cell):
   the grid point of least loss, refined by the parabola in
   log lr through it and its two neighbours (at its batch), and likewise in log batch
   (at its lr); an optimum on the grid's edge stays the grid value and is flagged;
2. two forms fitted by least squares in logs:
   - Step Law (Li et al. 2025): lr*(N, D) = a · N^alpha · D^beta, B*(D) = b · D^gamma;
   - DeepSeek LLM (2024): lr*(C) = a · C^alpha, B*(C) = b · C^gamma, C = 6 N D;
3. intervals: percentiles of the same fits over bootstrap resamples of the cells.

The batch B is in tokens per optimizer step (batch_size × grad_accum × block_size).
Columns: params (or N), tokens (or D), lr, loss (or val_loss), batch_size,
block_size, grad_accum (1 when absent), and status (only `completed` rows count).
"""

import copy
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalinglab.errors import DataError
from scalinglab.laws.table import (
    find_column,
    is_missing,
    near_spans,
    number,
    raw_table,
    same_value,
)

FORMS = ("step", "deepseek")
KIND = "scalinglab.lr_opt_fit"
"""fit.json's kind for an lr-opt fit (a ScalingLaw's is scalinglab.fit: load_fit refuses it)."""
NAMES = {"N": ("params", "N"), "D": ("tokens", "D"), "loss": ("loss", "val_loss")}


@dataclass
class Cell:
    """One (N, D) cell's optimum."""

    N: float
    D: float
    lr: float
    batch: float
    loss: float
    runs: int
    edge: bool = False  # the best grid point is on the grid's edge in lr or in batch
    # grid points through the optimum: lrs at its batch size, batch sizes at its lr
    # (0: a fit.json written before they were recorded)
    lr_points: int = 0
    batch_points: int = 0

    @property
    def C(self) -> float:
        return 6.0 * self.N * self.D


def _col(header: list[str], key: str, where: str) -> str:
    """The column of `key` by its names (exact, then case-insensitive, as a runs table's)."""
    names = NAMES.get(key, (key,))
    found = find_column(header, key, None, names, where, "")
    if found is None:
        raise DataError(
            f"{where}: no {' or '.join(map(repr, names))} column (columns: {', '.join(header)})"
        )
    return found


def read_rows(source) -> list[dict]:
    """(N, D, lr, batch tokens, loss) of the completed runs of a runs table: a CSV path,
    a DataFrame, a dict of columns or a list of row dicts, as read_table takes.

    The table is read as a runs table is (laws.table.raw_table: a CSV's BOM, CR or CRLF
    line ends, blank rows and unnamed blank columns allowed); a bad cell is a DataError
    naming the row, its line and the column. A run whose loss is NaN or inf (diverged)
    is left out.
    """
    raw = raw_table(source)
    src, header = raw.source, raw.header
    cols = {k: _col(header, k, src) for k in ("N", "D", "loss", "lr", "batch_size")}
    block = find_column(header, "block_size", None, ("block_size",), src, "")
    if block is None:
        raise DataError(f"{src}: no 'block_size' column (the batch in tokens needs it)")
    accum = find_column(header, "grad_accum", None, ("grad_accum",), src, "")
    status = find_column(header, "status", None, ("status",), src, "")
    if status is not None:  # as the runs reader's default filter: an empty status is no run's
        statuses = sorted({str(r.get(status)) for r in raw.rows})
        raw.keep([same_value(r.get(status), "completed") for r in raw.rows])
        if not raw.rows and statuses:
            raise DataError(
                f"{src}: no row has status 'completed' (statuses: "
                f"{', '.join(map(repr, statuses[:5]))}{' ...' if len(statuses) > 5 else ''})"
            )
    rows = []
    for i, r in enumerate(raw.rows):
        v = {k: number(raw, i, c) for k, c in cols.items() if k != "loss"}
        v["loss"] = _loss(raw, i, cols["loss"])
        a = number(raw, i, accum) if accum is not None and not is_missing(r.get(accum)) else 1.0
        v["batch"] = v.pop("batch_size") * a * number(raw, i, block)
        if not math.isfinite(v["batch"]):  # logs of it are taken
            raise DataError(
                f"{raw.where(i)}: the batch in tokens (batch_size x grad_accum x block_size) "
                f"is {v['batch']:g}: out of range"
            )
        if math.isfinite(v["loss"]):
            rows.append(v)
    return rows


def _loss(raw, i: int, col: str) -> float:
    """Row i's loss: a number, NaN or inf (a diverged run, left out by the caller)."""
    value = raw.rows[i].get(col)
    if str(value).strip().lower() in ("nan", "inf", "+inf", "-inf", "infinity"):
        return math.nan
    return number(raw, i, col, positive=False)


def _mean_repeats(rows: list[dict]) -> list[dict]:
    """One row per (lr, batch) of a cell, its loss the mean of the seed repeats: two
    points at one lr made the parabola through three neighbours singular (the vertex
    fell back to the grid point, its intervals of zero width)."""
    by: dict = defaultdict(list)
    for r in rows:
        by[(r["lr"], r["batch"])].append(r)
    return [{**rs[0], "loss": float(np.mean([r["loss"] for r in rs]))} for rs in by.values()]


def _vertex(xs: list[float], ys: list[float], i: int) -> tuple[float, bool]:
    """The minimum of the parabola through points i-1, i, i+1 (xs sorted); the grid point
    itself when i is on the edge (second value True) or the parabola opens downwards."""
    if i == 0 or i == len(xs) - 1:  # a single value is no grid: its optimum is unknown too
        return xs[i], True
    x, y = np.array(xs[i - 1 : i + 2]), np.array(ys[i - 1 : i + 2])
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        return xs[i], False
    return float(np.clip(-b / (2 * a), x[0], x[2])), False


SAME_D = 0.1
"""Runs of one N whose D differ by less than this (relative) are one cell: a grid's D is
rounded to whole steps of each batch size, so its batch sizes give slightly different D."""


def _cells(rows: list[dict]) -> dict:
    """{(N, D): rows}, D the geometric mean of the cell's runs' D."""
    by_n: dict = defaultdict(list)
    for r in rows:
        by_n[r["N"]].append(r)
    groups = {}
    for n, rs in by_n.items():
        rs = sorted(rs, key=lambda r: r["D"])
        for a, b in near_spans([r["D"] for r in rs], SAME_D):
            c = rs[a:b]
            groups[(n, math.exp(np.mean([math.log(r["D"]) for r in c])))] = c
    return groups


def cell_optima(rows: list[dict]) -> list[Cell]:
    """Each (N, D) cell's optimum (see the module's docstring)."""
    groups = _cells(rows)
    cells = []
    for (n, d), runs in sorted(groups.items()):
        rs = _mean_repeats(runs)
        best = min(rs, key=lambda r: r["loss"])
        at_b = sorted((r for r in rs if r["batch"] == best["batch"]), key=lambda r: r["lr"])
        at_lr = sorted((r for r in rs if r["lr"] == best["lr"]), key=lambda r: r["batch"])
        lx = [math.log(r["lr"]) for r in at_b]
        log_lr, e1 = _vertex(lx, [r["loss"] for r in at_b], at_b.index(best))
        bx = [math.log(r["batch"]) for r in at_lr]
        log_b, e2 = _vertex(bx, [r["loss"] for r in at_lr], at_lr.index(best))
        cells.append(Cell(n, d, math.exp(log_lr), math.exp(log_b), best["loss"], len(runs),
                          e1 or e2, len(at_b), len(at_lr)))  # fmt: skip
    return cells


def _lstsq(cols: list[np.ndarray], y: np.ndarray) -> np.ndarray | None:
    """Least squares with an intercept; None when the columns cannot be told apart (a
    bootstrap resample whose N and D moved together)."""
    x = np.column_stack([np.ones_like(y), *cols])
    if np.linalg.matrix_rank(x) < x.shape[1] or np.linalg.cond(x) > 1e6:
        return None
    return np.linalg.lstsq(x, y, rcond=None)[0]


def _fit_form(cells: list[Cell], form: str) -> dict | None:
    """{'lr': (log a, exponents...), 'batch': (log b, exponent)} in logs; None when the
    cells cannot determine them."""
    lr = np.log([c.lr for c in cells])
    b = np.log([c.batch for c in cells])
    if form == "step":
        ln, ld = np.log([c.N for c in cells]), np.log([c.D for c in cells])
        out = {"lr": _lstsq([ln, ld], lr), "batch": _lstsq([ld], b)}
    else:
        lc = np.log([c.C for c in cells])
        out = {"lr": _lstsq([lc], lr), "batch": _lstsq([lc], b)}
    return None if any(v is None for v in out.values()) else out


def _named(form: str, coef: dict) -> dict:
    if form == "step":
        la, al, be = coef["lr"]
        lb, ga = coef["batch"]
        out = {"a": math.exp(la), "alpha": al, "beta": be, "b": math.exp(lb), "gamma": ga}
    else:
        la, al = coef["lr"]
        lb, ga = coef["batch"]
        out = {"a": math.exp(la), "alpha": al, "b": math.exp(lb), "gamma": ga}
    return {k: float(v) for k, v in out.items()}


def _coef(form: str, p: dict) -> dict:
    """_named's inverse: the coefficients in logs."""
    if form == "step":
        return {"lr": [math.log(p["a"]), p["alpha"], p["beta"]],
                "batch": [math.log(p["b"]), p["gamma"]]}  # fmt: skip
    return {"lr": [math.log(p["a"]), p["alpha"]], "batch": [math.log(p["b"]), p["gamma"]]}


@dataclass
class LrOptLaw:
    """Both forms fitted to one runs table; `predict(N, D)` gives lr and batch tokens."""

    cells: list[Cell]
    params: dict  # form -> {a, alpha, (beta,) b, gamma}
    intervals: dict = field(default_factory=dict)  # form -> {name: [lo, hi]}
    ci_level: float = 0.95
    boot: dict = field(default_factory=dict, repr=False)  # form -> list of coef dicts

    def predict(self, n: float, d: float, form: str = "step") -> dict:
        """{'lr', 'batch', 'lr_interval', 'batch_interval'} for a run of N params, D tokens."""
        point = self._at(self.params[form], n, d, form)
        out = {"form": form, "N": n, "D": d, "lr": point[0], "batch": point[1]}
        if self.boot.get(form):
            sims = np.array([self._at(_named(form, c), n, d, form) for c in self.boot[form]])
            q = [(1 - self.ci_level) / 2 * 100, (1 + self.ci_level) / 2 * 100]
            out["lr_interval"] = np.percentile(sims[:, 0], q).tolist()
            out["batch_interval"] = np.percentile(sims[:, 1], q).tolist()
        return out

    @staticmethod
    def _at(p: dict, n: float, d: float, form: str) -> tuple[float, float]:
        if form == "step":
            return p["a"] * n ** p["alpha"] * d ** p["beta"], p["b"] * d ** p["gamma"]
        c = 6.0 * n * d
        return p["a"] * c ** p["alpha"], p["b"] * c ** p["gamma"]

    def to_json(self) -> dict:
        """fit.json's object: a copy, so editing it leaves the law as it was."""
        return copy.deepcopy({
            "format_version": 1,
            "kind": KIND,
            "law": "lr-opt",
            "forms": {
                "step": "lr* = a N^alpha D^beta; B* = b D^gamma (tokens per step)",
                "deepseek": "lr* = a C^alpha; B* = b C^gamma (tokens per step), C = 6ND",
            },
            "params": self.params,
            "intervals": self.intervals,
            "ci_level": self.ci_level,
            "cells": [c.__dict__ | {"C": c.C} for c in self.cells],
            # the bootstrap fits, so `plan` gives intervals from fit.json alone
            "bootstrap": {f: [_named(f, c) for c in b] for f, b in self.boot.items()},
        })  # fmt: skip

    @classmethod
    def from_json(cls, d: dict, where: str = "fit.json") -> "LrOptLaw":
        """The law `to_json` wrote (its bootstrap fits included)."""
        if d.get("kind") != KIND:
            raise DataError(f"{where}: not an lr-opt fit (kind {d.get('kind')!r})")
        try:
            cells = [Cell(**{k: v for k, v in c.items() if k != "C"}) for c in d["cells"]]
            law = cls(cells, d["params"], d.get("intervals", {}), d.get("ci_level", 0.95))
            for form, draws in d.get("bootstrap", {}).items():
                law.boot[form] = [_coef(form, p) for p in draws]
        except (KeyError, TypeError) as exc:
            raise DataError(f"{where}: an lr-opt fit without {exc}") from None
        return law

    def report(self) -> str:
        pct = f"{100 * self.ci_level:g}%"
        lines = [f"lr-opt: {len(self.cells)} (N, D) cells, {sum(c.runs for c in self.cells)} "
                 f"runs; intervals: {pct} bootstrap over cells"]  # fmt: skip
        for form in FORMS:
            p, iv = self.params[form], self.intervals.get(form, {})
            lines.append(f"  {form}: " + self.to_json()["forms"][form])
            for k, v in p.items():
                band = f"  [{iv[k][0]:.4g}, {iv[k][1]:.4g}]" if k in iv else ""
                lines.append(f"    {k:6s} {v:.4g}{band}")
        lines.append("  cells (N, D, lr*, B* tokens, loss):")
        for c in self.cells:
            flag = "  (optimum on the grid's edge)" if c.edge else ""
            lines.append(f"    {c.N:.4g} {c.D:.4g} {c.lr:.4g} {c.batch:.4g} {c.loss:.4f}{flag}")
        return "\n".join(lines)


def load_lr_opt(path: str | Path) -> LrOptLaw:
    """An lr-opt fit.json (`fit --law lr-opt --out`)."""
    import json

    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read an lr-opt fit ({exc})") from None
    return LrOptLaw.from_json(d, str(path))


def fit_lr_opt(source, bootstrap: int = 1000, seed: int = 0, ci_level: float = 0.95) -> LrOptLaw:
    """Fit both forms to a runs table (a CSV path, DataFrame, dict of columns or list of
    row dicts, as read_table takes) or to rows as `read_rows` gives them."""
    parsed = isinstance(source, list | tuple) and all(
        isinstance(r, dict) and "batch" in r and "batch_size" not in r for r in source
    )
    rows = list(source) if parsed and source else read_rows(source)
    cells = cell_optima(rows)
    ns, ds = {c.N for c in cells}, {c.D for c in cells}
    if len(cells) < 3 or len(ns) < 2 or len(ds) < 2:
        raise DataError(
            f"lr-opt needs at least 3 (N, D) cells with 2 or more values of each of N and D; "
            f"got {len(cells)} cell(s), {len(ns)} N, {len(ds)} D"
        )
    for axis, what, k in (("lr_points", "learning rates", "batch size"),
                          ("batch_points", "batch sizes", "learning rate")):  # fmt: skip
        if all(0 < getattr(c, axis) < 3 for c in cells):  # one run a cell: the optimum was
            # the lr and batch that were run, fitted with a zero-width interval
            raise DataError(
                f"lr-opt: no (N, D) cell has 3 or more {what} at its best {k}, so no cell "
                f"finds an optimum between them, only the value that was run: sweep a grid "
                f"of {what} around the optimum in each cell"
            )
    fits = {form: _fit_form(cells, form) for form in FORMS}
    if fits["step"] is None:
        raise DataError("lr-opt: the cells' N and D move together; vary them apart")
    params = {form: _named(form, fits[form]) for form in FORMS}
    law = LrOptLaw(cells, params, ci_level=ci_level)
    rng = np.random.default_rng(seed)
    for form in FORMS:
        law.boot[form] = []
        for _ in range(bootstrap):
            coef = _fit_form([cells[i] for i in rng.integers(0, len(cells), len(cells))], form)
            if coef is not None:  # else a resample that cannot separate N from D
                law.boot[form].append(coef)
        if law.boot[form]:
            named = [_named(form, c) for c in law.boot[form]]
            q = [(1 - ci_level) / 2 * 100, (1 + ci_level) / 2 * 100]
            law.intervals[form] = {
                k: np.percentile([b[k] for b in named], q).tolist() for k in params[form]
            }
    return law
