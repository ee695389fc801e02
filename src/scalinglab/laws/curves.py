"""Curve tables: loss curves of many runs in one long CSV, and the LR at every step.

One row per logged point: a run id (one or more `--run-col` columns, joined by
'/'), the step (`--step-col`, default `step`), the learning rate at that step
(`--lr-col`, default `lr`) and the loss (`--loss-col`, default as for runs
tables). `--where` keeps rows, the points fitted (a kept run's left-out rows still
give its LR history: `_lr_history`); `--holdout-where` holds runs out of the fit:
a run is held out whole when any of its rows matches, so none of its
checkpoints reaches the fit (tests/laws/test_curves.py proves it).

The curve laws need η at every step 0..t, the table gives it only at logged
steps. `lr_at_every_step` rebuilds it:
- before the first logged step s0: a linear ramp from 0 at step 0 to the LR
  logged at s0 (a linear warmup that ends at s0);
- between logged steps, `lr_fill = linear` (the default) interpolates linearly;
  `auto` does too, except across an isolated jump: an interval whose LR change
  is more than 10× the change in each neighbouring interval is a step drop (or
  rise), placed at the interval's midpoint; `previous` holds the last logged
  value until the next (a step schedule).
The cost, measured on Luo et al.'s curves against their exact schedules, is in
benchmarks/results/curve_laws.md.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalinglab.errors import ConfigError, DataError
from scalinglab.laws.schedules import MAX_STEPS, Schedule
from scalinglab.laws.table import (
    ALIASES,
    RawTable,
    cell_matches,
    check_completed,
    find_column,
    joined_name,
    not_a_number,
    parse_where,
    raw_csv,
    run_name,
    same_value,
)

LR_FILLS = ("linear", "auto", "previous")
JUMP = 10.0  # an interval whose LR change is JUMP× its neighbours' is a step drop


@dataclass
class Run:
    """One run's curve: logged steps (increasing), the LR and loss logged there."""

    run_id: str
    steps: np.ndarray
    lr: np.ndarray
    loss: np.ndarray
    held_out: bool = False
    rows: list = field(default_factory=list)  # 1-based data rows of the CSV
    lines: list = field(default_factory=list)  # their lines in the file (blank rows skipped)
    lr_full: np.ndarray | None = None  # the LR at every step 0..steps[-1], when known
    # (steps, LR) of every row of the run up to its last point, where --where left some
    # out: the run's LR history, of which its points are a part
    lr_rows: tuple | None = None

    def schedule(self, fill="linear"):
        """The LR at every step 0..steps[-1]: the known one, else rebuilt from the logged LR."""
        if self.lr_full is not None:
            return self.lr_full
        steps, lrs = self.lr_rows if self.lr_rows is not None else (self.steps, self.lr)
        return lr_at_every_step(steps, lrs, fill)


@dataclass
class CurveTable:
    runs: list
    source: str = "<memory>"
    sha256: str = ""
    conventions: dict = field(default_factory=dict)
    # rows of the CSV, and (filter, rows it removed): named when too few points are left
    rows_read: int | None = None
    removed: list = field(default_factory=list)

    @property
    def fit_runs(self):
        return [r for r in self.runs if not r.held_out]

    @property
    def held_runs(self):
        return [r for r in self.runs if r.held_out]


def _number(raw, where, positive=True):
    try:
        v = float(raw)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {not_a_number(raw)}") from None
    if not np.isfinite(v) or (v <= 0 if positive else v < 0):
        raise DataError(f"{where}: {raw!r} must be a finite number {'> 0' if positive else '>= 0'}")
    return v


def read_rows(path) -> RawTable:
    """A curves CSV's header and rows, read as a runs table is (laws.table.raw_csv: a
    BOM, CR or CRLF line ends, blank rows and unnamed blank columns allowed)."""
    return raw_csv(Path(path))


def read_curve_table(
    path,
    *,
    run_cols=("run_id",),
    step_col="step",
    lr_col="lr",
    loss_col=None,
    where=(),
    holdout_where=(),
    schedule_col=None,
) -> CurveTable:
    """Read a long-format curves CSV into runs; held-out runs are marked, never mixed in.

    With `schedule_col`, each run's LR at every step is its schedule spec (the column's
    value, the same on every row of the run) and the lr column may be absent; a run
    whose spec is empty has its LR rebuilt from the lr column."""
    raw = read_rows(path)
    path, header, rows = Path(path), raw.header, raw.rows
    line = dict(zip(raw.index, raw.lines, strict=True))  # a data row's line in the file
    named = [(c, "--run-col") for c in run_cols] + [(step_col, "--step-col")]
    if schedule_col is not None:
        named.append((schedule_col, "--schedule-col"))
    if schedule_col is None or lr_col in header:
        named.append((lr_col, "--lr-col"))
    for col, flag in named:
        if col not in header:
            raise DataError(
                f"{path}: {flag} {col!r}: no such column (columns: {', '.join(header)})"
            )
    lcol = find_column(header, "L", loss_col, ALIASES["L"], path, "--loss-col")
    if lcol is None:
        raise DataError(
            f"{path}: no loss column (looked for {', '.join(map(repr, ALIASES['L']))}); "
            "name it with --loss-col"
        )
    conds = parse_where(where)
    given = len(conds)
    # as the runs reader: a diverged or failed run's last points are no valid loss, and a
    # run still going is a curve cut short; `--where status=...` picks others
    status = find_column(header, "status", None, ("status",), path, "")
    if status is not None and not any(c == status for c, _, _ in conds):
        check_completed(rows, status, path)
        conds.append((status, "=", "completed"))
    held_conds = parse_where(holdout_where, "--holdout-where")
    for flag, group in (("--where", conds), ("--holdout-where", held_conds)):
        for col, op, val in group:
            if col not in header:
                raise DataError(
                    f"{path}: {flag} {col}{op}{val}: no column {col!r} "
                    f"(columns: {', '.join(header)})"
                )
    groups: dict[str, list] = {}
    keys: dict[str, tuple] = {}
    held: set[str] = set()
    hits = [0] * len(held_conds)
    by_status = 0  # rows only the default status filter took out
    left_out = []  # rows only --where took out: their LR may be a kept run's
    for i, row in zip(raw.index, rows, strict=True):
        at = f"{path}: row {i} (line {line[i]})"
        if not all(cell_matches(row[c[0]], c, at) for c in conds[given:]):
            by_status += all(cell_matches(row[c[0]], c, at) for c in conds[:given])
            continue
        if not all(cell_matches(row[c[0]], c, at) for c in conds[:given]):
            left_out.append((i, row))
            continue
        rid = run_name(tuple(row[c] for c in run_cols), keys, at, run_cols)
        groups.setdefault(rid, []).append((i, row))
        hit = [cell_matches(row[c[0]], c, at, "--holdout-where") for c in held_conds]
        hits = [h + k for h, k in zip(hits, hit, strict=True)]
        if any(hit):
            held.add(rid)
    if not groups:
        raise DataError(
            f"{path}: no rows left after --where {' '.join(f'{c}{o}{v}' for c, o, v in conds)}"
        )
    for w, h in zip(holdout_where or (), hits, strict=True):
        if not h:  # a misspelt value held out nothing, and the fit took the test runs in
            after = f" after --where {' '.join(where)}" if where else ""
            raise DataError(f"{path}: --holdout-where {w} matches no row{after}")
    others: dict[str, list] = {}
    for i, row in left_out:
        rid = joined_name(tuple(row[c] for c in run_cols))
        if rid in groups:
            others.setdefault(rid, []).append((i, row))
    runs = []
    for rid, items in groups.items():
        steps, lrs, losses, nums = [], [], [], []
        for i, row in items:
            at = f"{path}: row {i} (line {line[i]})"
            step = _number(row[step_col], f"{at}, column {step_col!r}", positive=False)
            if step != int(step):
                raise DataError(f"{at}, column {step_col!r}: {row[step_col]!r} is not a whole step")
            if step >= MAX_STEPS:  # the LR at every step up to it: 8 bytes a step
                raise DataError(
                    f"{at}, column {step_col!r}: step {row[step_col]} is beyond {MAX_STEPS:,}: "
                    "curve laws take optimizer steps, not tokens"
                )
            steps.append(int(step))
            if lr_col in row:
                if schedule_col is not None and not row[lr_col].strip():
                    lrs.append(np.nan)  # not needed where the run's schedule is given
                else:
                    lrs.append(_number(row[lr_col], f"{at}, column {lr_col!r}", positive=False))
            losses.append(_number(row[lcol], f"{at}, column {lcol!r}"))
            nums.append(i)
        order = np.argsort(steps, kind="stable")
        s = np.array(steps)[order]
        dup = np.flatnonzero(np.diff(s) == 0)
        if dup.size:
            a, b = nums[order[dup[0]]], nums[order[dup[0] + 1]]
            raise DataError(
                f"{path}: run {rid!r} logs step {s[dup[0]]} twice (rows {a} and {b}); "
                "rows of several runs? name the columns that tell them apart with --run-col "
                "(repeatable), or keep one with --where"
            )
        run = Run(
            rid,
            s,
            np.array(lrs)[order] if lrs else np.full(len(s), np.nan),
            np.array(losses)[order],
            held_out=rid in held,
            rows=[nums[j] for j in order],
            lines=[line[nums[j]] for j in order],
        )
        if lr_col in header:
            run.lr_rows = _lr_history(path, run, items, others.get(rid, ()), conds[:given],
                                      step_col, lr_col, line)  # fmt: skip
        if schedule_col is not None:
            run.lr_full = _given_schedule(path, rid, items, schedule_col, s[-1], line)
            if run.lr_full is not None:
                _check_logged_lr(path, run, lr_col, schedule_col)
            if run.lr_full is None and not lrs:
                raise DataError(
                    f"{path}: run {rid!r} has no schedule in {schedule_col!r} "
                    f"and there is no {lr_col!r} column to rebuild its LR from"
                )
            if run.lr_full is None and np.isnan(run.lr).any():
                i = run.rows[int(np.flatnonzero(np.isnan(run.lr))[0])]
                raise DataError(
                    f"{path}: row {i} (line {line[i]}), column {lr_col!r}: empty, and run "
                    f"{rid!r} has no schedule in {schedule_col!r} to take the LR from"
                )
        runs.append(run)
    conv = {
        "source": str(path),
        "run": "/".join(run_cols),
        "step": step_col,
        "lr": lr_col if schedule_col is None else f"schedule from {schedule_col!r}",
        "L": lcol,
        "filters": [f"{c[0]}{c[1]}{c[2]}" for c in conds],
        "holdout": [f"{c[0]}{c[1]}{c[2]}" for c in held_conds],
    }
    kept = sum(len(r.steps) for r in runs)
    held_rows = sum(len(r.steps) for r in runs if r.held_out)
    removed = [(f"--where {' '.join(where)}", len(rows) - kept - by_status)] if where else []
    if len(conds) > given:  # the default status filter: the rows --where kept that it took
        removed.append((f"the default filter {conds[given][0]}=completed", by_status))
    removed.append((f"--holdout-where {' '.join(holdout_where or ())}", held_rows))
    return CurveTable(runs, str(path), raw.sha256, conv, rows_read=len(rows), removed=removed)


def _lr_history(path, run, items, others, conds, step_col, lr_col, line):
    """(steps, LR) of the run's LR history where --where left some of its rows out, else
    None: the rows out of the fit are still the run's steps (`--where 'step>=500'` fits
    the points from step 500 on, with the LR of steps 0..499 as logged; rebuilt from the
    kept rows alone, the LR before them was a ramp from 0, and a fit of a warmup and a
    plateau read as a warmup to step 500 found L0 0 for 2.07).

    A left-out row is the run's where it agrees with the run's kept rows on every --where
    column that has one value on all of them (a model, a split: rows of another model
    under the same run name are not this run's); the step column tells points apart, never
    runs. Rows after the run's last point, or whose step or LR is no number, are not read."""
    same = {}
    for col, _, _ in conds:
        values = {row[col] for _, row in items}
        if col != step_col and len(values) == 1:
            same[col] = values.pop()
    history = {int(st): lr for st, lr in zip(run.steps, run.lr, strict=True)}
    first = {int(st): i for st, i in zip(run.steps, run.rows, strict=True)}
    for i, row in others:
        if not all(same_value(row[col], v) for col, v in same.items()):
            continue
        try:
            step, lr = float(row[step_col]), float(row[lr_col])
        except (TypeError, ValueError):
            continue
        if not (np.isfinite(step) and step == int(step) and 0 <= step <= run.steps[-1]):
            continue
        if not (np.isfinite(lr) and lr >= 0):
            continue
        step = int(step)
        if step in history and not np.isclose(history[step], lr, rtol=1e-9, atol=0):
            raise DataError(
                f"{path}: run {run.run_id!r} logs step {step} twice with LR {history[step]:g} "
                f"and {lr:g} (rows {first[step]} and {i}, line {line[i]}): rows of several "
                "runs? name the columns that tell them apart with --run-col"
            )
        history.setdefault(step, lr)
        first.setdefault(step, i)
    if len(history) == len(run.steps):
        return None
    steps = np.array(sorted(history))
    return steps, np.array([history[st] for st in steps])


def _check_logged_lr(path, run, lr_col, schedule_col) -> None:
    """Refuse an lr column that contradicts the run's schedule spec: the spec was fitted and
    the column ignored without a word (a spec 10x the logged LR fitted alpha 0.59 for 0.4).
    A logged LR agrees where it is within 1% of the spec's at its step or a step either
    side (trainers log the LR of the step before or after)."""
    full = run.lr_full
    for j, (step, lr) in enumerate(zip(run.steps, run.lr, strict=True)):
        if np.isnan(lr):
            continue
        near = full[max(step - 1, 0) : step + 2]
        if not np.any(np.isclose(near, lr, rtol=1e-2, atol=1e-12)):
            i = run.rows[j]
            raise DataError(
                f"{path}: row {i} (line {run.lines[j]}), run {run.run_id!r}, step {step}: "
                f"column {lr_col!r} logs LR {lr:g} where the schedule in {schedule_col!r} "
                f"gives {full[step]:g}: one of them is not the run's (leave {lr_col!r} empty "
                "where the schedule is right)"
            )


def _given_schedule(path, rid, items, col, last, line):
    """A run's LR at steps 0..last from its schedule spec (one value on all its rows);
    None where the column is empty."""
    specs = {row[col].strip() for _, row in items}
    if len(specs) != 1:
        raise DataError(f"{path}: run {rid!r} has {len(specs)} different schedules in {col!r}")
    spec = specs.pop()
    if not spec:
        return None  # none given (e.g. a time budget): rebuilt from the lr column
    try:
        sched = Schedule(spec)
    except ConfigError as exc:
        i = items[0][0]  # the line too, as every other message of a row
        raise DataError(f"{path}: row {i} (line {line[i]}), column {col!r}: {exc}") from None
    if len(sched) <= last:
        raise DataError(
            f"{path}: run {rid!r}: its schedule {spec!r} has {len(sched)} steps, "
            f"it logs step {last}"
        )
    return sched.lr_array(last + 1)


def lr_at_every_step(steps, lrs, fill="linear"):
    """The LR at steps 0..steps[-1] from its logged values (see the module docstring)."""
    steps = np.asarray(steps, dtype=int)
    lrs = np.asarray(lrs, dtype=float)
    t = np.arange(steps[-1] + 1)
    out = np.empty(len(t))
    s0 = steps[0]
    out[: s0 + 1] = lrs[0] * t[: s0 + 1] / max(s0, 1) if s0 > 0 else lrs[0]
    rest = t[s0:]
    if fill in ("linear", "auto"):
        out[s0:] = np.interp(rest, steps, lrs)
        if fill == "auto":
            for j in _jumps(lrs):
                mid = (steps[j] + steps[j + 1] + 1) // 2
                out[steps[j] : mid] = lrs[j]
                out[mid : steps[j + 1] + 1] = lrs[j + 1]
    elif fill == "previous":
        out[s0:] = lrs[np.searchsorted(steps, rest, side="right") - 1]
    else:
        raise DataError(f"--lr-fill {fill!r} is not one of {', '.join(LR_FILLS)}")
    return out


def _jumps(lrs):
    """Indices j where lrs[j] -> lrs[j+1] is an isolated jump (see the module docstring)."""
    d = np.abs(np.diff(np.log(np.maximum(lrs, 1e-300))))
    pad = np.concatenate([[0.0], d, [0.0]])
    neighbours = np.maximum(pad[:-2], pad[2:])
    return np.flatnonzero((d > JUMP * neighbours) & (d > 1e-3))
