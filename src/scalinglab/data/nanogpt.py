"""Import a nanoGPT data folder (`data/<name>/` as its prepare.py scripts leave it) as a
shards folder: `scalinglab prepare --from-nanogpt DIR --out SHARDS`.

nanoGPT writes each split as flat uint16 token ids (`train.bin`, `val.bin`, read with
`np.memmap(..., dtype=np.uint16)`) — our own format — and, for character-level data,
`meta.pkl`: a pickled `{"vocab_size": int, "itos": {int: str}, "stoi": {str: int}}`.
The token files are copied (checked: every id below the vocabulary, sha256 taken on the
way) into a new shards folder with a tokenizer.json and a manifest, written as `prepare`
writes: into a temporary folder, the manifest last, renamed into place.

**meta.pkl is never unpickled as such.** Unpickling runs whatever code the file names, so
a downloaded data folder could run anything. `read_meta` uses a restricted unpickler
whose `find_class` refuses every global: only what pickle builds without naming a class
or function (dict, list, tuple, str, bytes, int, float, bool, None) can come out, and a
file over META_MAX_BYTES is refused unread. Nothing else of the file is trusted: the
vocabulary it declares is checked against the tokenizer and the ids.

The tokenizer: a character-level folder's `itos` (one character per id, in code-point
order, as nanoGPT's shakespeare_char makes it) becomes our char tokenizer with the very
same ids; any other folder (nanoGPT's openwebtext and shakespeare use GPT-2's BPE) needs
`--tokenizer PATH`, a pretrained tokenizer (docs/data.md), and may declare its
vocabulary with `--vocab-size` (GPT-2: 50257) where there is no meta.pkl to say it.
"""

import hashlib
import io
import json
import logging
import os
import pickle
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from scalinglab import __version__
from scalinglab.data import shards
from scalinglab.data.tokenizers import (
    UNK,
    BPETokenizer,
    ByteTokenizer,
    CharTokenizer,
    Tokenizer,
    bytes_to_unicode,
    load_pretrained,
)
from scalinglab.errors import ConfigError, DataError
from scalinglab.fsio import (
    atomic_write_json,
    make_temp_dir,
    path_relation,
    remove_replaced,
    remove_stale_temps,
    replace_dir,
    sha256_file,
    temp_tag,
)

log = logging.getLogger(__name__)

META_MAX_BYTES = 16 << 20
MAX_VOCAB = 1 << 32  # a meta.pkl's vocab_size above it is no vocabulary
CHUNK_TOKENS = 1 << 22  # ids read at a time: memory stays a few times 8 MB
UINT32_SIGN = 1024  # ids, every second one 0, that say a file holds uint32 ids
# 2: ids are checked against the declared vocabulary, not the tokenizer's
# 3: a split's bytes counted from the vocabulary: 1 per byte-tokenizer id (ids >= 0x80
#    counted 3), the space of a SentencePiece `▁` piece (it was dropped)
# 4: a word-level or WordPiece tokenizer's split bytes from the decoded text (counted per
#    id, the spaces between words were left out: 24-28% short)
IMPORT_VERSION = 4


class _NoGlobals(pickle.Unpickler):
    """An unpickler that builds plain data only: every class or function is refused."""

    def find_class(self, module, name):
        raise DataError(
            f"names {module}.{name}; only plain data (dict, str, int, ...) is read from a "
            "meta.pkl, never code"
        )


def read_meta(path: str | os.PathLike) -> dict:
    """The plain-data contents of a nanoGPT meta.pkl, read without running any of it."""
    path = Path(path)
    size = path.stat().st_size
    if size > META_MAX_BYTES:
        raise DataError(f"{path}: {size} bytes; a meta.pkl over {META_MAX_BYTES} is not read")
    try:
        meta = _NoGlobals(io.BytesIO(path.read_bytes())).load()
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    except Exception as exc:  # a truncated or foreign file: pickle raises many kinds
        raise DataError(f"{path}: not a readable meta.pkl ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: expected a dict, got {type(meta).__name__}")
    vs = meta.get("vocab_size")
    if vs is not None and (
        isinstance(vs, bool) or not isinstance(vs, int) or not 1 <= vs <= MAX_VOCAB
    ):
        # a crafted integer may have more digits than Python converts to text
        shown = (
            f"an integer of {vs.bit_length()} bits"
            if isinstance(vs, int) and abs(vs) > MAX_VOCAB
            else repr(vs)[:40]
        )
        raise DataError(f"{path}: vocab_size must be an integer in 1..2**32, got {shown}")
    itos = meta.get("itos")
    if itos is not None and not (
        isinstance(itos, dict)
        and all(isinstance(k, int) and isinstance(v, str) for k, v in itos.items())
    ):
        raise DataError(f"{path}: itos must map integer ids to strings")
    return meta


def _char_tokenizer(meta: dict, where: Path) -> CharTokenizer:
    itos = meta["itos"]
    n = len(itos)
    if sorted(itos) != list(range(n)) or any(len(c) != 1 for c in itos.values()):
        raise DataError(f"{where}: itos is not one character for each id 0..{n - 1}")
    chars = [itos[i] for i in range(n)]
    if chars != sorted(chars) or UNK in chars:
        raise DataError(
            f"{where}: the characters are not in code-point order (as nanoGPT's char "
            "prepare.py sorts them), so scalinglab's char tokenizer cannot keep their ids"
        )
    return CharTokenizer(chars)


def token_bytes(tok: Tokenizer) -> np.ndarray | None:
    """UTF-8 bytes of text each id stands for (0 for special tokens): with the counts of
    ids, the bytes a split holds, for bits per byte. None where the text is no sum over
    the ids: a word-level tokenizer (its decoder puts a space between words) or one of
    pieces joined by its decoder (WordPiece's `##`): the split's bytes are then counted
    by decoding it (`decoded_bytes`); counted per id they came out 24-28% short.

    Read from the vocabulary, never by decoding an id alone: a lone byte >= 0x80 decodes
    to U+FFFD (3 bytes, not 1), and a SentencePiece piece `▁word` decodes alone without
    its space. The byte tokenizer: 1 per id; byte-level BPE (a ByteLevel decoder): one
    byte per character of the piece; SentencePiece style (Metaspace): the replacement
    character `▁` is one space, a byte-fallback piece `<0xNN>` one byte."""
    n = np.zeros(tok.vocab_size, dtype=np.int64)
    if isinstance(tok, ByteTokenizer):
        return np.ones(256, dtype=np.int64)
    if isinstance(tok, CharTokenizer):
        n[: len(tok.chars)] = [len(c.encode()) for c in tok.chars]
        return n
    if not isinstance(tok, BPETokenizer):
        return None  # our word tokenizer
    spec = json.loads(tok.hf.to_str())
    found: dict[str, list[dict]] = {}
    _collect_types(spec.get("decoder"), found)
    _collect_types(spec.get("pre_tokenizer"), found)
    byte_level = "ByteLevel" in found
    spaces = {m.get("replacement", "\u2581") for m in found.get("Metaspace", [])}
    spaces |= {  # Llama's decoder: Replace("▁", " ") rather than Metaspace
        r["pattern"]["String"]
        for r in found.get("Replace", [])
        if r.get("content") == " " and isinstance(r.get("pattern"), dict)
        and isinstance(r["pattern"].get("String"), str) and r["pattern"]["String"]
    }  # fmt: skip
    if not byte_level and not spaces:  # pieces the decoder joins (WordPiece, WordLevel)
        return None
    byte_fallback = bool((spec.get("model") or {}).get("byte_fallback"))
    u2b = {c: b for b, c in bytes_to_unicode().items()}
    special = set(tok.hf.get_added_tokens_decoder())
    for piece, i in tok.hf.get_vocab(with_added_tokens=True).items():
        if i in special or i >= len(n):
            continue
        if byte_level and all(c in u2b for c in piece):
            n[i] = len(piece)  # each character of a byte-level piece stands for one byte
        elif byte_fallback and _BYTE_PIECE.fullmatch(piece):
            n[i] = 1
        elif byte_level:
            n[i] = len(tok.decode([i]).encode())  # an added token: its text
        else:
            for sp in spaces:
                piece = piece.replace(sp, " ")
            n[i] = len(piece.encode())
    return n


_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")

SEAM_TOKENS = 16
"""Ids on each side of a seam between two decoded chunks: what a decoder puts between two
ids (a space, nothing before WordPiece's `##`) depends on them alone."""


def decoded_bytes(tok: Tokenizer, chunks) -> int:
    """UTF-8 bytes of the text the ids of `chunks` (arrays, in order) decode to, without
    holding the whole text: each chunk decoded alone, and at each seam what decoding
    across it adds (a space between two words) from SEAM_TOKENS ids on either side."""
    total, tail = 0, None
    for chunk in chunks:
        ids = np.asarray(chunk).tolist()
        if not ids:
            continue
        total += len(tok.decode(ids).encode())
        if tail is not None:
            head = ids[:SEAM_TOKENS]
            both = len(tok.decode(tail + head).encode())
            total += both - len(tok.decode(tail).encode()) - len(tok.decode(head).encode())
        tail = ids[-SEAM_TOKENS:]
    return total


def _collect_types(obj, found: dict[str, list[dict]]) -> None:
    """Every component of a tokenizer.json part (a Sequence's too), by its type."""
    if isinstance(obj, dict):
        if isinstance(obj.get("type"), str):
            found.setdefault(obj["type"], []).append(obj)
        for v in obj.values():
            _collect_types(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _collect_types(v, found)


def import_nanogpt(
    src: str | os.PathLike,
    out: str | os.PathLike,
    tokenizer: str | None = None,
    vocab_size: int | None = None,
    block_size: int = 128,
    force: bool = False,
) -> dict:
    """Make the shards folder `out` from the nanoGPT data folder `src`; return its manifest
    (plus "up_to_date", as `prepare` returns it)."""
    src, out = Path(src), Path(out)
    t0 = time.perf_counter()
    if not src.is_dir():
        raise DataError(f"--from-nanogpt {src}: not a folder")
    shards.check_out_in_a_folder(out)
    shards.check_out_apart_from_cwd(out)
    if out.exists() and path_relation(src, out) in ("is", "lies inside"):
        raise DataError(
            f"--out {out}: the --from-nanogpt folder {src} lies inside it, and replacing the "
            "folder would delete it; write the shards to another folder"
        )
    given = tokenizer and out.exists() and os.path.exists(tokenizer)  # as prepare refuses it
    if given and path_relation(tokenizer, out) in ("is", "lies inside"):
        raise DataError(
            f"--out {out}: the tokenizer {tokenizer} lies inside it, and replacing the "
            "folder would delete it; write the shards to another folder"
        )
    bins = {s: src / f"{s}.bin" for s in shards.SPLITS}
    for s, p in bins.items():
        if not p.is_file():
            raise DataError(f"--from-nanogpt {src}: no {s}.bin (nanoGPT's prepare.py writes it)")
        if p.stat().st_size % 2:
            raise DataError(f"{p}: {p.stat().st_size} bytes, not whole uint16 token ids")
    meta_path = src / "meta.pkl"
    meta = read_meta(meta_path) if meta_path.exists() else {}
    declared = meta.get("vocab_size")
    if vocab_size is not None and declared is not None and vocab_size != declared:
        raise ConfigError(f"--vocab-size {vocab_size}: {meta_path} declares {declared}")
    declared = declared if declared is not None else vocab_size
    if tokenizer:
        tok, pretrained = load_pretrained(tokenizer)
    elif meta.get("itos") is not None:
        tok, pretrained = _char_tokenizer(meta, meta_path), None
    else:
        raise ConfigError(
            f"--from-nanogpt {src}: no meta.pkl with itos (a character vocabulary); give "
            "--tokenizer PATH, the tokenizer that made the ids (GPT-2's tokenizer.json for "
            "nanoGPT's openwebtext and shakespeare), and --vocab-size (50257 for GPT-2)"
        )
    declared, says = _declared_vocab(src, meta_path, meta, tok, pretrained, declared)
    stat = {s: p.stat() for s, p in bins.items()}
    request = {
        "from_nanogpt": str(src), "tokenizer": str(tokenizer or "meta.pkl"),
        "tokenizer_sha256": pretrained["sha256"] if pretrained else None,
        "meta_sha256": sha256_file(meta_path) if meta else None, "vocab_size": declared,
        "importer": IMPORT_VERSION,
    }  # fmt: skip
    fingerprint = hashlib.sha256(
        repr(sorted((s, st.st_size, st.st_mtime_ns) for s, st in stat.items())).encode()
    ).hexdigest()
    if not force and (m := shards.up_to_date(out, request, fingerprint)):
        _check_windows(src, m["splits"], block_size)  # --block-size is not in the request
        remove_replaced(shards.write_target(out))  # what a killed rebuild left
        return {**m, "up_to_date": True}
    shards.check_nothing_else(out, force)
    if out.is_file() or (
        out.is_dir() and not shards.is_shards_dir(out) and any(out.iterdir()) and not force
    ):
        raise DataError(
            f"--out {out}: exists and is not a shards folder; refusing to replace it "
            "(pass --force to replace a folder)"
        )
    dest = shards.write_target(out)  # a symlink stays: its target is rebuilt
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dest.parent, f".{dest.name}.tmp-")
    tmp = make_temp_dir(dest.parent, f".{dest.name}.tmp-{temp_tag()}.")
    try:
        nbytes = token_bytes(tok)
        splits, sha = {}, {}
        for s, p in bins.items():
            splits[s], sha[f"{s}.bin"] = _copy_split(
                p, tmp / f"{s}.bin", (declared, says), tok, nbytes
            )
        _check_windows(src, splits, block_size)
        tok.save(tmp / shards.TOKENIZER)
        sha[shards.TOKENIZER] = sha256_file(tmp / shards.TOKENIZER)
        seconds = time.perf_counter() - t0
        manifest = {
            "format_version": shards.FORMAT_VERSION, "kind": shards.KIND,
            "sources": [f"nanogpt:{src}"],
            "source_details": [{"spec": str(src), "type": "nanogpt",
                                "meta_vocab_size": meta.get("vocab_size")}],
            "tokenizer": tok.kind, "vocab_size": tok.vocab_size,
            "dtype": shards.dtype_for_vocab(tok.vocab_size), "seed": None,
            "val_fraction": None, "split_by": "given", "documents": 2,
            "splits": splits, "sha256": sha, "request": request, "fingerprint": fingerprint,
            "build": {"seconds": round(seconds, 3),
                      "mb_per_s": round(sum(st.st_size for st in stat.values()) / 1e6
                                        / max(seconds, 1e-9), 2),
                      "scalinglab": __version__, "python": sys.version.split()[0]},
        }  # fmt: skip
        if pretrained:
            manifest["pretrained_tokenizer"] = pretrained
        atomic_write_json(tmp / shards.MANIFEST, manifest)  # last: it makes the folder valid
        replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {**manifest, "up_to_date": False}


def _declared_vocab(src, meta_path, meta, tok, pretrained, declared) -> tuple[int, str]:
    """(the ids' vocabulary: each id must be below it, what declares it) from meta.pkl's
    vocab_size, --vocab-size or the tokenizer; a declaration the tokenizer cannot hold
    is refused, one smaller than a pretrained tokenizer's vocabulary is said."""
    if declared is None:
        if pretrained:
            return tok.vocab_size, "the tokenizer's vocabulary"
        declared = len(tok.chars)  # nanoGPT never writes our <unk>, the last id
    says = "meta.pkl's vocab_size" if meta.get("vocab_size") is not None else "--vocab-size"
    if not pretrained and declared != len(tok.chars):
        raise DataError(
            f"{meta_path}: vocab_size is {declared} but itos holds {len(tok.chars)} "
            "characters (nanoGPT writes vocab_size = len(itos))"
        )
    if declared > tok.vocab_size:
        raise DataError(
            f"--from-nanogpt {src}: the vocabulary is declared as {declared} ids ({says}), "
            f"but the tokenizer has {tok.vocab_size}"
        )
    if pretrained and declared < tok.vocab_size:
        log.warning(
            "--from-nanogpt %s: the vocabulary is declared as %d ids (%s), the "
            "tokenizer has %d: ids from %d up are refused, and the shards keep its %d",
            src, declared, says, tok.vocab_size, declared, tok.vocab_size,
        )  # fmt: skip
    return declared, says


def _copy_split(
    src: Path,
    dst: Path,
    limit: tuple[int, str],
    tok: Tokenizer,
    nbytes: np.ndarray | None,
) -> tuple[dict, str]:
    """Copy one split's ids (as the manifest's dtype for the tokenizer's ids), checking each
    is below `limit`: (the declared vocabulary, what declares it); its bytes from `nbytes`
    (token_bytes), else from the text `tok` decodes the ids to."""
    vocab = tok.vocab_size
    bound, says = limit
    ids = np.memmap(src, dtype="<u2", mode="r") if src.stat().st_size else np.zeros(0, "<u2")
    dtype = np.dtype(shards.DTYPES[shards.dtype_for_vocab(vocab)]).newbyteorder("<")
    h, counted = hashlib.sha256(), 0
    with open(dst, "wb") as f:
        for i in range(0, len(ids), CHUNK_TOKENS):
            chunk = np.asarray(ids[i : i + CHUNK_TOKENS])
            if i == 0:
                _check_uint16(src, chunk)
            top = int(chunk.max(initial=0))
            if top >= bound:
                at = i + int(np.argmax(chunk >= bound))
                raise DataError(
                    f"{src}: token {at} is id {int(ids[at])}, out of range for the "
                    f"vocabulary of {bound} ({says})"
                )
            if nbytes is not None:
                counted += int(np.bincount(chunk, minlength=vocab)[:vocab] @ nbytes)
            buf = chunk.astype(dtype).tobytes()
            f.write(buf)
            h.update(buf)
        f.flush()
        os.fsync(f.fileno())
    if nbytes is None:  # no sum over the ids: the text they decode to, chunk by chunk
        counted = decoded_bytes(
            tok, (ids[i : i + CHUNK_TOKENS] for i in range(0, len(ids), CHUNK_TOKENS))
        )
    return {"documents": 1, "bytes": counted, "tokens": len(ids)}, h.hexdigest()


def _check_uint16(src: Path, ids: np.ndarray) -> None:
    """Refuse ids written 4 bytes each (np.uint32, as forks for larger vocabularies write
    them): read as nanoGPT's uint16, every second one is 0, the high half of an id, and
    every id passes the vocabulary check, so the split would be silently twice as long
    and not the text. Judged on UINT32_SIGN ids or more: real text never alternates
    with id 0 that long."""
    if len(ids) >= UINT32_SIGN and not ids[1::2].any() and ids[0::2].any():
        raise DataError(
            f"{src}: every second uint16 id is 0, the high halves of 4-byte ids: this file "
            "holds uint32 ids; nanoGPT's token files hold uint16 ids (2 bytes each), write "
            "them with np.uint16"
        )


def _check_windows(src: Path, splits: dict, block_size: int) -> None:
    tr, va = splits["train"]["tokens"], splits["val"]["tokens"]
    if tr < block_size + 2 or va < block_size + 1:
        raise DataError(
            f"--from-nanogpt {src}: train has {tr} tokens and val {va}; each split needs "
            f"one window of --block-size {block_size} plus one token"
        )
