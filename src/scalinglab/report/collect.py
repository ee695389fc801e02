"""What a report reads: the runs of a study or sweep folder, their loss curves, the study's
files (study.json, prediction.json).

A study folder holds `study.json`, which names its sub-folders and their role
(`sweep`: the runs the laws are fitted on; `seed`: repeats with other seeds;
`backtest`: the predicted run). Any other folder is read as one sweep (or a folder
of run folders): every run in it has the role `sweep`.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from scalinglab import runfolder
from scalinglab.errors import DataError
from scalinglab.plan.analysis import PREDICTORS
from scalinglab.sweep.table import (
    count_bad_losses_as_diverged,
    find_run_dirs,
    finite_positive,
    row_order,
    run_row,
    task_items,
)

STUDY_JSON = "study.json"
PREDICTION_JSON = "prediction.json"
ROLES = ("sweep", "seed", "backtest")


@dataclass
class Collected:
    root: Path
    rows: list[dict]
    """Runs-table rows plus `role`, `seed` and `dir` (the run folder)."""
    study: dict = field(default_factory=dict)
    """study.json, or {} for a plain sweep folder."""
    prediction: dict | None = None
    warnings: list[str] = field(default_factory=list)
    """What the report leaves out, one line each (`report` prints them, summary.json
    keeps them): a run counted as diverged, a completed run without N or D, a folder
    study.json lists and is not there."""

    def by_role(self, *roles: str) -> list[dict]:
        return [r for r in self.rows if r["role"] in roles]

    @property
    def archs(self) -> list[str]:
        seen = []
        for r in self.by_role("sweep"):
            if r.get("arch") and r["arch"] not in seen:
                seen.append(r["arch"])
        return sorted(seen, key=lambda a: (a != "gpt", a))


def read_json(path: Path, what: str) -> dict:
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file ({what})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: expected a JSON object ({what})")
    return d


def _seed(run_dir: Path):
    return (runfolder.read_config_dict(run_dir) or {}).get("train", {}).get("seed")


def _rows(parts: list[tuple[str, Path]]) -> list[dict]:
    """The rows of the runs of each (role, folder), each folder's in the runs table's order
    (not by its folders' names: the fits' bootstrap draws follow the rows, and renamed
    folders drew other resamples); task columns on one item set each."""
    dirs = [(k, role, d) for k, (role, folder) in enumerate(parts) for d in find_run_dirs(folder)]
    items = task_items(d for _, _, d in dirs)
    out = []
    for k, role, d in dirs:
        row = run_row(d, items)
        row.update(role=role, seed=_seed(d), dir=str(d))
        out.append((k, row))
    return [row for _, row in sorted(out, key=lambda kr: (kr[0], row_order(kr[1])))]


def collect(root: str | Path) -> Collected:
    """Every run under a study or sweep folder, with its role."""
    root = Path(root)
    if not root.is_dir():
        what = "not a folder" if root.exists() else "no such folder"
        raise DataError(f"{root}: {what} (give a study or sweep folder)")
    study = {}
    if (root / STUDY_JSON).exists():
        study = read_json(root / STUDY_JSON, "the study's manifest")
        check_study(root / STUDY_JSON, study)
    parts, warnings = [], []
    if study:
        for role, subs in study.get("folders", {}).items():
            if role not in ROLES:
                raise DataError(f"{root / STUDY_JSON}: folders: unknown role {role!r}")
            for sub in subs:
                if (root / sub).is_dir():
                    parts.append((role, root / sub))
                else:  # a study makes each folder as it starts its runs: not yet, or gone
                    warnings.append(
                        f"study.json lists {sub}, which is not there: its runs are not in this "
                        "report (a study still running makes it when it starts them; if the "
                        "study has ended, the folder was moved or deleted)"
                    )
    else:
        check_not_a_run_folder(root)
        parts = [("sweep", root)]
    rows = _rows(parts)
    if not rows:
        raise DataError(f"{root}: no run folders found (looked in {root} and {root / 'runs'})")
    warnings += count_bad_losses_as_diverged(rows, lambda r: r["dir"])
    warnings += drop_budgets_not_in_flops(rows)
    warnings += name_runs_without_n_or_d(rows)
    warnings += name_odd_metrics_lines(rows)
    check_one_tokenizer(root, rows)
    pred = None
    if (root / PREDICTION_JSON).exists():
        pred = read_json(root / PREDICTION_JSON, "the backtest's prediction")
        check_prediction(root / PREDICTION_JSON, pred)
    return Collected(root, rows, study, pred, warnings)


def drop_budgets_not_in_flops(rows: list[dict]) -> list[str]:
    """A grid of `tokens` budgets (the sweep's `budget_kind = "tokens"`) puts its D in the
    budget column: read as FLOPs, it made IsoFLOP parabolas over N at one D each, a
    "frontier" and a plan at 10x a token count taken for C (D = 104 tokens at 3.2e+08
    FLOPs). Such a run's budget is kept as `budget_tokens`; C is 6·N·D, as a grid's."""
    moved: dict[str, int] = {}
    for r in rows:
        kind = r.get("budget_kind")
        if kind not in (None, "flops") and "budget" in r:
            r[f"budget_{kind}"] = r.pop("budget")
            moved[str(kind)] = moved.get(str(kind), 0) + 1
    return [
        f"{n} run(s) have budgets in {kind}, not FLOPs (a grid design): they are no IsoFLOP "
        "profiles, so no IsoFLOP fit or frontier is made of them; C = 6·N·D"
        for kind, n in moved.items()
    ]


def check_not_a_run_folder(root: Path) -> None:
    """Refuse one run's folder: find_run_dirs takes it as a folder of that one run, and
    the report wrote report.html and summary.json into the run folder, saying only "no
    fit". A folder of one run (DIR/runs/RUN, or DIR/RUN) is still a sweep."""
    if runfolder.is_run_folder(root) and not (root / "runs").is_dir():
        files = ", ".join(m for m in runfolder.MARKERS if (root / m).exists())
        raise DataError(
            f"{root} is one run's folder ({files}), not a sweep or study folder: report "
            f"takes the folder that holds run folders; for one run see scalinglab eval {root}"
        )


def name_odd_metrics_lines(rows: list[dict]) -> list[str]:
    """The first line of each loss curve the report draws (a sweep's or backtest's run)
    whose metrics.jsonl line is not a JSON object (another trainer's; a torn last line
    excepted): read_curve skips it, and the curve lost its points without a word."""
    out = []
    for r in rows:
        if r["role"] not in ("sweep", "backtest"):
            continue
        problems = runfolder.metrics_problems(r["dir"])
        if problems:
            more = f" (and {len(problems) - 1} more lines)" if len(problems) > 1 else ""
            out.append(f"{problems[0]}{more}: left out of the loss curves")
    return out


def name_runs_without_n_or_d(rows: list[dict]) -> list[str]:
    """A completed run of the fits (a sweep's or seed's) with no positive N or D: no
    `params` or `tokens` in result.json (another trainer's: docs/interfaces.md's table
    falls back to config.toml's shape and the sweep's plan, which a folder copied in may
    lack). Its loss is valid, so it stays completed (the contract's only reason to count a
    completed run otherwise is its loss), and is named: analysis.completed left it out of
    the fits without a word."""
    out = []
    for r in rows:
        if r["status"] != "completed" or r["role"] not in ("sweep", "seed"):
            continue
        missing = []
        for k, what in (("params", "N"), ("tokens", "D")):
            v = r.get(k)
            if v is None:
                missing.append(f"without {k} ({what})")
            elif not (_number(v) and v > 0):
                missing.append(f"with {k} {v!r} ({what}), not a positive number")
        if missing:
            out.append(
                f"{r['dir']}: completed {' and '.join(missing)} (result.json, else the "
                "run's config.toml or its sweep's plan); a valid loss, left out of the fits"
            )
    return out


def _number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def check_study(path: Path, d: dict) -> None:
    """DataError naming study.json and the key a report cannot read as written (it ended
    in a traceback, or a newer format_version was read as this one's)."""
    runfolder.check_format_version(path, d, 1)
    folders = d.get("folders", {})
    if not isinstance(folders, dict) or not all(
        isinstance(subs, list) and all(isinstance(x, str) and x for x in subs)
        for subs in folders.values()
    ):
        raise DataError(f"{path}: folders must map a role to a list of folder names")
    factors = d.get("plan_factors")
    if factors is not None and not (
        isinstance(factors, list) and factors and all(_number(f) and f > 0 for f in factors)
    ):
        raise DataError(f"{path}: plan_factors must be a list of positive numbers, got {factors!r}")
    if d.get("predictor") is not None and d["predictor"] not in PREDICTORS:
        raise DataError(
            f"{path}: predictor must be one of {', '.join(PREDICTORS)}, got {d['predictor']!r}"
        )


def check_prediction(path: Path, d: dict) -> None:
    """DataError naming prediction.json and the key a report cannot score (it ended in a
    KeyError or TypeError, or a newer format_version was read as this one's)."""
    runfolder.check_format_version(path, d, 1)
    if not (_number(d.get("predicted_loss")) and d["predicted_loss"] > 0):
        raise DataError(
            f"{path}: predicted_loss must be a positive number, got {d.get('predicted_loss')!r}"
        )
    for k in ("interval", "fit_interval", "prediction_interval", "noise_interval"):
        v = d.get(k)
        if v is not None and not (
            isinstance(v, list) and len(v) == 2 and all(map(_number, v)) and 0 <= v[0] <= v[1]
        ):  # [0.9, 0.1] was scored 'OUTSIDE' and stored in summary.json as written
            raise DataError(f"{path}: {k} must be [low, high], two numbers, got {v!r}")
    for k in ("run_name", "arch"):
        if not (isinstance(d.get(k), str) and d[k]):
            raise DataError(f"{path}: {k} must be the backtest run's {k.split('_')[-1]}, got "
                            f"{d.get(k)!r}")  # fmt: skip
    for k in ("params", "tokens", "flops", "budget"):  # "many" was a ValueError traceback
        v = d.get(k)
        if v is not None and not (_number(v) and v > 0):
            raise DataError(f"{path}: {k} must be a positive number, got {v!r}")
    level = d.get("ci_level")
    if level is not None and not (_number(level) and 0 < level < 1):
        raise DataError(f"{path}: ci_level must be a number in (0, 1), got {level!r}")
    made = (*PREDICTORS, "data-constrained")  # the last where the backtest repeats data
    if d.get("predictor") is not None and d["predictor"] not in made:
        raise DataError(f"{path}: predictor must be one of {', '.join(made)}, got "
                        f"{d['predictor']!r}")  # fmt: skip


def check_one_tokenizer(root: Path, rows: list[dict]) -> None:
    """Refuse runs trained with different tokenizers (result.json's tokenizer_id): a loss
    in nats per token of one is no loss of the other, and one law fitted to both, or a
    plan or backtest across them, would be numbers without a meaning. Runs that record
    no tokenizer (not finished, another trainer) are not checked. Byte tokenizers are one
    tokenizer whatever their file's bytes (the 256 byte values, nothing learned): shards
    rebuilt by a newer scalinglab or tokenizers library may hash differently."""
    seen: dict[str, list[str]] = {}
    kind: dict[str, str] = {}
    for r in rows:
        res = runfolder.read_result(r["dir"]) or {}
        if tid := res.get("tokenizer_id"):
            tid = "bytes" if res.get("tokenizer") == "byte" else str(tid)
            seen.setdefault(tid, []).append(str(r["dir"]))
            kind[tid] = str(res.get("tokenizer") or "unknown")
    if len(seen) < 2:
        return
    parts = sorted(seen.items(), key=lambda kv: -len(kv[1]))
    what = "; ".join(
        f"{kind[t] if t == 'bytes' else f'{kind[t]} {t}'}: {len(ds)} run{'s' if len(ds) > 1 else ''} ({ds[0]}"
        + (", ..." if len(ds) > 1 else "")
        + ")"
        for t, ds in parts
    )
    raise DataError(
        f"{root}: its runs were trained with different tokenizers ({what}); a loss per token "
        "of one is not comparable with another's: report the runs of each tokenizer apart"
    )


def read_curve(run_dir: str | Path) -> dict:
    """A run's logged training curve: tokens, flops (0 where a line has none), train_loss,
    and the final validation loss. Points whose tokens or loss are not finite positive
    numbers are left out (another trainer's metrics.jsonl may hold any JSON there)."""
    tokens, flops, loss = [], [], []
    final = None
    for d in runfolder.read_metrics(run_dir):  # a run still going may have a torn last line
        t, tl, c = d.get("tokens"), d.get("train_loss"), d.get("flops")
        if not finite_positive(t):
            continue
        if finite_positive(tl):
            tokens.append(float(t))
            flops.append(float(c) if finite_positive(c) else 0.0)
            loss.append(float(tl))
        if d.get("final") and finite_positive(d.get("val_loss")):
            final = (float(t), float(d["val_loss"]))
    return {"tokens": tokens, "flops": flops, "train_loss": loss, "final": final}
