"""Tokenizers: byte, char, word and byte-level BPE behind one interface.

Every kind is saved as a standard Hugging Face `tokenizers` JSON file, so
`tokenizers.Tokenizer.from_file` and `transformers.PreTrainedTokenizerFast(
tokenizer_file=...)` load any of them:

- byte: a BPE model with the 256 byte symbols of GPT-2's byte-to-unicode map
  as its vocabulary (id = byte value) and no merges, ByteLevel pre-tokenizer
  (no regex) and decoder. Lossless for any text.
- char: a WordLevel model over single characters (ids in code-point order,
  as nanoGPT's shakespeare_char, then `<unk>`), a pre-tokenizer that isolates
  each character, a Fuse decoder.
- word: a WordLevel model (`<unk>`, `<eos>`, then words by falling frequency),
  a normalizer turning each newline into ` <eos> `, whitespace splitting — the
  setup of PyTorch's word_language_model example. Our own `encode` also ends
  a last line that has no newline with `<eos>`, as that example does.
- bpe: byte-level BPE trained by `tokenizers` (GPT-2's pre-tokenizer regex,
  then a `Split` cutting pre-tokens longer than MAX_PRETOKEN bytes), with one
  special token `<|endoftext|>` (id 0).

The kind is recognised from the file's structure (HF rejects extra keys); a
file holding only `{"kind": "byte"}` is also read as the byte tokenizer.
Encoding here is vectorised with numpy for byte and char (the HF pipeline is
used only for BPE), and returns int64 arrays.
"""

import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from scalinglab.errors import ConfigError, DataError, require
from scalinglab.fsio import atomic_write_text

log = logging.getLogger(__name__)

KINDS = ("byte", "char", "word", "bpe")
UNK, EOS, EOT = "<unk>", "<eos>", "<|endoftext|>"
DEFAULT_BPE_VOCAB = 4096
MAX_VOCAB = 1 << 24
# The longest BPE pre-token, in bytes: GPT-2's regex leaves a run of letters, digits,
# punctuation or whitespace whole, so a corpus holding a multi-megabyte run (one repeated
# letter, a long digit string) would hand the BPE trainer and encoder one multi-megabyte
# "word": training on 50 MB of "a" did not end in 5 minutes, its memory growing. Longer
# pre-tokens are cut into pieces of this many bytes, counted from the pre-token's start.
# The trade-off: such a run is tokenized as consecutive 256-byte words (no merge crosses a
# cut); ordinary text, whose pre-tokens are words, numbers, punctuation and indentation,
# is tokenized as without the cap. 256 is also the longest word `tokenizers` caches.
MAX_PRETOKEN = 256
# Likewise the longest word the word tokenizer counts: a longer whitespace-free run (a
# base64 blob, minified JSON) is not a word worth a vocabulary entry, and counting each
# distinct one would hold them all in memory. It encodes as <unk>.
MAX_WORD = 256


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable unicode characters."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), 256)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def _as_text(text: str | bytes) -> str:
    if isinstance(text, str):
        return text
    try:
        return bytes(text).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"byte {exc.start}: invalid UTF-8 ({exc.reason})") from None


def _as_ids(ids, vocab_size: int) -> np.ndarray:
    arr = np.asarray(ids, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        bad = arr[(arr < 0) | (arr >= vocab_size)][0]
        raise DataError(f"token id {int(bad)} is out of range for a vocabulary of {vocab_size}")
    return arr


class Tokenizer:
    """The interface: `kind`, `vocab_size`, `encode`, `decode`, `save`, `to_hf`."""

    kind: str
    vocab_size: int

    def encode(self, text: str | bytes) -> np.ndarray:
        raise NotImplementedError

    def decode(self, ids) -> str:
        raise NotImplementedError

    def to_hf(self):
        """The equivalent `tokenizers.Tokenizer`."""
        raise NotImplementedError

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_text(path, self.to_hf().to_str(pretty=True) + "\n")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"


class ByteTokenizer(Tokenizer):
    """256 symbols, id = byte value; `encode` takes raw bytes too, so any input is lossless."""

    kind = "byte"
    vocab_size = 256

    def encode(self, text: str | bytes) -> np.ndarray:
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        return np.frombuffer(data, dtype=np.uint8).astype(np.int64)

    def decode_bytes(self, ids) -> bytes:
        return _as_ids(ids, 256).astype(np.uint8).tobytes()

    def decode(self, ids) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def to_hf(self):
        from tokenizers import Tokenizer as HF
        from tokenizers import decoders, models, pre_tokenizers

        b2u = bytes_to_unicode()
        tok = HF(models.BPE(vocab={b2u[b]: b for b in range(256)}, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tok.decoder = decoders.ByteLevel()
        return tok


class CharTokenizer(Tokenizer):
    """One id per character seen in training (code-point order), then `<unk>`."""

    kind = "char"

    def __init__(self, chars: list[str]):
        self.chars = sorted(chars)
        self.unk_id = len(self.chars)
        self.vocab_size = len(self.chars) + 1
        self._itos = [*self.chars, UNK]
        # A dense code point -> id table (its last entry <unk> catches every larger code point)
        # makes encoding one gather: ~10x faster than a sorted search.
        cps = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._table = np.full(int(cps.max(initial=0)) + 2, self.unk_id, dtype=np.int64)
        self._table[cps] = np.arange(len(cps))

    def encode(self, text: str | bytes) -> np.ndarray:
        cps = np.frombuffer(_as_text(text).encode("utf-32-le"), dtype="<u4")
        return self._table[np.minimum(cps, len(self._table) - 1)]

    def decode(self, ids) -> str:
        itos = self._itos
        return "".join(itos[i] for i in _as_ids(ids, self.vocab_size).tolist())

    def to_hf(self):
        from tokenizers import Regex, decoders, models, pre_tokenizers
        from tokenizers import Tokenizer as HF

        vocab = {c: i for i, c in enumerate(self._itos)}
        tok = HF(models.WordLevel(vocab=vocab, unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tok.decoder = decoders.Fuse()
        return tok


_NOT_SPACE = "\x1c\x1d\x1e\x1f"
_WORD_GAP = re.compile(r"[^\S\x1c-\x1f]+")


def words_of(text: str) -> list[str]:
    """The words of a text, split at whitespace as `tokenizers`' WhitespaceSplit splits
    (the exported tokenizer.json's): Python's str.split also splits at the separators
    U+001C-U+001F, which it does not, so the two gave other ids for a text holding them."""
    if not any(c in text for c in _NOT_SPACE):
        return text.split()
    return [w for w in _WORD_GAP.split(text) if w]


class WordTokenizer(Tokenizer):
    """Whitespace-split words, `<eos>` ending each line, `<unk>` for words outside the vocabulary."""

    kind = "word"

    def __init__(self, words: list[str]):
        words = [w for w in words if w not in (UNK, EOS)]
        self._itos = [UNK, EOS, *words]
        self._stoi = {w: i for i, w in enumerate(self._itos)}
        self.unk_id, self.eos_id = 0, 1
        self.vocab_size = len(self._itos)

    def encode(self, text: str | bytes, final: bool = True) -> np.ndarray:
        """`final=False` leaves a last line without newline open (a chunk of a longer text)."""
        lines = _as_text(text).split("\n")
        last = lines.pop()  # "" when the text ends with a newline
        get, unk, eos = self._stoi.get, self.unk_id, self.eos_id
        out: list[int] = []
        for line in lines:
            out.extend(get(w, unk) for w in words_of(line))
            out.append(eos)
        out.extend(get(w, unk) for w in words_of(last))
        if last and final:  # as PyTorch's example: a file's last line ends with <eos> too
            out.append(eos)
        return np.array(out, dtype=np.int64)

    def decode(self, ids) -> str:
        parts, line = [], []
        for i in _as_ids(ids, self.vocab_size).tolist():
            if i == self.eos_id:
                parts.append(" ".join(line) + "\n")
                line = []
            else:
                line.append(self._itos[i])
        if line:
            parts.append(" ".join(line))
        return "".join(parts)

    def to_hf(self):
        from tokenizers import Tokenizer as HF
        from tokenizers import models, normalizers, pre_tokenizers

        tok = HF(models.WordLevel(vocab=dict(self._stoi), unk_token=UNK))
        tok.normalizer = normalizers.Replace("\n", f" {EOS} ")
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        return tok


class BPETokenizer(Tokenizer):
    """A Hugging Face `tokenizers` tokenizer (byte-level BPE when trained here)."""

    kind = "bpe"

    def __init__(self, hf):
        self.hf = hf
        self.vocab_size = hf.get_vocab_size(with_added_tokens=True)
        self._continuation: BPETokenizer | None = None

    def continuation(self) -> "BPETokenizer":
        """This tokenizer for text that goes on from earlier text of the same document.

        Some pretrained tokenizers mark the start of every text they encode: SentencePiece
        conversions (Llama, T5) with a Metaspace pre-tokenizer that prepends '▁' or a
        Prepend normalizer, GPT-2-style ones with ByteLevel's add_prefix_space. Encoded
        piece by piece, a long document would gain that mark at every cut; its pieces after
        the first are encoded by this copy, with the mark turned off (self if it has none)."""
        if self._continuation is None:
            obj = json.loads(self.hf.to_str())
            if _drop_start_marks(obj):
                from tokenizers import Tokenizer as HF

                self._continuation = BPETokenizer(HF.from_str(json.dumps(obj)))
            else:
                self._continuation = self
        return self._continuation

    # add_special_tokens=False: a pretrained tokenizer's post-processor (BOS/EOS around each
    # text) must not mark the pieces a corpus is cut into; ours has none.
    def encode(self, text: str | bytes) -> np.ndarray:
        return np.array(self.hf.encode(_as_text(text), add_special_tokens=False).ids, np.int64)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Encode many texts at once (in parallel threads inside `tokenizers`)."""
        return [
            np.array(e.ids, dtype=np.int64)
            for e in self.hf.encode_batch(texts, add_special_tokens=False)
        ]

    def decode(self, ids) -> str:
        return self.hf.decode(_as_ids(ids, self.vocab_size).tolist(), skip_special_tokens=False)

    def to_hf(self):
        return self.hf


def _drop_start_marks(obj: dict) -> bool:
    """Turn off, in a tokenizer.json's object, what marks the start of each encoded text:
    Metaspace's prepend ('▁' before the first word), ByteLevel's add_prefix_space, a
    Prepend normalizer. True if anything was changed."""
    changed = False

    def pre(node):
        nonlocal changed
        if not isinstance(node, dict):
            return
        if node.get("type") == "Metaspace":
            if node.get("prepend_scheme", "never") != "never" or node.get("add_prefix_space"):
                changed = True
            if "prepend_scheme" in node:
                node["prepend_scheme"] = "never"
            if "add_prefix_space" in node:
                node["add_prefix_space"] = False
        elif node.get("type") == "ByteLevel" and node.get("add_prefix_space"):
            node["add_prefix_space"], changed = False, True
        for child in node.get("pretokenizers") or ():
            pre(child)

    def norm(node):
        nonlocal changed
        if not isinstance(node, dict):
            return node
        if node.get("type") == "Prepend":
            changed = True
            return None
        if node.get("type") == "Sequence":
            kept = [n for n in map(norm, node.get("normalizers") or ()) if n is not None]
            node["normalizers"] = kept
        return node

    pre(obj.get("pre_tokenizer"))
    obj["normalizer"] = norm(obj.get("normalizer"))
    return changed


# --- training --------------------------------------------------------------------------


def check_vocab_size(kind: str, vocab_size: int | None) -> None:
    """Refuse a --vocab-size the tokenizer kind cannot have."""
    if kind not in KINDS:
        raise ConfigError(f"--tokenizer {kind!r} is not one of {', '.join(KINDS)}")
    if vocab_size is None:
        return
    lo = {"byte": 256, "char": 2, "word": 3, "bpe": 257}[kind]
    hi = 256 if kind == "byte" else MAX_VOCAB
    if not lo <= vocab_size <= hi:
        if kind == "byte":
            raise ConfigError(f"--vocab-size {vocab_size}: the byte tokenizer has exactly 256")
        raise ConfigError(
            f"--vocab-size {vocab_size} is out of range for the {kind} tokenizer ({lo}..{hi})"
        )


def train_tokenizer(kind: str, texts: Iterable[str], vocab_size: int | None = None) -> Tokenizer:
    """Build a tokenizer of `kind` from training texts (an iterable of strings, read once).

    `vocab_size` caps the vocabulary by frequency (char, word) or sets the BPE
    target (default 4096); None means every symbol seen (char, word). The byte
    tokenizer reads nothing.
    """
    check_vocab_size(kind, vocab_size)
    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        return _train_char(texts, vocab_size)
    if kind == "word":
        counts: Counter = Counter()
        for text in texts:
            counts.update(w for w in words_of(text) if len(w) <= MAX_WORD)
        ranked = sorted((w for w in counts if w not in (UNK, EOS)), key=lambda w: (-counts[w], w))
        return WordTokenizer(ranked if vocab_size is None else ranked[: vocab_size - 2])
    return _train_bpe(texts, vocab_size or DEFAULT_BPE_VOCAB)


def _train_char(texts: Iterable[str], vocab_size: int | None) -> CharTokenizer:
    counts = np.zeros(0, dtype=np.int64)
    for text in texts:
        n = np.bincount(np.frombuffer(text.encode("utf-32-le"), "<u4"))
        if len(n) > len(counts):
            n[: len(counts)] += counts
            counts = n
        else:
            counts[: len(n)] += n
    seen = np.flatnonzero(counts)
    ranked = sorted(seen.tolist(), key=lambda c: (-counts[c], c))
    if vocab_size is not None:
        ranked = ranked[: vocab_size - 1]
    return CharTokenizer([chr(c) for c in ranked])


def _train_bpe(texts: Iterable[str], vocab_size: int) -> BPETokenizer:
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers
    from tokenizers import Tokenizer as HF

    tok = HF(models.BPE())
    # After ByteLevel each character stands for one byte, so this caps pre-tokens in bytes
    # (a cut may fall inside a UTF-8 character: byte-level BPE is lossless all the same).
    cap = pre_tokenizers.Split(Regex(f"[\\s\\S]{{1,{MAX_PRETOKEN}}}"), behavior="isolated")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), cap]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    reached = tok.get_vocab_size(with_added_tokens=True)
    if reached < vocab_size:  # the trainer stops quietly when no pair is left to merge
        log.warning(
            "--vocab-size %d: the bpe vocabulary reached %d; the training text has "
            "no more merges to make (every pair of tokens seen is merged), so use more text "
            "for a larger vocabulary",
            vocab_size, reached,
        )  # fmt: skip
    return BPETokenizer(tok)


# --- loading ---------------------------------------------------------------------------


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer from a tokenizer.json file or a shards folder holding one."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: tokenizer file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable tokenizer file ({exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a tokenizer file")
    if "model" not in obj:
        if obj.get("kind") == "byte":  # the minimal form hand-written shards may carry
            return ByteTokenizer()
        raise DataError(f"{path}: not a tokenizer file (no 'model')")
    kind = detect_kind(obj)
    model = obj["model"]
    if kind == "byte":
        return ByteTokenizer()
    if kind == "char":
        vocab = model["vocab"]
        if vocab.get(UNK) != len(vocab) - 1:
            raise DataError(f"{path}: char tokenizer without {UNK} as its last id")
        return CharTokenizer([c for c in vocab if c != UNK])
    if kind == "word":
        vocab = model["vocab"]
        if vocab.get(UNK) != 0 or vocab.get(EOS) != 1:
            raise DataError(f"{path}: word tokenizer without {UNK}=0 and {EOS}=1")
        return WordTokenizer(sorted(vocab, key=vocab.__getitem__))
    from tokenizers import Tokenizer as HF

    try:
        return BPETokenizer(HF.from_str(json.dumps(obj)))
    except Exception as exc:  # tokenizers raises a bare Exception for bad files
        raise DataError(f"{path}: not a valid Hugging Face tokenizer ({exc})") from None


def not_a_tokenizer(text: str) -> str:
    """The error for a --tokenizer that is neither a kind nor an existing path."""
    return (
        f"--tokenizer {text!r} is not one of {', '.join(KINDS)}, nor a tokenizer.json or "
        "tokenizer folder"
    )


def load_pretrained(path: str | os.PathLike) -> tuple[Tokenizer, dict]:
    """A pretrained tokenizer, offline: a Hugging Face `tokenizer.json`, or a local tokenizer
    folder (as `save_pretrained` writes it: its tokenizer.json; without one, the files
    `transformers` converts, e.g. vocab.json + merges.txt, when transformers is installed).

    Returns the tokenizer and its record for the shards' manifest: `path` as given and
    `sha256`, the fingerprint of the tokenizer it resolved to (its JSON, as saved)."""
    path = Path(path)
    if path.is_dir() and not (path / "tokenizer.json").is_file():
        tok = _from_transformers(path)
    elif path.exists():
        tok = load_tokenizer(path)
    else:
        raise ConfigError(not_a_tokenizer(str(path)))
    text = tok.to_hf().to_str(pretty=True) + "\n"  # what `save` writes into the shards
    return tok, {"path": str(path), "sha256": hashlib.sha256(text.encode()).hexdigest()}


def _from_transformers(folder: Path) -> Tokenizer:
    transformers = require("transformers", "hf", f"reading the tokenizer folder {folder}")
    try:
        t = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{folder}: not a Hugging Face tokenizer folder ({first})") from None
    if not getattr(t, "is_fast", False):
        raise DataError(f"{folder}: only a fast (tokenizers-backed) tokenizer can be used")
    return BPETokenizer(t.backend_tokenizer)


def detect_kind(obj: dict) -> str:
    """Which of our kinds a tokenizer.json is, from its structure."""
    model = obj.get("model") or {}
    pre = obj.get("pre_tokenizer") or {}
    if model.get("type") == "WordLevel":
        if pre.get("type") == "Split":
            return "char"
        if pre.get("type") == "WhitespaceSplit":
            return "word"
    if (
        model.get("type") == "BPE"
        and not model.get("merges")
        and len(model.get("vocab", {})) == 256
        and pre.get("type") == "ByteLevel"
        and pre.get("use_regex") is False
    ):
        return "byte"
    return "bpe"
