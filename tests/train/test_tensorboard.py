"""--tensorboard (= --logger tensorboard): event files beside metrics.jsonl holding the same
scalars, and the run's result and settings (the HPARAMS view)."""

import json

import pytest

from scalinglab.train.loop import Trainer
from tests.train.helpers import tiny_cfg, tiny_shards


def _scalars(run) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value)]} as TensorBoard reads the run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _rows(run) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _expected(run) -> dict[str, list[tuple[int, float]]]:
    rows = _rows(run)
    return {
        "loss/train": [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r],
        "lr": [(r["step"], r["lr"]) for r in rows if "lr" in r],
        "loss/val": [(r["step"], r["val_loss"]) for r in rows if "val_loss" in r and not r.get("final")],
        "loss/val_final": [(r["step"], r["val_loss"]) for r in rows if r.get("final")],
        # once per step: the final evaluation's row shares the last row's step
        "tokens": sorted({r["step"]: r["tokens"] for r in rows}.items()),
        "flops": sorted({r["step"]: r["flops"] for r in rows}.items()),
    }  # fmt: skip


def _assert_same(got: dict, want: dict) -> None:
    want = {tag: v for tag, v in want.items() if v}
    # the throughput is the trainer's measure at each logged step (not a metrics.jsonl column)
    assert [s for s, _ in got["tokens_per_second"]] == [s for s, _ in want["loss/train"]]
    assert all(v > 0 for _, v in got["tokens_per_second"])
    got = {t: v for t, v in got.items() if not t.startswith("result/") and t != "tokens_per_second"}
    assert set(got) == set(want)
    for tag in want:
        assert [s for s, _ in got[tag]] == [s for s, _ in want[tag]], tag
        # event files store float32
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in want[tag]], rel=1e-6), tag


def test_event_files_hold_the_metrics(tmp_path):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    Trainer(tiny_cfg(data, steps=20, log_every=5, eval_every=10, tensorboard=True), run).train()
    assert len(list(run.glob("events.out.tfevents.*"))) == 1
    got = _scalars(run)
    assert [s for s, _ in got["loss/train"]] == [5, 10, 15, 20]
    assert [s for s, _ in got["loss/val"]] == [10, 20]
    _assert_same(got, _expected(run))
    result = json.loads((run / "result.json").read_text())
    assert got["result/val_loss"] == [(20, pytest.approx(result["val_loss"], rel=1e-6))]
    assert got["result/params"] == [(20, result["params"])]


def test_resume_purges_events_after_the_checkpoint(tmp_path):
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    cfg = tiny_cfg(data, steps=20, log_every=5, ckpt_every=10, tensorboard=True)
    Trainer(cfg, run).train()
    # as if the process died after logging step 20 but before its checkpoint was valid
    (run / "ckpt" / "step-00000020" / "manifest.json").unlink()
    (run / "result.json").unlink()
    before = _scalars(run)
    Trainer(cfg, run).train()
    assert len(list(run.glob("events.out.tfevents.*"))) == 2
    after = _scalars(run)
    assert [s for s, _ in after["loss/train"]] == [5, 10, 15, 20]  # no step twice
    _assert_same(after, _expected(run))
    # a deterministic resume logs the same losses as the first attempt
    assert [s for s, _ in before["loss/train"]] == [5, 10, 15, 20]
    assert [v for _, v in after["loss/train"]] == [v for _, v in before["loss/train"]]


def test_without_the_flag_no_event_files(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    Trainer(tiny_cfg(data, steps=3), tmp_path / "run").train()
    assert not list((tmp_path / "run").glob("events.out.tfevents.*"))


def test_tensorboard_added_at_a_resume_has_the_steps_before_it(tmp_path):
    """`--logger tensorboard` added when resuming held only the steps from the resume on."""
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    Trainer(tiny_cfg(data, steps=20, log_every=5, eval_every=10, ckpt_every=10), run).train()
    (run / "ckpt" / "step-00000020" / "manifest.json").unlink()
    (run / "result.json").unlink()
    cfg = tiny_cfg(data, steps=20, log_every=5, eval_every=10, ckpt_every=10, tensorboard=True)
    Trainer(cfg, run).train()
    got = _scalars(run)
    # the replayed steps have no throughput (not a metrics.jsonl column)
    assert [s for s, _ in got.pop("tokens_per_second")] == [15, 20]
    want = {tag: v for tag, v in _expected(run).items() if v}
    assert set(t for t in got if not t.startswith("result/")) == set(want)
    for tag in want:
        assert [s for s, _ in got[tag]] == [s for s, _ in want[tag]], tag
        assert [v for _, v in got[tag]] == pytest.approx([v for _, v in want[tag]], rel=1e-6), tag
