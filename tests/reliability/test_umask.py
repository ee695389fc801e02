"""Written files follow the umask (issue 16, item 13). model.safetensors used to be 0600
whatever the umask (a team sharing a folder could not read checkpoints or exports), and
the report 0644. Umask 027 tells both apart from following it: files 0640, folders 0750."""

import os
import stat
import subprocess
import sys

from tests.reliability.helpers import ROOT
from tests.train.helpers import TEXT

TINY = ["--n-layer", "1", "--n-embd", "32", "--n-head", "2", "--block-size", "16",
        "--batch-size", "8", "--eval-tokens", "400", "--threads", "1"]  # fmt: skip


def _run(argv, mask: int) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    p = subprocess.run(
        [sys.executable, "-m", "scalinglab", *map(str, argv)], capture_output=True, text=True,
        env=env, timeout=300, preexec_fn=lambda: os.umask(mask),
    )  # fmt: skip
    assert p.returncode == 0, p.stderr


def test_every_written_file_follows_the_umask(tmp_path):
    mask = 0o027
    (tmp_path / "corpus.txt").write_bytes(TEXT)
    out = tmp_path / "out"
    _run(["prepare", tmp_path / "corpus.txt", "--out", out / "shards", "--block-size", "16"], mask)
    _run(["train", "--data", out / "shards", "--out", out / "run", "--steps", "4", *TINY], mask)
    _run(["report", out, "--bootstrap", "0"], mask)  # the folder holding the run folder
    try:
        import transformers  # noqa: F401
    except ImportError:  # the [hf] extra: the rest is checked all the same
        pass
    else:
        _run(["export", out / "run", "--format", "hf", "--out", out / "hf"], mask)
        assert (out / "hf/model.safetensors").exists()
    weights = next((out / "run/ckpt").glob("step-*/model.safetensors"))
    modes = {
        str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]
    }
    want = {p: (0o777 if (out / p).is_dir() else 0o666) & ~mask for p in modes}
    assert modes[str(weights.relative_to(out))] == 0o666 & ~mask
    assert modes == want
