"""One reader for every table: a CSV, pandas, polars, pyarrow, a dict, a list of dicts.

The same column aliases and the same options (where, drop_highest, column mappings,
n_kind, completed runs only) apply to each; an option that cannot apply raises.
"""

import csv
import json

import numpy as np
import pytest

from scalinglab.errors import ConfigError, DataError
from scalinglab.laws import ScalingLaw
from scalinglab.laws.table import read_csv, read_table
from tests.conftest import shared_file
from tests.laws.synth import chinchilla_law

SETTINGS = {
    "bootstrap": 40,
    "seed": 3,
    "where": ["arch=gpt"],
    "drop_highest": 2,
    "n_kind": "params_nonembed",
    "loss_col": "final loss",
}


def columns():
    """A runs table with our own column names plus rows each option must remove."""
    rng = np.random.default_rng(0)
    cols = {k: [] for k in ("run_id", "arch", "status", "params", "params_nonembed")}
    cols.update({"tokens": [], "final loss": [], "n_layer": []})
    i = 0
    for n in np.geomspace(2e6, 2e8, 6):
        for d in np.geomspace(4e7, 4e9, 5):
            for arch in ("gpt", "lstm"):
                status = "failed" if i % 11 == 5 else "completed"
                loss = float(chinchilla_law(0.9 * n, d) * np.exp(0.01 * rng.standard_normal()))
                if status == "failed" or i == 8:  # a failed run, and a wild outlier
                    loss *= 3.0
                cols["run_id"].append(f"r{i}")
                cols["arch"].append(arch)
                cols["status"].append(status)
                cols["params"].append(float(n))
                cols["params_nonembed"].append(float(0.9 * n))
                cols["tokens"].append(float(d))
                cols["final loss"].append(loss)
                cols["n_layer"].append(2 + i % 3)
                i += 1
    return cols


def write_csv(path, cols):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for row in zip(*cols.values(), strict=True):
            w.writerow([repr(v) if isinstance(v, float) else v for v in row])
    return path


def fit_json(table, **extra):
    out = ScalingLaw("chinchilla", **SETTINGS, **extra).fit(table).to_json()
    # the source's name and its file hash say where the numbers came from; nothing else may differ
    del out["data"]["source"], out["data"]["sha256"], out["conventions"]["source"]
    return json.dumps(out, sort_keys=True)


def test_one_data_set_fits_identically_from_every_input(tmp_path):
    pd = pytest.importorskip("pandas", reason="pandas is in the [dataframe] extra")
    pl = pytest.importorskip("polars", reason="polars is in the [dataframe] extra")
    pa = pytest.importorskip("pyarrow", reason="pyarrow is in the [export] extra")
    cols = columns()
    rows = [dict(zip(cols, r, strict=True)) for r in zip(*cols.values(), strict=True)]
    inputs = {
        "csv": write_csv(tmp_path / "runs.csv", cols),
        "pandas": pd.DataFrame(cols),
        "polars": pl.DataFrame(cols),
        "pyarrow": pa.table(cols),
        "dict": cols,
        "list of dicts": rows,
    }
    got = {name: fit_json(obj) for name, obj in inputs.items()}
    assert len(set(got.values())) == 1, {k: v[:200] for k, v in got.items()}
    fit = json.loads(got["csv"])
    # 60 rows; where arch=gpt keeps 30, status=completed drops the failed gpt runs,
    # drop_highest drops 2 more (the outlier among them)
    failed_gpt = sum(1 for i in range(60) if i % 11 == 5 and i % 2 == 0)
    assert fit["n_points"] == 30 - failed_gpt - 2
    assert fit["conventions"]["filters"] == [
        "arch=gpt",
        "status=completed",
        "drop the 2 highest-loss rows",
    ]
    assert fit["conventions"]["N"] == "params_nonembed"
    assert fit["conventions"]["L"] == "final loss"
    # the fit recovers the law the losses were drawn from (N = params_nonembed)
    assert fit["params"]["alpha"] == pytest.approx(0.34, abs=0.05)


def test_in_memory_tables_are_filtered_like_the_csv():
    """The bug of issue 17: in memory, `drop_highest` (and where, n_kind, the status
    rule, the column mappings) were silently ignored: 245 points instead of 240."""
    path = shared_file("scaling_data/epoch_chinchilla_svg_extracted_data.csv")
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    memory = {k: [float(r[k]) for r in rows] for k in ("Model Size", "Training FLOP", "loss")}
    a = ScalingLaw("chinchilla", bootstrap=0, drop_highest=5).fit(path)
    b = ScalingLaw("chinchilla", bootstrap=0, drop_highest=5).fit(memory)
    assert len(rows) == 245
    assert a.n_points_ == b.n_points_ == 240
    assert b.params_ == a.params_
    assert b.params_["alpha"] == pytest.approx(0.3478, abs=0.001)  # Besiroglu et al. 2024


def test_old_in_memory_keys_still_read():
    rng = np.random.default_rng(1)
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e9, 5), np.geomspace(1e8, 1e10, 5)))
    L = chinchilla_law(N, D) * np.exp(0.005 * rng.standard_normal(N.size))
    t_old = read_table({"N": N, "D": D, "L": L})
    t_new = read_table({"params": N, "tokens": D, "loss": L})
    assert t_old.points_sha256() == t_new.points_sha256()
    np.testing.assert_allclose(t_new.C, 6 * N * D)


def test_where_compares_in_memory_numbers_as_numbers():
    cols = columns()
    t = read_table(cols, where=["n_layer=3", "arch!=lstm"], loss_col="final loss", need=("N", "D"))
    keep = [
        i
        for i in range(60)
        if cols["n_layer"][i] == 3 and cols["arch"][i] == "gpt" and cols["status"][i] == "completed"
    ]
    assert len(t) == len(keep) > 0
    np.testing.assert_array_equal(t.N, np.array(cols["params"])[keep])
    # pandas' `==` is `=` (it was read as the value '=3': no rows left)
    same = read_table(cols, where=["n_layer==3", "arch!=lstm"], loss_col="final loss",
                      need=("N", "D"))  # fmt: skip
    np.testing.assert_array_equal(same.N, t.N)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"budget_col": "budget"}, "budget_col budget does not apply to law 'chinchilla'"),
        ({"budgets": [1e18]}, "budgets 1e+18 does not apply to law 'chinchilla'"),
        ({"run_cols": ["model"]}, "run_cols model does not apply to law 'chinchilla'"),
        # a held or tied parameter the law would have ignored: refused, not fitted free
        ({"fix": ["alpha=0.3"]}, "fix alpha=0.3 does not apply to law 'chinchilla'"),
        ({"tie": ["alpha=beta"]}, "tie alpha=beta does not apply to law 'chinchilla'"),
        (
            {"n_col": "params", "n_kind": "params_nonembed"},
            "n_kind params_nonembed does not apply with n_col 'params'",
        ),
    ],
)
def test_an_option_that_does_not_apply_raises(settings, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("+", r"\+")):
        ScalingLaw("chinchilla", bootstrap=0, **settings).fit(columns())


def test_the_command_line_names_the_flags(tmp_path, capsys):
    """From the command line the error names the flag as typed (it said `tie=['alpha=beta']`
    and `run_cols=['model']`, Python's keywords), and --fix twice is refused (the last held)."""
    from scalinglab.cli import main

    path = tmp_path / "t.csv"
    t = columns()
    path.write_text("params,tokens,unique_tokens,loss\n" + "".join(
        f"{n},{d},{d},{lo}\n"
        for n, d, lo in zip(t["params"], t["tokens"], t["final loss"], strict=True)))  # fmt: skip
    for flags, err in [
        (["--tie", "alpha=beta"], "--tie alpha=beta does not apply to law 'chinchilla' (it "
         "applies to data-constrained)"),
        (["--run-col", "model"], "--run-col model does not apply to law 'chinchilla' (it applies "
         "to envelope, multi-power, lr-annealing, task-sigmoid, task-power; with "
         "--checkpoints, rows are checkpoints of these runs)"),
        (["--law", "data-constrained", "--fix", "E=1.69", "--fix", "E=1.7"],
         "--fix E is given twice (E=1.69, E=1.7)"),
        (["--law", "data-constrained", "--fix", "alpha=-1"], "--fix 'alpha=-1': alpha must be > 0"),
    ]:  # fmt: skip
        assert main(["fit", str(path), "--bootstrap", "0", *flags]) == 2
        assert capsys.readouterr().err == f"error: {err}\n"


def test_envelope_refuses_row_options(tmp_path):
    with pytest.raises(ConfigError, match="drop_highest 3 does not apply to law 'envelope'"):
        ScalingLaw("envelope", drop_highest=3).fit(tmp_path / "curves.csv")


def test_a_read_table_refuses_options_it_was_not_read_with(tmp_path):
    path = write_csv(tmp_path / "runs.csv", columns())
    t = read_csv(path, loss_col="final loss", drop_highest=2)
    ScalingLaw("chinchilla", bootstrap=0, loss_col="final loss", drop_highest=2).fit(t)  # same
    with pytest.raises(ConfigError, match=r"where=\['arch=gpt'\] cannot be applied"):
        ScalingLaw("chinchilla", bootstrap=0, where=["arch=gpt"]).fit(t)
    with pytest.raises(ConfigError, match="unknown table option"):
        read_table(path, n_colum="params")


def test_duplicate_header_names_are_refused_with_their_positions(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("params,tokens,loss,tokens,loss\n1e6,1e8,3.0,2e8,3.1\n")
    with pytest.raises(DataError, match=r"'tokens' at columns 2, 4; 'loss' at columns 3, 5"):
        read_csv(path)


def test_bad_in_memory_values_name_their_row_and_column():
    pd = pytest.importorskip("pandas", reason="pandas is in the [dataframe] extra")
    df = pd.DataFrame({"params": [1e6, 2e6, 4e6], "tokens": [1e8] * 3, "loss": [3.0, np.nan, 2.8]})
    with pytest.raises(
        DataError, match=r"<pandas.DataFrame>: row 2, column 'loss': missing value \(NaN\)$"
    ):
        read_table(df)
    with pytest.raises(DataError, match=r"<dict>: row 3, column 'tokens': -1.0 must be > 0"):
        read_table({"params": [1, 2, 3], "tokens": [1, 2, -1.0], "loss": [1, 1, 1]})
    with pytest.raises(DataError) as e:
        read_table(42)
    assert str(e.value) == (
        "a runs table must be a CSV path, a pandas/polars/pyarrow table, a dict of columns, "
        "a list of row dicts or a RunsTable; got int"
    )
    with pytest.raises(DataError, match=r"RunsTable; got pandas.Series$"):
        read_table(df["loss"])


def test_a_nan_in_memory_is_a_missing_value_and_an_inf_is_not_finite():
    """A NaN cell of a DataFrame, dict or row list (pandas' missing value) read 'nan is not
    a finite number', where an empty CSV cell and a polars null read 'missing value'."""
    cols = {"params": [1e6, np.nan], "tokens": [1e8, 2e8], "loss": [3.0, 2.9]}
    with pytest.raises(DataError, match=r"^<dict>: row 2, column 'params': missing value \(NaN\)$"):
        read_table(cols)
    rows = [{"params": 1e6, "tokens": 1e8, "loss": np.float32("nan")}]
    with pytest.raises(DataError, match=r"^<list of dicts>: row 1, column 'loss': missing value"):
        read_table(rows)
    with pytest.raises(DataError, match=r"column 'params': inf is not a finite number$"):
        read_table({**cols, "params": [1e6, np.inf]})


def test_a_filtered_pandas_frame_names_the_index_label_of_a_bad_row():
    """A bad value of a filtered frame (df[df.keep == 1]) was named by its position alone,
    'row 2', which a notebook user reads as df.loc[2] or df.iloc[2]: the label is named."""
    pd = pytest.importorskip("pandas", reason="pandas is in the [dataframe] extra")
    df = pd.DataFrame({"params": [1e6, 2e6, 4e6, 8e6], "tokens": [1e8] * 4,
                       "loss": [3.0, 2.9, np.nan, 2.7], "keep": [0, 1, 1, 1]})  # fmt: skip
    with pytest.raises(DataError) as e:
        read_table(df[df.keep == 1])
    assert str(e.value) == (
        "<pandas.DataFrame>: row 2 (index 2), column 'loss': missing value (NaN)"
    )
    with pytest.raises(DataError, match=r"^<pandas.DataFrame>: row 3 \(index 'c'\), column"):
        read_table(df.set_axis(["a", "b", "c", "d"]), where=["keep=1"])
    with pytest.raises(DataError, match=r"^<pandas.DataFrame>: row 3, column 'loss'"):
        read_table(df)  # the default index: no label to add


def test_a_polars_lazyframe_is_read_as_its_collected_table():
    """pl.scan_csv(...) gave 'a runs table must be ...; got a LazyFrame'."""
    pl = pytest.importorskip("polars", reason="polars is in the [dataframe] extra")
    cols = {"params": [1e6, 2e6, 4e6], "tokens": [1e8] * 3, "loss": [3.0, 2.9, 2.8]}
    table = read_table(pl.DataFrame(cols).lazy())
    assert table.source == "<polars.LazyFrame>"
    assert table.L.tolist() == [3.0, 2.9, 2.8]
    assert table.N.tolist() == [1e6, 2e6, 4e6]
    with pytest.raises(DataError, match=r"<polars.LazyFrame>: row 2, column 'loss': -1.0 must"):
        read_table(pl.DataFrame({**cols, "loss": [3.0, -1.0, 2.8]}).lazy())


def test_a_runs_tables_repr_is_one_short_line():
    """repr printed every array in full: thousands of lines for a big table."""
    n = 3000
    rows = {
        "run": np.repeat(np.arange(5), n // 5),
        "N": np.repeat(np.geomspace(1e7, 1e9, 5), n // 5),
        "D": np.tile(np.geomspace(1e8, 1e10, n // 5), 5),
        "loss": np.linspace(4.0, 2.5, n),
    }
    t = read_table(rows, run_cols=["run"])
    assert repr(t) == "RunsTable(3000 rows, columns N, D, C, L, runs: 5, source: '<dict>')"
    assert repr(read_table(rows)) == "RunsTable(3000 rows, columns N, D, C, L, source: '<dict>')"
    assert t.subset(np.arange(n) < 10) is not t and len(t.subset(np.arange(n) < 10)) == 10
    # a permutation read as a mask kept every row but one, in the table's order
    with pytest.raises(TypeError, match="boolean mask"):
        t.subset(np.arange(n)[::-1])
    assert t == t  # dataclass equality still holds (compared field by field)


def test_a_run_col_under_which_one_run_has_two_sizes_is_refused(tmp_path):
    # A --run-col that groups several runs (or is not the run's name) was taken: its
    # groups were held out and resampled whole, as if each were one run, without a word.
    rows = [("a", 1e6, 1e7, 3.0), ("a", 1e6, 2e7, 2.8), ("b", 2e6, 1e7, 2.9),
            ("b", 3e6, 2e7, 2.7), ("c", 4e6, 1e7, 2.6), ("c", 4e6, 2e7, 2.5)]  # fmt: skip
    path = tmp_path / "curves.csv"
    path.write_text(
        "run,params,tokens,loss\n" + "".join(f"{r},{n},{d},{v}\n" for r, n, d, v in rows)
    )
    with pytest.raises(DataError) as e:
        read_table(path, run_cols=["run"])
    assert str(e.value) == (
        f"{path}: run_cols run: run 'b' has N 2e+06 on line 4 and N 3e+06 on line 5; a "
        "run's checkpoints share one model size: give the column (or columns) that name one run"
    )
    table = {k: [r[i] for r in rows] for i, k in enumerate(("run", "params", "tokens", "loss"))}
    with pytest.raises(DataError, match="run 'b' has N 2e\\+06 on row 3 and N 3e\\+06 on row 4"):
        read_table(table, run_cols=["run"])
    rows[3] = ("b", 2e6, 2e7, 2.7)  # one size per run: read
    table["params"][3] = 2e6
    assert read_table(table, run_cols=["run"]).conventions["runs"] == 3


def test_run_cols_whose_joined_names_are_alike_are_refused():
    """--run-col a --run-col b joined ('x/y', 'z') and ('x', 'y/z') into one run: both
    runs were held out and resampled together, without a word (the curves reader refuses)."""
    rows = {"a": ["x/y", "x/y", "x"], "b": ["z", "z", "y/z"], "N": [1e6] * 3,
            "D": [1e7, 2e7, 1e7], "loss": [3.0, 2.9, 3.1]}  # fmt: skip
    with pytest.raises(DataError, match=r"<dict>: row 3: run_cols a, b: \['x', 'y/z'\] and "):
        read_table(rows, run_cols=["a", "b"])
    rows["a"][2] = "w"
    assert len(set(read_table(rows, run_cols=["a", "b"]).groups)) == 2


def test_a_fit_through_runs_of_two_architectures_or_tokenizers_says_so(tmp_path):
    """`report` fits each architecture apart and refuses runs of two tokenizers; `fit` took
    a runs table of both into one law without a word (the runs table had no tokenizer
    column at all, so --where could not even part them)."""
    from scalinglab import ScalingLaw

    lines = ["arch,tokenizer_id,params,tokens,loss"]
    for arch, tok, scale in (("gpt", "aaaa", 1.0), ("lstm", "aaaa", 1.05), ("lstm", "bbbb", 1.2)):
        for N in (1e6, 3e6, 1e7):
            for D in (2e7, 6e7, 2e8):
                loss = scale * (1.7 + 400 / N**0.34 + 410 / D**0.28)
                lines.append(f"{arch},{tok},{N},{D},{loss}")
    path = tmp_path / "runs.csv"
    path.write_text("\n".join(lines) + "\n")

    def mixed(where):
        w = ScalingLaw("chinchilla", bootstrap=0, where=where).fit(path).warnings_
        return [x for x in w if x.startswith("the rows fitted hold")]

    assert mixed([]) == [
        "the rows fitted hold 2 values of column arch (gpt 9, lstm 18), one law through them "
        "all; --where arch=VALUE fits one",
        "the rows fitted hold 2 values of column tokenizer_id (aaaa 18, bbbb 9), one law "
        "through them all: a loss per token of one tokenizer is not another's; --where "
        "tokenizer_id=VALUE fits one",
    ]
    assert mixed(["arch=lstm"]) == [mixed([])[1].replace("aaaa 18", "aaaa 9")]
    assert mixed(["arch=lstm", "tokenizer_id=bbbb"]) == []


DATABLATIONS_CSV = "scaling_data/datablations_val_losses.csv"


@pytest.mark.parametrize(
    "op, ref", [(">=", np.greater_equal), ("<=", np.less_equal), (">", np.greater), ("<", np.less)]
)
def test_where_comparisons_include_or_exclude_a_row_on_the_bound_as_written(op, ref):
    every = read_csv(shared_file(DATABLATIONS_CSV), n_col="N_params", d_col="D_tokens")
    bound = float(np.unique(every.D)[len(np.unique(every.D)) // 2])  # a value rows hold exactly
    assert np.sum(bound == every.D) > 0
    kept = read_csv(
        shared_file(DATABLATIONS_CSV),
        n_col="N_params",
        d_col="D_tokens",
        where=[f"D_tokens{op}{bound!r}"],
    )
    assert len(kept) == int(np.sum(ref(every.D, bound)))


def test_min_over_cells_are_measured_from_their_first_value_not_chained():
    # D 0.8% apart from one row to the next: rows 0-1 are one cell, rows 2-3 another
    # (row 2 is 1.6% from row 0); chaining would make all four one cell
    rows = [{"N": 1e8, "D": 1e9 * 1.008**i, "lr": i, "loss": 3.0 + 0.01 * i} for i in range(4)]
    t = read_table(rows, need=("N", "D", "L"), min_over=["lr"])
    assert sorted(t.D) == pytest.approx([1e9, 1e9 * 1.008**2])
    assert sorted(t.L) == pytest.approx([3.0, 3.02])


def test_a_loss_alias_that_differs_on_a_later_row_is_refused():
    rows = [
        {"N": 1e8, "D": 1e9, "loss": 3.0, "val_loss": 3.0},
        {"N": 2e8, "D": 1e9, "loss": 2.5, "val_loss": 2.9},
        {"N": 3e8, "D": 1e9, "loss": 2.4, "val_loss": 2.8},
    ]
    with pytest.raises(DataError, match=r"row 2: columns 'loss' and 'val_loss' could both be"):
        read_table(rows, need=("N", "D", "L"))


def test_a_loss_of_zero_in_a_runs_table_is_refused_naming_its_row():
    rows = [
        {"N": n, "D": d, "loss": float(chinchilla_law(n, d))}
        for n in (1e7, 1e8, 1e9)
        for d in (1e9, 1e10)
    ]
    rows[2]["loss"] = 0
    with pytest.raises(DataError, match=r"row 3, column 'loss': 0 must be > 0"):
        read_table(rows, need=("N", "D", "L"))


def test_dropping_a_row_keeps_unique_tokens_apart_in_the_seed_noise():
    # datablations: runs of one N and D on other unique data are no seed repeats;
    # dropping the single highest-loss row must not merge them
    kw = dict(bootstrap=0, n_col="N_params", d_col="D_tokens")
    whole = ScalingLaw("chinchilla", **kw).fit(shared_file(DATABLATIONS_CSV))
    dropped = ScalingLaw("chinchilla", drop_highest=1, **kw).fit(shared_file(DATABLATIONS_CSV))
    assert dropped.noise_["seed_rows"] <= whole.noise_["seed_rows"]
    assert dropped.noise_["sigma_seeds"] == pytest.approx(whole.noise_["sigma_seeds"], rel=0.2)
