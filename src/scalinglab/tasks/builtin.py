"""Built-in tasks, made deterministically from a prepared corpus's validation split.

No download: the items come from the text of `val.bin` (decoded with the shards' own
tokenizer), so any corpus the quickstart prepares has them, and a model never trained on
them. The same shards, seed and size give the same items, byte for byte. Each task is
multiple choice, scored as every other (scalinglab.tasks.score); docs/tasks.md says what
each measures.

- `next-line` (4 choices, chance 1/4): the text before a line, then that line against
  three lines of other passages (passages: the text between blank lines).
- `brackets` (3 choices `)`, `]`, `}`, chance 1/3): the text up to a closing bracket
  whose opener lies inside the context; as many items of each kind as the corpus
  allows, so always guessing `)` is not a better baseline than chance.
- `recall` (4 choices, chance 1/4): the text up to a second use of a rare name (an
  identifier of at least 4 characters, outside the split's most frequent 200 names, or
  5% of its names when it has fewer than 4000)
  whose earlier use lies inside the context; the other choices are rare names of
  about its length that the context does not hold.
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
    "next-line": "the true next line among 3 lines of other passages (chance 1/4)",
    "brackets": "the closing bracket that matches an opener in the context (chance 1/3)",
    "recall": "a rare name used earlier in the context among 3 absent ones (chance 1/4)",
}
MAX_VAL_TOKENS = 2_000_000  # read at most this much of val.bin: items enough, in seconds
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{3,}")
PAIRS = {")": "(", "]": "[", "}": "{"}


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


def next_line_items(text, n, rng, context_chars) -> list[Item]:
    lines = []  # (passage index, offset of the line in text, line)
    for k, (off, p) in enumerate(passages(text)):
        pos = off
        for j, line in enumerate(p.split("\n")):
            if j > 0 and len(line.strip()) >= 8 and len(line) <= 60:
                lines.append((k, pos, line))
            pos += len(line) + 1
    if len(lines) < 4:
        return []
    items = []
    for i in rng.permutation(len(lines))[: 4 * n]:
        k, pos, line = lines[i]
        others, tries = [], 0
        while len(others) < 3 and tries < 50:
            tries += 1
            k2, _, other = lines[rng.integers(len(lines))]
            if k2 != k and other.strip() != line.strip() and other not in others:
                others.append(other)
        if len(others) < 3:
            continue
        gold = int(rng.integers(4))
        choices = [*others[:gold], line, *others[gold:]]
        items.append(Item(context=text[max(0, pos - context_chars) : pos], choices=tuple(choices), gold=gold))  # fmt: skip
        if len(items) == n:
            break
    return items


def bracket_items(text, n, rng, context_chars) -> list[Item]:
    by_kind: dict[str, list[int]] = {c: [] for c in PAIRS}
    stack: list[tuple[str, int]] = []
    for i, ch in enumerate(text):
        if ch in "([{":
            stack.append((ch, i))
        elif ch in PAIRS:
            if stack and stack[-1][0] == PAIRS[ch]:
                _, j = stack.pop()
                if 2 <= i - j <= context_chars - 8:  # not "()", and the opener in view
                    by_kind[ch].append(i)
            else:
                stack.clear()  # unbalanced text (a string, a smiley): start again
    per = -(-n // 3)
    picked = []
    for ch in sorted(by_kind):
        pos = by_kind[ch]
        picked += [(ch, pos[i]) for i in rng.permutation(len(pos))[:per]]
    rng.shuffle(picked)
    closers = tuple(sorted(PAIRS))  # ) ] }
    return [
        Item(context=text[max(0, i - context_chars) : i], choices=closers, gold=closers.index(ch))
        for ch, i in picked[:n]
    ]


def recall_items(text, n, rng, context_chars) -> list[Item]:
    uses = list(NAME.finditer(text))
    counts = Counter(m.group() for m in uses)
    common = {w for w, _ in counts.most_common(min(200, len(counts) // 20))}
    rare = sorted(w for w in counts if w not in common)
    if len(rare) < 4:
        return []
    by_len: dict[int, list[str]] = {}
    for w in rare:
        by_len.setdefault(len(w), []).append(w)
    last: dict[str, int] = {}
    cands = []
    for m in uses:
        w, i = m.group(), m.start()
        if w in common:
            continue
        if w in last and 16 <= i - last[w] <= context_chars - len(w) - 4:
            cands.append((w, i))
        last[w] = m.end()
    items = []
    for c in rng.permutation(len(cands)):
        w, i = cands[c]
        context = text[max(0, i - context_chars) : i]
        pool = [x for d in (0, -1, 1, -2, 2) for x in by_len.get(len(w) + d, [])]
        pool = [x for x in pool if x != w and x not in context]
        if len(pool) < 3:
            continue
        others = [pool[j] for j in rng.choice(len(pool), 3, replace=False)]
        gold = int(rng.integers(4))
        choices = (*others[:gold], w, *others[gold:])
        items.append(Item(context=context, choices=choices, gold=gold))
        if len(items) == n:
            break
    return items


MAKERS = {"next-line": next_line_items, "brackets": bracket_items, "recall": recall_items}


def builtin_task(
    name: str,
    shards: str | Shards,
    n_items: int = 200,
    seed: int = 0,
    context_chars: int = 100,
) -> Task:
    """A built-in task made from a shards folder's validation split.

    Args:
        name: one of BUILTIN.
        shards: a shards folder (or open Shards).
        n_items: at most this many items (fewer when the corpus has fewer).
        seed: the choice of items.
        context_chars: the context's length in characters (the evidence lies inside it).

    Raises:
        ConfigError: an unknown name. DataError: the split yields no item.
    """
    if name not in MAKERS:
        raise ConfigError(f"--tasks {name!r}: not a task file nor one of {', '.join(BUILTIN)}")
    if n_items < 1 or context_chars < 16:
        raise ConfigError("built-in tasks need n_items >= 1 and context_chars >= 16")
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
