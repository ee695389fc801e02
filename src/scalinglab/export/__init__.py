"""Export of trained runs: Hugging Face `transformers` folders (GPT) and ONNX (GPT and RNNs).

Needs the optional extra: `pip install 'scalinglab[export]'`.
"""

import os
from pathlib import Path

from scalinglab.errors import ExportError


def check_out_apart(run_dir: str | os.PathLike, out: str | os.PathLike, data=None) -> None:
    """Refuse an --out that is the run folder, lies inside it or holds it (resolved paths):
    replacing it (--force) would delete the run being exported. With `data` (the run's
    shards folder, whose tokenizer an export may read), the same for that folder."""
    dest = Path(out).resolve()
    for given, what, away in ((run_dir, "the run folder {} being exported", "the run"),
                              (data, "the run's shards folder {}", "the shards")):  # fmt: skip
        if given is None:
            continue
        keep = Path(given).resolve()
        if dest == keep:
            how = "is"
        elif dest.is_relative_to(keep):
            how = "lies inside"
        elif keep.is_relative_to(dest):
            how = "contains"
        else:
            continue
        raise ExportError(f"--out {out} {how} {what.format(given)}; choose an --out outside {away}")
