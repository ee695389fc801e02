"""Built-in tasks: made from the validation split, deterministic, and each item's right
choice is what the text really holds there."""

import itertools

import numpy as np
import pytest

from scalinglab.cli import main
from scalinglab.errors import ConfigError, DataError
from scalinglab.tasks.builtin import (
    GRID,
    MIN_CONTEXT,
    WINDOW,
    bracket_items,
    builtin_task,
    context_start,
    next_line_items,
    passages,
    recall_items,
)
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


def ends(text: str, it) -> list[int]:
    """Where the item's context may end in the text: it starts at a multiple of GRID."""
    out, i = [], text.find(it.context)
    while i >= 0:
        if i % GRID == 0:
            out.append(i + len(it.context))
        i = text.find(it.context, i + 1)
    assert out, "each context starts at a multiple of GRID"
    return out


def test_passages_are_the_text_between_blank_lines():
    assert passages("a\nb\n\nc\n\nd\ne") == [(0, "a\nb"), (8, "d\ne")]


def fits(it):
    return all(len(it.context) + len(c) <= WINDOW for c in it.choices)


def test_next_line_items_hold_the_true_next_line(shards):
    t = builtin_task("next-line", shards, n_items=50)
    text = val(shards)
    assert len(t.items) == 50 and t.chance == 0.5
    for it in t.items:
        assert any(text[e:].startswith(it.choices[it.gold] + "\n") for e in ends(text, it))
        assert len(set(it.choices)) == 2 and fits(it) and len(it.context) >= 2 * MIN_CONTEXT


def test_bracket_items_no_fixed_preference_beats_chance(shards):
    t = builtin_task("brackets", shards, n_items=60)
    text = val(shards)
    assert t.chance == 0.5 and len(t.items) == 60
    gold = [it.choices[it.gold] for it in t.items]
    against = [c for it in t.items for c in it.choices if it.choices[it.gold] == ")" and c != ")"]
    assert gold.count(")") == 30 and sorted(against) == sorted(c for c in gold if c != ")")
    for order in itertools.permutations(")]}"):  # always the first of the two in this order
        right = sum(
            min(it.choices, key=order.index) == g for it, g in zip(t.items, gold, strict=True)
        )
        assert right == 30
    for it in t.items:
        assert any(text[e] == it.choices[it.gold] for e in ends(text, it)) and fits(it)
        assert {")": "(", "]": "[", "}": "{"}[it.choices[it.gold]] in it.context  # in view


def test_recall_items_ask_for_a_name_the_context_holds(shards):
    t = builtin_task("recall", shards, n_items=40)
    text = val(shards)
    assert len(t.items) == 40 and t.chance == 0.5
    for it in t.items:
        gold = it.choices[it.gold]
        assert any(text[e:].startswith(gold) for e in ends(text, it)) and gold in it.context
        assert all(c not in it.context for k, c in enumerate(it.choices) if k != it.gold)
        assert fits(it)


def test_a_recall_distractor_has_the_names_own_length(tmp_path):
    # A choice's log-likelihood sums over its tokens, so the shorter choice wins without any
    # recall; the distractors of lengths up to ±2 were drawn as one pool, and most items
    # had choices of unequal length (3 in 4 on the quickstart's corpus).
    rng = np.random.default_rng(0)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    names = ["".join(rng.choice(letters, int(k))) for k in rng.integers(5, 10, size=400)]
    body = "".join(
        f"{a} = {b} + 1  # then\nprint({a})\n" for a, b in zip(names, names[::-1], strict=True)
    )
    raw = np.frombuffer(body.encode(), dtype=np.uint8)
    t = builtin_task("recall", write_raw_shards(tmp_path / "s", raw, raw), n_items=100)
    assert len(t.items) >= 50
    assert all(len(it.choices[0]) == len(it.choices[1]) for it in t.items)


def test_items_that_share_a_context_start_cost_one_forward_pass(shards):
    from scalinglab.data.tokenizers import ByteTokenizer
    from scalinglab.tasks.score import encode_pair, shared_hosts

    t = builtin_task("brackets", shards, n_items=60)
    pairs = [encode_pair(ByteTokenizer(), it.context, c) for it in t.items for c in it.choices]
    hosts = set(shared_hosts([tuple((a + b)[:-1]) for a, b in pairs]))
    assert len(hosts) < len(t.items) < len(pairs)  # an item's two closers read one window


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
    with pytest.raises(ConfigError, match="is a folder; name its task files"):
        resolve_tasks([str(tmp_path)], shards)  # it said "no such task file" of a folder
    prose = np.frombuffer(b"no brackets here at all\n" * 50, dtype=np.uint8)
    bare = write_raw_shards(tmp_path / "prose", prose, prose)
    with pytest.raises(DataError, match="yields no item of task 'brackets'"):
        builtin_task("brackets", bare)


def test_builtin_takes_the_tasks_a_corpus_yields(tmp_path, caplog):
    """`--tasks builtin` on prose without brackets refused all three tasks; it now takes
    the two the split yields and says which it left out. Named, brackets is refused."""
    names = [f"Name{chr(65 + i % 26)}{chr(97 + i // 26)}x" for i in range(120)]
    text = "".join(
        f"Then {names[i % 120]} met {names[(7 * i) % 120]} by gate {i}.\n"
        f"{names[i % 120]} spoke first, and the other listened.\n\n"
        for i in range(600)
    )
    prose = np.frombuffer(text.encode(), dtype=np.uint8)
    bare = write_raw_shards(tmp_path / "prose", prose, prose)
    with caplog.at_level("WARNING"):
        tasks = resolve_tasks(["builtin"], bare, n_items=5)
    assert [t.name for t in tasks] == ["next-line", "recall"]
    assert [r.getMessage() for r in caplog.records] == [
        f"--tasks builtin: {bare}: its validation split yields no item of task 'brackets'; "
        "it is left out"
    ]
    with pytest.raises(DataError, match="yields no item of task 'brackets'"):
        resolve_tasks(["next-line", "brackets"], bare, n_items=5)
    empty = write_raw_shards(tmp_path / "empty", prose[:40], prose[:40])
    with pytest.raises(DataError, match=r"^tasks builtin: .*empty: its validation split "
                       r"yields no item of any built-in task$"):  # fmt: skip
        resolve_tasks(["builtin"], empty, n_items=5)


def test_each_task_says_the_chance_its_items_have(shards):
    """ABOUT and the module's doc said brackets had 3 choices, chance 1/3; it has 2."""
    import scalinglab.tasks.builtin as builtin

    for name in builtin.BUILTIN:
        t = builtin_task(name, shards, n_items=20)
        assert {len(it.choices) for it in t.items} == {2} and t.chance == 0.5
        assert t.about.endswith("(chance 1/2)")
        assert f"`{name}` (2 choices, chance 1/2)" in builtin.__doc__


def test_eval_help_says_the_batch_size_default_with_tasks(capsys):
    """It said "default: the run's"; with --tasks the default is 32 (docs/tasks.md)."""
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "lanes per batch (default: the run's); with --tasks, sequences scored" in text
    assert "(default: 32)" in text


def test_one_bracket_item_is_refused_for_its_real_reason(shards):
    """--task-items 1 said the split had no brackets: the task is made in pairs."""
    with pytest.raises(ConfigError, match=r"brackets task is made in pairs .* needs 2 or more"):
        builtin_task("brackets", shards, 1)
    assert len(builtin_task("brackets", shards, 2).items) == 2


# Known answers for mutations of tasks/builtin.py that every test passed (a mutation audit):
# each fails on its mutation.
def test_a_context_and_choice_that_exactly_fill_the_window_fit():
    """Kills B2 (`answer + longest - s <= width` -> `< width`). By hand: evidence 32,
    answer 100: s = min(32, 100 - 16) // 16 * 16 = 32, and 100 + 52 - 32 = 120 = width,
    so the item fits exactly: start 32; one character more does not fit (None)."""
    assert context_start(32, 100, 52, 120) == 32
    assert context_start(32, 100, 53, 120) is None


def test_next_line_never_asks_for_a_passages_first_line():
    """Kills B4 (`j > 0` -> `j >= 0` in next_line_items): the line after a blank line has
    no line of its own passage before it. Known answer: of passages 'FIRST k / second k /
    third k', only 'second'/'third' lines are ever the right choice."""
    text = "\n\n".join(
        f"FIRST line {k:03d}\nsecond line {k:03d}\nthird line {k:03d}" for k in range(30)
    )
    items = next_line_items(text, 1000, np.random.default_rng(0), 120)
    golds = [it.choices[it.gold] for it in items]
    assert golds and not any(g.startswith("FIRST") for g in golds)


def test_an_empty_pair_of_brackets_makes_no_item():
    """Kills B5 (`i - j >= 2` -> `>= 1`: '()' makes an item whose opener is the last
    character of the context). Known answer: a text whose only ')' closes '()' has no
    ')' item, so no '(', ']' pair either: no items at all."""
    text = ("#" * 40 + "f() [ab] g() ") * 10
    assert bracket_items(text, 20, np.random.default_rng(0), 120) == []


def _recall_golds(text):
    items = recall_items(text, 1000, np.random.default_rng(0), 120)
    return {it.choices[it.gold] for it in items}


def test_recall_needs_min_context_characters_after_the_earlier_use():
    """Kills B7 (the `i - last[w] >= MIN_CONTEXT` test dropped) and B10 (`last[w] =
    m.end()` -> `m.start()`). 'alphaone' repeats 10 characters after its first use ends
    (18 after it starts): under MIN_CONTEXT = 16, so no item; 'betatwos' repeats 20
    characters after: an item. Known answer: golds == {'betatwos'}."""
    fill = "#" * 40
    text = (
        fill + "alphaone" + " " * 10 + "alphaone" + fill
        + "betatwos" + " " * 20 + "betatwos" + fill * 5
        + "gammathr " + fill * 4 + "deltafou"
    )  # fmt: skip
    assert _recall_golds(text) == {"betatwos"}


def test_recall_leaves_out_only_the_most_frequent_5_percent_of_names():
    """Kills B6 (`len(counts) // 20` -> `// 10`). 40 distinct names: 40 // 20 = 2 are
    common (the two most frequent, used 10 and 9 times); the third (8 uses) is rare and
    asked. Known answer: 'namethre' is a gold, 'nameones'/'nametwos' never are."""
    fill = "#" * 30
    freq = {"nameones": 10, "nametwos": 9, "namethre": 8, "namefour": 7}
    parts = [f"{w} {fill}" for w, k in freq.items() for _ in range(k)]
    singles = [f"uniq{chr(97 + a)}{chr(97 + b)}xy" for a in range(6) for b in range(6)][:36]
    text = fill + "".join(parts) + fill * 6 + " ".join(singles)
    golds = _recall_golds(text)
    assert "namethre" in golds and not golds & {"nameones", "nametwos"}


def test_a_line_of_spaces_separates_passages():
    assert passages("a\nb\n  \nc\nd") == [(0, "a\nb"), (7, "c\nd")]


def _passages_text():
    return "\n\n".join(
        "\n".join(f"P{k:03d} line {j:02d} " + "x" * (8 + 4 * j) for j in range(11))
        for k in range(2)
    )


def test_a_next_line_distractor_comes_from_another_passage():
    items = next_line_items(_passages_text(), 1000, np.random.default_rng(0), 120)
    assert items
    for it in items:
        right, other = it.choices[it.gold], it.choices[1 - it.gold]
        assert right[:4] != other[:4]


def test_a_next_line_item_and_both_its_choices_fit_a_narrow_window():
    items = next_line_items(_passages_text(), 1000, np.random.default_rng(0), 64)
    assert items
    assert all(len(it.context) + len(c) <= 64 for it in items for c in it.choices)


def test_a_recall_distractor_is_not_in_the_context():
    fill = "#" * 20
    names = [f"nm{a}{b}xy" for a in "abcdefgh" for b in "abcdefgh"]  # 64 names of 6 chars
    text = "".join(
        f"{names[i]} {names[(i + 1) % 64]} {fill} {names[i]} {fill}\n" for i in range(64)
    )
    items = recall_items(text, 1000, np.random.default_rng(0), 120)
    assert items
    assert all(it.choices[1 - it.gold] not in it.context for it in items)


def test_recall_leaves_out_at_most_200_common_names():
    # 250 names used 3 times and 4200 used once: 4450 names, 5% is 222, capped at 200.
    # The 200 first (most frequent, then first seen) are common; f200..f249 are asked.
    fill = "#" * 20
    freq = [f"fq{k:03d}" for k in range(250)]
    text = "".join(f"{w} {fill} {w} {fill} {w}\n" for w in freq)
    text += " ".join(f"u{k:05d}" for k in range(4200))
    items = recall_items(text, 5000, np.random.default_rng(0), 120)
    golds = {it.choices[it.gold] for it in items}
    assert golds and all(int(g[2:]) >= 200 for g in golds)


def test_a_window_shorter_than_four_min_contexts_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="context_chars >= 64"):
        builtin_task("next-line", tmp_path, 10, context_chars=63)
