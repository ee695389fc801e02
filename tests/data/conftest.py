"""Fixtures of the data tests."""

import pytest


@pytest.fixture
def datasets_offline(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets", reason="`datasets` (extra [hf]) is not installed")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    datasets.disable_progress_bars()
    return datasets
