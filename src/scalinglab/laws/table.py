"""Runs tables: read any table (a CSV, a DataFrame, dicts), map its columns to N, D, C, L.

Every input goes through one reader, `read_table`, with the same column aliases
and the same options: a CSV path (ours or anyone's), a pandas, polars or pyarrow
table (through narwhals), a dict of columns, or a list of row dicts. Column
names are found by a short list of aliases that covers scalinglab's own runs
tables and the public data sets in ../shared/scaling_data (`params`, `N`,
`N_params`, `Model Size`; `tokens`, `D`, `D_tokens`; `flops`, `C`,
`Training FLOP`, `C_6ND`; `loss`, `val_loss`, `eval_loss`), or given
explicitly. When D is absent but C is present, D = C / (6 N); when C is absent,
C = 6 N D. Values are validated only for the columns a law uses, and a bad
value is reported with its row (1-based, header excluded), its line for a CSV,
and its column.
"""

import csv
import hashlib
import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import narwhals as nw
import numpy as np

from scalinglab.errors import ConfigError, DataError

ALIASES = {
    "N": ("params", "N", "N_params", "n_params", "Model Size", "model_size"),
    "N_nonembed": ("params_nonembed", "N_no_emb", "N_params_no_embed", "params_no_embed"),
    "D": ("tokens", "D", "D_tokens", "n_tokens", "Training Tokens"),
    "C": ("flops", "C", "Training FLOP", "flops_6nd", "C_6ND", "FLOPs", "compute"),
    "L": ("loss", "val_loss", "eval_loss", "L", "Loss"),
    "budget": ("budget",),
    "U": ("unique_tokens", "U", "U_unique_tokens", "U_D"),
}
FLAGS = {
    "N": "--n-col",
    "D": "--d-col",
    "C": "--c-col",
    "L": "--loss-col",
    "budget": "--budget-col",
    "U": "--u-col",
}
WHAT = {
    "N": "parameters N",
    "D": "tokens D",
    "C": "FLOPs C",
    "L": "loss",
    "budget": "budget",
    "U": "unique tokens U",
}
# The options of read_table, with their defaults (TableConfig's fields of the same names).
OPTIONS = {
    "n_col": None,
    "d_col": None,
    "c_col": None,
    "loss_col": None,
    "budget_col": None,
    "n_kind": "params",
    "where": (),
    "drop_highest": 0,
    "run_cols": None,
    "u_col": None,
    "min_over": (),
}


def removed_note(rows_read, source, removed) -> str:
    """' (ROWS rows in SOURCE, K removed by FILTER, J by FILTER)' for the filters that removed
    rows, or '' when none did."""
    parts = [(what, k) for what, k in removed if k]
    if rows_read is None or not parts:
        return ""
    shown = [f"{k} {'removed ' if i == 0 else ''}by {what}" for i, (what, k) in enumerate(parts)]
    name = "the table" if str(source).startswith("<") else Path(source).name
    return f" ({rows_read} rows in {name}, {', '.join(shown)})"


@dataclass(repr=False)  # __repr__ below: the dataclass's printed every array in full
class RunsTable:
    """Numeric columns N, D, C, L (and an optional isoFLOP budget), one entry per run.

    A column is None when the source has none; `conventions` says where each came
    from; `read_with` holds the options it was read with (read_table checks them
    when the table is handed on).
    """

    N: np.ndarray | None = None
    D: np.ndarray | None = None
    C: np.ndarray | None = None
    L: np.ndarray | None = None
    budget: np.ndarray | None = None
    U: np.ndarray | None = None  # unique tokens (read when a law needs them)
    # unique tokens where the table has them and the law reads none: rows of one N and D
    # trained on other data are no seed repeats of one run (intervals.noise_model's keys)
    U_seeds: np.ndarray | None = None
    run_id: list | None = None
    # checkpoints of runs (issue 19): each row's run, joined from the --run-col columns;
    # the bootstrap then resamples whole runs. None: every row is its own run.
    groups: np.ndarray | None = None
    source: str = "<memory>"
    conventions: dict = field(default_factory=dict)
    sha256: str = ""
    read_with: dict = field(default_factory=dict)
    # rows of the source, and (filter, rows it removed) in order: the fit's "4 points for
    # 2 parameters" names them. Not kept by subset: a backtest's split is no filter.
    rows_read: int | None = None
    removed: list = field(default_factory=list)
    # {column: {value: rows}} of the columns in MIXED that hold several values in the rows
    # fitted (runs of two architectures or tokenizers): the fit's warnings name them
    mixed: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.L) if self.L is not None else 0

    def filtered(self) -> str:
        """' (12 rows in runs.csv, 8 removed by --where N<1e8)', or '' when no filter
        removed a row."""
        return removed_note(self.rows_read, self.source, self.removed)

    def __repr__(self):
        """One line: rows, columns present, runs (with checkpoints) and source; the
        numbers are in the attributes (`table.N`), not printed."""
        cols = [k for k in ("N", "D", "C", "L", "budget", "U") if getattr(self, k) is not None]
        parts = [f"{len(self)} rows", f"columns {', '.join(cols) or 'none'}"]
        if self.groups is not None:
            parts.append(f"runs: {len(np.unique(self.groups))}")
        parts.append(f"source: {self.source!r}")
        return f"RunsTable({', '.join(parts)})"

    def require(self, law: str, *names: str) -> None:
        """Raise DataError unless every column in `names` is present (law names the user)."""
        for name in names:
            if getattr(self, name) is None:
                tried = self.conventions.get(f"{name}_tried", ALIASES.get(name, ()))
                what = f"law {law!r} needs {WHAT[name]}, and" if name != "L" else "no loss column:"
                raise DataError(
                    f"{self.source}: {what} no column was found "
                    f"(looked for {', '.join(repr(t) for t in tried)}); name it with {FLAGS[name]}"
                )

    def subset(self, mask) -> "RunsTable":
        """The rows where `mask` (a boolean array, one per row) is true, with the same
        source, conventions and options. Indices or a permutation are refused: read as a
        mask they kept every row but the one at index 0, in the table's own order."""
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (len(self),):
            raise TypeError(
                f"subset takes a boolean mask of the table's {len(self)} rows, got "
                f"{mask.dtype} of shape {mask.shape}"
            )
        pick = np.flatnonzero(mask)
        cols = {k: (None if getattr(self, k) is None else getattr(self, k)[pick]) for k in "NDCL"}
        return RunsTable(
            **cols,
            budget=None if self.budget is None else self.budget[pick],
            U=None if self.U is None else self.U[pick],
            U_seeds=None if self.U_seeds is None else self.U_seeds[pick],
            run_id=None if self.run_id is None else [self.run_id[i] for i in pick],
            groups=None if self.groups is None else self.groups[pick],
            source=self.source,
            conventions=dict(self.conventions),
            sha256=self.sha256,
            read_with=dict(self.read_with),
        )

    def seed_keys(self, names) -> np.ndarray:
        """One row per row of the table whose equal rows are seed repeats of one run: the
        columns `names` a law reads (N and D), and U where the table has it (a run of one
        N and D on other unique data is another run)."""
        cols = [getattr(self, k) for k in names]
        if "U" not in names and self.U_seeds is not None:
            cols.append(self.U_seeds)
        return np.column_stack(cols)

    def points_sha256(self) -> str:
        """A hash of the numbers a fit uses (the same for a CSV and a DataFrame of one table)."""
        h = hashlib.sha256()
        derived_c = self.conventions.get("C") == "6ND"  # N and D, which are hashed already
        for k in ("N", "D", "C", "L", "budget"):
            v = getattr(self, k)
            if k == "C" and derived_c:
                continue
            if v is not None and (k != "budget" or "budget" in self.conventions):
                h.update(k.encode() + np.ascontiguousarray(v, dtype="<f8").tobytes())
        return h.hexdigest()


@dataclass
class RawTable:
    """A table before mapping: header, rows (dicts of raw values), where each row came from."""

    header: list
    rows: list
    lines: list | None  # the CSV line of each row; None in memory
    source: str
    sha256: str = ""
    index: list | None = None  # each row's 1-based number in the input, kept through `keep`
    labels: list | None = None  # a pandas frame's index labels, where not 0, 1, 2, ...

    def __post_init__(self):
        if self.index is None:
            self.index = list(range(1, len(self.rows) + 1))

    def where(self, i: int) -> str:
        """Where row i came from, for error messages: source, row (its number in the
        input, before any filter) and (a CSV's) line."""
        line = f" (line {self.lines[i]})" if self.lines is not None else ""
        if self.labels is not None:  # df.loc's label: a filtered frame's row 2 is not df.loc[1]
            line = f" (index {self.labels[i]!r})"
        return f"{self.source}: row {self.index[i]}{line}"

    def keep(self, flags: list) -> None:
        """Keep the rows whose flag is true."""
        self.rows = [r for r, k in zip(self.rows, flags, strict=True) if k]
        self.index = [n for n, k in zip(self.index, flags, strict=True) if k]
        if self.lines is not None:
            self.lines = [ln for ln, k in zip(self.lines, flags, strict=True) if k]
        if self.labels is not None:
            self.labels = [lb for lb, k in zip(self.labels, flags, strict=True) if k]


def decode_text(path: Path) -> str:
    """A CSV file's text (UTF-8, a BOM allowed); one-line DataError when empty or not UTF-8.

    Args:
        path: the file to read.
    """
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{path}: the file is empty")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: byte {exc.start}: not valid UTF-8 (save the CSV as UTF-8)"
        ) from None


def csv_lines(text: str) -> str:
    """`text` with every line ending as "\\n": a spreadsheet on a Mac saves its CSV with
    "\\r" alone, which the csv module refused with a traceback ('new-line character seen
    in unquoted field'). Only for parsing: a table's sha256 is that of its text as read."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _no_duplicates(header: list, source: str, positions: list | None = None) -> None:
    """DataError naming the header names that repeat, at their 1-based `positions` (by
    default 1, 2, ...); columns without a name are told as such."""
    seen: dict = {}
    for i, h in zip(positions or range(1, len(header) + 1), header, strict=True):
        seen.setdefault(h, []).append(i)
    dup = {h: pos for h, pos in seen.items() if len(pos) > 1}
    if "" in dup:
        raise DataError(
            f"{source}: columns {', '.join(map(str, dup['']))} have no name in the header and "
            "hold values: name them (or delete them)"
        )
    if dup:
        what = "; ".join(f"{h!r} at columns {', '.join(map(str, p))}" for h, p in dup.items())
        raise DataError(f"{source}: duplicate column names in the header: {what}")


def check_table_file(path: Path) -> None:
    """DataError unless `path` is a file: a folder is named as one."""
    if path.is_dir():
        raise DataError(
            f"{path}: a folder, not a runs table; give a CSV file (`scalinglab runs {path} "
            "--out runs.csv` writes one from run folders)"
        )
    if not path.is_file():
        raise DataError(f"{path}: no such file")


def raw_csv(path: Path) -> RawTable:
    """A CSV file's header and rows (text cells), refusing duplicate header names."""
    check_table_file(path)
    text = decode_text(path)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    text = csv_lines(text)
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: the file is empty") from None
    header = [h.strip() for h in header]
    if len(header) == 1:  # a ';'- or tab-separated file read as one column
        sep = next((f"{name} ({c!r})" for c, name in ((";", "semicolons"), ("\t", "tabs"))
                    if c in header[0]), None)  # fmt: skip
        if sep:
            raise DataError(
                f"{path}: line 1: one column {header[0]!r}: the file is separated by {sep}; "
                "a runs table is comma-separated (CSV)"
            )
    rows, lines = [], []
    last = text.count("\n") + (not text.endswith("\n"))  # the file's last line
    end = reader.line_num
    for row in reader:
        start, end = end + 1, reader.line_num  # a quoted field may span lines
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            span = ""
            if end > start:  # a row of several lines: a quote opened on its first line
                closed = "is never closed" if end == last else f"runs to line {end}"
                span = f" (a quote opened on line {start} {closed})"
            elif end == last and text.splitlines()[start - 1].count('"') % 2:
                span = f" (a quote opened on line {start} is never closed)"
            raise DataError(
                f"{path}: line {start}: {len(row)} fields, the header has {len(header)}{span}"
            )
        rows.append(row)
        lines.append(start)
    # a spreadsheet saves the blank columns beside its table with no name and no value
    blank = {i for i, h in enumerate(header) if not h and not any(r[i].strip() for r in rows)}
    kept = [i for i in range(len(header)) if i not in blank]
    header = [header[i] for i in kept]
    _no_duplicates(header, str(path), [i + 1 for i in kept])
    rows = [
        dict(zip(header, (c for i, c in enumerate(r) if i not in blank), strict=True)) for r in rows
    ]
    if not rows:
        raise DataError(f"{path}: the header has no data rows below it")
    return RawTable(header, rows, lines, str(path), sha)


def _raw_columns(cols: dict, source: str) -> RawTable:
    header = [str(k) for k in cols]
    _no_duplicates(header, source)
    _same_index(header, list(cols.values()), source)
    values = []
    for h, v in zip(header, cols.values(), strict=True):
        a = np.asarray(v, dtype=object)
        if a.ndim > 1:  # a (4, 5) grid was flattened and paired with the others by position
            raise DataError(
                f"{source}: column {h!r} has shape {a.shape}: a column is one-dimensional "
                "(one value per run); flatten each column the same way first"
            )
        values.append(a.ravel())
    lengths = {len(v) for v in values}
    if len(lengths) > 1:
        raise DataError(f"{source}: columns have different lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    rows = [{h: v[i] for h, v in zip(header, values, strict=True)} for i in range(n)]
    return RawTable(header, rows, None, source)


def _same_index(header: list[str], columns: list, source: str) -> None:
    """Refuses pandas Series whose indexes differ: a dict of columns pairs its values by
    position, where pandas would pair them by label, so a sorted or filtered column would be
    fitted against another run's loss without a word."""
    first = None
    for h, v in zip(header, columns, strict=True):
        index = getattr(v, "index", None)
        if index is None or callable(index):  # a list's .index is a method, not labels
            continue
        labels = list(index)
        if first is None:
            first = (h, labels)
        elif labels != first[1]:
            raise DataError(
                f"{source}: columns {first[0]!r} and {h!r} have different indexes (a dict of "
                "columns pairs values by position, pandas by label): pass a DataFrame, or "
                "reset or align the indexes first"
            )


def _raw_rows(rows: list, source: str) -> RawTable:
    header: list = []
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise DataError(f"{source}: row {i + 1} is a {type(r).__name__}, not a dict")
        header += [k for k in r if k not in header]
    return RawTable([str(h) for h in header], [dict(r) for r in rows], None, source)


def _raw_frame(obj) -> RawTable:
    try:
        df = nw.from_native(obj)
    except nw.exceptions.DuplicateError:
        source = f"<{type(obj).__module__.split('.')[0]}.{type(obj).__name__}>"
        _no_duplicates([str(c) for c in obj.columns], source)  # names them and where
        raise
    except TypeError:
        raise DataError(
            f"a runs table must be a CSV path, a pandas/polars/pyarrow table, a dict of "
            f"columns, a list of row dicts or a RunsTable; got {_type_name(obj)}"
        ) from None
    if isinstance(df, nw.LazyFrame):  # pl.scan_csv(...) was refused as 'got a LazyFrame'
        df = df.collect()
    source = f"<{type(obj).__module__.split('.')[0]}.{type(obj).__name__}>"
    header = [str(c) for c in df.columns]
    _no_duplicates(header, source)
    labels = nw.maybe_get_index(df)  # pandas' index (None for polars, pyarrow)
    labels = None if labels is None else labels.tolist()
    if labels == list(range(len(df))):
        labels = None  # the default index: row N is index N - 1, said already
    return RawTable(header, df.rows(named=True), None, source, labels=labels)


def _type_name(obj) -> str:
    """`int`, `numpy.ndarray`: a type for a message ('got a int' read badly)."""
    module = type(obj).__module__.split(".")[0]
    if obj is None:
        return "None"
    return type(obj).__name__ if module == "builtins" else f"{module}.{type(obj).__name__}"


def raw_table(obj) -> RawTable:
    """Any table read_table takes (a CSV path, a DataFrame, a dict of columns, a list of
    row dicts) as a RawTable."""
    if isinstance(obj, (str, Path)):
        return raw_csv(Path(obj))
    if isinstance(obj, dict):
        return _raw_columns(obj, "<dict>")
    if isinstance(obj, (list, tuple)):
        return _raw_rows(list(obj), getattr(obj, "source", None) or "<list of dicts>")
    return _raw_frame(obj)


class Rows(list):
    """A list of row dicts with a name for messages (`source`): a report's fits said
    '<list of dicts>: 3 points ...' of the runs of one architecture."""

    def __init__(self, rows, source: str):
        super().__init__(rows)
        self.source = source


def find_column(header, name, explicit, aliases, source, flag):
    """The column holding quantity `name`: `explicit` if given (it must exist), else the
    first alias present (exact, then case-insensitive), else None."""
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


def not_a_number(value) -> str:
    """ "'10,000,000' is not a number", with what a spreadsheet's formatting left in the cell
    and what to write instead: a thousands separator or a percent sign."""
    text = str(value).strip()
    why = ""
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?", text):
        why = f" (thousands separators: write {text.replace(',', '')})"
    elif re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?%", text) and text.isascii():
        why = f" (a percent sign: write the fraction {float(text[:-1]) / 100:g})"
    elif "_" in text:
        why = f" (digit separators: write {text.replace('_', '')})"
    elif not text.isascii():
        why = " (characters outside ASCII: write the number in ASCII digits)"
    return f"{value!r} is not a number{why}"


class MissingValue(DataError):
    """A cell with no value; `column` names its column, for a reader that knows why such a
    cell is empty (a task not scored at that step) to say so."""

    def __init__(self, message: str, column: str):
        super().__init__(message)
        self.column = column


def is_missing(value) -> bool:
    """Whether a cell holds no value: None (a dict's, polars' and pyarrow's nulls), an
    empty CSV cell, pandas' NA and NaT, or an in-memory float NaN (pandas' missing value
    in a float column; a CSV's text 'nan' is a value, refused as not finite)."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return type(value).__name__ in ("NAType", "NaTType")


def numbers(raw: RawTable, col: str) -> np.ndarray:
    """Parse one column; every value must be a finite positive number."""
    return np.array([number(raw, i, col) for i in range(len(raw.rows))], dtype=float)


def number(raw: RawTable, i: int, col: str, positive: bool = True) -> float:
    """Row i's cell of `col`, a finite number (> 0 when `positive`); else a DataError
    naming the source, row (and a CSV's line) and column."""
    value = raw.rows[i].get(col)
    where = f"{raw.where(i)}, column {col!r}"
    if is_missing(value):  # it read "None is not a number" ('' in a CSV's empty cell)
        nan = " (NaN)" if isinstance(value, float | np.floating) else ""
        raise MissingValue(f"{where}: missing value{nan}", col)
    if isinstance(value, bool | np.bool_):  # float(True) is 1.0: a flag is no count
        raise DataError(f"{where}: {value!r} is not a number")
    if isinstance(value, str) and ("_" in value or not value.isascii()):
        # Python's float() reads '1_000' as 1000 and fullwidth '１.５' as 1.5: no table
        # writes either, and a cell that holds one is a typo read as a silently wrong number
        raise DataError(f"{where}: {not_a_number(value)}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {not_a_number(value)}") from None
    except OverflowError:  # an int past float's range (10**400): no finite number
        v = math.inf
    if not np.isfinite(v):
        raise DataError(f"{where}: {short_repr(value)} is not a finite number")
    if positive and v <= 0:
        raise DataError(f"{where}: {value!r} must be > 0")
    return v


def _unambiguous(raw: RawTable, cols: dict, looked_for: dict) -> None:
    """Refuses a second column that could be the same quantity and holds other numbers
    (`loss` beside `val_loss`, as a trainer's export writes the training loss beside the
    validation loss): the first alias would be fitted without a word. One named by its flag,
    or holding the same numbers, is no question. (C is left out: a runs table holds both
    `flops`, the count, and `flops_6nd`, and `flops` is documented to come first.)"""
    for k, (explicit, aliases) in looked_for.items():
        chosen = cols.get(k)
        if chosen is None or explicit is not None:
            continue
        low = {a.lower() for a in aliases}
        for other in (h for h in raw.header if h != chosen and h.lower() in low):
            for i, r in enumerate(raw.rows):
                try:
                    a, b = float(r.get(chosen)), float(r.get(other))
                except (TypeError, ValueError, OverflowError):
                    continue  # a cell that is no number is the reader's to name
                if math.isfinite(a) and math.isfinite(b) and not math.isclose(a, b, rel_tol=1e-9):
                    raise DataError(
                        f"{raw.where(i)}: columns {chosen!r} and {other!r} could both be the "
                        f"{WHAT[k]} and differ ({r.get(chosen)!r} and {r.get(other)!r}): name "
                        f"the one to fit with {FLAGS[k]}"
                    )


def short_repr(value, limit: int = 60) -> str:
    """repr(value) for a message, cut to `limit` characters (an int of 400 digits is one
    cell, an array of a million one argument)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


WHERE_OPS = ("==", "<=", ">=", "!=", "<", ">", "=")
_COMPARE = {
    "<=": np.less_equal,
    ">=": np.greater_equal,
    "<": np.less,
    ">": np.greater,
}


def parse_where(items, flag: str = "--where") -> list[tuple[str, str, str]]:
    """`COL=VALUE` (or `COL==VALUE`), `COL!=VALUE`, `COL<V`, `COL<=V`, `COL>V`, `COL>=V`
    strings as (column, operator, value) triples."""
    out = []
    for item in [items] if isinstance(items, str) else items or ():
        at = [(item.find(op), -len(op), op) for op in WHERE_OPS if op in item]
        op = min(at)[2] if at else "="
        col, sep, val = item.partition(op)
        op = "=" if op == "==" else op  # pandas' spelling: `params==1e8` is not `params` = `=1e8`
        if not sep or not col.strip():
            raise DataError(
                f"{flag} {item!r}: expected COLUMN=VALUE, COLUMN!=VALUE or a comparison "
                "(COLUMN<V, <=, >, >=)"
            )
        if op in _COMPARE:
            try:
                bound = float(val)
            except ValueError:
                raise DataError(f"{flag} {item!r}: {val.strip()!r} is not a number") from None
            if np.isnan(bound):  # every comparison with NaN is false: "no rows left"
                raise DataError(f"{flag} {item!r}: {val.strip()!r} is not a number to compare")
        out.append((col.strip(), op, val.strip()))
    return out


def same_value(value, text: str) -> bool:
    """A cell equals a --where value: as numbers when both read as numbers (a CSV's `1e+19`
    is `1e19`), else as text; an in-memory number as a number."""
    if isinstance(value, str):
        if value == text:
            return True
        try:
            return float(value) == float(text)
        except ValueError:
            return False
    if value is None:
        return False
    try:
        return float(value) == float(text)
    except (TypeError, ValueError):
        return str(value) == text


def cell_matches(value, cond: tuple, where: str, flag: str = "--where") -> bool:
    """A cell against one of parse_where's (column, operator, value): = and != as
    same_value (numbers as numbers), the comparisons as numbers; `where` names the row."""
    col, op, val = cond
    if op not in _COMPARE:
        return same_value(value, val) == (op == "=")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataError(
            f"{where}, column {col!r}: {value!r} is not a number ({flag} {col}{op}{val})"
        ) from None
    return bool(_COMPARE[op](v, float(val)))


def _where_column(raw: RawTable, col: str, opts: dict) -> str:
    """A --where column: a column of the table, or N, D, C, L, U for the column that holds it."""
    if col in raw.header:
        return col
    if col in ("N", "D", "C", "L", "U", "budget"):
        explicit = {"N": "n_col", "D": "d_col", "C": "c_col", "L": "loss_col", "U": "u_col"}
        found = find_column(
            raw.header, col, opts.get(explicit.get(col, "budget_col")), ALIASES[col], raw.source, ""
        )
        if found is not None:
            return found
    derived = " (a D or C the fit derives, C/(6N) or 6ND, is no column to filter)" if col in (
        "D", "C") else ""  # fmt: skip
    raise DataError(
        f"{raw.source}: --where: no column {col!r}{derived} (columns: {', '.join(raw.header)})"
    )


def check_completed(rows, status: str, source) -> None:
    """DataError listing the statuses when no row of `rows` (dicts) has `status`
    'completed': the default filter status=completed would keep none (runs and curves)."""
    statuses = sorted({str(r.get(status)) for r in rows})
    if rows and "completed" not in statuses:
        shown = ", ".join(repr(x) for x in statuses[:5])
        more = f" and {len(statuses) - 5} more" if len(statuses) > 5 else ""
        raise DataError(
            f"{source}: the default filter {status}=completed matched no rows "
            f"(statuses: {shown}{more}); pick rows with --where {status}=VALUE"
        )


def _filter(raw: RawTable, where, conv: dict, opts=None, removed=None) -> None:
    """Keep the rows of the --where filters (and the default status=completed); each
    appends (filter, rows it removed) to `removed`."""
    removed = [] if removed is None else removed
    filters = parse_where(where)
    given = len(filters)
    # the status column as the other columns are found (exact, then any case), as lr-opt's
    status = find_column(raw.header, "status", None, ("status",), raw.source, "")
    if status is not None and not any(c == status for c, _, _ in filters):
        filters.append((status, "=", "completed"))  # diverged/failed runs carry no valid loss
    for k, (col, op, val) in enumerate(filters):
        if k == given:  # the default filter
            check_completed(raw.rows, status, raw.source)
        if col not in raw.header and col not in ("N", "D", "C", "L", "U", "budget"):
            raise DataError(f"{raw.source}: --where {col}{op}{val}: no column {col!r}")
        name = _where_column(raw, col, opts or {})
        before = len(raw.rows)
        raw.keep(
            [
                cell_matches(r.get(name), (name, op, val), raw.where(i))
                for i, r in enumerate(raw.rows)
            ]
        )
        conv["filters"].append(f"{col}{op}{val}")
        flag = "--where" if k < given else "the default filter"
        removed.append((f"{flag} {col}{op}{val}", before - len(raw.rows)))
    if not raw.rows:
        raise DataError(f"{raw.source}: no rows left after --where {' '.join(conv['filters'])}")


def min_over(table: "RunsTable", raw: RawTable, cols, conv: dict) -> "RunsTable":
    """Keep, per (N, D) cell (and U where read; C where N or D is not), the row with the
    lowest loss: the best of a hyperparameter sweep over the columns `cols` (which must
    exist). Values within MIN_OVER_TOL of each other are one cell: a sweep rounds D to
    whole batches per batch size, and exact equality kept every row (75 of 75, E 1.74 for
    1.66). A --min-over that leaves every row has nothing to take the minimum over."""
    if not all(cols):  # '' was accepted and did nothing
        raise DataError(f"{raw.source}: --min-over: an empty column name in {list(cols)!r}")
    for c in cols:
        if c not in raw.header:
            raise DataError(
                f"{raw.source}: --min-over {c!r}: no such column (columns: {', '.join(raw.header)})"
            )
    names = [k for k in "NDU" if getattr(table, k) is not None]
    if "N" not in names or "D" not in names:
        names = [k for k in "NDCU" if getattr(table, k) is not None]
    cells = _cells([np.asarray(getattr(table, k), dtype=float) for k in names])
    keep = np.zeros(len(table), dtype=bool)
    keep[[min(g, key=lambda i: (table.L[i], i)) for g in cells]] = True  # a tie: the first
    if keep.all():
        raise DataError(
            f"{raw.source}: --min-over {','.join(cols)}: every ({', '.join(names)}) cell holds "
            f"one row, so there is no minimum to take (values within {MIN_OVER_TOL:.0%} of "
            "each other are one cell): drop --min-over, or check the columns"
        )
    conv["filters"].append(f"min loss over {', '.join(cols)} ({int(keep.sum())} of {len(table)})")
    return table.subset(keep)


MIN_OVER_TOL = 0.01  # relative: D of one cell differs by ~0.1% across batch sizes


def _cells(columns: list[np.ndarray]) -> list[np.ndarray]:
    """The rows of each cell: rows whose every column lies within MIN_OVER_TOL (relative)
    of the first row of a cell, along the columns in order."""
    groups = [np.arange(len(columns[0]))]
    for col in columns:
        orders = [g[np.argsort(col[g], kind="stable")] for g in groups]
        groups = [o[a:b] for o in orders for a, b in near_spans(col[o], MIN_OVER_TOL)]
    return groups


def near_spans(values, tol: float) -> list[tuple[int, int]]:
    """Spans [a, b) of the sorted `values` whose every value is within `tol` (relative) of
    the span's first: one cell of a sweep whose D each batch size rounds apart (min_over,
    and lr-opt's cells)."""
    spans, start = [], 0
    for j in range(1, len(values) + 1):
        if j == len(values) or values[j] > values[start] * (1 + tol):
            spans.append((start, j))
            start = j
    return spans


def _check_read_with(table: RunsTable, options: dict) -> None:
    """A RunsTable is already read: options that differ from its own cannot be applied."""
    differ = [
        f"{k}={v!r}"
        for k, v in options.items()
        if v != OPTIONS[k] and _norm(v) != _norm(table.read_with.get(k, OPTIONS[k]))
    ]
    if differ:
        raise ConfigError(
            f"{table.source}: this RunsTable was read already, so {', '.join(differ)} cannot "
            "be applied to it; pass the CSV path, DataFrame or dict instead"
        )


def _norm(v):
    return list(v) if isinstance(v, (list, tuple)) else v


def read_table(obj, *, need=("N", "D", "C", "L"), **options) -> RunsTable:
    """A RunsTable from any table, with the same aliases and options for every kind of input.

    Args:
        obj: a CSV path (str or Path), a pandas/polars/pyarrow table (anything
            narwhals reads eagerly), a dict of columns, a list of row dicts, or a
            RunsTable (returned as it is; options that differ from the ones it was
            read with raise ConfigError).
        need: the quantities the law uses ("N", "D", "C", "L", "budget"); only
            their columns are validated, strictly.
        **options: `n_col`, `d_col`, `c_col`, `loss_col`, `budget_col` (column
            names), `n_kind` ("params" or "params_nonembed"), `where`
            ("COL=VALUE" / "COL!=VALUE" strings), `drop_highest` (int). An
            unknown option, and one that cannot apply (`budget_col` when no
            budget is needed, `n_kind` beside an explicit `n_col`), raise.

    Raises:
        DataError: the table is malformed (names its source, row, line and column).
        ConfigError: an option is unknown or does not apply.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"unknown table option(s) {', '.join(unknown)} (known: {', '.join(OPTIONS)})"
        )
    opts = {**OPTIONS, **options}
    if isinstance(obj, RunsTable):
        _check_read_with(obj, opts)
        return obj
    if opts["n_kind"] not in ("params", "params_nonembed"):
        raise ConfigError(f"--n-kind {opts['n_kind']!r}: expected params or params_nonembed")
    if opts["n_col"] is not None and opts["n_kind"] != "params":
        raise ConfigError(
            f"--n-kind {opts['n_kind']} does not apply with --n-col {opts['n_col']!r}: "
            "n_kind picks N's column by name; give one of them"
        )
    if opts["budget_col"] is not None and "budget" not in need:
        raise ConfigError(
            f"--budget-col {opts['budget_col']!r} does not apply: only the isoflop law uses budgets"
        )
    if not isinstance(opts["drop_highest"], int) or opts["drop_highest"] < 0:
        raise ConfigError(f"--drop-highest must be an int >= 0, got {opts['drop_highest']!r}")
    raw = raw_table(obj)
    return _build(raw, need, opts)


def _build(raw: RawTable, need, opts: dict) -> RunsTable:
    path, header = raw.source, raw.header
    conv = {"source": path, "filters": []}
    if not raw.rows:
        raise DataError(f"{path}: the table has no rows")
    rows_read, removed = len(raw.rows), []
    _filter(raw, opts["where"], conv, opts, removed)
    n_col = opts["n_col"]
    n_aliases = ALIASES["N"] if opts["n_kind"] == "params" else ALIASES["N_nonembed"]
    cols = {
        "N": find_column(header, "N", n_col, n_aliases, path, "--n-col"),
        "D": find_column(header, "D", opts["d_col"], ALIASES["D"], path, "--d-col"),
        "C": find_column(header, "C", opts["c_col"], ALIASES["C"], path, "--c-col"),
        "L": find_column(header, "L", opts["loss_col"], ALIASES["L"], path, "--loss-col"),
        "budget": find_column(
            header, "budget", opts["budget_col"], ALIASES["budget"], path, "--budget-col"
        ),
        "U": find_column(header, "U", opts["u_col"], ALIASES["U"], path, "--u-col"),
    }
    conv["N_tried"] = (n_col,) if n_col else n_aliases
    for k in ("D", "C", "L", "budget", "U"):
        conv[f"{k}_tried"] = ALIASES[k]
    _one_role_each(cols, opts, need, path)
    _unambiguous(raw, cols, {"N": (n_col, n_aliases), "D": (opts["d_col"], ALIASES["D"]),
                             "L": (opts["loss_col"], ALIASES["L"]),
                             "U": (opts["u_col"], ALIASES["U"])})  # fmt: skip
    if "budget" in need and cols["budget"] == "budget" and "budget_kind" in header:
        kinds = {str(r.get("budget_kind")) for r in raw.rows} - {"flops", "None", ""}
        if kinds:  # a grid of token budgets (sweep budget_kind "tokens"): D, not C
            raise DataError(
                f"{path}: column budget holds budgets in {', '.join(sorted(kinds))} (column "
                "budget_kind), not FLOPs: these runs are no IsoFLOP profiles; fit them with "
                "--law chinchilla"
            )
    run_id, groups = None, None
    if opts["run_cols"]:  # rows are checkpoints of runs: a run repeats, one row per checkpoint
        for c in opts["run_cols"]:
            if c not in header:
                raise DataError(
                    f"{path}: --run-col {c!r}: no such column (columns: {', '.join(header)})"
                )
        seen: dict = {}
        groups = np.array([
            run_name(tuple(str(r.get(c)) for c in opts["run_cols"]), seen, raw.where(i),
                     opts["run_cols"])
            for i, r in enumerate(raw.rows)
        ])  # fmt: skip
        conv["runs"] = int(np.unique(groups).size)
        if "run_id" in header:
            run_id = [r.get("run_id") for r in raw.rows]
    elif "run_id" in header:
        run_id = [r.get("run_id") for r in raw.rows]
        seen: dict = {}
        for i, rid in enumerate(run_id):
            if rid in seen:
                at = "lines" if raw.lines is not None else "rows"
                pos = raw.lines if raw.lines is not None else raw.index
                raise DataError(
                    f"{path}: duplicate run_id {rid!r} on {at} {pos[seen[rid]]} and {pos[i]}"
                )
            seen[rid] = i
    data = {}
    used = set(need) | {"L"}
    if "D" in used and cols["D"] is None:
        used |= {"C", "N"}  # D will be derived from C / (6N)
    if "C" in used and cols["C"] is None:
        used |= {"N", "D"}  # C will be 6ND (power-c and isoflop of a params/tokens table)
    for k, col in cols.items():
        if col is not None and k in used:
            data[k] = numbers(raw, col)
            conv[k] = col
    if "L" not in data:
        RunsTable(source=path, conventions=conv).require("fit", "L")
    with np.errstate(over="ignore", under="ignore"):
        if "D" in used and "D" not in data and "C" in data and "N" in data:
            data["D"] = data["C"] / (6.0 * data["N"])
            conv["D"] = f"C/(6N) from {cols['C']!r}"
            _check_derived(raw, data["D"], "D = C/(6N)", (cols["C"], cols["N"]))
        if "C" in used and "C" not in data and "N" in data and "D" in data:
            data["C"] = 6.0 * data["N"] * data["D"]
            conv["C"] = "6ND"
            _check_derived(raw, data["C"], "C = 6ND", (cols["N"], cols["D"]))
    if "budget" not in data and "C" in data and cols["budget"] is not None:
        budget = _budgets_for_cuts(raw, cols["budget"])
        if budget is not None:  # not in conventions: no law fits on it (points_sha256)
            data["budget"] = budget
    if "U" not in data and cols["U"] is not None:
        data["U_seeds"] = _optional_numbers(raw, cols["U"])
    if groups is not None and "N" in data:
        _check_one_size_per_run(raw, path, opts["run_cols"], groups, data["N"])
    read_with = {k: _norm(v) for k, v in opts.items()}
    table = RunsTable(
        **data, run_id=run_id, groups=groups, source=path, conventions=conv, sha256=raw.sha256,
        read_with=read_with,
    )  # fmt: skip
    if not table.sha256:
        table.sha256 = table.points_sha256()
    if opts["min_over"]:
        before = len(table)
        table = min_over(table, raw, opts["min_over"], conv)
        removed.append((f"--min-over {','.join(opts['min_over'])}", before - len(table)))
    k = opts["drop_highest"]
    if k and k >= len(table):
        left = " left after --where/--min-over" if conv["filters"] or opts["min_over"] else ""
        raise ConfigError(
            f"{path}: --drop-highest {k} must be less than the number of rows{left} ({len(table)})"
        )
    if k:
        order = np.argsort(table.L, kind="stable")
        table = table.subset(np.isin(np.arange(len(table)), order[: len(table) - k]))
        conv["filters"].append(f"drop the {k} highest-loss rows")
        removed.append((f"--drop-highest {k}", k))
    table.rows_read, table.removed = rows_read, removed
    table.mixed = _mixed(raw.rows, header)
    return table


MIXED = ("arch", "tokenizer_id")
"""Columns of a runs table whose values should be one in a law's points: a loss per token
of another tokenizer is another quantity, and two architectures scale apart."""


def _mixed(rows: list[dict], header) -> dict:
    out = {}
    for col in (c for c in MIXED if c in header):
        counts = Counter(str(v) for r in rows if (v := r.get(col)))
        if len(counts) > 1:
            out[col] = dict(counts)
    return out


def joined_name(key: tuple) -> str:
    """A run's name from its --run-col values: joined by '/'."""
    return "/".join(str(k) for k in key)


def run_name(key: tuple, seen: dict, where: str, run_cols) -> str:
    """A run's name: its --run-col values joined by '/'. `seen` maps the names given so far
    to their values: ('a/b', 'c') and ('a', 'b/c') joined into one run, silently."""
    rid = joined_name(key)
    if seen.setdefault(rid, key) != key:
        raise DataError(
            f"{where}: --run-col {', '.join(run_cols)}: {list(key)} and {list(seen[rid])} "
            f"both name run {rid!r} ('/' joins them)"
        )
    return rid


def _optional_numbers(raw: RawTable, col: str) -> np.ndarray | None:
    """Column `col` where no law reads it, or None where a cell is no number > 0."""
    try:
        return numbers(raw, col)
    except DataError:
        return None


def _budgets_for_cuts(raw: RawTable, col: str) -> np.ndarray | None:
    """The IsoFLOP budget of each row where a law reads none (chinchilla's backtest by C
    cuts between budgets: intervals.thresholds_for); None where the column holds budgets
    of other than FLOPs (budget_kind) or a cell that is no number > 0."""
    kinds = {str(r.get("budget_kind")) for r in raw.rows} if "budget_kind" in raw.header else set()
    if kinds - {"flops", "None", ""}:
        return None
    return _optional_numbers(raw, col)  # None: the thresholds are then shares of the rows


def _check_one_size_per_run(raw, path, run_cols, groups, N) -> None:
    """Refuse a --run-col under which one run has two model sizes: a run's checkpoints
    share its N, so such a column groups several runs (or is not the run's name), and
    holding out or resampling its groups whole would treat them as one run, silently."""
    first: dict = {}
    for i, (g, n) in enumerate(zip(groups, N, strict=True)):
        j = first.setdefault(g, i)
        if (
            j != i
            and np.isfinite(n)
            and np.isfinite(N[j])
            and not math.isclose(n, N[j], rel_tol=1e-9)
        ):
            at = "lines" if raw.lines is not None else "rows"
            pos = raw.lines if raw.lines is not None else raw.index
            raise DataError(
                f"{path}: --run-col {','.join(run_cols)}: run {str(g)!r} has N {N[j]:g} on {at[:-1]} "
                f"{pos[j]} and N {n:g} on {at[:-1]} {pos[i]}; a run's checkpoints share one "
                "model size: give the column (or columns) that name one run"
            )


def _check_derived(raw: RawTable, x, what: str, columns) -> None:
    """A derived quantity out of float range (a tokens cell of 1e300 made C = 6ND inf, and
    numpy warned of an overflow; then predict named no row) is the row's error."""
    bad = np.flatnonzero(~(np.isfinite(x) & (x > 0)))
    if bad.size:
        i = int(bad[0])
        at = f"line {raw.lines[i]}" if raw.lines is not None else f"row {raw.index[i]}"
        cells = ", ".join(f"{c!r} {raw.rows[i].get(c)}" for c in columns)
        raise DataError(f"{raw.source}: {at}: {what} is {x[i]:g} from {cells}: out of range")


def _one_role_each(cols: dict, opts: dict, need, path: str) -> None:
    """ConfigError when one column would be read as two quantities (`--n-col loss`)."""
    explicit = {"N": "n_col", "D": "d_col", "C": "c_col", "L": "loss_col", "budget": "budget_col"}
    explicit["U"] = "u_col"
    used = [k for k in cols if cols[k] is not None and (k in need or k == "L" or opts[explicit[k]])]
    for i, a in enumerate(used):
        for b in used[i + 1 :]:
            if cols[a] != cols[b] or {a, b} == {"C", "budget"}:  # a budget may be C
                continue
            if opts[explicit[a]] is None and opts[explicit[b]] is None:
                continue  # two aliases of one name: not the user's doing

            def flag(k):
                by = "" if opts[explicit[k]] is not None else " (found by its name)"
                return f"{FLAGS[k]}{by}"

            raise ConfigError(
                f"{path}: column {cols[a]!r} is given to both {flag(a)} and {flag(b)}; "
                f"one column cannot be both {WHAT[a]} and {WHAT[b]}"
            )


def read_csv(path, *, need=("N", "D", "C", "L"), **options) -> RunsTable:
    """Read a runs table from a CSV file: `read_table` for a path (same options)."""
    if not isinstance(path, (str, Path)):
        raise DataError(f"read_csv takes a path, got a {type(path).__name__}; use read_table")
    return read_table(path, need=need, **options)


def as_table(obj, **options) -> RunsTable:
    """`read_table` under its older name (kept for callers of the library)."""
    return read_table(obj, **options)


def data_ranges(t) -> dict:
    """{"N"/"D"/"C"/"U": [smallest, largest]} of the columns RunsTable t has (a fit's
    ranges_: predict and plan warn of inputs far outside them; U: a data-constrained
    fit's unique tokens)."""
    ranges = {k: compute_range(getattr(t, k, None)) for k in ("N", "D", "C", "U")}
    return {k: r for k, r in ranges.items() if r is not None}


def fitted_ranges(t) -> dict:
    """{"N_range"/"D_range"/"U_range": [smallest, largest]} of the N, D and U columns
    RunsTable t has (fit.json's data section: a loaded fit plots over them, and predict
    and plan check them)."""
    return {f"{k}_range": r for k, r in data_ranges(t).items() if k != "C"}


def compute_range(C) -> list[float] | None:
    """[smallest, largest] finite compute among a fit's rows (fit.json's data.C_range: plan
    warns of an extrapolation from it, without reading the table again), or None."""
    if C is None:
        return None
    c = np.asarray(C, dtype=float).ravel()
    c = c[np.isfinite(c) & (c > 0)]
    return [float(c.min()), float(c.max())] if c.size else None
