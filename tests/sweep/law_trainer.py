"""A stand-in external trainer with a known answer: it trains nothing, and its loss is
L = 1 + 1000/N + 1e4/D, whose IsoFLOP optimum (C = 6ND) lies at D/N = 10.
Usage: law_trainer.py N D OUT (what a trainer_cmd fills in)."""

import json
import sys
from pathlib import Path

N, D, out = float(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
loss = 1 + 1000 / N + 1e4 / D
(out / "metrics.jsonl").write_text(json.dumps({"step": 1, "tokens": D, "val_loss": loss}) + "\n")
result = {"status": "completed", "val_loss": loss, "params": N, "tokens": D, "flops": 6 * N * D}
(out / "result.json").write_text(json.dumps(result))
