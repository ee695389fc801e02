"""`scalinglab fit` and `scalinglab plan` through the CLI: happy paths and every bad input."""

import hashlib
import json
import os
import re

import numpy as np
import pytest

from scalinglab.cli import main
from tests.laws.synth import chinchilla_law

NUM = r"[-+0-9.e]+"

HEADER = "run_id,arch,status,params,params_nonembed,tokens,flops,flops_6nd,loss"


def runs_csv(tmp_path, n_sizes=5, n_tokens=5, seed=0, name="runs.csv"):
    rng = np.random.default_rng(seed)
    lines = [HEADER]
    i = 0
    for N in np.geomspace(1e7, 1e9, n_sizes):
        for D in np.geomspace(2e8, 5e10, n_tokens):
            L = chinchilla_law(N, D) * np.exp(0.003 * rng.standard_normal())
            lines.append(
                f"r{i},gpt,completed,{N:.0f},{0.8 * N:.0f},{D:.0f},{6.3 * N * D:.6g},{6 * N * D:.6g},{L:.6f}"
            )
            i += 1
    lines.append(f"r{i},gpt,diverged,{1e8:.0f},{8e7:.0f},{1e9:.0f},6e17,6e17,nan")
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def one_line_error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_fit_json_out_and_plan(tmp_path, capsys):
    path = runs_csv(tmp_path)
    out = tmp_path / "fit.json"
    assert (
        main(
            [
                "fit",
                str(path),
                "--law",
                "chinchilla",
                "--bootstrap",
                "50",
                "--json",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    obj = json.loads(capsys.readouterr().out)
    assert obj == json.loads(out.read_text())
    assert {
        "law",
        "params",
        "stderr",
        "ci",
        "ci_level",
        "n_points",
        "objective",
        "warnings",
        "conventions",
    } <= set(obj)
    assert obj["n_points"] == 25  # the diverged run is dropped by the default status=completed
    assert obj["conventions"]["filters"] == ["status=completed"]
    assert obj["conventions"]["N"] == "params" and obj["conventions"]["D"] == "tokens"
    assert main(["plan", str(out), "--flops", "1e20", "1e21", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert len(plan) == 2
    for key in ("flops", "params", "tokens", "tokens_per_param", "loss"):
        assert key in plan[0]
        if key != "flops":
            lo, hi = plan[0][f"{key}_ci"]
            assert lo <= plan[0][key] <= hi
    assert plan[0]["params"] * plan[0]["tokens"] * 6 == pytest.approx(1e20)
    assert main(["plan", str(out), "--target-loss", "2.6", "--json"]) == 0
    tgt = json.loads(capsys.readouterr().out)
    assert tgt["loss"] == pytest.approx(2.6, rel=1e-6)
    assert main(["plan", str(out), "--params", "1e8", "--flops", "1e20"]) == 0
    assert "compute-optimal at this budget" in capsys.readouterr().out


def test_n_kind_and_c_col(tmp_path, capsys):
    path = runs_csv(tmp_path)
    assert main(["fit", str(path), "--law", "power-c", "--bootstrap", "0", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["conventions"]["C"] == "flops"  # the model's own count, preferred over flops_6nd
    # --n-kind picks N's column; power-c read C from its own and gave the same fit
    argv = ["fit", str(path), "--law", "power-c", "--bootstrap", "0", "--n-kind", "params_nonembed"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --n-kind params_nonembed has no effect on power-c here: C is ")
    assert "the column 'flops' of" in err and err.count("\n") == 1


def test_backtest_reports_relative_errors(tmp_path, capsys):
    path = runs_csv(tmp_path, n_sizes=6, n_tokens=6)
    assert main(["fit", str(path), "--bootstrap", "50", "--holdout-frac", "0.2", "--json"]) == 0
    bt = json.loads(capsys.readouterr().out)["backtest"]
    assert bt["n_test"] == 8 and bt["n_train"] == 28
    assert all(p["C"] > bt["threshold"] for p in bt["points"])
    assert bt["mean_abs_rel_error"] < 0.01  # the law is right, so extrapolation is good


def test_other_peoples_csv_with_spaces_in_names(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = ["Model Size,Training FLOP,final loss"]
    for N in np.geomspace(1e7, 1e9, 5):
        for D in np.geomspace(2e8, 5e10, 5):
            lines.append(
                f"{N},{6 * N * D},{chinchilla_law(N, D) * np.exp(0.003 * rng.standard_normal())}"
            )
    path = tmp_path / "theirs.csv"
    path.write_text("\n".join(lines) + "\n")
    assert main(["fit", str(path), "--loss-col", "final loss", "--bootstrap", "0", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["conventions"]["D"] == "C/(6N) from 'Training FLOP'"
    # D = C/(6N) is the tokens each row was made with (alpha alone cannot tell: a wrong
    # constant scales every D alike; found by a mutation audit)
    assert obj["data"]["D_range"] == [pytest.approx(2e8, rel=1e-5), pytest.approx(5e10, rel=1e-5)]
    assert obj["params"]["alpha"] == pytest.approx(0.34, abs=0.05)


def _write(tmp_path, text, name="bad.csv"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(p)


GOOD = "run_id,params,tokens,loss\n" + "".join(
    f"r{i},{n},{d},{chinchilla_law(float(n), float(d)):.5f}\n"
    for i, (n, d) in enumerate(
        (n, d) for n in ("1e7", "1e8", "1e9") for d in ("1e9", "1e10", "1e11")
    )
)


@pytest.mark.parametrize(
    "content,argv,expect",
    [
        (GOOD, ["--loss-col", "val"], "--loss-col 'val': no such column"),
        (GOOD.replace("loss", "perplexity"), [], "no loss column: no column was found"),
        ("run_id,params,loss\nr1,1e7,3.0\nr2,1e8,2.9\n", [], "needs tokens D"),
        (
            GOOD.replace("r3,1e8", "r3,abc"),
            [],
            "row 4 (line 5), column 'params': 'abc' is not a number",
        ),
        (GOOD.replace(",1e10,", ",nan,", 1), [], "column 'tokens': 'nan' is not a finite number"),
        (GOOD.replace("r0,1e7", "r0,0"), [], "row 1 (line 2), column 'params': '0' must be > 0"),
        (
            GOOD.replace("r8,1e9", "r8,-1e9"),
            [],
            "row 9 (line 10), column 'params': '-1e9' must be > 0",
        ),
        (GOOD.replace("r1,", "r0,"), [], "duplicate run_id 'r0' on lines 2 and 3"),
        (
            "run_id,params,tokens,loss\nr1,1e7,1e9,3\nr2,1e8,1e10,2.5\nr3,1e9,1e9,2.6\n",
            [],
            "3 points for law 'chinchilla', which has 5 parameters",
        ),
        (
            "params,tokens,loss\n"
            + "".join(
                f"1e8,{d},{3 - i / 10}\n" for i, d in enumerate((1e9, 2e9, 4e9, 8e9, 1e10, 2e10))
            ),
            [],
            "every row has the same model size N",
        ),
        ("", [], "the file is empty"),
        ("run_id,params,tokens,loss\n", [], "the header has no data rows"),
        (b"run_id,params,tokens,loss\nr1,1e7,1e9,3.0\xff\n", [], "byte 40: not valid UTF-8"),
        (GOOD, ["--where", "arch=gpt"], "--where arch=gpt: no column 'arch'"),
        # every comparison with NaN is false: it said "no rows left"
        (GOOD, ["--where", "loss<nan"], "--where 'loss<nan': 'nan' is not a number to compare"),
        # read as one column 'params;tokens;loss', it said "no loss column"
        (GOOD.replace(",", ";"), [], "line 1: one column 'run_id;params;tokens;loss': the "
         "file is separated by semicolons (';'); a runs table is comma-separated (CSV)"),
        (GOOD.replace(",", "\t"), [], "the file is separated by tabs ('\\t')"),
        # a spreadsheet's formatting left in a cell: say which, and what to write
        (GOOD.replace("r3,1e8", 'r3,"100,000,000"'), [], "row 4 (line 5), column 'params': "
         "'100,000,000' is not a number (thousands separators: write 100000000)"),
        (GOOD.replace("r0,1e7", "r0,50%"), [], "row 1 (line 2), column 'params': '50%' is not "
         "a number (a percent sign: write the fraction 0.5)"),
        # Python's float() took both: a typo read as a silently wrong number (1000, 1.5)
        (re.sub(r"(r3,1e8,1e9,)[^\n]*", r"\g<1>1_000", GOOD), [], "row 4 (line 5), column 'loss': "
         "'1_000' is not a number (digit separators: write 1000)"),
        (re.sub(r"(r3,1e8,1e9,)[^\n]*", "\\g<1>\uff11.\uff15", GOOD), [], "row 4 (line 5), column "
         "'loss': '\uff11.\uff15' is not a number (characters outside ASCII"),
        # every exponent fits a constant loss: it printed alpha 48.8, beta 41.7, A 4.1e9
        ("params,tokens,loss\n" + "".join(f"{n},{d},3.0\n" for n in (1e7, 1e8, 1e9)
                                          for d in (1e9, 1e10)), [],
         "every row has the same value of 'loss' (3); law 'chinchilla' needs it to vary"),
        # unnamed columns were 'duplicate column names in the header: '' at columns 5, 6'
        ("params,tokens,loss,,\n1e7,1e9,3.0,x,y\n", [],
         "columns 4, 5 have no name in the header and hold values: name them (or delete them)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_error(tmp_path, capsys, content, argv, expect):
    path = _write(tmp_path, content)
    err = one_line_error(capsys, ["fit", path, "--bootstrap", "0", *argv])
    assert expect in err, err
    assert path in err or expect.startswith("--")


def test_a_spreadsheets_blank_columns_and_rows_are_no_columns(tmp_path, capsys):
    """A spreadsheet's CSV export (BOM, CRLF) with the blank columns beside the table
    (',,' on every line, no name in the header) was refused: 'duplicate column names in the
    header: '' at columns 5, 6'. Columns with neither a name nor a value are left out, and
    the fit is that of the clean table, as with blank rows; the positions of duplicate names
    are still those of the file."""
    clean = _write(tmp_path, GOOD, "clean.csv")
    excel = GOOD.replace("\n", ",,\r\n") + ",,,,,\r\n"
    excel = _write(tmp_path, b"\xef\xbb\xbf" + excel.encode(), "excel.csv")
    fits = []
    for path in (clean, excel):
        assert main(["fit", path, "--law", "power-c", "--bootstrap", "0", "--json"]) == 0
        fits.append(json.loads(capsys.readouterr().out))
    assert fits[1]["params"] == fits[0]["params"] and fits[1]["n_points"] == 9
    assert fits[1]["data"]["points_sha256"] == fits[0]["data"]["points_sha256"]
    dup = _write(tmp_path, "params,tokens,,loss,loss\n1e7,1e9,,3.0,3.1\n", "dup.csv")
    err = one_line_error(capsys, ["fit", dup, "--bootstrap", "0"])
    assert err == f"error: {dup}: duplicate column names in the header: 'loss' at columns 4, 5\n"


def test_a_csv_with_mac_line_ends_is_read(tmp_path, capsys):
    """A CSV saved with '\\r' alone between lines (a spreadsheet's Mac CSV), or a stray
    '\\r' inside a line, ended fit in a traceback ('_csv.Error: new-line character seen in
    unquoted field'), for a runs table and a curves table alike. It reads as the '\\n' file
    does; data.sha256 stays the hash of the file's own text."""
    from tests.laws.test_curves import curves_csv

    curves = curves_csv(tmp_path / "curves.csv", lambda lr, s: 3 + 2 / np.sqrt(s), ["cosine"])
    argv = {
        GOOD: ["--law", "power-c"],
        curves.read_text(): ["--law", "lr-annealing", "--run-col", "run"],
    }
    for text, flags in argv.items():
        fits = []
        for name, body in (("unix.csv", text), ("mac.csv", text.replace("\n", "\r"))):
            path = _write(tmp_path, body, name)
            assert main(["fit", path, "--bootstrap", "0", "--json", *flags]) == 0, name
            fits.append(json.loads(capsys.readouterr().out))
        assert fits[1]["params"] == fits[0]["params"]
        mac = (tmp_path / "mac.csv").read_bytes()
        assert fits[1]["data"]["sha256"] == hashlib.sha256(mac).hexdigest()
    bad = _write(tmp_path, "params,tokens,loss\r1e7,1e9,3\r1e8,x,3\r", "bad.csv")
    err = one_line_error(capsys, ["fit", bad, "--bootstrap", "0"])
    assert err == f"error: {bad}: row 2 (line 3), column 'tokens': 'x' is not a number\n"


def test_bad_plan_inputs(tmp_path, capsys):
    assert "no such file" in one_line_error(
        capsys, ["plan", str(tmp_path / "nope.json"), "--flops", "1e20"]
    )
    bad = _write(tmp_path, '{"kind": "other"}', "x.json")
    assert "not a scalinglab fit.json" in one_line_error(capsys, ["plan", bad, "--flops", "1e20"])
    path = runs_csv(tmp_path)
    out = tmp_path / "fit.json"
    assert main(["fit", str(path), "--bootstrap", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    assert "unreachable" in one_line_error(capsys, ["plan", str(out), "--target-loss", "1.0"])
    assert "give --flops" in one_line_error(capsys, ["plan", str(out)])


def nd_csv(path, k, loss="loss", law=chinchilla_law):
    """A params,tokens,LOSS table of k x k runs (N 1e7..1e9, D 1e9..1e11) on `law`: its path
    and lines."""
    lines = [f"params,tokens,{loss}"]
    for n in np.geomspace(1e7, 1e9, k):
        for d in np.geomspace(1e9, 1e11, k):
            lines.append(f"{n:.6g},{d:.6g},{law(n, d):.6f}")
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def test_plan_json_is_what_its_help_says(tmp_path, capsys):
    """plan --help said only 'print JSON' for --json, where every other command names what
    it prints (docs/cli.md), and the shape differs by mode: a list for --flops, one object
    for --target-loss and --params."""
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "--json print the plan as JSON instead of its lines: a list of one object per --flops "
        "(per schedule with --steps, best first); one object for --target-loss or --params"
    ) in text
    out = tmp_path / "fit.json"
    assert main(["fit", str(runs_csv(tmp_path, 3, 3)), "--bootstrap", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    shapes = []
    for flags in (
        ["--flops", "1e19", "1e20"],
        ["--target-loss", "3"],
        ["--params", "1e8", "--flops", "1e19"],
    ):
        assert main(["plan", str(out), *flags, "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        shapes.append(len(got) if isinstance(got, list) else got["flops"] > 0)
    assert shapes == [2, True, True]


def test_a_plan_below_one_parameter_or_token_is_refused(tmp_path, capsys):
    """plan --flops 1 printed params=0.66 tokens=0.25 as a plan (a warning said only that it
    extrapolated); --target-loss 1e6 answered flops=1 (the bisection's floor) at loss 1320;
    --params 0.5 was planned. Each is one line naming its flag."""
    path = runs_csv(tmp_path, n_sizes=3, n_tokens=3)
    out = tmp_path / "fit.json"
    assert main(["fit", str(path), "--bootstrap", "0", "--out", str(out)]) == 0
    capsys.readouterr()
    err = one_line_error(capsys, ["plan", str(out), "--flops", "1", "1e20"])
    assert err.startswith("error: --flops 1: the plan has params=0.")
    assert "less than one parameter or token: no run is that small (C=1 is " in err
    err = one_line_error(capsys, ["plan", str(out), "--target-loss", "1e6", "--json"])
    assert err.startswith("error: --target-loss 1e+06: the fit reaches that loss only below ")
    err = one_line_error(capsys, ["plan", str(out), "--params", "0.5", "--flops", "1e20"])
    assert err == "error: --params must be at least 1, got 0.5\n"
    err = one_line_error(capsys, ["plan", str(out), "--params", "1", "--flops", "6"])
    assert err.startswith("error: --flops 6: its compute-optimal run has ")
    assert main(["plan", str(out), "--flops", "1e20"]) == 0


def test_a_loss_column_of_perplexities_is_warned_of(tmp_path, capsys):
    """A table whose loss column held perplexity (exp of the loss, 5 to 100) was fitted
    without a word (E = 7.1, alpha 0.67): a warning names the column and its largest value."""
    path, _ = nd_csv(tmp_path / "ppl.csv", 3, "ppl", lambda n, d: np.exp(chinchilla_law(n, d)))
    argv = ["fit", str(path), "--loss-col", "ppl", "--bootstrap", "0", "--json"]
    for law in ("chinchilla", "power-c"):
        assert main([*argv, "--law", law]) == 0
        warned = [w for w in json.loads(capsys.readouterr().out)["warnings"] if "ppl" in w]
        assert (
            len(warned) == 1
            and warned[0].startswith("the loss column 'ppl' reaches ")
            and "above 20 nats per token" in warned[0]
            and "perplexity" in warned[0]
        ), warned
    path, _ = nd_csv(tmp_path / "nd.csv", 3)
    assert main(["fit", str(path), "--bootstrap", "0", "--json"]) == 0
    assert not any("perplexity" in w for w in json.loads(capsys.readouterr().out)["warnings"])


def test_tokens_in_billions_are_warned_of(tmp_path, capsys):
    """A tokens column in billions fitted without a word (only B moved, to 0.98), and plan
    then gave 3.8e13 parameters on 4.4e5 tokens: a median of tokens per parameter outside
    1e-3 to 1e5 is warned of, for the N, D laws and data-constrained."""
    path, lines = nd_csv(tmp_path / "nd.csv", 3)
    rows = [ln.split(",") for ln in lines[1:]]
    billions = tmp_path / "billions.csv"
    billions.write_text(
        "params,tokens,unique_tokens,loss\n"
        + "".join(f"{n},{float(d) / 1e9:g},{float(d) / 2e9:g},{loss}\n" for n, d, loss in rows)
    )
    fix = ["--fix", "A=400", "--fix", "B=400", "--fix", "E=1.7"]  # a quick data-constrained fit
    for law, more in (("chinchilla", []), ("power-c", []), ("data-constrained", fix)):
        argv = ["fit", str(billions), "--law", law, "--bootstrap", "0", "--json", *more]
        assert main(argv) == 0
        warned = [w for w in json.loads(capsys.readouterr().out)["warnings"] if "millions" in w]
        assert warned == [
            "the runs see a median of 1e-07 tokens per parameter (D 'tokens' / N 'params'), "
            "outside 1e-3 to 1e5: is one of them in millions or billions? N and D are counts "
            "of parameters and tokens (plan's C = 6ND takes them as such)"
        ], law
    assert main(["fit", str(path), "--bootstrap", "0", "--json"]) == 0
    assert not any("millions" in w for w in json.loads(capsys.readouterr().out)["warnings"])


def test_rows_listed_twice_are_warned_of_and_seed_repeats_are_not(tmp_path, capsys):
    """A table with rows pasted twice fitted them twice without a word (25 points of 20 runs,
    each copy weighing in the bootstrap too); the public (Mis)fitting table holds 21 such rows.
    Rows equal in N, D and loss are warned of; a seed repeat (another loss) is not."""
    _, lines = nd_csv(tmp_path / "nd.csv", 3)
    with_u = [f"{ln},{ln.split(',')[1]}" for ln in lines]  # unique tokens U = D
    twice = tmp_path / "twice.csv"
    twice.write_text("\n".join([with_u[0] + "_u", *with_u[1:], *with_u[1:3]]) + "\n")
    fix = ["--fix", "A=400", "--fix", "B=400", "--fix", "E=1.7"]  # a quick data-constrained fit
    for law, more in (("chinchilla", []), ("data-constrained", ["--u-col", "tokens_u", *fix])):
        assert main(["fit", str(twice), "--law", law, "--bootstrap", "0", "--json", *more]) == 0
        warned = [w for w in json.loads(capsys.readouterr().out)["warnings"] if "twice" in w]
        assert warned == [
            "2 rows repeat an earlier row's N, D and loss exactly (the first: N=1e+07, D=1e+09, "
            f"L={float(lines[1].split(',')[2]):.6g}): a run listed twice counts twice in the fit "
            "and its bootstrap (seed repeats differ in their loss); drop the copies, or check "
            "which run each row is"
        ], law
    seeds = tmp_path / "seeds.csv"
    seeds.write_text("\n".join([*lines, lines[1][:-1] + "1"]) + "\n")  # another loss
    assert main(["fit", str(seeds), "--bootstrap", "0", "--json"]) == 0
    assert not any("twice" in w for w in json.loads(capsys.readouterr().out)["warnings"])


def test_c_is_6nd_for_laws_of_c_alone_and_a_derived_value_out_of_range_is_the_rows(
    tmp_path, capsys
):
    """docs/laws.md: without a C column, C = 6ND. power-c and isoflop refused a params/tokens
    table ('needs FLOPs C, and no column was found'); and a tokens cell of 1e300 made C inf
    with a numpy overflow warning, then 'predict: C[0] is inf' naming no row."""
    path, lines = nd_csv(tmp_path / "nd.csv", 4)
    assert main(["fit", str(path), "--law", "power-c", "--bootstrap", "0", "--json"]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["conventions"]["C"] == "6ND" and fit["data"]["C_range"] == pytest.approx(
        [6e16, 6e20]
    )
    lines[5] = "1e8,1e300,3.1"
    path.write_text("\n".join(lines) + "\n")
    err = one_line_error(capsys, ["fit", str(path), "--law", "power-c", "--bootstrap", "0"])
    assert (
        err
        == f"error: {path}: line 6: C = 6ND is inf from 'params' 1e8, 'tokens' 1e300: out of range\n"
    )
    for bad, shown in [("-1", "-1"), ("0", "0"), ("nan", "nan")]:
        err = one_line_error(
            capsys, ["fit", str(path), "--law", "isoflop", "--budgets", "1e19", bad]
        )
        assert err == f"error: --budgets must be FLOPs > 0, got {shown}\n"


@pytest.mark.parametrize("command", ["fit", "backtest"])
def test_an_out_that_cannot_be_written_is_refused_before_the_fit(tmp_path, capsys, command):
    """--out in a folder that does not exist failed with exit 1 after the whole fit and
    its bootstrap had run; a folder given for the file failed the same way."""
    path = _write(tmp_path, GOOD)
    missing = tmp_path / "nope" / "fit.json"
    err = one_line_error(capsys, [command, path, "--out", str(missing)])
    assert err == f"error: --out {missing}: the folder {missing.parent} does not exist\n"
    err = one_line_error(capsys, [command, path, "--out", str(tmp_path)])
    assert err.startswith(f"error: --out {tmp_path} is a folder; give the ")
    assert not missing.parent.exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", ["fit", "backtest"])
def test_an_out_in_a_folder_that_takes_no_files_names_the_flag_before_the_fit(
    tmp_path, capsys, command
):
    """/proc takes no new files (not even as root): --out there failed after the fit with
    'error: /proc/x.json: No such file or directory', exit 1, naming neither the flag nor
    the folder."""
    path = _write(tmp_path, GOOD)
    err = one_line_error(capsys, [command, path, "--out", "/proc/x.json"])
    assert err == "error: --out /proc/x.json: cannot write in /proc: No such file or directory\n"


@pytest.mark.parametrize("flag", ["--out", "--csv"])
def test_runs_out_that_cannot_be_written_is_refused_naming_the_flag(tmp_path, capsys, flag):
    """runs --out into a missing folder was 'error: X: No such file or directory', exit 1,
    after every run folder was read; a folder given for the file: 'Is a directory' (--csv,
    --format csv) or 'cannot tell the format from the suffix' (--out). Both name the flag."""
    missing = tmp_path / "nope" / "runs.csv"
    err = one_line_error(capsys, ["runs", str(tmp_path), flag, str(missing)])
    assert err == f"error: {flag} {missing}: the folder {missing.parent} does not exist\n"
    (tmp_path / "t.csv").mkdir()
    err = one_line_error(capsys, ["runs", str(tmp_path), flag, str(tmp_path / "t.csv")])
    assert (
        err == f"error: {flag} {tmp_path / 't.csv'} is a folder; give the runs table's file name\n"
    )
    assert not missing.parent.exists()


def test_a_law_of_one_variable_is_calibrated_by_it_only(tmp_path, capsys):
    """power-c --calibrate N was an AxisError traceback after the fit (power-c reads C
    alone); it is refused before fitting. A study's power-c fits (its frontier and rays)
    take calibrate N or D from the one [fit] table as none."""
    path = runs_csv(tmp_path)
    for law, by in (("power-c", "N"), ("power-c", "D"), ("power-n", "C")):
        argv = ["fit", str(path), "--law", law, "--calibrate", by, "--bootstrap", "0"]
        assert main(argv) == 2
        x = law[-1].upper()
        assert capsys.readouterr().err == (
            f"error: --calibrate {by} does not apply to law '{law}', which predicts from "
            f"{x} alone: give --calibrate {x} (or none)\n"
        )
    argv = ["fit", str(path), "--law", "power-c", "--calibrate", "C", "--bootstrap", "0"]
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calibration"]["by"] == "C"
    from scalinglab.laws.settings import FitConfig
    from scalinglab.plan.analysis import power_c_settings

    assert power_c_settings(FitConfig(calibrate="N"))["calibrate"] == "none"
    assert power_c_settings(FitConfig(calibrate="C"))["calibrate"] == "C"


def test_kaplan_on_a_few_rows_prints_no_numpy_warning(tmp_path, capsys):
    """Trial points of the optimiser far out overflowed aD·S in Kaplan's objective, and
    numpy printed 'RuntimeWarning: overflow encountered in multiply' (harmless: inf is
    stepped back from); the fit is the same without it."""
    import warnings

    rng = np.random.default_rng(1)
    lines = ["params,tokens,loss"]
    for N, D in [(1e7, 2e8), (3e7, 6e8), (1e8, 2e9), (1e7, 2e9), (1e8, 2e8), (3e8, 6e9)]:
        L = 1.7 + 400 / N**0.34 + 1200 / D**0.28
        lines.append(f"{N:g},{D:g},{L * np.exp(rng.normal(0, 0.003)):.5f}")
    path = tmp_path / "six.csv"
    path.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert main(["fit", str(path), "--law", "kaplan", "--bootstrap", "0", "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    p = json.loads(out)["params"]
    assert p["alpha_D"] == pytest.approx(0.2605, rel=1e-3)
    assert p["alpha_N"] == pytest.approx(0.1182, rel=1e-3)


def test_too_few_points_names_the_filters_that_removed_rows(tmp_path, capsys):
    """'4 points for law ...' did not say that --where (or --holdout-where, or the default
    status=completed) removed the rest: now it gives the table's rows and each filter's."""
    path = tmp_path / "runs.csv"
    rows = [(1e7 * 2**i, 1e9 * 2 ** (i // 2), 3.5 - 0.1 * i) for i in range(8)]
    status = ["completed"] * 3 + ["failed"] + ["completed"] * 4
    lines = [f"{n},{d},{x},{s}\n" for (n, d, x), s in zip(rows, status, strict=True)]
    path.write_text("N,D,loss,status\n" + "".join(lines))
    assert main(["fit", str(path), "--bootstrap", "0", "--where", "N<1e8"]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: 3 points for law 'chinchilla', which has 5 parameters; at least 5 "
        "points are needed (8 rows in runs.csv, 4 removed by --where N<1e8, 1 by the default "
        "filter status=completed)\n"
    )
    curves = tmp_path / "c.csv"
    curves.write_text(
        "run,step,lr,loss,split\na,10,0.1,3.0,fit\na,20,0.1,2.9,fit\na,30,0.05,2.8,fit\n"
        "b,10,0.1,3.0,test\nb,20,0.1,2.9,test\nb,30,0.1,2.85,test\nc,10,0.1,3.1,fit\n"
    )
    argv = ["fit", str(curves), "--law", "lr-annealing", "--run-col", "run", "--bootstrap", "0"]
    assert main([*argv, "--where", "step<30", "--holdout-where", "split=test"]) == 2
    assert capsys.readouterr().err == (
        f"error: {curves}: 3 points for law 'lr-annealing', which has 4 parameters (7 rows in "
        "c.csv, 2 removed by --where step<30, 2 by --holdout-where split=test)\n"
    )

    # --holdout-frac 0.2 takes 2 of 6 rows out before the fit: said as --where's are
    six = tmp_path / "six.csv"
    six.write_text("".join(["N,D,loss\n", *(f"{n},{d},{x}\n" for n, d, x in rows[:6])]))
    assert main(["fit", str(six), "--bootstrap", "0", "--holdout-frac", "0.2"]) == 2
    assert capsys.readouterr().err == (
        f"error: the backtest's fit of the 4 of 6 rows at or below C = 9.6e+17 (2 held out): "
        f"{six}: 4 points for law 'chinchilla', which has 5 parameters; at least 5 points "
        "are needed\n"
    )


def test_isoflop_refuses_a_budget_column_of_token_budgets(tmp_path, capsys):
    """A grid sweep of token budgets (budget_kind tokens) writes D to the runs table's
    budget column; fit --law isoflop grouped the runs by it as FLOP budgets and fitted
    N_opt against C of token counts."""
    path = tmp_path / "runs.csv"
    lines = ["run_id,params,tokens,flops,loss,budget,budget_kind"]
    for d in (1e6, 4e6):
        for n in (1e4, 3e4, 1e5):
            loss = 1 + 50 / n**0.4 + 300 / d**0.35
            lines.append(f"r{n:g}-{d:g},{n},{d},{6 * n * d},{loss},{d},tokens")
    path.write_text("\n".join(lines) + "\n")
    assert main(["fit", str(path), "--law", "isoflop"]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: column budget holds budgets in tokens (column budget_kind), not "
        "FLOPs: these runs are no IsoFLOP profiles; fit them with --law chinchilla\n"
    )
    # the law of a grid fits them
    assert main(["fit", str(path), "--law", "chinchilla", "--bootstrap", "0"]) == 0


def test_plan_text_prints_each_interval_low_end_first(tmp_path, capsys):
    """`plan --flops C` prints `key=value [lo, hi]`: the lower end first, the value inside
    it, and the same numbers as --json."""
    fit = tmp_path / "fit.json"
    assert main(["fit", str(runs_csv(tmp_path)), "--bootstrap", "50", "--out", str(fit)]) == 0
    capsys.readouterr()
    assert main(["plan", str(fit), "--flops", "1e20", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert main(["plan", str(fit), "--flops", "1e20"]) == 0
    text = capsys.readouterr().out
    for key in ("params", "tokens", "loss"):
        m = re.search(rf"\b{key}=({NUM}) \[({NUM}), ({NUM})\]", text)
        v, lo, hi = map(float, m.groups())
        assert lo <= v <= hi and lo < hi
        assert [lo, hi] == pytest.approx(row[f"{key}_ci"], rel=1e-3)


def test_fit_report_text_prints_values_intervals_and_backtest_counts(tmp_path, capsys):
    """The fit's text report: each parameter's value to 6 significant digits, its interval
    low end first, and the backtest line's counts and mean error as fit.json has them."""
    path = runs_csv(tmp_path)
    out = tmp_path / "fit.json"
    argv = ["fit", str(path), "--bootstrap", "30", "--holdout-frac", "0.2", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    obj = json.loads(out.read_text())
    for k, v in obj["params"].items():
        line = next(ln for ln in text.splitlines() if ln.split() and ln.split()[0] == k)
        assert f"{v:.6g}" in line.split()
        lo, hi = obj["ci"][k]
        assert f"[{lo:.6g}, {hi:.6g}]" in line and lo <= hi
    bt = obj["backtest"]
    assert bt["n_train"] > bt["n_test"]  # 80% fitted, 20% held out
    assert (f"fit on {bt['n_train']} cheaper runs, predicted {bt['n_test']} held out") in text
    assert f"mean |rel. error| {bt['mean_abs_rel_error']:.3%}" in text
    assert bt["mean_abs_rel_error"] != bt["max_abs_rel_error"]
