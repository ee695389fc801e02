"""The terminal progress bar (tqdm): step, tokens, loss, tokens/s, ETA.

The trainer only creates one when asked (the CLI asks when stderr is a
terminal), so logs of batch jobs stay free of bar redraws. While the bar is
shown, log records are printed above it instead of through it.
"""


class Progress:
    def __init__(self, enabled: bool, total: int | None, initial: int = 0, unit: str = "step"):
        self.bar = None
        self._redirect = None
        if enabled:
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self.bar = tqdm(total=total, initial=initial, unit=unit, dynamic_ncols=True)
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()

    def update(self, step: int, tokens: int, loss: float | None, tok_per_s: float) -> None:
        if self.bar is None:
            return
        post = {"tokens": f"{tokens:.3g}", "tok/s": f"{tok_per_s:.0f}"}
        if loss is not None:
            post["loss"] = f"{loss:.4f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(step - self.bar.n)  # redraws at most every tqdm.mininterval

    def close(self) -> None:
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None
