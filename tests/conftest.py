import json
import os
from collections import Counter
from pathlib import Path

# Before numpy and torch are imported: a thread each, for these processes and the ones
# the tests start (`scalinglab train` in the README block, a sweep's runs), as
# pytest-xdist already runs a test per core; two threads per process beside the other
# workers' slowed such steps several-fold.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# and the runs that take two threads by design (a study's backtest trains alone on all
# the study's threads) wait for each other asleep, not spinning: beside the other
# worker's test a 2-thread step slowed up to 25x (docs/performance.md), the Ray study 8x
# (340 s against 41 s alone). The same numbers either way.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests run on a shared 2-core machine: keep torch to one thread, deterministically."""
    try:
        import torch
    except ImportError:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def shared_file(rel: str) -> Path:
    """A file from ../shared (public corpora and scaling data); skip, saying why, if absent."""
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"{path} is absent: the public data sets live in ../shared beside the checkout")
    return path


# The longest tests that start processes taking every core (studies, sweeps, torchrun): a
# file, or one test of a file. Under `--dist loadfile` they are one unit of work that
# starts first, so they run one after another on one worker while the other workers take
# the rest: two of them side by side took 4-6x their time alone, and the CI run went over
# its 25 minutes. Shorter such tests stay with the rest, to even the workers' shares.
HEAVY = (
    "tests/test_readme.py",
    "tests/test_study_executors.py",
    "tests/test_notebook.py",
    "tests/sweep/test_cluster_executors.py",
    "tests/train/test_distributed.py",
    "tests/test_study.py::test_toy_study_end_to_end",
    "tests/test_study.py::test_toy_ladder_study_end_to_end",
    "tests/test_study_tasks.py::test_a_study_predicts_the_backtest_runs_task_accuracy",
)


def is_heavy(nodeid: str) -> bool:
    return any(nodeid == h or nodeid.startswith((f"{h}::", f"{h}[")) for h in HEAVY)


def pytest_collection_modifyitems(items):
    """The HEAVY tests first, then the files with the most tests (the queue's order)."""
    files = [item.nodeid.split("::")[0] for item in items]
    count = Counter(files)
    first = {f: i for i, f in reversed(list(enumerate(files)))}
    key = {id(item): (not is_heavy(item.nodeid), -count[f], first[f])
           for item, f in zip(items, files, strict=True)}  # fmt: skip
    items.sort(key=lambda item: key[id(item)])  # stable: a file's tests in their order


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` (pyproject.toml), with the HEAVY tests as one file, first."""
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # the order of pytest_collection_modifyitems

    class HeavyFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "heavy" if is_heavy(nodeid) else nodeid.split("::")[0]

    return HeavyFirst(config, log)


def write_raw_shards(path, train, val, vocab_size=256, bytes_per_token=1.0):
    """A minimal shards folder written by hand, for tests of the layers above the writer."""
    path = Path(path)
    path.mkdir(parents=True)
    dtype = "<u2" if vocab_size <= 1 << 16 else "<u4"
    np.asarray(train).astype(dtype).tofile(path / "train.bin")
    np.asarray(val).astype(dtype).tofile(path / "val.bin")
    from scalinglab.data.tokenizers import ByteTokenizer

    ByteTokenizer().save(path / "tokenizer.json")  # a real one: load_tokenizer(path) works
    manifest = {
        "format_version": 1,
        "kind": "scalinglab.shards",
        "sources": ["test"],
        "tokenizer": "byte",
        "vocab_size": vocab_size,
        "dtype": "uint16" if dtype == "<u2" else "uint32",
        "splits": {
            split: {
                "documents": 1,
                "bytes": round(len(arr) * bytes_per_token),
                "tokens": len(arr),
            }
            for split, arr in (("train", train), ("val", val))
        },
    }
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path
