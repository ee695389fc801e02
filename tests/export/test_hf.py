"""Export to Hugging Face transformers: the folder loads offline, its logits and its
greedy text are ours."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="the [export] extra (transformers) is not installed")

from transformers import AutoModelForCausalLM, AutoTokenizer

from scalinglab.cli import main
from scalinglab.data.tokenizers import ByteTokenizer, train_tokenizer
from scalinglab.errors import ExportError
from scalinglab.export.hf import export_hf, tokenizer_files
from scalinglab.train.evaluate import load_trained
from scalinglab.train.generate import sample
from tests.export.runs import trained_runs
from tests.train.helpers import TEXT


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return trained_runs(
        tmp_path_factory.mktemp("hf"),
        # GPT-2's shape: learned positions, biases, tied embeddings
        learned={"pos": "learned"},
        # the other corner: rotary, no biases, untied output projection
        rope={"pos": "rope", "bias": False, "tie_embeddings": False, "n_layer": 2},
        lstm={"arch": "lstm"},
    )


def _load(folder):
    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model, tok


@pytest.mark.parametrize(
    "name, arch", [("learned", "GPT2LMHeadModel"), ("rope", "GPTNeoXForCausalLM")]
)
def test_exported_model_has_our_logits_and_greedy_text(runs, tmp_path, capsys, name, arch):
    out = tmp_path / "hf"
    assert main(["export", str(runs[name]), "--format", "hf", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["architecture"] == arch and report["max_abs_logit_diff"] <= 1e-4
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json"} <= set(report["files"])  # fmt: skip
    hf, tok = _load(out)
    assert hf.config.architectures == [arch]
    ours, cfg, _ = load_trained(runs[name])

    # logits on real text windows (batch of 3, the full block)
    ids = torch.from_numpy(np.frombuffer(TEXT[:48], dtype=np.uint8).astype(np.int64)).view(3, 16)
    with torch.no_grad():
        diff = (ours(ids)[0] - hf(input_ids=ids).logits).abs().max().item()
    assert diff <= 1e-4

    # greedy text, each side with its own tokenizer and its own generate()
    prompt = "a quick"
    assert tok(prompt).input_ids == ByteTokenizer().encode(prompt).tolist()
    new = cfg.model.block_size - len(prompt)
    ours_text = prompt + ByteTokenizer().decode(list(sample(ours, list(b"a quick"), new, 0.0)))
    with torch.no_grad():
        gen = hf.generate(tok(prompt, return_tensors="pt").input_ids, max_new_tokens=new,
                          do_sample=False)  # fmt: skip
    hf_text = tok.decode(gen[0])
    assert hf_text == ours_text
    assert hf_text == TEXT[:16].decode()  # it learned the corpus: " brown fox" follows


def test_recurrent_run_is_refused_and_pointed_to_onnx(runs, tmp_path, capsys):
    with pytest.raises(ExportError, match=r"no recurrent .*use format onnx$"):  # from Python
        export_hf(runs["lstm"], tmp_path / "x")
    assert main(["export", str(runs["lstm"]), "--format", "hf", "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: a lstm run cannot be exported") and "Traceback" not in err
    assert err.endswith("use --format onnx\n")  # from the CLI, the flag
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_existing_folder_needs_force(runs, tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="force=True"):
        export_hf(runs["learned"], out)
    assert (out / "keep.txt").read_text() == "mine"
    report = export_hf(runs["learned"], out, force=True)
    assert "keep.txt" not in report["files"] and (out / "model.safetensors").exists()
    assert not list(tmp_path.glob(".hf.tmp-*"))


def test_an_existing_file_needs_force_and_is_replaced(runs, tmp_path):
    """--out naming a file: "Not a directory" with or without --force, before."""
    out = tmp_path / "afile"
    out.write_text("mine")
    with pytest.raises(ExportError, match=r"exists and is a file; pass force=True"):
        export_hf(runs["learned"], out)
    assert out.read_text() == "mine"
    report = export_hf(runs["learned"], out, force=True)
    assert out.is_dir() and "model.safetensors" in report["files"]


SAMPLE = "First Citizen:\nBefore we proceed any further, hear me speak.\nAll: Speak, speak! é ü\n"


@pytest.mark.parametrize("kind", ["byte", "char", "bpe"])
def test_auto_tokenizer_encodes_and_decodes_as_ours(tmp_path, kind):
    ours = train_tokenizer(kind, [SAMPLE * 3], 300 if kind == "bpe" else None)
    ours.save(tmp_path / "src.json")
    for name, text in tokenizer_files(tmp_path / "src.json", block_size=64).items():
        (tmp_path / name).write_text(text)
    tok = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    ids = ours.encode(SAMPLE).tolist()
    assert tok(SAMPLE).input_ids == ids
    assert tok.decode(ids) == ours.decode(ids) == SAMPLE
    assert tok.model_max_length == 64
    if kind == "char":
        assert tok.unk_token == "<unk>" and tok.unk_token_id == ours.unk_id
        # the text "<unk>" is five characters to ours; AutoTokenizer read it as one
        # unknown token (the special token matched before the text was split)
        for text in ("<unk>", "a<unk>b", "x€y"):
            assert tok(text).input_ids == ours.encode(text).tolist()
    if kind == "bpe":
        assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 0


def test_a_pretrained_tokenizers_post_processor_is_left_out_of_the_export(tmp_path):
    """Shards are encoded without a pretrained tokenizer's special tokens (Llama's <s>
    before each text); the exported tokenizer.json kept its post-processor, so
    AutoTokenizer fed the exported model a <s> it never trained on."""
    from scalinglab.data.tokenizers import load_tokenizer
    from tests.data.test_pretrained_tokenizer import hf_tokenizer

    hf_tokenizer().save(str(tmp_path / "src.json"))
    for name, text in tokenizer_files(tmp_path / "src.json", block_size=64).items():
        (tmp_path / name).write_text(text)
    tok = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    ids = load_tokenizer(tmp_path / "src.json").encode(SAMPLE).tolist()
    assert tok(SAMPLE).input_ids == ids and tok.decode(ids) == SAMPLE


@pytest.mark.parametrize("param, pos", [("mup", "learned"), ("completep", "rope")])
def test_mup_and_completep_runs_export_with_our_logits(tmp_path, capsys, param, pos):
    """The multipliers (attention, branches, readout) are folded into the exported weights."""
    shape = {"n_embd": 64, "n_head": 2, "n_layer": 2, "base_width": 32, "base_depth": 1}
    run = trained_runs(tmp_path, r={"param": param, "pos": pos, "steps": 40} | shape)["r"]
    out = tmp_path / "hf"
    assert main(["export", str(run), "--format", "hf", "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["max_abs_logit_diff"] <= 1e-4
    hf, _ = _load(out)
    ours, cfg, _ = load_trained(run)
    assert (cfg.model.param, ours.readout) == (param, 0.5)  # the checkpoint recorded it
    ids = torch.from_numpy(np.frombuffer(TEXT[:48], dtype=np.uint8).astype(np.int64)).view(3, 16)
    with torch.no_grad():
        diff = (ours(ids)[0] - hf(input_ids=ids).logits).abs().max().item()
    assert diff <= 1e-4
