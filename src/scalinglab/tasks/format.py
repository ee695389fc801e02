"""Task files: one JSON object per line, multiple-choice or generation (docs/tasks.md).

A multiple-choice item is `{"context": str, "choices": [str, ...], "gold": int}`:
the model scores `context + choice` for every choice (the choice as written: put a
leading space in it where one belongs). A generation item is `{"prompt": str,
"reference": str}`, optionally with `"until": [str, ...]` (where greedy decoding stops;
default a newline). A file holds one kind. Every other key is kept for the reader
(an `id`, a `label`) and ignored by scoring.

The task's name is the file's stem (`sentiment.jsonl` -> `sentiment`); its identity
is the sha256 of the file, recorded with every result so that two results of one name
on other items are never compared.
"""

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from scalinglab.errors import DataError

KINDS = ("multiple_choice", "generation")
DEFAULT_UNTIL = ("\n",)


@dataclass(frozen=True)
class Item:
    """One item: `context`, `choices`, `gold` (multiple choice) or `prompt`, `reference`."""

    context: str = ""
    choices: tuple[str, ...] = ()
    gold: int = 0
    prompt: str = ""
    reference: str = ""
    until: tuple[str, ...] = DEFAULT_UNTIL
    line: int = field(default=0, compare=False, repr=False)  # in its task file; 0: none


@dataclass
class Task:
    """A named list of items of one kind, and where it came from."""

    name: str
    kind: str
    items: list[Item] = field(default_factory=list)
    source: str = "<memory>"
    sha256: str = ""
    chance: float | None = None  # accuracy of a uniform guess (multiple choice)
    about: str = ""

    def where(self, k: int) -> str:
        """Where item k comes from, for a message: `file:line`, or the task and index."""
        line = self.items[k].line
        return f"{self.source}:{line}" if line else f"task {self.name!r} item {k}"

    def __post_init__(self):
        if not self.sha256:
            self.sha256 = items_sha256(self.items)
        if self.chance is None and self.kind == "multiple_choice" and self.items:
            self.chance = sum(1 / len(it.choices) for it in self.items) / len(self.items)


def items_sha256(items: list[Item]) -> str:
    """The identity of a list of items (for tasks made in memory)."""
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps(item_dict(it), sort_keys=True).encode("utf-8") + b"\n")
    return h.hexdigest()


def item_dict(it: Item) -> dict:
    """An item as its JSONL object."""
    if it.choices:
        return {"context": it.context, "choices": list(it.choices), "gold": it.gold}
    out = {"prompt": it.prompt, "reference": it.reference}
    if tuple(it.until) != DEFAULT_UNTIL:
        out["until"] = list(it.until)
    return out


def to_jsonl(task: Task) -> str:
    return "".join(json.dumps(item_dict(it), ensure_ascii=False) + "\n" for it in task.items)


def _missing(obj, key, where, what: str) -> None:
    """A key the item lacks is named as missing (not 'got None' or 'got NoneType')."""
    if key not in obj:
        raise DataError(f"{where}: {key!r} is missing; {what}")


def _string(obj, key, where) -> str:
    _missing(obj, key, where, "it must be a string")
    v = obj.get(key)
    if not isinstance(v, str):
        raise DataError(f"{where}: {key!r} must be a string, got {type(v).__name__}")
    return _unicode(v, key, where)


def _unicode(v: str, key, where) -> str:
    """`v`, refused when it holds a lone surrogate (JSON's "\\ud800"): no UTF-8 encodes
    it, and the tokenizer failed with a traceback."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(
            f"{where}: {key!r} holds a lone surrogate ({v[exc.start]!a}), not text"
        ) from None
    return v


def parse_item(obj, where: str) -> tuple[str, Item]:
    """(kind, Item) of one JSONL object; DataError naming `where` (file:line) and the key."""
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a JSON object")
    mc = [k for k in ("context", "choices", "gold") if k in obj]
    gen = [k for k in ("prompt", "reference") if k in obj]
    if mc and gen:  # it was scored as multiple choice, its prompt and reference unread
        raise DataError(
            f"{where}: both a multiple-choice item's {', '.join(map(repr, mc))} and a "
            f"generation item's {', '.join(map(repr, gen))}: keep one kind's keys"
        )
    if "choices" in obj or "context" in obj:
        context = _string(obj, "context", where)
        if not context.strip():  # its whitespace goes to the choices: no token left before
            # them, refused when scored with no file or line
            raise DataError(f"{where}: 'context' is empty or only whitespace: a choice is "
                            "scored after a context's tokens")  # fmt: skip
        _missing(obj, "choices", where, "it must be a list of at least 2 strings")
        choices = obj.get("choices")
        if not isinstance(choices, list) or len(choices) < 2:
            raise DataError(f"{where}: 'choices' must be a list of at least 2 strings")
        if not all(isinstance(c, str) and c for c in choices):
            raise DataError(f"{where}: every choice must be a non-empty string")
        for c in choices:
            _unicode(c, "choices", where)
        first = {}
        for j, c in enumerate(choices):
            if c in first:
                raise DataError(
                    f"{where}: choices {first[c]} and {j} are both {json.dumps(c)}; equal "
                    "choices score the same, and a tie counts as the first"
                )
            first[c] = j
        _missing(
            obj, "gold", where, f"it must be the index of the right choice (0..{len(choices) - 1})"
        )
        gold = obj.get("gold")
        if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(choices):
            raise DataError(
                f"{where}: 'gold' must be the index of the right choice (0..{len(choices) - 1}), "
                f"got {gold!r}"
            )
        if not context:
            raise DataError(f"{where}: 'context' is empty; the model needs text to continue")
        return "multiple_choice", Item(context=context, choices=tuple(choices), gold=gold)
    if "prompt" in obj or "reference" in obj:
        prompt, ref = _string(obj, "prompt", where), _string(obj, "reference", where)
        if not prompt:
            raise DataError(f"{where}: 'prompt' is empty; the model needs text to continue")
        if not ref.strip():
            raise DataError(
                f"{where}: 'reference' is {'only whitespace' if ref else 'empty'}; an empty "
                "output would match it (exact_match compares stripped text)"
            )
        until = obj.get("until", list(DEFAULT_UNTIL))
        if not isinstance(until, list) or not all(isinstance(u, str) and u for u in until):
            raise DataError(f"{where}: 'until' must be a list of non-empty strings")
        for u in until:
            _unicode(u, "until", where)
        return "generation", Item(prompt=prompt, reference=ref, until=tuple(until))
    raise DataError(
        f"{where}: neither a multiple-choice item (context, choices, gold) nor a "
        "generation item (prompt, reference)"
    )


def read_task(path: str | Path, name: str | None = None) -> Task:
    """A task from a JSONL file; DataError naming the file and line of a bad item."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    kind, items = None, []
    for i, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        where = f"{path}:{i}"
        try:  # a BOM (an editor's) at the file's start is no JSON's
            obj = json.loads(raw.decode("utf-8-sig" if i == 1 else "utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: not UTF-8 (byte {exc.start + 1} of the line)") from None
        except ValueError:
            raise DataError(f"{where}: not JSON") from None
        k, item = parse_item(obj, where)
        item = dataclasses.replace(item, line=i)
        if kind is not None and k != kind:
            raise DataError(f"{where}: a {k} item in a file of {kind} items; one kind per file")
        kind = k
        items.append(item)
    if not items:
        raise DataError(f"{path}: no items")
    return Task(
        name=name or path.stem,
        kind=kind,
        items=items,
        source=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
    )
