"""Build a model from its config; presets by name.

A preset is a set of ModelConfig fields. On the command line and in TOML files
it is the lowest layer: `--preset gpt-mini --n-layer 8` is gpt-mini with eight
layers. Free shapes need no preset at all.
"""

import dataclasses

from scalinglab.config import ModelConfig
from scalinglab.errors import ConfigError
from scalinglab.models.gpt import GPT
from scalinglab.models.rnn import RNNModel

PRESETS: dict[str, dict] = {
    # nanoGPT's CPU shakespeare shape (about 0.8M parameters with a byte vocabulary)
    "gpt-tiny": dict(arch="gpt", n_layer=4, n_head=4, n_embd=128, block_size=64),
    "gpt-mini": dict(arch="gpt", n_layer=6, n_head=6, n_embd=192, block_size=256),
    "gpt-micro": dict(arch="gpt", n_layer=4, n_head=4, n_embd=64, block_size=128),
    # nanoGPT's shakespeare-char GPU shape
    "gpt-small-char": dict(arch="gpt", n_layer=6, n_head=6, n_embd=384, block_size=256),
    # GPT-2 small (124M with the GPT-2 vocabulary)
    "gpt2": dict(arch="gpt", n_layer=12, n_head=12, n_embd=768, block_size=1024),
    "gpt2-medium": dict(arch="gpt", n_layer=24, n_head=16, n_embd=1024, block_size=1024),
    # The word-language-model example's small and medium LSTMs (Zaremba et al. 2014)
    "lstm-tiny": dict(arch="lstm", n_layer=2, n_embd=128, block_size=64),
    "lstm-small": dict(arch="lstm", n_layer=2, n_embd=200, block_size=35),
    "lstm-medium": dict(arch="lstm", n_layer=2, n_embd=650, block_size=35, dropout=0.5),
    "gru-tiny": dict(arch="gru", n_layer=2, n_embd=128, block_size=64),
    "rnn-tiny": dict(arch="rnn_tanh", n_layer=2, n_embd=128, block_size=64),
}


def preset_fields(name: str, where: str = "--preset") -> dict:
    """The ModelConfig fields of a preset; an unknown name lists the known ones.

    where: who gave it, as the error names it: the flag `--preset`, or a table
    (`run.toml [model]`, whose key `preset` is named) or a caller (`from_preset`)."""
    if not isinstance(name, str) or name not in PRESETS:
        what = f"--preset {name!r}" if where == "--preset" else f"{where}: preset {name!r}"
        raise ConfigError(f"{what} is unknown; known presets: {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def from_preset(name: str, **overrides) -> ModelConfig:
    """A ModelConfig from a preset with some fields overridden (for library callers)."""
    fields = preset_fields(name, "from_preset") | overrides | {"preset": name}
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ConfigError(f"unknown model field(s): {', '.join(unknown)}")
    return ModelConfig(**fields)


def build_model(cfg: ModelConfig, vocab_size: int = 0):
    """The torch module for `cfg`, freshly initialised (uses the global torch RNG)."""
    v = vocab_size or cfg.vocab_size
    if v <= 0:
        raise ConfigError("building a model needs a vocabulary size (vocab_size is 0)")
    if cfg.arch == "gpt":
        return GPT(cfg, v)
    return RNNModel(cfg, v)
