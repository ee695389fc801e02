"""The coordinate check: under sp Adam's updates grow with the width, under mup they do not."""

import json

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.train.coordcheck import coord_check, layer_names, sample_batches
from tests.train.helpers import tiny_shards


def test_updates_grow_with_width_under_sp_and_stay_flat_under_mup():
    """Widths 16..128, 3 Adam steps at lr 0.01 on random bytes. Under sp one Adam step
    moves every weight by ~lr whatever the width, so a hidden layer's output moves by
    ~lr x fan-in: exponent >= 1 (more, compounded over layers); under mup the 1/m hidden
    lr and 1/m readout cancel it: exponent ~0 in every layer."""
    tokens = np.random.default_rng(0).integers(0, 256, 20_000)
    res = coord_check(sample_batches(tokens, 4, 4, 16), [16, 32, 64, 128], ["sp", "mup"])
    assert res.layers == layer_names(2)
    upd, size = res.exponents("update"), res.exponents("size")
    hidden = [k for k in res.layers if k.split()[0] in ("attn", "mlp", "block")]
    for k in hidden:
        assert upd["sp"][k] > 0.9, (k, upd["sp"][k])
        assert size["sp"][k] > 0.9, (k, size["sp"][k])
    assert upd["sp"]["logits"] > 0.5
    for k in res.layers:  # mup: flat everywhere, the logits included
        assert abs(upd["mup"][k]) < 0.35, (k, upd["mup"][k])
        assert abs(size["mup"][k]) < 0.35, (k, size["mup"][k])
    # the embedding's lr has no width factor in either: its update is flat in both
    assert abs(upd["sp"]["embedding"]) < 0.1
    # at step 0 nothing has moved
    assert np.all(res.values["update"]["sp"][:, 0, :] == 0)


def test_cli_writes_the_json_and_the_figure(tmp_path, capsys):
    data = tiny_shards(tmp_path / "shards")
    out = tmp_path / "cc"
    args = ["coord-check", "--data", str(data), "--out", str(out), "--widths", "16,32",
            "--steps", "1", "--batch-size", "2", "--block-size", "8", "--n-layer", "1"]  # fmt: skip
    assert main([*args, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    doc = json.loads((out / "coord_check.json").read_text())
    assert doc["kind"] == "scalinglab.coord_check" and doc["widths"] == [16, 32]
    assert printed == doc["exponents"]
    assert set(printed["update"]) == {"sp", "mup"}
    assert np.array(doc["values"]["size"]["mup"]).shape == (2, 2, len(layer_names(1)))
    assert (out / "coord_check.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--widths", "32,x"], "--widths '32,x': give comma-separated whole numbers"),
        (["--widths", "32"], "2 or more widths"),
        (["--params", "sp,mu"], "--params: 'mu' is not one of sp, mup, completep"),
        (["--widths", "30,60"], "width 30 is not a multiple of --n-head 4"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--widths", "16,32", "--base-width", "0"], "--base-width must be at least 1"),
        (["--params", ""], "--params '': give each of the parametrisations to compare once"),
        (["--params", "sp,sp"], "--params 'sp,sp': give each"),
        (
            [
                "--lr",
                "1e8",
                "--widths",
                "16,32",
                "--steps",
                "3",
                "--batch-size",
                "2",
                "--block-size",
                "8",
                "--n-layer",
                "1",
                "--params",
                "sp",
            ],
            "--lr 1e+08: sp at width 16 diverged by step 1 (its size is not finite)",
        ),  # a NaN in the JSON: a traceback after --out was made
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, extra, message):
    data = tiny_shards(tmp_path / "shards")
    args = ["coord-check", "--data", str(data), "--out", str(tmp_path / "cc"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "cc").exists()


def test_coord_check_averages_its_seeds():
    """coord_check(seeds=2) records the mean over seeds 0 and 1 of each single-seed run."""
    import scalinglab.train.coordcheck as cc

    tokens = np.random.default_rng(0).integers(0, 256, 5_000)
    batches = cc.sample_batches(tokens, 3, 2, 8)
    two = cc.coord_check(batches, [16, 32], ["sp"], seeds=2, n_layer=1, n_head=4)
    cfgs = {w: cc.ModelConfig(n_layer=1, n_embd=w, n_head=4, block_size=8, vocab_size=256,
                              param="sp", base_width=16) for w in (16, 32)}  # fmt: skip
    for what in ("size", "update"):
        s0 = np.array([cc.run_one(cfgs[w], batches, 1e-2, 0)[what] for w in (16, 32)])
        s1 = np.array([cc.run_one(cfgs[w], batches, 1e-2, 1)[what] for w in (16, 32)])
        assert np.allclose(two.values[what]["sp"], (s0 + s1) / 2, rtol=1e-5)
        assert not np.allclose(s0, s1)


def test_coord_check_cli_passes_its_flags(tmp_path, capsys, monkeypatch):
    """--steps, --batch-size, --block-size, --lr, --n-head, --base-width and --seeds reach
    coord_check and sample_batches as given (steps + 1 batches: the first is the probe)."""
    import scalinglab.train.coordcheck as cc
    from scalinglab.cli import main
    from tests.train.helpers import tiny_shards

    seen = {}
    real_sample, real_check = cc.sample_batches, cc.coord_check

    def sample(tokens, n, batch, block, seed=0):
        seen["sample"] = (n, batch, block)
        return real_sample(tokens, n, batch, block, seed)

    def check(batches, widths, params, **kw):
        seen["check"] = kw
        return real_check(batches, widths, params, **kw)

    monkeypatch.setattr(cc, "sample_batches", sample)
    monkeypatch.setattr(cc, "coord_check", check)
    data = tiny_shards(tmp_path / "shards")
    argv = ["coord-check", "--data", str(data), "--out", str(tmp_path / "cc"), "--widths", "16,32",
            "--params", "sp", "--steps", "2", "--batch-size", "3", "--block-size", "8",
            "--n-layer", "1", "--n-head", "2", "--lr", "0.003", "--base-width", "32",
            "--seeds", "2", "--json"]  # fmt: skip
    assert main(argv) == 0
    assert seen["sample"] == (3, 3, 8)
    kw = seen["check"]
    assert (kw["lr"], kw["n_layer"], kw["n_head"], kw["base_width"], kw["seeds"]) == (
        0.003,
        1,
        2,
        32,
        2,
    )
    doc = json.loads((tmp_path / "cc" / "coord_check.json").read_text())
    assert (doc["steps"], doc["lr"], doc["base_width"]) == (2, 0.003, 32)


def test_coord_check_defaults_are_the_documented_ones():
    import argparse

    from scalinglab.cli import coordcheck

    p = argparse.ArgumentParser()
    coordcheck.register(p.add_subparsers())
    a = p.parse_args(["coord-check", "--data", "d", "--out", "o"])
    assert (a.widths, a.params, a.lr, a.steps, a.batch_size, a.block_size, a.n_layer,
            a.n_head, a.base_width, a.seeds) == ("32,64,128,256", "sp,mup", 1e-2, 4, 16, 64,
                                                 2, 4, None, 1)  # fmt: skip


def test_coord_check_refuses_a_zero_width(tmp_path, capsys):
    from scalinglab.cli import main
    from tests.train.helpers import tiny_shards

    data = tiny_shards(tmp_path / "shards")
    assert main(["coord-check", "--data", str(data), "--out", str(tmp_path / "cc"),
                 "--widths", "0,16"]) == 2  # fmt: skip
    assert "--widths '0,16': give positive whole numbers" in capsys.readouterr().err
