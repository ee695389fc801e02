"""A trained GPT run as a Hugging Face `transformers` model folder.

Our GPT is mapped onto the standard architecture that computes exactly the
same function, so the exported logits equal ours to float32 rounding:

- learned positions -> `GPT2LMHeadModel`: same names and block; Conv1D keeps
  its weight as (in, out), so every Linear weight is transposed; exact GELU
  (`nn.GELU()`) is GPT-2 config's "gelu", not its default "gelu_new" (tanh).
- rotary positions -> `GPTNeoXForCausalLM` with `use_parallel_residual=False`
  (sequential pre-LN blocks), `partial_rotary_factor=1` and rotate-half RoPE,
  LayerNorm and a 4x GELU MLP as ours. Llama would be the usual choice for
  rotary, but it uses RMSNorm and a gated SiLU MLP: its logits would differ.
  NeoX packs q, k, v per head, so our [Q | K | V] rows are regrouped.

Under --param mup/completep the multipliers (attention scale, residual branches,
readout) are folded into the weights (`GPT.sp_state_dict`); the embeddings are
then untied.

GPT-2 and NeoX always carry LayerNorm and MLP biases: a `--no-bias` model gets
zeros there (the same function). Recurrent models have no `transformers`
architecture; they export to ONNX instead.

The folder is written under a temporary name, loaded back with
`from_pretrained`, its logits compared with ours, and only then renamed into
place.
"""

import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from scalinglab.data.tokenizers import EOT, UNK, ByteTokenizer, detect_kind
from scalinglab.errors import ExportError, require
from scalinglab.export import check_out_apart, temp_beside
from scalinglab.fsio import follow_umask
from scalinglab.train.evaluate import load_run_tokenizer, load_trained, tokenizer_file

log = logging.getLogger(__name__)

TOLERANCE = 1e-4  # max abs logit difference accepted (float32)


def _t(w: torch.Tensor) -> torch.Tensor:
    return w.detach().t().contiguous()


def _bias(sd: dict, key: str, n: int) -> torch.Tensor:
    """Our bias, or zeros where the model was built with --no-bias."""
    return sd[key].detach().clone() if key in sd else torch.zeros(n)


def _tied(model) -> bool:
    """Tied in the export too: only without a readout multiplier (mup/completep fold theirs
    into the output weights, which then differ from the embedding)."""
    return model.cfg.tie_embeddings and model.readout == 1.0


def gpt2_config_and_weights(model):
    """(GPT2Config, state dict of GPT2LMHeadModel) for a GPT with learned positions."""
    from transformers import GPT2Config

    cfg, sd = model.cfg, model.sp_state_dict()
    c, v = cfg.n_embd, model.lm_head.weight.size(0)
    hf_cfg = GPT2Config(
        vocab_size=v, n_positions=cfg.block_size, n_embd=c, n_layer=cfg.n_layer,
        n_head=cfg.n_head, n_inner=4 * c, activation_function="gelu",
        resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
        layer_norm_epsilon=1e-5, tie_word_embeddings=_tied(model),
        bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    out = {
        "transformer.wte.weight": sd["transformer.wte.weight"],
        "transformer.wpe.weight": sd["transformer.wpe.weight"],
        "transformer.ln_f.weight": sd["transformer.ln_f.weight"],
        "transformer.ln_f.bias": _bias(sd, "transformer.ln_f.bias", c),
        "lm_head.weight": sd["lm_head.weight"],
    }
    for i in range(cfg.n_layer):
        p = f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            out[p + ln + ".weight"] = sd[p + ln + ".weight"]
            out[p + ln + ".bias"] = _bias(sd, p + ln + ".bias", c)
        for lin, n_out in (("attn.c_attn", 3 * c), ("attn.c_proj", c), ("mlp.c_fc", 4 * c),
                           ("mlp.c_proj", c)):  # fmt: skip
            out[p + lin + ".weight"] = _t(sd[p + lin + ".weight"])  # Conv1D: (in, out)
            out[p + lin + ".bias"] = _bias(sd, p + lin + ".bias", n_out)
    return hf_cfg, out


def _per_head_qkv(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """Rows [Q | K | V] (ours) -> [q_0 k_0 v_0 | q_1 k_1 v_1 | ...] (NeoX's fused layout)."""
    rest = x.shape[1:]
    hs = x.size(0) // (3 * n_head)
    return x.detach().reshape(3, n_head, hs, *rest).transpose(0, 1).reshape(x.shape).contiguous()


def neox_config_and_weights(model):
    """(GPTNeoXConfig, state dict of GPTNeoXForCausalLM) for a GPT with rotary positions."""
    from transformers import GPTNeoXConfig

    cfg, sd = model.cfg, model.sp_state_dict()
    c, v, nh = cfg.n_embd, model.lm_head.weight.size(0), cfg.n_head
    hf_cfg = GPTNeoXConfig(
        vocab_size=v, hidden_size=c, num_hidden_layers=cfg.n_layer, num_attention_heads=nh,
        intermediate_size=4 * c, hidden_act="gelu", max_position_embeddings=cfg.block_size,
        layer_norm_eps=1e-5, use_parallel_residual=False, attention_bias=cfg.bias,
        attention_dropout=cfg.dropout, hidden_dropout=cfg.dropout,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "partial_rotary_factor": 1.0},
        tie_word_embeddings=_tied(model), bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    out = {
        "gpt_neox.embed_in.weight": sd["transformer.wte.weight"],
        "gpt_neox.final_layer_norm.weight": sd["transformer.ln_f.weight"],
        "gpt_neox.final_layer_norm.bias": _bias(sd, "transformer.ln_f.bias", c),
        "lm_head.weight": sd["lm_head.weight"],
    }
    for i in range(cfg.n_layer):
        p, q = f"transformer.h.{i}.", f"gpt_neox.layers.{i}."
        for ours, theirs in (("ln_1", "input_layernorm"), ("ln_2", "post_attention_layernorm")):
            out[q + theirs + ".weight"] = sd[p + ours + ".weight"]
            out[q + theirs + ".bias"] = _bias(sd, p + ours + ".bias", c)
        out[q + "attention.query_key_value.weight"] = _per_head_qkv(
            sd[p + "attn.c_attn.weight"], nh
        )
        out[q + "attention.dense.weight"] = sd[p + "attn.c_proj.weight"]
        if cfg.bias:
            out[q + "attention.query_key_value.bias"] = _per_head_qkv(
                sd[p + "attn.c_attn.bias"], nh
            )
            out[q + "attention.dense.bias"] = sd[p + "attn.c_proj.bias"]
        out[q + "mlp.dense_h_to_4h.weight"] = sd[p + "mlp.c_fc.weight"]
        out[q + "mlp.dense_h_to_4h.bias"] = _bias(sd, p + "mlp.c_fc.bias", 4 * c)
        out[q + "mlp.dense_4h_to_h.weight"] = sd[p + "mlp.c_proj.weight"]
        out[q + "mlp.dense_4h_to_h.bias"] = _bias(sd, p + "mlp.c_proj.bias", c)
    return hf_cfg, out


def to_hf_model(model):
    """The `transformers` causal LM computing the same logits as our GPT `model` (float32, CPU)."""
    require("transformers", "export", "export to Hugging Face format")
    if getattr(model, "recurrent", False):
        raise ExportError(
            f"a {model.cfg.arch} run cannot be exported to Hugging Face transformers: it has "
            "no recurrent (RNN/GRU/LSTM) language-model architecture; use --format onnx"
        )
    if model.cfg.pos == "rope":
        from transformers import GPTNeoXForCausalLM as cls

        hf_cfg, sd = neox_config_and_weights(model)
    else:
        from transformers import GPT2LMHeadModel as cls

        hf_cfg, sd = gpt2_config_and_weights(model)
    hf_cfg.dtype = "float32"
    hf = cls(hf_cfg)
    missing, unexpected = hf.load_state_dict({k: v.float() for k, v in sd.items()}, strict=False)
    # A tied lm_head is the embedding itself; buffers (masks, rotary tables) are derived.
    missing = [k for k in missing if not (k == "lm_head.weight" and hf_cfg.tie_word_embeddings)]
    if missing or unexpected:
        raise ExportError(
            f"weight mapping is incomplete: missing {missing}, unexpected {unexpected}"
        )
    return hf.eval()


def tokenizer_files(tokenizer_json: Path, block_size: int) -> dict[str, str]:
    """tokenizer.json and tokenizer_config.json so `AutoTokenizer.from_pretrained` loads offline."""
    text = Path(tokenizer_json).read_text(encoding="utf-8")
    obj = json.loads(text)
    if "model" not in obj:  # the minimal {"kind": "byte"} form: write the real one
        text = ByteTokenizer().to_hf().to_str(pretty=True) + "\n"
        obj = json.loads(text)
    if obj.get("post_processor") is not None:  # a pretrained one's BOS/EOS around each
        obj["post_processor"] = None  # text: the runs never saw them (add_special_tokens=False)
        text = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    kind = detect_kind(obj)
    conf = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": block_size,
        # Hugging Face's clean-up would remove spaces before punctuation: not our text.
        "clean_up_tokenization_spaces": False,
        "scalinglab_tokenizer": kind,
    }
    vocab = obj["model"].get("vocab", {})
    if kind in ("char", "word"):
        conf["unk_token"] = UNK
    if kind == "char":  # a special token is matched in the text before it is split: the
        # five characters "<unk>" became one unknown (our char tokenizer reads five)
        conf["split_special_tokens"] = True
    if kind == "bpe" and EOT in vocab:
        conf["eos_token"] = EOT
    return {"tokenizer.json": text, "tokenizer_config.json": json.dumps(conf, indent=2) + "\n"}


@contextlib.contextmanager
def _no_progress_bars():
    """transformers draws tqdm bars while saving and loading: library code stays silent."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


@torch.no_grad()
def logits_difference(ours, theirs, vocab_size: int, block_size: int, seed: int = 0) -> float:
    """Max abs difference of the two models' float32 logits on random token windows."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, vocab_size, (2, block_size), generator=gen)
    a = ours(idx)[0].float()
    b = theirs(input_ids=idx).logits.float()
    return float((a - b).abs().max())


def export_hf(run_dir, out_dir, force: bool = False) -> dict:
    """Export a GPT run's newest checkpoint to `out_dir`; returns what was written and checked.

    The written folder is loaded back with `from_pretrained` and its logits compared
    with ours before it is moved into place; a difference above TOLERANCE is an error.
    """
    from transformers import AutoModelForCausalLM, GenerationConfig

    out = Path(out_dir)
    here = Path.cwd().resolve()
    if force and (out.resolve() == here or out.resolve() in here.parents):
        raise ExportError(
            f"--out {out_dir} is the current folder or holds it: --force would delete it; "
            "give another folder"
        )
    check_out_apart(run_dir, out)  # --force would delete the run
    model, cfg, step = load_trained(run_dir, "cpu")
    check_out_apart(run_dir, out, data=cfg.train.data)  # or its shards
    model.float()
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        what = "is not empty" if out.is_dir() else "is a file"
        raise ExportError(f"--out {out} exists and {what}; pass --force to replace it")
    hf = to_hf_model(model)
    tok_json = Path(run_dir) / "tokenizer.json"
    if not tok_json.exists():
        tok_json = Path(cfg.train.data) / "tokenizer.json"
    if not tok_json.exists():
        raise ExportError(
            f"{run_dir}: no tokenizer.json in the run folder or its shards {tok_json.parent} "
            "(a relative path is found from the current folder: run from the one it was "
            "trained in)"
        )
    load_run_tokenizer(run_dir, cfg)  # refuses a damaged one, or another run's
    tok_json = tokenizer_file(run_dir, cfg)  # its shards' only when of the run's tokenizer
    tok_files = tokenizer_files(tok_json, cfg.model.block_size)
    eos = json.loads(tok_files["tokenizer_config.json"]).get("eos_token")
    eos_id = json.loads(tok_files["tokenizer.json"])["model"]["vocab"][eos] if eos else None
    hf.config.eos_token_id = eos_id
    hf.generation_config = GenerationConfig(eos_token_id=eos_id, pad_token_id=eos_id)

    given, out = (
        out,
        Path(os.path.abspath(out)),
    )  # `.` has no name: its temporary folder went inside it
    tmp = temp_beside(out, given)
    try:
        with _no_progress_bars():
            hf.save_pretrained(tmp)
            for name, text in tok_files.items():
                (tmp / name).write_text(text, encoding="utf-8")
            for f in tmp.iterdir():  # safetensors writes 0600: a team could not read it
                follow_umask(f)
            back = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32).eval()
        diff = logits_difference(model, back, cfg.model.vocab_size, cfg.model.block_size)
        if not diff <= TOLERANCE:
            raise ExportError(
                f"the exported model's logits differ from ours by {diff:.3g} "
                f"(> {TOLERANCE}); nothing was written to {out}"
            )
        if out.is_dir() and not out.is_symlink():
            shutil.rmtree(out)
        elif out.exists() or out.is_symlink():
            out.unlink()  # a file (or a link) in the way, replaced under --force
        os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.debug("exported %s (step %d) as %s to %s", run_dir, step, type(hf).__name__, out)
    return {
        "format": "hf", "out": str(given), "architecture": type(hf).__name__, "step": step,
        "max_abs_logit_diff": diff, "files": sorted(p.name for p in out.iterdir()),
    }  # fmt: skip
