"""Export of trained runs: Hugging Face `transformers` folders (GPT) and ONNX (GPT and RNNs).

Needs the optional extra: `pip install 'scalinglab[export]'`.
"""

import errno
import os

from scalinglab.errors import ExportError
from scalinglab.fsio import (
    make_temp_dir,
    path_relation,
    remove_stale_temps,
    remove_unnamed_temps,
    temp_tag,
)


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


def temp_beside(out, given) -> "os.PathLike":
    """A temporary folder beside `out` (its parent made first) for the export to be written
    into and then moved into place. A parent that cannot be made or written in is refused
    naming --out as given: the OSError named the hidden temporary path, which the user
    never typed, with exit code 1."""
    from pathlib import Path

    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # A killed export's temporary folder (its pid gone) is removed here, not left for good.
        remove_stale_temps(out.parent, f".{out.name}.tmp-")
        remove_unnamed_temps(out.parent, f".{out.name}.tmp-")  # an older version's
        return make_temp_dir(out.parent, f".{out.name}.tmp-{temp_tag()}.")
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):  # mkdir found a file in the way
            why = "a file is in the way of that folder"
        raise ExportError(f"--out {given}: cannot write in {out.parent}: {why}") from None
