import json
import signal

import pytest
import torch

from scalinglab.cli import main
from scalinglab.train import checkpoint, train
from scalinglab.train.guards import StopOnSignal, finite
from scalinglab.train.loop import Trainer
from tests.train.helpers import cli_args, tiny_cfg, tiny_shards


def _poison_at(monkeypatch, step: int):
    """A non-finite loss (hence gradients) on the step after `step` completed steps."""
    orig = Trainer._forward

    def forward(self, x, y):
        loss = orig(self, x, y)
        return loss * float("nan") if self.c.step == step else loss

    monkeypatch.setattr(Trainer, "_forward", forward)


def test_finite():
    assert finite(torch.tensor(1.0), torch.tensor(2.0)).item()
    assert not finite(torch.tensor(1.0), torch.tensor(float("inf"))).item()
    assert not finite(torch.tensor(float("nan"))).item()


def test_nan_stops_the_run_before_the_optimizer_step(tmp_path, monkeypatch):
    data = tiny_shards(tmp_path / "shards")
    cfg = tiny_cfg(data, steps=10, ckpt_every=1, keep_ckpts=10)
    seen = {}
    orig_after = Trainer._after_step

    def after_step(self, bar):
        orig_after(self, bar)
        seen["params"] = {k: v.clone() for k, v in self.model.state_dict().items()}
        seen["opt_steps"] = [s["step"].item() for s in self.opt.state.values()]
        seen["trainer"] = self

    monkeypatch.setattr(Trainer, "_after_step", after_step)
    _poison_at(monkeypatch, 3)
    result = train(cfg, tmp_path / "run")
    assert result["status"] == "diverged"
    assert result["steps"] == 3 and result["val_loss"] is None
    assert result["train_loss"] == pytest.approx(result["train_loss"])  # finite, recorded
    trainer = seen["trainer"]
    # Parameters and optimizer state are those of the last good step: no update happened.
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, seen["params"][k]), k
    assert [s["step"].item() for s in trainer.opt.state.values()] == seen["opt_steps"]
    # No checkpoint of the poisoned step; the last one holds finite weights.
    assert checkpoint.latest(tmp_path / "run/ckpt").name == "step-00000003"
    assert json.loads((tmp_path / "run/result.json").read_text())["status"] == "diverged"


def test_divergence_exit_code_is_3(tmp_path, monkeypatch, capsys):
    data = tiny_shards(tmp_path / "shards")
    _poison_at(monkeypatch, 2)
    rc = main(cli_args(data, tmp_path / "run", "--steps", "10"))
    assert rc == 3
    assert capsys.readouterr().out.startswith("diverged:")


# Known answers for mutations of train/guards.py that every test passed (a mutation audit):
# each fails on its mutation.
def test_a_ctrl_c_after_a_sigterm_is_the_first_ctrl_c():
    """Kills GD2 (`self.signum == SIGINT` -> `self.requested`: a Ctrl-C after a SIGTERM
    stopped at once, losing the steps since the last checkpoint). Known answer: SIGTERM,
    then Ctrl-C only sets the flag; a second Ctrl-C raises KeyboardInterrupt."""
    stop = StopOnSignal()
    stop.request(signal.SIGTERM)
    try:
        stop.request(signal.SIGINT)
    except KeyboardInterrupt:
        pytest.fail("a first Ctrl-C after a SIGTERM stopped at once")
    assert stop.requested and stop.signum == signal.SIGINT
    with pytest.raises(KeyboardInterrupt):
        stop.request(signal.SIGINT)


def test_the_handlers_before_are_restored_on_exit():
    """Kills GD4 (the `signal.signal(s, old)` restore in __exit__ dropped: after training,
    Ctrl-C in a notebook or the calling program would only set a dead flag). Known answer:
    getsignal(SIGTERM / SIGINT) after the block is what it was before."""
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with StopOnSignal() as stop:
        assert signal.getsignal(signal.SIGTERM) == stop.request
    assert {s: signal.getsignal(s) for s in before} == before
