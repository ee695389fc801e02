"""Task files: duplicate choices and an empty reference are refused, naming file and line."""

import json

import pytest

from scalinglab.errors import DataError
from scalinglab.tasks.format import read_task


def _refused(tmp_path, lines: list[str]) -> str:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as exc:
        read_task(path)
    return str(exc.value).replace(str(path), "t.jsonl")


def test_duplicate_choices_are_refused(tmp_path):
    assert _refused(
        tmp_path,
        ['{"context":"Q:","choices":[" b"," c"],"gold":0}',
         '{"context":"Q:","choices":[" a"," b"," a"],"gold":0}'],
    ) == ('t.jsonl:2: choices 0 and 2 are both " a"; equal choices score the same, '
          "and a tie counts as the first")  # fmt: skip


@pytest.mark.parametrize(("ref", "what"), [("", "empty"), ("  ", "only whitespace")])
def test_an_empty_reference_is_refused(tmp_path, ref, what):
    item = json.dumps({"prompt": "E:", "reference": ref, "until": ["\n"]})
    assert _refused(tmp_path, ['{"prompt":"E:","reference":"x"}', item]) == (
        f"t.jsonl:2: 'reference' is {what}; an empty output would match it "
        "(exact_match compares stripped text)"
    )


@pytest.mark.parametrize(
    ("item", "key", "bad"),
    [
        (r'{"context":"a\ud800","choices":[" b"," c"],"gold":0}', "context", "ud800"),
        (r'{"context":"a","choices":[" b"," \udc00"],"gold":0}', "choices", "udc00"),
        (r'{"prompt":"E:","reference":"x\ud800"}', "reference", "ud800"),
        (r'{"prompt":"E:","reference":"x","until":["\udfff"]}', "until", "udfff"),
    ],
)
def test_a_lone_surrogate_is_refused(tmp_path, item, key, bad):
    """JSON allows a lone surrogate ("\\ud800"), UTF-8 does not: the tokenizer failed with
    a traceback (UnicodeEncodeError)."""
    assert _refused(tmp_path, [item]) == (
        f"t.jsonl:1: {key!r} holds a lone surrogate ('\\{bad}'), not text"
    )
