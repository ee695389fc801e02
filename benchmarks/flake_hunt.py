"""Run the suite's subprocess and multi-process tests N times; count each test's failures.

A test that fails one run in ten sinks one CI run in ten. This runs pytest on
the tests that start processes (torchrun/DDP, kill-and-resume, sweeps and
their executors, the CLI), `--rounds` times in a row, each round in a fresh
pytest process with a JUnit XML report, and prints one row per test: rounds
run, failures, and the first line of the first failure.

    python benchmarks/flake_hunt.py --rounds 30                    # the default set
    python benchmarks/flake_hunt.py --rounds 30 tests/train/test_distributed.py
    python benchmarks/flake_hunt.py --rounds 10 tests/sweep -k executor

Exit status: 0 when no test failed in any round, 1 otherwise.
"""

import argparse
import collections
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Every test module that starts processes (torchrun workers, trainer subprocesses,
# sweep executors, kill -9 of a running trainer): `grep -lE "subprocess|Popen|torchrun|
# multiprocessing|run_sweep|Executor|os.kill|SIG(KILL|TERM)" -r tests`.
DEFAULT = [
    "tests/train/test_distributed.py",
    "tests/train/test_resume.py",
    "tests/train/test_budgets_and_config.py",
    "tests/train/test_malloc.py",
    "tests/reliability/test_kill_resume.py",
    "tests/reliability/test_sweep_kills.py",
    "tests/reliability/test_checkpoint_faults.py",
    "tests/reliability/test_prepare_faults.py",
    "tests/reliability/test_long_runs.py",
    "tests/sweep/test_executors.py",
    "tests/sweep/test_cluster_executors.py",
    "tests/sweep/test_resume.py",
    "tests/sweep/test_wsd.py",
    "tests/test_cli.py",
]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def one_round(args: list[str], xml: Path) -> tuple[int, dict[str, str | None], list[str]]:
    """Run pytest once: (exit code, {test id: None if passed else its first failure line},
    the full text of each failure)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"]
    proc = subprocess.run(cmd + args, cwd=ROOT, capture_output=True, text=True)
    outcome: dict[str, str | None] = {}
    details: list[str] = []
    if not xml.exists():  # pytest itself died: count it against a pseudo-test
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        return proc.returncode, {"<pytest run>": tail[0]}, [proc.stdout + proc.stderr]
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if case.find("skipped") is not None:
            continue
        if bad is None:
            outcome[name] = None
            continue
        message = " ".join((bad.get("message") or "").split())  # one line, however it wraps
        outcome[name] = message[:160]
        details.append(f"=== {name}\n{bad.text or message}\n")
    return proc.returncode, outcome, details


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=30, help="times to run the tests (default 30)")
    ap.add_argument("--log", type=Path, help="append the full text of every failure to this file")
    ap.add_argument("pytest_args", nargs="*", help="tests and pytest options (default: the set)")
    a = ap.parse_args()
    args = a.pytest_args or DEFAULT
    runs: collections.Counter = collections.Counter()
    fails: collections.Counter = collections.Counter()
    first: dict[str, str] = {}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(a.rounds):
            rc, outcome, details = one_round(args, Path(tmp) / f"round{k}.xml")
            if a.log and details:
                with open(a.log, "a", encoding="utf-8") as f:
                    f.write(f"##### round {k + 1}\n" + "".join(details))
            for name, msg in outcome.items():
                runs[name] += 1
                if msg is not None:
                    fails[name] += 1
                    first.setdefault(name, msg)
            bad = sum(m is not None for m in outcome.values())
            print(f"round {k + 1}/{a.rounds}: {len(outcome)} tests, {bad} failed (exit {rc})",
                  flush=True)  # fmt: skip
    print(f"\n{datetime.date.today()}  {cpu_name()}, {os.cpu_count()} cores, "
          f"{a.rounds} rounds in {time.time() - t0:.0f} s: {' '.join(args)}")  # fmt: skip
    print("\n| test | runs | failed | first failure |\n|---|---|---|---|")
    for name in sorted(runs, key=lambda n: (-fails[n], n)):
        print(f"| {name} | {runs[name]} | {fails[name]} | {first.get(name, '')} |")
    total = sum(fails.values())
    print(f"\n{len(runs)} tests, {sum(runs.values())} test runs, {total} failures")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
