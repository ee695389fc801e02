"""Runs tables: read a CSV (ours or anyone's), map its columns to N, D, C, L, validate.

Column names are found by a short list of aliases that covers scalinglab's own
runs tables and the public data sets in ../shared/scaling_data (`params`,
`N`, `N_params`, `Model Size`; `tokens`, `D`, `D_tokens`; `flops`, `C`,
`Training FLOP`, `C_6ND`; `loss`, `val_loss`, `eval_loss`), or given
explicitly. When D is absent but C is present, D = C / (6 N); when C is absent,
C = 6 N D. Values are validated only for the columns a law uses, and a bad
value is reported with its row (1-based, header excluded), line and column.
"""

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scalinglab.errors import DataError

ALIASES = {
    "N": ("params", "N", "N_params", "n_params", "Model Size", "model_size"),
    "N_nonembed": ("params_nonembed", "N_no_emb", "N_params_no_embed", "params_no_embed"),
    "D": ("tokens", "D", "D_tokens", "n_tokens", "Training Tokens"),
    "C": ("flops", "C", "Training FLOP", "flops_6nd", "C_6ND", "FLOPs", "compute"),
    "L": ("loss", "val_loss", "eval_loss", "L", "Loss"),
    "budget": ("budget",),
}
FLAGS = {
    "N": "--n-col",
    "D": "--d-col",
    "C": "--c-col",
    "L": "--loss-col",
    "budget": "--budget-col",
}
WHAT = {"N": "parameters N", "D": "tokens D", "C": "FLOPs C", "L": "loss", "budget": "budget"}


@dataclass
class RunsTable:
    """Numeric columns N, D, C, L (and an optional isoFLOP budget), one entry per run.

    A column is None when the source has none; `conventions` says where each came from.
    """

    N: np.ndarray | None = None
    D: np.ndarray | None = None
    C: np.ndarray | None = None
    L: np.ndarray | None = None
    budget: np.ndarray | None = None
    run_id: list | None = None
    # checkpoints of runs (issue 19): each row's run, joined from the --run-col columns;
    # the bootstrap then resamples whole runs. None: every row is its own run.
    groups: np.ndarray | None = None
    source: str = "<memory>"
    conventions: dict = field(default_factory=dict)
    sha256: str = ""

    def __len__(self):
        return len(self.L) if self.L is not None else 0

    def require(self, law: str, *names: str) -> None:
        for name in names:
            if getattr(self, name) is None:
                tried = self.conventions.get(f"{name}_tried", ALIASES.get(name, ()))
                what = f"law {law!r} needs {WHAT[name]}, and" if name != "L" else "no loss column:"
                raise DataError(
                    f"{self.source}: {what} no column was found "
                    f"(looked for {', '.join(repr(t) for t in tried)}); name it with {FLAGS[name]}"
                )

    def subset(self, mask) -> "RunsTable":
        pick = np.flatnonzero(mask)
        cols = {k: (None if getattr(self, k) is None else getattr(self, k)[pick]) for k in "NDCL"}
        return RunsTable(
            **cols,
            budget=None if self.budget is None else self.budget[pick],
            run_id=None if self.run_id is None else [self.run_id[i] for i in pick],
            groups=None if self.groups is None else self.groups[pick],
            source=self.source,
            conventions=dict(self.conventions),
            sha256=self.sha256,
        )


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: byte {exc.start}: not valid UTF-8 (save the CSV as UTF-8)"
        ) from None


def _find(header, name, explicit, aliases, source, flag):
    if explicit is not None:
        if explicit not in header:
            raise DataError(
                f"{source}: {flag} {explicit!r}: no such column (columns: {', '.join(header)})"
            )
        return explicit
    for alias in aliases:
        if alias in header:
            return alias
    lower = {h.lower(): h for h in header}
    for alias in aliases:
        if alias.lower() in lower:
            return lower[alias.lower()]
    return None


def _numbers(rows, col, source, lines):
    """Parse one column; every value must be a finite positive number."""
    out = np.empty(len(rows))
    for i, row in enumerate(rows):
        raw = row[col]
        where = f"{source}: row {i + 1} (line {lines[i]}), column {col!r}"
        try:
            v = float(raw)
        except (TypeError, ValueError):
            raise DataError(f"{where}: {raw!r} is not a number") from None
        if not np.isfinite(v):
            raise DataError(f"{where}: {raw!r} is not a finite number")
        if v <= 0:
            raise DataError(f"{where}: {raw!r} must be > 0")
        out[i] = v
    return out


def parse_where(items) -> list[tuple[str, str, str]]:
    out = []
    for item in items or ():
        op = "!=" if "!=" in item else "="
        col, sep, val = item.partition(op)
        if not sep or not col:
            raise DataError(f"--where {item!r}: expected COLUMN=VALUE or COLUMN!=VALUE")
        out.append((col.strip(), op, val.strip()))
    return out


def read_csv(
    path,
    *,
    n_col=None,
    d_col=None,
    c_col=None,
    loss_col=None,
    budget_col=None,
    n_kind="params",
    where=(),
    need=("N", "D", "C", "L"),
    drop_highest=0,
    run_cols=None,
) -> RunsTable:
    """Read a runs table; `need` names the columns the law uses (validated strictly)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    text = _decode(path)
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: the file is empty") from None
    header = [h.strip() for h in header]
    rows, lines = [], []
    for row in reader:
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise DataError(
                f"{path}: line {reader.line_num}: {len(row)} fields, the header has {len(header)}"
            )
        rows.append(dict(zip(header, row, strict=True)))
        lines.append(reader.line_num)
    if not rows:
        raise DataError(f"{path}: the header has no data rows below it")
    conv = {"source": str(path), "filters": []}
    if "status" in header and not any(c == "status" for c, _, _ in parse_where(where)):
        where = [*list(where or ()), "status=completed"]  # diverged/failed runs carry no valid loss
    for col, op, val in parse_where(where):
        if col not in header:
            raise DataError(f"{path}: --where {col}{op}{val}: no column {col!r}")
        keep = [
            (r, ln) for r, ln in zip(rows, lines, strict=True) if (r[col] == val) == (op == "=")
        ]
        rows, lines = [r for r, _ in keep], [ln for _, ln in keep]
        conv["filters"].append(f"{col}{op}{val}")
    if not rows:
        raise DataError(f"{path}: no rows left after --where {' '.join(conv['filters'])}")
    if n_kind not in ("params", "params_nonembed"):
        raise DataError(f"--n-kind {n_kind!r}: expected params or params_nonembed")
    n_aliases = ALIASES["N"] if n_kind == "params" else ALIASES["N_nonembed"]
    cols = {
        "N": _find(header, "N", n_col, n_aliases, path, "--n-col"),
        "D": _find(header, "D", d_col, ALIASES["D"], path, "--d-col"),
        "C": _find(header, "C", c_col, ALIASES["C"], path, "--c-col"),
        "L": _find(header, "L", loss_col, ALIASES["L"], path, "--loss-col"),
        "budget": _find(header, "budget", budget_col, ALIASES["budget"], path, "--budget-col"),
    }
    conv["N_tried"] = (n_col,) if n_col else n_aliases
    for k in ("D", "C", "L", "budget"):
        conv[f"{k}_tried"] = ALIASES[k]
    groups = None
    if run_cols:  # rows are checkpoints of runs: a run repeats, one row per checkpoint
        for c in run_cols:
            if c not in header:
                raise DataError(
                    f"{path}: --run-col {c!r}: no such column (columns: {', '.join(header)})"
                )
        groups = np.array(["/".join(r[c] for c in run_cols) for r in rows])
        conv["runs"] = int(np.unique(groups).size)
    elif "run_id" in header:
        seen = {}
        for r, ln in zip(rows, lines, strict=True):
            if r["run_id"] in seen:
                raise DataError(
                    f"{path}: duplicate run_id {r['run_id']!r} on lines {seen[r['run_id']]} and {ln}"
                )
            seen[r["run_id"]] = ln
    data = {}
    used = set(need) | {"L"}
    if "D" in used and cols["D"] is None:
        used |= {"C", "N"}  # D will be derived from C / (6N)
    for k, col in cols.items():
        if col is not None and k in used:
            data[k] = _numbers(rows, col, path, lines)
            conv[k] = col
    if "L" not in data:
        RunsTable(source=str(path), conventions=conv).require("fit", "L")
    if "D" in used and "D" not in data and "C" in data and "N" in data:
        data["D"] = data["C"] / (6.0 * data["N"])
        conv["D"] = f"C/(6N) from {cols['C']!r}"
    if "C" in used and "C" not in data and "N" in data and "D" in data:
        data["C"] = 6.0 * data["N"] * data["D"]
        conv["C"] = "6ND"
    table = RunsTable(
        **data,
        run_id=[r["run_id"] for r in rows] if "run_id" in header else None,
        groups=groups,
        source=str(path),
        conventions=conv,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )
    if drop_highest:
        order = np.argsort(table.L, kind="stable")
        table = table.subset(np.isin(np.arange(len(table)), order[: len(table) - drop_highest]))
        conv["filters"].append(f"drop the {drop_highest} highest-loss rows")
    return table


def as_table(obj, **mapping) -> RunsTable:
    """A RunsTable from a path, a RunsTable, a list of dicts, or a dict of arrays."""
    if isinstance(obj, RunsTable):
        return obj
    if isinstance(obj, (str, Path)):
        return read_csv(obj, **mapping)
    if isinstance(obj, dict):
        cols = {k: obj[k] for k in ("N", "D", "C", "L", "budget") if obj.get(k) is not None}
    elif isinstance(obj, list) and obj and isinstance(obj[0], dict):
        keys = [k for k in ("N", "D", "C", "L", "budget") if k in obj[0]]
        cols = {k: [r[k] for r in obj] for k in keys}
    else:
        raise DataError(
            "a runs table must be a CSV path, a RunsTable, a list of dicts or a dict of arrays"
        )
    arrays = {}
    for k, v in cols.items():
        a = np.asarray(v, dtype=float).ravel()
        bad = np.flatnonzero(~np.isfinite(a) | (a <= 0))
        if bad.size:
            raise DataError(f"<memory>: row {bad[0] + 1}, column {k!r}: {a[bad[0]]!r} must be > 0")
        arrays[k] = a
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) > 1:
        raise DataError(f"<memory>: columns have different lengths {sorted(lengths)}")
    if "L" not in arrays:
        raise DataError("<memory>: the table has no 'L' (loss) column")
    if "D" not in arrays and "C" in arrays and "N" in arrays:
        arrays["D"] = arrays["C"] / (6.0 * arrays["N"])
    if "C" not in arrays and "N" in arrays and "D" in arrays:
        arrays["C"] = 6.0 * arrays["N"] * arrays["D"]
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode() + arrays[k].tobytes())
    conv = {k: k for k in arrays}
    return RunsTable(**arrays, conventions=conv, sha256=h.hexdigest())
