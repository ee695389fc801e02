"""Guards around the training step: non-finite values and preemption signals."""

import signal
import threading

import torch


def finite(*values: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor: every value is finite (stays on the device; no host sync)."""
    return torch.stack([v.detach().float().reshape(()) for v in values]).isfinite().all()


class StopOnSignal:
    """Turns SIGTERM into a flag the loop checks after each step (finish, checkpoint, exit).

    Outside the main thread signals cannot be caught; the flag then only
    changes through `request()`.
    """

    def __init__(self, signals=(signal.SIGTERM,)):
        self.signals = signals
        self.requested = False
        self.signum = None
        self._old = {}

    def request(self, signum=signal.SIGTERM, frame=None) -> None:
        self.requested = True
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._old[s] = signal.signal(s, self.request)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
        return False
