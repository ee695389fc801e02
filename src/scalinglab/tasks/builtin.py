"""Built-in tasks, made deterministically from a prepared corpus's validation split.

No download: the items come from the text of `val.bin` (decoded with the shards' own
tokenizer), so any corpus the quickstart prepares has them, and a model never trained on
them. The same shards, seed and size give the same items, byte for byte. Each task is
multiple choice, scored as every other (scalinglab.tasks.score); docs/tasks.md says what
each measures.

The text is cut into windows of `context_chars` characters; an item's context runs
from the start of its window to the point where its answer starts, and the evidence
for the answer lies inside that context. Items that share a window share their
contexts' starts, so a causal model reads them all (and every item's right choice) in
one forward pass over the window (scalinglab.tasks.score.shared_hosts): thousands of
items cost about what a few hundred did when each had its own context. Windows are
visited in a random order (the seed) and every item a window holds is taken.

- `next-line` (2 choices, chance 1/2): the text before a line, then that line against
  a line of another passage (passages: the text between blank lines).
- `brackets` (2 choices, chance 1/2): the text up to a closing bracket whose opener
  lies inside the context, the right closer against another (`)` against `]` or `}`,
  `]` and `}` against `)`); as many `)` items as `]` and `}` ones, so no fixed
  preference among the closers beats chance.
- `recall` (2 choices, chance 1/2): the text up to a second use of a rare name (an
  identifier of at least 4 characters, outside the split's most frequent 200 names, or
  5% of its names when it has fewer than 4000) whose earlier use lies inside the
  context, against a rare name of about its length that the context does not hold.
"""

import re
from collections import Counter

import numpy as np

from scalinglab.data.shards import Shards, open_shards
from scalinglab.data.tokenizers import load_tokenizer
from scalinglab.errors import ConfigError, DataError
from scalinglab.tasks.format import Item, Task

BUILTIN = ("next-line", "brackets", "recall")
ABOUT = {
    "next-line": "the true next line against a line of another passage (chance 1/2)",
    "brackets": "the closing bracket that matches an opener in the context (chance 1/2)",
    "recall": "a rare name used earlier in the context against an absent one (chance 1/2)",
}
MAX_VAL_TOKENS = 2_000_000  # read at most this much of val.bin: items enough, in seconds
MIN_CONTEXT = 16  # characters of context at least before an answer
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")
PAIRS = {")": "(", "]": "[", "}": "{"}
# Items per task: the standard error of an accuracy p on n items is sqrt(p (1 - p) / n),
# 0.8 points at p = 1/2 and 4000 items (3.5 at the 200 items a first version used).
N_ITEMS = 4000
WINDOW = 120  # characters: a context and its longest choice fit a 128-token window
GRID = 16  # contexts start at multiples of this: nearby items share a start


def val_text(shards: Shards, max_tokens: int = MAX_VAL_TOKENS) -> str:
    """The start of the validation split as text."""
    tok = load_tokenizer(shards.tokenizer_path)
    ids = np.asarray(shards.val[:max_tokens])
    return tok.decode(ids)


def passages(text: str) -> list[tuple[int, str]]:
    """(offset, passage) of the text between blank lines, passages of 2+ lines only."""
    out, pos = [], 0
    for m in re.finditer(r"\n[ \t]*\n", text + "\n\n"):
        chunk = text[pos : m.start()]
        if chunk.count("\n") >= 1:
            out.append((pos, chunk))
        pos = m.end()
    return out


def context_start(evidence: int, answer: int, longest: int, width: int) -> int | None:
    """Where an item's context starts: the last multiple of GRID at or before the
    evidence that leaves MIN_CONTEXT characters of context, or None when the context
    and the longest choice would not fit `width` characters."""
    s = min(evidence, answer - MIN_CONTEXT) // GRID * GRID
    return s if s >= 0 and answer + longest - s <= width else None


def by_start(cands, n, rng, quota=None):
    """Up to n candidates (context start first), taken a whole context start at a time
    (the items that share it cost one forward pass), the starts in a random order;
    `quota(c)` may refuse one (a kind already full)."""
    groups: dict[int, list] = {}
    for c in cands:
        groups.setdefault(c[0], []).append(c)
    out = []
    for g in rng.permutation(sorted(groups)):
        for c in groups[g]:
            if quota is None or quota(c):
                out.append(c)
                if len(out) == n:
                    return out
    return out


def two_way(rng, right: str, other: str) -> tuple[tuple[str, str], int]:
    gold = int(rng.integers(2))
    return ((other, right) if gold else (right, other)), gold


def next_line_items(text, n, rng, width) -> list[Item]:
    lines = []  # (offset of the line in text, passage index, line)
    for k, (off, p) in enumerate(passages(text)):
        pos = off
        for j, line in enumerate(p.split("\n")):
            if j > 0 and len(line.strip()) >= 8 and len(line) <= 60:
                lines.append((pos, k, line))
            pos += len(line) + 1
    if len(lines) < 2:
        return []
    cands = []  # (context start, line's offset, passage, line)
    for pos, k, line in lines:
        s = context_start(pos - 2 * MIN_CONTEXT, pos, len(line), width)
        if s is not None:
            cands.append((s, pos, k, line))
    items = []
    for s, pos, k, line in by_start(cands, 2 * n, rng):
        room = width - (pos - s)  # the other line must fit the window too
        for _ in range(50):
            _, k2, other = lines[rng.integers(len(lines))]
            if k2 != k and other.strip() != line.strip() and len(other) <= room:
                break
        else:
            continue
        choices, gold = two_way(rng, line, other)
        items.append(Item(context=text[s:pos], choices=choices, gold=gold))
        if len(items) == n:
            break
    return items


def bracket_items(text, n, rng, width) -> list[Item]:
    cands = []  # (context start, position of the closer, closer)
    stack: list[tuple[str, int]] = []
    for i, ch in enumerate(text):
        if ch in "([{":
            stack.append((ch, i))
        elif ch in PAIRS:
            if stack and stack[-1][0] == PAIRS[ch]:
                _, j = stack.pop()
                s = context_start(j, i, 1, width)
                if i - j >= 2 and s is not None:  # not "()", the opener in the context
                    cands.append((s, i, ch))
            else:
                stack.clear()  # unbalanced text (a string, a smiley): start again
    # As many `)` items as `]` and `}` ones, and each `)` against `]` or `}` as often
    # as those are right: no fixed preference among the closers beats chance (1/2).
    count = Counter(ch for _, _, ch in cands)
    rare = {ch: min(count[ch], n // 2) for ch in "]}"}
    while sum(rare.values()) > min(count[")"], n // 2):  # trim the larger kind first
        big = max(rare, key=lambda ch: (rare[ch], ch))
        rare[big] -= 1
    left = {")": sum(rare.values()), **rare}

    def quota(c):
        if left[c[2]] == 0:
            return False
        left[c[2]] -= 1
        return True

    picked = by_start(cands, 2 * sum(rare.values()), rng, quota)
    against = [ch for ch in "]}" for _ in range(rare[ch])]
    rng.shuffle(against)
    items = []
    for s, i, ch in picked:
        other = against.pop() if ch == ")" else ")"
        choices, gold = two_way(rng, ch, other)
        items.append(Item(context=text[s:i], choices=choices, gold=gold))
    return items


def recall_items(text, n, rng, width) -> list[Item]:
    uses = list(NAME.finditer(text))
    counts = Counter(m.group() for m in uses)
    common = {w for w, _ in counts.most_common(min(200, len(counts) // 20))}
    rare = sorted(w for w in counts if w not in common)
    if len(rare) < 2:
        return []
    by_len: dict[int, list[str]] = {}
    for w in rare:
        by_len.setdefault(len(w), []).append(w)
    last: dict[str, int] = {}
    cands = []  # (context start, position of the second use, name)
    for m in uses:
        w, i = m.group(), m.start()
        if w in common:
            continue
        if w in last and i - last[w] >= MIN_CONTEXT:
            s = context_start(last[w] - len(w), i, len(w) + 2, width)  # a longer choice fits
            if s is not None:
                cands.append((s, i, w))
        last[w] = m.end()
    items = []
    for s, i, w in by_start(cands, 2 * n, rng):
        context = text[s:i]
        # the distractor of the gold's own length where there is one, else the nearest: a
        # choice's log-likelihood is a sum over its tokens, so a shorter choice scores
        # higher whatever the model recalls (the lengths up to ±2 were drawn as one pool,
        # and 3 items in 4 had choices of unequal length)
        pool = []
        for d in (0, -1, 1, -2, 2):
            pool = [x for x in by_len.get(len(w) + d, []) if x != w and x not in context]
            if pool:
                break
        if not pool:
            continue
        choices, gold = two_way(rng, w, pool[int(rng.integers(len(pool)))])
        items.append(Item(context=context, choices=choices, gold=gold))
        if len(items) == n:
            break
    return items


MAKERS = {"next-line": next_line_items, "brackets": bracket_items, "recall": recall_items}


def builtin_task(
    name: str,
    shards: str | Shards,
    n_items: int = N_ITEMS,
    seed: int = 0,
    context_chars: int = WINDOW,
) -> Task:
    """A built-in task made from a shards folder's validation split.

    Args:
        name: one of BUILTIN.
        shards: a shards folder (or open Shards).
        n_items: at most this many items (fewer when the corpus has fewer).
        seed: the choice of items.
        context_chars: the windows' length in characters: every context and choice of
            an item fits inside its window.

    Raises:
        ConfigError: an unknown name. DataError: the split yields no item.
    """
    if name not in MAKERS:
        raise ConfigError(f"--tasks {name!r}: not a task file nor one of {', '.join(BUILTIN)}")
    if n_items < 1 or context_chars < 4 * MIN_CONTEXT:
        raise ConfigError(
            f"built-in tasks need n_items >= 1 and context_chars >= {4 * MIN_CONTEXT}"
        )
    if name == "brackets" and n_items < 2:  # one ")" item per "]" or "}" one: pairs
        raise ConfigError(
            "--task-items 1: the brackets task is made in pairs (as many ')' items as ']' and "
            "'}' ones), so it needs 2 or more"
        )
    sh = open_shards(shards) if not isinstance(shards, Shards) else shards
    items = MAKERS[name](val_text(sh), n_items, np.random.default_rng(seed), context_chars)
    if not items:
        raise DataError(f"{sh.path}: its validation split yields no item of task {name!r}")
    return Task(
        name=name,
        kind="multiple_choice",
        items=items,
        source=f"builtin:{name} of {sh.path}",
        about=ABOUT[name],
    )
