"""examples/fit_published_data.ipynb runs top to bottom (nbclient, a real kernel), on the
public data in ../shared: it refits Chinchilla and fits and plans from a sweep of its own."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
NOTEBOOK = ROOT / "examples" / "fit_published_data.ipynb"


@pytest.mark.slow
@pytest.mark.skipif(
    not SHARED.is_dir(), reason="../shared (the public data) is not beside the repo"
)
def test_the_notebook_runs_and_its_numbers_hold(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the [dev] extra (nbformat) is not installed")
    nbclient = pytest.importorskip("nbclient", reason="the [dev] extra (nbclient) is not installed")
    pytest.importorskip("ipykernel", reason="the [dev] extra (ipykernel) is not installed")
    monkeypatch.setenv("SCALINGLAB_DATA", str(SHARED))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # its work folder (mkdtemp) goes with tmp_path
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                                   os.environ.get("PYTHONPATH")])))  # fmt: skip
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()  # raises CellExecutionError on any failing cell (its asserts included)
    text = "\n".join(
        str(o.get("text") or o.get("data", {}).get("text/plain", ""))
        for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )  # fmt: skip
    assert "ScalingLaw('chinchilla', 240 points" in text  # Besiroglu et al.'s 240 points
    assert "'alpha': 0.347" in text and "'beta': 0.367" in text
    assert re.search(r"ScalingLaw\('isoflop', 9 points", text)  # its own sweep's runs
    pngs = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(pngs) == 2  # the two plots, drawn
