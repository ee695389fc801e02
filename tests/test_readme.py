"""README.md's "one command at a time" block runs top to bottom as written, in a fresh
folder, with `data fetch` served by a loopback mirror of the public data (../shared)."""

import functools
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def readme_block(title: str) -> str:
    """The first ```bash block after the README heading `title`, as written."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    after = text[text.index(f"## {title}") :]
    return re.search(r"```bash\n(.*?)```", after, flags=re.S).group(1)


@pytest.mark.slow
@pytest.mark.skipif(
    not SHARED.is_dir(), reason="../shared (the public data) is not beside the repo"
)
def test_the_readme_block_runs_top_to_bottom(tmp_path):
    block = readme_block("What it does, one command at a time")
    assert "scalinglab data fetch" in block and "../shared" not in block
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SHARED))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = os.environ | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "SCALINGLAB_DATA_MIRROR": f"http://127.0.0.1:{httpd.server_address[1]}",
    }
    # its own session, so that a timeout ends the block's commands too, not only bash
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=1200)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert proc.returncode == 0, stdout[-2000:] + stderr[-3000:]
    data = tmp_path / "data" / "corpora" / "tinyshakespeare.txt"
    assert data.read_bytes() == (SHARED / "corpora" / "tinyshakespeare.txt").read_bytes()
    result = json.loads((tmp_path / "runs" / "gpt" / "result.json").read_text())
    assert result["status"] == "completed" and result["steps"] == 1000
    assert result["val_loss"] < 2.0  # bytes of Shakespeare, learned (ln 256 = 5.5 untrained)
    fit = json.loads((tmp_path / "runs" / "tiny" / "fit.json").read_text())
    assert fit["kind"] == "scalinglab.fit" and fit["law"] == "isoflop"
    assert (tmp_path / "runs" / "tiny" / "report.html").stat().st_size > 10_000
    assert (tmp_path / "exported" / "gpt" / "config.json").exists()
