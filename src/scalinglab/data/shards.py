"""The shards folder: its manifest schema and the read side.

A shards folder holds::

    train.bin       flat little-endian token ids (dtype from the manifest)
    val.bin         the same for the held-out split
    test.bin        optional: a test split (`prepare --test-file`)
    tokenizer.json  the tokenizer (scalinglab.data.tokenizers.load_tokenizer reads it)
    manifest.json   written last; a folder without a valid manifest is not shards

manifest.json (format_version 1)::

    {
      "format_version": 1,
      "kind": "scalinglab.shards",
      "sources": ["stdlib", ...],              # as given on the command line
      "tokenizer": "byte" | "char" | "word" | "bpe",
      "vocab_size": 256,
      "dtype": "uint16" | "uint32",
      "seed": 1337, "val_fraction": 0.01 | null,
      "splits": {
        "train": {"documents": int, "bytes": int, "tokens": int},
        "val":   {"documents": int, "bytes": int, "tokens": int},
        "test":  {...}                          # only with a test split
      },
      "val_file": "...", "test_file": "...",   # only when prepare was given them
      "sha256": {"train.bin": hex, "val.bin": hex, "tokenizer.json": hex}
    }

`bytes` counts the UTF-8 bytes of the text a split holds, so that bits per
byte = loss · tokens / (bytes · ln 2) compares across tokenizers.

**Integrity.** `open_shards` always checks each split's size against the manifest.
`check_integrity` (the trainer and `eval` call it when they start) also checks each
file's sha256 against the manifest and every token id against `vocab_size`, in one
read of each file; what it found is cached in `SHARDS/.verified.json` keyed by each
file's size and mtime, so a folder is read in full once, not at every start (the
cost: benchmarks/results/shard_check.md). A read-only folder is checked at each
start instead. It also loads `tokenizer.json` (as `generate` will) and checks its sha256
where the manifest records one (`prepare` always has), at every start: the file is
small, and a damaged one is refused then, not after the run trained (a folder written by
hand without a tokenizer.json, and so without its sha256, still trains).

**Tokenizer identity** (`tokenizer_id`): the sha256 of `tokenizer.json`, as the
manifest records it. A run records it (result.json) and `eval --data` refuses shards
of another tokenizer, whose ids would mean other text.
"""

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scalinglab.errors import DataError
from scalinglab.fsio import atomic_write_json, path_relation, sha256_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "scalinglab.shards"
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
VERIFIED = ".verified.json"
SPLITS = ("train", "val")  # every shards folder has these
OPTIONAL_SPLITS = ("test",)  # and may have these (the manifest lists them under splits)
DTYPES = {"uint16": np.uint16, "uint32": np.uint32}


def dtype_for_vocab(vocab_size: int) -> str:
    """The smallest on-disk dtype that holds every id of a vocabulary."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


def is_shards_dir(path: str | os.PathLike) -> bool:
    """True when `path` holds a manifest that names itself a shards folder."""
    try:
        with open(Path(path) / MANIFEST) as f:
            return json.load(f).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def check_nothing_else(out: str | os.PathLike, force: bool) -> None:
    """Refuse to rebuild the shards folder `out` where it also holds files of the user's (a
    rebuild replaces the whole folder, deleting them) unless `force`: any name not hidden
    (the shards' own caches are) that is not one of the shards' own files."""
    own = {MANIFEST, TOKENIZER, *(f"{s}.bin" for s in SPLITS + OPTIONAL_SPLITS)}
    if force or not is_shards_dir(out):
        return
    extra = sorted(p.name for p in Path(out).iterdir() if p.name not in own and p.name[0] != ".")
    if extra:
        more = f" and {len(extra) - 3} more" if len(extra) > 3 else ""
        raise DataError(
            f"--out {out}: the shards folder also holds {', '.join(extra[:3])}{more}, which "
            "rebuilding it would delete; move them out, or pass --force to replace it all"
        )


def write_target(out: str | os.PathLike) -> Path:
    """Where a (re)build of --out writes and renames its folder: a symlink's target, so the
    link (shards kept on another disk) stays and points at the new shards, else `out`."""
    out = Path(out)
    return out.resolve() if out.is_symlink() else out


def check_out_in_a_folder(out: str | os.PathLike) -> None:
    """Refuse an --out below a file (`--out notes.txt/shards`) up front: making its folder
    failed only after the scan pass, with errno's words and not the flag."""
    for parent in Path(out).parents:  # the nearest first: the first that exists decides
        if parent.exists():
            if not parent.is_dir():
                raise DataError(f"--out {out}: {parent} is a file, not a folder")
            return


def check_out_apart_from_cwd(out: str | os.PathLike) -> None:
    """Refuse an --out that is the current folder or holds it: the finished folder replaces
    --out by a rename, which `.` refuses (busy) after all the work, and a resolved path
    would leave the process in a deleted folder."""
    if path_relation(Path.cwd(), out) in ("is", "lies inside"):
        raise DataError(
            f"--out {out}: is the current folder or holds it, which the finished shards "
            "folder cannot replace; write the shards to a folder of their own (--out shards)"
        )


def read_manifest(path: str | os.PathLike) -> dict:
    """Read and validate `path/manifest.json`; raise DataError naming what is wrong."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"shards folder not found: {path}")
    if not path.is_dir():
        raise DataError(f"not a shards folder (not a directory): {path}")
    mpath = path / MANIFEST
    if not mpath.exists():
        raise DataError(
            f"not a shards folder: {mpath} is missing (create one with `scalinglab prepare`)"
        )
    try:
        with open(mpath, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{mpath}: unreadable manifest ({exc})") from None
    if not isinstance(m, dict) or m.get("kind") != KIND:
        raise DataError(f"{mpath}: not a scalinglab shards manifest")
    if m.get("format_version") != FORMAT_VERSION:
        raise DataError(
            f"{mpath}: format_version {m.get('format_version')!r} is not supported "
            f"(this scalinglab reads {FORMAT_VERSION})"
        )
    for key in ("tokenizer", "vocab_size", "dtype", "splits"):
        if key not in m:
            raise DataError(f"{mpath}: missing field '{key}'")
    if m["dtype"] not in DTYPES:
        raise DataError(f"{mpath}: dtype {m['dtype']!r} is not one of {sorted(DTYPES)}")
    if not isinstance(m["splits"], dict):
        raise DataError(f"{mpath}: splits is not a mapping")
    for split in present_splits(m):
        if split not in m["splits"] or "tokens" not in m["splits"][split]:
            raise DataError(f"{mpath}: missing splits.{split}.tokens")
    return m


def content_id(manifest: dict) -> str:
    """Identifies what a shards folder holds (token files, tokenizer), not when or how
    fast it was built: rebuilding the same corpus gives the same id."""
    keep = {k: manifest.get(k) for k in ("tokenizer", "vocab_size", "dtype", "sha256")}
    keep["tokens"] = {s: manifest["splits"][s]["tokens"] for s in present_splits(manifest)}
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def present_splits(manifest: dict) -> tuple[str, ...]:
    """The splits a shards folder holds: train, val, and the optional ones it lists."""
    return SPLITS + tuple(s for s in OPTIONAL_SPLITS if s in manifest["splits"])


@dataclass
class Shards:
    """An opened shards folder: memory-mapped splits plus the manifest."""

    path: Path
    manifest: dict
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray | None = None  # None: the folder has no test split

    def split(self, name: str) -> np.ndarray:
        """The tokens of split `name` (train, val or test); DataError naming what exists."""
        arr = getattr(self, name, None) if name in SPLITS + OPTIONAL_SPLITS else None
        if arr is None:
            have = ", ".join(present_splits(self.manifest))
            hint = (
                " (`prepare --val-file FILE --test-file FILE` makes one)" if name == "test" else ""
            )
            raise DataError(f"shards folder {self.path} has no {name} split (it has {have}){hint}")
        return arr

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["vocab_size"])

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER

    @property
    def tokenizer(self) -> str:
        return str(self.manifest["tokenizer"])

    @property
    def tokenizer_id(self) -> str | None:
        """The tokenizer's identity: the first 16 hex digits of its file's sha256 (from the
        manifest, else hashed now); None when the folder has no tokenizer file."""
        known = (self.manifest.get("sha256") or {}).get(TOKENIZER)
        if known:
            return str(known)[:16]
        if self.tokenizer_path.exists():
            return sha256_file(self.tokenizer_path)[:16]
        return None

    def bytes_per_token(self, split: str = "val") -> float:
        """UTF-8 bytes per token of a split (for bits per byte)."""
        s = self.manifest["splits"][split]
        return s["bytes"] / max(1, s["tokens"])


def open_shards(path: str | os.PathLike, verify: bool = False) -> Shards:
    """Open a shards folder read-only by memmap. `verify=True` also checks sha256 hashes."""
    path = Path(path)
    m = read_manifest(path)
    dtype = DTYPES[m["dtype"]]
    arrays = {}
    for split in present_splits(m):
        f = path / f"{split}.bin"
        if not f.exists():
            raise DataError(f"shards folder {path}: {f.name} is missing")
        expected = int(m["splits"][split]["tokens"]) * np.dtype(dtype).itemsize
        size = f.stat().st_size
        if size != expected:
            raise DataError(
                f"{f}: {size} bytes, but the manifest says {m['splits'][split]['tokens']} "
                f"{m['dtype']} tokens ({expected} bytes); the folder is damaged, rerun `prepare`"
            )
        if verify and m.get("sha256", {}).get(f.name) not in (None, sha256_file(f)):
            raise DataError(f"{f}: sha256 does not match the manifest; rerun `prepare`")
        if size == 0:
            arrays[split] = np.zeros(0, dtype=dtype)
        else:
            arrays[split] = np.memmap(f, dtype=np.dtype(dtype).newbyteorder("<"), mode="r")
    return Shards(path=path, manifest=m, **arrays)


def check_integrity(shards: Shards, chunk: int = 1 << 22) -> None:
    """Check each split against its manifest: its sha256 (when the manifest records one)
    and that every token id is below `vocab_size`; DataError naming the file otherwise.

    One read per file; the result is cached in SHARDS/.verified.json under the file's
    size and mtime (module doc), so an unchanged folder is not read again. The tokenizer
    is checked first, every time (`check_tokenizer`)."""
    check_tokenizer(shards)
    cache_path = shards.path / VERIFIED
    cache = _read_cache(cache_path)
    fresh = {}
    for split in present_splits(shards.manifest):
        f = shards.path / f"{split}.bin"
        st = f.stat()
        want = (shards.manifest.get("sha256") or {}).get(f.name)
        key = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": want}
        seen = cache.get(f.name)
        if isinstance(seen, dict) and all(seen.get(k) == v for k, v in key.items()):
            max_id = seen.get("max_id")
        else:
            digest, max_id = _scan_file(f, shards.manifest["dtype"], chunk)
            if want is not None and digest != want:
                raise DataError(
                    f"{f}: sha256 does not match the manifest; the folder is damaged, "
                    "rerun `prepare`"
                )
            fresh[f.name] = key | {"max_id": max_id}
        if isinstance(max_id, int) and max_id >= shards.vocab_size:
            raise DataError(
                f"{f}: token id {max_id} is out of range for the manifest's vocab_size "
                f"{shards.vocab_size}; the folder is damaged or was not made by `prepare`"
            )
    if fresh:
        with contextlib.suppress(OSError, ValueError):  # a read-only folder: check each time
            atomic_write_json(cache_path, cache | fresh)


def check_tokenizer(shards: Shards) -> None:
    """Refuse a shards folder whose tokenizer.json is unreadable (not JSON, not a tokenizer:
    `load_tokenizer`'s error, the one `generate` would give after training), missing where
    the manifest records its sha256, or not the file the manifest hashed. A folder whose
    manifest has no sha256 for it (written by hand) and no tokenizer.json passes."""
    from scalinglab.data.tokenizers import load_tokenizer

    tok = shards.tokenizer_path
    want = (shards.manifest.get("sha256") or {}).get(TOKENIZER)
    damaged = "the folder is damaged, rerun `prepare`"
    if not tok.exists() and want is None:
        return
    if tok.is_dir():  # load_tokenizer would look for a tokenizer.json inside it
        raise DataError(f"{tok}: is a folder, not a tokenizer file; {damaged}")
    try:
        load_tokenizer(tok)
    except DataError as exc:
        raise DataError(f"{exc.message}; {damaged}") from None
    if want is not None and sha256_file(tok) != want:
        raise DataError(f"{tok}: sha256 does not match the manifest; {damaged}")


def up_to_date(out: str | os.PathLike, request: dict, fingerprint: str) -> dict | None:
    """The manifest of the shards folder `out` where it holds these shards (the same
    request and source fingerprint), intact; None otherwise. A damaged one is warned of:
    the caller rebuilds it (`prepare` and `--from-nanogpt` ask before they skip work)."""
    if not is_shards_dir(out):
        return None
    try:
        m = open_shards(out).manifest
    except DataError:
        return None
    if m.get("request") != request or m.get("fingerprint") != fingerprint:
        return None
    if damaged := damage(out):  # train and eval refuse it, saying to rerun prepare
        log.warning("%s; rebuilding %s", damaged, out)
        return None
    return m


def damage(path: str | os.PathLike) -> str | None:
    """What is damaged in the shards folder `path` (its manifest read): a token file's size,
    sha256 or ids (`check_integrity`, cached) or tokenizer.json's sha256; None when intact.
    `prepare` asks before it calls a folder up to date, so a rerun rebuilds a damaged one."""
    try:
        sh = open_shards(path)
        check_integrity(sh)
    except DataError as exc:
        return exc.message.split(";")[0]
    tok = Path(path) / TOKENIZER
    want = (sh.manifest.get("sha256") or {}).get(TOKENIZER)
    if not tok.is_file():
        return f"{tok} is missing"
    if want is not None and sha256_file(tok) != want:
        return f"{tok}: sha256 does not match the manifest"
    return None


def _scan_file(path: Path, dtype: str, chunk: int) -> tuple[str, int | None]:
    """(sha256, largest token id or None when empty) of a token file, in one read."""
    h = hashlib.sha256()
    largest = None
    item = np.dtype(DTYPES[dtype]).newbyteorder("<")
    with open(path, "rb") as f:
        while block := f.read(chunk - chunk % item.itemsize):
            h.update(block)
            ids = np.frombuffer(block, dtype=item)
            if ids.size:
                m = int(ids.max())
                largest = m if largest is None else max(largest, m)
    return h.hexdigest(), largest


def _read_cache(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}
