"""Built-in tasks: made from the validation split, deterministic, and each item's right
choice is what the text really holds there."""

import numpy as np
import pytest

from scalinglab.errors import ConfigError, DataError
from scalinglab.tasks.builtin import builtin_task, passages
from scalinglab.tasks.run import resolve_tasks
from tests.conftest import write_raw_shards


def code(n_funcs: int, seed: int) -> str:
    """Python-like text: functions with their own names, brackets of three kinds."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_funcs):
        name = "".join(rng.choice(list("abcdefghijklmnop"), 6)) + f"_{i}"
        var = "".join(rng.choice(list("qrstuvwxyz"), 5))
        out.append(
            f"def {name}({var}, k={i}):\n"
            f"    table = {{'{var}': [{var}, {i}], 'n': ({i} + k)}}\n"
            f"    value = {name}_helper(table['{var}'][0], {var})\n"
            f"    return [{var} * k for _ in range({i})]\n"
        )
    return "\n".join(out)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    val = np.frombuffer(code(120, 1).encode(), dtype=np.uint8)
    train = np.frombuffer(code(50, 2).encode(), dtype=np.uint8)
    return write_raw_shards(tmp_path_factory.mktemp("b") / "shards", train, val)


def val(shards) -> str:
    return (shards / "val.bin").read_bytes()[::2].decode()


def where(text: str, it) -> int:
    """Where the item's context ends in the text (it must be found exactly once there)."""
    i = text.find(it.context)
    assert i >= 0 and text.find(it.context, i + 1) == -1
    return i + len(it.context)


def test_passages_are_the_text_between_blank_lines():
    assert passages("a\nb\n\nc\n\nd\ne") == [(0, "a\nb"), (8, "d\ne")]


def test_next_line_items_hold_the_true_next_line(shards):
    t = builtin_task("next-line", shards, n_items=50)
    text = val(shards)
    assert len(t.items) == 50 and t.chance == 0.25
    for it in t.items:
        end = where(text, it)
        assert text[end:].startswith(it.choices[it.gold] + "\n")
        assert len(set(it.choices)) == 4


def test_bracket_items_are_balanced_over_the_three_closers(shards):
    t = builtin_task("brackets", shards, n_items=60)
    text = val(shards)
    assert t.chance == pytest.approx(1 / 3)
    golds = [it.gold for it in t.items]
    assert len(t.items) == 60 and [golds.count(k) for k in range(3)] == [20, 20, 20]
    for it in t.items:
        assert text[where(text, it)] == it.choices[it.gold]
        assert "([{"[it.gold] in it.context  # the opener is in view


def test_recall_items_ask_for_a_name_the_context_holds(shards):
    t = builtin_task("recall", shards, n_items=40)
    text = val(shards)
    assert len(t.items) == 40
    for it in t.items:
        gold = it.choices[it.gold]
        assert text[where(text, it) :].startswith(gold) and gold in it.context
        assert all(c not in it.context for k, c in enumerate(it.choices) if k != it.gold)


def test_the_same_shards_and_seed_make_the_same_items(shards):
    a, b = builtin_task("recall", shards, seed=3), builtin_task("recall", shards, seed=3)
    assert a.sha256 == b.sha256 and a.items == b.items
    assert builtin_task("recall", shards, seed=4).sha256 != a.sha256
    assert [t.name for t in resolve_tasks(["builtin"], shards, n_items=5)] == [
        "next-line", "brackets", "recall"
    ]  # fmt: skip


def test_unknown_names_and_empty_splits_are_refused(shards, tmp_path):
    with pytest.raises(ConfigError, match="not a task file nor one of next-line"):
        builtin_task("nope", shards)
    with pytest.raises(ConfigError, match="no such task file"):
        resolve_tasks(["missing.jsonl"], shards)
    prose = np.frombuffer(b"no brackets here at all\n" * 50, dtype=np.uint8)
    bare = write_raw_shards(tmp_path / "prose", prose, prose)
    with pytest.raises(DataError, match="yields no item of task 'brackets'"):
        builtin_task("brackets", bare)
