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


def test_a_bom_is_read_and_bytes_that_are_no_utf8_are_named(tmp_path):
    """A file an editor saved with a BOM was 'not JSON' on its first line."""
    path = tmp_path / "t.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"context":"Q:","choices":[" a"," b"],"gold":1}\n')
    assert read_task(path).items[0].gold == 1
    path.write_bytes(b'{"context":"Q:","choices":[" a"," b"],"gold":1}\n{"context":"\xff"}\n')
    with pytest.raises(DataError, match=r"t.jsonl:2: not UTF-8 \(byte 13 of the line\)"):
        read_task(path)


@pytest.mark.parametrize("context", ["", "   "])
def test_a_context_without_text_is_refused_naming_the_line(tmp_path, context):
    """It was refused only when scored, as `RUN: pair 0: the context and the continuation
    need a token each`, with no file or line."""
    item = json.dumps({"context": context, "choices": [" a", " b"], "gold": 0})
    assert _refused(tmp_path, [item]) == (
        "t.jsonl:1: 'context' is empty or only whitespace: a choice is scored after a "
        "context's tokens"
    )


@pytest.mark.parametrize(
    "item, message",
    [
        ({"choices": [" a", " b"], "gold": 0}, "'context' is missing; it must be a string"),
        ({"context": "Q:", "gold": 0}, "'choices' is missing; it must be a list of at least 2 strings"),
        ({"context": "Q:", "choices": [" a", " b"]},
         "'gold' is missing; it must be the index of the right choice (0..1)"),
        ({"reference": "b"}, "'prompt' is missing; it must be a string"),
        ({"prompt": "a"}, "'reference' is missing; it must be a string"),
    ],
)  # fmt: skip
def test_a_missing_key_is_named_as_missing(tmp_path, item, message):
    """A missing key read 'got None' ('gold') or 'got NoneType' (a string key)."""
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(item) + "\n")
    with pytest.raises(DataError) as exc:
        read_task(path)
    assert str(exc.value) == f"{path}:1: {message}"
