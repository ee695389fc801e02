"""Approach 2 (IsoFLOP parabolas) and Approach 1 (envelope of curves) on data from a known law."""

from pathlib import Path

import numpy as np
import pytest

from scalinglab.errors import DataError, FitError
from scalinglab.laws import ScalingLaw
from scalinglab.laws.envelope import Curves, fit_envelope
from scalinglab.laws.isoflop import group_budgets
from scalinglab.laws.table import read_table
from tests.conftest import shared_file
from tests.laws.synth import TRUE_CHIN, chinchilla_curves_csv, chinchilla_law

A_TRUE = TRUE_CHIN["beta"] / (TRUE_CHIN["alpha"] + TRUE_CHIN["beta"])  # N_opt ∝ C^a


def isoflop_table(rng, sigma=0.002):
    rows = []
    for C in (1e18, 1e19, 1e20, 1e21, 1e22):
        nopt = 0.1 * C**A_TRUE  # near the true optimum
        for N in nopt * np.geomspace(0.2, 5, 9):
            D = C / (6 * N)
            rows.append(
                {
                    "N": N,
                    "D": D,
                    "C": C,
                    "budget": C,
                    "L": chinchilla_law(N, D) * np.exp(sigma * rng.standard_normal()),
                }
            )
    return rows


def test_a_run_far_from_its_budget_is_refused_not_merged_into_a_profile():
    """--budgets 1e18 1e19 1e25 snapped the 1e20.. runs to 1e19 and merged profiles, and a
    budget column 1000x the runs' C fitted a = 0.11 (true 0.46), each without a word."""
    from scalinglab.errors import FitError

    rows = isoflop_table(np.random.default_rng(0))
    with pytest.raises(FitError, match=r"has C = 1e\+20, 10x its budget 1e\+19 \(C snapped to "
                       r"the nearest of budgets 1e\+18, 1e\+19, 1e\+25; 27 such run\(s\)\): "
                       r"more than 3x off, it belongs to another IsoFLOP profile; give its "
                       r"budget in budgets too$"):  # fmt: skip
        ScalingLaw("isoflop", bootstrap=0, budgets=[1e18, 1e19, 1e25]).fit(
            [{k: v for k, v in r.items() if k != "budget"} for r in rows]
        )
    wrong = [r | {"budget": 1e21} if r["C"] == 1e18 else r for r in rows]
    with pytest.raises(FitError, match=r"0.001x its budget 1e\+21 \(budget column 'budget'; 9 "
                       r"such run\(s\)\).*is the budget column the runs' compute\?"):  # fmt: skip
        ScalingLaw("isoflop", bootstrap=0).fit(wrong)
    near = [r | {"C": r["C"] * 1.5} for r in rows]  # a real FLOP count: 1-1.6x 6ND
    assert ScalingLaw("isoflop", bootstrap=0).fit(near).params_["a"] == pytest.approx(
        A_TRUE, abs=0.02
    )


def test_isoflop_and_envelope_settings_name_what_is_wrong(tmp_path):
    """--budgets with --budget-col said 'only the isoflop law uses budgets' of isoflop; a
    profile with one size per budget said only 'fewer than 2 budgets with a convex
    profile', the reason dropped; --envelope-points 1 or 2 always failed, unnamed."""
    from scalinglab.errors import ConfigError, FitError

    rows = isoflop_table(np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"^budgets and budget_col both say where the budgets"):
        ScalingLaw("isoflop", bootstrap=0, budgets=[1e18, 1e19], budget_col="budget").fit(rows)
    one_size = [r for r in rows if r["N"] == min(x["N"] for x in rows if x["C"] == r["C"])]
    one_size = [r | {"L": r["L"] + 0.01 * k} for r in one_size for k in range(3)]
    with pytest.raises(FitError, match=r"convex profile \(budget 1e\+18: fewer than 3 distinct "
                       r"model sizes; skipped; budget 1e\+19: "):  # fmt: skip
        ScalingLaw("isoflop", bootstrap=0).fit(one_size)
    with pytest.raises(ConfigError, match=r"^envelope_points must be >= 3 \(a line through"):
        ScalingLaw("envelope", envelope_points=2)


def test_isoflop_recovers_the_exponent():
    law = ScalingLaw("isoflop", bootstrap=200).fit(isoflop_table(np.random.default_rng(0)))
    assert law.params_["a"] == pytest.approx(A_TRUE, abs=0.02)
    assert law.params_["a"] + law.params_["b"] == pytest.approx(1.0)  # D_opt = C/(6 N_opt)
    assert law.ci_["a"][0] <= A_TRUE <= law.ci_["a"][1]
    assert "N_opt@1e+20" in law.params_ and "L_opt@1e+20" in law.ci_


def test_neighbouring_seeds_draw_independent_resamples_for_each_budget(monkeypatch):
    """Budget j drew its resamples with seed + j, so seed 1's budget j drew exactly what
    seed 0 drew for budget j + 1 (budgets of as many runs): a rerun with the next seed, to
    see the bootstrap's own noise, was no independent replicate (a metamorphic audit)."""
    from scalinglab.laws import isoflop

    drawn = []
    real = isoflop.bootstrap_weights
    monkeypatch.setattr(
        isoflop, "bootstrap_weights", lambda *a: drawn.append(real(*a)) or drawn[-1]
    )
    rows = isoflop_table(np.random.default_rng(0))
    for seed in (0, 1):
        ScalingLaw("isoflop", bootstrap=20, seed=seed).fit(rows)
    seed0, seed1 = drawn[:5], drawn[5:]
    assert len(seed1) == 5
    for j in range(4):
        assert not np.array_equal(seed1[j], seed0[j + 1]), j
    # and the seed still fixes the draws
    ScalingLaw("isoflop", bootstrap=20, seed=0).fit(rows)
    assert all(np.array_equal(a, b) for a, b in zip(drawn[10:], seed0, strict=True))


def test_isoflop_snaps_to_given_budgets():
    rows = isoflop_table(np.random.default_rng(1))
    for r in rows:  # jitter each run's C by up to 20%; snapping recovers the groups
        r["C"] *= 1.2
        del r["budget"]
    law = ScalingLaw("isoflop", budgets=[1e18, 1e19, 1e20, 1e21, 1e22]).fit(rows)
    assert law.params_["a"] == pytest.approx(A_TRUE, abs=0.03)


def test_isoflop_on_ml_scalefit_chinchilla():
    """Hoffmann et al.'s Approach 2 gave a = 0.49 (0.46..0.53 in their Table 2)."""
    law = ScalingLaw("isoflop", bootstrap=300).fit(
        shared_file("scaling_data/openathena_ml_scalefit_chinchilla_isoflops.csv")
    )
    assert law.params_["a"] == pytest.approx(0.513, abs=0.002)
    assert law.ci_["a"][0] < 0.49 < law.ci_["a"][1]


def test_a_pooled_isoflop_file_gives_the_exponent_docs_laws_md_quotes():
    """docs/laws.md quoted 'the pooled transform file gives a = 0.508 against 0.541 for its
    Chinchilla rows alone': 0.508 came without the outlier filter, 0.541 with it (pooled
    with it: 0.506). Both numbers are now of one filter, and the docs quote them."""
    path = shared_file("scaling_data/openathena_isoflops_transform_all.csv")
    a = {}
    for name, where in (("pooled", []), ("chinchilla", ["source=epochai_chinchilla"])):
        law = ScalingLaw("isoflop", bootstrap=0, where=["outlier=False", *where]).fit(path)
        a[name] = law.params_["a"]
    assert a == pytest.approx({"pooled": 0.5058, "chinchilla": 0.5414}, abs=1e-4)
    docs = " ".join((Path(__file__).parents[2] / "docs" / "laws.md").read_text().split())
    assert f"gives a = {a['pooled']:.3f} pooled, against a = {a['chinchilla']:.3f}" in docs


def test_isoflop_shared_curvature_on_nine_chinchilla_budgets():
    """The shared fit is well posed on Chinchilla's 9 budgets (a determinant test once
    called it singular). Its a sits above the per-budget 0.513: those profiles flatten
    as C grows, which one curvature cannot follow (docs/laws.md)."""
    law = ScalingLaw("isoflop", curvature="shared").fit(
        shared_file("scaling_data/openathena_ml_scalefit_chinchilla_isoflops.csv")
    )
    assert law.params_["a"] == pytest.approx(0.551, abs=0.002)
    assert all(np.isfinite(v) for k, v in law.params_.items() if k.startswith("N_opt@"))


def test_envelope_from_curves_csv(tmp_path):
    sizes, tokens = np.geomspace(1e7, 1e10, 12), np.geomspace(1e8, 2e12, 60)
    path = chinchilla_curves_csv(tmp_path / "curves.csv", sizes, tokens)
    law = ScalingLaw("envelope", bootstrap=100).fit(path)
    # 12 sizes only: the envelope's N_opt is a staircase, so the slope is approximate
    assert law.params_["a"] == pytest.approx(A_TRUE, abs=0.05)
    assert law.params_["a"] + law.params_["b"] == pytest.approx(1.0, abs=0.02)
    assert law.ci_["a"][0] < law.params_["a"] < law.ci_["a"][1]
    opt = law.optimal(1e21)
    assert opt["params"] == pytest.approx(law.params_["k_N"] * 1e21 ** law.params_["a"])


def test_envelope_tokens_keep_c_equal_to_6nd_between_checkpoints(tmp_path):
    """Along a curve of C = 6ND, log D is linear in log C: the envelope interpolates a
    run's tokens in log D, so its D_opt and N_opt multiply to C/6 at every budget however
    far apart the checkpoints are (interpolated linearly in D, 12 per curve put the planned
    tokens 5.5% off: 6·k_N·k_D = 1.055; found by a mutation audit of the tests)."""
    sizes, tokens = np.geomspace(1e7, 1e10, 12), np.geomspace(1e8, 2e12, 12)
    path = chinchilla_curves_csv(tmp_path / "curves.csv", sizes, tokens)
    p = ScalingLaw("envelope", bootstrap=0).fit(path).params_
    assert p["a"] + p["b"] == pytest.approx(1.0, abs=1e-9)
    assert 6 * p["k_N"] * p["k_D"] == pytest.approx(1.0, rel=1e-9)


def test_envelope_from_run_folders(tmp_path, capsys):
    import json

    from scalinglab.cli import main

    folders = []
    for i, N in enumerate(np.geomspace(1e7, 1e10, 8)):
        run = tmp_path / f"run{i}"
        run.mkdir()
        (run / "result.json").write_text(json.dumps({"status": "completed", "params": N}))
        recs = [
            {"step": s, "tokens": D, "flops": 6 * N * D, "val_loss": chinchilla_law(N, D)}
            for s, D in enumerate(np.geomspace(1e8, 2e12, 40))
        ]
        recs.insert(
            3, {"step": 3, "tokens": 1.0, "flops": 1.0, "train_loss": 9.0}
        )  # no val_loss: skipped
        recs.append({**recs[-1], "final": True})  # the final eval at a periodic eval's step
        (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
        folders.append(str(run))
    assert main(["fit", *folders, "--law", "envelope", "--bootstrap", "50", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["conventions"]["L"] == "val_loss" and obj["conventions"]["runs"] == 8
    assert not any("repeat" in w for w in obj["warnings"]), obj["warnings"]  # one point
    assert obj["params"]["a"] == pytest.approx(A_TRUE, abs=0.08)
    # a trainer that leaves params out of result.json: the sweep's planned N stands in,
    # as in the runs table (docs/interfaces.md), and the fit is the same
    for i, folder in enumerate(folders):
        run = Path(folder)
        N = json.loads((run / "result.json").read_text()).pop("params")
        (run / "result.json").write_text(json.dumps({"status": "completed"}))
        if i:
            (run / "sweep.json").write_text(json.dumps({"planned": {"params": N}}))
    assert main(["fit", *folders, "--law", "envelope", "--bootstrap", "0"]) == 2
    assert capsys.readouterr().err == (
        f"error: {folders[0]}/result.json: no numeric 'params', and no planned params in "
        "its sweep.json\n"
    )
    (Path(folders[0]) / "sweep.json").write_text(json.dumps({"planned": {"params": 1e7}}))
    assert main(["fit", *folders, "--law", "envelope", "--bootstrap", "50", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["params"] == obj["params"]


def test_isoflop_non_convex_budget_is_skipped_with_a_warning(tmp_path):
    import json

    rows = isoflop_table(np.random.default_rng(2))
    for r in rows:
        if r["budget"] == 1e22:
            r["L"] = 5.0 - 0.1 * np.log(r["N"])  # loss falls monotonically: no minimum
    law = ScalingLaw("isoflop").fit(rows)
    assert any("1e+22: the loss has no minimum in log N" in w for w in law.warnings_)
    assert np.isnan(law.params_["N_opt@1e+22"])
    assert law.params_["a"] == pytest.approx(A_TRUE, abs=0.03)  # from the 4 other budgets
    assert json.loads(json.dumps(law.to_json(), allow_nan=False))["params"]["N_opt@1e+22"] is None


def test_isoflop_shared_curvature_recovers_exact_parabolas():
    """L = L_j + k (log N − log N_j)² per budget: the shared fit returns each vertex exactly."""
    rows, truth = [], {}
    for j, C in enumerate((1e18, 1e19, 1e20)):
        x_opt, l_opt = np.log(1e6) + 0.5 * j * np.log(10), 3.0 - 0.2 * j
        truth[C] = (np.exp(x_opt), l_opt)
        for x in x_opt + np.array([-1.1, -0.3, 0.2, 0.9]):  # asymmetric around the optimum
            rows.append({"N": np.exp(x), "C": C, "budget": C, "L": l_opt + 0.07 * (x - x_opt) ** 2})
    law = ScalingLaw("isoflop", curvature="shared").fit(rows)
    for C, (n_opt, l_opt) in truth.items():
        assert law.params_[f"N_opt@{C:g}"] == pytest.approx(n_opt, rel=1e-9)
        assert law.params_[f"L_opt@{C:g}"] == pytest.approx(l_opt, rel=1e-12)
        assert law.params_[f"k@{C:g}"] == pytest.approx(0.07, rel=1e-9)  # the curvature drawn
    assert law.params_["a"] == pytest.approx(0.5, abs=1e-9)
    per = ScalingLaw("isoflop").fit(rows)  # exact parabolas: the per-budget fit agrees
    for C in truth:
        for key in (f"N_opt@{C:g}", f"L_opt@{C:g}", f"k@{C:g}"):
            assert per.params_[key] == pytest.approx(law.params_[key], rel=1e-8)


def test_isoflop_shared_curvature_is_steadier_with_few_noisy_sizes():
    """4 sizes per budget, 1% noise (a small study): over 40 draws the shared curvature's
    exponent lies closer to the truth than one parabola per budget."""
    err = {"per-budget": [], "shared": []}
    for draw in range(40):
        rng = np.random.default_rng(100 + draw)
        rows = []
        for C in (1e18, 1e19, 1e20):
            nopt = 0.1 * C**A_TRUE
            for N in nopt * np.geomspace(0.3, 3, 4) * np.exp(0.3 * rng.standard_normal()):
                L = chinchilla_law(N, C / (6 * N)) * np.exp(0.01 * rng.standard_normal())
                rows.append({"N": N, "C": C, "budget": C, "L": L})
        for curv in err:
            law = ScalingLaw("isoflop", curvature=curv).fit(rows)
            err[curv].append(law.params_["a"] - A_TRUE)
    rms = {k: float(np.sqrt(np.nanmean(np.square(v)))) for k, v in err.items()}
    assert rms["shared"] < 0.8 * rms["per-budget"], rms


def test_isoflop_unknown_curvature_is_a_config_error():
    from scalinglab.errors import ConfigError

    with pytest.raises(ConfigError, match="curvature 'wobbly' is not one of per-budget, shared"):
        ScalingLaw("isoflop", curvature="wobbly")


def three_sizes_at_three_budgets(rng, concave=None):
    """The quickstart's design: 3 sizes per budget, 3 budgets, 0.2% noise; the budget
    `concave` made to fall monotonically in N (no minimum)."""
    rows = []
    for C in (1e18, 1e19, 1e20):
        for N in 0.1 * C**A_TRUE * np.array([0.5, 1.0, 2.0]):
            L = chinchilla_law(N, C / (6 * N)) * np.exp(0.002 * rng.standard_normal())
            if concave == C:
                L = 5.0 - 0.1 * np.log(N)
            rows.append({"N": N, "D": C / (6 * N), "C": C, "budget": C, "L": L})
    return rows


def test_a_fit_through_2_minima_gives_no_interval_the_bootstrap_cannot_measure():
    """With 3 sizes per budget a resample either keeps all 3 (the fit itself) or cannot
    fit that budget's parabola; with one of 3 budgets skipped, every resample that can
    be fitted is the fit, and the intervals were zero wide (a study printed `frontier L ∝
    C^-0.128 [0.128, 0.128]` and missed by 10%). Now: no interval, and warnings saying
    why; with all 3 budgets the lines' intervals remain (a resample may drop a budget)."""
    from scalinglab.laws.settings import FitConfig
    from scalinglab.plan.analysis import fit_frontier

    rows = three_sizes_at_three_budgets(np.random.default_rng(3), concave=1e19)
    law = ScalingLaw("isoflop", bootstrap=200).fit(rows)
    assert np.isnan(law.params_["L_opt@1e+19"])
    assert "a" not in law.ci_ and "a_L" not in law.ci_ and "a" not in law.stderr_
    assert set(law.flat_draws_) >= {"a", "b", "k_N", "k_D", "a_L", "k_L", "L_opt@1e+18"}
    assert law.samples_ is None  # nothing left to draw an interval from
    assert "the fit rests on the minima of 2 budgets" in " ".join(law.warnings_)
    assert (
        "the bootstrap could not move a, b, k_N, k_D, a_L, k_L (every resample it could fit "
        "gave the fit itself): no interval is given for them"
    ) in law.warnings_
    frontier, pts = fit_frontier(law, FitConfig(bootstrap=200))
    assert len(pts) == 2 and frontier.samples_ is None and frontier.ci_ == {}

    full = ScalingLaw("isoflop", bootstrap=200).fit(
        three_sizes_at_three_budgets(np.random.default_rng(3))
    )
    lo, hi = full.ci_["a"]
    assert lo < full.params_["a"] < hi and hi - lo > 1e-3
    assert "a" not in full.flat_draws_ and not any("2 budgets" in w for w in full.warnings_)
    # each budget's own minimum: 3 sizes, so only the fit itself is a usable resample
    assert "L_opt@1e+19" in full.flat_draws_ and "L_opt@1e+19" not in full.ci_
    frontier, _ = fit_frontier(full, FitConfig(bootstrap=200))
    assert frontier.ci_["alpha"][0] < frontier.params_["alpha"] < frontier.ci_["alpha"][1]


@pytest.mark.parametrize(
    ("value", "why"),
    [("x", '"x"'), ([1], "[1]"), (True, "true"), (-6e9, "-6000000000.0"), (float("nan"), "NaN")],
)
def test_envelope_names_a_metrics_value_that_is_no_positive_number(tmp_path, value, why):
    """Another trainer's metrics.jsonl with a string or list as flops stopped the envelope
    fit with a TypeError; a negative or NaN one went into the fit's logarithms."""
    import json

    from scalinglab.errors import DataError
    from scalinglab.laws.envelope import read_run_folders

    run = tmp_path / "r"
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"status": "completed", "params": 1e6}))
    recs = [{"tokens": 1e6, "flops": 6e12, "val_loss": 3.0},
            {"tokens": 2e6, "flops": value, "val_loss": 2.9}]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(DataError) as e:
        read_run_folders([run])
    assert str(e.value) == f"{run / 'metrics.jsonl'}: line 2: flops is {why}, not a positive number"


def test_envelope_of_val_losses_without_flops_says_what_a_record_needs(tmp_path):
    """val_loss lines without flops are skipped, and the error said 'no run folder has
    val_loss records', which these have."""
    import json

    from scalinglab.errors import DataError
    from scalinglab.laws.envelope import read_run_folders

    run = tmp_path / "r"
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"status": "completed", "params": 1e6}))
    recs = [{"tokens": 1e6, "val_loss": 3.0}, {"tokens": 2e6, "val_loss": 2.9}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(DataError) as e:
        read_run_folders([run])
    assert str(e.value) == (
        "no run folder has val_loss records with their flops and tokens in metrics.jsonl "
        "(a record needs all three)"
    )


def test_isoflop_and_envelope_warn_of_units_and_repeated_rows_as_chinchilla_does(tmp_path):
    """The warnings about the columns read (a loss in perplexity, tokens in billions, a
    table pasted twice) were given for chinchilla and kaplan fits only."""
    rows = isoflop_table(np.random.default_rng(0))
    law = ScalingLaw("isoflop", bootstrap=0).fit(rows + rows[:3])
    assert any("3 rows repeat an earlier row's" in w for w in law.warnings_), law.warnings_
    law = ScalingLaw("isoflop", bootstrap=0).fit([{**r, "L": np.exp(r["L"])} for r in rows])
    assert any("is it perplexity" in w for w in law.warnings_), law.warnings_
    lines = ["run_id,params,tokens,flops,loss"]
    for i, N in enumerate(np.geomspace(1e7, 1e9, 5)):
        for D in np.geomspace(1e8, 1e11, 12):  # tokens in billions
            lines.append(f"r{i},{N},{D / 1e9},{6 * N * D},{chinchilla_law(N, D)}")
    path = tmp_path / "curves.csv"
    path.write_text("\n".join([*lines, *lines[1:3]]) + "\n")
    w = ScalingLaw("envelope", bootstrap=0, envelope_points=20).fit(path).warnings_
    assert any("tokens per parameter (D 'tokens' / N 'params')" in x for x in w), w
    assert any("2 rows repeat an earlier row's" in x for x in w), w


def test_envelope_refuses_run_ids_that_join_alike_and_a_run_of_two_sizes(tmp_path):
    """--run-col a,b joined ('a/b', 'c') and ('a', 'b/c') into one run, and a run's N was
    its first row's: a --run-col naming several runs was fitted silently."""
    from scalinglab.errors import DataError
    from scalinglab.laws.envelope import read_curves_csv

    head = "a,b,params,flops,loss\n"
    path = tmp_path / "j.csv"
    path.write_text(head + "x/y,z,1e7,1e17,3.1\nx,y/z,1e7,2e17,3.0\n")
    with pytest.raises(DataError, match=r"j.csv: row 2 \(line 3\): run_cols a, b: .*'x/y/z'"):
        read_curves_csv(path, run_cols=("a", "b"))
    path = tmp_path / "n.csv"
    path.write_text(head + "x,1,1e7,1e17,3.1\nx,2,1e8,2e17,3.0\n")
    with pytest.raises(
        DataError,
        match=r"n.csv: row 2 \(line 3\): run_cols a: run 'x' has N 1e\+07 on line 2 and N 1e\+08 here",
    ):
        read_curves_csv(path, run_cols=("a",))
    assert [r[1] for r in read_curves_csv(path, run_cols=("a", "b")).runs] == [1e7, 1e8]


def write_runs(root, n, statuses=None) -> list[str]:
    """`n` run folders under `root` (sizes 1e7 to 1e10), each the curve of the Chinchilla
    law in metrics.jsonl, with `statuses` {i: status} (the others completed)."""
    import json

    folders = []
    for i, N in enumerate(np.geomspace(1e7, 1e10, n)):
        run = root / f"run{i}"
        run.mkdir(parents=True)
        status = (statuses or {}).get(i, "completed")
        (run / "result.json").write_text(json.dumps({"status": status, "params": N}))
        recs = [{"tokens": D, "flops": 6 * N * D, "val_loss": chinchilla_law(N, D)}
                for D in np.geomspace(1e8, 2e12, 20)]  # fmt: skip
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
        folders.append(str(run))
    return folders


def test_envelope_keeps_the_completed_runs_as_every_other_law_does(tmp_path, capsys):
    """The envelope read every curve, where the runs and curves readers keep completed
    runs by default: a run that diverged or failed (here with lower losses than any
    other, as a logging bug would leave) won the envelope at every C."""
    import json

    from scalinglab.cli import main

    lines = ["run_id,status,params,tokens,flops,loss"]
    for i, N in enumerate(np.geomspace(1e7, 1e10, 8)):
        for D in np.geomspace(1e8, 2e12, 30):
            lines.append(f"r{i},completed,{N},{D},{6 * N * D},{chinchilla_law(N, D)}")
            if i == 3:
                lines.append(f"bad,diverged,{N},{D},{6 * N * D},{chinchilla_law(N, D) / 2}")
    path = tmp_path / "curves.csv"
    path.write_text("\n".join(lines) + "\n")
    clean = tmp_path / "clean.csv"
    clean.write_text("\n".join(ln for ln in lines if ",diverged," not in ln) + "\n")
    fit = ScalingLaw("envelope").fit(path)
    assert fit.params_ == ScalingLaw("envelope").fit(clean).params_
    assert fit.conventions_["filters"] == ["status=completed"] and fit.conventions_["runs"] == 8
    assert fit.warnings_[0] == (
        "the default filter status=completed left out 30 rows (runs not completed); "
        "--where status=VALUE picks others"
    )
    # a --where on the status column replaces the default; others add to it
    assert ScalingLaw("envelope", where=["status!=x"]).fit(path).conventions_["runs"] == 9
    assert ScalingLaw("envelope", where=["run_id!=r7"]).fit(path).conventions_["runs"] == 7
    with pytest.raises(DataError, match=r"curves.csv: no rows left after where run_id=r9$"):
        ScalingLaw("envelope", where=["run_id=r9"]).fit(path)
    with pytest.raises(DataError, match=r"where size=1: no column 'size' \(columns: run_id,"):
        ScalingLaw("envelope", where=["size=1"]).fit(path)
    # run folders: the completed ones, the others named
    folders = write_runs(tmp_path, 4, {1: "failed", 2: "diverged"})
    assert main(["fit", *folders, "--law", "envelope", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["conventions"]["runs"] == 2
    assert obj["warnings"][0] == (
        "left out 2 run folders not completed: run1 (failed), run2 (diverged)"
    )
    assert main(["fit", *folders[1:3], "--law", "envelope"]) == 2
    assert capsys.readouterr().err == (
        "error: no run folder is completed: run1 (failed), run2 (diverged)\n"
    )
    assert main(["fit", *folders, "--law", "envelope", "--where", "status=failed"]) == 2
    assert capsys.readouterr().err == (
        "error: where does not apply to run folders (their metrics.jsonl and result.json "
        "name every column)\n"
    )


def test_envelope_of_a_folder_of_runs_reads_its_run_folders(tmp_path, capsys):
    """`fit runs/sweep --law envelope` was refused ('a folder'), where `scalinglab runs`
    reads the same folder; a folder of two architectures' runs has no one envelope."""
    import json

    from scalinglab import runfolder
    from scalinglab.cli import main
    from scalinglab.config import ModelConfig, RunConfig

    folders = write_runs(tmp_path / "sweep" / "runs", 5)
    assert main(["fit", *folders, "--law", "envelope", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert main(["fit", str(tmp_path / "sweep"), "--law", "envelope", "--json"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert whole["params"] == listed["params"] and whole["conventions"]["runs"] == 5
    for i, arch in ((0, "gpt"), (1, "lstm")):
        runfolder.write_config(folders[i], RunConfig(model=ModelConfig(arch=arch)))
    assert main(["fit", str(tmp_path / "sweep"), "--law", "envelope"]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'sweep'}: its runs are of 2 architectures (gpt, lstm); give "
        "one's folder, or its curves (scalinglab runs DIR --curves) with --where arch=gpt\n"
    )
    (tmp_path / "empty").mkdir()
    assert main(["fit", str(tmp_path / "empty"), "--law", "envelope"]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'empty'}: a folder with no run folders in it (envelope takes "
        "a curves CSV or run folders)\n"
    )


def test_isoflop_counting_n_without_embeddings_reads_d_opt_off_the_runs():
    """--n-kind params_nonembed on runs placed at budgets of 6·N·D in all parameters: the
    optimum's D is its runs' D at N_opt (it was C / (6 N_opt) with the budget's C, 1.2-2x
    too many tokens for these sizes), its C is 6·N_opt·D_opt, and b = 1 - a again."""
    from tests.plan.test_analysis import kaplan_rows

    rows = kaplan_rows()
    table = {
        k: [r[k] for r in rows] for k in ("params", "params_nonembed", "tokens", "budget", "loss")
    }
    law = ScalingLaw("isoflop", n_kind="params_nonembed").fit(table)
    p = law.params_
    for b in (1e11, 3e11, 9e11):
        mid = min((r for r in rows if r["budget"] == b), key=lambda r: r["loss"])
        assert p[f"N_opt@{b:g}"] == pytest.approx(mid["params_nonembed"], rel=1e-9)
        assert p[f"D_opt@{b:g}"] == pytest.approx(mid["tokens"], rel=1e-9)
        assert p[f"C_opt@{b:g}"] == pytest.approx(6 * mid["params_nonembed"] * mid["tokens"])
    assert p["a"] + p["b"] == pytest.approx(1.0, abs=1e-9)
    assert law.conventions_["D"] == "tokens"
    plain = ScalingLaw("isoflop").fit(table)  # all parameters: the budgets are its C
    assert not any(k.startswith("C_opt@") for k in plain.params_)
    assert plain.params_["D_opt@1e+11"] == pytest.approx(1e11 / (6 * plain.params_["N_opt@1e+11"]))


def test_a_curve_with_two_losses_at_one_c_keeps_the_lowest(tmp_path):
    """Two runs the --run-col columns do not tell apart (the misfitting table's runs that
    differ only in total_epochs) give one curve two losses at one C, where np.interp is
    undefined: the fit depended on the rows' order. The envelope keeps the lowest, as it
    does across runs, and says so; a run folder's final evaluation, at its last periodic
    evaluation's step, is the one kept (the whole validation split)."""
    import json

    from scalinglab.laws.envelope import read_run_folders

    lines = ["run_id,params,tokens,flops,loss"]
    extra = []
    for i, N in enumerate(np.geomspace(1e7, 1e10, 6)):
        for j, D in enumerate(np.geomspace(1e8, 2e12, 25)):
            lines.append(f"r{i},{N},{D},{6 * N * D},{chinchilla_law(N, D)}")
            if i in (2, 3) and j % 3 == 0:  # a second measurement, worse
                extra.append(f"r{i},{N},{D},{6 * N * D},{chinchilla_law(N, D) * 1.05}")
    clean, both = tmp_path / "clean.csv", tmp_path / "both.csv"
    clean.write_text("\n".join(lines) + "\n")
    rows = lines[:1] + [x for pair in zip(extra, lines[1:], strict=False) for x in pair]
    both.write_text("\n".join(rows + lines[1 + len(extra) :]) + "\n")  # the worse ones first
    fit = ScalingLaw("envelope", envelope_points=30).fit(both)
    assert fit.params_ == ScalingLaw("envelope", envelope_points=30).fit(clean).params_
    assert any(f"{len(extra)} points of 2 runs share a run's C" in w for w in fit.warnings_)
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text(json.dumps({"status": "completed", "params": 1e7}))
    recs = [{"step": s, "tokens": 1e8 * s, "flops": 6e15 * s, "val_loss": 3.0 - 0.1 * s}
            for s in (1, 2, 3)] + [{"step": 3, "tokens": 3e8, "flops": 1.8e16, "val_loss": 2.65,
                                    "final": True}]  # fmt: skip
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    ((_, _, c, _, loss),) = read_run_folders([str(run)]).runs
    assert c.tolist() == [6e15, 1.2e16, 1.8e16] and loss.tolist() == [2.9, 2.8, 2.65]


def test_budgets_are_snapped_to_in_log_c():
    """--budgets: each run joins the budget nearest in log C (the geometric midpoint of
    1e17 and 2e17 is 1.414e17); nearest in C put 1.45e17 with 1e17 (a mutation audit)."""
    t = read_table({"N": [1e7, 1e7], "D": [1e9, 1e9], "C": [1.45e17, 1.40e17], "loss": [3.0, 3.0]})
    budgets, _ = group_budgets(t, budgets=[1e17, 2e17])
    assert budgets.tolist() == [2e17, 1e17]


def _curve(rid, N, c0, c1, level):
    c = np.geomspace(c0, c1, 30)
    return (rid, N, c, c / (6 * N), level + (1e20 / c) ** 0.1)


def test_the_envelope_counts_only_compute_covered_by_two_runs():
    runs = [
        _curve("a", 1e6, 1e15, 1e17, 2.0),
        _curve("b", 2e6, 1e16, 1e18, 1.9),
        _curve("c", 4e6, 1e17, 1e19, 1.8),
    ]
    out = fit_envelope(Curves(runs, "t"), points=100)
    grid = np.exp(np.linspace(np.log(1e15), np.log(1e19), 100))
    lg = np.log(grid)
    inside = lambda a, b: (lg >= np.log(a)) & (lg <= np.log(b))  # noqa: E731
    cover = inside(1e15, 1e17).astype(int) + inside(1e16, 1e18) + inside(1e17, 1e19)
    assert out["n_points"] == int(np.sum(cover >= 2))


def test_the_envelope_refuses_curves_of_one_model_size():
    runs = [_curve("a", 1e6, 1e15, 1e17, 2.0), _curve("b", 1e6, 1e15, 1e17, 1.9)]
    with pytest.raises(FitError, match="at least 2 model sizes"):
        fit_envelope(Curves(runs, "t"))


def test_an_envelope_won_by_the_smallest_model_is_warned_of():
    runs = [
        _curve("a", 1e6, 1e15, 1e18, 1.5),
        _curve("b", 2e6, 1e15, 1e18, 1.9),
        _curve("c", 4e6, 1e15, 1e18, 2.0),
    ]
    out = fit_envelope(Curves(runs, "t"))
    assert any("won by the smallest or largest model" in w for w in out["warnings"])


def test_a_budgets_minimum_beyond_its_own_sizes_is_extrapolated_even_inside_other_budgets():
    """Each budget's parabola is judged against its own sizes: the 1e18 budget's runs
    (1e7..4e7) fall towards 6e7, which other budgets sampled, but this one did not."""

    def profile(C, sizes, n_min):
        return [{"N": n, "D": C / (6 * n), "C": C, "budget": C,
                 "L": 3.0 - 0.1 * np.log10(C) + 0.2 * np.log(n / n_min) ** 2} for n in sizes]  # fmt: skip

    rows = (profile(1e18, [1e7, 2e7, 4e7], 6e7) + profile(1e19, [3e7, 1e8, 3e8], 1e8)
            + profile(1e20, [1e8, 3e8, 1e9], 3e8))  # fmt: skip
    law = ScalingLaw("isoflop", bootstrap=0).fit(rows)
    assert law.params_["N_opt@1e+18"] == pytest.approx(6e7, rel=1e-6)
    (w,) = [w for w in law.warnings_ if "extrapolated" in w]
    assert w.startswith("budget 1e+18: the parabola's minimum N=6e+07 lies outside the sampled")
