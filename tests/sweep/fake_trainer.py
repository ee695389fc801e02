"""A stand-in for `scalinglab train` in executor tests: same arguments, same files.

It reads --config, writes OUT/config.toml, metrics.jsonl and result.json, and its
loss is a known function of the run: loss = 1 + 1000 / params + 1e4 / tokens
(FAKE_TRAINER_LOSS gives an architecture another E, A, B).
lr > 1 makes it diverge (exit 3); a file OUT/FAIL_ONCE makes the first attempt
fail without a result (exit 1), as a crashed trainer would.
"""

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path

from scalinglab.config import RunConfig, dumps_toml
from scalinglab.fsio import atomic_write_json
from scalinglab.models.counting import count


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--out")
    p.add_argument("--resume")
    a = p.parse_args()
    out = Path(a.out)
    with open(a.config, "rb") as f:
        cfg = RunConfig.from_dict(tomllib.load(f))
    (out / "config.toml").write_text(dumps_toml(cfg.to_dict()))
    with open(out / "attempts.txt", "a") as f:
        f.write(f"{os.getpid()}\n")
    if (out / "FAIL_ONCE").exists():
        (out / "FAIL_ONCE").unlink()
        return 1
    c = count(cfg.model, cfg.model.vocab_size)
    tokens = cfg.train.tokens
    diverged = cfg.train.lr > 1
    # FAKE_TRAINER_LOSS='{"lstm": [E, A, B]}': another law for an architecture
    e, a, b = json.loads(os.environ.get("FAKE_TRAINER_LOSS", "{}")).get(
        cfg.model.arch, (1, 1000, 1e4)
    )
    loss = e + a / c.params + b / tokens
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 1, "tokens": tokens, "train_loss": loss}) + "\n")
    result = {
        "format_version": 1,
        "status": "diverged" if diverged else "completed",
        "val_loss": None if diverged else loss,
        "val_bpb": None if diverged else loss / 0.6931471805599453,
        "params": c.params,
        "params_nonembed": c.params_nonembed,
        "tokens": tokens,
        "flops": c.flops_per_token * tokens,
        "flops_6nd": 6 * c.params * tokens,
        "wall_seconds": 0.01,
        "tokens_per_second": tokens / 0.01,
        "arch": cfg.model.arch,
        "run_id": out.name,
    }
    atomic_write_json(out / "result.json", result)
    return 3 if diverged else 0


if __name__ == "__main__":
    sys.exit(main())
