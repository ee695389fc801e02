"""Synthetic sweep and study folders drawn from a known law: run folders with config.toml,
metrics.jsonl, result.json and sweep.json, as the trainer and the sweep driver write
them, so the report can be tested with no training."""

import json
import math
from pathlib import Path

import numpy as np

from scalinglab.config import ModelConfig, RunConfig, TrainConfig, dumps_toml
from scalinglab.models.counting import count

# A Chinchilla law with a floor; the LSTM's reducible terms are larger (it scales worse).
LAWS = {
    "gpt": {"E": 1.0, "A": 60.0, "B": 400.0, "alpha": 0.45, "beta": 0.40},
    "lstm": {"E": 1.0, "A": 90.0, "B": 600.0, "alpha": 0.40, "beta": 0.36},
}
WIDTHS = {"gpt": (16, 24, 32, 48, 64, 96), "lstm": (32, 48, 64, 96, 128)}
VOCAB = 256


def law_loss(arch: str, N, D):
    p = LAWS[arch]
    return p["E"] + p["A"] / np.power(N, p["alpha"]) + p["B"] / np.power(D, p["beta"])


def model_for(arch: str, width: int) -> ModelConfig:
    if arch == "gpt":
        return ModelConfig(arch="gpt", n_layer=2, n_embd=width, n_head=width // 8,
                           block_size=32, vocab_size=VOCAB)  # fmt: skip
    return ModelConfig(arch=arch, n_layer=1, n_embd=width, block_size=32, vocab_size=VOCAB)


def write_run(folder: Path, model: ModelConfig, tokens: int, loss: float, seed: int = 1337,
              group: dict | None = None, status: str = "completed") -> Path:  # fmt: skip
    """One finished run folder whose final loss is `loss`."""
    folder.mkdir(parents=True)
    cfg = RunConfig(model=model, train=TrainConfig(data="shards", tokens=tokens, seed=seed))
    (folder / "config.toml").write_text(dumps_toml(cfg.to_dict()))
    c = count(model, VOCAB)
    lines = []
    for t in np.geomspace(2048, tokens, 12):
        t = int(t)
        tl = loss * (1 + 0.5 * (tokens / t - 1) ** 0.3 / 10)  # falls towards the final loss
        lines.append({"step": t // 256, "tokens": t, "flops": t * c.flops_per_token,
                      "train_loss": tl, "lr": 1e-3, "seconds": t / 1e5})  # fmt: skip
    lines.append({"step": tokens // 256, "tokens": tokens, "flops": tokens * c.flops_per_token,
                  "val_loss": loss, "final": True, "seconds": tokens / 1e5})  # fmt: skip
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    result = {
        "format_version": 1, "status": status, "arch": model.arch, "val_loss": loss,
        "val_bpb": loss / math.log(2), "params": c.params, "params_nonembed": c.params_nonembed,
        "tokens": tokens, "flops": tokens * c.flops_per_token, "flops_6nd": 6 * c.params * tokens,
        "wall_seconds": tokens / 1e5, "tokens_per_second": 1e5, "steps": tokens // 256,
    }  # fmt: skip
    (folder / "result.json").write_text(json.dumps(result))
    if group is not None:
        meta = {"format_version": 1, "kind": "scalinglab.sweep_run", "group": group}
        (folder / "sweep.json").write_text(json.dumps(meta))
    return folder


def isoflop_sweep(root: Path, arch: str, budgets, noise: float = 0.0, seed: int = 0,
                  prefix: str = "") -> list[Path]:  # fmt: skip
    """An IsoFLOP sweep folder (root/runs/NAME) following LAWS[arch]: every width at every
    budget, D = C / (6N)."""
    rng = np.random.default_rng(seed)
    out = []
    for b in budgets:
        for w in WIDTHS[arch]:
            m = model_for(arch, w)
            n = count(m, VOCAB).params
            d = int(b / (6 * n))
            loss = float(law_loss(arch, n, d) * math.exp(noise * rng.standard_normal()))
            name = f"{prefix}{arch}-w{w}-c{b:.0e}"
            out.append(write_run(root / "runs" / name, m, d, loss, group={"budget": b}))
    return out


def make_study(root: Path, name: str = "synthetic", corpus: str = "generated",
               evil_run: str | None = None) -> dict:  # fmt: skip
    """A study folder as `scalinglab study` leaves it: IsoFLOP sweeps of GPT (3 budgets)
    and LSTM (2), a seed repeat, prediction.json and the predicted backtest run.
    Returns the numbers the report must reproduce."""
    root = Path(root)
    isoflop_sweep(root / "sweeps" / "gpt", "gpt", [1e12, 3e12, 1e13], noise=0.002)
    isoflop_sweep(root / "sweeps" / "lstm", "lstm", [1e12, 3e12], noise=0.002, seed=1)
    if evil_run:  # one more GPT point whose folder name is hostile HTML
        m = model_for("gpt", 40)
        n = count(m, VOCAB).params
        d = int(3e12 / (6 * n))
        write_run(root / "sweeps" / "gpt" / "runs" / evil_run, m, d,
                  float(law_loss("gpt", n, d)), group={"budget": 3e12})  # fmt: skip
    # the seed repeat of the GPT of width 32 at 3e12 (the sweep's run has seed 1337)
    m = model_for("gpt", 32)
    n = count(m, VOCAB).params
    d = int(3e12 / (6 * n))
    base = json.loads((root / "sweeps/gpt/runs/gpt-w32-c3e+12/result.json").read_text())
    seed_loss = base["val_loss"] * 1.004
    write_run(root / "seed" / "runs" / "gpt-w32-seed1", m, d, seed_loss, seed=1,
              group={"budget": 3e12, "budget_kind": "flops"})  # fmt: skip
    # the prediction, then the run (its sweep.json is written after prediction.json)
    mb = model_for("gpt", 64)
    nb = count(mb, VOCAB).params
    db = int(4e13 / (6 * nb))
    actual = float(law_loss("gpt", nb, db))
    pred = {
        "format_version": 1, "kind": "scalinglab.prediction", "arch": "gpt",
        "flops": 6.0 * nb * db, "params": nb, "tokens": db, "run_name": "gpt-backtest",
        "shape": {"n_layer": 2, "n_embd": 64, "n_head": 8}, "predictor": "chinchilla",
        "predicted_loss": actual * 1.01, "fit_interval": [actual * 1.005, actual * 1.015],
        "interval": [actual * 0.99, actual * 1.03], "ci_level": 0.95,
        "seed_noise_rel_std": 0.004, "written_at": "2026-01-01 00:00:00", "mtime": 1.0,
    }  # fmt: skip
    (root / "prediction.json").write_text(json.dumps(pred))
    write_run(root / "backtest" / "runs" / "gpt-backtest", mb, db, actual,
              group={"budget": 4e13, "budget_kind": "flops"})  # fmt: skip
    study = {
        "format_version": 1, "kind": "scalinglab.study", "name": name, "corpus": corpus,
        "folders": {"sweep": ["sweeps/gpt", "sweeps/lstm"], "seed": ["seed"],
                    "backtest": ["backtest"]},
        "predictor": "chinchilla", "plan_factors": [10, 100, 1000],
        "fit": {"bootstrap": 20, "seed": 0, "ci_level": 0.95},
    }  # fmt: skip
    (root / "study.json").write_text(json.dumps(study))
    return {"predicted": pred["predicted_loss"], "actual": actual, "interval": pred["interval"],
            "seed_losses": (base["val_loss"], seed_loss)}  # fmt: skip
