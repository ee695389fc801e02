"""Step time of a multi-threaded CPU run beside another busy process, by OpenMP wait policy.

torch's CPU builds run their intra-op threads on GNU OpenMP, whose threads spin while
they wait for each other. When every core has one of them and another process takes a
core, a parallel region waits for a thread the kernel has descheduled, and the spinning
ones take the time it needs: a step can take 20-30x longer, not 2x. This measures it for
the quickstart's backtest model (GPT 2 x 80, 10 heads, block 128, batch 8, float32,
fused AdamW) on `--threads` threads (default: every core), with the machine idle, with
one busy process beside it (a Python loop), and beside another run of the same model on
as many threads (under the same policy), for each policy: libgomp's default (unset),
OMP_WAIT_POLICY=PASSIVE (sleep at once), and a short spin (GOMP_SPINCOUNT).

Each figure is the median step time (ms) of `--steps` steps after 10 warm-up steps, in
a fresh process per (policy, condition, round), rounds interleaved, the median over
rounds. The loss after the last step is printed too: the policy decides how threads
wait, not how the work is split, so it must be the same to the last bit.

    python benchmarks/omp_wait.py [--threads 2] [--steps 60] [--rounds 3]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

POLICIES = {
    "default (spin)": {},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "GOMP_SPINCOUNT=10000": {"GOMP_SPINCOUNT": "10000"},
}
WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def child(threads: int, steps: int) -> None:
    import torch

    from scalinglab.config import ModelConfig
    from scalinglab.models.registry import build_model

    torch.manual_seed(0)
    torch.set_num_threads(threads)
    m = ModelConfig(arch="gpt", n_layer=2, n_embd=80, n_head=10, block_size=128, vocab_size=256)
    model = build_model(m, m.vocab_size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x = torch.randint(0, m.vocab_size, (8, m.block_size))
    times = []
    for i in range(10 + steps):
        t0 = time.perf_counter()
        loss = model(x, x)[1]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 10:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"ms": 1000 * statistics.median(times), "loss": loss.item()}))


def spin(seconds: float) -> subprocess.Popen:
    code = f"import time\nt = time.time()\nwhile time.time() - t < {seconds}: pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def another_run(threads: int, env: dict) -> subprocess.Popen:
    """Another training run of the same model on the same threads, its policy the same."""
    cmd = [sys.executable, __file__, "--child", "--threads", str(threads), "--steps", "100000"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)


def measure(env_extra: dict, threads: int, steps: int, beside: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in WAIT_VARS} | env_extra
    hog = {"nothing": None, "a busy core": lambda: spin(600),
           "another run": lambda: another_run(threads, env)}[beside]  # fmt: skip
    hog = hog() if hog else None
    if beside == "another run":
        time.sleep(3)  # past its start-up
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--threads", str(threads), "--steps",
             str(steps)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.threads, a.steps)
    cells = [(n, b) for b in ("nothing", "a busy core", "another run") for n in POLICIES]
    got = {c: [] for c in cells}
    for _ in range(a.rounds):
        for name, beside in cells:
            got[(name, beside)].append(measure(POLICIES[name], a.threads, a.steps, beside))
    base = statistics.median(r["ms"] for r in got[("default (spin)", "nothing")])
    print(f"CPU cores {os.cpu_count()}, {a.threads} threads, {a.steps} steps, {a.rounds} rounds")
    print(f"{'policy':26s} {'beside':12s} {'ms/step':>8s} {'x idle default':>15s}  loss")
    for name, beside in cells:
        ms = statistics.median(r["ms"] for r in got[(name, beside)])
        losses = sorted({r["loss"] for r in got[(name, beside)]})
        print(f"{name:26s} {beside:12s} {ms:8.1f} {ms / base:15.2f}  "
              f"{' '.join(repr(v) for v in losses)}")  # fmt: skip


if __name__ == "__main__":
    main()
