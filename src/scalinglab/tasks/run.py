"""Evaluating a run (its newest checkpoint, or each of them) on tasks; results go to
RUN/tasks.json through scalinglab.runfolder, beside the loss in result.json."""

import contextlib
import logging
from pathlib import Path

from scalinglab import runfolder
from scalinglab.errors import CheckpointError, ConfigError, DataError, ScalingLabError
from scalinglab.models.counting import count
from scalinglab.tasks.builtin import BUILTIN, N_ITEMS, WINDOW, builtin_task
from scalinglab.tasks.format import Task, read_task
from scalinglab.tasks.score import score_task
from scalinglab.train import checkpoint
from scalinglab.train.evaluate import load_run_tokenizer, load_trained

log = logging.getLogger(__name__)


def resolve_tasks(
    specs, shards, n_items: int = N_ITEMS, seed: int = 0, context_chars: int = WINDOW
) -> list[Task]:
    """Tasks from names and files: a path to a JSONL task file, a built-in task's name
    (made from `shards`; one whose split yields no item is refused), or `builtin` for
    every built-in task the split yields (the others left out with a warning)."""
    out: list[Task] = []
    for spec in specs:
        spec = spec.strip()
        if not spec:
            continue
        if spec == "builtin":  # every one the corpus yields: prose may hold no brackets
            made = []
            for name in BUILTIN:
                try:
                    made.append(builtin_task(name, shards, n_items, seed, context_chars))
                except DataError as exc:
                    log.warning("--tasks builtin: %s; it is left out", exc)
            if not made:
                raise DataError(f"--tasks builtin: {shards}: its validation split yields "
                                "no item of any built-in task")  # fmt: skip
            out += made
        elif spec in BUILTIN:
            out.append(builtin_task(spec, shards, n_items, seed, context_chars))
        elif Path(spec).is_file():
            out.append(read_task(spec))
        elif Path(spec).is_dir():  # it said "no such task file" of a folder that exists
            raise ConfigError(
                f"--tasks {spec!r} is a folder; name its task files (a JSONL file each), "
                "comma-separated"
            )
        elif Path(spec).exists():  # /dev/null, a pipe: there, but no file to read items from
            raise ConfigError(f"--tasks {spec!r}: not a regular file (a JSONL task file)")
        else:
            raise ConfigError(
                f"--tasks {spec!r}: no such task file, and not a built-in task "
                f"({', '.join(BUILTIN)}, or builtin for all)"
            )
    names = [t.name for t in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"--tasks names {', '.join(dup)} twice (a task's name is its file stem)")
    if not out:
        raise ConfigError("--tasks is empty")
    return out


def checkpoints(run_dir: Path, every: bool) -> list[Path | None]:
    """The newest valid checkpoint (None: load_trained finds it), or every valid one,
    oldest first."""
    if not every:
        return [None]
    valid = [
        p for p in checkpoint.list_steps(run_dir / runfolder.CKPT) if checkpoint.verify(p) is None
    ]
    if not valid:
        raise CheckpointError(f"{run_dir}: no valid checkpoint in {run_dir / runfolder.CKPT}")
    return valid[::-1]


def step_position(run_dir: Path, step: int, path: Path | None = None) -> dict:
    """tokens and flops of the run at `step` (its metrics.jsonl, else result.json, else
    the checkpoint `path` of that step: a step that is no log step, `--ckpt-every 15
    --log-every 10`)."""
    for row in runfolder.read_metrics(run_dir):
        if row.get("step") == step and row.get("tokens") is not None:
            return {"tokens": row.get("tokens"), "flops": row.get("flops")}
    result = runfolder.read_result(run_dir) or {}
    if result.get("step") == step or result.get("steps") == step:
        return {"tokens": result.get("tokens"), "flops": result.get("flops")}
    return checkpoint_position(run_dir, step, path, result.get("flops_per_token"))


def checkpoint_position(run_dir: Path, step: int, path, flops_per_token) -> dict:
    """tokens as the trainer counted them up to the checkpoint (its state's counters: right
    across resumes that changed the batch), times the trainer's FLOPs per token of the
    model (result.json's, else counted from the config as the trainer counts them); both
    None, with a warning, where the checkpoint does not say."""
    path = path or checkpoint.latest(run_dir / runfolder.CKPT, quiet=True)
    try:
        tokens = checkpoint.load_state(path, map_location="cpu")["counters"]["tokens"]
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            raise TypeError
        if not flops_per_token:
            flops_per_token = count(runfolder.load_config(run_dir).model).flops_per_token
    except (ScalingLabError, KeyError, TypeError):
        log.warning(
            "%s: step %d is no logged step and its checkpoint does not say how many "
            "tokens it trained on: its task results have no tokens or flops", run_dir, step,
        )  # fmt: skip
        return {"tokens": None, "flops": None}
    return {"tokens": tokens, "flops": tokens * flops_per_token}


def evaluate_run(
    run_dir,
    tasks: list[Task],
    every_checkpoint: bool = False,
    device: str = "cpu",
    batch_size: int = 32,
    autocast=contextlib.nullcontext,
    max_new_tokens: int = 64,
    record: bool = True,
    dtype: str = "float32",
) -> list[dict]:
    """Score a run on tasks; record the results in RUN/tasks.json (unless `record`).

    Returns one dict per (checkpoint, task): task, kind, step, tokens, flops, n (items),
    sha256 (of the items), chance, dtype (the arithmetic `autocast` scores in, recorded:
    a bfloat16 score is kept beside a float32 one, not in its place), the metrics (acc,
    acc_norm, bpb; or exact_match, chrf) and, for generation, the outputs (not
    recorded)."""
    run_dir = Path(run_dir)
    out = []
    for path in checkpoints(run_dir, every_checkpoint):
        model, cfg, step = load_trained(run_dir, device, path)
        tok = load_run_tokenizer(run_dir, cfg)
        where = {"step": step, **step_position(run_dir, step, path)}
        for task in tasks:
            try:
                metrics = score_task(
                    model, tok, task, cfg.model.block_size, batch_size, device, autocast,
                    max_new_tokens,
                )  # fmt: skip
            except DataError as e:
                raise DataError(f"{run_dir}: {e}") from None
            out.append(
                {
                    "task": task.name,
                    "kind": task.kind,
                    **where,
                    "n": len(task.items),
                    "sha256": task.sha256,
                    "chance": task.chance,
                    "source": task.source,
                    "dtype": dtype,
                    **metrics,
                }
            )
            log.debug("%s step %d %s: %s", run_dir, step, task.name, metrics)
    if record:
        runfolder.record_tasks(
            run_dir, [{k: v for k, v in r.items() if k != "outputs"} for r in out]
        )
    return out
