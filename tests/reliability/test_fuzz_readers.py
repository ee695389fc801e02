"""Fuzzing the readers a user feeds files to (issue 16, "must show" 2): runs tables
(`fit`, CSV), corpora (`prepare`, text and JSONL), configs (`train --config`, TOML) and
study specs (`study --dry-run`, TOML). Whatever the bytes, the command either works or
prints one line `error: ...` and exits non-zero: never a traceback.

Hypothesis draws both raw bytes and inputs shaped like the real thing (a header of the
usual column names over cells of numbers, NaN, infinities, words and nothing; JSON
values of every kind; TOML tables of known and unknown keys), so the examples reach past
the first parse into the checks behind it."""

import json
import tempfile
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis", reason="the fuzz tests need the [dev] extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from scalinglab.cli import main  # noqa: E402

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
NAMES = ["run_id", "params", "tokens", "loss", "flops", "N", "D", "C", "status", "budget",
         "val_loss", "", "params "]  # fmt: skip
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["", "nan", "inf", "-inf", "1e9", "1e400", "completed", "x", '"', "1,5"]),
    st.text(max_size=6),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)
TOML_KEYS = ["model", "train", "format_version", "n_layer", "n_embd", "lr", "seed", "steps",
             "batch_size", "data", "name", "archs", "design", "sweeps", "budgets", "bogus"]  # fmt: skip


def _csv(header, rows) -> bytes:
    lines = [",".join(header)] + [",".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


def _toml_value():
    scalar = (st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8) | st.booleans()).map(
        lambda v: json.dumps(v) if not isinstance(v, float) else repr(v).replace("inf", "inf")
    )
    return scalar | st.lists(scalar, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]")


def _toml_text():
    line = st.tuples(st.sampled_from(TOML_KEYS), _toml_value()).map(lambda kv: f"{kv[0]} = {kv[1]}")
    table = st.tuples(st.sampled_from(TOML_KEYS), st.lists(line, max_size=4)).map(
        lambda t: f"[{t[0]}]\n" + "\n".join(t[1])
    )
    return st.lists(line | table, max_size=6).map(lambda xs: "\n".join(xs) + "\n")


def _assert_clean(argv, capsys) -> None:
    """The command works (0) or prints exactly one line `error: ...` and exits 1 or 2."""
    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    if rc != 0:
        lines = [x for x in err.splitlines() if not x.startswith(("warning:", "note:"))]
        assert rc in (1, 2), (rc, err)
        assert len(lines) >= 1 and lines[-1].startswith("error: "), err
        assert lines[-1].count("\n") == 0


def _file(tmp: Path, name: str, data: bytes) -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.builds(
            _csv,
            st.lists(st.sampled_from(NAMES), min_size=1, max_size=6),
            st.lists(st.lists(CELLS, min_size=0, max_size=7), max_size=12),
        ),
    )
)
def test_fit_reads_any_csv_or_refuses_in_one_line(data, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        csv = _file(Path(tmp), "runs.csv", data)
        _assert_clean(["fit", csv, "--bootstrap", "0", "--out", Path(tmp) / "fit.json"], capsys)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")),
    ),
    tokenizer=st.sampled_from(["byte", "char", "word"]),
)
def test_prepare_reads_any_text_or_refuses_in_one_line(data, tokenizer, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _file(Path(tmp), "corpus.txt", data)
        argv = ["prepare", corpus, "--out", Path(tmp) / "out", "--tokenizer", tokenizer,
                "--block-size", "2"]  # fmt: skip
        _assert_clean(argv, capsys)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.lists(JSON.map(json.dumps) | st.text(max_size=30) | st.just(""), max_size=8).map(
            lambda ls: "\n".join(ls).encode("utf-8", "surrogatepass")
        ),
        st.lists(
            st.dictionaries(st.sampled_from(["text", "body", "id"]), JSON, max_size=3).map(
                json.dumps
            ),
            max_size=8,
        ).map(lambda ls: "\n".join(ls).encode()),
    )
)
def test_prepare_reads_any_jsonl_or_refuses_in_one_line(data, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _file(Path(tmp), "corpus.jsonl", data)
        argv = ["prepare", corpus, "--out", Path(tmp) / "out", "--tokenizer", "char",
                "--block-size", "2"]  # fmt: skip
        _assert_clean(argv, capsys)


TOML_DATA = st.one_of(
    st.binary(max_size=200),
    _toml_text().map(lambda t: t.encode("utf-8", "surrogatepass")),
)


@FUZZ
@given(data=TOML_DATA)
def test_train_reads_any_config_or_refuses_in_one_line(data, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _file(Path(tmp), "run.toml", data)
        # No shards exist: a config that passes every check stops at the data, untrained.
        argv = ["train", "--config", cfg, "--out", Path(tmp) / "run",
                "--data", Path(tmp) / "no-shards"]  # fmt: skip
        _assert_clean(argv, capsys)


@FUZZ
@given(data=TOML_DATA)
def test_study_reads_any_spec_or_refuses_in_one_line(data, capsys):
    with tempfile.TemporaryDirectory() as tmp:
        spec = _file(Path(tmp), "study.toml", data)
        argv = ["study", spec, "--out", Path(tmp) / "study", "--dry-run",
                "--cache", Path(tmp) / "cache"]  # fmt: skip
        _assert_clean(argv, capsys)
