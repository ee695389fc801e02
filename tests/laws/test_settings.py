"""FitConfig and TableConfig: one name and one default in Python, on the command line and in TOML."""

import dataclasses
import json
import tomllib

import pytest

from scalinglab.cli import build_parser
from scalinglab.config import flags_given
from scalinglab.errors import ConfigError, DataError
from scalinglab.laws import ScalingLaw, load_fit
from scalinglab.laws import settings as fit_settings
from scalinglab.laws.settings import FitConfig, TableConfig, fit_config


def fit_args(*flags):
    return build_parser().parse_args(["fit", "runs.csv", *flags])


def test_one_default_everywhere():
    cli = fit_args()
    law = ScalingLaw("chinchilla")
    assert FitConfig().bootstrap == 1000
    assert FitConfig(**flags_given(cli, FitConfig)) == FitConfig() == fit_config({}, "[fit]")
    assert TableConfig(**flags_given(cli, TableConfig)) == TableConfig()
    defaults = {**dataclasses.asdict(FitConfig()), **dataclasses.asdict(TableConfig())}
    assert law.settings == defaults
    assert defaults["bootstrap"] == 1000 and defaults["run_cols"] == ["run_id"]


def test_same_values_from_toml_flags_and_python():
    toml = tomllib.loads(
        'bootstrap = 50\nseed = 3\nci_level = 0.9\ncurvature = "shared"\nfloor = false\n'
        "huber_delta = 0.01\nboot_starts = 2\nprune = false\nenvelope_points = 40\n"
        "chance = 0.25\n"
    )
    cli = fit_args(
        "--bootstrap", "50", "--seed", "3", "--ci-level", "0.9", "--curvature", "shared",
        "--no-floor", "--huber-delta", "0.01", "--boot-starts", "2", "--no-prune",
        "--envelope-points", "40", "--chance", "0.25",
    )  # fmt: skip
    py = FitConfig(bootstrap=50, seed=3, ci_level=0.9, curvature="shared", floor=False,
                   huber_delta=0.01, boot_starts=2, prune=False, envelope_points=40,
                   chance=0.25)  # fmt: skip
    assert fit_config(toml, "t.toml [fit]") == FitConfig(**flags_given(cli, FitConfig)) == py
    assert py.ci_level == 0.9 and py.curvature == "shared" and py.prune is False


def test_table_flags_keep_their_shapes():
    cli = fit_args(
        "--where", "arch=gpt", "--where", "status!=failed", "--budgets", "1e18", "3e18",
        "--run-col", "run", "--run-col", "seed", "--n-kind", "params_nonembed",
        "--loss-col", "val", "--drop-highest", "5",
    )  # fmt: skip
    t = TableConfig(**flags_given(cli, TableConfig))
    assert t == TableConfig(where=["arch=gpt", "status!=failed"], budgets=[1e18, 3e18],
                            run_cols=("run", "seed"), n_kind="params_nonembed",
                            loss_col="val", drop_highest=5)  # fmt: skip
    assert t.run_cols == ["run", "seed"] and t.budgets == [1e18, 3e18]
    law = ScalingLaw("isoflop", **flags_given(cli, TableConfig))
    assert law.settings["where"] == ["arch=gpt", "status!=failed"]


@pytest.mark.parametrize(
    "table, message",
    [
        (
            {"curvature": "flat"},
            "s.toml [fit]: curvature 'flat' is not one of per-budget, shared",
        ),
        ({"isoflop_curvature": "flat"}, "s.toml [fit]: curvature 'flat' is not one of"),
        (
            {"bootstrap": -5},
            "s.toml [fit]: bootstrap must be 0 (no intervals) or >= 10 resamples, got -5",
        ),
        ({"bootstrap": 2.5}, "s.toml [fit]: bootstrap must be int, got float 2.5"),
        ({"ci_level": 1.0}, "s.toml [fit]: ci_level must be in (0, 1), got 1.0"),
        ({"huber_delta": 0}, "s.toml [fit]: huber_delta must be > 0, got 0.0"),
        ({"boot_starts": 0}, "s.toml [fit]: boot_starts must be >= 1, got 0"),
        ({"chance": 1}, "s.toml [fit]: chance must be in [0, 1), got 1.0"),
        ({"floor": "yes"}, "s.toml [fit]: floor must be bool, got str 'yes'"),
        ({"resamples": 9}, "s.toml [fit]: unknown key(s) resamples (known: boot_starts,"),
        ({"n_col": "N"}, "s.toml [fit]: unknown key(s) n_col"),
    ],
)
def test_bad_fit_table_is_one_line_naming_it(table, message):
    with pytest.raises(ConfigError) as e:
        fit_config(table, "s.toml [fit]")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_old_spelling_of_curvature_is_read():
    assert fit_config({"isoflop_curvature": "shared"}, "study.json [fit]").curvature == "shared"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"bootstrap": -1}, "bootstrap must be 0 (no intervals) or >= 10 resamples, got -1"),
        # grew until the OS killed the process (report --bootstrap 1000000000)
        ({"bootstrap": 10**9}, "bootstrap 1000000000: at most 100,000 resamples (each is a"),
        ({"curvature": "wobbly"}, "curvature 'wobbly' is not one of per-budget, shared"),
        ({"drop_highest": -2}, "drop_highest must be >= 0, got -2"),
        ({"n_kind": "tokens"}, "n_kind 'tokens' is not one of params, params_nonembed"),
        ({"budgets": ["lots"]}, "budgets must be numbers, got ['lots']"),
        ({"resamples": 10}, "unknown fit setting(s) resamples (known: boot_starts,"),
    ],
)
def test_bad_python_setting_names_it(settings, message):
    with pytest.raises(ConfigError) as e:
        ScalingLaw("chinchilla", **settings)
    assert str(e.value).startswith(message)


def test_fit_json_with_an_unknown_setting_is_a_data_error(tmp_path):
    law = ScalingLaw("power-c", bootstrap=0).fit({"C": [1e18, 1e19, 1e20, 1e21],
                                                   "L": [3.0, 2.6, 2.3, 2.1]})  # fmt: skip
    obj = law.to_json()
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(obj))
    assert load_fit(path).settings == law.settings
    obj["settings"]["resamples"] = 3
    path.write_text(json.dumps(obj))
    with pytest.raises(DataError, match=r"fit.json: malformed fit.json \(unknown fit setting"):
        load_fit(path)


def test_fit_json_missing_a_parameter_of_its_law_is_a_data_error(tmp_path, capsys):
    """A fit.json without params.beta, or whose bootstrap samples lack a key, was a KeyError
    traceback in plan; each law's own parameters are checked (power-c without a floor has
    no E, and is fine)."""
    from scalinglab.cli import main

    law = ScalingLaw.from_params("chinchilla", E=1.7, A=400.0, B=1200.0, alpha=0.34, beta=0.28)
    obj = law.to_json()
    obj["bootstrap"] = {"resamples": 10, "seed": 0,
                        "samples": {k: [v] * 10 for k, v in law.params_.items()}}  # fmt: skip
    path = tmp_path / "fit.json"
    path.write_text(json.dumps(obj))
    assert main(["plan", str(path), "--flops", "1e21"]) == 0
    capsys.readouterr()
    for where, what in (
        (obj["params"], "params"),
        (obj["bootstrap"]["samples"], "bootstrap samples"),
    ):
        kept = where.pop("beta")
        path.write_text(json.dumps(obj))
        assert main(["plan", str(path), "--flops", "1e21"]) == 2
        assert capsys.readouterr().err == (
            f"error: {path}: malformed fit.json (its {what} lack beta of law 'chinchilla', "
            "whose parameters are E, A, B, alpha, beta)\n"
        )
        where["beta"] = kept
    bare = ScalingLaw("power-c", bootstrap=0, floor=False).fit(
        {"C": [1e18, 1e19, 1e20, 1e21], "L": [3.0, 2.6, 2.3, 2.1]})  # fmt: skip
    assert load_fit(bare.to_json()).params_ == bare.params_
    obj = ScalingLaw.from_params("isoflop", k_N=0.1, a=0.5, k_D=1.7, b=0.5).to_json()
    assert load_fit(obj).params_["a"] == 0.5  # k_L, a_L are optional
    del obj["params"]["a"]
    with pytest.raises(DataError, match=r"its params lack a of law 'isoflop'"):
        load_fit(obj)


# Known answers for mutations of laws/settings.py that every test passed (a mutation audit):
# each fails on its mutation.
def test_fit_defaults_as_documented():
    """Kills ST4 (ci_level default 0.95 -> 0.9). Known answer: 95% intervals."""
    assert fit_settings.FitConfig().ci_level == 0.95


def test_three_envelope_points_is_the_least():
    """Kills ST5 (`envelope_points < 3` -> `< 2`). Known answer: 2 refused, 3 accepted."""
    assert fit_settings.FitConfig(envelope_points=3).envelope_points == 3
    with pytest.raises(ConfigError, match="must be >= 3"):
        fit_settings.FitConfig(envelope_points=2)


def test_min_over_splits_comma_separated_columns():
    """Kills ST7 (the split on ',' dropped). Known answer: 'lr,batch_size' and
    ['lr', ' seed'] are the columns ['lr', 'batch_size'] and ['lr', 'seed']."""
    assert fit_settings.TableConfig(min_over="lr,batch_size").min_over == ["lr", "batch_size"]
    assert fit_settings.TableConfig(min_over=["lr", " seed"]).min_over == ["lr", "seed"]


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"ci_level": 0.0}, "ci_level must be in (0, 1), got 0.0"),
        ({"decay_factor": 1.0}, "decay_factor must be in (0, 1), got 1.0"),
    ],
)
def test_fit_settings_at_the_open_end_of_their_range_are_refused(kw, message):
    with pytest.raises(ConfigError) as e:
        FitConfig(**kw)
    assert message in str(e.value)


@pytest.mark.parametrize("budgets", [[1e18, -1e19], [0.0]])
def test_budgets_that_are_no_flops_are_refused(budgets):
    with pytest.raises(ConfigError, match="budgets must be FLOPs > 0"):
        TableConfig(budgets=budgets)
