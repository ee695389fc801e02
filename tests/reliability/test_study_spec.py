"""A study spec whose runs cannot support its fits is refused by `--dry-run` and before
anything trains, not after the sweep (issue 16, item 9)."""

from scalinglab.cli import main
from tests.reliability.helpers import ROOT, one_line_error
from tests.train.helpers import TEXT


def _spec(tmp_path, **replace) -> str:
    (tmp_path / "corpus.txt").write_bytes(TEXT * 4)
    text = (ROOT / "examples/tiny_study.toml").read_text()
    text = text.replace('sources = ["stdlib"]', f'sources = ["{tmp_path / "corpus.txt"}"]')
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    (tmp_path / "study.toml").write_text(text)
    return str(tmp_path / "study.toml")


def _argv(tmp_path, spec, *extra):
    return ["study", spec, "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"),
            "--workers", "1", *extra]  # fmt: skip


def test_sizes_that_collapse_to_one_shape_are_refused_before_any_run(tmp_path, capsys, caplog):
    """A budget whose sizes sit on the grid's smallest shapes cannot give 3 distinct
    ones: no parabola. It was found after the sweep, at the fit; now before anything runs.
    (A narrow spread no longer collapses: sizes that round to one shape take the next
    shape outward.)"""
    narrow = _spec(tmp_path, **{"spread = 3": "spread = 1.05"})
    assert main(_argv(tmp_path, narrow, "--dry-run")) == 0
    # the sizes moved outward are named, as `sweep` names them (they were moved silently)
    moved = [x for x in caplog.messages if " is planned as " in x]
    capsys.readouterr()
    assert moved and all(x.startswith("[sweeps.gpt] budget ") for x in moved)
    spec = _spec(tmp_path, **{"budgets = [3e9, 1e10]": "budgets = [3e8, 1e10]",
                              "\nbudget = 3e9": "\nbudget = 3e8"})  # fmt: skip
    want = (  # the spec's file named, as its parse errors name it
        f"error: {spec} [sweeps.gpt]: the IsoFLOP fit needs 3 model sizes at each of 2 budgets or "
        "more, and this spec plans 3e+08: 2, 1e+10: 3 (sizes per budget); raise `sizes`, "
        "widen `spread` or add budgets\n"
    )
    assert one_line_error(capsys, _argv(tmp_path, spec, "--dry-run")) == want
    assert one_line_error(capsys, _argv(tmp_path, spec)) == want
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_the_shipped_tiny_study_passes_the_check(tmp_path, capsys):
    assert main(_argv(tmp_path, _spec(tmp_path), "--dry-run")) == 0
    assert "plan: 7 sweep runs (0 already done) and the backtest" in capsys.readouterr().err
