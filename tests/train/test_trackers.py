"""--logger tensorboard|wandb|mlflow|csv: what a run sends to each tracker, read back with the
tracker's own reader (MlflowClient; W&B's own record format; csv), offline, no server.

The W&B test reads the offline run file `run-ID.wandb` that `wandb.init` writes under
WANDB_MODE=offline: W&B's transaction log, a LevelDB-style log of length-prefixed
blocks (a 7-byte header `:W&B` + magic + version, then records of 32 KiB blocks, each
chunk headed by crc32c, length and type), whose payloads are `wandb_internal_pb2.Record`
protobufs (wandb.proto). wandb 0.31 ships no Python reader of it (`wandb sync` uploads it,
which needs a server), so `_wandb_records` splits the log and W&B's own protobuf classes
parse each record; the test checks the run's group, name and config, every history row
(step, loss, tokens, FLOPs) against metrics.jsonl, and the final summary against
result.json.
"""

import csv
import importlib.util
import json
import logging
import os
import struct
import sys
import tomllib

import pytest

from scalinglab.cli import main
from scalinglab.train import train
from tests.reliability.helpers import one_line_error
from tests.sweep.conftest import write_spec
from tests.train.helpers import cli_args, tiny_cfg, tiny_shards

GRID = """kind = "grid"
shapes = [{n_layer = 1, n_embd = 8, n_head = 2}, {n_layer = 1, n_embd = 16, n_head = 4}]
tokens = [3200]
"""


def _rows(run) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _result(run) -> dict:
    return json.loads((run / "result.json").read_text())


def _csv_as_metrics(run) -> list[dict]:
    """RUN/metrics.csv's rows, checked against metrics.jsonl's: the same steps and numbers."""
    with open(run / "metrics.csv", newline="") as f:
        got = list(csv.DictReader(f))
    rows = _rows(run)
    assert [int(r["step"]) for r in got] == [r["step"] for r in rows] == [5, 10, 15, 20, 20]
    for g, r in zip(got, rows, strict=True):
        assert float(g["tokens"]) == r["tokens"] and float(g["flops"]) == r["flops"]
        assert (g["loss/val"] != "") == ("val_loss" in r and not r.get("final"))
        if "train_loss" in r:
            assert float(g["loss/train"]) == pytest.approx(r["train_loss"], rel=1e-12)
    return got


def test_csv_logger_holds_the_metrics_rows_and_a_resume_drops_the_later_ones(tmp_path):
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    cfg = tiny_cfg(data, steps=20, log_every=5, eval_every=10, ckpt_every=10, loggers=["csv"])
    train(cfg, run)
    got = _csv_as_metrics(run)
    assert float(got[-1]["loss/val_final"]) == pytest.approx(_result(run)["val_loss"])
    # resumed from step 10 (the step-20 checkpoint lost): the CSV, like metrics.jsonl,
    # holds each step once
    (run / "ckpt" / "step-00000020" / "manifest.json").unlink()
    (run / "result.json").unlink()
    train(cfg, run)
    with open(run / "metrics.csv", newline="") as f:
        again = list(csv.DictReader(f))
    assert [int(r["step"]) for r in again] == [5, 10, 15, 20, 20]


def test_a_tracker_that_fails_mid_run_and_cannot_close_does_not_stop_the_run(
    tmp_path, monkeypatch, caplog
):
    """A tracker whose server goes away fails to log and then to close as well (W&B's
    finish, a disk gone): dropping it raised the close's error and the run crashed at
    its next metrics row, where docs/trackers.md promises it goes on."""
    from scalinglab.train.trackers import CsvTracker

    def gone(*args):
        raise OSError("the server went away")

    monkeypatch.setattr(CsvTracker, "log", gone)
    monkeypatch.setattr(CsvTracker, "close", gone)
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    result = train(tiny_cfg(data, steps=10, log_every=5, loggers=["csv"]), run)
    assert result["status"] == "completed"
    assert [r["step"] for r in _rows(run)] == [5, 10, 10]
    assert "--logger csv failed and is dropped for this run" in caplog.text


def test_a_tracker_that_cannot_start_is_named_even_when_closing_another_fails(
    tmp_path, monkeypatch
):
    """W&B refusing to start (a bad WANDB_PROJECT) closes the trackers already started;
    one whose close raised replaced the one-line ConfigError with its own error (a
    traceback from the command line)."""
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    from scalinglab.errors import ConfigError
    from scalinglab.train.trackers import CsvTracker, open_trackers

    def fails(self):
        raise RuntimeError("cannot close")

    monkeypatch.setattr(CsvTracker, "close", fails)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_PROJECT", "a/b")
    with pytest.raises(ConfigError, match="wandb: cannot start a W&B run"):
        open_trackers(["csv", "wandb"], tmp_path, {}, 0, run_name="r", group=None)


def test_a_damaged_metrics_csv_is_kept_with_a_warning_when_the_run_resumes(tmp_path, caplog):
    """A garbage line appended to metrics.csv crashed the resumed run with int()'s
    ValueError traceback; now it is kept as it is, named, as metrics.jsonl's are."""
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    cfg = tiny_cfg(data, steps=20, log_every=5, eval_every=10, ckpt_every=10, loggers=["csv"])
    train(cfg, run)
    with open(run / "metrics.csv", "a") as f:
        f.write("garbage,,\n20,torn")  # a damaged line, and a torn last one
    (run / "ckpt" / "step-00000020" / "manifest.json").unlink()
    (run / "result.json").unlink()
    with caplog.at_level("WARNING"):
        train(cfg, run)
    assert _result(run)["status"] == "completed"
    lines = (run / "metrics.csv").read_text().splitlines()
    assert [x.split(",")[0] for x in lines] == [
        "step", "5", "10", "garbage", "15", "20", "20",
    ]  # fmt: skip
    assert lines[3] == "garbage,,"
    want = f"{run / 'metrics.csv'}: line(s) 7 are not metrics rows: kept as they are"
    assert any(want in r.getMessage() for r in caplog.records)


def test_a_wandb_run_id_is_kept_for_a_resume_and_new_for_a_fresh_start(tmp_path, monkeypatch):
    """The W&B id was a hash of the folder's path: a run started afresh in a folder made
    again (rm -rf, train) attached to the old W&B run (resume="allow"), whose later steps
    made W&B drop the new run's. The id is now random, kept in RUN/trackers.json for a
    resume; a folder of an older scalinglab (no id kept) resumes its path-hash run."""
    wandb = pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    import hashlib
    import shutil
    from types import SimpleNamespace

    from scalinglab.train.trackers import WandbTracker

    run, calls = tmp_path / "run", []
    # W&B's own init, offline, takes seconds a run: what it is given is the point here
    fake = SimpleNamespace(define_metric=lambda name: None)
    monkeypatch.setattr(wandb, "init", lambda **kw: calls.append(kw) or fake)

    def started(resume_step):
        run.mkdir(exist_ok=True)
        WandbTracker(run, "run", None).start({"a": 1}, resume_step)
        assert calls[-1]["resume"] == "allow" and calls[-1]["name"] == "run"
        return calls[-1]["id"]

    first = started(0)
    assert json.loads((run / "trackers.json").read_text()) == {"wandb_run_id": first}
    assert started(10) == first  # resumed from a checkpoint: the same W&B run
    fresh = started(0)  # restarted from step 0: a new one
    assert fresh != first and len(fresh) == 16
    shutil.rmtree(run)
    assert started(0) not in (first, fresh)  # the folder made again
    (run / "trackers.json").write_text('{"mlflow_run_id": "m"}')  # an older folder
    (run / "config.toml").write_text('[train]\nloggers = ["wandb"]\n')  # that had W&B
    old = hashlib.sha256(str(run.resolve()).encode()).hexdigest()[:16]
    assert started(10) == old
    assert json.loads((run / "trackers.json").read_text())["wandb_run_id"] == old


def test_wandb_added_at_a_resume_is_a_new_wandb_run_of_each_run(tmp_path, monkeypatch):
    """--logger wandb added when resuming a run started without it took the hash of the
    folder's path as the W&B id (meant for an older scalinglab's folder, which logged to
    W&B under it): two runs made one after the other at one path attached to one W&B run.
    Now each gets a random id, kept in trackers.json for its next resume."""
    wandb = pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    import hashlib
    import shutil
    from types import SimpleNamespace

    calls = []
    fake = SimpleNamespace(define_metric=lambda name: None, log=lambda *a, **k: None,
                           summary={}, finish=lambda: None)  # fmt: skip
    monkeypatch.setattr(wandb, "init", lambda **kw: calls.append(kw) or fake)
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    path_hash = hashlib.sha256(str(run.resolve()).encode()).hexdigest()[:16]
    ids = []
    for _ in range(2):  # the run, then another made at its path
        shutil.rmtree(run, ignore_errors=True)
        train(tiny_cfg(data, steps=4, ckpt_every=2, loggers=["csv"]), run)
        train(tiny_cfg(data, steps=6, ckpt_every=2, loggers=["csv", "wandb"]), run)
        assert calls[-1]["resume"] == "allow" and _result(run)["steps"] == 6
        ids.append(calls[-1]["id"])
        assert json.loads((run / "trackers.json").read_text()) == {"wandb_run_id": ids[-1]}
        train(tiny_cfg(data, steps=8, ckpt_every=2, loggers=["wandb"]), run)
        assert calls[-1]["id"] == ids[-1]  # resumed again: the same W&B run
    assert path_hash not in ids and ids[0] != ids[1]


def _listing(folder) -> dict:
    """Every file and folder under `folder`, with each file's bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in folder.rglob("*")}  # fmt: skip


def test_a_tracker_that_cannot_start_leaves_the_out_folder_as_it_found_it(
    tmp_path, capsys, monkeypatch
):
    """W&B refusing to start (a bad WANDB_PROJECT) stopped a fresh run with one line but
    left config.toml and tokenizer.json (and the other trackers' metrics.csv and events)
    in the new --out. The trackers now start before the folder is written, and what the
    start wrote goes: a new --out (and its new parents) is gone, a user's folder keeps
    its files alone, and a resume changes nothing of the run."""
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    data = tiny_shards(tmp_path / "shards")
    loggers = ["--logger", "csv", "--logger", "tensorboard", "--logger", "wandb"]
    new = tmp_path / "runs" / "sub" / "run"
    # the run trained, to resume below: under a good project
    run = tmp_path / "run"
    assert main(cli_args(data, run, "--steps", "4", "--ckpt-every", "2", "--logger", "csv")) == 0
    (run / "result.json").unlink()  # killed after its last checkpoint
    (run / "metrics.csv").write_text("step\r\n2\r\n4\r\n6\r\n")  # a row past it
    was = _listing(run)
    monkeypatch.setenv("WANDB_PROJECT", "a/b")
    err = one_line_error(capsys, cli_args(data, new, "--steps", "4", *loggers))
    assert "error: --logger wandb: cannot start a W&B run: Invalid project name" in err
    assert not (tmp_path / "runs").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    one_line_error(capsys, cli_args(data, mine, "--steps", "4", *loggers))
    assert sorted(p.name for p in mine.iterdir()) == [".lock", "notes.txt"]
    assert (mine / "notes.txt").read_text() == "mine"
    err = one_line_error(capsys, cli_args(data, run, "--steps", "6", *loggers))
    assert "cannot start a W&B run" in err
    assert _listing(run) == was  # no rows cut, no config rewritten, no tracker's file
    if importlib.util.find_spec("mlflow"):  # an MLflow store that refuses the run itself
        client = _mlflow_store(tmp_path, monkeypatch)
        client.delete_experiment(client.create_experiment("scalinglab"))
        err = one_line_error(capsys, cli_args(data, new, "--steps", "4", "--logger", "csv",
                                              "--logger", "mlflow"))  # fmt: skip
        assert "Could not create run under non-active experiment" in err
        assert not (tmp_path / "runs").exists()


def test_logger_is_a_repeatable_flag_and_a_toml_key(tmp_path):
    from scalinglab.config import RunConfig
    from scalinglab.errors import ConfigError

    cfg = RunConfig.from_dict({"train": {"loggers": ["csv", "tensorboard", "csv"]}})
    assert cfg.train.loggers == ["csv", "tensorboard"]
    with pytest.raises(ConfigError, match="'comet' is not one of tensorboard, wandb, mlflow, csv"):
        RunConfig.from_dict({"train": {"loggers": ["comet"]}})
    pytest.importorskip("tensorboard", reason="the [tensorboard] extra is not installed")
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    args = cli_args(data, run, "--steps", "4", "--logger", "csv", "--logger", "tensorboard")
    assert main(args) == 0
    assert "loggers = [" in (run / "config.toml").read_text()
    assert (run / "metrics.csv").exists() and list(run.glob("events.out.tfevents.*"))


def test_a_tracker_that_cannot_start_is_one_line_before_training(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")
    err = one_line_error(capsys, cli_args(data, run, "--steps", "4", "--logger", "mlflow"))
    assert err.startswith(
        "error: --logger mlflow: cannot log to MLFLOW_TRACKING_URI='nosuchscheme://nowhere': "
    )
    assert not (run / "result.json").exists() and not (run / "metrics.jsonl").exists()
    assert not (run / "config.toml").exists()  # probed before the run folder is written
    # a sweep says so before any run folder is made
    spec = write_spec(tmp_path, data, GRID)
    out = tmp_path / "sweep"
    err = one_line_error(capsys, ["sweep", str(spec), "--out", str(out), "--logger", "mlflow"])
    assert "error: --logger mlflow: cannot log to MLFLOW_TRACKING_URI" in err
    assert not out.exists()
    # no tracker starts before MLflow's store is known good (a W&B run was left behind)
    if importlib.util.find_spec("wandb"):
        monkeypatch.setenv("WANDB_MODE", "offline")
        both = tmp_path / "both"
        args = cli_args(data, both, "--steps", "4", "--logger", "wandb", "--logger", "mlflow")
        assert "cannot log to MLFLOW_TRACKING_URI" in one_line_error(capsys, args)
        assert not (both / "wandb").exists()
    # a missing package names the extra that installs it
    monkeypatch.setitem(sys.modules, "wandb", None)
    err = one_line_error(capsys, cli_args(data, run, "--steps", "4", "--logger", "wandb"))
    assert "--logger wandb needs the Python package 'wandb'" in err
    assert "pip install 'scalinglab[wandb]'" in err


def test_an_mlflow_server_that_fails_is_asked_once(monkeypatch):
    """A server answering 503 (or down): MLflow's own 7 retries with backoff took 268 s to
    say so; the probe asks once (its settings restored after)."""
    import http.server
    import threading

    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    from scalinglab.errors import ConfigError
    from scalinglab.train.trackers import check_loggers

    asked = []

    class Down(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_error(503)

        do_POST = do_GET

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Down)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
        with pytest.raises(ConfigError, match=f"cannot log to MLFLOW_TRACKING_URI='{uri}'"):
            check_loggers(["mlflow"], probe=True)
        assert len(asked) == 1
        assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    finally:
        server.shutdown()


# --- W&B and MLflow, written by a 2-run sweep ----------------------------------


def _wandb_records(path):
    """The protobuf records of a W&B transaction log (see the module docstring)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, chunk, out = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header: padding
            pos += block - pos % block
            continue
        _crc, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero padding to the block's end
            pos += block - pos % block
            continue
        chunk += data[pos + 7 : pos + 7 + n]
        pos += 7 + n
        if kind in (1, 4):  # FULL, or the LAST piece of a record split across blocks
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(chunk)
            out.append(rec)
            chunk = b""
    return out


def _wandb_run(path) -> dict:
    """{"group", "name", "config", "history": [{key: value}], "summary"} of one offline run."""
    run = {"config": {}, "history": [], "summary": {}}
    for rec in _wandb_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            run |= {"group": rec.run.run_group, "name": rec.run.display_name}
            for item in rec.run.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                run["config"][item.key] = json.loads(item.value_json)
        elif kind == "history":
            row = {"_step": rec.history.step.num}
            for item in rec.history.item:
                row["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
            run["history"].append(row)
        elif kind == "summary":
            for item in rec.summary.update:
                run["summary"]["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
    return run


@pytest.mark.slow
def test_a_sweep_logs_each_run_to_wandb_offline_and_a_local_mlflow_store(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    from mlflow.tracking import MlflowClient

    data = tiny_shards(tmp_path / "shards")
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wb").mkdir()
    spec = write_spec(tmp_path, data, GRID, train="log_every = 5\neval_every = 10")
    out = tmp_path / "sweep"
    argv = ["sweep", str(spec), "--out", str(out), "--workers", "2", "--threads", "1",
            "--logger", "wandb", "--logger", "mlflow"]  # fmt: skip
    assert main(argv) == 0
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 2

    client = MlflowClient(store.as_uri())
    exp = client.get_experiment_by_name("t")  # the sweep's name
    logged = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(logged) == [r.name for r in runs]
    wb_files = {
        p.name.removeprefix("run-").removesuffix(".wandb"): p
        for p in (tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb")
    }
    assert len(wb_files) == 2
    wb = {w["name"]: w for w in map(_wandb_run, wb_files.values())}
    assert sorted(wb) == [r.name for r in runs]
    for run in runs:
        rows, result = _rows(run), _result(run)
        cfg = tomllib_load(run / "config.toml")
        # MLflow: the config and N as parameters, every row, the result, one finished run
        m = logged[run.name]
        assert m.info.status == "FINISHED" and m.data.tags["scalinglab.sweep"] == "t"
        assert m.data.params["model.n_embd"] == str(cfg["model"]["n_embd"])
        assert m.data.params["N"] == str(result["params"])
        hist = client.get_metric_history(m.info.run_id, "loss/train")
        want = [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r]
        assert [(h.step, h.value) for h in hist] == want
        tokens = client.get_metric_history(m.info.run_id, "tokens")  # once per step
        per_step = sorted({r["step"]: r["tokens"] for r in rows}.items())
        assert [(h.step, h.value) for h in tokens] == per_step
        assert m.data.metrics["result/val_loss"] == result["val_loss"]
        assert m.data.metrics["loss/val_final"] == result["val_loss"]
        # W&B: grouped by the sweep, the config, every row, the result as the summary
        w = wb[run.name]
        assert w["group"] == "t"
        assert w["config"]["model.n_embd"] == cfg["model"]["n_embd"]
        assert w["config"]["D"] == result["tokens"] and w["config"]["N"] == result["params"]
        got = [(h["_step"], h["loss/train"]) for h in w["history"] if "loss/train" in h]
        assert got == want
        # W&B keeps one history row per step: the final evaluation's row joins its step's
        flops = [(h["_step"], h["flops"]) for h in w["history"] if "flops" in h]
        assert flops == sorted({r["step"]: r["flops"] for r in rows}.items())
        assert w["history"][-1]["loss/val_final"] == result["val_loss"]
        assert w["summary"]["val_loss"] == result["val_loss"]
        assert w["summary"]["status"] == "completed"


def tomllib_load(path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def test_a_study_passes_its_loggers_to_every_run_and_checks_them_first(
    tmp_path, capsys, monkeypatch
):
    from scalinglab.study.run import _spec
    from scalinglab.study.spec import parse_study
    from tests.test_study import TOY

    study = parse_study(tomllib.loads(TOY.format(corpus=tmp_path / "c.txt")), "toy")
    logged = study.with_loggers(["csv", "mlflow", "csv"])
    assert logged.raw["train"]["loggers"] == ["csv", "mlflow"]
    spec = _spec(logged, "gpt", tmp_path, {"kind": "isoflop", "budgets": [1e8, 3e8]}, "gpt")
    assert spec.train["loggers"] == ["csv", "mlflow"]  # in every run.toml of the study
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")
    toml = tmp_path / "toy.toml"
    toml.write_text(TOY.format(corpus=tmp_path / "c.txt"))
    out, cache = tmp_path / "study", tmp_path / "cache"
    args = ["study", str(toml), "--out", str(out), "--cache", str(cache), "--logger", "mlflow"]
    err = one_line_error(capsys, args)
    assert (
        "error: --logger mlflow: cannot log to MLFLOW_TRACKING_URI='nosuchscheme://nowhere'" in err
    )
    assert not out.exists() and not cache.exists()  # before the data is prepared


def test_mlflow_experiment_made_by_another_run_meanwhile_is_used(tmp_path):
    """Two runs of a sweep start together: the second one's create fails because the first
    made the experiment after the second looked; it must use it, not fail the run (the
    sweep retried it, and W&B kept an empty first attempt)."""
    from types import SimpleNamespace

    from scalinglab.train.trackers import MlflowTracker

    class Store:  # a tracking store where another run makes "t" between look and create
        looks = 0
        tracking_uri = "http://another-machine"  # the lock holds this machine's runs only

        def get_experiment_by_name(self, name):
            self.looks += 1
            return None if self.looks == 1 else SimpleNamespace(experiment_id="7")

        def create_experiment(self, name):
            raise RuntimeError(f"Experiment '{name}' already exists.")

    t = MlflowTracker(tmp_path, "r", "t")
    t.client = Store()
    assert t._experiment("t") == "7"

    class Broken(Store):  # not the race: the store's own error stands
        def get_experiment_by_name(self, name):
            return None

    t.client = Broken()
    with pytest.raises(RuntimeError, match="already exists"):
        t._experiment("t")


def _start_mlflow_run_at_once(barrier, run_dir) -> None:
    """One of several processes that open an MLflow run of one sweep at the same moment."""
    from scalinglab.train.trackers import MlflowTracker

    barrier.wait()
    tracker = MlflowTracker(run_dir, run_dir.name, "race")
    tracker.start({"n": 1}, resume_step=0)


@pytest.mark.slow
def test_runs_starting_together_share_one_mlflow_experiment(tmp_path, monkeypatch):
    """MLflow's file store checks an experiment's name, then makes it under a random id:
    runs of a sweep starting together made several experiments of one name, and the
    sweep's experiment missed runs (1 of 2 in a CI run); and opening a fresh file store
    makes its Default experiment, a write that failed in the runs that came second (2 of 6
    in a CI run). 6 processes released at once must all start, in one experiment."""
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    import multiprocessing

    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    ctx = multiprocessing.get_context("fork")  # mlflow is imported once, here
    barrier = ctx.Barrier(6)
    procs = []
    for i in range(6):
        (tmp_path / f"r{i}").mkdir()
        procs.append(
            ctx.Process(target=_start_mlflow_run_at_once, args=(barrier, tmp_path / f"r{i}"))
        )
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * 6
    client = MlflowClient(store.as_uri())
    exps = [e for e in client.search_experiments() if e.name == "race"]
    assert len(exps) == 1
    runs = client.search_runs([exps[0].experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"r{i}" for i in range(6)]


def _mlflow_store(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    from mlflow.tracking import MlflowClient

    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(store.as_uri())


def test_an_mlflow_run_started_again_from_step_0_ends_the_earlier_one(tmp_path, monkeypatch):
    """A run killed before its first checkpoint and started again made a second MLflow run
    of the same name and left the first RUNNING forever."""
    from scalinglab.train.trackers import MlflowTracker

    client = _mlflow_store(tmp_path, monkeypatch)
    run = tmp_path / "r"
    run.mkdir()
    first = MlflowTracker(run, "r", "g")
    first.start({"D": 100}, resume_step=0)  # then SIGKILLed: never closed
    again = MlflowTracker(run, "r", "g")
    again.start({"D": 100}, resume_step=0)
    assert again.run_id != first.run_id
    assert json.loads((run / "trackers.json").read_text()) == {"mlflow_run_id": again.run_id}
    old = client.get_run(first.run_id)
    assert old.info.status == "KILLED"
    assert old.data.tags["scalinglab.restarted_as"] == again.run_id
    second = again.run_id
    again.finish({"status": "completed", "val_loss": 2.0, "steps": 10})
    again.close()
    assert client.get_run(second).info.status == "FINISHED"
    # a finished run trained again from scratch (its result and checkpoints deleted) stays
    # FINISHED: only a run left RUNNING is ended
    third = MlflowTracker(run, "r", "g")
    third.start({"D": 100}, resume_step=0)
    third.close()
    assert client.get_run(second).info.status == "FINISHED"


def test_an_mlflow_run_logs_each_metric_once_per_step(tmp_path, monkeypatch):
    """The final evaluation's row shares the last row's step: MLflow got its `tokens` and
    `flops` twice at step 20, two points of one metric at one step."""
    client = _mlflow_store(tmp_path, monkeypatch)
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    train(tiny_cfg(data, steps=20, log_every=5, eval_every=10, loggers=["mlflow"]), run)
    rows = _rows(run)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 20]  # metrics.jsonl keeps both rows
    (m,) = client.search_runs([client.get_experiment_by_name("scalinglab").experiment_id])
    for name, key in (("tokens", "tokens"), ("flops", "flops")):
        hist = client.get_metric_history(m.info.run_id, name)
        assert [(h.step, h.value) for h in hist] == [(r["step"], r[key]) for r in rows[:4]]
    for name in ("loss/train", "lr", "tokens_per_second"):
        assert [h.step for h in client.get_metric_history(m.info.run_id, name)] == [5, 10, 15, 20]
    assert [h.step for h in client.get_metric_history(m.info.run_id, "loss/val")] == [10, 20]
    final = client.get_metric_history(m.info.run_id, "loss/val_final")
    assert [(h.step, h.value) for h in final] == [(20, rows[-1]["val_loss"])]


def test_an_mlflow_run_resumed_at_another_store_starts_a_new_run_there(
    tmp_path, monkeypatch, caplog
):
    """A run folder resumed at another MLFLOW_TRACKING_URI (copied to another machine, a
    new server) was refused: "cannot log to MLFLOW_TRACKING_URI=...: Run '...' not
    found", though that store works."""
    from scalinglab.train.trackers import MlflowTracker

    _mlflow_store(tmp_path / "a", monkeypatch)
    run = tmp_path / "r"
    run.mkdir()
    t = MlflowTracker(run, "r", None)
    t.start({"D": 1000}, resume_step=0)
    first = t.run_id
    t.close()
    client = _mlflow_store(tmp_path / "b", monkeypatch)
    again = MlflowTracker(run, "r", None)
    with caplog.at_level("WARNING"):
        again.start({"D": 1000}, 10)
    second = again.run_id
    again.close()
    assert second != first
    assert json.loads((run / "trackers.json").read_text()) == {"mlflow_run_id": second}
    assert client.get_run(second).data.params == {"D": "1000"}
    assert f"its MLflow run {first} is not at MLFLOW_TRACKING_URI=" in caplog.text


def test_an_mlflow_run_resumed_under_another_budget_tags_the_new_values(
    tmp_path, monkeypatch, caplog
):
    """MLflow params cannot change: a run resumed under a larger budget kept D and C of
    its first start with no sign of the new ones."""
    from scalinglab.train.trackers import MlflowTracker

    client = _mlflow_store(tmp_path, monkeypatch)
    run = tmp_path / "r"
    run.mkdir()
    t = MlflowTracker(run, "r", "g")
    t.start({"D": 1000, "C": 6e6, "model.n_layer": 2}, resume_step=0)
    first = t.run_id
    t.close()
    again = MlflowTracker(run, "r", "g")
    with caplog.at_level("WARNING"):
        again.start({"D": 4000, "C": 2.4e7, "model.n_layer": 2, "train.time": 0}, 10)
    assert again.run_id == first
    again.close()
    got = client.get_run(first).data
    assert got.params == {"D": "1000", "C": "6000000.0", "model.n_layer": "2", "train.time": "0"}
    resumed = {k: v for k, v in got.tags.items() if k.startswith("scalinglab.resumed.")}
    assert resumed == {"scalinglab.resumed.D": "4000", "scalinglab.resumed.C": "24000000.0"}
    assert (
        f"--logger mlflow: {run} resumes with changed settings (D 1000 -> 4000, "
        "C 6000000.0 -> 24000000.0): MLflow keeps the first values as params; the new ones "
        "are the tags scalinglab.resumed.KEY"
    ) in caplog.text


def test_an_mlflow_run_resumed_with_another_logger_is_not_a_change_of_settings(
    tmp_path, monkeypatch, caplog
):
    """Adding a tracker on resume (`--logger mlflow --logger csv`) warned that the run
    "resumes with changed settings (train.loggers ['mlflow'] -> ['mlflow', 'csv'])" and
    tagged scalinglab.resumed.train.loggers, where docs/trackers.md says a logger is not
    part of the run and adding one continues the same run."""
    from scalinglab.train.trackers import MlflowTracker

    client = _mlflow_store(tmp_path, monkeypatch)
    run = tmp_path / "r"
    run.mkdir()
    t = MlflowTracker(run, "r", None)
    first = {"D": 1000, "train.loggers": ["mlflow"], "train.resume": "auto"}
    t.start(first | {"train.tensorboard": False}, resume_step=0)
    run_id = t.run_id
    t.close()
    again = MlflowTracker(run, "r", None)
    with caplog.at_level("WARNING"):
        again.start(
            {"D": 1000, "train.loggers": ["mlflow", "csv"], "train.resume": "must",
             "train.tensorboard": True}, 10,
        )  # fmt: skip
    assert again.run_id == run_id
    again.close()
    assert "changed settings" not in caplog.text
    tags = client.get_run(run_id).data.tags
    assert not [k for k in tags if k.startswith("scalinglab.resumed.")]


def test_mlflow_refusals_lead_with_the_way_out(tmp_path, monkeypatch, capsys):
    """MLflow's fix for a file: store (MLFLOW_ALLOW_FILE_STORE=true) ended a paragraph that
    the one line cut at 300 characters, and an unset URI was refused in words about a model
    registry: each now says first what to set."""
    pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
    data = tiny_shards(tmp_path / "shards")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.chdir(tmp_path)  # MLflow's default store is found from the current folder
    cases = {
        f"file://{tmp_path / 'mlruns'}": "this MLflow opens a file: store only with "
        "MLFLOW_ALLOW_FILE_STORE=true (set it, or use an http:// server); ",
        "": "set MLFLOW_TRACKING_URI (an http:// server, or file:./mlruns with "
        "MLFLOW_ALLOW_FILE_STORE=true): unset, MLflow's default store is one its client "
        "cannot write; ",
    }
    for uri, fix in cases.items():
        if uri:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        else:
            monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        run = tmp_path / f"run{len(uri)}"
        err = one_line_error(capsys, cli_args(data, run, "--steps", "4", "--logger", "mlflow"))
        shown = uri or "(unset)"
        assert err.startswith(
            f"error: --logger mlflow: cannot log to MLFLOW_TRACKING_URI={shown!r}: {fix}"
        ), err
        assert not run.exists()


def _break_last_checkpoint(run) -> None:
    """As if the process died after logging step 20 but before its checkpoint was valid."""
    (run / "ckpt" / "step-00000020" / "manifest.json").unlink()
    (run / "result.json").unlink()


def test_a_csv_logger_added_at_a_resume_has_the_rows_before_it(tmp_path):
    """`--logger csv` added when resuming held only the rows from the resume on (steps
    15 and 20 of 5, 10, 15, 20), though metrics.jsonl had the earlier ones."""
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    train(tiny_cfg(data, steps=20, log_every=5, eval_every=10, ckpt_every=10), run)
    _break_last_checkpoint(run)
    train(tiny_cfg(data, steps=20, log_every=5, eval_every=10, ckpt_every=10, loggers=["csv"]), run)
    got = _csv_as_metrics(run)
    # the replayed rows have no throughput (not a metrics.jsonl column); those trained now do
    assert [g["tokens_per_second"] != "" for g in got] == [False, False, True, True, False]


def test_an_mlflow_run_begun_at_a_resume_has_the_steps_before_it(tmp_path, monkeypatch):
    client = _mlflow_store(tmp_path, monkeypatch)
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    train(tiny_cfg(data, steps=20, log_every=5, eval_every=10, ckpt_every=10), run)
    _break_last_checkpoint(run)
    cfg = tiny_cfg(data, steps=20, log_every=5, eval_every=10, ckpt_every=10, loggers=["mlflow"])
    train(cfg, run)
    rows = _rows(run)
    (m,) = client.search_runs([client.get_experiment_by_name("scalinglab").experiment_id])
    for name, key in (("tokens", "tokens"), ("flops", "flops"), ("loss/train", "train_loss")):
        hist = client.get_metric_history(m.info.run_id, name)
        assert [(h.step, h.value) for h in hist] == [(r["step"], r[key]) for r in rows[:4]]
    assert [h.step for h in client.get_metric_history(m.info.run_id, "loss/val")] == [10, 20]
    # resumed again, its own MLflow run continued: the steps up to the checkpoint are not
    # sent again (those after it are, both attempts' kept, as MLflow keeps them)
    _break_last_checkpoint(run)
    train(cfg, run)
    assert len(client.search_runs([m.info.experiment_id])) == 1
    hist = client.get_metric_history(m.info.run_id, "tokens")
    assert [h.step for h in hist] == [5, 10, 15, 20, 15, 20]


def test_an_empty_hyperparameter_is_empty_not_the_text_none(tmp_path, monkeypatch):
    """A time budget plans no D or C: MLflow's params and TensorBoard's HPARAMS had the text
    "None" where docs/trackers.md says they are empty."""
    from scalinglab.train.trackers import MlflowTracker

    client = _mlflow_store(tmp_path, monkeypatch)
    run = tmp_path / "r"
    run.mkdir()
    t = MlflowTracker(run, "r", None)
    t.start({"D": None, "C": None, "N": 1000}, resume_step=0)
    t.close()
    run_id = json.loads((run / "trackers.json").read_text())["mlflow_run_id"]
    assert client.get_run(run_id).data.params == {"D": "", "C": "", "N": "1000"}


def test_a_wandb_run_begun_at_a_resume_has_the_steps_before_it(tmp_path, monkeypatch):
    wandb = pytest.importorskip("wandb", reason="the [wandb] extra is not installed")
    from types import SimpleNamespace

    logged = []
    fake = SimpleNamespace(define_metric=lambda name: None, summary={}, finish=lambda: None,
                           log=lambda metrics, step: logged.append((step, dict(metrics))))  # fmt: skip
    monkeypatch.setattr(wandb, "init", lambda **kw: fake)
    data = tiny_shards(tmp_path / "shards")
    run = tmp_path / "run"
    train(tiny_cfg(data, steps=20, log_every=5, eval_every=10, ckpt_every=10), run)
    _break_last_checkpoint(run)
    train(
        tiny_cfg(data, steps=20, log_every=5, eval_every=10, ckpt_every=10, loggers=["wandb"]), run
    )
    rows = _rows(run)
    assert [s for s, _ in logged] == [r["step"] for r in rows] == [5, 10, 15, 20, 20]
    for (_, m), r in zip(logged, rows, strict=True):
        assert m.get("tokens", r["tokens"]) == r["tokens"]
        assert m.get("loss/train") == r.get("train_loss")


# Known answers for mutations of train/metrics.py that every test passed (a mutation audit):
# each fails on its mutation.
class _Broken:
    name = "broken"

    def __init__(self):
        self.logged = self.closed = 0

    def log(self, step, metrics):
        self.logged += 1
        raise RuntimeError("server went away")

    def close(self):
        self.closed += 1


def test_a_failing_tracker_is_dropped_once_and_the_run_goes_on(tmp_path, caplog):
    """Kills MT4 (failed tracker kept): it is called once, warned about once, closed once;
    the metrics lines are all written."""
    from scalinglab.train.metrics import MetricsLog

    ml = MetricsLog(tmp_path)
    bad = _Broken()
    ml.trackers = [bad]
    with caplog.at_level(logging.WARNING):
        for step in (1, 2, 3):
            ml.write({"step": step, "tokens": 64 * step, "train_loss": 2.0})
    ml.close()
    assert (bad.logged, bad.closed) == (1, 1)
    assert sum("failed and is dropped" in r.getMessage() for r in caplog.records) == 1
    assert [
        json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ] == [1, 2, 3]
