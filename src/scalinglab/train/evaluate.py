"""Evaluation (loss, perplexity, bits per byte) and loading a trained run's model."""

import contextlib
import math
from pathlib import Path

import numpy as np
import torch

from scalinglab import runfolder
from scalinglab.data.loader import eval_windows
from scalinglab.data.shards import Shards, open_shards
from scalinglab.data.tokenizers import load_tokenizer
from scalinglab.errors import CheckpointError, DataError, ScalingLabError
from scalinglab.fsio import sha256_file
from scalinglab.models.registry import build_model
from scalinglab.train import checkpoint
from scalinglab.train.setup import data_fingerprint


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    tokens: np.ndarray,
    block_size: int,
    batch_size: int,
    max_tokens: int | None = None,
    device: str | torch.device = "cpu",
    autocast=contextlib.nullcontext,
) -> tuple[float, int]:
    """(mean loss in nats per predicted token, tokens predicted) over a split or its start.

    Windows come from `eval_windows`: every covered token is predicted once; a
    recurrent model carries its state along each lane, a Transformer sees
    each window on its own.
    """
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    n = 0
    state = None
    try:
        for x, y in eval_windows(tokens, block_size, batch_size, max_tokens):
            x, y = x.to(device), y.to(device)
            with autocast():
                if getattr(model, "recurrent", False):
                    if state is None:
                        state = model.init_state(x.size(0), device)
                    _, loss, state = model(x, y, state=state)
                else:
                    _, loss = model(x, y)
            total += loss.double() * y.numel()  # accumulate on the device: no sync per batch
            n += y.numel()
    finally:
        model.train(was_training)
    return (total / n).item(), n


def summarize(loss: float, bytes_per_token: float | None) -> dict:
    """loss (nats/token), perplexity, bits per byte (None when bytes are unknown)."""
    bpb = None
    if bytes_per_token:
        bpb = loss / (math.log(2) * bytes_per_token)
    ppl = math.exp(loss) if loss < 700 else float("inf")
    return {"loss": loss, "perplexity": ppl, "bits_per_byte": bpb}


def load_trained(run_dir: str | Path, device: str = "cpu", path: Path | None = None):
    """(model in eval mode, RunConfig, checkpoint step) from a run's newest valid checkpoint,
    or from the checkpoint folder `path` (one of `checkpoint.list_steps`)."""
    run_dir = Path(run_dir)
    cfg = runfolder.load_config(run_dir)
    if path is None:
        path = checkpoint.latest(run_dir / runfolder.CKPT)
    elif (why := checkpoint.verify(path)) is not None:
        raise CheckpointError(f"{path}: {why}")
    if path is None:
        raise CheckpointError(f"{run_dir}: no valid checkpoint in {run_dir / runfolder.CKPT}")
    model = build_model(cfg.model).to(device)
    checkpoint.load_weights(model, path)
    model.eval()
    return model, cfg, int(path.name.split("-")[1])


def run_tokenizer(run_dir: str | Path) -> tuple[str | None, str | None]:
    """(kind, tokenizer_id) of the tokenizer a run trained with: from its result.json,
    else its copy of tokenizer.json; (None, None) when it has neither."""
    run_dir = Path(run_dir)
    result = runfolder.read_result(run_dir) or {}
    if result.get("tokenizer_id"):
        return result.get("tokenizer"), result["tokenizer_id"]
    path = run_dir / runfolder.TOKENIZER
    if not path.exists():
        return None, None
    try:
        kind = load_tokenizer(path).kind
    except ScalingLabError:
        kind = None
    return kind, sha256_file(path)[:16]


def tokenizer_file(run_dir: str | Path, cfg) -> Path:
    """The tokenizer.json a run trained with: its own copy, else (a run that lacks one)
    its shards', refused when they were made by another tokenizer than the one the run
    records (rebuilt since): their ids mean other text. `eval --tasks`, `generate` and
    `export` all read it through here."""
    own = Path(run_dir) / runfolder.TOKENIZER
    if own.exists():
        if not own.is_file():  # read as a shards folder, it was 'own/tokenizer.json: not found'
            raise DataError(f"{own}: a folder, not a tokenizer file")
        tid = (runfolder.read_result(run_dir) or {}).get("tokenizer_id")
        if tid and sha256_file(own)[:16] != tid:  # replaced or copied in
            raise DataError(
                f"{own}: not the tokenizer the run trained with (its sha256 begins "
                f"{sha256_file(own)[:16]}, {runfolder.RESULT} records {tid}): replaced or "
                "copied from another run? Put back the run's own tokenizer.json (that of its "
                "shards)"
            )
        return own
    shards = open_shards(cfg.train.data)
    kind, tid = run_tokenizer(run_dir)
    if tid is not None and shards.tokenizer_id is not None and tid != shards.tokenizer_id:
        raise DataError(
            f"{run_dir}: has no {runfolder.TOKENIZER}, and its data {shards.path} is made by "
            f"another tokenizer ({shards.tokenizer}, {shards.tokenizer_id}) than the one it "
            f"trained with ({kind or 'unknown'}, {tid}) (rebuilt since?): put the run's "
            f"tokenizer.json (that of shards of its tokenizer) at {own}"
        )
    return Path(shards.path) / runfolder.TOKENIZER


def load_run_tokenizer(run_dir: str | Path, cfg):
    """The tokenizer a run trained with (`tokenizer_file`), refused when it has ids the
    model has no row for: an IndexError deep in the embedding, or text read as other ids."""
    path = tokenizer_file(run_dir, cfg)
    tok = load_tokenizer(path)
    if tok.vocab_size > cfg.model.vocab_size:
        raise DataError(
            f"{path}: a {tok.kind} tokenizer of {tok.vocab_size} ids, and the run's model reads "
            f"{cfg.model.vocab_size} (vocab_size in {Path(run_dir) / runfolder.CONFIG}): not "
            "the run's tokenizer; put back its own tokenizer.json (that of its shards)"
        )
    return tok


def open_run_data(run_dir: str | Path, cfg, data: str | None = None) -> Shards:
    """The shards `eval` scores: `--data`, else the run's own `data` as it was typed.
    A missing one is named as what it is: 'shards folder not found: shards/x' said neither
    that the path came from the run nor that a relative one is found from the current
    folder, so `eval RUN` from another folder left the user guessing."""
    if data:
        if not Path(data).exists():
            raise DataError(f"--data {data}: shards folder not found")
        return open_shards(data)
    path = Path(cfg.train.data)
    if not path.exists():
        relative = not path.is_absolute()
        raise DataError(
            f"{run_dir}: its data {cfg.train.data!r} is not found"
            + (f" from {Path.cwd()} (a relative path is found from the current folder)"
               if relative else " (moved or deleted?)")
            + "; give --data the run's shards"
            + (", or run from the folder it was trained in" if relative else "")
        )  # fmt: skip
    return open_shards(path)


def check_own_data(run_dir: str | Path, cfg, shards: Shards) -> None:
    """Refuse, as the run's own data, shards with other content than those it trained on.
    A run keeps its `data` as it was typed, so a relative path is found from the current
    folder, which may hold other shards of the same tokenizer: the loss would be measured
    on another corpus. The newest checkpoint's lineage id hashes the config and the
    trained-on shards' content; runs whose checkpoints record none are not checked."""
    path = checkpoint.latest(Path(run_dir) / runfolder.CKPT, quiet=True)  # load_trained warned
    try:
        theirs = checkpoint.read_manifest(path).get("lineage_id") if path else None
    except (OSError, ValueError):
        return
    if not theirs or runfolder.lineage_id(cfg, data_fingerprint(shards)) == theirs:
        return
    raise DataError(
        f"{run_dir}: its data {cfg.train.data!r} is found at {Path(shards.path).resolve()}, whose shards are "
        "not the ones it trained on (their content differs); give --data the run's shards, "
        "or run from the folder it was trained in"
    )


def check_same_tokenizer(run_dir: str | Path, shards: Shards, given: bool = True) -> None:
    """Refuse shards made by another tokenizer than the run's: their ids mean other text,
    and the loss would be a number without a meaning. `given`: the shards are --data's;
    else the run's own data (rebuilt with another tokenizer since it trained)."""
    kind, tid = run_tokenizer(run_dir)
    theirs = shards.tokenizer_id
    if tid is None or theirs is None or tid == theirs:
        return
    mine = f"({kind or 'unknown'}, {tid})"
    if not given:
        raise DataError(
            f"{run_dir}: its data {shards.path} is made by another tokenizer "
            f"({shards.tokenizer}, {theirs}) than the one it trained with {mine} (rebuilt "
            "since?); give --data shards of the run's tokenizer"
        )
    raise DataError(
        f"--data {shards.path}: made by another tokenizer ({shards.tokenizer}, "
        f"{theirs}) than the one {run_dir} trained with {mine}; "
        "evaluate on shards of the run's tokenizer"
    )
