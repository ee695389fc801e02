import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.config import RunConfig, dumps_toml, load_toml
from scalinglab.models.counting import count
from scalinglab.train import train
from tests.conftest import write_raw_shards
from tests.train.helpers import TEXT, tiny_cfg, tiny_shards

ROOT = Path(__file__).resolve().parents[2]


def test_token_and_flop_budgets_plan_the_steps(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    tps = 8 * 16
    r = train(tiny_cfg(data, steps=0, tokens=10 * tps + 1), tmp_path / "tok")
    assert r["steps"] == 11 and r["tokens"] == 11 * tps  # rounded up: at least the budget
    cfg = tiny_cfg(data, steps=0, flops=0.0)
    fpt = count(cfg.model, 256).flops_per_token
    cfg.train.steps, cfg.train.flops = 0, float(fpt * tps * 6)
    r = train(cfg, tmp_path / "flops")
    assert r["steps"] == 6 and r["flops"] == 6 * tps * fpt
    assert r["flops_6nd"] == 6 * r["params"] * r["tokens"]
    rows = [json.loads(x) for x in (tmp_path / "flops/metrics.jsonl").read_text().splitlines()]
    assert rows[-2]["lr"] == cfg.train.lr / 10  # the cosine reached min_lr on the last step


def test_time_budget_ends_with_its_schedule(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    r = train(tiny_cfg(data, steps=0, time=1.0, warmup=2, lr=1e-3, min_lr=0.0), tmp_path / "t")
    assert r["status"] == "completed" and r["train_seconds"] >= 1.0 and r["steps"] > 2
    rows = [json.loads(x) for x in (tmp_path / "t/metrics.jsonl").read_text().splitlines()]
    assert rows[-2]["lr"] < 0.1 * 1e-3  # the last step ran near the end of the cosine


def test_grad_accumulation_counts_tokens(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    r = train(tiny_cfg(data, steps=3, batch_size=4, grad_accum=3), tmp_path / "a")
    assert r["tokens"] == 3 * 4 * 3 * 16 and r["steps"] == 3


def test_grad_accumulation_steps_by_the_mean_gradient_of_its_micro_batches(tmp_path):
    """On a corpus of one repeated byte every window is the same, so two micro-batches of
    4 accumulated are one batch of 4 twice over: under SGD (whose step scales with the
    gradient, where Adam's does not), the run must be bit for bit the one without
    accumulation. Summed without dividing by grad_accum, it stepped twice as far (found by
    a mutation audit of the tests: the one test of accumulation counted only tokens)."""
    data = tiny_shards(tmp_path / "shards", text=b"a" * 4000)
    sgd = dict(steps=3, batch_size=4, optimizer="sgd", lr=0.5, grad_clip=0.0, warmup=0)
    one = train(tiny_cfg(data, grad_accum=1, **sgd), tmp_path / "one")
    two = train(tiny_cfg(data, grad_accum=2, **sgd), tmp_path / "two")
    assert two["tokens"] == 2 * one["tokens"]
    assert two["val_loss"] == one["val_loss"] and two["train_loss"] == one["train_loss"]
    first = train(tiny_cfg(data, grad_accum=1, **{**sgd, "steps": 1}), tmp_path / "first")
    assert one["val_loss"] != first["val_loss"]  # the steps moved the weights


def test_bits_per_byte_divide_the_loss_by_the_bytes_each_token_stands_for(tmp_path, capsys):
    """val_bpb = val_loss / (ln 2 · bytes per token) of the validation split, in the result
    and in `scalinglab eval`; every other test's shards hold one byte per token, where the
    ratio and its inverse agree (found by a mutation audit of the tests)."""
    arr = np.frombuffer(TEXT, dtype=np.uint8)
    cut = int(len(arr) * 0.9)
    data = write_raw_shards(tmp_path / "shards", arr[:cut], arr[cut:], bytes_per_token=2.5)
    r = train(tiny_cfg(data, steps=2), tmp_path / "run")
    per_token = round((len(arr) - cut) * 2.5) / (len(arr) - cut)  # the manifest's bytes / tokens
    assert r["val_bpb"] == pytest.approx(r["val_loss"] / (math.log(2) * per_token), rel=1e-12)
    assert main(["eval", str(tmp_path / "run"), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["bits_per_byte"] == pytest.approx(got["loss"] / (math.log(2) * per_token), rel=1e-12)


def test_resolved_config_and_result_keys(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    r = train(tiny_cfg(data, steps=2), tmp_path / "run")
    cfg = RunConfig.from_dict(load_toml(tmp_path / "run/config.toml"))
    assert cfg.model.vocab_size == 256 and cfg.train.min_lr == 3e-3 / 10
    assert cfg.train.dtype == "float32"
    for key in (
        "status", "val_loss", "val_ppl", "val_bpb", "train_loss", "params", "params_nonembed",
        "tokens", "flops", "flops_6nd", "steps", "wall_seconds", "tokens_per_second",
        "format_version", "arch", "run_id", "unique_tokens", "epochs",
    ):  # fmt: skip
        assert key in r, key
    n_train = len((tmp_path / "shards/train.bin").read_bytes()) // 2
    assert r["unique_tokens"] == r["tokens"] and r["epochs"] == r["tokens"] / n_train
    assert r["params"] == count(cfg.model).params


def test_preset_config_file_and_flags_layer(tmp_path, capsys):
    data = tiny_shards(tmp_path / "shards")
    toml = tmp_path / "run.toml"
    toml.write_text(
        f'[model]\npreset = "gpt-micro"\nn_embd = 32\nblock_size = 16\n'
        f'[train]\ndata = "{data}"\nsteps = 2\nbatch_size = 4\n'
    )
    out = tmp_path / "run"
    assert main(["train", "--config", str(toml), "--out", str(out), "--n-layer", "1"]) == 0
    cfg = load_toml(out / "config.toml")
    # preset gives n_head 4; the file sets n_embd and block_size; the flag sets n_layer
    assert (cfg["model"]["n_head"], cfg["model"]["n_embd"]) == (4, 32)
    assert (cfg["model"]["n_layer"], cfg["model"]["block_size"]) == (1, 16)
    assert capsys.readouterr().out.startswith("completed:")


def test_sweep_style_subprocess_runs_a_resolved_toml(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.toml").write_text(dumps_toml(tiny_cfg(data, "lstm", steps=3).to_dict()))
    cmd = [sys.executable, "-m", "scalinglab", "train", "--config", str(run / "run.toml")]
    cmd += ["--out", str(run), "--resume", "auto", "--json"]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result == json.loads((run / "result.json").read_text())
    assert result["status"] == "completed" and result["arch"] == "lstm"


def test_anneal_on_plateau_divides_the_lr_after_an_evaluation_no_better(tmp_path):
    # Trained on "aaa...", scored on "bbb...": every step makes the val loss worse, so each
    # evaluation after the first is a plateau and divides the LR of the steps after it by 4.
    import numpy as np

    from tests.conftest import write_raw_shards

    data = write_raw_shards(tmp_path / "s", np.full(2000, 97), np.full(400, 98))
    cfg = tiny_cfg(data, "lstm", steps=12, optimizer="sgd", lr=1.0, schedule="constant",
                   warmup=0, eval_every=4, plateau_factor=4.0)  # fmt: skip
    train(cfg, tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    lr = {r["step"]: r["lr"] for r in rows if "lr" in r}
    evals = [r["val_loss"] for r in rows if "val_loss" in r and not r.get("final")]
    assert len(evals) == 3 and evals[0] < evals[1] < evals[2]
    assert [lr[s] for s in range(1, 13)] == [1.0] * 8 + [0.25] * 4


def test_resume_under_another_optimizer_is_a_named_conflict():
    # a checkpoint written before --optimizer existed was AdamW's: resuming it as the new
    # RNN default (SGD) would load moments into SGD, so it is refused, naming the flag
    from scalinglab.config import ModelConfig, TrainConfig
    from scalinglab.train.setup import resume_conflicts

    m = ModelConfig(arch="lstm")
    cfg = RunConfig(model=m, train=TrainConfig(steps=5).with_optimizer_defaults(True))
    saved = {"config": {"model": dataclasses.asdict(m), "train": {"seed": 1337, "batch_size": 12,
             "grad_accum": 1}}, "data_fingerprint": "f"}  # fmt: skip
    assert resume_conflicts(saved, cfg, "f") == [
        "--order 'stream' -> 'random'",  # an RNN's lanes were walked in order then
        "--optimizer 'adamw' -> 'sgd'",
    ]
    saved["config"]["train"]["optimizer"] = "sgd"
    assert resume_conflicts(saved, cfg, "f") == ["--order 'stream' -> 'random'"]
    stream = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, order="stream"))
    assert resume_conflicts(saved, stream, "f") == []


def _rows(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_the_last_step_is_logged_though_not_a_multiple_of_log_every(tmp_path):
    """--steps 7 --log-every 5 logs the training loss at steps 5 and 7 (the last)."""
    data = tiny_shards(tmp_path / "shards")
    r = train(tiny_cfg(data, steps=7, log_every=5), tmp_path / "run")
    logged = [row["step"] for row in _rows(tmp_path / "run") if "train_loss" in row]
    assert logged == [5, 7]
    last = [row for row in _rows(tmp_path / "run") if "train_loss" in row][-1]
    assert last["train_loss"] == r["train_loss"] and last["tokens"] == 7 * 8 * 16


@pytest.mark.parametrize("eval_tokens", [400, 0])
def test_a_periodic_evaluation_at_the_last_step_is_the_final_one(tmp_path, eval_tokens):
    """a periodic evaluation reads --eval-tokens (or, unset, the whole of a split
    smaller than 65,536 tokens) like the final one: at the last step, on the same
    weights, both give the same loss."""
    data = tiny_shards(tmp_path / "shards")
    r = train(tiny_cfg(data, steps=4, eval_every=4, eval_tokens=eval_tokens), tmp_path / "run")
    periodic = [
        x["val_loss"] for x in _rows(tmp_path / "run") if "val_loss" in x and not x.get("final")
    ]
    assert periodic == [r["val_loss"]]  # the same weights on the same tokens
    assert r["eval_tokens"] == (384 if eval_tokens else 768)  # whole windows of 8 x 16


def test_a_run_past_one_epoch_counts_each_training_token_once_as_unique(tmp_path):
    """unique_tokens is min(tokens trained, tokens in the train split)."""
    text = TEXT[:1500]
    data = tiny_shards(tmp_path / "shards", text=text, val_frac=0.3)
    n_train = int(len(text) * 0.7)
    r = train(tiny_cfg(data, steps=12), tmp_path / "run")  # 12 * 128 = 1536 > n_train
    assert r["tokens"] == 1536 > n_train
    assert r["unique_tokens"] == n_train and r["epochs"] == 1536 / n_train


def test_tokens_per_second_are_tokens_over_training_seconds(tmp_path):
    """result.json's throughput is tokens / train_seconds (the time in steps, not
    the wall clock with its set-up and evaluations)."""
    data = tiny_shards(tmp_path / "shards")
    r = train(tiny_cfg(data, steps=3), tmp_path / "run")
    assert r["train_seconds"] < r["wall_seconds"]
    assert r["tokens_per_second"] == r["tokens"] / r["train_seconds"]
    assert math.isfinite(r["tokens_per_second"])
