"""The study: its spec, and the whole orchestration at toy scale (real training, tiny runs)."""

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from scalinglab.errors import ConfigError, SweepError
from scalinglab.laws.settings import FitConfig
from scalinglab.study.builtin import QUICKSTART_TOML
from scalinglab.study.spec import parse_study

ROOT = Path(__file__).resolve().parents[1]


def quickstart() -> dict:
    return tomllib.loads(QUICKSTART_TOML)


def test_examples_copy_is_the_builtin_spec():
    assert (ROOT / "examples" / "quickstart.toml").read_text(encoding="utf-8") == QUICKSTART_TOML


def test_quickstart_design_meets_the_issue():
    s = parse_study(quickstart(), "quickstart")
    gpt, lstm = s.sweeps["gpt"], s.sweeps["lstm"]
    assert len(gpt.budgets) >= 3 and max(gpt.budgets) / min(gpt.budgets) >= 10
    assert gpt.sizes >= 4 and lstm.sizes >= 4 and len(lstm.budgets) >= 2
    assert s.backtest.budget >= 3 * max(gpt.budgets)
    assert s.factors == [10, 100, 1000] and s.seed_noise.seeds
    assert s.data == {"sources": ["stdlib"], "tokenizer": "byte", "stdlib_tests": True}
    assert s.shared["shape"]["min_layers"] == s.shared["shape"]["max_layers"] == 2
    assert s.fit == FitConfig(bootstrap=1000, curvature="per-budget")
    assert len(s.seed_noise.seeds) >= 2


def test_minutes_scales_every_budget():
    s = parse_study(quickstart(), "quickstart").scaled(5)
    assert s.sweeps["gpt"].budgets == [1.5e11, 5e11, 1.5e12]
    assert s.backtest.budget == 5e12 and s.seed_noise.budget == 5e11
    assert s.minutes == 5


@pytest.mark.parametrize(
    "change, message",
    [
        ({"backtest": {"budget": 5e12}}, "at least 3x the largest budget"),
        ({"sweeps": {"gpt": {"budgets": [1e12]}}}, "at least 2 FLOP budgets"),
        ({"sweeps": {"gpt": {"budgets": [1e11, 1e12], "size": 4}}}, "unknown key(s) size"),
        ({"bogus": 1}, "unknown key(s) bogus"),
        ({"backtest": {"budget": 1e13, "predictor": "magic"}}, "predictor 'magic'"),
        ({"seed_noise": {"budget": 7e11}}, "one of the budgets"),
        # every table goes through the config mechanism: unknown keys named with the known
        ({"backtest": {"budget": 1e13, "colour": 1}}, "[backtest]: unknown key(s) colour (known:"),
        ({"plan": {"factors": [10], "when": 1}}, "[plan]: unknown key(s) when (known: factors)"),
        (
            {"data": {"sources": ["stdlib"], "tokeniser": "byte"}},
            "[data]: unknown key(s) tokeniser",
        ),
        ({"data": {"sources": ["stdlib"], "tokenizer": "morse"}}, "'morse' is not one of"),
        ({"sweeps": {"gpt": {"budgets": [1e11, 1e12], "spread": -2}}}, "[sweeps.gpt]: spread"),
    ],
)
def test_bad_spec_names_the_key(change, message):
    d = quickstart()
    for k, v in change.items():
        d[k] = v
    with pytest.raises(SweepError, match="quickstart") as e:
        parse_study(d, "quickstart")
    assert message in str(e.value)


@pytest.mark.parametrize(
    "fit, message",
    [
        ({"curvature": "flat"}, "quickstart [fit]: curvature 'flat' is not one of per-budget"),
        # the spelling of study files written before the fit settings became FitConfig
        ({"isoflop_curvature": "flat"}, "quickstart [fit]: curvature 'flat' is not one of"),
        ({"bootstrap": -1}, "quickstart [fit]: bootstrap must be >= 0, got -1"),
        ({"bootstrap": "many"}, "quickstart [fit]: bootstrap must be int, got str 'many'"),
        ({"resamples": 10}, "quickstart [fit]: unknown key(s) resamples (known: boot_starts,"),
    ],
)
def test_bad_fit_table_is_a_one_line_config_error(fit, message):
    d = quickstart()
    d["fit"] = fit
    with pytest.raises(ConfigError) as e:
        parse_study(d, "quickstart")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_fit_table_is_the_fit_config():
    d = quickstart()
    d["fit"] = {"bootstrap": 50, "isoflop_curvature": "shared"}
    assert parse_study(d, "quickstart").fit == FitConfig(bootstrap=50, curvature="shared")
    del d["fit"]
    assert parse_study(d, "quickstart").fit == FitConfig()


def toy_corpus(path: Path) -> Path:
    """A bigram 'language' of 40 made-up words: structure a tiny model learns in seconds."""
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnop"), rng.integers(2, 6))) for _ in range(40)]
    P = rng.dirichlet(np.full(40, 0.2), size=40)
    w, out = 0, []
    for i in range(30000):
        w = rng.choice(40, p=P[w])
        out.append(words[w] + (".\n" if i % 10 == 9 else " "))
    path.write_text("".join(out))
    return path


TOY = """
format_version = 1
name = "toy"
workers = 2
[data]
sources = ["{corpus}"]
tokenizer = "byte"
[model]
block_size = 16
[train]
batch_size = 4
log_every = 5
deterministic = true
[shape]
aspect = 1
max_layers = 1
head_size = 4
[hparams]
lr = 3e-3
ref_width = 16
[sweeps.gpt]
budgets = [3e8, 1e9]
sizes = 4
tokens_per_param = 1.5
spread = 8
[backtest]
budget = 3e9
[seed_noise]
budget = 3e8
seeds = [7]
[fit]
bootstrap = 10
"""


@pytest.mark.slow
def test_toy_study_end_to_end(tmp_path):
    from scalinglab.study.run import make_prediction, plan_study, prepare_data, run_study

    corpus = toy_corpus(tmp_path / "corpus.txt")
    study = parse_study(tomllib.loads(TOY.format(corpus=corpus)), "toy")
    out, cache = tmp_path / "study", tmp_path / "cache"
    events = []
    summary = run_study(study, out, cache, listener=lambda e, info: events.append((e, info)))

    bt = summary["backtest"]
    pred = json.loads((out / "prediction.json").read_text())
    assert bt["status"] == "completed" and bt["predicted_loss"] == pred["predicted_loss"]
    assert bt["rel_error"] == abs(bt["predicted_loss"] - bt["actual_loss"]) / bt["actual_loss"]
    lo, hi = pred["interval"]
    assert bt["in_interval"] == (lo <= bt["actual_loss"] <= hi)
    # the prediction was on disk before the backtest's run folder was made
    run_dir = out / "backtest" / "runs" / pred["run_name"]
    assert (out / "prediction.json").stat().st_mtime <= (run_dir / "sweep.json").stat().st_mtime
    order = [
        e
        for e, info in events
        if e == "prediction" or (isinstance(info, dict) and info.get("name") == pred["run_name"])
    ]
    assert order[:2] == ["prediction", "run_started"]
    # exactly the predicted run was trained
    result = json.loads((run_dir / "result.json").read_text())
    assert result["params"] == pred["params"] and result["tokens"] == pred["tokens"]
    assert pred["flops"] == 6.0 * pred["params"] * pred["tokens"] >= 3 * 1e9 * 0.99
    assert summary["seed_noise"]["dof"] == 1
    assert (out / "report.html").exists() and (out / "summary.json").exists()

    # resumable: a rerun finds every run done and reuses the prediction as it is
    before = (out / "prediction.json").read_bytes()
    shards, name = prepare_data(study, cache)
    plan = plan_study(study, shards, name, out, 2, 1, estimate=False)
    assert {r.name for _, r in plan.pool_runs} <= plan.done
    again, _ = make_prediction(study, plan, out)
    assert again == pred and (out / "prediction.json").read_bytes() == before


def test_cli_bad_spec_is_one_line_error(tmp_path, capsys):
    from scalinglab.cli import main

    bad = tmp_path / "s.toml"
    bad.write_text(QUICKSTART_TOML.replace("budget = 1e13 ", "budget = 4e12 "))
    assert main(["study", str(bad), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "s.toml [backtest]: budget 4e+12 must be at least 3x" in err
    assert main(["quickstart", "--out", str(tmp_path / "o"), "--minutes", "0"]) == 2
    assert "--minutes must be a positive number" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cached_corpus_folder_names_its_options(tmp_path):
    """Two studies whose [data] differ only in an option use two cache folders, so neither
    rebuilds the other's; the same options find the same folder, up to date."""
    from scalinglab.study.run import prepare_data

    corpus = toy_corpus(tmp_path / "corpus.txt")
    plain = parse_study(tomllib.loads(TOY.format(corpus=corpus)), "toy")
    other = tomllib.loads(TOY.format(corpus=corpus))
    other["data"]["val_fraction"] = 0.2
    other = parse_study(other, "toy")
    cache = tmp_path / "cache"
    a, _ = prepare_data(plain, cache)
    b, _ = prepare_data(other, cache)
    assert a.name == "corpus.txt-byte" and b.name.startswith("corpus.txt-byte-") and a != b
    manifest = (a / "manifest.json").read_bytes()
    assert prepare_data(plain, cache)[0] == a and (a / "manifest.json").read_bytes() == manifest
    va = json.loads(manifest)["splits"]["val"]["tokens"]
    vb = json.loads((b / "manifest.json").read_text())["splits"]["val"]["tokens"]
    assert vb > 1.5 * va  # 20% held out against the default 10% of a one-document corpus
