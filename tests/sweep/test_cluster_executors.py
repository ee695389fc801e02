"""The same tiny sweep (real trainer, deterministic) through the local executor, a
local Ray instance and submitit's local executor: the same runs table, the same losses."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from scalinglab.sweep import driver
from scalinglab.sweep.executors import ExecutorConfig, make_executor
from scalinglab.sweep.spec import load_spec
from scalinglab.sweep.submitit_exec import SubmititExecutor
from scalinglab.sweep.table import runs_table
from tests.conftest import write_raw_shards
from tests.sweep.conftest import pattern_tokens, write_spec

GRID = """kind = "grid"
shapes = [{n_layer = 1, n_embd = 8, n_head = 2}]
tokens = [640, 1280]
"""
KEY = ("run_id", "status", "params", "tokens", "flops", "loss", "bpb", "budget")


@pytest.fixture(scope="module")
def local_table(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("local")
    shards = write_raw_shards(
        tmp / "shards", pattern_tokens(20000), pattern_tokens(4000, 1), vocab_size=32
    )
    spec = load_spec(write_spec(tmp, shards, GRID))
    ex = make_executor(ExecutorConfig(workers=2, threads=1), tmp / "out")
    driver.run_sweep(spec, tmp / "out", ex, threads=1)
    rows = [[r[k] for k in KEY] for r in runs_table(tmp / "out")]
    assert [r[1] for r in rows] == ["completed", "completed"]
    assert all(isinstance(r[5], float) and 0 < r[5] < 4 for r in rows)  # ln 32 ≈ 3.47
    return spec, rows


def _table(out):
    return [[r[k] for k in KEY] for r in runs_table(out)]


def test_ray_executor_same_table(local_table, tmp_path):
    ray = pytest.importorskip("ray", reason="needs the [ray] extra: pip install 'scalinglab[ray]'")
    spec, expected = local_table
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ex = make_executor(ExecutorConfig("ray", workers=2, threads=1), tmp_path / "out")
        outcomes = driver.run_sweep(spec, tmp_path / "out", ex, threads=1)
        assert ray.is_initialized()  # it used ours and left it running
    finally:
        ray.shutdown()
    assert sorted(o["status"] for o in outcomes) == ["completed", "completed"]
    assert _table(tmp_path / "out") == expected


def test_submitit_local_executor_same_table(local_table, tmp_path):
    pytest.importorskip(
        "submitit", reason="needs the [slurm] extra: pip install 'scalinglab[slurm]'"
    )
    spec, expected = local_table
    cfg = ExecutorConfig("submitit", workers=2, threads=1, cluster="local")
    ex = make_executor(cfg, tmp_path / "out")
    outcomes = driver.run_sweep(spec, tmp_path / "out", ex, threads=1)
    assert sorted(o["status"] for o in outcomes) == ["completed", "completed"]
    assert list((tmp_path / "out" / "submitit").iterdir())  # submitit's job folders
    assert _table(tmp_path / "out") == expected


def _trainer_pid(run_dir) -> int | None:
    """The pid of the `scalinglab train` process writing into run_dir, if any."""
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"train" in cmd and str(run_dir).encode() in cmd:
            return int(proc.name)
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the trainer process through /proc")
def test_submitit_requeues_on_time_limit_signal_and_resumes(tmp_path, shards):
    pytest.importorskip(
        "submitit", reason="needs the [slurm] extra: pip install 'scalinglab[slurm]'"
    )
    design = GRID.replace("tokens = [640, 1280]", "tokens = [25600]")
    spec = load_spec(write_spec(tmp_path, shards, design, train="ckpt_every = 10"))
    driver.run_sweep(spec, tmp_path / "ref", make_executor(ExecutorConfig(), tmp_path), 1)
    (run,) = (tmp_path / "ref" / "runs").iterdir()

    ex = SubmititExecutor(tmp_path / "sub" / "submitit", 1, 1, cluster="local")
    sub_run = tmp_path / "sub" / "runs" / run.name
    t = threading.Thread(target=driver.run_sweep, args=(spec, tmp_path / "sub", ex, 1))
    t.start()
    deadline = time.monotonic() + 120
    while not list(sub_run.glob("ckpt/step-*")):  # training, past its first checkpoint
        assert time.monotonic() < deadline and t.is_alive()
        time.sleep(0.01)
    pid = _trainer_pid(sub_run)
    task = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    # As SLURM near the time limit: USR2 to every process of the job step.
    os.kill(pid, signal.SIGUSR2)  # ignored by the trainer
    os.kill(task, signal.SIGUSR2)  # submitit: checkpoint, requeue, exit; trainer gets SIGTERM
    t.join(timeout=300)
    assert not t.is_alive()
    log = (sub_run / "train.log").read_text()
    assert log.count("\n=== ") == 2 and "resumed" in log  # requeued, resumed from a checkpoint
    assert json.loads((sub_run / "result.preempted-1.json").read_text())["status"] == "preempted"
    assert _table(tmp_path / "sub") == _table(tmp_path / "ref")  # the same loss, to the bit
    (job_log,) = (tmp_path / "sub" / "submitit").glob("*/*_log.out")
    assert "Requeued job" in job_log.read_text()  # through submitit's own handler


def _submitit_sweep_training(tmp_path, shards, tokens: int):
    """`scalinglab sweep` of one run of `tokens` under submitit's local cluster, started
    in a session of its own and returned once the run trains past a checkpoint:
    (the driver's process, OUT, the command's arguments)."""
    design = GRID.replace("tokens = [640, 1280]", f"tokens = [{tokens}]")
    spec = write_spec(tmp_path, shards, design, train="ckpt_every = 10")
    out = tmp_path / "out"
    argv = ["sweep", str(spec), "--out", str(out), "--executor", "submitit", "--cluster", "local",
            "--threads", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scalinglab", *argv], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("runs/*/ckpt/step-*")):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc, out, argv


def test_ctrl_c_under_submitit_local_stops_the_runs_in_one_line(tmp_path, shards):
    """Ctrl-C reaches the terminal's whole process group: each submitit controller printed
    a KeyboardInterrupt traceback to the sweep's stderr and killed its job a second later.
    Now, as under the local executor: the trainers save a checkpoint and end preempted,
    and the sweep says so in one line and exits 130."""
    pytest.importorskip(
        "submitit", reason="needs the [slurm] extra: pip install 'scalinglab[slurm]'"
    )
    proc, out, _ = _submitit_sweep_training(tmp_path, shards, tokens=256000)
    try:
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C
        _, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in err and proc.returncode == 130, err
    assert err == (
        "error: interrupted: the runs in flight were stopped, each with a checkpoint where it "
        "had trained (one still starting had none to save), "
        f"queued runs did not start; rerun the same command to resume the sweep in {out}\n"
    )
    (run,) = (out / "runs").iterdir()
    assert json.loads((run / "result.json").read_text())["status"] == "preempted"


def _processes_of(folder) -> list[str]:
    """The command lines of the live processes that name `folder` (trainers, submitit's
    controllers and jobs)."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if str(folder) in cmd:
                found.append(cmd)
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the sweep's processes in /proc")
def test_sigint_to_the_driver_alone_under_submitit_local_stops_its_jobs(tmp_path, shards):
    """`kill -INT DRIVER` (not a terminal's Ctrl-C, which signals the whole group) reached
    neither submitit's local jobs nor their trainers: the driver waited 70 s for jobs it
    had not stopped, claimed they were preempted and left them training. Now it sends them
    the SIGINT a Ctrl-C would have: one line, 130, nothing left running, and a rerun of
    the same command resumes the run and completes it."""
    pytest.importorskip(
        "submitit", reason="needs the [slurm] extra: pip install 'scalinglab[slurm]'"
    )
    from scalinglab import cli

    proc, out, argv = _submitit_sweep_training(tmp_path, shards, tokens=12800)
    try:
        os.kill(proc.pid, signal.SIGINT)  # the driver alone
        t0 = time.monotonic()
        proc.wait(timeout=60)
        took = time.monotonic() - t0
        left = _processes_of(out)
        err = proc.stderr.read()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Traceback" not in err and proc.returncode == 130, err
    assert err.endswith(f"rerun the same command to resume the sweep in {out}\n")
    assert err.count("\n") == 1 and took < 30, (took, err)
    assert not left  # no job, no trainer goes on training
    (run,) = (out / "runs").iterdir()
    assert json.loads((run / "result.json").read_text())["status"] == "preempted"
    assert cli.main(argv) == 0  # the same command, in this process (no CLI start-up)
    assert json.loads((run / "result.json").read_text())["status"] == "completed"
    assert "resumed" in (run / "train.log").read_text()


@pytest.mark.parametrize("reraised", [False, True], ids=["as-raised", "as-ray-reraises-it"])
def test_sigterm_to_the_driver_stops_the_sweep_as_ctrl_c_does(tmp_path, shards, monkeypatch,
                                                              capsys, reraised):  # fmt: skip
    """SIGTERM (a scheduler's, `timeout`'s) ended the driver at once, saying nothing, and
    orphaned submitit's local jobs; now it stops the runs as Ctrl-C does and exits 143.
    Ray's wait puts a plain KeyboardInterrupt in the place of the handler's exception: a
    Ray sweep said 'interrupted' (found by an audit of signals); it is still a SIGTERM."""
    from scalinglab import cli
    from scalinglab.sweep import executors

    def terminated(*args, **kwargs):
        # without a handler SIGTERM would end the test's own process
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this
        except KeyboardInterrupt:
            if reraised:
                raise KeyboardInterrupt from None
            raise
        raise AssertionError("SIGTERM did not stop the sweep")

    monkeypatch.setattr(executors, "make_executor", lambda cfg, out: None)
    monkeypatch.setattr(driver, "run_sweep", terminated)
    before = signal.getsignal(signal.SIGTERM)
    spec = write_spec(tmp_path, shards, GRID)
    out = tmp_path / "out"
    assert cli.main(["sweep", str(spec), "--out", str(out)]) == 143
    assert capsys.readouterr().err.splitlines()[-1] == (
        "error: terminated: the runs in flight were stopped, each with a checkpoint where it "
        "had trained (one still starting had none to save), "
        f"queued runs did not start; rerun the same command to resume the sweep in {out}"
    )
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is the sweep's alone


def test_the_ray_executor_keeps_the_drivers_signal_handlers(monkeypatch):
    """ray.init installs its own SIGTERM handler (sys.exit at once): under --executor ray a
    SIGTERM to the driver ended in Ray's crash dump and SIGABRT, not the sweep's orderly stop
    and exit 143 (found by an audit of signals, 6 of 6 times)."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed")
    from scalinglab.sweep.ray_exec import RayExecutor

    def ours(signum, frame):
        raise AssertionError("not called")

    def init(**kwargs):  # as ray.init does, without starting Ray
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 1})
    monkeypatch.setattr(ray, "remote", lambda **kw: lambda fn: fn)
    old = signal.signal(signal.SIGTERM, ours)
    try:
        RayExecutor(workers=1, threads=1)._open()
        assert signal.getsignal(signal.SIGTERM) is ours
    finally:
        signal.signal(signal.SIGTERM, old)


@pytest.mark.parametrize(
    ("cluster", "says"),
    [
        (
            "local",
            "the runs in flight were stopped, each with a checkpoint where it had trained "
            "(one still starting had none to save)",
        ),
        ("slurm", "the jobs already submitted to SLURM go on (scancel ends them)"),
    ],
)
def test_ctrl_c_says_what_became_of_the_runs_in_flight(tmp_path, shards, monkeypatch, capsys,
                                                       cluster, says):  # fmt: skip
    """The interrupted sweep's one line is true of its executor: on SLURM the submitted
    jobs are the scheduler's and go on; they did not save and end preempted."""
    from scalinglab import cli
    from scalinglab.sweep import executors

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors, "make_executor", lambda cfg, out: None)
    monkeypatch.setattr(executors, "slurm_here", lambda: True)  # --cluster slurm is checked
    monkeypatch.setattr(driver, "run_sweep", interrupted)
    spec = write_spec(tmp_path, shards, GRID)
    out = tmp_path / "out"
    argv = ["sweep", str(spec), "--out", str(out), "--executor", "submitit", "--cluster", cluster]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err.splitlines()[-1]
    assert err == (
        f"error: interrupted: {says}, queued runs did not start; "
        f"rerun the same command to resume the sweep in {out}"
    )


@pytest.fixture
def fake_slurm(monkeypatch):
    """submitit's SLURM executor believes srun/sbatch exist (nothing is submitted)."""
    pytest.importorskip("submitit")
    real = shutil.which
    monkeypatch.setattr(
        shutil,
        "which",
        lambda n, *a, **k: f"/usr/bin/{n}" if n in ("srun", "sbatch") else real(n, *a, **k),
    )


def test_submitit_slurm_job_asks_for_time_cpus_gpus_array_and_partition(tmp_path, fake_slurm):
    from scalinglab.sweep.submitit_exec import SubmititExecutor

    ex = SubmititExecutor(tmp_path / "s", workers=3, threads=2, gpus=1, cluster="slurm",
                          timeout_min=30, partition="gpu")._executor(tmp_path)  # fmt: skip
    p = ex._executor.parameters
    assert (p["time"], p["cpus_per_task"], p["gpus_per_node"]) == (30, 2, 1)
    assert (p["array_parallelism"], p["partition"]) == (3, "gpu")
    cpu = SubmititExecutor(tmp_path / "c", workers=2, threads=4, cluster="slurm",
                           partition="long")._executor(tmp_path)  # fmt: skip
    q = cpu._executor.parameters
    assert (q["time"], q["cpus_per_task"], q["partition"], q["array_parallelism"]) == (
        1440,
        4,
        "long",
        2,
    )
    assert "gpus_per_node" not in q


def test_submitit_local_job_has_its_time_limit_and_gpus(tmp_path):
    pytest.importorskip("submitit")
    from scalinglab.sweep.submitit_exec import SubmititExecutor

    ex = SubmititExecutor(tmp_path, workers=3, threads=2, gpus=1, cluster="local", timeout_min=30)
    assert ex._executor(tmp_path)._executor.parameters == {
        "timeout_min": 30, "cpus_per_task": 2, "gpus_per_node": 1}  # fmt: skip


def test_submitit_a_runs_own_threads_are_that_jobs_only_and_retries_reach_every_job(tmp_path):
    """The study submits a run needing 4 threads: that job asks for 4 CPUs, the next one
    for a worker's 2 again; an array job hands every task the sweep's retries."""
    pytest.importorskip("submitit")
    from scalinglab.sweep.submitit_exec import SubmititExecutor

    e = SubmititExecutor(tmp_path / "s", workers=2, threads=2, cluster="local")
    e.open(retries=3)
    seen, arrays = [], []
    e.ex.submit = lambda fn, d, retries, cmd: (
        seen.append((d, e.ex._executor.parameters["cpus_per_task"], retries)) or d
    )
    e.ex.map_array = lambda fn, dirs, retries, cmds: arrays.append((dirs, retries)) or list(dirs)
    e.submit(tmp_path / "big", threads=4)
    e.submit(tmp_path / "small")
    assert [(Path(d).name, c, r) for d, c, r in seen] == [("big", 4, 3), ("small", 2, 3)]
    e.submit_all([tmp_path / "a", tmp_path / "b"])
    assert arrays == [([str(tmp_path / "a"), str(tmp_path / "b")], [3, 3])]
    e._close()


def test_submitit_done_returns_as_soon_as_one_job_ends():
    pytest.importorskip("submitit")
    from scalinglab.sweep.submitit_exec import SubmititExecutor

    class Job:
        def __init__(self, done):
            self._done = done

        def done(self):
            return self._done

    finished, going = Job(True), Job(False)
    t0 = time.monotonic()
    got = SubmititExecutor._done(None, [going, finished], timeout=5.0)
    assert got == [finished] and time.monotonic() - t0 < 1.0


def test_descendants_reach_grandchildren():
    """A local job's trainer is its controller's grandchild: SIGINT must reach it too."""
    from scalinglab.sweep.submitit_exec import _descendants

    code = "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); print(p.pid, flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(child.stdout.readline())
        found = _descendants({os.getpid()})
        assert {child.pid, grandchild} <= found
    finally:
        os.kill(grandchild, 9)
        child.kill()
        child.wait()


def test_local_executor_keeps_at_most_workers_runs_going_and_returns_the_first_done(
    tmp_path, monkeypatch
):
    """LocalExecutor(2) runs 2 of 3 submitted runs at once (its pool has 2 threads), and
    wait returns a run's outcome as soon as it ends, not once all have."""
    import threading

    from scalinglab.sweep import local

    live, most, lock = [0], [0], threading.Lock()
    release = {n: threading.Event() for n in ("a", "b", "c")}

    def run_task(run_dir, retries, command):
        with lock:
            live[0] += 1
            most[0] = max(most[0], live[0])
        release[Path(run_dir).name].wait(10)
        with lock:
            live[0] -= 1
        return {"name": Path(run_dir).name, "status": "completed", "retries": retries}

    monkeypatch.setattr(local, "run_task", run_task)
    ex = local.LocalExecutor(2)
    with ex.open(retries=2):
        for n in "abc":
            ex.submit(tmp_path / n)
        time.sleep(0.3)
        assert most[0] == 2
        release["a"].set()
        t0 = time.monotonic()
        got = ex.wait(5.0)
        assert [o["name"] for o in got] == ["a"] and got[0]["retries"] == 2
        assert time.monotonic() - t0 < 2.0
        release["b"].set(), release["c"].set()
        while ex.running:
            ex.wait(1.0)
    assert most[0] == 2


def test_local_ctrl_c_starts_no_queued_run_and_waits_for_the_running_one(tmp_path, monkeypatch):
    """Leaving the executor by an exception (Ctrl-C): the run going is stopped and waited
    for (its trainer saves before the sweep reports); the queued run never starts."""
    import threading

    from scalinglab.sweep import local

    started, finished = [], []
    stopped = threading.Event()

    def run_task(run_dir, retries, command):
        started.append(Path(run_dir).name)
        stopped.wait(10)
        time.sleep(0.5)  # the trainer's checkpoint
        finished.append(Path(run_dir).name)
        return {"name": Path(run_dir).name, "status": "preempted"}

    monkeypatch.setattr(local, "run_task", run_task)
    monkeypatch.setattr(local, "stop_all", stopped.set)
    ex = local.LocalExecutor(1)
    with pytest.raises(KeyboardInterrupt), ex.open():
        ex.submit(tmp_path / "a")
        ex.submit(tmp_path / "b")
        time.sleep(0.2)
        raise KeyboardInterrupt
    assert finished == ["a"]  # waited for
    time.sleep(0.3)
    assert started == ["a"]  # b was cancelled, not started after the stop


def test_a_local_sweep_after_an_interrupted_one_starts_its_runs(tmp_path):
    """stop_all() (an earlier sweep's Ctrl-C in this process) must not keep a new local
    executor from starting trainers: its runs complete, none is `preempted`."""
    from scalinglab.sweep import driver, worker
    from scalinglab.sweep.local import LocalExecutor
    from scalinglab.sweep.spec import load_spec
    from tests.conftest import write_raw_shards
    from tests.sweep.conftest import FAKE_TRAINER, pattern_tokens, write_spec
    from tests.sweep.test_executors import GRID

    shards = write_raw_shards(tmp_path / "shards", pattern_tokens(20000),
                              pattern_tokens(4000, 1), vocab_size=32)  # fmt: skip
    worker.stop_all()
    try:
        spec = load_spec(write_spec(tmp_path, shards, GRID))
        outcomes = driver.run_sweep(spec, tmp_path / "out", LocalExecutor(2), 1,
                                    command=FAKE_TRAINER)  # fmt: skip
        assert sorted(o["status"] for o in outcomes) == ["completed"] * 4
    finally:
        worker.allow_starts()
