"""`scalinglab sweep SPEC --out OUT --workers 2 --threads 1 --retries 1`, with the
stand-in trainer of slow_trainer.py (the CLI has no flag for the trainer command)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scalinglab.sweep import driver
from scalinglab.sweep.local import LocalExecutor
from scalinglab.sweep.spec import load_spec

TRAINER = [sys.executable, str(Path(__file__).with_name("slow_trainer.py"))]

if __name__ == "__main__":
    spec, out = load_spec(sys.argv[1]), sys.argv[2]
    driver.run_sweep(spec, out, LocalExecutor(2), threads=1, retries=1, command=TRAINER)
