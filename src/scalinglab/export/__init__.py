"""Export of trained runs: Hugging Face `transformers` folders (GPT) and ONNX (GPT and RNNs).

Needs the optional extra: `pip install 'scalinglab[export]'`.
"""

import os
from pathlib import Path

from scalinglab.errors import ExportError


def check_out_apart(run_dir: str | os.PathLike, out: str | os.PathLike) -> None:
    """Refuse an --out that is the run folder, lies inside it or holds it (resolved paths):
    replacing it (--force) would delete the run being exported."""
    run, dest = Path(run_dir).resolve(), Path(out).resolve()
    if dest == run:
        how = "is"
    elif dest.is_relative_to(run):
        how = "lies inside"
    elif run.is_relative_to(dest):
        how = "contains"
    else:
        return
    raise ExportError(
        f"--out {out} {how} the run folder {run_dir} being exported; "
        "choose an --out outside the run"
    )
