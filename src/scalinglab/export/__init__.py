"""Export of trained runs: Hugging Face `transformers` folders (GPT) and ONNX (GPT and RNNs).

Needs the optional extra: `pip install 'scalinglab[export]'`.
"""

import os

from scalinglab.errors import ExportError
from scalinglab.fsio import path_relation


def check_out_apart(run_dir: str | os.PathLike, out: str | os.PathLike, data=None) -> None:
    """Refuse an --out that is the run folder, lies inside it or holds it (resolved paths):
    replacing it (--force) would delete the run being exported. With `data` (the run's
    shards folder, whose tokenizer an export may read), the same for that folder where it
    is found from here: a run keeps its data as typed, and a relative path recorded in
    another folder names nothing here to delete (it refused `--out .` there)."""
    if data is not None and not os.path.exists(data):
        data = None
    for given, what, away in ((run_dir, "the run folder {} being exported", "the run"),
                              (data, "the run's shards folder {}", "the shards")):  # fmt: skip
        how = path_relation(out, given) if given is not None else None
        if how:
            raise ExportError(
                f"--out {out} {how} {what.format(given)}; choose an --out outside {away}"
            )
