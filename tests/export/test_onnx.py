"""Export to ONNX: onnxruntime reproduces our logits (and an RNN's carried state)."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript", reason="the [export] extra (onnxscript) is not installed")
pytest.importorskip("onnxruntime", reason="the [export] extra (onnxruntime) is not installed")

import onnxruntime as ort

from scalinglab.cli import main
from scalinglab.config import ModelConfig
from scalinglab.errors import ExportError
from scalinglab.export.onnx import export_onnx, onnx_difference, to_onnx
from scalinglab.models.registry import build_model
from scalinglab.train.evaluate import load_trained
from scalinglab.train.generate import sample
from tests.export.runs import trained_runs
from tests.train.helpers import TEXT


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(
        tmp_path_factory.mktemp("onnx"),
        gpt={"pos": "learned"},
        lstm={"arch": "lstm", "steps": 400},
    )


def _text_ids(batch: int, seq: int) -> np.ndarray:
    return np.frombuffer(TEXT[: batch * seq], dtype=np.uint8).astype(np.int64).reshape(batch, seq)


def test_gpt_onnx_logits_match_ours(runs, tmp_path, capsys):
    out = tmp_path / "gpt.onnx"
    assert main(["export", str(runs["gpt"]), "--format", "onnx", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["inputs"] == ["input_ids"] and report["outputs"] == ["logits"]
    assert report["max_abs_diff"] <= 1e-4
    model, _, _ = load_trained(runs["gpt"])
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch, seq in ((1, 16), (4, 5)):  # dynamic batch and sequence axes
        ids = _text_ids(batch, seq)
        (got,) = sess.run(None, {"input_ids": ids})
        with torch.no_grad():
            want = model(torch.from_numpy(ids))[0].numpy()
        assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4


def test_lstm_onnx_carries_state_like_ours(runs, tmp_path):
    out = tmp_path / "lstm.onnx"
    report = export_onnx(runs["lstm"], out)
    assert report["inputs"] == ["input_ids", "state_h", "state_c"]
    assert report["outputs"] == ["logits", "state_h_out", "state_c_out"]
    assert report["max_abs_diff"] <= 1e-4
    model, _, _ = load_trained(runs["lstm"])
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ids = _text_ids(2, 40)  # longer than a training window: the state carries on
    h, c = (s.numpy() for s in model.init_state(2))
    with torch.no_grad():
        want = model(torch.from_numpy(ids))[0].numpy()
    # the whole sequence at once, and in two pieces passing the state along
    (whole, _, _) = sess.run(None, {"input_ids": ids, "state_h": h, "state_c": c})
    first, h1, c1 = sess.run(None, {"input_ids": ids[:, :25], "state_h": h, "state_c": c})
    second, _, _ = sess.run(None, {"input_ids": ids[:, 25:], "state_h": h1, "state_c": c1})
    assert np.abs(whole - want).max() <= 1e-4
    assert np.abs(np.concatenate([first, second], axis=1) - want).max() <= 1e-4
    # greedy continuation of "a quick" through onnxruntime, one token at a time
    prompt = np.frombuffer(b"a quick", dtype=np.uint8).astype(np.int64)[None]
    h, c = (s.numpy() for s in model.init_state(1))
    logits, h, c = sess.run(None, {"input_ids": prompt, "state_h": h, "state_c": c})
    text = []
    for _ in range(9):
        nxt = logits[:, -1].argmax(-1)[:, None]
        text.append(int(nxt[0, 0]))
        logits, h, c = sess.run(None, {"input_ids": nxt, "state_h": h, "state_c": c})
    assert text == list(sample(model, list(b"a quick"), 9, temperature=0.0))
    assert bytes(text) == b" brown fo"  # it learned the corpus


@pytest.mark.parametrize(
    "arch, pos",
    [("gpt", "rope"), ("gru", "learned"), ("rnn_tanh", "learned")],
)
def test_other_architectures_export(tmp_path, arch, pos):
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, n_layer=2, n_head=2, n_embd=16, block_size=12, pos=pos)
    model = build_model(cfg, 40).eval()
    to_onnx(model, tmp_path / "m.onnx")
    seq = 12 if arch == "gpt" else 30
    assert onnx_difference(model, tmp_path / "m.onnx", batch=2, seq=seq) <= 1e-4
    # logits are (batch, seq, vocab): an RNN's last axis was an expression of the
    # example's length ('(2048//s70)')
    shape = ort.InferenceSession(str(tmp_path / "m.onnx")).get_outputs()[0].shape
    assert shape == ["batch", "seq", 40]


def test_bad_out_names_are_refused(runs, tmp_path):
    with pytest.raises(ExportError, match=r"\.onnx"):
        export_onnx(runs["gpt"], tmp_path / "model.bin")
    (tmp_path / "m.onnx").write_text("mine")
    with pytest.raises(ExportError, match="force=True"):
        export_onnx(runs["gpt"], tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx").read_text() == "mine"
    (tmp_path / "d.onnx").mkdir()  # refused up front, not after the whole export
    with pytest.raises(ExportError, match=r"d\.onnx is a folder; an ONNX export is one"):
        export_onnx(runs["gpt"], tmp_path / "d.onnx", force=True)


def test_a_failed_check_writes_nothing(runs, tmp_path, monkeypatch):
    import scalinglab.export.onnx as onnx_export

    monkeypatch.setattr(onnx_export, "compare", lambda *a, **k: (0.5, 10.0))
    with pytest.raises(ExportError, match=r"differ from ours by 0\.5"):
        export_onnx(runs["gpt"], tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []  # no file, no temporary folder


@pytest.mark.parametrize("param", ["mup", "completep"])
def test_mup_and_completep_export(tmp_path, param):
    torch.manual_seed(0)
    cfg = ModelConfig(n_layer=3, n_head=2, n_embd=32, block_size=12, param=param,
                      base_width=16, base_depth=1)  # fmt: skip
    model = build_model(cfg, 40).eval()
    assert model.readout == 0.5 and (param == "mup" or model.transformer.h[0].branch == 1 / 3)
    to_onnx(model, tmp_path / "m.onnx")
    assert onnx_difference(model, tmp_path / "m.onnx", batch=2, seq=12) <= 1e-4
