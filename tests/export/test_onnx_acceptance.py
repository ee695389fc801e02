"""The ONNX export's check against PyTorch: the tolerance, the returned state, a
non-zero state fed, twice the block for recurrent runs, the summary line."""

import pytest
import torch

from scalinglab.cli import main
from tests.train.helpers import cli_args, tiny_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    path = tmp_path_factory.mktemp("shards") / "shards"
    tiny_shards(path)
    return path


# ---- export: the acceptance check and the summary line ------------------------------
@pytest.fixture(scope="module")
def gpt_run(shards, tmp_path_factory):
    run = tmp_path_factory.mktemp("sugg-run") / "run"
    assert main(cli_args(shards, run, "--steps", "1")) == 0
    return run


@pytest.mark.parametrize(
    "diff, scale, ok",
    [
        (1.5e-4, 10.0, True),  # 1e-4 + 1e-5 * 10 = 2e-4 allowed
        (1.5e-4, 1.0, False),  # 1.1e-4 allowed
        (2.5e-4, 10.0, False),
    ],
)
def test_export_accepts_within_atol_plus_rtol_times_scale(
    gpt_run, tmp_path, monkeypatch, diff, scale, ok
):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    import scalinglab.export.onnx as ox
    from scalinglab.errors import ExportError

    monkeypatch.setattr(ox, "compare", lambda *a, **k: (diff, scale))
    out = tmp_path / "m.onnx"
    if ok:
        assert ox.export_onnx(gpt_run, out)["max_abs_diff"] == diff and out.is_file()
    else:
        with pytest.raises(ExportError):
            ox.export_onnx(gpt_run, out)
        assert not out.exists()


def test_export_summary_line_names_step_and_difference(gpt_run, tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    import scalinglab.export.onnx as ox

    monkeypatch.setattr(ox, "compare", lambda *a, **k: (1.5e-5, 7.0))
    capsys.readouterr()
    out = tmp_path / "m.onnx"
    assert main(["export", str(gpt_run), "--format", "onnx", "--out", str(out)]) == 0
    line = capsys.readouterr().out
    assert f"{gpt_run} (step 1) -> {out}: input_ids -> logits, " in line
    assert line.rstrip().endswith("max abs difference vs onnxruntime 1.5e-05")


def test_hf_refuses_any_opset_even_zero(capsys):
    assert main(["export", "nowhere", "--format", "hf", "--out", "x", "--opset", "0"]) == 2
    assert "--opset applies to --format onnx only" in capsys.readouterr().err


def _rnn(arch):
    from scalinglab.config import ModelConfig
    from scalinglab.models.registry import build_model

    torch.manual_seed(0)
    return build_model(ModelConfig(arch=arch, n_layer=2, n_embd=16, block_size=12), 40).eval()


def test_check_compares_the_returned_state_too(tmp_path, monkeypatch):
    """A file whose state_h_out is off by 1 (logits exact) is a difference of 1."""
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    from scalinglab.export.onnx import onnx_difference, to_onnx

    model = _rnn("rnn_tanh")  # TorchScript path: one torch.export per process is safest
    to_onnx(model, tmp_path / "m.onnx")
    real = ort.InferenceSession.run
    monkeypatch.setattr(
        ort.InferenceSession,
        "run",
        lambda self, *a, **k: [*(r := real(self, *a, **k))[:-1], r[-1] + 1.0],
    )
    assert onnx_difference(model, tmp_path / "m.onnx", batch=2, seq=5) == pytest.approx(
        1.0, abs=1e-3
    )


def test_check_feeds_a_non_zero_state():
    from scalinglab.export.onnx import example_inputs

    for arch in ("gru", "lstm"):
        _, *states = example_inputs(_rnn(arch), 3, 5, seed=1)
        assert states and all(0.3 < float(s.std()) < 0.7 for s in states)  # 0.5 * N(0, 1)


def test_recurrent_run_is_checked_on_twice_its_block(shards, tmp_path, monkeypatch):
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    import scalinglab.export.onnx as ox

    run = tmp_path / "gru"
    assert main(cli_args(shards, run, "--steps", "1", "--model", "gru")) == 0
    seen = {}
    monkeypatch.setattr(ox, "to_onnx", lambda m, path, opset=None: path.write_bytes(b"x"))
    monkeypatch.setattr(
        ox, "compare", lambda m, p, seq=None, **k: seen.setdefault("seq", seq) and (0.0, 1.0)
    )
    ox.export_onnx(run, tmp_path / "m.onnx")
    assert seen["seq"] == 32  # block 16


def test_elman_rnn_default_opset_is_17(tmp_path):
    onnx = pytest.importorskip("onnx")
    from scalinglab.export.onnx import to_onnx

    to_onnx(_rnn("rnn_tanh"), tmp_path / "m.onnx")
    versions = {o.domain: o.version for o in onnx.load(str(tmp_path / "m.onnx")).opset_import}
    assert versions[""] == 17
