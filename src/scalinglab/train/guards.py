"""Guards around the training step: non-finite values and preemption signals."""

import signal
import sys
import threading

import torch


def finite(*values: torch.Tensor) -> torch.Tensor:
    """A 0-d bool tensor: every value is finite (stays on the device; no host sync)."""
    return torch.stack([v.detach().float().reshape(()) for v in values]).isfinite().all()


class StopOnSignal:
    """Turns SIGTERM, and SIGINT (Ctrl-C), into a flag the loop checks after each step
    (finish, checkpoint, exit). A second Ctrl-C stops at once (KeyboardInterrupt), losing
    the steps since the last checkpoint. A signal the process was started ignoring stays
    ignored: a sweep's trainer ignores the Ctrl-C its terminal sends the whole process
    group, and is stopped by its executor's SIGTERM.

    Outside the main thread signals cannot be caught; the flag then only
    changes through `request()`.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.signals = signals
        self.requested = False
        self.signum = None
        self._old = {}

    def request(self, signum=signal.SIGTERM, frame=None) -> None:
        if signum == signal.SIGINT:
            if self.signum == signal.SIGINT:  # the second Ctrl-C: now
                raise KeyboardInterrupt
            print("stopping after this step, with a checkpoint (Ctrl-C again to stop now, "
                  "losing the steps since the last one)", file=sys.stderr, flush=True)  # fmt: skip
        self.requested = True
        self.signum = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                if signal.getsignal(s) is signal.SIG_IGN:
                    continue
                self._old[s] = signal.signal(s, self.request)
        return self

    def __exit__(self, *exc):
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old = {}
        return False
