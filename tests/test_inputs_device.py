"""`--device` naming no device, or one this machine lacks, is one line naming the flag and
the devices available, before any run folder is written (`banana` and `mps` on Linux ended
in torch's traceback; `meta` failed mid-run and left a failed run folder)."""

import pytest
import torch

from scalinglab.cli import main
from scalinglab.errors import ConfigError
from scalinglab.train.setup import available_devices, pick_device
from tests.reliability.helpers import one_line_error
from tests.train.helpers import cli_args, tiny_shards


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("device")
    shards = tiny_shards(tmp / "shards")
    assert main(cli_args(shards, tmp / "run", "--steps", "2", "--device", "cpu")) == 0
    return shards, tmp / "run"


def _here() -> str:
    return f"(available here: {', '.join(available_devices())})"


def _unknown(name: str) -> str:
    return (
        f"error: --device {name!r} is not a device: give auto, cpu, cuda, cuda:N or mps {_here()}\n"
    )


@pytest.mark.parametrize("name", ["banana", "meta", "CPU", ""])
def test_unknown_device_is_one_line_everywhere(run, tmp_path, capsys, name):
    shards, trained = run
    out = tmp_path / "run"
    argv = cli_args(shards, out, "--steps", "2", "--device", name)
    assert one_line_error(capsys, argv) == _unknown(name)
    assert not out.exists()  # `meta` left a failed run folder
    assert one_line_error(capsys, ["eval", str(trained), "--device", name]) == _unknown(name)
    argv = ["generate", str(trained), "--prompt", "a", "--device", name]
    assert one_line_error(capsys, argv) == _unknown(name)


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
def test_mps_where_there_is_none_is_one_line(run, tmp_path, capsys):
    shards, trained = run
    want = f"error: --device mps: MPS is not available on this machine {_here()}\n"
    assert one_line_error(capsys, cli_args(shards, tmp_path / "run", "--steps", "2",
                                           "--device", "mps")) == want  # fmt: skip
    assert one_line_error(capsys, ["eval", str(trained), "--device", "mps"]) == want
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_where_there_is_none_names_what_there_is(capsys, run, tmp_path):
    shards, _ = run
    want = f"error: --device cuda:0: CUDA is not available on this machine {_here()}\n"
    argv = cli_args(shards, tmp_path / "run", "--steps", "2", "--device", "cuda:0")
    assert one_line_error(capsys, argv) == want


def test_a_cuda_index_beyond_the_machines_gpus_is_refused(monkeypatch):
    """On a machine with 2 GPUs (torch's answers stand in for them: CI has none)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == "cuda:1" and pick_device("auto") == "cuda"
    with pytest.raises(ConfigError) as e:
        pick_device("cuda:2")
    assert str(e.value) == (
        "device cuda:2: no such CUDA device (available here: cpu, cuda, cuda:0, cuda:1"
        + (", mps)" if torch.backends.mps.is_available() else ")")
    )  # the Python spelling of the flag


def test_good_devices_pass():
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") in ("cpu", "cuda")
    assert set(available_devices()) >= {"cpu"}
