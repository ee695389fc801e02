"""The report on a synthetic study folder drawn from a known law (no training)."""

import dataclasses
import html
import json
import math
import os
import re
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.errors import ConfigError
from scalinglab.laws.settings import FitConfig
from scalinglab.report import build_report, figures
from tests.report.synth_runs import LAWS, isoflop_sweep, make_study

EVIL_NAME = "<script>alert('study')</script>"
EVIL_CORPUS = '<img src="http://example.com/x.png">&co'
EVIL_RUN = "gpt-<script>alert(1)<"
FIGURES = {"loss_curves", "isoflop", "frontier_gpt", "frontier_lstm", "allocation",
           "architectures", "residuals"}  # fmt: skip
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "source", "wbr"}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    known = make_study(root, name=EVIL_NAME, corpus=EVIL_CORPUS, evil_run=EVIL_RUN)
    summary = build_report(root)
    return root, known, summary


def true_optimum(arch: str, C: float) -> tuple[float, float]:
    """N_opt and L_opt of the Chinchilla law at compute C = 6ND (closed form)."""
    p = LAWS[arch]
    a, b = p["alpha"], p["beta"]
    G = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    N = G * (C / 6) ** (b / (a + b))
    D = C / (6 * N)
    return N, p["E"] + p["A"] / N**a + p["B"] / D**b


def test_every_figure_is_drawn_as_png(study):
    root, _, s = study
    assert {f["name"] for f in s["figures"]} == FIGURES
    for f in s["figures"]:
        assert "error" not in f, f
        data = (root / f["file"]).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 20_000  # axes, labels and points, not an empty canvas


def test_summary_recovers_the_known_law(study):
    root, _, _ = study
    on_disk = json.loads((root / "summary.json").read_text())
    assert on_disk["format_version"] == 1 and on_disk["kind"] == "scalinglab.study_summary"
    iso = on_disk["fits"]["gpt"]["isoflop"]["params"]
    for C in (1e12, 3e12, 1e13):
        n_true, l_true = true_optimum("gpt", C)
        assert iso[f"N_opt@{C:g}"] == pytest.approx(n_true, rel=0.05)
        assert iso[f"L_opt@{C:g}"] == pytest.approx(l_true, rel=0.005)
    p = LAWS["gpt"]
    assert iso["a"] == pytest.approx(p["beta"] / (p["alpha"] + p["beta"]), abs=0.03)
    # the frontier power law passes through the IsoFLOP optima it was fitted to
    pc = on_disk["fits"]["gpt"]["power-c"]
    for pt in on_disk["fits"]["gpt"]["frontier_points"]:
        pred = (pc["params"]["C_c"] / pt["C"]) ** pc["params"]["alpha"]
        assert pred == pytest.approx(pt["L"], rel=0.01)
    lo, hi = pc["ci"]["alpha"]
    assert lo <= pc["params"]["alpha"] <= hi
    # the LSTM scales worse in this law, and the report says so
    assert on_disk["fits"]["lstm"]["power-c"]["params"]["alpha"] != pc["params"]["alpha"]
    assert len(on_disk["plan"]["rows"]) == 3
    assert [r["flops"] for r in on_disk["plan"]["rows"]] == [1e14, 1e15, 1e16]


def test_backtest_and_seed_noise_numbers(study):
    _, known, s = study
    bt = s["backtest"]
    assert bt["predicted_loss"] == known["predicted"]
    assert bt["actual_loss"] == known["actual"]
    assert bt["rel_error"] == abs(known["predicted"] - known["actual"]) / known["actual"]
    assert bt["rel_error"] == pytest.approx(0.01)
    # signed: above the measured loss is positive (the prediction was 1% high)
    assert bt["signed_rel_error"] == (known["predicted"] - known["actual"]) / known["actual"]
    lo, hi = known["interval"]
    assert bt["in_interval"] is (lo <= known["actual"] <= hi) is True
    assert bt["in_fit_interval"] is False  # the fit interval alone was [1.005, 1.015] × actual
    a, b = known["seed_losses"]
    mean = (a + b) / 2
    assert s["seed_noise"]["rel_std"] == pytest.approx(abs(a - b) / mean / math.sqrt(2), rel=1e-12)
    assert s["seed_noise"]["dof"] == 1


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.tags, self.errors, self.urls, self.text = [], [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href"):
                self.urls.append(v)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")

    def handle_data(self, data):
        self.text.append(data)


def test_backtest_card_is_green_only_near_the_seed_noise(study):
    """The key-results card: inside the interval and the error (1%) within 3x the seed
    noise (0.4%) is green; the same error beside a seed noise of 0.2% is not."""
    from scalinglab.report.sections import all_sections

    root, _, s = study
    assert '<div class="v ok">1.00% error</div>' in (root / "report.html").read_text()
    quiet = {**s, "backtest": {**s["backtest"], "seed_noise_rel_std": 0.002}}
    key = all_sections(quiet, SimpleNamespace(rows=[], study={}, root=root), {}, [], root)[0]
    assert '<div class="v bad">1.00% error</div>' in key
    assert "the error is over 3× the seed noise" in key


def test_a_measurement_just_outside_its_interval_is_shown_outside_it(study):
    """A measured loss 2e-5 below the interval's lower end read, at 4 digits, as equal to
    it beside the word "outside" (an audit): the page, the terminal and the task table
    write as many digits as it takes to show which side it fell."""
    from scalinglab.cli.report import format_summary
    from scalinglab.report.sections import all_sections
    from scalinglab.report.taskfig import task_section

    root, _, s = study
    bt = {**s["backtest"], "interval": [2.1719973, 2.3537081], "actual_loss": 2.1719773}
    bt |= {"in_interval": False, "predicted_loss": 2.2781}
    key = all_sections({**s, "backtest": bt}, SimpleNamespace(rows=[], study={}, root=root),
                       {}, [], root)[0]  # fmt: skip
    assert "[2.172, 2.35371] before training, measured 2.17198: outside" in key  # 2.17198 < 2.172
    table = all_sections({**s, "backtest": bt}, SimpleNamespace(rows=[], study={}, root=root),
                         {}, [], root)  # fmt: skip
    plain = "".join(table).replace(' class="l"', "").replace(' class=""', "")
    assert "<td>predictive interval</td><td>[2.172, 2.35371]</td>" in plain
    assert "<td>measured loss (nats/token)</td><td>2.17198</td>" in plain
    line = next(x for x in format_summary({**s, "backtest": bt}, "out").splitlines()
                if x.startswith("backtest"))  # fmt: skip
    assert "[2.17200, 2.35371], measured 2.17198: error" in line and "OUTSIDE" in line
    ok = {**bt, "actual_loss": 2.25}  # apart from its ends: 4 digits as before
    assert "[2.172, 2.354] before training, measured 2.25: inside" not in key
    key = all_sections({**s, "backtest": {**ok, "in_interval": True}},
                       SimpleNamespace(rows=[], study={}, root=root), {}, [], root)[0]  # fmt: skip
    assert "predicted 2.278 [2.172, 2.354] before training, measured 2.25: inside" in key
    task = {"metric": "acc", "predicted": 0.7700, "interval": [0.7601, 0.80041],
            "measured": 0.80049, "error_points": -3.049, "in_interval": False,
            "n_items": 4000, "chance": 0.5}  # fmt: skip
    html = task_section({"tasks": {"next-line": task}}).replace(' class=""', "")
    assert "<td>[0.7601, 0.8004]</td>" in html and "<td>0.8005 ± " in html


def test_html_is_valid_self_contained_and_escaped(study):
    root, _, _ = study
    raw = (root / "report.html").read_text(encoding="utf-8")
    p = Tags()
    p.feed(raw)
    p.close()
    assert p.errors == [] and p.stack == []
    assert "script" not in p.tags  # neither the study name nor the run name became a tag
    assert p.tags.count("img") == len(FIGURES)
    assert all(u.startswith("data:image/png;base64,") for u in p.urls)
    text = "".join(p.text)
    assert EVIL_NAME in text and EVIL_RUN in text and EVIL_CORPUS in text  # shown, as text
    assert "&lt;script&gt;alert(1)&lt;" in raw
    assert "http://example.com" not in [u for u in p.urls]


def test_report_arch_picks_the_architecture_it_plans(tmp_path, capsys):
    """A sweep folder of a GPT and an LSTM planned the GPT, with no way to plan the other."""
    isoflop_sweep(tmp_path, "gpt", [1e12, 3e12, 1e13], noise=0.002)
    isoflop_sweep(tmp_path, "lstm", [1e12, 3e12, 1e13], noise=0.002, seed=1)
    for arch in ("gpt", "lstm"):
        assert main(["report", str(tmp_path), "--bootstrap", "0", "--arch", arch]) == 0
        assert f"plan ({arch}, the main architecture;" in capsys.readouterr().out
        assert json.loads((tmp_path / "summary.json").read_text())["plan"]["arch"] == arch
    before = (tmp_path / "summary.json").read_bytes()
    assert main(["report", str(tmp_path), "--arch", "rnn"]) == 2
    assert capsys.readouterr().err == (
        f"error: --arch rnn: {tmp_path} has no sweep run of it (its architectures: gpt, lstm)\n"
    )
    assert (tmp_path / "summary.json").read_bytes() == before


def test_report_command_on_a_plain_sweep_folder(tmp_path, capsys):
    isoflop_sweep(tmp_path, "gpt", [1e12, 3e12, 1e13], noise=0.002)
    assert main(["report", str(tmp_path), "--bootstrap", "10"]) == 0
    out = capsys.readouterr().out
    assert "gpt: frontier L ∝ C^-" in out and "plan C=1e+14" in out
    # which architecture and law the plan is: a sweep of two plans one of them
    assert "plan (gpt, the main architecture; by chinchilla):" in out
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["backtest"] is None and s["seed_noise"] is None
    assert {f["name"] for f in s["figures"]} == {"loss_curves", "isoflop", "frontier_gpt",
                                                 "allocation", "residuals"}  # fmt: skip
    iso = next(f for f in s["figures"] if f["name"] == "isoflop")
    assert "through each profile; stars" in iso["caption"] and "shared" not in iso["caption"]
    assert (tmp_path / "report.html").stat().st_size > 50_000
    html_text = (tmp_path / "report.html").read_text()
    assert "Every run saw each training token at most once" in html_text
    # a sweep folder names no corpus: its folder is no corpus either (the header said
    # "corpus: runs/tiny"); the fits' messages name the runs, not "<list of dicts>"
    assert f"runs · folder: {tmp_path} · report" in html_text and "corpus:" not in html_text
    assert "&lt;list of dicts&gt;" not in html_text and "<list of dicts>" not in json.dumps(s)
    assert '<td class="">1337</td>' in html_text and "1,337" not in html_text  # no count
    # a run that saw more tokens than the train split holds is flagged above the runs table
    res = tmp_path / "runs" / sorted(os.listdir(tmp_path / "runs"))[0] / "result.json"
    res.write_text(json.dumps(json.loads(res.read_text()) | {"epochs": 1.42}))
    assert main(["report", str(tmp_path), "--bootstrap", "10"]) == 0
    assert "1 run(s) trained on more tokens than the train split holds (up to 1.42 epochs)" in (
        tmp_path / "report.html"
    ).read_text(encoding="utf-8")


def test_a_report_does_not_depend_on_its_run_folders_names(tmp_path):
    """The runs reach the fits in the runs table's order, not in that of their folders'
    names: renamed so that they sort the other way round, the same runs gave other
    bootstrap draws, so other intervals (a metamorphic audit: a sweep's fit interval of E
    went from [1.9951, 2.1177] to [1.9403, 2.1177])."""
    import shutil

    isoflop_sweep(tmp_path / "a", "gpt", [1e12, 3e12, 1e13], noise=0.002)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    runs = tmp_path / "b" / "runs"
    names = sorted(os.listdir(runs))
    for k, name in enumerate(names):
        os.rename(runs / name, runs / f"z{len(names) - k:02d}-{name}")
    summaries = []
    for part in ("a", "b"):
        assert main(["report", str(tmp_path / part), "--bootstrap", "10", "-q"]) == 0
        summaries.append(json.loads((tmp_path / part / "summary.json").read_text()))
    a, b = summaries
    assert a["fits"] == b["fits"] and a["plan"] == b["plan"]


def test_report_bad_folder_is_one_line_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "absent" in err and err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "no run folders" in capsys.readouterr().err
    (tmp_path / "runs.csv").write_text("N,D,loss\n")  # a file given for the folder
    assert main(["report", str(tmp_path / "runs.csv")]) == 2
    want = f"error: {tmp_path / 'runs.csv'}: not a folder (give a study or sweep folder)\n"
    assert capsys.readouterr().err == want


def test_too_few_runs_to_fit_still_gives_a_report_that_says_why(tmp_path):
    """Two sizes per budget: no parabola, no IsoFLOP fit, no plan; the report is still
    written, NaN-free, and names what could not be fitted and why."""
    import shutil

    isoflop_sweep(tmp_path, "gpt", [1e12, 3e12], noise=0.0)
    for d in (tmp_path / "runs").iterdir():
        if "-w16-" not in d.name and "-w96-" not in d.name:
            shutil.rmtree(d)
    s = build_report(tmp_path, bootstrap=10)
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    g = s["fits"]["gpt"]
    assert g["isoflop"] is None and g["chinchilla"] is None and g["power-c"] is None
    assert "at least 2 budgets with 3+ runs" in g["not_fitted"]["isoflop"]
    assert g["not_fitted"]["isoflop"].startswith("the gpt IsoFLOP runs: ")  # not <list of dicts>
    assert "4 completed runs; at least 6" in g["not_fitted"]["chinchilla"]
    assert s["plan"]["rows"] == []
    assert {f["name"] for f in s["figures"]} == {"loss_curves"}  # nothing fitted to show
    html_text = (tmp_path / "report.html").read_text()
    assert "not fitted" in html_text and "No plan" in html_text


def test_a_run_still_going_or_a_damaged_result_in_a_folder_of_plain_runs(tmp_path, capsys):
    """Runs trained one by one (no sweep.json: C is 6ND from result.json), one of them
    still going (no result.json) and too few to plan: report drew its figures from C of
    every run and ended in a TypeError (an audit). A result.json whose loss is not a
    number is refused in one line naming the file (it ended in a ValueError)."""
    import shutil

    isoflop_sweep(tmp_path, "gpt", [1e12, 3e12], noise=0.0)
    runs = sorted((tmp_path / "runs").iterdir())
    for d in runs:
        if "-w16-" not in d.name and "-w96-" not in d.name:
            shutil.rmtree(d)
        else:
            (d / "sweep.json").unlink()
    runs = sorted(d for d in runs if d.exists())
    (runs[0] / "result.json").unlink()
    s = build_report(tmp_path, bootstrap=10)
    assert s["plan"]["rows"] == [] and (tmp_path / "report.html").exists()
    # the command says the report is of part of the runs (it said nothing: an audit)
    assert main(["report", str(tmp_path), "--bootstrap", "10"]) == 0
    note = (
        f"1 of {len(runs)} runs are not finished (incomplete 1): the report is of the "
        "finished ones; rerun the sweep or study to finish the others"
    )
    assert capsys.readouterr().err == f"warning: {note}\n"
    # and so do summary.json and report.html, the files a reader opens (the terminal alone
    # said it)
    assert json.loads((tmp_path / "summary.json").read_text())["warnings"] == [note]
    assert f'<p class="warn">warning: {note}</p>' in (tmp_path / "report.html").read_text()
    bad = runs[1] / "result.json"
    bad.write_text(json.dumps(json.loads(bad.read_text()) | {"val_loss": "abc"}))
    for cmd in (["report", str(tmp_path)], ["runs", str(tmp_path)]):
        assert main(cmd) == 2
        assert capsys.readouterr().err == f'error: {bad}: val_loss is "abc", not a number\n'
    # no loss, count or time is below 0: a val_loss of -3 was listed as a completed run's
    bad.write_text(json.dumps(json.loads(bad.read_text()) | {"val_loss": -3}))
    for cmd in (["report", str(tmp_path)], ["runs", str(tmp_path)]):
        assert main(cmd) == 2
        assert capsys.readouterr().err == f"error: {bad}: val_loss is -3, not a number >= 0\n"


def test_fit_settings_are_the_studys_fit_config(study):
    _, _, s = study
    assert s["fit_settings"] == dataclasses.asdict(FitConfig(bootstrap=20, seed=0, ci_level=0.95))


@pytest.mark.parametrize(
    "fit, message",
    [
        (
            {"bootstrap": -1},
            "study.json [fit]: bootstrap must be 0 (no intervals) or >= 10 resamples, got -1",
        ),
        # study.json written before FitConfig spelled the curvature so: it is still read
        ({"isoflop_curvature": "wobbly"}, "study.json [fit]: curvature 'wobbly' is not one"),
        ({"resamples": 3}, "study.json [fit]: unknown key(s) resamples"),
    ],
)
def test_bad_fit_in_study_json_is_named(tmp_path, fit, message):
    make_study(tmp_path)
    meta = json.loads((tmp_path / "study.json").read_text())
    (tmp_path / "study.json").write_text(json.dumps({**meta, "fit": fit}))
    with pytest.raises(ConfigError) as e:
        build_report(tmp_path)
    assert str(e.value).startswith(f"{tmp_path}/{message}")


def test_report_shows_leave_larger_out_coverage_and_prediction_intervals(study):
    root, _, s = study
    llo = s["leave_larger_out"]
    n_fit = s["fits"]["gpt"]["chinchilla"]["n_points"]
    for by in ("C", "N"):
        r = llo[by]
        assert "error" not in r, r
        for t in r["thresholds"]:
            assert 0 < t["n_train"] < n_fit and t["n"] > 0
            assert set(t["coverage"]) == {"0.8", "0.95"}
            assert t["coverage"]["0.8"] <= t["coverage"]["0.95"]
        # the synthetic law is the fitted one: its extrapolation errors are small
        assert r["overall"]["mean_abs_rel_error"] < 0.02
    html_text = (root / "report.html").read_text()
    assert "Leave-larger-out backtests" in html_text and "a new run: 95%" in html_text
    for row in s["plan"]["rows"]:
        lo, hi = row["loss_pi"]
        clo, chi = row["loss_ci"]
        assert lo < clo <= row["loss"] <= chi < hi


def test_terminal_summary_of_a_ladder_shows_its_n_d_law():
    """A WSD ladder has no compute frontier: the terminal summary shows its Chinchilla fit
    instead of 'no fit'; an architecture with no fit at all still says so."""
    from scalinglab.cli.report import format_summary

    law = {"params": {"alpha": 0.3412, "beta": 0.2801, "E": 1.6934}, "ci": {}}
    s = {
        "fits": {
            "gpt": {"isoflop": None, "chinchilla": law, "power-c": None},
            "lstm": {"isoflop": None, "chinchilla": None, "power-c": None},
        },
        "plan": {"rows": []},
    }
    lines = format_summary(s, "out").splitlines()
    assert lines[0] == "gpt: L = E + A/N^α + B/D^β: alpha 0.341, beta 0.280, E 1.693"
    assert lines[1] == "lstm: no fit"


def test_terminal_summary_shows_the_isoflop_fits_warnings():
    """A skipped budget changes the frontier a study predicts with: the terminal says so
    under the frontier's line (it was only in the report), and an exponent the
    bootstrap could not move prints without an interval."""
    from scalinglab.cli.report import format_summary

    iso = {
        "params": {"a": 0.7048},
        "ci": {},
        "warnings": [
            "budget 2.3e+11: the loss has no minimum in log N near the sampled sizes; skipped",
            "the fit rests on the minima of 2 budgets: …",
        ],
    }
    pc = {"params": {"alpha": 0.1279}, "ci": {}}
    s = {"fits": {"gpt": {"isoflop": iso, "chinchilla": None, "power-c": pc}}, "plan": {"rows": []}}
    assert format_summary(s, "out").splitlines()[:3] == [
        "gpt: frontier L ∝ C^-0.128; N_opt ∝ C^0.70",
        "  warning: budget 2.3e+11: the loss has no minimum in log N near the sampled sizes; "
        "skipped",
        "  warning: the fit rests on the minima of 2 budgets: …",
    ]


def test_intervals_are_labelled_at_the_fits_level(tmp_path):
    make_study(tmp_path)
    meta = json.loads((tmp_path / "study.json").read_text())
    fit = {**meta.get("fit", {}), "ci_level": 0.8, "bootstrap": 20, "seed": 0}
    (tmp_path / "study.json").write_text(json.dumps({**meta, "fit": fit}))
    build_report(tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert "95% interval" not in html and "a new run: 95%" not in html
    assert html.count("80% interval") >= 5  # the cards and the plan's columns
    assert "a new run: 80%" in html and "its 80% band" in html


def test_runs_of_different_tokenizers_are_refused_and_the_old_report_kept(tmp_path, capsys):
    """A folder holding runs of a byte and of a char tokenizer was fitted as one sweep: a
    law through losses per token of different tokens, with no word (an audit)."""
    isoflop_sweep(tmp_path, "gpt", [1e12, 3e12], noise=0.0)
    runs = sorted((tmp_path / "runs").iterdir())
    for i, d in enumerate(runs):
        res = json.loads((d / "result.json").read_text())
        # byte tokenizers are one whatever their file's hash (a newer writer's shards)
        tok = ("char", "2f79bc6aedb796cd") if i == 0 else ("byte", f"79617617051{i:05d}")
        res |= {"tokenizer": tok[0], "tokenizer_id": tok[1]}
        (d / "result.json").write_text(json.dumps(res))
    (tmp_path / "report.html").write_text("the last good report")
    assert main(["report", str(tmp_path), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {tmp_path}: its runs were trained ")
    assert f"(byte: {len(runs) - 1} runs (" in err
    assert f"; char 2f79bc6aedb796cd: 1 run ({runs[0]}))" in err
    assert (tmp_path / "report.html").read_text() == "the last good report"
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize(
    "name, change, says",
    [
        ("study.json", {"folders": ["sweeps/gpt"]}, "folders must map a role to a list"),
        ("study.json", {"plan_factors": "10"}, "plan_factors must be a list of positive numbers"),
        ("study.json", {"predictor": "frontire"}, "predictor must be one of chinchilla, "),
        ("study.json", {"format_version": 2}, "format_version 2; this scalinglab reads 1"),
        ("prediction.json", {"predicted_loss": None}, "predicted_loss must be a positive number"),
        ("prediction.json", {"predicted_loss": "1.3"}, "predicted_loss must be a positive number"),
        ("prediction.json", {"interval": [1.0]}, "interval must be [low, high], two numbers"),
        ("prediction.json", {"format_version": 2}, "format_version 2; this scalinglab reads 1"),
        # a traceback each ("could not convert string to float", "Unknown format code")
        ("prediction.json", {"params": "many"}, "params must be a positive number, got 'many'"),
        ("prediction.json", {"ci_level": "x"}, "ci_level must be a number in (0, 1), got 'x'"),
        # read as written: '(magic)' printed, an inverted interval scored and stored
        ("prediction.json", {"predictor": "magic"}, "predictor must be one of chinchilla, "),
        ("prediction.json", {"interval": [0.9, 0.1]}, "interval must be [low, high], two "),
        ("prediction.json", {"tokens": -5}, "tokens must be a positive number, got -5"),
    ],
)
def test_a_damaged_study_json_or_prediction_json_is_named(tmp_path, capsys, name, change, says):
    """A study.json or prediction.json of another shape ended in a traceback (KeyError,
    TypeError, AttributeError) or, of a newer format_version or with a misspelt predictor,
    was read as if it were this one's (an audit). The old report is kept."""
    make_study(tmp_path)
    path = tmp_path / name
    path.write_text(json.dumps(json.loads(path.read_text()) | change))
    (tmp_path / "report.html").write_text("the last good report")
    assert main(["report", str(tmp_path), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: {says}") and err.count("\n") == 1
    assert (tmp_path / "report.html").read_text() == "the last good report"


def few_runs(root, n=3):
    """A sweep folder of `n` runs of one budget: too few to fit, so its report is quick."""
    import shutil

    runs = isoflop_sweep(root, "gpt", [1e12], noise=0.0)
    for d in runs[n:]:
        shutil.rmtree(d)
    return runs[:n]


def test_a_completed_run_with_a_nan_loss_is_named_and_counted_as_diverged(
    tmp_path, capsys, monkeypatch
):
    """result.json's status completed with val_loss NaN (another trainer's; ours writes
    diverged) was counted as completed in summary.json and left out of the fits without
    a word (an audit); report.html did not show the warning either."""
    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    tmp_path /= "a<b>&c"  # a folder name the page must escape
    runs = few_runs(tmp_path)
    res = runs[0] / "result.json"
    res.write_text(json.dumps(json.loads(res.read_text()) | {"val_loss": float("nan")}))
    assert main(["report", str(tmp_path), "--bootstrap", "0"]) == 0
    say = f"{runs[0]}: completed with a non-finite loss (nan); counted as diverged, left out "
    assert capsys.readouterr().err == f"warning: {say}of the fits\n"
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["runs"] == {"sweep/gpt": {"diverged": 1, "completed": 2}}
    assert s["warnings"] == [f"{say}of the fits"]
    # and report.html shows it, escaped, where a reader of the page sees what was left out
    page = (tmp_path / "report.html").read_text()
    assert f'<p class="warn">warning: {html.escape(say)}of the fits</p>' in page


def test_a_completed_run_without_tokens_or_params_is_named_not_counted_otherwise(
    tmp_path, capsys, monkeypatch
):
    """A completed run whose result.json lacks tokens (another trainer's; no plan in its
    sweep.json to fall back to) was left out of the fits without a word (an audit); its
    loss is valid, so it stays completed and is named."""
    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    runs = few_runs(tmp_path)
    res = runs[0] / "result.json"
    d = json.loads(res.read_text())
    del d["tokens"]
    res.write_text(json.dumps(d))
    res = runs[1] / "result.json"
    res.write_text(json.dumps(json.loads(res.read_text()) | {"params": 0}))
    assert main(["report", str(tmp_path), "--bootstrap", "0"]) == 0
    tail = (
        " (result.json, else the run's config.toml or its sweep's plan); a valid loss, left "
        "out of the fits"
    )
    say = [f"{runs[0]}: completed without tokens (D){tail}",
           f"{runs[1]}: completed with params 0 (N), not a positive number{tail}"]  # fmt: skip
    # in the runs' order (the runs table's: params 0 first), each once
    err = capsys.readouterr().err
    assert sorted(err.splitlines()) == sorted(f"warning: {w}" for w in say)
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["runs"] == {"sweep/gpt": {"completed": 3}}
    assert sorted(s["warnings"]) == sorted(say)


def test_a_folder_study_json_lists_and_is_not_there_is_named(tmp_path, capsys, monkeypatch):
    """A study whose sweeps/lstm was gone reported its GPT runs alone, the LSTM's absence
    unsaid (an audit); a study still running has not made its backtest folder yet."""
    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    few_runs(tmp_path / "sweeps" / "gpt")
    folders = {"sweep": ["sweeps/gpt", "sweeps/lstm"], "seed": [], "backtest": ["backtest"]}
    study = {"format_version": 1, "kind": "scalinglab.study", "name": "s", "folders": folders}
    (tmp_path / "study.json").write_text(json.dumps(study))
    assert main(["report", str(tmp_path), "--bootstrap", "0"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [e.split(",")[0] for e in err] == [
        "warning: study.json lists sweeps/lstm",
        "warning: study.json lists backtest",
    ]
    page = (tmp_path / "report.html").read_text()
    assert '<p class="warn">warning: study.json lists sweeps/lstm, which is not there' in page
    assert err[0].endswith(
        "which is not there: its runs are not in this report (a study still running makes "
        "it when it starts them; if the study has ended, the folder was moved or deleted)"
    )


def test_a_study_whose_sweeps_are_gone_is_one_line(tmp_path, capsys, monkeypatch):
    """Its seed repeats and backtest alone were an IndexError traceback (an audit); the
    last report is kept."""
    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    few_runs(tmp_path / "seed", n=2)
    folders = {"sweep": ["sweeps/gpt"], "seed": ["seed"], "backtest": []}
    study = {"format_version": 1, "kind": "scalinglab.study", "name": "s", "folders": folders}
    (tmp_path / "study.json").write_text(json.dumps(study))
    (tmp_path / "report.html").write_text("the last one")
    assert main(["report", str(tmp_path), "--bootstrap", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        f"error: {tmp_path}: no sweep run to fit: the study's sweeps hold no run folder (moved "
        "or deleted?); the seed repeats and the backtest alone make no scaling law"
    )
    assert (tmp_path / "report.html").read_text() == "the last one"


def test_report_of_one_run_folder_is_refused_a_folder_of_one_run_is_not(tmp_path, capsys):
    """`report RUN` wrote report.html and summary.json into the run's folder, 'gpt: no
    fit', exit 0 (an audit): a run folder is refused; the sweep folder holding it is read."""
    run = few_runs(tmp_path, n=1)[0]
    assert main(["report", str(run)]) == 2
    assert capsys.readouterr().err == (
        f"error: {run} is one run's folder (result.json, config.toml, sweep.json), not a sweep "
        f"or study folder: report takes the folder that holds run folders; for one run see "
        f"scalinglab eval {run}\n"
    )
    assert sorted(p.name for p in run.iterdir()) == [
        "config.toml", "metrics.jsonl", "result.json", "sweep.json"
    ]  # fmt: skip
    res = run / "result.json"
    res.write_text(json.dumps(json.loads(res.read_text()) | {"status": "diverged"}))
    assert main(["report", str(tmp_path)]) == 2  # the sweep folder of that one run is read
    assert "no completed gpt run: its one run diverged" in capsys.readouterr().err


def test_an_all_diverged_sweep_says_every_run_ended(tmp_path, capsys):
    """'no completed gpt run yet' read as if runs were still going (an audit)."""
    runs = few_runs(tmp_path)
    for i, d in enumerate(runs):
        res = d / "result.json"
        status = "failed" if i == 0 else "diverged"
        res.write_text(json.dumps(json.loads(res.read_text()) | {"status": status}))
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {tmp_path}: no completed gpt run: all 3 ended (diverged 2, failed 1); "
        "nothing to fit or report\n"
    )
    (runs[0] / "result.json").unlink()  # one still going: "yet", and what the others are
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path}: no completed gpt run yet (diverged 2, incomplete 1): nothing "
        "to fit or report\n"
    )


def test_plan_rows_beyond_the_runs_training_tokens_say_how_many_epochs(
    tmp_path, capsys, monkeypatch
):
    """The plan's budgets asked for more tokens than the runs' corpus holds (the quickstart's
    1000x row: 61M tokens of a 31M-token corpus) without a word, its loss from laws fitted
    on fresh tokens. Each row now has unique_tokens and epochs (runs' tokens / epochs),
    and those over one epoch are named in the warnings, report.html and the terminal."""
    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    monkeypatch.setattr("scalinglab.plan.analysis.leave_larger_out", lambda *a: {})
    runs = isoflop_sweep(tmp_path, "gpt", [1e12, 3e12], noise=0.0)
    plan = build_report(tmp_path, bootstrap=0)["plan"]["rows"]
    assert plan and all("epochs" not in r for r in plan)  # no epochs in result.json: unknown
    d = sorted(r["tokens"] for r in plan)
    unique = int((d[0] * d[1]) ** 0.5)  # the first budget fits in one pass, the others not
    for run in runs:
        res = json.loads((run / "result.json").read_text())
        res["epochs"] = res["tokens"] / unique
        (run / "result.json").write_text(json.dumps(res))
    assert main(["report", str(tmp_path), "--bootstrap", "0"]) == 0
    out, err = capsys.readouterr()
    s = json.loads((tmp_path / "summary.json").read_text())
    rows = s["plan"]["rows"]
    for r in rows:
        assert r["unique_tokens"] == unique
        assert r["epochs"] == pytest.approx(r["tokens"] / unique, rel=1e-12)
    over = [r for r in rows if r["epochs"] > 1]
    assert 1 <= len(over) < len(rows)
    what = ", ".join(f"C={r['flops']:.3g} ({r['epochs']:.2f} epochs)" for r in over)
    note = next(w for w in s["warnings"] if w.startswith("plan: "))
    assert f"the runs' {unique:,} training tokens at {what}: its loss assumes fresh" in note
    assert err == f"warning: {note}\n"
    assert out.count(" epochs of the data)") == len(over)
    page = (tmp_path / "report.html").read_text()
    assert f"<i>epochs</i>: D_opt over the runs' {unique:,} training tokens (over 1" in page
    # a short head: the long one widened the table past a 1400-pixel window, this column out
    # of view (the report audit's screenshot)
    assert '<th class="">epochs</th></tr>' in page
    # runs of two corpora: no one count of training tokens, so no epochs
    res = json.loads((runs[0] / "result.json").read_text())
    (runs[0] / "result.json").write_text(json.dumps(res | {"epochs": res["epochs"] / 2}))
    s = build_report(tmp_path, bootstrap=0)
    assert all("epochs" not in r for r in s["plan"]["rows"])
    assert not any(w.startswith("plan: ") for w in s["warnings"])


def test_read_curve_skips_points_of_other_types(tmp_path):
    """Another trainer's metrics.jsonl may hold any JSON: a final line without tokens, a
    string or a list where flops go, `true` as tokens. The report drew its loss curves
    from float() of them and stopped with a traceback; now such a point is left out."""
    from scalinglab.report.collect import read_curve

    lines = [
        {"step": 1, "tokens": 100, "train_loss": 3.0, "flops": "x"},
        {"step": 2, "tokens": 200, "train_loss": 2.9, "flops": [1]},
        {"step": 3, "tokens": True, "train_loss": 2.8},
        {"step": 4, "tokens": "300", "train_loss": 2.7},
        {"step": 5, "tokens": 400, "train_loss": 2.6, "flops": 8e6},
        {"step": 5, "final": True, "val_loss": 2.5},
        {"step": 5, "final": True, "tokens": "abc", "val_loss": 2.5},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(d) + "\n" for d in lines))
    c = read_curve(tmp_path)
    assert c == {"tokens": [100.0, 200.0, 400.0], "flops": [0.0, 0.0, 8e6],
                 "train_loss": [3.0, 2.9, 2.6], "final": None}  # fmt: skip


def test_a_metrics_line_that_is_not_json_is_named_in_the_warnings(tmp_path):
    """The loss curves skipped another trainer's metrics.jsonl lines that are not JSON
    objects, and the report said nothing of the points it had left out."""
    from scalinglab.report.collect import collect

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"status": "completed", "val_loss": 2.5}))
    row = json.dumps({"step": 1, "tokens": 100, "train_loss": 3.0})
    (run / "metrics.jsonl").write_text(f"{row}\n{{bad\n[1]\n{row}\n")
    warnings = collect(tmp_path).warnings
    line = [w for w in warnings if "metrics.jsonl" in w]
    assert line == [f"{run / 'metrics.jsonl'}: line 2: not JSON (and 1 more lines): "
                    "left out of the loss curves"]  # fmt: skip


def test_terminal_says_why_there_is_no_frontier_and_what_diverged(tmp_path, capsys, monkeypatch):
    """A sweep of one budget showed 'gpt: L = E + ...: alpha 0.790' and a plan 1000x out,
    with no word that N and D were collinear (the N-D law cannot separate its exponents)
    nor why there was no IsoFLOP fit; a sweep all diverged but one said 'gpt: no fit'
    with no reason and no word of the diverged runs (an audit)."""
    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    monkeypatch.setattr("scalinglab.plan.analysis.leave_larger_out", lambda *a: {})
    one = tmp_path / "one"
    isoflop_sweep(one, "gpt", [3e12], noise=0.002)
    assert main(["report", str(one), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    g = json.loads((one / "summary.json").read_text())["fits"]["gpt"]
    assert any("collinear" in w for w in g["chinchilla"]["warnings"])
    for w in g["chinchilla"]["warnings"]:
        assert f"  warning: {w}" in out
    assert f"  isoflop: not fitted: {g['not_fitted']['isoflop']}" in out
    div = tmp_path / "div"
    for i, d in enumerate(few_runs(div, n=4)):
        if i:
            res = d / "result.json"
            res.write_text(json.dumps(json.loads(res.read_text()) | {"status": "diverged"}))
    assert main(["report", str(div), "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "gpt: no fit"
    assert "  3 of 4 runs diverged: left out of the fits" in out
    assert any(x.startswith("  chinchilla: not fitted: 1 completed runs") for x in out)


def test_bootstrap_0_says_there_are_no_intervals(tmp_path, monkeypatch):
    """--bootstrap 0 wrote '95% bootstrap percentile intervals (0 resamples, seed 0)', and
    the plan's 'a new run: 95%' interval, the runs' scatter alone without the fit's
    uncertainty, read as whole (an audit). With resamples, the sentence is not there."""
    from scalinglab.report import sections

    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    llo = {"C": {"error": "not backtested here"}}
    monkeypatch.setattr("scalinglab.plan.analysis.leave_larger_out", lambda *a: llo)
    isoflop_sweep(tmp_path, "gpt", [1e12, 3e12], noise=0.002)
    s = build_report(tmp_path, bootstrap=0)
    text = html.unescape((tmp_path / "report.html").read_text())
    assert s["plan"]["rows"][0]["loss_pi"] is not None  # an interval shown, the scatter alone
    assert "(0 resamples" not in text
    plan = text[text.index("Plan: the next budgets") : text.index("Fitted laws")]
    assert sections.NO_BOOTSTRAP in plan
    assert sections.NO_BOOTSTRAP in text[text.index("Leave-larger-out") :]
    fs = {**s["fit_settings"], "bootstrap": 10}
    text = html.unescape(sections._fits(s["fits"], fs) + sections._plan(s["plan"], fs))
    assert "(10 resamples" in text and sections.NO_BOOTSTRAP not in text


def test_a_frontiers_caption_names_the_backtest_only_where_it_is_drawn(tmp_path, monkeypatch):
    """The LSTM frontier's caption said 'The backtest: the loss predicted before training
    ... and the loss measured after', though only the GPT's frontier draws it, and said
    'measured after' of a backtest not yet run (an audit)."""
    from scalinglab.plan import analysis as an
    from scalinglab.report import figures
    from scalinglab.sweep.table import run_row

    monkeypatch.setattr(figures, "_save", lambda fig, path: figures._plt().close(fig))
    runs = isoflop_sweep(tmp_path, "gpt", [1e12, 3e12], noise=0.002)
    f = an.fit_arch("gpt", [run_row(d) for d in runs], FitConfig(bootstrap=0))
    fits = {"gpt": f, "lstm": f}  # the same frontier drawn twice: only the caption differs
    bt = {"arch": "gpt", "flops": 3e13, "predicted_loss": 1.8, "interval": [1.7, 1.9],
          "actual_loss": None, "status": "pending"}  # fmt: skip
    lstm = figures.frontier(tmp_path / "l.png", fits, "lstm", 3e13, bt)
    gpt = figures.frontier(tmp_path / "g.png", fits, "gpt", 3e13, bt)
    assert "backtest" not in lstm.lower()
    assert "The backtest" in gpt and "measured after" not in gpt and "pending" in gpt
    done = figures.frontier(tmp_path / "g.png", fits, "gpt", 3e13, {**bt, "actual_loss": 1.81,
                                                                    "rel_error": 0.005})  # fmt: skip
    assert "measured after" in done


def test_the_runs_task_scores_are_in_the_runs_table(tmp_path, monkeypatch):
    """A sweep's runs scored with `eval --tasks` (RUN/tasks.json): their accuracies were in
    no part of report.html, the task figure and table being the backtest's (an audit)."""
    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    monkeypatch.setattr("scalinglab.plan.analysis.leave_larger_out", lambda *a: {})
    runs = few_runs(tmp_path, n=3)
    result = {"task": "recall", "step": 1, "tokens": 256, "flops": 1.0, "n": 100,
              "sha256": "s1", "chance": 0.5, "acc": 0.6173}  # fmt: skip
    (runs[1] / "tasks.json").write_text(json.dumps({"format_version": 2, "results": [result]}))
    build_report(tmp_path, bootstrap=0)
    text = (tmp_path / "report.html").read_text()
    runs_table = text[text.index("<h2>Runs (3)") :]
    assert "recall.acc</th>" in runs_table and ">0.617</td>" in runs_table


def test_a_grid_of_token_budgets_is_not_read_as_isoflop_profiles(tmp_path, monkeypatch):
    """A grid sweep's `tokens` budgets (budget_kind "tokens") were taken for FLOPs: one
    IsoFLOP parabola per D, a 'frontier' and a plan at 10x a token count (C = 3.2e+08
    FLOPs, D = 104 tokens, loss 63.6; an audit). They are no IsoFLOP profiles: C is 6ND."""
    from scalinglab.models.counting import count
    from tests.report.synth_runs import VOCAB, law_loss, model_for, write_run

    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    monkeypatch.setattr("scalinglab.plan.analysis.leave_larger_out", lambda *a: {})
    c_max = 0.0
    for w in (16, 32, 64):
        for d in (2_000_000, 8_000_000, 32_000_000):
            m = model_for("gpt", w)
            n = count(m, VOCAB).params
            c_max = max(c_max, 6.0 * n * d)
            write_run(tmp_path / "runs" / f"w{w}-d{d}", m, d, float(law_loss("gpt", n, d)),
                      group={"budget": d, "budget_kind": "tokens"})  # fmt: skip
    s = build_report(tmp_path, bootstrap=0)
    g = s["fits"]["gpt"]
    assert g["isoflop"] is None and g["power-c"] is None
    assert g["chinchilla"]["params"]["alpha"] == pytest.approx(LAWS["gpt"]["alpha"], abs=0.01)
    assert s["plan"]["largest_budget"] == pytest.approx(c_max)
    assert any("9 run(s) have budgets in tokens, not FLOPs" in w for w in s["warnings"])


def test_terminal_summary_shows_the_frontiers_warnings():
    """Three budgets spanning 1.9x gave 'gpt: frontier L ∝ C^-0.121 [0.112, 0.129]' and a
    plan to 1000x with no word that C spans under a decade: the frontier's own warnings
    were in summary.json and the page only (an audit)."""
    from scalinglab.cli.report import format_summary

    w = "C spans only 1.9x (less than a decade): its exponent is weakly constrained"
    pc = {"params": {"alpha": 0.121}, "ci": {}, "warnings": [w]}
    iso = {"params": {"a": 0.46}, "ci": {}, "warnings": []}
    s = {"fits": {"gpt": {"isoflop": iso, "chinchilla": None, "power-c": pc}}, "plan": {"rows": []}}
    assert f"  warning: frontier: {w}" in format_summary(s, "out").splitlines()


def test_report_out_at_a_file_is_refused_naming_the_flag(tmp_path, capsys, monkeypatch):
    """`report DIR --out notes.txt` fitted every law, then failed with 'notes.txt: File
    exists (something else is in the way)', naming no flag (an audit)."""
    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    few_runs(tmp_path / "sweep")
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert main(["report", str(tmp_path / "sweep"), "--out", str(notes), "--bootstrap", "0"]) == 2
    assert (
        capsys.readouterr().err == f"error: --out {notes} is a file, not a folder: give a folder\n"
    )
    assert notes.read_text() == "mine"


def test_key_results_show_the_n_d_law_where_there_is_no_frontier(tmp_path, monkeypatch):
    """A sweep of one budget had an empty Key results (no frontier card), hiding that its
    Chinchilla fit, the plan's, cannot separate N's exponent from D's; nothing fitted at
    all left the heading bare (an audit)."""
    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    monkeypatch.setattr("scalinglab.plan.analysis.leave_larger_out", lambda *a: {})
    isoflop_sweep(tmp_path / "one", "gpt", [3e12], noise=0.002)
    s = build_report(tmp_path / "one", bootstrap=0)
    text = html.unescape((tmp_path / "one" / "report.html").read_text())
    keys = text[text.index("<h2>Key results") : text.index("<h2>Figures")]
    ch = s["fits"]["gpt"]["chinchilla"]
    assert "GPT: L = E + A/N^α + B/D^β (no frontier)" in keys
    assert any("collinear" in w for w in ch["warnings"])
    assert all(w in keys for w in ch["warnings"])
    few_runs(tmp_path / "few")
    build_report(tmp_path / "few", bootstrap=0)
    text = (tmp_path / "few" / "report.html").read_text()
    assert "None: no law could be fitted" in text


def _drawn(monkeypatch):
    """The figures the report's figure functions draw, kept instead of saved."""
    from scalinglab.report import figures

    drawn = []

    def keep(fig, path):
        drawn.append(fig)
        figures._plt().close(fig)

    monkeypatch.setattr(figures, "_save", keep)
    return drawn


def _gpt_fit(root, **fit):
    from scalinglab.plan import analysis as an
    from scalinglab.sweep.table import run_row

    runs = isoflop_sweep(root, "gpt", [1e12, 3e12], noise=0.002)
    return an.fit_arch("gpt", [run_row(d) for d in runs], FitConfig(**fit))


def test_the_allocation_band_is_at_the_reports_level(tmp_path, monkeypatch):
    """The band about N_opt(C) and D_opt(C) was the 2.5-97.5 percentiles of the draws
    whatever --ci-level, while the frontier's band and every interval were at the level."""
    import numpy as np

    from scalinglab.report import figures

    drawn = _drawn(monkeypatch)
    f = _gpt_fit(tmp_path, bootstrap=10, seed=0, ci_level=0.8)
    caption = figures.allocation(tmp_path / "a.png", {"gpt": f}, 3e13, None)
    ax = drawn[0].axes[0]  # N_opt(C)
    iso = f.isoflop
    C = np.geomspace(1e12 / 1.5, 3e13 * 1.3, 100)
    draws = iso.samples_["k_N"][:, None] * C[None, :] ** iso.samples_["a"][:, None]
    lo, hi = np.nanpercentile(draws, [10, 90], axis=0)
    ys = ax.collections[-1].get_paths()[0].vertices[:, 1]
    assert ys.max() == pytest.approx(hi.max(), rel=1e-9)
    assert ys.min() == pytest.approx(lo.min(), rel=1e-9)
    old = np.nanpercentile(draws, 97.5, axis=0).max()  # the band whatever the level
    assert ys.max() != pytest.approx(old, rel=1e-6)
    labels = ax.get_legend_handles_labels()[1]
    assert any(lab.startswith("GPT: N_opt ∝ C^") and lab.endswith("(80% band)") for lab in labels)
    assert "80% bootstrap intervals" in caption and "80% bands" in caption
    assert "95%" not in caption


def test_the_published_allocation_lines_have_their_exponents_for_n_and_for_d(tmp_path, monkeypatch):
    """Beside the fitted N_opt(C) and D_opt(C), the published laws' lines: N_opt ∝ C^a with
    a = 0.50 (Chinchilla) and 0.73 (Kaplan), so D_opt = C / 6N ∝ C^(1-a): 0.50 and 0.27."""
    drawn = _drawn(monkeypatch)
    figures.allocation(tmp_path / "a.png", {"gpt": _gpt_fit(tmp_path, bootstrap=0)}, 3e13, None)
    for ax, want in zip(drawn[0].axes[:2], ({"Chinchilla": 0.50, "Kaplan": 0.73},
                                            {"Chinchilla": 0.50, "Kaplan": 0.27}), strict=True):  # fmt: skip
        got = {}
        for line in ax.get_lines():
            name, sep, e = line.get_label().partition(": exponent ")
            if sep:
                x, y = line.get_data()
                slope = math.log(y[-1] / y[0]) / math.log(x[-1] / x[0])
                assert slope == pytest.approx(float(e), abs=1e-12)
                got[name.split()[0]] = round(slope, 2)
        assert got == want


def test_the_allocations_backtest_run_is_drawn_for_its_architecture_only(tmp_path, monkeypatch):
    """The backtest's diamond ('backtest run') was drawn whatever the backtest's arch: with
    GPT and LSTM it read as either's, and it was drawn where its arch has no IsoFLOP fit."""
    from scalinglab.report import figures

    drawn = _drawn(monkeypatch)
    f = _gpt_fit(tmp_path, bootstrap=0)
    bt = {"arch": "gpt", "flops": 3e13, "params_run": 2e5, "tokens_run": 2.5e7}

    def labels(fits, bt):
        caption = figures.allocation(tmp_path / "a.png", fits, 3e13, bt)
        fig = drawn.pop()
        return caption, [ax.get_legend_handles_labels()[1] for ax in fig.axes]

    caption, (n, d) = labels({"gpt": f, "lstm": f}, bt)
    assert "GPT backtest run" in n and "GPT backtest run" in d
    assert "The diamond: the GPT backtest run's N and D." in caption
    caption, (n, d) = labels({"gpt": f}, bt)
    assert "backtest run" in n and "backtest run" in d  # one architecture: no name needed
    caption, (n, d) = labels({"gpt": f}, {**bt, "arch": "lstm"})  # the LSTM's: not drawn
    assert not any("backtest" in x for x in n + d) and "diamond" not in caption


def test_figure_captions_claim_no_bootstrap_intervals_without_a_bootstrap(tmp_path, monkeypatch):
    """With --bootstrap 0 the frontier's caption said 'the IsoFLOP optima, with their
    bootstrap intervals' and '95% band', the allocation's 'IsoFLOP vertices with bootstrap
    intervals', of points and lines drawn without any."""
    from scalinglab.report import figures

    drawn = _drawn(monkeypatch)
    f = _gpt_fit(tmp_path, bootstrap=0)
    fits = {"gpt": f}
    front = figures.frontier(tmp_path / "f.png", fits, "gpt", 3e13, None)
    assert not any("band" in x for x in drawn[-1].axes[0].get_legend_handles_labels()[1])
    alloc = figures.allocation(tmp_path / "a.png", fits, 3e13, None)
    from matplotlib.collections import PolyCollection

    assert not any(isinstance(c, PolyCollection) for c in drawn[-1].axes[0].collections)
    for caption in (front, alloc):
        assert "bootstrap intervals" not in caption and "band" not in caption
        assert caption.endswith(figures.NO_INTERVALS)
    assert front.startswith("GPT: the lowest loss reachable at each compute (the IsoFLOP "
                            "optima) and the power law fitted through them, extrapolated")  # fmt: skip
    assert alloc.startswith("The compute-optimal model size and data at each budget "
                            "(IsoFLOP vertices) and the power laws through them, beside")  # fmt: skip


def test_fitted_laws_name_isoflop_parabolas_only_where_there_is_an_isoflop_fit():
    """'IsoFLOP optima: one parabola in log N per budget.' headed the fitted laws of a sweep
    of one budget, or of token budgets, where no architecture has an IsoFLOP fit."""
    from scalinglab.report import sections

    fs = {"ci_level": 0.95, "bootstrap": 0, "seed": 0, "curvature": "per-budget"}
    ch = {"params": {"E": 1.0}, "stderr": {}, "ci": {}, "n_points": 6}
    none = {"isoflop": None, "chinchilla": ch, "power-c": None, "not_fitted": {}}
    text = html.unescape(sections._fits({"gpt": none, "lstm": none}, fs))
    assert "IsoFLOP" not in text and "parabola" not in text
    assert text.startswith(f"<h2>Fitted laws</h2><p>{sections.NO_BOOTSTRAP}</p>")
    iso = {"params": {"a": 0.5}, "stderr": {}, "ci": {}, "n_points": 12}
    text = html.unescape(sections._fits({"gpt": none, "lstm": {**none, "isoflop": iso}}, fs))
    assert f"{sections.NO_BOOTSTRAP} IsoFLOP optima: one parabola in log N per budget." in text


def test_the_notes_say_where_the_run_folders_are(study, tmp_path, monkeypatch):
    """'each run's folder under the study folder' was said of a sweep folder's report, and
    of a report written into another folder with --out, whose runs are not under it."""
    monkeypatch.setattr("scalinglab.report.build._figures", lambda *a: [])
    monkeypatch.setattr("scalinglab.plan.analysis.leave_larger_out", lambda *a: {})
    root, _, _ = study
    files = "summary.json (format_version 1) and the PNGs, beside this file; the run folders, "
    text = html.unescape(re.sub("<[^>]+>", "", (root / "report.html").read_text()))
    assert files + "under this file's folder (the study folder)." in text
    few_runs(tmp_path / "sweep")
    build_report(tmp_path / "sweep", bootstrap=0)
    text = html.unescape(re.sub("<[^>]+>", "", (tmp_path / "sweep" / "report.html").read_text()))
    assert files + "under this file's folder (the sweep folder)." in text
    assert "study folder" not in text
    monkeypatch.chdir(tmp_path)
    build_report("sweep", bootstrap=0, out="elsewhere")
    text = html.unescape(re.sub("<[^>]+>", "", (tmp_path / "elsewhere/report.html").read_text()))
    assert files + f"under the sweep folder {tmp_path / 'sweep'}." in text
    assert (tmp_path / "elsewhere" / "summary.json").exists()


def test_the_backtests_epochs_are_in_summary_and_its_law_is_the_one_that_predicted_it(tmp_path):
    """summary.json's backtest.epochs was null unless the run repeated its data, while the
    runs table showed the run's 0.287 epochs; and a run that repeats its data was said to be
    predicted by the data-constrained law also when that fit failed and the study predicted
    it with the frontier as if the tokens were fresh (a report audit)."""
    from scalinglab.report.build import backtest_result
    from scalinglab.report.sections import _backtest

    pred = {"arch": "gpt", "flops": 1e13, "params": 186560, "tokens": 8933376,
            "predictor": "frontier", "predicted_loss": 1.29, "run_name": "bt",
            "unique_tokens": 31089980, "repeats_data": False, "ci_level": 0.95}  # fmt: skip
    c = SimpleNamespace(prediction=pred, by_role=lambda *roles: [])
    bt = backtest_result(c)
    assert bt["epochs"] == 8933376 / 31089980
    assert "no (0.287 epochs of 3.109e+07 unique tokens)" in _backtest(bt)
    over = {**pred, "unique_tokens": 4466688, "repeats_data": True}
    bt = backtest_result(SimpleNamespace(prediction=over, by_role=lambda *roles: []))
    text = _backtest(bt)
    assert bt["epochs"] == 2.0 and "data-constrained" not in text
    assert "yes, 2 epochs: predicted as if they did not (fresh tokens), so optimistic" in text
    bt = backtest_result(SimpleNamespace(prediction={**over, "predictor": "data-constrained",
                                                     "epochs": 2.0}, by_role=lambda *r: []))  # fmt: skip
    assert "yes, 2 epochs: the data-constrained law predicts it" in _backtest(bt)


def test_leave_larger_out_thresholds_inside_one_budget_are_told_apart():
    """The quickstart's runs of the 7e11 budget have C = 6.99936e11, 7.00024e11 and
    7.00166e11: two thresholds among them were both shown as 'C above 7.00e+11', one fitting
    7 runs and one 8, as if the table repeated a row (a report audit)."""
    from scalinglab.report.sections import _leave_larger_out

    def row(thr, n_train, n):
        return {"threshold": thr, "n_train": n_train, "n": n, "mean_abs_rel_error": 0.05,
                "max_abs_rel_error": 0.06, "bias": -0.05, "coverage": {"0.8": 1.0, "0.95": 1.0}}  # fmt: skip

    thresholds = [row(230039027712.0, 6, 3), row(699936276480.0, 7, 2), row(700023767040.0, 8, 1)]
    llo = {"C": {"thresholds": thresholds, "overall": row(None, None, 6)}}
    text = _leave_larger_out(llo, "gpt", {"bootstrap": 200})
    cells = re.findall(r"<tr><td class=\"l\">([^<]*)</td>", text)
    assert cells == ["2.300e+11", "6.999e+11", "7.000e+11", "all"]
    assert "a run predicted from several counting once for each" in text


def test_captions_claim_vertex_intervals_only_where_the_bootstrap_gave_them(tmp_path, monkeypatch):
    """A budget of 3 sizes gets no interval on its vertex (docs/laws.md): the quickstart's
    GPT frontier, its three optima drawn without error bars, was captioned 'the IsoFLOP
    optima, with their 95% bootstrap intervals', and so was N_opt(C) (a report audit)."""
    from scalinglab.plan import analysis as an
    from scalinglab.report import figures
    from scalinglab.sweep.table import run_row
    from tests.report import synth_runs

    _drawn(monkeypatch)
    five = _gpt_fit(tmp_path / "five", bootstrap=10, seed=0)
    monkeypatch.setitem(synth_runs.WIDTHS, "gpt", synth_runs.WIDTHS["gpt"][1:4])
    runs = isoflop_sweep(tmp_path / "three", "gpt", [1e12, 3e12, 1e13], noise=0.002)
    three = an.fit_arch("gpt", [run_row(d) for d in runs], FitConfig(bootstrap=10, seed=0))
    assert all(p["L_ci"] is None for p in three.frontier_points)
    why = "no resample moves a vertex of a budget of 3 sizes (docs/laws.md)"
    caption = figures.frontier(tmp_path / "f.png", {"gpt": three}, "gpt", 3e13, None)
    assert f"(the IsoFLOP optima, without intervals: {why}), the power law" in caption
    caption = figures.frontier(tmp_path / "f.png", {"gpt": five}, "gpt", 3e13, None)
    assert "(the IsoFLOP optima with their 95% bootstrap intervals), the power law" in caption
    caption = figures.allocation(tmp_path / "a.png", {"gpt": three, "lstm": five}, 3e13, None)
    assert (f"(IsoFLOP vertices with their 95% bootstrap intervals, the GPT ones without: "
            f"{why}) and the power laws") in caption  # fmt: skip


def test_the_other_laws_prediction_names_its_interval():
    """'also predicted (before training) by chinchilla: 1.471 [1.258, 1.724]' showed the fit
    interval, unnamed, under rows of the main prediction's fit and predictive intervals: a
    reader compared it with the predictive one (a report audit)."""
    from scalinglab.report.sections import _backtest

    other = {"predictor": "chinchilla", "predicted_loss": 1.4709, "rel_error": 0.1038,
             "fit_interval": [1.2579, 1.7242], "prediction_interval": [1.2473, 1.7282]}  # fmt: skip
    bt = {"arch": "gpt", "flops": 1e13, "params": 186560, "tokens": 8933376, "ci_level": 0.95,
          "predicted_loss": 1.2864, "other_predictions": {"chinchilla": other}}  # fmt: skip
    text = _backtest(bt)
    assert "1.471, predictive interval [1.247, 1.728] (10.38% error)" in text
    del other["prediction_interval"]
    assert "1.471, fit interval [1.258, 1.724] (10.38% error)" in _backtest(bt)


def test_a_study_counting_n_without_embeddings_draws_and_plans_at_its_own_c(tmp_path, monkeypatch):
    """study.json's [fit] n_kind = "params_nonembed": every fit counts N without
    embeddings, so the frontier's optima, the runs and the backtest are drawn at their C =
    6·N_ne·D, and the plan's budgets are that C's multiples, said so in its header."""
    import numpy as np

    from scalinglab.plan import analysis as an
    from scalinglab.report import figures
    from scalinglab.report.collect import collect

    make_study(tmp_path)
    meta = json.loads((tmp_path / "study.json").read_text())
    meta["fit"]["n_kind"] = "params_nonembed"
    (tmp_path / "study.json").write_text(json.dumps(meta))
    pred = json.loads((tmp_path / "prediction.json").read_text())
    run = json.loads((tmp_path / "backtest/runs/gpt-backtest/result.json").read_text())
    law_flops = 6.0 * run["params_nonembed"] * run["tokens"]
    pred.update(n_kind="params_nonembed", law_params=run["params_nonembed"], law_flops=law_flops)
    (tmp_path / "prediction.json").write_text(json.dumps(pred))
    s = build_report(tmp_path)
    iso = s["fits"]["gpt"]["isoflop"]["params"]
    c_opt = [iso[f"C_opt@{b:g}"] for b in (1e12, 3e12, 1e13)]
    assert all(0.5 * b < c < b for c, b in zip(c_opt, (1e12, 3e12, 1e13), strict=True))
    assert s["plan"]["n_kind"] == "params_nonembed"
    assert s["plan"]["largest_budget"] == pytest.approx(c_opt[-1], rel=1e-12)
    assert [r["flops"] for r in s["plan"]["rows"]] == pytest.approx(
        [f * c_opt[-1] for f in (10, 100, 1000)], rel=1e-12
    )
    assert s["backtest"]["law_flops"] == law_flops < s["backtest"]["flops"]
    html = (tmp_path / "report.html").read_text()
    assert "C (6·N·D, N without embeddings)" in html and "N_opt (without embeddings)" in html
    assert "C = 6·N·D with it, where the fits predicted" in html
    from scalinglab.cli.report import format_summary

    lines = format_summary(s, "out").splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith("plan (gpt, the main architecture"))
    assert lines[at].endswith("; N without embeddings, C = 6·N·D with it, as the fits count them):")
    assert lines[at + 1].startswith(f"plan C={10 * c_opt[-1]:.3g}: N=")
    drawn = _drawn(monkeypatch)
    rows = [r for r in collect(tmp_path).by_role("sweep") if r["arch"] == "gpt"]
    fits = an.fit_arch("gpt", rows, FitConfig(bootstrap=0), "params_nonembed")
    figures.frontier(tmp_path / "f.png", {"gpt": fits}, "gpt", 1e15, s["backtest"])
    ax = drawn[0].axes[0]
    xs = [x for line in ax.get_lines() for x in np.atleast_1d(line.get_xdata())]
    assert any(x == pytest.approx(law_flops, rel=1e-12) for x in xs)  # the measured star
    assert not any(x == pytest.approx(s["backtest"]["flops"], rel=1e-9) for x in xs)
    assert ax.get_xlabel() == "training compute C = 6·N·D (FLOPs) (N without embeddings)"


def test_report_out_among_the_runs_or_shards_is_refused(tmp_path, capsys):
    """`report DIR --out` inside a run folder, its live checkpoint folder (keep-last pruning
    deletes a step folder with what it holds) or a shards folder wrote report.html,
    summary.json and the PNGs there (exit 0)."""
    runs = few_runs(tmp_path / "sweep")
    shards = tmp_path / "shards"
    shards.mkdir()
    (shards / "manifest.json").write_text(json.dumps({"kind": "scalinglab.shards"}))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for out, where in [
        (runs[0] / "rep", f"the run folder {runs[0]}"),
        (runs[1] / "ckpt" / "step-00000003", f"the run folder {runs[1]}"),
        (shards / "rep", f"the shards folder {shards}"),
    ]:
        assert main(["report", str(tmp_path / "sweep"), "--bootstrap", "0", "--out", str(out)]) == 2
        assert capsys.readouterr().err == (
            f"error: --out {out} lies in {where}; give the report a folder of its own\n"
        )
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert main(["report", str(tmp_path / "sweep"), "--bootstrap", "0", "--out",
                 str(tmp_path / "rep")]) == 0  # fmt: skip


def test_report_out_into_another_study_or_among_the_run_folders_is_refused(tmp_path, capsys):
    """`report A --out B` over a study folder B replaced B's own summary.json and
    report.html with A's (an audit); `--out DIR/runs/NEW` made a folder the study's rerun
    then refused as unplanned."""
    few_runs(tmp_path / "sweep")
    other = tmp_path / "other"
    other.mkdir()
    (other / "study.json").write_text("{}")
    (other / "summary.json").write_text("B's own")
    new = tmp_path / "sweep" / "runs" / "new"
    argv = ["report", str(tmp_path / "sweep"), "--bootstrap", "0", "--out"]
    assert main([*argv, str(other)]) == 2
    assert capsys.readouterr().err == (
        f"error: --out {other} is the folder of another study or sweep (it holds study.json): "
        "its own report.html and summary.json would be replaced; give the report a folder of "
        "its own\n"
    )
    assert main([*argv, str(new)]) == 2
    assert capsys.readouterr().err == (
        f"error: --out {new} lies among the run folders of {tmp_path / 'sweep'}; give the "
        "report a folder of its own\n"
    )
    assert (other / "summary.json").read_text() == "B's own" and not new.exists()
    assert main([*argv, str(tmp_path / "sweep")]) == 0  # its own folder, as without --out


def test_a_bootstrap_that_moved_nothing_is_not_captioned_as_no_bootstrap(tmp_path, monkeypatch):
    """With 3 sizes a budget no resample moves a vertex, so a fit with --bootstrap 20 drew
    no interval; its captions said 'the fits had no bootstrap (--bootstrap 0)', while the
    page said 20 resamples (found by an audit of a study's report)."""
    from scalinglab.plan import analysis as an
    from scalinglab.report import figures
    from scalinglab.sweep.table import run_row

    _drawn(monkeypatch)
    runs = isoflop_sweep(tmp_path, "gpt", [1e12, 3e12], noise=0.002)
    rows = [run_row(d) for d in runs]
    three = []  # per budget the 3 sizes about its best run
    for b in (1e12, 3e12):
        mine = sorted((r for r in rows if r["budget"] == b), key=lambda r: r["params"])
        best = min(range(len(mine)), key=lambda i: mine[i]["loss"])
        lo = min(max(best - 1, 0), len(mine) - 3)
        three += mine[lo : lo + 3]
    f = an.fit_arch("gpt", three, FitConfig(bootstrap=20, seed=0))
    assert f.isoflop.samples_ is None  # the bootstrap ran and moved nothing
    fits = {"gpt": f}
    for caption in (figures.frontier(tmp_path / "f.png", fits, "gpt", 3e13, None),
                    figures.allocation(tmp_path / "a.png", fits, 3e13, None)):  # fmt: skip
        assert "--bootstrap 0" not in caption
        assert caption.endswith(
            "No intervals: none of the 20 resamples moved the fit (no resample moves a "
            "vertex of a budget of 3 sizes, docs/laws.md)."
        )


# Known answers for mutations of report/collect.py that every test passed (a mutation audit):
# each fails on its mutation.
def test_a_grid_of_flops_budgets_keeps_its_budget_column():
    """Kills CO1: a grid whose budgets are FLOPs (budget_kind "flops") keeps `budget` (its
    IsoFLOP profiles) and says nothing; a grid of token budgets moves it to budget_tokens."""
    from scalinglab.report.collect import drop_budgets_not_in_flops

    rows = [{"budget": 1e12, "budget_kind": "flops"}, {"budget": 1e12, "budget_kind": None},
            {"budget": 640, "budget_kind": "tokens"}]  # fmt: skip
    said = drop_budgets_not_in_flops(rows)
    assert [r.get("budget") for r in rows] == [1e12, 1e12, None]
    assert rows[2]["budget_tokens"] == 640 and "budget_flops" not in rows[0]
    assert len(said) == 1 and said[0].startswith("1 run(s) have budgets in tokens")


def test_a_seed_repeat_without_n_is_named_too():
    """Kills CO2: a completed seed repeat without params is left out of the fits (the seed
    noise) and named, as a sweep run is; a backtest run is not the fits' and is not named."""
    from scalinglab.report.collect import name_runs_without_n_or_d

    rows = [{"status": "completed", "role": "seed", "dir": "S", "params": None, "tokens": 640},
            {"status": "completed", "role": "backtest", "dir": "B", "params": None, "tokens": 640},
            {"status": "completed", "role": "sweep", "dir": "W", "params": 100, "tokens": 0}]  # fmt: skip
    said = name_runs_without_n_or_d(rows)
    assert [s.split(":")[0] for s in said] == ["S", "W"]
    assert "without params (N)" in said[0] and "with tokens 0 (D), not a positive number" in said[1]


def test_a_curves_final_point_is_the_final_evaluations_only(tmp_path):
    """Kills CO4: an unfinished run's mid-run evaluation is no final loss (the figure marked
    it as one); the row marked final is."""
    from scalinglab.report.collect import read_curve

    rows = [{"step": 10, "tokens": 640, "train_loss": 3.0},
            {"step": 20, "tokens": 1280, "train_loss": 2.8, "val_loss": 2.9}]  # fmt: skip
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    c = read_curve(tmp_path)
    assert c["tokens"] == [640.0, 1280.0] and c["train_loss"] == [3.0, 2.8]
    assert c["final"] is None
    final = {"step": 30, "tokens": 1920, "train_loss": 2.7, "val_loss": 2.75, "final": True}
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps(final) + "\n")
    assert read_curve(tmp_path)["final"] == (1920.0, 2.75)


# Known answers for mutations of report/sections.py that every test passed (a mutation audit):
# each fails on its mutation.
def test_the_plan_tables_budget_column_is_the_multiple_of_the_largest_budget():
    """Kills SE2: a plan row at C = 1e13 beside a largest swept budget of 1e12 is '10×'
    (it read '0.1×' inverted)."""
    from scalinglab.report.sections import _plan

    row = {"flops": 1e13, "params": 3e7, "tokens": 6e8, "tokens_per_param": 20.0,
           "loss": 2.5, "allocation": "isoflop", "predictor": "frontier"}  # fmt: skip
    html = _plan({"arch": "gpt", "largest_budget": 1e12, "rows": [row, {**row, "flops": 1e14}]},
                 {"ci_level": 0.95, "bootstrap": 100})  # fmt: skip
    assert "10×" in html and "100×" in html and "0.1×" not in html


def _run_row(**kw):
    row = {"run_id": "r0", "role": "sweep", "arch": "gpt", "n_layer": 2, "n_embd": 16,
           "params": 1000, "tokens": 20000, "flops_6nd": 1.2e8, "epochs": 0.5, "seed": 1337,
           "loss": 2.5, "bpb": 3.6, "wall_seconds": 4.0, "status": "completed"}  # fmt: skip
    return row | kw


def test_the_runs_tables_d_over_n_is_tokens_per_parameter():
    """Kills SE3: 20000 tokens on 1000 parameters is D/N = 20 (it read 0.02 inverted)."""
    from scalinglab.report.html import num
    from scalinglab.report.sections import _runs

    html = _runs([_run_row()], [])
    assert f'<td class="">{num(20.0, 3)}</td>' in html and num(0.05, 3) not in html


def test_one_epoch_is_not_a_repeat_of_the_data():
    """Kills SE4: a run of exactly 1 epoch saw each token once: no repeated-data warning;
    1.5 epochs is warned about."""
    from scalinglab.report.sections import _runs

    assert "at most once (epochs ≤ 1)" in _runs([_run_row(epochs=1.0)], [])
    html = _runs([_run_row(epochs=1.0), _run_row(run_id="r1", epochs=1.5)], [])
    assert "1 run(s) trained on more tokens than the train split holds (up to 1.50 epochs)" in html


def test_the_backtest_card_says_its_reach_and_its_fits_cost():
    """Kills SE6 (the cost shown as the extrapolation): 12× the largest fitted C, fits
    costing 0.25× the backtest's C."""
    from scalinglab.report.sections import _reach

    assert _reach({"extrapolation": 12.0, "fit_cost_ratio": 0.25}) == (
        "; 12.0× the largest fitted run's C, fitted on runs costing 0.25× its C"
    )
    assert _reach({}) == ""


def test_smoothing_keeps_the_length_and_is_a_centred_mean():
    """an even window (90 points: k = 6) gives as many points as it reads."""
    y = np.arange(90.0)
    s = figures._smooth(list(y))
    assert len(s) == 90
    assert s[45] == pytest.approx(np.mean(y[42:48]))


def test_the_reports_parabola_is_in_natural_log_n():
    """the residuals panel's parabola is L_opt + k (x - ln N_opt)^2, x = ln N."""
    iso = SimpleNamespace(params_={"N_opt@1e+18": 1e8, "L_opt@1e+18": 3.0, "k@1e+18": 0.1})
    f = figures.fitted_parabola(iso, 1e18)
    assert f(math.log(1e8)) == pytest.approx(3.0)
    assert f(math.log(1e8) + 1.0) == pytest.approx(3.1)
