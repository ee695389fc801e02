"""`export --out` that is, lies inside or holds the run, and `--opset` out of the exporter's
range: refused before anything is removed or written."""

import importlib.util

import pytest

from scalinglab.cli import main
from scalinglab.config import ModelConfig
from scalinglab.errors import ConfigError
from scalinglab.export.onnx import check_opset, opset_range
from scalinglab.models.registry import build_model
from scalinglab.train.evaluate import load_trained
from tests.export.runs import trained_runs
from tests.reliability.helpers import one_line_error
from tests.train.helpers import cli_args, tiny_shards

needs_hf = pytest.mark.skipif(
    importlib.util.find_spec("transformers") is None, reason="[export] extra not installed"
)
needs_onnx = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("onnx", "onnxruntime", "onnxscript")),
    reason="[export] extra not installed",
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run inside a sweep-like folder (sweep/r)."""
    return trained_runs(tmp_path_factory.mktemp("outpaths") / "sweep", r={"steps": 20})["r"]


def _files(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _refused(capsys, argv) -> str:
    return one_line_error(capsys, [str(a) for a in argv])


@pytest.mark.parametrize(
    "fmt, where, how",
    [
        pytest.param("hf", ".", "is", marks=needs_hf),
        pytest.param("hf", "hf", "lies inside", marks=needs_hf),
        pytest.param("hf", "..", "contains", marks=needs_hf),
        pytest.param("onnx", "m.onnx", "lies inside", marks=needs_onnx),
    ],
)
def test_out_the_run_inside_it_or_holding_it_is_refused_and_the_run_kept(
    run, capsys, fmt, where, how
):
    out = {".": run, "..": run.parent}.get(where, run / where)
    sweep = _files(run.parent)
    err = _refused(capsys, ["export", run, "--format", fmt, "--out", out, "--force"])
    assert err == (
        f"error: --out {out} {how} the run folder {run} being exported; "
        "choose an --out outside the run\n"
    )
    assert _files(run.parent) == sweep
    assert {"config.toml", "result.json", "metrics.jsonl"} <= {p.name for p in run.iterdir()}


@needs_hf
def test_a_path_spelled_otherwise_is_still_the_run(run, capsys, monkeypatch):
    monkeypatch.chdir(run.parent)
    err = _refused(capsys, ["export", "r", "--format", "hf", "--out", "./r/../r/", "--force"])
    assert err == (
        "error: --out r/../r is the run folder r being exported; choose an --out outside the run\n"
    )
    assert (run / "config.toml").exists()


@needs_onnx
def test_opset_outside_the_exporters_range_is_refused(run, tmp_path, capsys):
    lo, hi = opset_range(load_trained(run)[0])
    out = tmp_path / "m.onnx"
    for opset in (1, -5, lo - 1, hi + 1):
        argv = ["export", run, "--format", "onnx", "--out", out, "--opset", opset]
        err = _refused(capsys, argv)
        assert err == (
            f"error: --opset {opset}: the ONNX exporter writes opsets {lo} to {hi} "
            "for this model (gpt)\n"
        )
        assert not out.exists() and list(tmp_path.iterdir()) == []


@needs_onnx
def test_the_lowest_opset_in_range_is_the_one_written(run, tmp_path, capsys):
    import onnx

    lo, _ = opset_range(load_trained(run)[0])
    out = tmp_path / "m.onnx"
    assert (
        main(["export", str(run), "--format", "onnx", "--out", str(out), "--opset", str(lo)]) == 0
    )
    assert [o.version for o in onnx.load(str(out)).opset_import if o.domain == ""] == [lo]


def test_an_elman_rnn_has_the_torchscript_exporters_range():
    model = build_model(ModelConfig(arch="rnn_tanh", n_layer=1, n_embd=8, vocab_size=16))
    lo, hi = opset_range(model)
    assert lo < opset_range(build_model(ModelConfig(n_layer=1, n_embd=8, n_head=2), 16))[0]
    check_opset(model, lo)
    check_opset(model, None)
    with pytest.raises(ConfigError) as exc:
        check_opset(model, hi + 1)
    assert str(exc.value) == (
        f"opset {hi + 1}: the ONNX exporter writes opsets {lo} to {hi} for this model (rnn_tanh)"
    )


@needs_hf
def test_out_the_runs_shards_folder_is_refused_and_the_shards_kept(run, capsys):
    """The shards a run trained on (an export reads their tokenizer when the run has no
    copy): `--out SHARDS --force` deleted them."""
    shards = run.parent / "shards"
    before = _files(shards)
    err = _refused(capsys, ["export", run, "--format", "hf", "--out", shards, "--force"])
    assert err == (
        f"error: --out {shards} is the run's shards folder {shards}; "
        "choose an --out outside the shards\n"
    )
    assert _files(shards) == before


@needs_hf
def test_out_dot_is_filled_when_empty_and_never_deleted(run, tmp_path, capsys, monkeypatch):
    """`--out .` put its temporary folder inside `.` (a path with no name) and failed with
    'Invalid argument'; under --force it first deleted everything in the folder."""
    empty, kept = tmp_path / "empty", tmp_path / "kept"
    empty.mkdir()
    kept.mkdir()
    (kept / "precious.txt").write_text("keep")
    monkeypatch.chdir(kept)
    err = _refused(capsys, ["export", run, "--format", "hf", "--out", ".", "--force"])
    assert err == (
        "error: --out . is the current folder or holds it: --force would delete it; "
        "give another folder\n"
    )
    assert (kept / "precious.txt").read_text() == "keep"
    monkeypatch.chdir(empty)
    assert main(["export", str(run), "--format", "hf", "--out", "."]) == 0
    assert (empty / "config.json").exists() and not list(empty.glob(".*tmp*"))


@needs_hf
def test_a_run_with_relative_data_exports_from_another_folder(tmp_path, capsys, monkeypatch):
    """A run keeps `--data shards` as typed: exported from another folder, `--out .` was
    refused as holding the shards (./shards, found from there, where none are)."""
    trained_in, elsewhere = tmp_path / "x", tmp_path / "y"
    tiny_shards(trained_in / "shards")
    elsewhere.mkdir()
    monkeypatch.chdir(trained_in)
    assert main(cli_args("shards", "runs/r", "--steps", "2", "-q")) == 0
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["export", str(trained_in / "runs" / "r"), "--format", "hf", "--out", "."]) == 0
    assert "-> .: GPT2LMHeadModel" in capsys.readouterr().out
    assert (elsewhere / "config.json").exists() and (elsewhere / "tokenizer.json").exists()
    # where the path names shards from here too, those are still kept from --out
    tiny_shards(elsewhere / "data" / "shards")
    monkeypatch.chdir(elsewhere / "data")
    err = _refused(
        capsys,
        ["export", trained_in / "runs" / "r", "--format", "hf", "--out", "shards", "--force"],
    )
    assert err == (
        "error: --out shards is the run's shards folder shards; choose an --out outside the shards\n"
    )


@pytest.mark.parametrize(
    "fmt, name",
    [pytest.param("hf", "hf", marks=needs_hf), pytest.param("onnx", "m.onnx", marks=needs_onnx)],
)
def test_out_under_a_file_is_refused_naming_out(run, tmp_path, capsys, fmt, name):
    """An --out whose parent cannot be made (a file in the way) was an OSError naming the
    file (exit 1); now a one-line error naming --out, and the file is kept."""
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    out = blocker / name
    err = _refused(capsys, ["export", run, "--format", fmt, "--out", out])
    assert (
        err
        == f"error: --out {out}: cannot write in {blocker}: a file is in the way of that folder\n"
    )
    assert blocker.read_text() == "mine\n" and list(tmp_path.iterdir()) == [blocker]
