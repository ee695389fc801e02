"""Data: corpus sources → tokenizer → token shards → batch loader.

`prepare` (scalinglab.data.writer) builds a shards folder; `load_tokenizer`
(scalinglab.data.tokenizers) reads its tokenizer; `open_shards`
(scalinglab.data.shards) opens it. They are imported lazily, so importing a
submodule stays cheap.
"""

_EXPORTS = {
    "prepare": "scalinglab.data.writer",
    "PrepareConfig": "scalinglab.data.writer",
    "load_tokenizer": "scalinglab.data.tokenizers",
    "train_tokenizer": "scalinglab.data.tokenizers",
    "open_shards": "scalinglab.data.shards",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
