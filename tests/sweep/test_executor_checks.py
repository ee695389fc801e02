"""What an executor's settings can be checked for before any run folder is written (found
by an audit of sweeps on Ray and submitit: --cluster slurm without SLURM was submitit's
traceback after the folders were made, --gpus-per-run 0.5 asked SLURM for 0 GPUs, an
address nothing answers at kept Ray retrying for minutes, 'not an address' was Ray's
traceback, and `--ray-address auto` with no cluster said only 'error: ConnectionError')."""

import importlib.util
import os
import socket
import stat
import sys
from pathlib import Path

import pytest

from scalinglab.cli import describe_os_error, main
from scalinglab.errors import ConfigError
from scalinglab.sweep.executors import ExecutorConfig, make_executor
from scalinglab.sweep.ray_exec import check_address

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def no_slurm(monkeypatch, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    return empty


def _no_data_spec(tmp_path, design: str) -> Path:
    """A sweep spec of `design` (its [design] table's lines) whose data folder is empty."""
    spec = tmp_path / "s.toml"
    spec.write_text(f'format_version = 1\ndata = "d"\n[design]\n{design}')
    (tmp_path / "d").mkdir()
    return spec


def test_an_isoflop_sweep_checks_its_executor_before_its_plan_and_plans_once(
    no_slurm, tmp_path, capsys, monkeypatch
):
    """An IsoFLOP spec was planned twice before it ran (once for the thin-budget
    warning); once now, after the executor's checks: --cluster slurm without SLURM is
    still refused before a data folder without shards."""
    from scalinglab.sweep import driver

    spec = _no_data_spec(tmp_path, 'kind = "isoflop"\nbudgets = [1e9]\nsizes = 3\n')
    argv = ["sweep", str(spec), "--out", str(tmp_path / "out"), "--executor", "submitit"]
    assert main([*argv, "--cluster", "slurm"]) == 2
    assert "no SLURM here" in capsys.readouterr().err
    plans = []
    monkeypatch.setattr(driver, "make_plan", lambda s: plans.append(s) or ([], []))
    monkeypatch.setattr(driver, "run_sweep", lambda *a, **k: [])
    monkeypatch.setattr("scalinglab.cli.sweep._warn_moved", lambda ctx: None)
    main(argv)
    assert len(plans) == 1


def test_submitit_takes_whole_gpus_only():
    with pytest.raises(ConfigError, match=r"gpus.per.run 0.5: submitit asks for whole GPUs"):
        ExecutorConfig("submitit", gpus_per_run=0.5)
    assert ExecutorConfig("submitit", gpus_per_run=2.0).gpus_per_run == 2
    assert ExecutorConfig("ray", gpus_per_run=0.5).gpus_per_run == 0.5  # Ray shares GPUs
    with pytest.raises(ConfigError, match=r"gpus.per.run must be a number, got '1'"):
        ExecutorConfig("ray", gpus_per_run="1")


def test_ray_is_given_a_share_of_a_gpu_as_asked(tmp_path, monkeypatch):
    """--gpus-per-run 0.5 reaches Ray's task as 0.5 (two runs per GPU), not int(0.5) = 0."""
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from scalinglab.sweep.executors import make_executor

    monkeypatch.setattr(ExecutorConfig, "check_here", lambda self: None)  # no GPU here
    assert make_executor(ExecutorConfig("ray", gpus_per_run=0.5), tmp_path).gpus == 0.5


def test_cluster_slurm_without_slurm_is_refused_before_anything_is_written(
    no_slurm, tmp_path, capsys
):
    with pytest.raises(ConfigError, match=r"cluster slurm: no SLURM here \(no 'srun' on PATH\)"):
        make_executor(ExecutorConfig("submitit", cluster="slurm"), tmp_path / "out")
    grid = 'kind = "grid"\nshapes = [{n_layer = 1, n_embd = 8, n_head = 2}]\ntokens = [640]\n'
    spec = _no_data_spec(tmp_path, grid)
    argv = ["sweep", str(spec), "--out", str(tmp_path / "out"), "--executor", "submitit"]
    assert main([*argv, "--cluster", "slurm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no SLURM here" in err
    assert not (tmp_path / "out").exists()
    # a study: refused before its data is prepared or its folder made
    study = ["study", str(EXAMPLES / "tiny_study.toml"), "--out", str(tmp_path / "study"),
             "--cache", str(tmp_path / "cache"), "--executor", "submitit", "--cluster", "slurm"]  # fmt: skip
    assert main(study) == 2
    assert "no SLURM here" in capsys.readouterr().err
    assert not (tmp_path / "study").exists() and not (tmp_path / "cache").exists()
    # auto finds no SLURM: the jobs run here, and the terminal is told so
    cfg = ExecutorConfig("submitit", slurm_partition="gpu")
    assert cfg.submitit_cluster == "local" and cfg.cores_here == os.cpu_count()
    assert cfg.notes() == ["--cluster auto: no SLURM here (no 'srun' on PATH): the jobs run "
                           "as local processes; --slurm-partition is not used"]  # fmt: skip
    # where srun is found, auto is SLURM and nothing is said
    srun = no_slurm / "srun"
    srun.write_text("#!/bin/sh\n")
    srun.chmod(srun.stat().st_mode | stat.S_IXUSR)
    cfg = ExecutorConfig("submitit")
    assert cfg.submitit_cluster == "slurm" and cfg.notes() == [] and cfg.cores_here is None


def test_a_ray_address_is_checked_before_ray_is_asked():
    with pytest.raises(ConfigError, match=r"ray.address 'not an address': expected HOST:PORT"):
        check_address("not an address")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConfigError, match=rf"127.0.0.1:{port}: nothing answers there \("):
        check_address(f"127.0.0.1:{port}")
    with socket.create_server(("127.0.0.1", 0)) as server:  # one that answers
        check_address(f"127.0.0.1:{server.getsockname()[1]}")
        check_address(f"ray://127.0.0.1:{server.getsockname()[1]}")
    check_address("auto")  # Ray's own: it answers at once


def test_an_os_error_without_errno_keeps_its_message():
    msg = "Could not find any running Ray instance. Please specify the one to connect to."
    assert describe_os_error(ConnectionError(msg + "\nmore")) == msg
    assert describe_os_error(ConnectionError()) == "ConnectionError"


def test_the_line_view_counts_each_stage_against_its_own_total(tmp_path, capsys):
    """A WSD sweep printed [5/4] and [6/4]: the count ran across its two stages while the
    total was each stage's."""
    from types import SimpleNamespace

    from scalinglab.cli.sweep import LineView

    view = LineView()
    trunks = SimpleNamespace(root=tmp_path, runs=["a", "b"])
    branches = SimpleNamespace(root=tmp_path, runs=["c", "d", "e"])
    for progress, name in [(trunks, "a"), (trunks, "b"), (branches, "c"), (branches, "d")]:
        view("finished", progress, {"name": name, "status": "failed"})
    counts = [line.split("]")[0] for line in capsys.readouterr().err.splitlines()]
    assert counts == ["[1/2", "[2/2", "[1/3", "[2/3"]


@pytest.mark.parametrize("gpus", ["nan", "inf"])
@pytest.mark.parametrize("executor", ["ray", "submitit"])
def test_a_gpu_count_that_is_no_number_is_refused_in_one_line(tmp_path, capsys, gpus, executor):
    """--gpus-per-run nan (or inf) ended a submitit sweep in int()'s traceback, and Ray took
    it as it was."""
    argv = ["sweep", str(_grid_spec(tmp_path)), "--out", str(tmp_path / "out")]
    assert main([*argv, "--executor", executor, "--gpus-per-run", gpus]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--gpus-per-run must be a finite number >= 0, got" in err
    assert not (tmp_path / "out").exists()


def _grid_spec(tmp_path, data="d") -> Path:
    spec = tmp_path / "s.toml"
    spec.write_text(f'format_version = 1\ndata = "{data}"\n[design]\nkind = "grid"\n'
                    'shapes = [{n_layer = 1, n_embd = 8, n_head = 2}]\ntokens = [640]\n')  # fmt: skip
    return spec


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--gpus-per-run", "1"], "--gpus-per-run is read by --executor ray or submitit only, "
                                  "not local"),
        (["--ray-address", "10.0.0.1:6379"], "--ray-address is read by --executor ray only, "
                                             "not local"),
        (["--executor", "submitit", "--ray-address", "auto"], "--ray-address is read by "
                                                              "--executor ray only, not submitit"),
        (["--executor", "ray", "--cluster", "slurm"], "--cluster is read by --executor "
                                                      "submitit only, not ray"),
        (["--executor", "ray", "--slurm-partition", "gpu"], "--slurm-partition is read by "
                                                            "--executor submitit only, not ray"),
        (["--timeout-min", "30"], "--timeout-min is read by --executor submitit only, not local"),
        (["--submitit-param", "slurm_qos=low"], "--submitit-param is read by --executor "
                                                "submitit only, not local"),
        (["--executor", "submitit", "--cluster", "local", "--slurm-partition", "gpu"],
         "--slurm-partition is SLURM's: --cluster local runs the jobs as local processes"),
        (["--executor", "submitit", "--cluster", "debug", "--submitit-param", "slurm_mem_gb=8"],
         "--submitit-param slurm_mem_gb is SLURM's: --cluster debug runs the jobs as local"),
    ],
)  # fmt: skip
def test_a_setting_the_executor_does_not_read_is_refused(tmp_path, capsys, flags, named):
    """--ray-address under the local executor, --slurm-partition or --timeout-min under
    Ray, --gpus-per-run under the local executor, a SLURM setting with --cluster local:
    each was taken and ignored without a word."""
    argv = ["sweep", str(_grid_spec(tmp_path)), "--out", str(tmp_path / "out"), "--dry-run"]
    assert main([*argv, *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err, err
    assert not (tmp_path / "out").exists()


def test_auto_without_slurm_names_every_slurm_setting_it_drops(no_slurm):
    cfg = ExecutorConfig("submitit", submitit_params={"slurm_qos": "low", "mem_gb": 4})
    assert cfg.notes() == ["--cluster auto: no SLURM here (no 'srun' on PATH): the jobs run "
                           "as local processes; --submitit-param slurm_qos is not used"]  # fmt: skip
    # what each reads is taken, and a default given again is no setting
    ExecutorConfig("submitit", cluster="local", gpus_per_run=1, timeout_min=5)
    ExecutorConfig("ray", ray_address="auto", gpus_per_run=0.5, cluster="auto")
    ExecutorConfig("local", workers=2, threads=1, retries=0, gpus_per_run=0)


@pytest.mark.parametrize("partition", ["a b", "gpu ", "a,,b", ","])
def test_a_partition_that_is_no_partition_name_is_refused(tmp_path, capsys, partition):
    """--slurm-partition 'a b' was handed to sbatch as it was, after the run folders were
    written."""
    argv = ["sweep", str(_grid_spec(tmp_path)), "--out", str(tmp_path / "out"), "--dry-run"]
    assert main([*argv, "--executor", "submitit", "--slurm-partition", partition]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: --slurm-partition {partition!r}: expected a SLURM partition's "
                   "name, or several joined by commas (gpu,cpu), with no spaces\n")  # fmt: skip
    assert ExecutorConfig("submitit", slurm_partition="gpu,cpu-long").slurm_partition


@pytest.mark.parametrize(
    "param, flag",
    [("timeout_min=0", "--timeout-min"), ("slurm_time=5", "--timeout-min"),
     ("cpus_per_task=4", "--threads"), ("gpus_per_node=1", "--gpus-per-run"),
     ("slurm_partition=gpu", "--slurm-partition"), ("slurm_array_parallelism=9", "--workers")],
)  # fmt: skip
def test_a_submitit_param_that_a_flag_sets_is_refused(tmp_path, capsys, param, flag):
    """--submitit-param timeout_min=0 went past --timeout-min's check and won over it: a
    local job was killed at once, and the sweep ended in submitit's UncompletedJobError
    traceback after its run folders were written."""
    argv = ["sweep", str(_grid_spec(tmp_path)), "--out", str(tmp_path / "out")]
    assert main([*argv, "--executor", "submitit", "--submitit-param", param]) == 2
    key = param.split("=")[0]
    assert capsys.readouterr().err == (
        f"error: --submitit-param {key}: set it with {flag}, which checks it\n"
    )
    assert not (tmp_path / "out").exists()


class _LostJob:
    """A finished submitit job that left no result (killed for memory, its node lost)."""

    job_id = "948"

    def done(self):
        return True

    def result(self):
        import submitit

        raise submitit.core.utils.UncompletedJobError(
            "Job 948 (task: 0) with path /x/948_0_result.pkl\nhas not produced any output "
            "(state: OUT_OF_MEMORY)\nError stream produced:\n----\nTraceback ..."
        )


def test_a_job_that_ends_without_a_result_fails_its_run_not_the_sweep(tmp_path):
    """A submitit job killed before it returned (its result.pkl never written) ended the
    whole sweep in submitit's UncompletedJobError traceback, the other runs in flight
    stopped. Now that run is failed, its result.json saying why, and the sweep goes on;
    a run whose trainer finished or saved a preemption keeps what its folder says."""
    pytest.importorskip(
        "submitit", reason="needs the [slurm] extra: pip install 'scalinglab[slurm]'"
    )
    from scalinglab.runfolder import read_result, write_result
    from scalinglab.sweep.submitit_exec import SubmititExecutor

    ex = SubmititExecutor(tmp_path / "submitit", cluster="local")
    lost, kept = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    lost.mkdir(parents=True)
    kept.mkdir()
    write_result(kept, {"status": "preempted"})
    jobs = [(_LostJob(), lost), (_LostJob(), kept)]
    ex._running = {id(h): (h, d) for h, d in jobs}  # as submit() keeps them
    outcomes = {o["name"]: o["status"] for o in ex.wait(0)}
    assert outcomes == {"a": "failed", "b": "preempted"} and not ex.running
    assert read_result(lost)["error"] == (
        "the submitit job ended without a result: Job 948 (task: 0) with path "
        "/x/948_0_result.pkl has not produced any output (state: OUT_OF_MEMORY)"
    )
    assert read_result(kept)["status"] == "preempted"


@pytest.mark.parametrize(
    "missing, flags, error",
    [("ray", ["--executor", "ray"],
      "the ray executor (--executor ray) needs the Python package 'ray'"),
     ("submitit", ["--executor", "submitit", "--cluster", "local"],
      "the submitit executor (--executor submitit) needs the Python package 'submitit'"),
     (None, ["--executor", "submitit", "--cluster", "slurm"], "--cluster slurm: no SLURM here")],
)  # fmt: skip
def test_a_dry_run_refuses_an_executor_this_machine_cannot_start(
    tmp_path, capsys, monkeypatch, no_slurm, missing, flags, error
):
    """`--dry-run --executor ray` without Ray installed (or --cluster slurm without SLURM)
    printed the plan as if the command would run; the run itself then failed."""
    if missing:
        monkeypatch.setitem(sys.modules, missing, None)  # as if its extra were not installed
    elif importlib.util.find_spec("submitit") is None:
        pytest.skip("needs the [slurm] extra: pip install 'scalinglab[slurm]'")
    argv = ["sweep", str(_grid_spec(tmp_path)), "--dry-run", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and error in err, err


@pytest.mark.parametrize("param", ["tasks_per_node=2", "nodes=2", "slurm_ntasks_per_node=4"])
def test_a_job_of_several_tasks_is_refused(tmp_path, capsys, param):
    """--submitit-param tasks_per_node=2 started the run's trainer twice into one folder,
    and the sweep ended in submitit's traceback ('You should use `results()` if your job
    has subtasks') after its run folders were written."""
    argv = ["sweep", str(_grid_spec(tmp_path)), "--out", str(tmp_path / "out")]
    assert main([*argv, "--executor", "submitit", "--submitit-param", param]) == 2
    assert capsys.readouterr().err == (
        f"error: --submitit-param {param}: a run is one task on one node (its trainer is "
        "started once)\n"
    )
    assert not (tmp_path / "out").exists()
    assert ExecutorConfig("submitit", submitit_params={"nodes": 1, "tasks_per_node": 1})


@pytest.mark.parametrize("param", ["mem_gb=abc", "local_bogus=1"])
def test_a_submitit_param_submitit_refuses_is_refused_before_the_sweep_folder(
    tmp_path, capsys, shards, param
):
    """submitit checks its parameters as they are set, which was when the runs started: the
    sweep folder, its plan and every run folder were written first."""
    pytest.importorskip(
        "submitit", reason="needs the [slurm] extra: pip install 'scalinglab[slurm]'"
    )
    argv = ["sweep", str(_grid_spec(tmp_path, shards)), "--out", str(tmp_path / "out")]
    flags = ["--executor", "submitit", "--cluster", "local", "--submitit-param", param]
    assert main([*argv, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --submitit-param: ") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("dry", [True, False])
def test_more_gpus_than_a_local_ray_has_are_refused_before_the_sweep_folder(
    tmp_path, capsys, monkeypatch, dry
):
    """--executor ray --gpus-per-run 1 on a machine whose Ray sees no GPU was refused when
    Ray started, after sweep.toml, plan.json and the run folders were written (and a
    --dry-run printed its plan); the GPUs are now counted as Ray counts them, first."""
    pytest.importorskip("ray")
    import scalinglab.sweep.executors as executors
    from scalinglab.sweep.ray_exec import gpus_here

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # Ray sees no GPU here
    assert gpus_here() == 0
    out = tmp_path / "out"
    argv = ["sweep", str(_grid_spec(tmp_path)), *(["--dry-run"] if dry else ["--out", str(out)])]
    assert main([*argv, "--executor", "ray", "--gpus-per-run", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: --gpus-per-run 0.5: this machine has 0 GPU(s) for Ray; "
                   "no run could start\n")  # fmt: skip
    assert not out.exists()
    monkeypatch.setattr(executors, "gpus_here", lambda: 2)
    ExecutorConfig("ray", gpus_per_run=2).check_here()
    ExecutorConfig("ray", ray_address="10.0.0.1:6379", gpus_per_run=8).check_here()  # not ours
    for address in ("", "local"):  # both start a Ray instance here
        with pytest.raises(ConfigError, match=r"gpus.per.run 3: this machine has 2 GPU"):
            ExecutorConfig("ray", ray_address=address, gpus_per_run=3).check_here()


def test_ray_sees_the_gpus_cuda_visible_devices_names(monkeypatch):
    pytest.importorskip("ray")
    from ray._private import accelerators

    from scalinglab.sweep.ray_exec import gpus_here

    manager = accelerators.get_accelerator_manager_for_resource("GPU")
    monkeypatch.setattr(manager, "get_current_node_num_accelerators", staticmethod(lambda: 4))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,3")
    assert gpus_here() == 2
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert gpus_here() == 4


@pytest.mark.parametrize(
    "address, error",
    [("", "--ray-address '': no address; give HOST:PORT, ray://HOST:PORT or auto, or leave "
          "the flag out to start a local Ray"),
     (" ", "--ray-address ' ': expected HOST:PORT"),
     ("ray://:10001", "--ray-address 'ray://:10001': expected HOST:PORT"),
     ("head", "--ray-address 'head': expected HOST:PORT")],
)  # fmt: skip
@pytest.mark.parametrize("dry", [True, False])
def test_an_empty_ray_address_is_refused_not_taken_for_a_local_ray(
    tmp_path, capsys, address, error, dry
):
    """--ray-address '' started a local Ray instance without a word, as if the flag were
    not given; a blank or hostless address passed a --dry-run."""
    out = tmp_path / "out"
    argv = ["sweep", str(_grid_spec(tmp_path)), *(["--dry-run"] if dry else ["--out", str(out)])]
    assert main([*argv, "--executor", "ray", "--ray-address", address]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {error}"), err
    assert not out.exists()
    for ok in ("auto", "local", "ray://head:10001", "10.0.0.1:6379", "localhost:6379"):
        assert ExecutorConfig("ray", ray_address=ok).ray_address == ok


@pytest.mark.parametrize("dry", [True, False])
def test_more_threads_than_this_machine_has_are_refused(tmp_path, capsys, monkeypatch, dry):
    """--threads 100000 with the local executor crashed a --dry-run (torch segfaulted
    setting that many threads) and failed each run; a run's threads beyond this machine's
    cores only slow it. Runs on SLURM or a Ray cluster go to other machines: not capped."""
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    out = tmp_path / "out"
    argv = ["sweep", str(_grid_spec(tmp_path)), *(["--dry-run"] if dry else ["--out", str(out)])]
    assert main([*argv, "--threads", "100000"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: --threads 100000: this machine has 4 cores, which its runs share; "
                   "a run's threads beyond them only slow it (give at most 4, or leave "
                   "--threads out to share the cores among the workers)\n")  # fmt: skip
    assert not out.exists()
    ExecutorConfig(threads=4).check_here()
    for cfg in (
        ExecutorConfig("ray", threads=5),
        ExecutorConfig("ray", ray_address="local", threads=5),
    ):
        with pytest.raises(ConfigError, match=r"threads 5: this machine has 4 cores"):
            cfg.check_here()
    ExecutorConfig("ray", ray_address="10.0.0.1:6379", threads=64).check_here()


def test_slurm_jobs_threads_are_not_capped_by_this_machine(no_slurm, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    with pytest.raises(ConfigError, match=r"threads 5: this machine has 4 cores"):
        ExecutorConfig("submitit", cluster="local", threads=5).check_here()
    srun = no_slurm / "srun"
    srun.write_text("#!/bin/sh\n")
    srun.chmod(srun.stat().st_mode | stat.S_IXUSR)
    cfg = ExecutorConfig("submitit", threads=64, workers=100)  # auto: SLURM, found
    cfg.check_here()
    assert cfg.notes() == []


def test_more_threads_at_once_than_cores_are_warned_of(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert ExecutorConfig(workers=2, threads=2).notes() == []
    assert ExecutorConfig(workers=4).notes() == []  # a thread each
    assert ExecutorConfig(workers=3, threads=2).notes() == [
        "--workers 3 at 2 thread(s) each can take 6 threads on this machine's 4 cores: runs "
        "at the same time slow each other"
    ]
    assert (
        ExecutorConfig(workers=10**9)
        .notes()[0]
        .startswith("--workers 1000000000 at 1 thread(s) each can take 1000000000 threads")
    )
    assert ExecutorConfig("ray", ray_address="10.0.0.1:6379", workers=64).notes() == []


def test_a_local_ray_is_started_here_whatever_ray_address_says(monkeypatch):
    # With RAY_ADDRESS set and no --ray-address, ray.init() joined that cluster and refused
    # the num_cpus it was given; the local instance is now asked for by name, and the
    # terminal says the variable is not followed.
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from scalinglab.sweep.ray_exec import RayExecutor, check_address_form

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert ExecutorConfig("ray", workers=1).notes() == [
        "RAY_ADDRESS is set (10.0.0.1:6379) but --ray-address is not: the runs go to a local "
        "Ray started here, not that cluster (give --ray-address 10.0.0.1:6379 to join it)"
    ]
    assert ExecutorConfig("ray", ray_address="10.0.0.1:6379", workers=1).notes() == []
    calls = []

    class FakeRay:  # what _open asks of Ray, recorded: no Ray is started
        exceptions = type("E", (), {"RayError": RuntimeError})

        def is_initialized(self):
            return False

        def init(self, **kw):
            calls.append(kw)

        def cluster_resources(self):
            return {}

        def remote(self, **kw):
            return lambda f: f

    ex = RayExecutor(workers=2, threads=1)
    ex.ray = FakeRay()
    ex._open()
    assert calls[0]["address"] == "local" and calls[0]["num_cpus"] == 2
    assert check_address_form("[::1]:6379") == ("::1", "6379")  # IPv6, as Ray writes it


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"workers": True}, "workers must be an integer >= 1, got True"),
     ({"workers": 0}, "workers must be an integer >= 1, got 0"),
     ({"threads": 1.5}, "threads must be an integer >= 0, got 1.5"),
     ({"timeout_min": False}, "timeout_min must be an integer >= 1, got False")],
)  # fmt: skip
def test_executor_counts_must_be_integers_and_say_so(kw, message):
    """workers=True was refused as 'must be >= 1, got True': True is >= 1; what is wrong
    is that it is no integer, which the message now says (from Python it names the
    argument; the command line's flags take only integers)."""
    with pytest.raises(ConfigError) as exc:
        ExecutorConfig(**kw)
    assert str(exc.value) == message
