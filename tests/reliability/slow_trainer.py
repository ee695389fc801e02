"""The sweep tests' stand-in trainer (tests/sweep/fake_trainer.py), made slow enough to
be caught mid-run, and, when $RELIABILITY_DIE_MARKER names a file that does not exist
yet, killed by SIGKILL while it writes its result.json: after the temporary file is
written and fsynced, before the rename (the real fsio.atomic_write_json path). The
first trainer to get there creates the marker (holding its run folder), so exactly one
dies this way."""

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.sweep import fake_trainer

DELAY = 0.3  # seconds of "training" before the result is written


def _write_result(path, obj):
    time.sleep(DELAY)
    marker = os.environ.get("RELIABILITY_DIE_MARKER")
    real_replace = os.replace

    def replace(src, dst, *a, **kw):
        if marker and Path(dst).name == "result.json":
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, str(Path(dst).parent).encode())  # which run dies
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *a, **kw)

    os.replace = replace
    try:
        real_write(path, obj)
    finally:
        os.replace = real_replace


real_write = fake_trainer.atomic_write_json
fake_trainer.atomic_write_json = _write_result

if __name__ == "__main__":
    sys.exit(fake_trainer.main())
