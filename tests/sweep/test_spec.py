import sys
import tomllib

import pytest

from scalinglab.cli import main
from scalinglab.errors import DataError, MissingExtraError, SweepError
from scalinglab.study.builtin import QUICKSTART_TOML
from scalinglab.study.spec import parse_study, run_columns
from scalinglab.sweep.driver import make_plan
from scalinglab.sweep.executors import ExecutorConfig, make_executor
from scalinglab.sweep.spec import DEFAULT_TOKENS_PER_PARAM, IsoflopDesign, load_spec, parse_spec
from tests.sweep.conftest import write_spec

GRID = 'kind = "grid"\nparams = [2000]\ntokens = [640]\n'


def test_valid_spec_and_defaults(tmp_path, shards):
    spec = load_spec(write_spec(tmp_path, shards, 'kind = "isoflop"\nbudgets = [3e7, 1e7]'))
    assert spec.name == "t" and spec.archs == ["gpt"] and spec.kind == "isoflop"
    assert isinstance(spec.design, IsoflopDesign)
    assert spec.design.budgets == [1e7, 3e7]  # sorted
    assert spec.design.tokens_per_param == DEFAULT_TOKENS_PER_PARAM == 200.0
    assert (spec.design.sizes, spec.design.spread, spec.design.recentre) == (5, 16.0, False)
    assert spec.design.flops_convention == "6nd"
    assert spec.hparams["gpt"].lr == 1e-2


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(extra="colour = 1"), r"spec.toml: unknown key\(s\) colour \(known: archs"),
        (dict(train="lr_max = 1"), r"\[train\]: unknown key\(s\) lr_max"),
        (dict(train="grad_accum = 0"), r"\[train\].*grad_accum must be positive"),
        (dict(train="steps = 10"), r"\[train\]: steps are set by the sweep"),
        (dict(design='kind = "grid"\nparams = [2000]\ntokens = [640]\nbogus = 2'),
         r"\[design\]: unknown key\(s\) bogus"),
        (dict(design='kind = "cube"'), r"\[design\]: kind 'cube' is not one of grid"),
        (dict(design='kind = "isoflop"\nbudgets = [1e7, -1]'), r"budgets must hold positive"),
        (dict(design='kind = "grid"\nparams = [2000]'), r"give exactly one of tokens or flops"),
    ],
)  # fmt: skip
def test_bad_spec_names_the_key(tmp_path, shards, kw, message):
    design = kw.pop("design", GRID)
    with pytest.raises(SweepError, match=message):
        load_spec(write_spec(tmp_path, shards, design, **kw))


@pytest.mark.parametrize(
    ("design", "message"),
    [
        ('kind = "isoflop"\nbudgets = [1e7, 3e7, 1e7]', "budgets: 1e+07 is given twice"),
        ('kind = "grid"\nparams = [2000, 4000]\ntokens = [640, 640.0]',
         "tokens: 640 is given twice"),
        ('kind = "ladder"\nparams = [2000, 2e3, 4000]\ntokens_per_param = [20, 40]',
         "params: 2000 is given twice"),
        ('kind = "wsd"\nparams = [2000, 4000]\ntokens_per_param = [20, 40, 20]',
         "tokens_per_param: 20 is given twice"),
    ],
)  # fmt: skip
def test_a_value_listed_twice_is_named(tmp_path, shards, design, message):
    """A budget or size typed twice planned its runs twice ('the design plans the same run
    twice', naming neither key nor file), or, in a ladder, moved the copy to another shape."""
    with pytest.raises(SweepError) as e:
        load_spec(write_spec(tmp_path, shards, design))
    assert str(e.value) == (
        f"{tmp_path / 'spec.toml'} [design]: {message} (each value is planned once)"
    )


def test_unknown_hparams_and_shape_keys(tmp_path, shards):
    p = write_spec(tmp_path, shards, GRID)
    p.write_text(p.read_text().replace("[hparams]", "[hparams]\nlr_scale = 2"))
    with pytest.raises(SweepError, match=r"\[hparams\]: unknown key\(s\) lr_scale"):
        load_spec(p)
    p.write_text(p.read_text().replace("[shape]", "[shape]\ndepth = 2"))
    with pytest.raises(SweepError, match=r"\[shape\]: unknown key\(s\) depth"):
        load_spec(p)
    for old, new, message in [
        ("lr = 1e-2", 'lr = "fast"', r"\[hparams\]: lr must be a positive number, got 'fast'"),
        (
            "[design]",
            "[hparams.gpt]\nlr = -1\n[design]",
            r"\[hparams\]\.gpt: lr must be a positive",
        ),
    ]:
        p = write_spec(tmp_path, shards, GRID)
        p.write_text(p.read_text().replace(old, new, 1))
        with pytest.raises(SweepError, match=message):
            load_spec(p)
    p = write_spec(tmp_path, shards, GRID)
    p.write_text(p.read_text().replace("head_size = 4", "head_size = 4.5"))
    with pytest.raises(SweepError, match=r"\[shape\]: head_size must be a positive integer"):
        load_spec(p)
    for key in ("arch = 'lstm'", "n_embd = 64", "vocab_size = 50"):
        p = write_spec(tmp_path, shards, GRID)
        p.write_text(p.read_text().replace("[model]", f"[model]\n{key}"))
        with pytest.raises(SweepError, match=rf"\[model\]: {key.split()[0]} are set by the sweep"):
            load_spec(p)


def test_shards_path_missing(tmp_path):
    spec = load_spec(write_spec(tmp_path, tmp_path / "nope", GRID))
    with pytest.raises(
        DataError, match=r"data = '.*nope'.*shards folder not found.*scalinglab prepare"
    ):
        make_plan(spec)


def test_cli_prints_one_line_errors(tmp_path, shards, capsys):
    p = write_spec(tmp_path, shards, GRID, extra="colour = 1")
    assert main(["sweep", str(p), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "colour" in err
    assert main(["sweep", str(tmp_path / "missing.toml"), "--dry-run"]) == 2
    assert "config file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "module", "extra"), [("ray", "ray", "ray"), ("submitit", "submitit", "slurm")]
)
def test_executor_extra_missing_says_which_pip_install(tmp_path, monkeypatch, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(MissingExtraError, match=rf"pip install 'scalinglab\[{extra}\]'"):
        make_executor(ExecutorConfig(name, workers=1, threads=1), tmp_path)


def test_submitit_params_parsed_and_checked(tmp_path):
    pytest.importorskip(
        "submitit", reason="needs the [slurm] extra: pip install 'scalinglab[slurm]'"
    )
    from scalinglab.cli.sweep import _key_values
    from scalinglab.errors import ConfigError

    kv = _key_values(["slurm_account=abc", "slurm_mem_gb=8", "local_signal_delay_s=2.5"])
    assert kv == {"slurm_account": "abc", "slurm_mem_gb": 8, "local_signal_delay_s": 2.5}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        _key_values(["slurm_account"])
    cfg = ExecutorConfig("submitit", workers=1, threads=1, cluster="local",
                         submitit_params={"local_bogus": 1})  # fmt: skip
    with pytest.raises(ConfigError, match=r"submitit_params: .*Unknown argument 'bogus'"):
        make_executor(cfg, tmp_path / "out")  # checked before anything is written
    assert not (tmp_path / "out").exists()


def test_a_shape_error_names_the_spec_file(tmp_path, shards):
    """It read `[design] shapes[0] for gpt: ...` where every other spec error names the file."""
    design = 'kind = "grid"\nshapes = [{n_layer = 1, n_embd = 8, n_head = 3}]\ntokens = [640]\n'
    path = write_spec(tmp_path, shards, design)
    with pytest.raises(SweepError, match=rf"^{path} \[design\] shapes\[0\] for gpt: n_embd 8 is"):
        make_plan(load_spec(path))


def test_a_shape_error_names_the_spec_keys_on_the_command_line(tmp_path, shards, capsys):
    """`scalinglab sweep` said '[design] shapes[0] for gpt: --n-embd 8 is not divisible by
    --n-head 3': flags the spec has no such key for."""
    from scalinglab.cli import main

    design = 'kind = "grid"\nshapes = [{n_layer = 1, n_embd = 8, n_head = 3}]\ntokens = [640]\n'
    path = write_spec(tmp_path, shards, design)
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path} [design] shapes[0] for gpt: n_embd 8 is not divisible")
    assert "--" not in err, err


def test_rope_with_an_odd_head_size_names_both_keys(tmp_path, shards):
    """[model] pos = "rope" beside an odd [shape] head_size failed as each shape was planned,
    '--pos rope needs an even head size; --n-embd 3 / --n-head 1 = 3': no file, no key."""
    p = write_spec(tmp_path, shards, GRID)
    text = p.read_text().replace("[model]", '[model]\npos = "rope"')
    p.write_text(text.replace("head_size = 4", "head_size = 3"))
    with pytest.raises(SweepError) as e:
        load_spec(p)
    assert str(e.value) == (
        f'{p} [shape]: head_size 3 is odd, and [model] pos = "rope" rotates pairs of a '
        "head's dimensions: give an even head_size"
    )
    p.write_text(text.replace("head_size = 4", "head_size = 2"))
    assert load_spec(p).shape.head_size == 2


def _parsed(**over):
    return parse_spec({"data": "x", "design": {"kind": "grid", "params": [2e3], "tokens": [640]},
                       **over})  # fmt: skip


def test_rule_defaults_are_the_documented_ones():
    """warmup_frac 0.05, aspect 16, head_size 8 and LR_POWER 0.5: a spec
    that leaves [shape] and [hparams] out trains with these (docs/sweeps.md)."""
    s = _parsed()
    r = s.hparams["gpt"]
    assert (r.lr, r.ref_width, r.lr_power, r.warmup_frac) == (3e-3, 64, 0.5, 0.05)
    sh = s.shape
    assert (sh.aspect, sh.head_size, sh.rnn_layers, sh.width_multiple) == (16.0, 8, 1, 4)
    assert (sh.min_layers, sh.max_layers) == (1, 48)


@pytest.mark.parametrize("archs", [["lstm", "gpt"], ["gpt", "lstm"]])
def test_model_table_is_checked_against_every_arch(archs):
    """param = "mup" is the GPT's: a spec whose [model] gives it beside an LSTM is refused
    when read, the LSTM listed first or last (listed last, it was accepted, and the sweep
    failed when it planned the LSTM's runs, naming a flag, not the spec's key)."""
    with pytest.raises(SweepError, match=r"\[model\]: param mup is for the GPT; arch lstm"):
        _parsed(archs=archs, model={"param": "mup"})
    assert _parsed(archs=archs).archs == archs


def test_isoflop_sizes_bound_is_inclusive():
    """100 sizes is the documented most, and is accepted."""
    d = {"kind": "isoflop", "budgets": [1e9, 1e10]}
    assert _parsed(design={**d, "sizes": 100}).design.sizes == 100
    with pytest.raises(SweepError, match="at most 100"):
        _parsed(design={**d, "sizes": 101})


@pytest.mark.parametrize("key", ["params", "tokens"])
def test_a_zero_size_or_budget_is_refused(key):
    """N = 0 or D = 0 is no size or budget."""
    d = {"kind": "grid", "params": [2e3], "tokens": [640], key: [0]}
    with pytest.raises(SweepError, match=f"{key} must hold positive numbers, got 0"):
        _parsed(design=d)


def test_print_config_of_a_grid_spec_is_toml_that_reads_back_the_same():
    """`sweep --print-config` of a
    grid over tokens (no flops, no shapes) printed a TypeError traceback."""
    from scalinglab.config import dumps_toml
    from scalinglab.sweep.spec import spec_dict

    s = _parsed()
    again = parse_spec(tomllib.loads(dumps_toml(spec_dict(s))))
    assert again.design == s.design and again.design.flops is None


def _qs() -> dict:
    return tomllib.loads(QUICKSTART_TOML)


def test_study_defaults_workers_and_minutes():
    """the module's documented defaults."""
    d = _qs()
    del d["workers"], d["minutes"]
    s = parse_study(d)
    assert (s.workers, s.minutes) == (2, 10.0)


def test_isoflop_sweep_of_two_sizes_is_refused():
    """a parabola per budget needs 3 sizes."""
    d = _qs()
    d["sweeps"]["lstm"]["sizes"] = 2
    with pytest.raises(SweepError, match="sizes must be at least 3"):
        parse_study(d)


def test_seed_noise_arch_defaults_to_the_backtests():
    """with the backtest on the LSTM,
    [seed_noise] without arch repeats an LSTM point (1e11 is none of the GPT's budgets)."""
    d = _qs()
    d["backtest"] = {"arch": "lstm", "budget": 1e13, "predictor": "frontier"}
    d["seed_noise"] = {"budget": 1e11, "seeds": [1]}
    assert parse_study(d).seed_noise.arch == "lstm"


def test_run_columns_are_those_every_run_has():
    """an IsoFLOP study's
    runs (sweeps, seed repeats, the grid backtest) all have `budget`; a WSD ladder's no
    design column in common with the grid backtest."""
    qs = parse_study(_qs())
    assert run_columns(qs.sweeps) == {}  # the GPT sweep is trunks: its trunks have none
    d = _qs()
    d["sweeps"]["gpt"]["trunks"] = False
    assert run_columns(parse_study(d).sweeps) == {"budget": 1.0}


def test_print_config_of_seed_noise_has_only_the_key_its_sweep_reads():
    """an IsoFLOP point is given by budget,
    so `study --print-config` writes no params = 0.0 under [seed_noise]."""
    from scalinglab.study.spec import study_dict

    sn = study_dict(parse_study(_qs()))["seed_noise"]
    assert "params" not in sn and sn["budget"] > 0
