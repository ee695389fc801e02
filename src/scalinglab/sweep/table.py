"""The runs table, rebuilt from run folders (never from a sweep driver's memory).

A run folder is any folder holding result.json, config.toml or run.toml; the
table has one row per run folder found in DIR, DIR/runs/ or DIR itself. Values
come from result.json (what the trainer measured); a run without a result yet
(pending or interrupted) keeps a row with its planned N and D and an empty loss.
The design's columns (e.g. `budget` of an IsoFLOP sweep) come from sweep.json,
which the sweep driver writes into each run folder before the run starts; a column per
task metric (`recall.acc`) from RUN/tasks.json, once `scalinglab eval --tasks` ran.
"""

import csv
import io
import json
import logging
import math
from pathlib import Path

from scalinglab import runfolder
from scalinglab.errors import ConfigError, DataError, require
from scalinglab.fsio import atomic_write_bytes, atomic_write_text
from scalinglab.models.counting import count

log = logging.getLogger(__name__)

# TrainConfig fields, plus the model's block_size and the optimizer (AdamW, the one the
# trainer has); min_lr is the final learning rate the schedule reached (lr/10 by default)
# and dtype the one the run computed in (result.json's, else the config's).
HYPERPARAMETERS = (
    "lr", "min_lr", "schedule", "warmup", "cooldown_frac", "batch_size", "grad_accum",
    "block_size", "seed", "dtype", "optimizer", "weight_decay", "beta1", "beta2", "grad_clip",
)  # fmt: skip

TOKENIZER_COLUMNS = ("tokenizer", "tokenizer_id")

COLUMNS = (
    "run_id", "arch", "status", "n_layer", "n_embd", "n_head", "params", "params_nonembed",
    "tokens", "flops", "flops_6nd", "loss", "bpb", "wall_seconds", "tokens_per_second",
    "epochs",
    # the hyperparameters, from each run's config (so LR or seed analyses need no folders)
    *HYPERPARAMETERS,
    # settings changed on a resume with --allow-config-change (result.json): 0 for a clean
    # run, so a mixed run is never read as one run of one configuration
    "config_changes",
    # what a loss per token is counted in (result.json): runs of two tokenizers (shards
    # rebuilt between them) are no one law's points; `fit` warns where this column differs
    *TOKENIZER_COLUMNS,
)  # fmt: skip
FORMATS = ("csv", "jsonl", "parquet")


def study_folders(root: str | Path) -> list[tuple[str, Path]]:
    """(role, folder) of each part of a study folder, as its study.json lists them (the
    sweeps, seed repeats, backtest); [] for any other folder."""
    manifest = Path(root) / "study.json"
    try:
        folders = json.loads(manifest.read_text(encoding="utf-8")).get("folders", {})
        parts = [(role, Path(root) / sub) for role, subs in folders.items() for sub in subs]
    except (OSError, ValueError, AttributeError, TypeError):
        return []
    return [(role, f) for role, f in parts if f.is_dir()]


def find_run_dirs(root: str | Path) -> list[Path]:
    """Run folders in `root`, `root/runs`, or `root` itself, sorted by name; in a study
    folder, those of each of its parts (`study_folders`)."""
    root = Path(root)
    if not root.is_dir():
        if root.exists():  # `eval runs/a/config.toml` said "not found"
            raise DataError(f"{root}: not a folder (give a run folder or a folder of runs)")
        raise DataError(f"runs folder not found: {root}")
    if parts := study_folders(root):
        return sorted({d for _, f in parts for d in find_run_dirs(f)}, key=lambda p: p.name)

    is_run = runfolder.is_run_folder
    if is_run(root) and not (root / "runs").is_dir():
        return [root]
    found = {
        p for base in (root, root / "runs") if base.is_dir() for p in base.iterdir() if is_run(p)
    }
    if root / "runs" in found:  # the folder of the runs, not one: a trainer that wrote
        found.discard(root / "runs")  # {out}/../result.json made it a phantom run, fitted
        marks = [m for m in runfolder.MARKERS if (root / "runs" / m).exists()]
        if str(root / "runs") not in _SAID:  # once, however many readers list the folder
            _SAID.add(str(root / "runs"))
            log.warning("%s holds %s, as a run folder would, though it is the folder of the runs "
                        "(written there by a trainer outside its own --out?): left out",
                        root / "runs", ", ".join(marks))  # fmt: skip
    return sorted(found, key=lambda p: p.name)


_SAID: set[str] = set()


def run_row(run_dir: str | Path, items: dict | None = None) -> dict:
    """One row of the runs table for one run folder (`items`: `task_items` of its table)."""
    run_dir = Path(run_dir)
    result = runfolder.read_result(run_dir) or {}
    meta = runfolder.read_sweep_meta(run_dir)
    planned = meta.get("planned", {})
    cfg = runfolder.read_config(run_dir)
    row = dict.fromkeys(COLUMNS)
    row["run_id"] = run_dir.name
    if cfg is not None:
        m = cfg.model
        row.update(arch=m.arch, n_layer=m.n_layer, n_embd=m.n_embd)
        row["n_head"] = m.n_head if m.arch == "gpt" else 0
        if m.vocab_size:
            c = count(m, m.vocab_size)
            row.update(params=c.params, params_nonembed=c.params_nonembed)
        t = cfg.train
        row.update({k: getattr(t, k) for k in HYPERPARAMETERS if hasattr(t, k)})
        # a config without a resolved optimizer was written before --optimizer: AdamW
        opt = t.optimizer if t.optimizer != "auto" else "adamw"
        row.update(min_lr=t.final_lr, block_size=m.block_size, optimizer=opt)
        if opt == "sgd":  # plain SGD: no decay, no moments, whatever AdamW's settings say
            row.update(weight_decay=0.0, beta1=None, beta2=None)
    for k in ("params", "params_nonembed", "tokens", "flops", "flops_6nd"):
        if row.get(k) is None:
            row[k] = planned.get(k)
    if result:
        for k in ("arch", "params", "params_nonembed", "tokens", "flops", "flops_6nd"):
            if result.get(k) is not None:
                row[k] = result[k]
        row["loss"] = result.get("val_loss")
        row["bpb"] = result.get("val_bpb")
        row["wall_seconds"] = result.get("wall_seconds")
        row["tokens_per_second"] = result.get("tokens_per_second")
        row["epochs"] = result.get("epochs")  # passes over the train split: > 1 repeats data
        row["config_changes"] = result.get("config_changes", 0)
        for k in TOKENIZER_COLUMNS:
            row[k] = result.get(k)
        six_nd(row, result, planned)
        if result.get("dtype"):
            row["dtype"] = result["dtype"]  # resolved: "auto" became float32 or bfloat16
        if result.get("warmup") is not None:  # what the schedule used (config: asked)
            row["warmup"] = result["warmup"]
    row["status"] = runfolder.table_status(run_dir, result)
    for k, v in meta.get("group", {}).items():
        row[k] = v
    row.update(task_columns(run_dir, items))
    return row


def finite_positive(x) -> bool:
    """A number (not a bool) that is finite and > 0: a loss, N, D or C a row can use."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def count_bad_losses_as_diverged(rows: list[dict], where) -> list[str]:
    """A run whose result.json says completed without a finite positive val_loss (another
    trainer's, copied in or edited by hand: scalinglab's trainer writes diverged, and a
    sweep keeps such a file as result.invalid-K.json, docs/interfaces.md) is counted as
    diverged, which its loss says it is, and named; it was counted as completed and left
    out of the fits without a word (`report`), or listed as completed with an empty loss
    (`runs`; `fit` then called it a missing value). `where(row)`: the run's folder, as
    the warning names it."""
    out = []
    for r in rows:
        loss = r.get("loss")
        if r["status"] != "completed" or finite_positive(loss):
            continue
        if loss is None:
            what = "without a val_loss"
        elif isinstance(loss, int | float) and math.isfinite(loss):
            what = f"with a loss of {loss:g}, not positive"
        else:
            what = f"with a non-finite loss ({loss})"
        r["status"] = "diverged"
        out.append(f"{where(r)}: completed {what}; counted as diverged, left out of the fits")
    return out


def six_nd(row: dict, result: dict, planned: dict) -> None:
    """C of a run whose result.json gives another N or D than planned but no C: 6·N·D of
    its own N and D (the planned C was of the planned N and D, so the row would hold a C
    its N and D do not make)."""
    n, d = row.get("params"), row.get("tokens")
    if not all(isinstance(x, int | float) and x > 0 for x in (n, d)):
        return
    if (n, d) == (planned.get("params"), planned.get("tokens")):
        return
    for k in ("flops_6nd", "flops"):
        if result.get(k) is None:
            row[k] = 6.0 * n * d


TASK_METRICS = ("acc", "acc_norm", "bpb", "exact_match", "chrf")


def task_columns(run_dir: Path, items: dict | None = None) -> dict:
    """`TASK.METRIC` columns (e.g. `recall.acc`) of the run's newest task results
    (RUN/tasks.json, `scalinglab eval --tasks`; docs/tasks.md), on `items` where given."""
    return {
        f"{name}.{m}": r[m]
        for name, r in sorted(runfolder.final_tasks(run_dir, items).items())
        for m in TASK_METRICS
        if m in r
    }


def task_items(run_dirs) -> dict[str, str]:
    """{task: sha256 of the items its column shows}: of a task scored on several item sets
    (the study's 4000 items, and a quick `eval --tasks --task-items 50` of one run), the set
    the most runs were scored on (then the one of more items), so that a column never mixes
    scores on different items: a run not scored on that set has none in the column."""
    runs: dict[tuple, set] = {}  # (task, sha256) -> the runs scored on it
    size: dict[tuple, int] = {}
    newest: dict[tuple, float] = {}  # a tie: the set scored last (a task file corrected)
    for d in run_dirs:
        for r in runfolder.read_tasks(d):
            key = (r.get("task"), r.get("sha256"))
            if key[0] and key[1]:
                runs.setdefault(key, set()).add(str(d))
                size[key] = max(size.get(key, 0), r.get("n") or 0)
                newest[key] = max(newest.get(key, 0.0), runfolder.scored_at(r))
    best: dict[str, tuple] = {}
    for (task, sha), who in runs.items():
        rank = (len(who), size[task, sha], newest[task, sha], sha)
        if task not in best or rank > best[task]:
            best[task] = rank
    return {task: rank[3] for task, rank in best.items()}


def runs_table(root: str | Path) -> list[dict]:
    """The runs table: one row (a dict) per run folder under `root`.

    Args:
        root: a sweep folder, its `runs/` folder, one run folder, or a study folder
            (every run of its sweeps, seed repeats and backtest, with a `role` column).

    Returns:
        Rows sorted by design group, arch and size, with the columns of
        docs/design.md's runs table (`pandas.DataFrame(rows)` makes a frame of it).
    """
    dirs = find_run_dirs(runfolder.folder_arg(root, "runs_table: root", file_ok=True))
    items = task_items(dirs)
    rows = [run_row(d, items) for d in dirs]
    role = {d.name: r for r, f in study_folders(root) for d in find_run_dirs(f)}
    for row in rows if role else ():  # a study's: which part each run is
        row["role"] = role[row["run_id"]]

    return sorted(rows, key=row_order)


def row_order(r: dict) -> tuple:
    """The runs table's order: by budget, tokens per parameter, architecture and size, then
    by loss, so that runs alike in all of these (seed repeats, an LR sweep) do not come in
    the order of their folders' names (a fit's bootstrap draws follow the rows: renamed
    folders drew other resamples); the name last, for runs without a loss."""
    loss = r.get("loss")
    return (
        r.get("budget") or 0,
        r.get("tokens_per_param") or 0,
        str(r.get("arch")),
        r.get("params") or 0,
        loss if isinstance(loss, int | float) and math.isfinite(loss) else math.inf,
        r["run_id"],
    )


def columns(rows: list[dict]) -> list[str]:
    """The table's columns: the fixed ones, then any others the rows carry, in order."""
    extra = []
    for r in rows:
        extra += [k for k in r if k not in COLUMNS and k not in extra]
    return [*COLUMNS, *extra]


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return repr(v) if isinstance(v, float) else str(v)


def to_csv(rows: list[dict]) -> str:
    """The rows as CSV text (empty cells for missing or non-finite values)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = columns(rows)
    w.writerow(cols)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in cols])
    return buf.getvalue()


def write_csv(rows: list[dict], path: str | Path) -> None:
    """Write the rows as a CSV file, atomically."""
    atomic_write_text(path, to_csv(rows))


def to_jsonl(rows: list[dict]) -> str:
    """The rows as JSON lines, one object per run with every column (null where empty)."""
    cols = columns(rows)
    return "".join(
        json.dumps({c: _json_value(r.get(c)) for c in cols}, allow_nan=False) + "\n" for r in rows
    )


def _json_value(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


def write_table(rows: list[dict], path: str | Path, fmt: str | None = None) -> str:
    """Write the runs table atomically as CSV, JSON lines or Parquet; return the format.

    Args:
        rows: the runs table (runs_table's rows).
        path: the file to write.
        fmt: "csv", "jsonl" or "parquet"; None: from the suffix of `path`
            (.csv, .jsonl or .json, .parquet or .pq).

    Raises:
        ConfigError: an unknown format or suffix.
        MissingExtraError: Parquet without pyarrow (the [dataframe] extra).
    """
    path = Path(path)
    if fmt is None:
        by_suffix = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
        fmt = by_suffix.get(path.suffix.lower(), {".pq": "parquet"}.get(path.suffix.lower()))
        if fmt is None:
            raise ConfigError(
                f"{path}: cannot tell the format from the suffix; give one of {', '.join(FORMATS)}"
            )
    if fmt == "csv":
        write_csv(rows, path)
    elif fmt == "jsonl":
        atomic_write_text(path, to_jsonl(rows))
    elif fmt == "parquet":
        atomic_write_bytes(path, to_parquet(rows))
    else:
        raise ConfigError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


def to_parquet(rows: list[dict]) -> bytes:
    """The rows as the bytes of a Parquet file (needs pyarrow)."""
    pa = require("pyarrow", "dataframe", "writing the runs table as Parquet")
    pq = require("pyarrow.parquet", "dataframe", "writing the runs table as Parquet")
    cols = columns(rows)
    table = pa.Table.from_pylist([{c: _json_value(r.get(c)) for c in cols} for r in rows])
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _short(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3g}"
    return str(v)


def format_table(rows: list[dict], cols: list[str] | None = None) -> str:
    """An aligned plain-text table (for the terminal); by default the hyperparameter
    columns only where they differ between rows, config_changes only where a run has some."""
    if cols is None:
        cols = [
            c
            for c in columns(rows)
            if (
                c not in (*HYPERPARAMETERS, *TOKENIZER_COLUMNS)
                or len({repr(r.get(c)) for r in rows}) > 1
            )
            and (c != "config_changes" or any(r.get(c) for r in rows))
        ]
    cells = [cols] + [[_short(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells
    )
