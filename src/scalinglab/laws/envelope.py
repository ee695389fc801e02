"""The envelope of training curves (Hoffmann et al. 2022, Approach 1).

Input: loss curves of many runs — a long-format CSV (one row per logged step:
a run id column, N, tokens, flops, loss) or run folders (metrics.jsonl with
`tokens`, `flops`, `val_loss`; result.json with `params`). On `points`
log-spaced compute values between the smallest and largest logged FLOPs, each
run's loss is interpolated (linearly in log C, only inside the run's own
range); at each C the run with the lowest loss, among at least 2 covering
runs, gives N_opt(C) = its N and D_opt(C) = its tokens at C. Straight lines in
log-log then give N_opt = k_N·C^a and D_opt = k_D·C^b. The bootstrap resamples
whole runs (curves), as the issue asks for curve data.
"""

import json
import math
from pathlib import Path

import numpy as np

from scalinglab import runfolder
from scalinglab.errors import DataError, FitError
from scalinglab.laws.isoflop import loglog_fit
from scalinglab.laws.table import (
    ALIASES,
    RunsTable,
    cell_matches,
    check_completed,
    find_column,
    numbers,
    parse_where,
    raw_csv,
    run_name,
)


class Curves:
    """Loss curves: per run, N and arrays of (flops, tokens, loss) sorted by flops."""

    def __init__(self, runs, source, columns=None, notes=()):
        self.runs = runs  # list of (run_id, N, flops, tokens, loss)
        self.source = source
        self.columns = columns or {}
        self.notes = list(notes)  # what the reader left out, for the fit's warnings

    def points(self) -> RunsTable:
        """Every logged point of every run as a row (N, D, C, L): the table warn.table_checks
        reads (a loss in other units, tokens in billions, rows listed twice)."""
        n = [np.full(len(r[2]), r[1]) for r in self.runs]
        cols = [np.concatenate(c) if c else np.array([]) for c in
                (n, *([r[k] for r in self.runs] for k in (3, 2, 4)))]  # fmt: skip
        return RunsTable(*cols, source=self.source, conventions=dict(self.columns))


def read_curves_csv(path, run_cols=("run_id",), n_col=None, d_col=None, c_col=None, loss_col=None,
                    where=()):  # fmt: skip
    """`where`: --where filters (parse_where's strings). As the runs and curves readers, a
    `status` column keeps the completed runs' rows unless `where` names it: a diverged or
    failed run's curve ends in no valid loss, and a run still going is cut short."""
    path = Path(path)
    raw = raw_csv(path)
    header = raw.header
    for col in run_cols:
        if col not in header:
            raise DataError(
                f"{path}: --run-col {col!r}: no such column (columns: {', '.join(header)})"
            )
    conds, notes = parse_where(where), []
    given = len(conds)  # the filters after these are the default's
    for col, op, val in conds:
        if col not in header:
            raise DataError(
                f"{path}: --where {col}{op}{val}: no column {col!r} (columns: {', '.join(header)})"
            )
    status = find_column(header, "status", None, ("status",), path, "")
    if status is not None and not any(c == status for c, _, _ in conds):
        check_completed(raw.rows, status, path)
        conds.append((status, "=", "completed"))
    for k, cond in enumerate(conds):
        before = len(raw.rows)
        raw.keep([cell_matches(r[cond[0]], cond, raw.where(i)) for i, r in enumerate(raw.rows)])
        if not raw.rows:
            shown = " ".join("".join(c) for c in conds[: k + 1])
            raise DataError(f"{path}: no rows left after --where {shown}")
        if k >= given and len(raw.rows) < before:
            notes.append(
                f"the default filter {status}=completed left out {before - len(raw.rows)} "
                f"rows (runs not completed); --where {status}=VALUE picks others"
            )
    rows = raw.rows
    cols = {
        "N": find_column(header, "N", n_col, ALIASES["N"], path, "--n-col"),
        "D": find_column(header, "D", d_col, ALIASES["D"], path, "--d-col"),
        "C": find_column(header, "C", c_col, ALIASES["C"], path, "--c-col"),
        "L": find_column(header, "L", loss_col, ALIASES["L"], path, "--loss-col"),
    }
    for k, flag in (("N", "--n-col"), ("C", "--c-col"), ("L", "--loss-col")):
        if cols[k] is None:
            raise DataError(f"{path}: envelope needs a {k} column; name it with {flag}")
    vals = {k: numbers(raw, c) for k, c in cols.items() if c is not None}
    if "D" not in vals:
        vals["D"] = vals["C"] / (6 * vals["N"])
    ids, keys, first = [], {}, {}
    for i, r in enumerate(rows):
        rid = run_name(tuple(r[c] for c in run_cols), keys, raw.where(i), run_cols)
        j = first.setdefault(rid, i)
        if not math.isclose(vals["N"][i], vals["N"][j], rel_tol=1e-9):  # a wrong --run-col
            raise DataError(
                f"{raw.where(i)}: --run-col {', '.join(run_cols)}: run {rid!r} has N "
                f"{vals['N'][j]:g} on line {raw.lines[j]} and N {vals['N'][i]:g} here; a run's "
                "points share one model size: give the column (or columns) that name one run"
            )
        ids.append(rid)
    runs, twice = [], []
    for rid in dict.fromkeys(ids):
        m = np.array([i == rid for i in ids])
        c, d, loss, dropped = lowest_at_each_c(vals["C"][m], vals["D"][m], vals["L"][m])
        runs.append((rid, float(vals["N"][m][0]), c, d, loss))
        if dropped:
            twice.append((rid, dropped))
    if twice:
        notes.append(
            f"{path}: {sum(k for _, k in twice)} points of {len(twice)} runs share a run's C "
            f"with another of another loss (run {twice[0][0]!r}: {twice[0][1]}): a point of one "
            "N and D measured twice, or two runs the --run-col columns do not tell apart; the "
            "envelope keeps the lowest loss at each C, as it does across runs"
        )
    columns = {k: v if v else "C/(6N)" for k, v in cols.items()}
    columns = {**columns, "run": "/".join(run_cols), "filters": ["".join(c) for c in conds]}
    return Curves(runs, str(path), columns, notes)


def read_run_folders(folders):
    """The curves of the completed runs among `folders` (a diverged or failed run's curve
    ends in no valid loss, a run still going is cut short); the others are named in a note."""
    runs, skipped = [], []
    for folder in map(Path, folders):
        res, met = folder / runfolder.RESULT, folder / runfolder.METRICS
        if not res.is_file() or not met.is_file():
            raise DataError(f"{folder}: a run folder needs result.json and metrics.jsonl")
        result = runfolder.read_result(folder)
        if result is None:
            raise DataError(f"{res}: not a JSON object")
        if result.get("status") != "completed":  # as the runs table's default filter
            skipped.append(f"{folder.name} ({result.get('status')})")
            continue
        # N: the trainer's own count, else the sweep's planned N (as the runs table does)
        N = result.get("params")
        if N is None:
            N = runfolder.read_sweep_meta(folder).get("planned", {}).get("params")
        try:
            N = float(N)
        except (ValueError, TypeError):
            raise DataError(
                f"{res}: no numeric 'params', and no planned params in its {runfolder.SWEEP_JSON}"
            ) from None
        pts = []
        # line numbers: strict reading raises on any skipped line but a torn last one
        for i, rec in enumerate(runfolder.read_metrics(folder, strict=True), 1):
            loss = rec.get("val_loss")
            if isinstance(loss, float) and not math.isfinite(loss):
                loss = None  # as scalinglab's trainer writes it: null
            if loss is not None and rec.get("flops") and rec.get("tokens"):
                pts.append(
                    tuple(_positive(rec, k, met, i) for k in ("flops", "tokens", "val_loss"))
                )
        if pts:  # a final eval at a periodic eval's step: the final (whole split) wins
            a = np.array(pts[::-1])  # the last record first: the final evaluation's
            c, first = np.unique(a[:, 0], return_index=True)
            runs.append((folder.name, N, c, a[first, 1], a[first, 2]))
    if not runs:
        if skipped and len(skipped) == len(folders):
            raise DataError(f"no run folder is completed: {', '.join(skipped[:5])}"
                            f"{' ...' if len(skipped) > 5 else ''}")  # fmt: skip
        raise DataError(
            "no run folder has val_loss records with their flops and tokens in metrics.jsonl "
            "(a record needs all three)"
        )
    source = ", ".join(map(str, folders[:3])) + (" ..." if len(folders) > 3 else "")
    columns = {"N": "result.json params (else planned)", "D": "tokens", "C": "flops",
               "L": "val_loss"}  # fmt: skip
    notes = [f"left out {len(skipped)} run folders not completed: {', '.join(skipped[:5])}"
             f"{' ...' if len(skipped) > 5 else ''}"] if skipped else []  # fmt: skip
    return Curves(runs, source, columns, notes)


def lowest_at_each_c(c, d, loss):
    """A curve's points sorted by C, one at each C: where several share a C (the same N
    and D measured twice, or two runs under one name) the lowest loss, as the envelope
    takes across runs (np.interp over a repeated C of two losses is undefined); a point
    repeated whole stays. Returns (c, d, loss, the number of points left out)."""
    o = np.lexsort((loss, c))
    c, d, loss = c[o], d[o], loss[o]
    first = np.r_[True, c[1:] != c[:-1]]
    lowest = loss[np.maximum.accumulate(np.where(first, np.arange(len(c)), 0))]
    keep = loss == lowest  # a row repeated whole stays: the table checks name it
    return c[keep], d[keep], loss[keep], int(np.sum(~keep))


def _positive(rec: dict, key: str, path, line: int) -> float:
    """rec[key] as a float; DataError naming the file, line and key when it is not a
    finite positive number (another trainer's string, list, NaN or negative count)."""
    v = rec[key]
    if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and v > 0):
        raise DataError(f"{path}: line {line}: {key} is {json.dumps(v)}, not a positive number")
    return float(v)


def _interp_matrix(curves, grid):
    """Loss and tokens of each run at each grid compute (inf / nan outside the run's range)."""
    lg = np.log(grid)
    M = np.full((len(curves.runs), len(grid)), np.inf)
    T = np.full_like(M, np.nan)
    for i, (_, _, c, d, loss) in enumerate(curves.runs):
        inside = (lg >= np.log(c[0])) & (lg <= np.log(c[-1]))
        M[i, inside] = np.interp(lg[inside], np.log(c), loss)
        T[i, inside] = np.exp(np.interp(lg[inside], np.log(c), np.log(d)))
    return M, T


def fit_envelope(curves, *, points=100, bootstrap=0, seed=0, chunk=50):
    runs = curves.runs
    if len(runs) < 2 or len({r[1] for r in runs}) < 2:
        raise FitError(f"{curves.source}: envelope needs curves of at least 2 model sizes")
    cmin = min(r[2][0] for r in runs)
    cmax = max(r[2][-1] for r in runs)
    grid = np.exp(np.linspace(np.log(cmin), np.log(cmax), points))
    M, T = _interp_matrix(curves, grid)
    Ns = np.array([r[1] for r in runs])
    rng = np.random.default_rng(seed)
    include = [np.ones((1, len(runs)), dtype=bool)]
    for start in range(0, bootstrap, chunk):
        k = min(chunk, bootstrap - start)
        counts = rng.multinomial(len(runs), np.full(len(runs), 1 / len(runs)), size=k)
        include.append(counts > 0)
    inc = np.vstack(include)
    a = np.empty(len(inc))
    b, kN, kD = np.empty_like(a), np.empty_like(a), np.empty_like(a)
    logC = np.log(grid)
    for s in range(0, len(inc), chunk):
        inc_s = inc[s : s + chunk]
        Mr = np.where(inc_s[:, :, None], M[None], np.inf)  # (r, runs, G)
        win = Mr.argmin(axis=1)
        cover = np.isfinite(Mr).sum(axis=1) >= 2
        nopt = np.where(cover, Ns[win], np.nan)
        dopt = np.where(
            cover, np.take_along_axis(np.broadcast_to(T, Mr.shape), win[:, None], 1)[:, 0], np.nan
        )
        a[s : s + chunk], ci = loglog_fit(logC, np.log(nopt))
        b[s : s + chunk], cd = loglog_fit(logC, np.log(dopt))
        kN[s : s + chunk], kD[s : s + chunk] = np.exp(ci), np.exp(cd)
        if s == 0:
            n_env = int(cover[0].sum())
            winners = Ns[win[0][cover[0]]]
    warnings = []
    if n_env < 3:
        raise FitError(f"{curves.source}: envelope: fewer than 3 compute values covered by 2+ runs")
    edge = np.mean((winners == Ns.max()) | (winners == Ns.min()))
    if edge > 0.5:
        warnings.append(
            f"the envelope is won by the smallest or largest model at {edge:.0%} of the compute "
            "values: N_opt is censored by the range of sizes trained"
        )
    core = {"a": a, "b": b, "k_N": kN, "k_D": kD}
    return {
        "point": {k: float(v[0]) for k, v in core.items()},
        "samples": {k: v[1:] for k, v in core.items()} if bootstrap else None,
        "n_points": n_env,
        "n_runs": len(runs),
        "warnings": warnings,
    }
