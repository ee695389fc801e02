"""The study: prepare the corpus, sweep, fit, predict, backtest, report — resumable.

Layout of the study folder DIR::

    DIR/study.json             what the study is (its spec, its folders and their roles)
    DIR/sweeps/ARCH/runs/...   one sweep per architecture (role: sweep): IsoFLOP runs,
                               or a WSD ladder's branches
    DIR/sweeps/ARCH/stable/runs/...  a WSD ladder's stable trunks (role: trunk; no fit
                               reads them: their checkpoints seed the branches)
    DIR/seed/runs/...          sweep runs repeated with other seeds (role: seed; a WSD
                               size's trunks in DIR/seed/stable)
    DIR/prediction.json        the backtest's prediction, written BEFORE its run exists
    DIR/backtest/runs/...      the predicted run (role: backtest)
    DIR/report.html, DIR/summary.json, DIR/*.png

Order, over one executor running `workers` trainers at a time (sweep/executors.py:
local threads, Ray tasks or submitit jobs), longest runs first: (1) the
backtest architecture's sweep and the seed repeats; the other architectures' runs
fill idle workers; (2) once (1) is done, the fits and the prediction for the
compute-optimal run at the backtest budget, written to disk; (3) that run: by
default (`[backtest] alone`) once every other run has ended, alone, on all the
study's threads (workers x threads per run) — the study's largest run ends soonest
so — else on the next free worker, beside the runs still going; (4) when
everything is done, the report. The study keeps the
queue and hands the executor a run whenever a worker is free. Rerunning skips
what is done: finished runs are skipped by the sweep machinery, and an existing
prediction is reused, never recomputed after its run has started. A WSD branch waits
in the queue until its trunk has finished, then starts from the trunk's checkpoint.
"""

import contextlib
import dataclasses
import hashlib
import heapq
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from scalinglab.config import ModelConfig
from scalinglab.data.shards import read_manifest
from scalinglab.data.tokenizers import KINDS
from scalinglab.data.writer import prepare
from scalinglab.errors import ConfigError, DataError, FitError, ScalingLabError, SweepError
from scalinglab.fsio import atomic_write_json
from scalinglab.models.counting import count as count_params
from scalinglab.plan import analysis as an
from scalinglab.report import build_report
from scalinglab.report.collect import PREDICTION_JSON, STUDY_JSON, collect, read_json
from scalinglab.runfolder import FINISHED, is_finished, read_result
from scalinglab.study import tasks as study_tasks
from scalinglab.study.spec import (
    MIN_BACKTEST_FACTOR,
    StudySpec,
    in_spec,
    parse_study,
    study_dict,
    sweep_dict,
)
from scalinglab.sweep import design, driver
from scalinglab.sweep.design import MIN_SIZES_PER_BUDGET, STABLE_DIR, PlannedRun, sizes_per_budget
from scalinglab.sweep.estimate import estimate_seconds
from scalinglab.sweep.executor_base import Executor
from scalinglab.sweep.executors import ExecutorConfig, make_executor
from scalinglab.sweep.spec import SweepSpec, parse_spec
from scalinglab.train.trackers import check_loggers

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
FIT_SECONDS = 20.0  # fits and the report: a stated allowance, not a measurement


FIT_ROLES = ("sweep", "seed")
"""The roles of the runs a study's fits use (and their cost): the sweep and its seed
repeats (a WSD ladder's trunks count through the steps they share with its branches)."""


@dataclass
class Part:
    role: str
    """sweep, seed, backtest, or trunk (a WSD ladder's stable runs: not a fitted table)."""
    folder: str
    spec: SweepSpec
    runs: list[PlannedRun]


def _parts(role: str, folder: str, spec: SweepSpec, runs: list[PlannedRun]) -> list[Part]:
    """The parts of one planned sweep: a WSD ladder's trunks go to FOLDER/stable."""
    stages = design.stages(runs)
    if len(stages) == 1:
        return [Part(role, folder, spec, runs)]
    return [Part("trunk", f"{folder}/{STABLE_DIR}", spec, stages[0].runs),
            Part(role, folder, spec, stages[1].runs)]  # fmt: skip


def _flops_6nd(run: PlannedRun, tokens: float | None = None) -> float:
    return 6.0 * run.counts.params * (run.tokens if tokens is None else tokens)


def fit_cost(parts: list[Part], arch: str) -> dict:
    """What the fits of `arch` cost: `flops`, the summed 6·N·D of every run they use
    (seed repeats included; a WSD branch counts only the steps after its trunk's
    checkpoint, the trunk once), and `largest`, the largest C = 6·N·D of a fitted run."""
    total, largest = 0.0, 0.0
    for p in parts:
        if p.role not in (*FIT_ROLES, "trunk") or p.spec.archs != [arch]:
            continue
        for r in p.runs:
            if r.seed is None:
                total += _flops_6nd(r)
            else:  # a branch: from its trunk's checkpoint to its end
                total += _flops_6nd(r, r.tokens - r.seed.step * (r.tokens // r.steps))
            if p.role != "trunk":
                largest = max(largest, _flops_6nd(r))
    return {"flops": total, "largest": largest}


@dataclass
class StudyPlan:
    shards: Path
    corpus: str
    parts: list[Part]
    backtest_guess: PlannedRun
    threads: int
    workers: int
    alone: bool = True  # the backtest trains last, on workers × threads threads
    cores: int | None = None  # ... at most this machine's cores, where they are shared
    backtest_known: bool = False  # its run is the prediction's, not a guess
    estimates: dict[str, float] = field(default_factory=dict)
    done: set = field(default_factory=set)

    @property
    def backtest_threads(self) -> int:
        """The backtest run's torch threads: all the study's when it trains alone (no more
        than `cores`: 4 workers of 1 thread on 2 cores gave it 4 threads on 2 cores)."""
        if not self.alone:
            return self.threads
        return min(self.threads * self.workers, max(self.threads, self.cores or 1 << 30))

    @property
    def pool_runs(self) -> list[tuple[Part, PlannedRun]]:
        return [(p, r) for p in self.parts for r in p.runs]

    def seconds(self, first_arch: str) -> dict:
        """Estimated wall seconds, simulating the pool: the backtest architecture's runs
        first, the backtest as soon as they are done and fitted (or, `alone`, once every
        other run is done too), the rest in between."""
        todo = [(r.arch, self._seconds(r)) for _, r in self.pool_runs
                if r.name not in self.done]  # fmt: skip
        first = sorted((s for a, s in todo if a == first_arch), reverse=True)
        rest = sorted((s for a, s in todo if a != first_arch), reverse=True)
        bt = 0.0 if self.backtest_guess.name in self.done else self.estimates.get("backtest", 0.0)
        free = [0.0] * max(1, self.workers)
        for s in first:
            free[free.index(min(free))] += s
        t_pred = max(free) + FIT_SECONDS / 2  # the fits before the prediction
        placed = False
        if self.alone:  # every other run first, then the backtest on all the threads
            for s in rest:
                free[free.index(min(free))] += s
            start = max(max(free), t_pred)
            return {"total": start + bt + FIT_SECONDS / 2, "sweeps_to_prediction": t_pred,
                    "backtest": bt}  # fmt: skip
        while rest or not placed:
            i = free.index(min(free))
            if not placed and (free[i] >= t_pred or not rest):
                free[i] = max(free[i], t_pred) + bt
                placed = True
            else:
                free[i] += rest.pop(0)
        total = max(free) + FIT_SECONDS / 2
        return {"total": total, "sweeps_to_prediction": t_pred, "backtest": bt}

    def _seconds(self, r: PlannedRun) -> float:
        """A run's estimate (a WSD branch's, estimate_seconds prices from its trunk's
        checkpoint: it was discounted here a second time, 4x too short at 30 of 40 steps)."""
        return self.estimates.get(r.name, 0.0)


def prepare_data(spec: StudySpec, cache: Path) -> tuple[Path, str]:
    """The shards folder: given, or prepared once into the cache (reused when up to date)."""
    d = spec.data
    if d.get("shards"):
        try:
            read_manifest(Path(d["shards"]))
        except DataError as e:  # was named as a sweep's: "spec: data = ..."
            raise DataError(f"{spec.where} [data] shards = {d['shards']!r}: {e.message}") from None
        return Path(d["shards"]), str(d["shards"])
    opts = {k: v for k, v in d.items() if k not in ("sources",)}
    tok = opts.get("tokenizer", "byte")
    # a pretrained tokenizer is a path: its file name and a hash of the path, one folder
    tok_name = (
        tok if tok in KINDS else f"{Path(tok).name}-{hashlib.sha256(tok.encode()).hexdigest()[:8]}"
    )
    name = "-".join(Path(str(s)).name or "corpus" for s in d["sources"]) + f"-{tok_name}"
    extra = {k: v for k, v in sorted(opts.items()) if k != "tokenizer"}
    # Other options or other sources, another folder: two studies never rebuild each
    # other's cache. A path is named whole (a/corpus.txt and b/corpus.txt share a base
    # name: one study rebuilt the other's shards under its running sweep, an audit).
    where = [s if s == "stdlib" or s.startswith("hf:") else os.path.abspath(s)
             for s in d["sources"]]  # fmt: skip
    key = extra | ({"sources": where} if where != ["stdlib"] * len(where) else {})
    if key:
        name += "-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    out = cache / name
    try:
        prepare(list(d["sources"]), out, **opts)
    except DataError as e:
        if e.message.startswith(f"--out {out}: "):  # prepare's flag is the study's cache
            raise DataError(f"the shards folder {out} in the cache (--cache, SCALINGLAB_CACHE): "
                            + e.message.removeprefix(f"--out {out}: ")) from None  # fmt: skip
        # a source that does not exist: "nosuch: no such file or folder"
        raise in_spec(spec, e, "[data]") from None
    opts_text = "".join(f", {k} = {json.dumps(v)}" for k, v in extra.items())
    return out, f"{', '.join(map(str, d['sources']))} ({tok} tokenizer{opts_text})"


def _spec(study: StudySpec, arch: str, shards: Path, des: dict, suffix: str, **train) -> SweepSpec:
    d = sweep_dict(study, arch, shards, des, suffix)
    d["train"].update(train)
    return parse_spec(d, where=f"study {study.name!r}: {suffix}")


def _shape(model) -> dict:
    s = {"n_layer": model.n_layer, "n_embd": model.n_embd}
    return s | ({"n_head": model.n_head} if model.arch == "gpt" else {})


def _grid_run(study, arch, shards, model, budget, suffix, **train) -> tuple[SweepSpec, PlannedRun]:
    spec = _spec(study, arch, shards, {"kind": "grid", "shapes": [_shape(model)],
                                        "flops": [budget]}, suffix, **train)  # fmt: skip
    _, runs = driver.make_plan(spec)
    return spec, runs[0]


def plan_study(study: StudySpec, shards: Path, corpus: str, out: Path, workers: int,
               threads: int, estimate: bool = True, cores: int | None = None) -> StudyPlan:  # fmt: skip
    """Every run the study will make (the backtest's size is a guess until the fits);
    `cores`: the most threads the backtest takes alone (ExecutorConfig.cores_here)."""
    check_same_study(study, out)
    try:
        plan = _plan_study(study, shards, corpus, out, workers, threads, estimate, cores)
    except (SweepError, DataError) as e:
        # an error of the spec names its file, as parse_study's do; one of --minutes the flag
        err = e
        if study.scaled_from is not None and isinstance(e, SweepError):
            err = _minutes_error(study, e, lambda s: _plan_study(s, shards, corpus, out, workers,
                                                                 threads, False, cores))  # fmt: skip
        raise (in_spec(study, e) if err is e else err) from None
    check_no_other_runs(plan, out)
    # a task the corpus yields no item of, or whose choices do not fit the runs' window,
    # failed when the first run was scored: after the sweep had trained
    try:
        study_tasks.check_fits(study, shards, min(r.config.model.block_size
                                                  for p in plan.parts for r in p.runs))  # fmt: skip
    except SweepError as e:
        raise in_spec(study, e) from None
    return plan


OPERATIONAL_KEYS = ("workers", "train.loggers")  # how a study runs, not what it computes


def check_no_other_runs(plan: StudyPlan, out: Path) -> None:
    """Refuse a study folder whose sweep, trunk or seed folders hold run folders this study
    does not plan. The report reads every run folder there, so their losses entered the
    fits beside the study's own: a study folder made by an earlier version of scalinglab,
    whose runs had other ids (its RNNs walked their data in another order), gained this
    version's runs beside them, and the IsoFLOP fits took both."""
    planned: dict[str, set] = {}
    for p in plan.parts:
        planned.setdefault(p.folder, set()).update(r.name for r in p.runs)
    for folder, names in planned.items():
        runs = out / folder / "runs"
        if not runs.is_dir():
            continue
        others = sorted(d.name for d in runs.iterdir()
                        if d.is_dir() and not d.name.startswith(".") and d.name not in names)  # fmt: skip
        if others:
            more = f" and {len(others) - 1} more" if len(others) > 1 else ""
            raise SweepError(
                f"{runs} holds {len(others)} run folder(s) this study does not plan "
                f"({others[0]}{more}: made by another version of scalinglab, or put there), "
                "whose losses would enter its fits: give a new --out folder, or move them out"
            )


def check_same_study(study: StudySpec, out: Path) -> None:
    """Refuse to continue a study folder with another spec (`--minutes 20` on a folder of
    10, a changed budget): it rewrote study.json and trained the new spec's runs beside the
    old ones, and only the prediction, after the new sweep, said the runs had changed."""
    path = out / STUDY_JSON
    if not path.is_file():
        return
    old = read_json(path, "the study's manifest").get("spec")
    if not isinstance(old, dict):
        return  # a manifest written before studies recorded their spec
    new = study.raw
    # compared with every default filled in (a default written out is no change); a spec
    # this version no longer reads is compared as written
    with contextlib.suppress(ScalingLabError):
        old, new = study_dict(parse_study(old, str(path))), study_dict(study)
    changes = [f"{k} {_change(a, b)}" for k, a, b in _changes(old, new)
               if k not in OPERATIONAL_KEYS]  # fmt: skip
    if changes:
        more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
        raise SweepError(
            f"{out} holds a study of another spec ({', '.join(changes[:3])}{more}); rerun "
            "it with its own spec and flags, or give a new --out folder"
        )


def _changes(old, new, key=""):
    """(dotted key, old value, new value) of every leaf where two specs differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            yield from _changes(old.get(k), new.get(k), f"{key}.{k}" if key else k)
    elif old != new and json.loads(json.dumps(new)) != old:  # tuples read back as lists
        yield key, old, new


def _change(a, b) -> str:
    """'A -> B', each cut to 40 characters around where they first differ: two commands of
    one long prefix were both cut before it, and the change never showed."""
    ta, tb = _text(a), _text(b)
    if len(ta) <= 40 and len(tb) <= 40:
        return f"{ta} -> {tb}"
    same = next((i for i, (x, y) in enumerate(zip(ta, tb, strict=False)) if x != y),
                min(len(ta), len(tb)))  # fmt: skip
    start = max(0, same - 12) if same > 25 else 0

    def cut(t):
        part = t[start : start + 37]
        return ("..." if start else "") + part + ("..." if len(t) > start + 37 else "")

    return f"{cut(ta)} -> {cut(tb)}"


def _text(v) -> str:
    def num(x):
        return f"{x:g}" if isinstance(x, int | float) and not isinstance(x, bool) else None

    if v is None:
        text = "(none)"
    elif num(v):
        text = num(v)
    elif isinstance(v, list) and v and all(num(x) for x in v):
        text = "[" + ", ".join(num(x) for x in v) + "]"
    else:
        text = json.dumps(v)
    return text


def _minutes_error(study: StudySpec, e: SweepError, plan) -> SweepError:
    """What a study scaled by `--minutes` says when its plan fails: the flag, not the spec's
    [design], and the nearest minutes, below and above, whose scaled plans succeed."""
    spec, m = study.scaled_from, study.minutes

    def plans(minutes: float) -> bool:
        try:
            plan(spec.scaled(minutes) if minutes != spec.minutes else spec)
        except ScalingLabError:
            return False
        return True

    if not plans(spec.minutes):
        return e  # the spec fails at its own minutes: not the flag's doing
    if isinstance(e, design.TooFewTokens):
        what = (f"is too small: the {e.arch} of {e.params} parameters would train on "
                f"{e.tokens:.0f} tokens, less than one batch ({e.tokens_per_step} tokens: "
                "batch_size × grad_accum × block_size)")  # fmt: skip
    else:
        what = f"scales the spec's design past what it can plan ({e.message})"
    near = []
    for side in (-1, 1):  # the nearest round value on each side that plans, within 3x
        for r in _round_values(m, side):
            if plans(r):
                near.append(f"{r:g}")
                break
    if near:
        hint = f"; it plans at --minutes {' or '.join(near)}"
    elif isinstance(e, design.TooFewTokens):
        hint = "; raise --minutes"
    else:
        hint = "; no --minutes within 3x of it plans this spec"
    return SweepError(f"--minutes {m:g} {what}{hint}")


def _round_values(m: float, side: int, within: float = 3.0) -> list[float]:
    """The numbers of two significant digits beyond `m` (below: side -1, above: +1), out
    to `within` times, nearest first (5.1 up: 5.2, 5.3, ..., 9.9, 10, 11, ...)."""
    out, x = [], m
    while True:
        step = 10.0 ** (math.floor(math.log10(x)) - 1)  # the second digit's place
        if side < 0 and float(f"{x:.2g}") == x and x == 10 * step:  # 10 -> 9.9, not 9
            step /= 10
        k = math.floor(x / step + 1e-9) + 1 if side > 0 else math.ceil(x / step - 1e-9) - 1
        x = float(f"{k * step:.2g}")
        if not (m / within <= x <= m * within) or x <= 0:
            return out
        out.append(x)


def _plan_study(study: StudySpec, shards: Path, corpus: str, out: Path, workers: int,
                threads: int, estimate: bool, cores: int | None = None) -> StudyPlan:  # fmt: skip
    parts = []
    for arch, s in study.sweeps.items():
        spec = _spec(study, arch, shards, dataclasses.asdict(s), arch)
        ctx, runs = driver.make_plan(spec)
        for line in design.moved_targets(ctx):  # as `sweep` warns of them
            log.warning("[sweeps.%s] %s", arch, line.removeprefix("[design] "))
        parts += _parts("sweep", f"sweeps/{arch}", spec, runs)
    sn = study.seed_noise
    if sn:
        check_repeat_seeds(study, parts)
    if sn and study.sweeps[sn.arch].kind == "wsd":  # the size's trunk and branches again
        # the whole ladder planned again, its target's runs kept: planned alone, a target
        # the ladder had moved off a shape another target took got that shape back, and the
        # "repeat" trained the other target's model (its noise read as this size's)
        des = dataclasses.asdict(study.sweeps[sn.arch])
        for seed in sn.seeds:
            spec = _spec(study, sn.arch, shards, des, f"seed{seed}", seed=seed)
            runs = driver.make_plan(spec)[1]
            mine = [r for r in runs if r.group.get("target_params") == sn.params]
            parts += _parts("seed", "seed", spec, mine)
    elif sn:
        sweep = next(p for p in parts if p.role == "sweep" and p.spec.archs == [sn.arch])
        centre = sweep.spec.design.tokens_per_param
        at = [r for r in sweep.runs if r.group["budget"] == sn.budget]
        # the point nearest the design's centre: the run most like the compute-optimal one
        pick = min(at, key=lambda r: abs(math.log(r.tokens / r.counts.params / centre)))
        # a branch of a trunk is repeated as the independent run it equals, seed apart
        same = {k: getattr(pick.config.train, k) for k in BRANCH_TRAIN} if pick.seed else {}
        for seed in sn.seeds:
            spec, run = _grid_run(study, sn.arch, shards, pick.config.model, sn.budget,
                                  f"seed{seed}", seed=seed, **same)  # fmt: skip
            parts.append(Part("seed", "seed", spec, [run]))
    check_supports_fits(study, parts)
    bt = study.backtest
    sweep = next(p for p in parts if p.role == "sweep" and p.spec.archs == [bt.arch])
    largest = fit_cost(parts, bt.arch)["largest"]
    # an IsoFLOP sweep's budgets were checked (its runs' C is its budget, to whole steps)
    if sweep.spec.kind == "wsd" and bt.budget < MIN_BACKTEST_FACTOR * largest * (1 - 1e-9):
        raise SweepError(
            f"[backtest] budget {bt.budget:.3g} must be at least {MIN_BACKTEST_FACTOR:g}x the "
            f"largest C of the runs [sweeps.{bt.arch}] plans ({largest:.3g}): a backtest "
            "extrapolates"
        )
    ctx = driver.open_context(sweep.spec)
    centre = bt.tokens_per_param or _centre(sweep.spec.design)
    guess = design.shape_for(bt.arch, math.sqrt(bt.budget / (6 * centre)), ctx.vocab,
                             sweep.spec.model, sweep.spec.shape)  # fmt: skip
    known = _predicted_shape(out, bt.arch)  # a study resumed after its prediction
    _, guess_run = _grid_run(study, bt.arch, shards, known or guess, bt.budget, "backtest",
                             **backtest_train(study))  # fmt: skip
    unique = train_tokens(shards)
    if guess_run.tokens > unique:
        log.warning(
            "the backtest run (about %s tokens) would repeat the %s unique training tokens "
            "(%.1f epochs): the study predicts it with the data-constrained law",
            f"{guess_run.tokens:,}", f"{unique:,}", guess_run.tokens / unique,
        )  # fmt: skip
    plan = StudyPlan(shards, corpus, parts, guess_run, threads, workers, bt.alone, cores)
    # its size is the spec's where [backtest] tokens_per_param fixes it, not the fits'
    plan.backtest_known = known is not None or bt.tokens_per_param > 0
    for p in parts:
        for r in p.runs:
            if is_finished(out / p.folder / "runs" / r.name):
                plan.done.add(r.name)
    if known and is_finished(out / "backtest" / "runs" / guess_run.name):
        plan.done.add(guess_run.name)
    if estimate:
        for arch in study.sweeps:
            runs = [r for p in parts for r in p.runs if r.arch == arch]
            plan.estimates.update(estimate_seconds(runs, threads))
        bt_est = estimate_seconds([guess_run], plan.backtest_threads)
        plan.estimates["backtest"] = bt_est.get(guess_run.name, 0.0)  # none: too large to time
    return plan


def _centre(d) -> float:
    """The tokens per parameter of the backtest's guessed size (until the fits choose it):
    an IsoFLOP design's centre, a WSD ladder's largest ratio."""
    r = d.tokens_per_param
    return float(max(r)) if isinstance(r, list) else float(r)


def backtest_train(study: StudySpec) -> dict:
    """The backtest run's schedule: a WSD ladder's cooldown (the kind of run it fits
    on; also an IsoFLOP sweep's with trunks), or the spec's [train] schedule."""
    return _schedule_of(study.sweeps[study.backtest.arch])


BRANCH_TRAIN = ("schedule", "cooldown_frac", "warmup", "lr", "min_lr")
"""What a WSD branch's train settings hold that the design, not the spec, chose."""


def _schedule_of(d) -> dict:
    """The train settings of a design's fitted runs that a run outside it repeats: WSD
    with the design's cooldown where it trains trunks (kind wsd, or isoflop's trunks)."""
    wsd = d.kind == "wsd" or getattr(d, "trunks", False)
    return {"schedule": "wsd", "cooldown_frac": d.cooldown_frac} if wsd else {}


def train_tokens(shards: Path) -> int:
    """The unique tokens of the shards' training split (what a run repeats beyond)."""
    return int(read_manifest(shards)["splits"]["train"]["tokens"])


MIN_BUDGETS = 2
"""The frontier and the allocation are power laws over budgets: 2 budgets at least."""
MIN_CHINCHILLA_RUNS = 6
"""plan.analysis.fit_arch fits Chinchilla's 5 parameters to 6 runs or more."""


def check_repeat_seeds(study: StudySpec, parts: list[Part]) -> None:
    """Refuse [seed_noise] seeds that would not make another run: a seed listed twice, or
    the seed the repeated sweep itself trains with (the "repeat" would be that very run,
    and the noise it measures would be too small)."""
    sn = study.seed_noise
    w = "[seed_noise] seeds"
    twice = sorted({s for s in sn.seeds if sn.seeds.count(s) > 1})
    if twice:
        raise SweepError(f"{w} {sn.seeds}: {', '.join(map(str, twice))} listed twice; each "
                         "repeat needs a seed of its own")  # fmt: skip
    sweep = next(p for p in parts if p.role == "sweep" and p.spec.archs == [sn.arch])
    own = {r.config.train.seed for r in sweep.runs}
    same = sorted(own & set(sn.seeds))
    if same:
        raise SweepError(
            f"{w} {sn.seeds}: {', '.join(map(str, same))} is the seed [sweeps.{sn.arch}] "
            f"trains with ([train] seed), so its repeat would be the same run: choose "
            f"seeds other than {', '.join(map(str, sorted(own)))}"
        )


def check_supports_fits(study: StudySpec, parts: list[Part]) -> None:
    """Refuse, before anything trains (and in --dry-run), a study whose planned runs cannot
    support its fits: each sweep needs MIN_SIZES_PER_BUDGET distinct sizes at MIN_BUDGETS
    budgets or more, and at every budget it plans, and the backtest's arch
    MIN_CHINCHILLA_RUNS runs when Chinchilla predicts it."""
    for part in parts:
        if part.role != "sweep":
            continue
        arch = part.spec.archs[0]
        if part.spec.kind == "wsd":  # spec.py checked its sizes and ratios
            continue
        sizes = {b: ns for (_, b), ns in sizes_per_budget(part.runs).items()}
        usable = [b for b, s in sizes.items() if len(s) >= MIN_SIZES_PER_BUDGET]
        if len(usable) < MIN_BUDGETS:
            plan = ", ".join(f"{b:g}: {len(s)}" for b, s in sorted(sizes.items())) or "none"
            raise SweepError(
                f"[sweeps.{arch}]: the IsoFLOP fit needs {MIN_SIZES_PER_BUDGET} model sizes at "
                f"each of {MIN_BUDGETS} budgets or more, and this spec plans {plan} (sizes "
                "per budget); raise `sizes`, widen `spread` or add budgets"
            )
        # a budget left without its parabola would be skipped by the fit, and the frontier
        # and the allocation drawn through the others alone (a BPE ladder planned a 2.2M-
        # parameter run on 1.6M tokens so): every budget needs its sizes
        for b, ns in sorted(sizes.items()):
            if len(ns) < MIN_SIZES_PER_BUDGET:
                shown = ", ".join(f"{n:,}" for n in sorted(ns))
                raise SweepError(
                    f"[sweeps.{arch}] budget {b:.3g}: its sizes round to {len(ns)} distinct "
                    f"shape(s) of the grid ({shown} parameters); its parabola needs "
                    f"{MIN_SIZES_PER_BUDGET}: raise that budget or sizes, or make [shape] "
                    f"{design.width_step_key(arch)} smaller"
                )
        bt = study.backtest
        if (
            arch == bt.arch
            and bt.predictor == "chinchilla"
            and len(part.runs) < MIN_CHINCHILLA_RUNS
        ):
            raise SweepError(
                f'[backtest] predictor = "chinchilla" needs {MIN_CHINCHILLA_RUNS} runs of '
                f"{arch} or more, and [sweeps.{arch}] plans {len(part.runs)}; raise `sizes` "
                "or add budgets"
            )


class RunQueue:
    """The study's order over an executor: runs wait here by priority and go to the
    executor one at a time as its workers free up (the backtest, unless it trains
    alone, takes the first free worker while the other architectures' runs go on)."""

    def __init__(self, executor: Executor, listener):
        self.ex = executor
        self.emit = listener or (lambda *a: None)
        self.queue: list[tuple[float, int, Path]] = []
        self.outcomes: dict[str, dict] = {}
        self.dirs: dict[str, Path] = {}
        self.threads: dict[str, int] = {}  # runs that need other than one worker's threads
        self.held: dict[str, list[tuple[Path, float, int]]] = {}
        """WSD branches waiting for their trunk (by the trunk's name): (dir, priority, step)."""
        self.n = self.added = 0
        self.later = 0  # runs not queued yet but counted in the total (the backtest)

    def add(self, run_dir: Path, priority: float, threads: int | None = None) -> None:
        if threads is not None:
            self.threads[run_dir.name] = threads
        self.added += 1
        self.dirs[run_dir.name] = run_dir
        heapq.heappush(self.queue, (priority, self.added, run_dir))

    def add_after(self, run_dir: Path, priority: float, trunk: Path, step: int) -> None:
        """Queue a WSD branch: now if its trunk has finished (seeded from its checkpoint at
        `step`), else when it does."""
        self.dirs[trunk.name] = trunk
        if trunk.name in self.outcomes or is_finished(trunk):
            self._release(run_dir, priority, trunk, step)
        else:
            self.added += 1  # counted in the total now; queued when the trunk ends
            self.held.setdefault(trunk.name, []).append((run_dir, priority, step))

    def _release(self, run_dir: Path, priority: float, trunk: Path, step: int, held=False):
        res = read_result(trunk) or {}
        if res.get("status") != "completed":
            log.warning("%s ended %s: its branch %s is not run", trunk.name, res.get("status"),
                        run_dir.name)  # fmt: skip
            self.outcomes[run_dir.name] = {"name": run_dir.name, "status": "blocked"}
            return
        driver.seed_run(trunk, run_dir, step)
        if held:
            self.added -= 1  # add() counts it again
        self.add(run_dir, priority)

    def wait_for(self, names: set[str]) -> None:
        """Run queued work until every run in `names` has an outcome."""
        while not names <= set(self.outcomes):
            while self.queue and self.ex.running < self.ex.workers:
                _, _, d = heapq.heappop(self.queue)
                self.emit("run_started", {"name": d.name})
                self.ex.submit(d, self.threads.get(d.name))
            if not self.ex.running:
                raise SweepError(
                    f"internal: runs {sorted(names - set(self.outcomes))} never queued"
                )
            for o in self.ex.wait(1.0):
                self.outcomes[o["name"]] = o
                self.n += 1
                r = read_result(self.dirs[o["name"]]) or {}
                self.emit("run_finished", {**o, "index": self.n, "total": self.added + self.later, "loss": r.get("val_loss"),
                                           "wall_seconds": r.get("wall_seconds"),
                                           "error": r.get("error")})  # fmt: skip
                for run_dir, priority, step in self.held.pop(o["name"], []):
                    self._release(run_dir, priority, self.dirs[o["name"]], step, held=True)


def _queue(pool: RunQueue, items, out: Path, threads: int, priority: float, estimates: dict,
           own_threads: bool = False) -> set:  # fmt: skip
    """Write the run folders of `items` and queue the unfinished ones, longest first
    (`own_threads`: the executor reserves `threads` CPUs for each, not one worker's)."""
    by_folder: dict[str, list[Part]] = {}
    names = set()
    written: dict[str, Path] = {}
    for part, run in items:  # trunks come before their branches (plan_study's order)
        by_folder.setdefault(part.folder, []).append(part)
        run_dir = driver.write_run_folder(run, out / part.folder, part.spec, threads)
        written[run.name] = run_dir
        if not is_finished(run_dir):
            # longest first within a priority class: the pool ends sooner
            prio = priority - estimates.get(run.name, 0.0) * 1e-6
            if run.seed:
                pool.add_after(run_dir, prio, written[run.seed.run], run.seed.step)
            else:
                pool.add(run_dir, prio, threads if own_threads else None)
            names.add(run.name)
    for folder, parts in by_folder.items():
        parts = list({id(p): p for p in parts}.values())
        driver.write_sweep_files(parts[0].spec, out / folder, [r for p in parts for r in p.runs])
    return names


def _predicted_shape(out: Path, arch: str):
    """The backtest run's shape from the study's prediction.json, once made (None before,
    or where it cannot be read: make_prediction then says why)."""
    try:
        pred = json.loads((out / PREDICTION_JSON).read_text(encoding="utf-8"))
        if pred.get("arch") != arch:
            return None
        return ModelConfig(arch=arch, **pred["shape"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ConfigError):
        return None


def _allocate(fits, C: float, kind: str, vocab: int, spec: SweepSpec):
    """The backtest's compute-optimal shape at the budget C (6·N·D in all parameters):
    (the target N, where it came from, the shape). Where the fits count N without
    embeddings, their C is 6·N_ne·D, which depends on the shape chosen: the shape and
    its C are found together (a fixed point, reached in a few steps on the width grid)."""
    c_law = C  # all parameters: the budget itself, found at the first step
    for _ in range(20):
        n, how = an.allocation(fits, c_law)
        model = design.shape_for(fits.arch, n, vocab, spec.model, spec.shape, kind)
        counts = count_params(model, vocab)
        c_model = C * getattr(counts, kind) / counts.params
        if c_model == c_law:
            break
        c_law = c_model
    return n, how, model


def _other_count(study, rows, arch, counts, D: float, kind: str, noise) -> dict:
    """The backtest run predicted by the frontier with N counted the other way
    (`[fit] n_kind`), before training as the rest: {"frontier, <count>": prediction}. Which
    count extrapolates better depends on the corpus and tokenizer (docs/study.md), so
    every study scores both."""
    other = next(k for k in an.N_KINDS if k != kind)
    key = f"frontier, {an.COUNT_NAMES[other]}"
    try:
        fits = an.fit_arch(arch, [r for r in rows if r["arch"] == arch], study.fit, other, False)
        n = getattr(counts, other)
        p = an.predict(fits, n, D, 6.0 * n * D, "frontier", noise)
        p["prediction_interval"] = an.predictive_interval(p, noise, study.fit.ci_level)
        return {key: p}
    except FitError as exc:  # informative only, as the other predictors
        return {key: {"error": str(exc)}}


def write_study_json(study: StudySpec, plan: StudyPlan, out: Path, **extra) -> None:
    folders = {"sweep": [p.folder for p in plan.parts if p.role == "sweep"],
               "seed": sorted({p.folder for p in plan.parts if p.role == "seed"}),
               "backtest": ["backtest"]}  # fmt: skip
    old = read_json(out / STUDY_JSON, "study") if (out / STUDY_JSON).exists() else {}
    d = {
        "format_version": FORMAT_VERSION, "kind": "scalinglab.study", "name": study.name,
        "corpus": plan.corpus, "shards": str(plan.shards.resolve()), "folders": folders,
        "predictor": study.backtest.predictor, "plan_factors": study.factors,
        "fit": dataclasses.asdict(study.fit)
        | ({"n_kind": study.n_kind} if study.n_kind != "params" else {}),
        "minutes": study.minutes, "spec": study.raw,
    } | {k: v for k, v in old.items() if k in ("wall_seconds",)} | extra  # fmt: skip
    atomic_write_json(out / STUDY_JSON, d)


def make_prediction(study: StudySpec, plan: StudyPlan, out: Path) -> tuple[dict, Part]:
    """Fit the sweep, choose the backtest run, predict its loss; write prediction.json first.

    An existing prediction.json is reused as it is (it was made before its run started)."""
    c = collect(out)
    arch, C = study.backtest.arch, study.backtest.budget
    fits = an.fit_arch(
        arch, [r for r in c.by_role("sweep") if r["arch"] == arch], study.fit, study.n_kind
    )
    r = study.backtest.tokens_per_param
    sweep = next(p for p in plan.parts if p.role == "sweep" and p.spec.archs == [arch])
    ctx = driver.open_context(sweep.spec)
    kind = fits.kind
    if r:  # the spec fixes the run's D / N: the law predicts that run, wherever its optimum
        n_target, allocated_by = math.sqrt(C / (6.0 * r)), f"[backtest] tokens_per_param = {r:g}"
        model = design.shape_for(arch, n_target, ctx.vocab, sweep.spec.model, sweep.spec.shape)
    else:
        n_target, allocated_by, model = _allocate(fits, C, kind, ctx.vocab, sweep.spec)
    spec, run = _grid_run(study, arch, plan.shards, model, C, "backtest", **backtest_train(study))
    part = Part("backtest", "backtest", spec, [run])
    run_dir = out / "backtest" / "runs" / run.name
    path = out / PREDICTION_JSON
    if path.exists():
        pred = read_json(path, "the backtest's prediction")
        if pred.get("run_name") != run.name:
            raise SweepError(
                f"{path} predicts run {pred.get('run_name')!r}, but the study now plans "
                f"{run.name!r} (the spec or the runs changed); start a new --out folder"
            )
        return pred, part
    if run_dir.exists():
        raise SweepError(
            f"{run_dir} exists but {path} does not: the backtest run cannot be predicted "
            "after it started; remove that run folder or start a new --out folder"
        )
    N, D = run.counts.params, run.tokens
    n_law = getattr(run.counts, kind)  # N and C as the fits count them
    c_law = 6.0 * n_law * D
    noise = an.seed_noise(c.by_role("sweep", "seed"))
    primary = study.backtest.predictor
    unique = train_tokens(plan.shards)
    constrained = None
    if unique < D:  # the run repeats its data: the law that knows repeated tokens are worth less
        log.warning("the backtest run's %s tokens repeat the %s unique training tokens (%.2f "
                    "epochs): predicting it with the data-constrained law", f"{D:,}",
                    f"{unique:,}", D / unique)  # fmt: skip
        try:
            constrained = an.predict_constrained(fits, n_law, D, unique)
        except FitError as exc:
            log.warning("%s; predicting with %s as if the data did not repeat", exc, primary)
    try:
        pred = constrained or an.predict(fits, n_law, D, c_law, primary, noise)
    except FitError as exc:  # say so, and predict with the other law rather than stop
        fallback = next(p for p in an.PREDICTORS if p != primary)
        log.warning("%s; predicting with %s instead", exc, fallback)
        pred = an.predict(fits, n_law, D, c_law, fallback, noise)
        pred["fallback_reason"] = str(exc)
    cost = fit_cost(plan.parts, arch)
    ladder = {
        "extrapolation": 6.0 * N * D / cost["largest"],
        "fit_cost_ratio": cost["flops"] / (6.0 * N * D),
        "fit_flops": cost["flops"], "largest_fit_flops": cost["largest"],
        "unique_tokens": unique, "repeats_data": unique < D, "design": sweep.spec.kind,
    }  # fmt: skip
    others = {}
    for p in an.PREDICTORS:
        if p == "ray" and sweep.spec.kind != "wsd":  # a ray is a ladder's ratio
            continue
        if p != pred["predictor"]:
            try:
                others[p] = an.predict(fits, n_law, D, c_law, p, noise)
            except Exception as exc:  # a secondary predictor is informative only
                others[p] = {"error": str(exc)}
    if pred["predictor"] == "frontier":  # the frontier with N counted the other way
        others.update(_other_count(study, c.by_role("sweep"), arch, run.counts, D, kind, noise))
    now = time.time()
    interval = an.predictive_interval(pred, noise, study.fit.ci_level)
    out_pred = {
        "format_version": FORMAT_VERSION, "kind": "scalinglab.prediction", "arch": arch,
        "flops": 6.0 * N * D, "budget": C, "params": N, "tokens": D,
        **({"n_kind": kind, "law_params": n_law, "law_flops": c_law} if kind != "params" else {}),
        "shape": _shape(run.config.model), "run_name": run.name, "target_params": n_target,
        "allocated_by": allocated_by, **ladder,
        **pred, "interval": interval,
        "ci_level": study.fit.ci_level,
        "seed_noise_rel_std": None if noise is None else noise["rel_std"],
        "other_predictions": others, "fit_points": len(fits.rows),
        "tasks": study_tasks.predict_tasks(
            study, c.by_role("sweep"), arch, pred["predicted_loss"], interval
        ),
        "written_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)), "mtime": now,
    }  # fmt: skip
    out_pred = an.json_safe(out_pred)
    atomic_write_json(path, out_pred)
    return out_pred, part


def run_study(study: StudySpec, out: str | Path, cache: str | Path,
              executor: ExecutorConfig | None = None, listener=None) -> dict:  # fmt: skip
    """Run (or resume) the whole study into `out`; return the report's summary.

    `executor` says where its runs execute (default: local, the spec's `workers`)."""
    t0 = time.monotonic()
    out, emit = Path(out), listener or (lambda *a: None)
    cfg = executor or ExecutorConfig(workers=study.workers)
    workers, threads = cfg.workers, cfg.threads_per_run
    executor = make_executor(cfg, out)  # a missing extra, no SLURM: before anything is written
    if study.trainer_cmd is None:  # scalinglab's trainer: its trackers must work first
        check_loggers(study.shared["train"].get("loggers"), probe=True)
    shards, corpus = prepare_data(study, Path(cache))
    plan = plan_study(study, shards, corpus, out, workers, threads, cores=cfg.cores_here)
    out.mkdir(parents=True, exist_ok=True)
    emit("plan", plan)
    write_study_json(study, plan, out)
    bt_arch = study.backtest.arch
    first = [(p, r) for p, r in plan.pool_runs if r.arch == bt_arch]
    rest = [(p, r) for p, r in plan.pool_runs if r.arch != bt_arch]
    # the study chooses which run goes next; the executor runs it (a thread, Ray, submitit)
    with executor.open(retries=cfg.retries, command=study.trainer_cmd) as ex:
        pool = RunQueue(ex, emit)
        # the backtest is queued after the prediction; counted from the first line on
        pool.later = int(not (plan.backtest_known and plan.backtest_guess.name in plan.done))
        # the runs the prediction needs first; the other architectures fill idle workers
        need = _queue(pool, first, out, threads, 1.0, plan.estimates)
        others = _queue(pool, rest, out, threads, 2.0, plan.estimates)
        pool.wait_for(need)
        _check(pool, need)
        study_tasks.score_runs(study, plan.shards, out, bt_arch)  # what the prediction fits
        reused = (out / PREDICTION_JSON).exists()  # made by an earlier invocation
        pred, part = make_prediction(study, plan, out)
        emit("prediction", {**pred, "reused": reused})
        if plan.alone:  # the largest run last, on every thread: the study ends soonest
            pool.wait_for(others)
            _check(pool, others)
            study_tasks.score_runs(study, plan.shards, out)  # while nothing trains
        pool.later = 0
        bt = _queue(pool, [(part, part.runs[0])], out, plan.backtest_threads, 0.0, {},
                    own_threads=plan.alone)  # fmt: skip
        pool.wait_for(others | bt)
        _check(pool, others | bt)
    study_tasks.score_runs(study, plan.shards, out)  # every run not yet scored: the backtest
    # the time of every invocation that ran to the end, as a run's wall_seconds counts its
    # resumes: a rerun of a finished study (seconds) once replaced its 11 minutes
    before = read_json(out / STUDY_JSON, "study").get("wall_seconds") or 0.0
    write_study_json(study, plan, out, wall_seconds=round(before + time.monotonic() - t0, 1))
    summary = build_report(out)
    emit("report", summary)
    return summary


def _check(pool: RunQueue, names: set[str]) -> None:
    bad = [n for n in sorted(names) if pool.outcomes[n]["status"] not in FINISHED]
    if bad:
        # the first one's reason: a result.json that broke the contract says it there, not
        # in train.log
        why = (read_result(pool.dirs[bad[0]]) or {}).get("error")
        why = f" ({bad[0]}: {' '.join(str(why).split())})" if why else ""
        raise SweepError(
            f"{len(bad)} run(s) did not finish ({', '.join(bad[:3])}){why}; see their "
            "train.log and result.json; rerun the same command to retry them"
        )
