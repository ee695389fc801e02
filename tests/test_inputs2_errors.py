"""Bad input is refused in one line naming what is wrong and where (audit, inputs 2)."""

import pytest

from scalinglab.cli import main
from scalinglab.errors import ConfigError
from scalinglab.laws import ScalingLaw
from scalinglab.plan import rank_schedules
from tests.laws.test_curves import MPL_25M
from tests.reliability.helpers import ROOT, one_line_error
from tests.sweep.conftest import write_spec
from tests.train.helpers import TEXT, tiny_shards

ISO = "kind = 'isoflop'\nbudgets = [3e7, 9e7]\nsizes = 3\ntokens_per_param = 20\nspread = 3"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("train.lr=5", "[train]: lr is set per run by [hparams]: use [hparams] lr (the lr at "
         "ref_width, scaled per width by lr_power)"),
        ("train.warmup=10", "[train]: warmup is set per run by [hparams]: use [hparams] "
         "warmup_frac (warmup = warmup_frac × the run's steps)"),
        ("train.steps=10", "[train]: steps are set by the sweep, per run (the budget by [design])"),
        ("hparams.lr_power=nan", "[hparams]: lr_power must be a finite number, got nan"),
        ("hparams.lr_power=inf", "[hparams]: lr_power must be a finite number, got inf"),
        ("hparams.ref_width=inf", "[hparams]: ref_width must be a finite number >= 1, got inf"),
        ("hparams.grad_clip=nan", "[hparams]: grad_clip must be a finite number (-1: [train]'s), "
         "got nan"),
        ("design.spread=nan", "[design]: spread must be a finite number, got nan"),
        ("design.sizes=100000", "[design]: sizes must be at most 100, got 100000: each size is a "
         "run at every budget, and a profile's parabola needs 3 to about 10"),
    ],
)  # fmt: skip
def test_sweep_spec_settings_refused(tmp_path, capsys, setting, message):
    data = tiny_shards(tmp_path / "shards", TEXT * 4)
    spec = write_spec(tmp_path, data, ISO)
    argv = ["sweep", str(spec), "--out", str(tmp_path / "o"), "--dry-run", "--set", setting]
    assert one_line_error(capsys, argv) == f"error: --set {setting}: {spec} {message}\n"


def test_examples_set_no_per_run_train_keys(tmp_path):
    from scalinglab.study.builtin import QUICKSTART_TOML
    from scalinglab.study.spec import load_study, parse_study
    from scalinglab.sweep.spec import load_spec

    for path in sorted((ROOT / "examples").glob("*.toml")):
        (load_study if "[sweeps." in path.read_text() else load_spec)(path)
    import tomllib

    parse_study(tomllib.loads(QUICKSTART_TOML), "quickstart")


def test_isoflop_budgets_of_one_shape_are_warned(tmp_path, capsys):
    """The hint names the [shape] key that spaces the architecture's widths: a GPT's are
    multiples of head_size (it named width_multiple, which no GPT reads), an RNN's of
    width_multiple."""
    data = tiny_shards(tmp_path / "shards", TEXT * 4)
    spec = write_spec(tmp_path, data, ISO.replace("spread = 3", "spread = 1"))
    spec.write_text(spec.read_text().replace('archs = ["gpt"]', 'archs = ["gpt", "lstm"]'))
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--dry-run"]) == 0
    warns = [x for x in capsys.readouterr().err.splitlines() if x.startswith("warning:")]
    assert len(warns) == 4
    assert warns[0].startswith("warning: [design] budget 3e+07 (gpt): its sizes round to 2 ")
    hint = "the IsoFLOP fit needs 3 per budget: raise that budget or sizes, or make [shape] "
    assert warns[0].endswith(f"parameters); {hint}head_size smaller")
    assert warns[2].startswith("warning: [design] budget 3e+07 (lstm): its sizes round to ")
    assert warns[2].endswith(f"parameters); {hint}width_multiple smaller")


def _study(tmp_path, old, new) -> str:
    (tmp_path / "corpus.txt").write_bytes(TEXT * 4)
    text = (ROOT / "examples/tiny_study.toml").read_text()
    text = text.replace('sources = ["stdlib"]', f'sources = ["{tmp_path / "corpus.txt"}"]')
    assert old in text
    (tmp_path / "study.toml").write_text(text.replace(old, new))
    return str(tmp_path / "study.toml")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("[train]\n", "[train]\nlr = 1e-3\n", " [train]: lr is set per run by [hparams]: use "
         "[hparams] lr (the lr at ref_width, scaled per width by lr_power)"),
        ("[train]\n", "[train]\nwarmup = 5\n", " [train]: warmup is set per run by [hparams]: "
         "use [hparams] warmup_frac (warmup = warmup_frac × the run's steps)"),
        ("[data]\n", '[data]\nshards = ["x"]\n', ": [data] shards must be a folder path (a "
         "string), got ['x']"),
    ],
)  # fmt: skip
def test_study_spec_refused_when_read(tmp_path, capsys, old, new, message):
    spec = _study(tmp_path, old, new)
    argv = ["study", spec, "--out", str(tmp_path / "o"), "--dry-run"]
    assert one_line_error(capsys, argv) == f"error: {spec}{message}\n"


def test_study_sources_must_be_a_list(tmp_path, capsys):
    spec = _study(tmp_path, "sources = [", "sources = 'stdlib'\nxx = [")
    argv = ["study", spec, "--out", str(tmp_path / "o"), "--dry-run"]
    want = f"error: {spec}: [data] sources must be a list of source names or paths, got 'stdlib'\n"
    assert one_line_error(capsys, argv) == want


def test_quickstart_minutes_too_small_names_minutes(tmp_path, capsys):
    argv = ["quickstart", "--dry-run", "--out", str(tmp_path / "q"), "--minutes", "1e-30"]
    assert one_line_error(capsys, argv) == (
        "error: --minutes 1e-30 is too small: the smallest run of [sweeps.gpt] would train on "
        "about 1.52e-10 tokens, less than one batch (1024 tokens: batch_size × grad_accum × "
        "block_size); raise --minutes\n"
    )


def test_plan_schedule_length_must_match_steps():
    law = ScalingLaw("multi-power", bootstrap=0)
    law.params_, law.samples_ = dict(MPL_25M), None
    with pytest.raises(ConfigError) as exc:
        rank_schedules(law, 2000, ["warmup(500, 3e-4) + cosine(23500, 3e-5)"])
    assert exc.value.message == (
        "--schedule 'warmup(500, 3e-4) + cosine(23500, 3e-5)' is 24000 steps long and --steps "
        "is 2000: give a schedule of exactly --steps steps"
    )
    assert len(rank_schedules(law, 24000, ["warmup(500, 3e-4) + cosine(23500, 3e-5)"])) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--schedule", "warmup(500, 3e-4)"], "--schedule needs --steps S"),
        (["--peak-lr", "3e-4"], "--peak-lr needs --steps S"),
        (["--steps", "2000", "--peak-lr=-3e-4"], "--peak-lr must be a finite number > 0, got -0.0003"),
    ],
)  # fmt: skip
def test_plan_schedule_flags_need_steps(tmp_path, capsys, extra, message):
    err = one_line_error(capsys, ["plan", str(tmp_path / "fit.json"), *extra])
    assert err.startswith(f"error: {message}")


@pytest.mark.parametrize(
    ("widths", "message"),
    [
        ("16,16", "--widths '16,16': 16 given twice; give each width once"),
        ("16", "--widths '16': give 2 or more widths (the growth exponents are fitted across "
         "widths)"),
    ],
)  # fmt: skip
def test_coord_check_needs_two_distinct_widths(tmp_path, capsys, widths, message):
    data = tiny_shards(tmp_path / "shards")
    argv = ["coord-check", "--data", str(data), "--out", str(tmp_path / "cc"), "--widths", widths,
            "--steps", "1", "--batch-size", "2", "--block-size", "16", "--n-layer", "1"]  # fmt: skip
    assert one_line_error(capsys, argv) == f"error: {message}\n"
    assert not (tmp_path / "cc").exists()
