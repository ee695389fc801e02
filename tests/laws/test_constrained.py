"""The data-constrained law (Muennighoff et al. 2023): known answers and the published refit."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.errors import ExtrapolationWarning
from scalinglab.laws import ScalingLaw, load_fit
from scalinglab.laws.constrained import ConstrainedTable, DataConstrained, fit_constrained
from scalinglab.laws.optimal import allocate
from scalinglab.plan import unique_tokens_allocation
from tests.laws.synth import with_draws

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "scaling_data"
DATABLATIONS = DATA / "datablations_val_losses.csv"
# The published refit: A, B, E, alpha = beta from the authors' Chinchilla fit on C4
# (held fixed, as in their utils/parametric_fit notebook), R*_D and R*_N fitted.
PUBLISHED = {
    "A": float(np.exp(6.255414)),  # 520.8
    "B": float(np.exp(7.3049974)),  # 1487.7
    "E": float(np.exp(0.6254804)),  # 1.869
    "alpha": 0.3526596,
    "R_D": 15.387756,
    "R_N": 5.309743,
}
NOTEBOOK_MIN = 0.015825936570763588  # the notebook's printed minimum of the summed Huber loss
# The notebook fits the rows of its later NAMES_TO_VAL_LOSSES (182 runs); the shared CSV
# holds its first, larger dict (296 runs) in the same order. These lines of the CSV
# (1-based, header = line 1) are the runs the later dict leaves out.
LEFT_OUT = [(2, 6), (9, 41), (49, 50), (55, 89), (96, 96), (107, 107), (121, 121), (126, 126),
            (146, 149), (155, 157), (219, 219), (224, 224), (229, 229), (234, 234), (246, 246),
            (253, 254), (256, 260), (263, 263), (266, 268), (272, 273), (276, 277), (280, 281),
            (291, 291), (293, 297)]  # fmt: skip


def notebook_rows():
    with DATABLATIONS.open() as f:
        rows = list(csv.DictReader(f))
    keep = [r for i, r in enumerate(rows, 2) if not any(a <= i <= b for a, b in LEFT_OUT)]
    cols = ("N_params", "D_tokens", "U_unique_tokens", "val_loss")
    return ConstrainedTable(*(np.array([float(r[c]) for r in keep]) for c in cols))


def fixed_form():
    fix = {k: PUBLISHED[k] for k in ("A", "B", "E", "alpha")}
    return DataConstrained(fix=fix, tie=True)


@pytest.mark.skipif(not DATABLATIONS.is_file(), reason="../shared/scaling_data is absent")
def test_reproduces_the_published_datablations_refit():
    t = notebook_rows()
    assert len(t) == 182
    form = fixed_form()
    # the same law, rows and loss as the notebook: its minimum, at its parameters
    f, _ = form.objective(t)(np.log([[PUBLISHED["R_D"], PUBLISHED["R_N"]]]), np.arange(1))
    assert f[0] == pytest.approx(NOTEBOOK_MIN, rel=1e-6)
    # from the centre of the authors' grid of starts, our optimiser reaches their refit
    res = fit_constrained(form, t, starts=[[40 / 3, 40 / 3]])
    got = {k: float(v[0]) for k, v in form.natural(res["theta"]).items()}
    for k, v in PUBLISHED.items():
        assert got[k] == pytest.approx(v, rel=0.01), k
    assert got["beta"] == got["alpha"]
    # the valley is flat: the default grid finds a point a little lower still, at larger R*_D
    law = ScalingLaw(
        "data-constrained", tie=["alpha=beta"], bootstrap=0,
        fix=[f"{k}={PUBLISHED[k]!r}" for k in ("A", "B", "E", "alpha")],
    ).fit(t)  # fmt: skip
    # the objective's other minimum (docs/laws.md), reached from one start of the grid
    assert law.objective_ == pytest.approx(0.0158074, rel=1e-4)
    assert law.params_["R_D"] == pytest.approx(47.0, rel=0.01)
    assert law.params_["R_N"] == pytest.approx(2.33, rel=0.01)


def test_the_parameters_worth_unique_tokens_are_chinchillas_optimum_where_they_run_out():
    """U_N (Muennighoff et al.) is the compute-optimal N of the budget whose optimal D is
    U: with α ≠ β (every other test ties them, where β/α and α/β are alike)."""
    p = {"A": 400.0, "B": 1200.0, "E": 1.8, "alpha": 0.5, "beta": 0.25, "R_D": 12.0, "R_N": 4.0}
    U = 1e9
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    C = 6 * (G * U) ** ((p["alpha"] + p["beta"]) / p["alpha"])  # D_opt(C) = (C/6)^a / G = U
    N_opt, D_opt, _ = allocate("chinchilla", p, C)
    assert D_opt == pytest.approx(U, rel=1e-12)
    _, UN, RN, RD = DataConstrained.repeats(p, 1e15, 4e9, U)
    assert pytest.approx(N_opt, rel=1e-12) == UN
    assert (pytest.approx(1e15 / N_opt - 1, rel=1e-12), 3.0) == (RN, RD)


def test_known_law_is_recovered(tmp_path):
    true = {"A": 400.0, "B": 1200.0, "E": 1.8, "alpha": 0.34, "beta": 0.34, "R_D": 12.0, "R_N": 4.0}
    form = DataConstrained()
    rows = ["N,D,U,loss"]
    for N in np.geomspace(1e7, 3e9, 5):
        for U in (1e8, 1e9, 1e10):
            for epochs in (1, 2, 4, 8, 16, 40):
                D = U * epochs
                rows.append(f"{N:.6g},{D:.6g},{U:.6g},{form.predict(true, N, D, U):.8g}")
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "fit.json"
    argv = ["fit", str(path), "--law", "data-constrained", "--tie", "alpha=beta", "--fix", "E=1.8"]
    assert main([*argv, "--u-col", "U", "--bootstrap", "0", "--out", str(out)]) == 0
    law = load_fit(out)
    for k, v in true.items():
        assert law.params_[k] == pytest.approx(v, rel=0.01), k
    # repetition: 4 epochs of U are worth less than 4U unique tokens, more than U
    N, U = 1e9, 1e9
    rep, fresh = law.predict(N=N, D=4 * U, U=U), law.predict(N=N, D=4 * U, U=4 * U)
    assert fresh < rep < law.predict(N=N, D=U, U=U)
    assert json.loads(out.read_text())["conventions"]["fixed"] == ["E"]


def test_bad_tie_and_fix(tmp_path, capsys):
    path = tmp_path / "r.csv"
    path.write_text("N,D,U,loss\n1e8,1e9,1e9,3.0\n2e8,1e9,1e9,2.9\n")
    for argv, msg in [
        (["--tie", "A=B"], "ties only alpha=beta"),
        (["--fix", "Q=1"], "expected NAME=VALUE"),
        (["--fix", "A=x"], "'x' is not a number"),
        (["--u-col", "uniq"], "--u-col 'uniq': no such column"),
        # every parameter held: a ValueError traceback from the grid of starts
        (
            ["--tie", "alpha=beta", *(f"--fix={k}={v}" for k, v in TRUE.items() if k != "beta")],
            "--fix: every parameter of --law data-constrained is held (--tie alpha=beta holds "
            "beta with alpha); none is left to fit",
        ),
        (
            [*(f"--fix={k}={v}" for k, v in TRUE.items())],
            "--fix: every parameter of --law data-constrained is held; none is left to fit",
        ),
    ]:
        assert main(["fit", str(path), "--law", "data-constrained", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and msg in err and err.count("\n") == 1, err


def test_plan_unique_tokens(tmp_path, capsys):
    p = {"A": 400.0, "B": 1200.0, "E": 1.8, "alpha": 0.34, "beta": 0.30, "R_D": 12.0, "R_N": 4.0}
    law = ScalingLaw("data-constrained", bootstrap=0)
    law.params_ = dict(p)
    law.samples_ = None
    C = 1e21
    # plenty of unique data: Chinchilla's compute-optimal allocation
    row = unique_tokens_allocation(law, [C], 1e18)[0]
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    n_opt = G * (C / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))
    assert row["params"] == pytest.approx(n_opt, rel=1e-3)
    # scarce data: repeated for several epochs, at the lowest loss along C = 6ND
    U = 2e9
    row = unique_tokens_allocation(law, [C], U)[0]
    assert row["epochs"] == pytest.approx(row["tokens"] / U) and row["epochs"] > 1
    N = row["params"]
    for n in (N / 1.05, N * 1.05):
        assert law.predict(N=n, D=C / (6 * n), U=U) > row["loss"]
    assert row["loss"] == pytest.approx(law.predict(N=N, D=C / (6 * N), U=U), rel=1e-9)
    # the Python API plans it too (plan_run had no unique_tokens: it could not)
    from scalinglab import plan_run
    from scalinglab.errors import ConfigError

    assert plan_run(law, flops=C, unique_tokens=U) == row
    assert plan_run(law, flops=[C, 1e22], unique_tokens=U)[0] == row
    with pytest.raises(ConfigError, match="goes with flops=C"):
        plan_run(law, params=1e9, flops=C, unique_tokens=U)
    # without U, as `scalinglab plan` says: flops alone was told to 'use chinchilla,
    # isoflop or envelope', params=N that the law 'predicts from N, D and U'
    for kw in ({"flops": C}, {"params": 1e9, "flops": C}, {"target_loss": 2.5}):
        with pytest.raises(
            ConfigError,
            match=r"^plan_run: a data-constrained fit plans with flops=C \(or a list\) and "
            r"unique_tokens=U, the unique tokens there are$",
        ):
            plan_run(law, **kw)


def test_plan_unique_tokens_is_not_capped_at_large_budgets():
    # the first bracket stopped D at e^30 = 1.07e13 tokens: every budget past ~1e25 got it
    p = {"A": 520.8, "B": 1487.7, "E": 1.869, "alpha": 0.3527, "beta": 0.3527, "R_D": 15.39,
         "R_N": 5.31}  # fmt: skip
    law = ScalingLaw("data-constrained", bootstrap=0)
    law.params_, law.samples_ = dict(p), None
    for C, U in ((1e26, 1e18), (1e27, 1e18), (1e29, 1e13), (1e18, 1e8)):
        row = unique_tokens_allocation(law, [C], U)[0]
        # a dense scan of the law along C = 6ND
        N = np.geomspace(1.0, C / 6.0, 400_001)
        L = DataConstrained.predict(p, N, C / (6 * N), U)
        i = int(np.argmin(L))
        assert row["params"] == pytest.approx(N[i], rel=1e-3), (C, U)
        assert row["tokens"] == pytest.approx(C / (6 * N[i]), rel=1e-3), (C, U)
        assert row["loss"] == pytest.approx(L[i], rel=1e-9), (C, U)
    assert unique_tokens_allocation(law, [1e27], 1e18)[0]["tokens"] > 5e13


def test_a_repetition_parameter_at_its_limit_gets_a_warning_not_an_interval():
    # runs whose repeated data cost nothing (R_D -> inf) and whose excess parameters add
    # nothing (R_N -> 0): the fit can only run both towards their limits, where the objective
    # is flat and every bootstrap draw repeats the fit (a zero-width interval, were it given)
    true = {"A": 400.0, "B": 1200.0, "E": 1.8, "alpha": 0.34, "beta": 0.34, "R_D": 1e9,
            "R_N": 1e-9}  # fmt: skip
    rows = [(N, U * ep, U) for N in np.geomspace(1e7, 3e9, 5) for U in (1e8, 1e9, 1e10)
            for ep in (1, 2, 4, 8, 16)]  # fmt: skip
    N, D, U = (np.array(c) for c in zip(*rows, strict=True))
    fix = ["A=400", "B=1200", "E=1.8", "alpha=0.34"]
    law = ScalingLaw("data-constrained", tie=["alpha=beta"], fix=fix, bootstrap=20)
    law.fit({"N": N, "D": D, "U": U, "L": DataConstrained.predict(true, N, D, U)})
    assert law.params_["R_D"] > 1e4 and law.params_["R_N"] < 1e-4
    said = " ".join(law.warnings_)
    assert "R_D ran to" in said and "R_N ran to" in said
    assert "R_D" not in law.ci_ and "R_N" not in law.ci_
    assert law.ci_["A"] == pytest.approx([400.0, 400.0])  # held by --fix: known exactly
    # a law whose repetition the runs do feel keeps its intervals and says nothing of limits
    true.update(R_D=12.0, R_N=4.0)
    rng = np.random.default_rng(0)
    L = DataConstrained.predict(true, N, D, U) * np.exp(rng.normal(0, 0.003, len(N)))
    law.fit({"N": N, "D": D, "U": U, "L": L})
    assert "ran to" not in " ".join(law.warnings_)
    for k in ("R_D", "R_N"):
        lo, hi = law.ci_[k]
        assert lo < true[k] < hi, k


TRUE = {"A": 400.0, "B": 1200.0, "E": 1.8, "alpha": 0.34, "beta": 0.34, "R_D": 12.0, "R_N": 4.0}
HELD = ["--tie", "alpha=beta", "--fix", "A=400", "--fix", "B=1200", "--fix", "E=1.8",
        "--fix", "alpha=0.34"]  # fmt: skip


def known_runs():
    """(N, D, U, L) of 90 runs of the law TRUE, exactly."""
    rows = [(float(N), U * ep, U) for N in np.geomspace(1e7, 3e9, 5) for U in (1e8, 1e9, 1e10)
            for ep in (1, 2, 4, 8, 16, 40)]  # fmt: skip
    return [(N, D, U, float(DataConstrained.predict(TRUE, N, D, U))) for N, D, U in rows]


def fit_json(capsys, path, *flags):
    argv = ["fit", str(path), "--law", "data-constrained", *HELD, "--json", *flags]
    assert main([*argv, "--bootstrap", "0"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_the_data_constrained_fit_reads_its_table_as_every_law_does(tmp_path, capsys):
    """Its own CSV reader ignored the status column, --min-over, --where on U, --drop-highest
    and --n-kind, and a short row was a TypeError traceback."""
    runs = known_runs()
    lines = ["params,params_nonembed,tokens,unique_tokens,loss,lr,status"]
    for N, D, U, L in runs:
        lines.append(f"{N!r},{0.9 * N!r},{D!r},{U!r},{L!r},1e-3,completed")
    for N, D, U, L in runs[:10]:  # a worse learning rate for ten of them
        lines.append(f"{N!r},{0.9 * N!r},{D!r},{U!r},{1.1 * L!r},3e-3,completed")
    for N, D, U, _ in runs[:5]:  # diverged runs: their loss is no measurement
        lines.append(f"{N!r},{0.9 * N!r},{D!r},{U!r},9.0,1e-3,diverged")
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(lines) + "\n")
    assert fit_json(capsys, path)["n_points"] == 100  # the 5 diverged rows left out
    out = fit_json(capsys, path, "--min-over", "lr")
    assert out["n_points"] == 90
    assert out["params"]["R_D"] == pytest.approx(12.0, rel=1e-3)
    assert out["params"]["R_N"] == pytest.approx(4.0, rel=1e-3)
    assert out["conventions"]["U"] == "unique_tokens"
    assert fit_json(capsys, path, "--min-over", "lr", "--where", "U>=1e9")["n_points"] == 60
    assert fit_json(capsys, path, "--min-over", "lr", "--drop-highest", "3")["n_points"] == 87
    out = fit_json(capsys, path, "--min-over", "lr", "--n-kind", "params_nonembed")
    assert out["conventions"]["N"] == "params_nonembed"
    short = tmp_path / "short.csv"
    short.write_text("N,D,U,loss\n1e8,1e9,1e9,3.0\n2e8,1e9,1e9\n")
    assert main(["fit", str(short), "--law", "data-constrained", "--bootstrap", "0"]) == 2
    assert capsys.readouterr().err == f"error: {short}: line 3: 3 fields, the header has 4\n"


def test_data_constrained_checkpoints_resample_whole_runs(tmp_path, capsys):
    """--checkpoints --run-col: the bootstrap draws runs, not rows (it drew rows). Every run
    here has two identical rows, so each draw weighs a run as the one-row table's draw of
    the same seed does, and the draws agree (run names sort as the rows: runs are drawn in
    sorted order)."""
    rng = np.random.default_rng(0)
    runs = [(N, D, U, L * float(np.exp(rng.normal(0, 0.01)))) for N, D, U, L in known_runs()]
    once, twice = tmp_path / "once.csv", tmp_path / "twice.csv"
    once.write_text("run,N,D,U,loss\n" + "".join(
        f"r{i:03d},{N!r},{D!r},{U!r},{L!r}\n" for i, (N, D, U, L) in enumerate(runs)))  # fmt: skip
    twice.write_text("run,N,D,U,loss\n" + "".join(
        f"r{i:03d},{N!r},{D!r},{U!r},{L!r}\n" for i, (N, D, U, L) in enumerate(runs)
        for _ in range(2)))  # fmt: skip
    flags = ["fit", "--law", "data-constrained", *HELD, "--bootstrap", "20", "--json"]
    assert main([*flags, str(once)]) == 0
    a = json.loads(capsys.readouterr().out)["bootstrap"]["samples"]
    argv = [*flags, str(twice), "--checkpoints", "--run-col", "run"]
    assert main(argv) == 0
    b = json.loads(capsys.readouterr().out)["bootstrap"]["samples"]
    for k in ("R_D", "R_N"):
        assert np.std(a[k]) > 0
        np.testing.assert_allclose(b[k], a[k], rtol=1e-4, err_msg=k)


def test_fit_holdout_backtests_the_data_constrained_law(tmp_path, capsys):
    """--holdout-frac was silently ignored for data-constrained (no backtest, exit 0)."""
    runs = known_runs()
    path = tmp_path / "runs.csv"
    path.write_text("N,D,U,loss\n" + "".join(f"{N!r},{D!r},{U!r},{L!r}\n" for N, D, U, L in runs))
    bt = fit_json(capsys, path, "--holdout-frac", "0.2")["backtest"]
    C = np.array([6 * N * D for N, D, _, _ in runs])
    assert (bt["n_train"], bt["n_test"]) == (72, 18)
    assert bt["threshold"] == pytest.approx(np.sort(C)[71])
    train = [r for r, c in zip(runs, C, strict=True) if c <= bt["threshold"]]
    law = ScalingLaw("data-constrained", bootstrap=0, tie=["alpha=beta"],
                     fix=["A=400", "B=1200", "E=1.8", "alpha=0.34"])  # fmt: skip
    law.fit(dict(zip("NDUL", map(np.array, zip(*train, strict=True)), strict=True)))
    for p in bt["points"]:
        assert p["predicted"] == pytest.approx(law.predict(N=p["N"], D=p["D"], U=p["U"]))
        assert abs(p["rel_error"]) < 1e-4  # the law that made the runs
    for law_name in ("envelope", "lr-opt"):  # refused before fitting, as isoflop was after
        assert main(["fit", str(path), "--law", law_name, "--holdout-frac", "0.2"]) == 2
        err = capsys.readouterr().err
        assert (
            err
            == f"error: --law {law_name}: a backtest needs a law that predicts each run's loss\n"
        )


def test_unique_tokens_far_outside_the_fitted_ones_are_warned(tmp_path, capsys):
    """fit.json recorded no range of U: `plan --unique-tokens 1e14` on a fit of U from 1e8
    to 1e10 (a units slip, or a corpus 10,000x any fitted) and predict(U=1e14) answered
    without a word, though N, D and C far outside theirs are warned of."""
    path = tmp_path / "runs.csv"
    lines = [f"{N!r},{D!r},{U!r},{L!r}" for N, D, U, L in known_runs()]
    path.write_text("\n".join(["N,D,U,loss", *lines]) + "\n")
    out = tmp_path / "fit.json"
    argv = ["fit", str(path), "--law", "data-constrained", *HELD, "--bootstrap", "0"]
    assert main([*argv, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["data"]["U_range"] == [1e8, 1e10]
    law = load_fit(out)
    assert law.ranges_["U"] == [1e8, 1e10]
    capsys.readouterr()
    assert main(["plan", str(out), "--flops", "1e20", "--unique-tokens", "1e14"]) == 0
    assert capsys.readouterr().err == (
        "warning: extrapolating: U=1e+14 is 4.0 decades above the largest U fitted (1e+10)\n"
    )
    assert main(["plan", str(out), "--flops", "1e20", "--unique-tokens", "1e10"]) == 0
    assert capsys.readouterr().err == ""
    with pytest.warns(ExtrapolationWarning, match=r"U=1e\+15 is 1e\+05x above the largest U"):
        law.predict(N=1e9, D=1e11, U=1e15)  # predict's bar above is 1e4x (warn.ABOVE)
    fitted = ScalingLaw("data-constrained", bootstrap=0, tie=["alpha=beta"],
                        fix=[x for x in HELD[3::2]]).fit(path)  # fmt: skip
    with pytest.warns(ExtrapolationWarning, match=r"U=1e\+05 is 1e\+03x below the smallest U"):
        fitted.predict(N=1e9, D=1e11, U=1e5)


def test_unique_tokens_plan_intervals_are_those_of_each_draws_own_optimum():
    p = {"A": 400.0, "B": 1200.0, "E": 1.8, "alpha": 0.34, "beta": 0.30, "R_D": 12.0, "R_N": 4.0}
    law = with_draws("data-constrained", p, 0.05, k=60)
    C, U = 1e21, 2e9
    row = unique_tokens_allocation(law, [C], U)[0]
    q = 100 * (1 - law.settings["ci_level"]) / 2
    # each draw's own optimum along C = 6ND, found by a dense scan
    n = np.geomspace(1e6, 1e13, 200_001)
    Nd = []
    for i in range(60):
        pi = {k: law.samples_[k][i] for k in p}
        Nd.append(n[np.argmin(DataConstrained.predict(pi, n, C / (6 * n), U))])
    Nd = np.array(Nd)
    Dd = C / (6 * Nd)
    for key, x in (("params", Nd), ("tokens", Dd), ("epochs", Dd / U)):
        lo, hi = np.percentile(x, [q, 100 - q])
        assert row[f"{key}_ci"] == pytest.approx([lo, hi], rel=2e-3), key
    assert row["tokens_ci"][0] < row["tokens"] < row["tokens_ci"][1]


def test_data_constrained_fit_records_the_compute_of_its_runs():
    p = {"A": 400.0, "B": 1200.0, "E": 1.8, "alpha": 0.34, "beta": 0.34, "R_D": 12.0, "R_N": 4.0}
    rng = np.random.default_rng(1)
    N = np.repeat([1e7, 3e7, 1e8, 3e8], 4)
    D = np.tile([1e8, 4e8, 1.6e9, 6.4e9], 4)
    U = np.full_like(N, 4e8)
    L = DataConstrained.predict(p, N, D, U) * (1 + 1e-3 * rng.standard_normal(N.size))
    law = ScalingLaw("data-constrained", bootstrap=0, tie=["alpha=beta"]).fit(
        {"N": N, "D": D, "U": U, "L": L}
    )
    lo, hi = law.data_["C_range"]
    assert (lo, hi) == pytest.approx((6 * 1e7 * 1e8, 6 * 3e8 * 6.4e9), rel=1e-12)


def test_tied_exponents_with_a_fixed_beta_hold_alpha_at_it():
    form = DataConstrained(fix={"beta": 0.3}, tie=True)
    nat = form.natural(np.zeros((1, len(form.free))))
    assert nat["alpha"][0] == pytest.approx(0.3) and nat["beta"][0] == pytest.approx(0.3)


def test_r_n_is_at_its_limit_only_where_some_run_has_parameters_to_spare():
    """at_limit: R_N's limit (0) is only a bound the runs set where a run has parameters
    beyond U_N, the size its unique tokens make worth having. Runs far below it (no
    excess) cannot bound R_N at all: no warning. The same R_N with one oversized run is."""
    from scalinglab.laws.constrained import at_limit

    p = {"A": 520.8, "B": 1487.7, "E": 1.869, "alpha": 0.3527, "beta": 0.3527, "R_D": 15.39,
         "R_N": 1e-5}  # fmt: skip
    form = DataConstrained()
    small = ConstrainedTable.__new__(ConstrainedTable)
    U = np.full(3, 1e10)
    small.N, small.D, small.U = np.array([1e6, 2e6, 4e6]), np.full(3, 1e10), U
    assert form.repeats(p, small.N, small.D, U)[2].max() == 0
    assert "R_N" not in at_limit(form, p, small)
    big = ConstrainedTable.__new__(ConstrainedTable)
    big.N, big.D, big.U = np.array([1e6, 2e6, 1e12]), np.full(3, 1e10), U
    assert form.repeats(p, big.N, big.D, U)[2][2] > 1  # U_N ~5e8 here
    assert "R_N ran to 1e-05, its limit 0" in at_limit(form, p, big)["R_N"]


def test_a_data_constrained_interval_with_unique_data_to_spare_does_not_depend_on_u():
    """With D <= U no token is repeated (R_D = max(D/U - 1, 0) = 0), so every draw's
    prediction, and the interval, are those at U = D: more unique data changes nothing."""
    rng = np.random.default_rng(0)
    rows = [(N, U * ep, U) for N in np.geomspace(1e7, 3e9, 5) for U in (1e8, 1e9, 1e10)
            for ep in (1, 2, 4, 8, 16, 40)]  # fmt: skip
    N, D, U = (np.array(c) for c in zip(*rows, strict=True))
    R_D = 15.0
    Dp = U + U * R_D * (1 - np.exp(-np.maximum(D / U - 1, 0) / R_D))  # tokens' worth, D'
    L = (1.8 + 400 / N**0.34 + 1200 / Dp**0.34) * np.exp(0.01 * rng.standard_normal(N.size))
    law = ScalingLaw("data-constrained", bootstrap=20, seed=1, tie=["alpha=beta"],
                     fix=["A=400", "B=1200", "E=1.8", "alpha=0.34"])  # fmt: skip
    law.fit({"N": N, "D": D, "U": U, "L": L})
    n, d = 3e8, 2e9
    at_d = law.predict(N=n, D=d, U=d, return_ci=True)
    assert at_d[1] <= at_d[0] <= at_d[2]
    for u in (4e9, 1e11):
        assert law.predict(N=n, D=d, U=u, return_ci=True) == pytest.approx(at_d, rel=1e-12)


def test_a_data_constrained_interval_is_the_percentile_interval_of_its_draws_predictions():
    """predict(N, D, U, return_ci=True) where the data repeats (D = 4U): the interval is the
    central 95% of the bootstrap draws' own predictions at that (N, D, U), computed here
    from law.samples_ with the law's formula."""
    rng = np.random.default_rng(2)
    rows = [(N, U * ep, U) for N in np.geomspace(1e7, 3e9, 5) for U in (1e8, 1e9, 1e10)
            for ep in (1, 2, 4, 8, 16, 40)]  # fmt: skip
    N, D, U = (np.array(c) for c in zip(*rows, strict=True))
    p = {"A": 400.0, "B": 1200.0, "E": 1.8, "alpha": 0.34, "beta": 0.34, "R_D": 15.0, "R_N": 5.0}
    L = DataConstrained.predict(p, N, D, U) * np.exp(0.01 * rng.standard_normal(N.size))
    law = ScalingLaw("data-constrained", bootstrap=30, seed=1, tie=["alpha=beta"]).fit(
        {"N": N, "D": D, "U": U, "L": L}
    )
    n, d, u = 3e8, 8e9, 2e9
    point, lo, hi = law.predict(N=n, D=d, U=u, return_ci=True)
    draws = DataConstrained.predict({k: np.asarray(v) for k, v in law.samples_.items()}, n, d, u)
    assert point == pytest.approx(DataConstrained.predict(law.params_, n, d, u), rel=1e-12)
    assert [lo, hi] == pytest.approx(np.nanpercentile(draws, [2.5, 97.5]).tolist(), rel=1e-12)
    assert lo < point < hi
