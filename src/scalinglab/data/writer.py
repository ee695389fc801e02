"""The shard writer: sources → train/val split → tokenizer → `train.bin`, `val.bin`.

`prepare(sources, out, tokenizer=...)` makes a shards folder (schema in
`scalinglab.data.shards`) in four passes over the documents, each streaming in
chunks so memory stays bounded by the chunk size and the vocabulary:

1. scan: list the documents and their sizes (JSONL and `hf:` rows are parsed,
   so a bad line fails before any work);
2. split: with `val_file` (and `test_file`), the SOURCEs are the training
   split and those files the validation (and test) splits; else, with at least
   100 documents, hold out `val_fraction` (default 1%) of them, chosen by
   `seed`; with fewer, the last `val_fraction` (default 10%) of the bytes —
   nanoGPT's 90/10 split, cut at a character (a byte or char token is never cut
   in two); for word and BPE tokenizers, whose tokens span characters, at the
   start of the next line or document instead (the line before, when no line
   starts after the point; a character only in text without line breaks);
3. train the tokenizer on the training split only (not for `byte`);
4. encode the splits into a temporary folder beside `out`; write the
   tokenizer, then the manifest (last), then rename the folder into place.

A killed prepare leaves only a hidden `.NAME.tmp-PID@HOST.*` folder without a
manifest, which no reader takes for shards. That folder is the checkpoint (data/resume.py):
the next prepare of the same request on this host takes it over once process PID is
gone and resumes after the last pass or encode checkpoint it holds; a folder of another
request is deleted (fsio.remove_stale_temps). An exception deletes the folder. A rerun
with the same request on unchanged sources finds the folder up to date and returns at once.
"""

import hashlib
import logging
import os
import shutil
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from scalinglab import __version__
from scalinglab.config import SEED_RANGE, check_seed, check_types, setting
from scalinglab.data import resume, shards
from scalinglab.data.sources import (
    CHUNK_BYTES,
    Document,
    HFSource,
    JsonlSource,
    local_paths,
    resolve_sources,
    split_pieces,
)
from scalinglab.data.tokenizers import (
    KINDS,
    BPETokenizer,
    check_vocab_size,
    load_pretrained,
    load_tokenizer,
    not_a_tokenizer,
    train_tokenizer,
)
from scalinglab.errors import ConfigError, DataError
from scalinglab.fsio import (
    atomic_write_json,
    machine_lock,
    make_temp_dir,
    path_relation,
    remove_replaced,
    remove_stale_temps,
    remove_unnamed_temps,
    replace_dir,
    sha256_file,
    temp_tag,
)

log = logging.getLogger(__name__)

# Bump when the same request would give other tokens. 2: BPE pre-tokens are capped at
# MAX_PRETOKEN bytes, and chunks are no longer cut right after a blank line. 3: a split
# by bytes is cut at a line boundary for word and BPE tokenizers, not inside a word.
# 4: a pretrained tokenizer's start-of-text mark (SentencePiece's '▁', a prefix space)
# only at a document's start, not at every 64 KiB piece or 4 MiB chunk of it.
WRITER_VERSION = 4
DOC_SPLIT_MIN = 100
BPE_PIECE = 1 << 16  # text per encode_batch item: small enough to spread over threads

Progress = Callable[[str, int, int | None], None]  # (phase, bytes done since last call, total)


@dataclass
class PrepareConfig:
    """How `prepare` reads, splits and tokenizes a corpus (the flags of `scalinglab prepare`)."""

    tokenizer: str = setting(
        "byte",
        "tokenizer kind to train (byte, char, word, bpe), or a pretrained one: a Hugging Face "
        "tokenizer.json or a local tokenizer folder (used as is, never trained)",
    )
    vocab_size: int | None = setting(
        None,
        "vocabulary size: the BPE target; a cap by frequency for char/word",
        shown="4096 for bpe; every symbol seen for char/word",
    )
    val_fraction: float | None = setting(
        None,
        "held-out fraction: of documents (100 or more), else of bytes from the end",
        shown="0.01 of documents, else 0.1 of bytes",
    )
    val_file: str = setting(
        "",
        "a SOURCE holding the validation text; then nothing is held out of the SOURCEs, "
        "which all go to train",
    )
    test_file: str = setting(
        "", "a SOURCE holding the test text (with --val-file); `eval --split test` reads it"
    )
    seed: int = setting(1337, "seed of the choice of validation documents", range=SEED_RANGE)
    text_field: str = setting("text", "JSONL / hf: field holding the text")
    glob: str = setting("**/*", "files taken from a folder SOURCE (hidden files are skipped)")
    errors: str = setting(
        "strict",
        "undecodable UTF-8 for char/word/bpe: strict (error) or replace",
        choices=("strict", "replace"),
    )
    block_size: int = setting(
        128, "refuse a corpus whose splits hold less than one window of this many tokens + 1"
    )
    stdlib_tests: bool = setting(False, "with the stdlib source, include its test folders")
    streaming: bool = setting(
        False, "hf: sources: read rows as they come (bounded memory, no full download first)"
    )
    force: bool = setting(
        False, "rebuild even if up to date; replace an output folder that is not shards"
    )
    chunk_bytes: int = setting(CHUNK_BYTES, "bytes read at a time (memory use is a small multiple)")

    def __post_init__(self):
        check_types(self)
        check_seed(self.seed)
        if self.tokenizer in KINDS or not self.tokenizer.strip():
            check_vocab_size(self.tokenizer, self.vocab_size)
        elif not os.path.exists(self.tokenizer):
            raise ConfigError(not_a_tokenizer(self.tokenizer))
        elif self.vocab_size is not None:
            raise ConfigError(
                f"--vocab-size {self.vocab_size}: the pretrained tokenizer {self.tokenizer} "
                "has its own vocabulary"
            )
        if self.val_fraction is not None and not 0 < self.val_fraction < 1:
            raise ConfigError(f"--val-fraction must be in (0, 1), got {self.val_fraction}")
        if self.test_file and not self.val_file:
            raise ConfigError("--test-file needs --val-file (the validation split's source)")
        if self.val_file and self.val_fraction is not None:
            raise ConfigError(
                "--val-fraction with --val-file: the validation split is the file; "
                "leave out --val-fraction"
            )
        if self.errors not in ("strict", "replace"):
            raise ConfigError(f"--errors {self.errors!r} is not one of strict, replace")
        if self.block_size < 1:
            raise ConfigError(f"--block-size must be positive, got {self.block_size}")
        if self.chunk_bytes < 16:
            raise ConfigError(f"--chunk-bytes must be at least 16, got {self.chunk_bytes}")


@dataclass
class _Plan:
    sizes: array  # bytes of each document, in corpus order
    split_by: str  # "documents" | "files" | "bytes"
    val_fraction: float | None
    labels: np.ndarray | None = None  # documents/files: each document's index in SPLIT_NAMES
    split_at: int = 0  # bytes mode: global byte offset where val starts (a line boundary)
    splits: tuple[str, ...] = ("train", "val")  # the splits written


SPLIT_NAMES = ("train", "val", "test")
_FLAGS = ("SOURCE", "--val-file", "--test-file")  # what names each split's sources


def _say_what_is_replaced(out, request: dict) -> None:
    """A warning where `out` holds shards of other sources or another tokenizer: a typo in
    --out replaced a corpus that runs had trained on without a word (their `eval` then
    refused the folder as made by another tokenizer)."""
    try:
        old = shards.open_shards(out).manifest.get("request") or {}
    except DataError:  # no shards there, or damaged (said where it is checked)
        return
    was = {k: old.get(k) for k in ("sources", "tokenizer")}
    now = {k: request.get(k) for k in ("sources", "tokenizer")}
    if was != now:

        def show(r):
            return f"{', '.join(map(str, r['sources'] or []))} with {r['tokenizer']}"

        log.warning(
            "%s: replacing its shards of %s by shards of %s: runs trained on the old ones "
            "cannot be evaluated on these", out, show(was), show(now),
        )  # fmt: skip


def prepare(
    sources: str | list[str] | tuple[str, ...] | None = None,
    out: str | Path = "shards",
    config: PrepareConfig | None = None,
    progress: Progress | None = None,
    **options,
) -> dict:
    """Build (or find up to date) the shards folder `out`; return its manifest.

    Args:
        sources: a corpus source or a list of them: files, folders, JSONL,
            `hf:NAME` datasets, `stdlib` (the default; docs/data.md).
        out: the shards folder to write.
        config: a PrepareConfig; None: its defaults.
        progress: a Progress to report to (the CLI's bar), or None.
        **options: PrepareConfig fields over `config` (`tokenizer="bpe"`,
            `vocab_size=2048`, `block_size`, `val_fraction`, `force`, ...).

    Returns:
        The manifest plus `"up_to_date": bool` (not stored), True when an
        existing folder already answered this request.
    """
    unknown = set(options) - {f.name for f in fields(PrepareConfig)}
    if unknown:
        raise ConfigError(f"prepare: unknown option(s) {', '.join(sorted(unknown))}")
    cfg = replace(config or PrepareConfig(), **options)
    specs = _specs(sources)
    out = Path(out)
    t0 = time.perf_counter()
    _check_out(out)
    srcs, owner = _resolve(specs, cfg)
    if "text_field" in options or cfg.text_field != PrepareConfig.text_field:
        _check_text_field(srcs, cfg.text_field)
    _check_flags_used(specs, cfg, options)
    _check_inputs_outside(srcs, cfg.tokenizer, out)
    # One prepare of a folder at a time on this machine: two at once each reported the
    # sources they wrote while the folder held the other's (an audit); the second now
    # waits, then finds the first's folder (up to date, or to rebuild, saying so).
    with machine_lock(f"prepare {os.path.realpath(out)}", lambda: log.warning(
            "%s: another scalinglab prepare is writing it; waiting for it to end", out)):  # fmt: skip
        return _prepare(specs, out, cfg, srcs, owner, progress, t0)


def _prepare(specs, out: Path, cfg: PrepareConfig, srcs, owner, progress, t0: float) -> dict:
    _check_out_replaceable(out, cfg.force)
    pretrained = None if cfg.tokenizer in KINDS else load_pretrained(cfg.tokenizer)
    request = _request(specs, cfg)
    if pretrained:  # the tokenizer itself, not its path, decides the shards
        request["tokenizer_sha256"] = pretrained[1]["sha256"]
        # its kind decides the split's cut (shards made before it did were cut mid-word
        # and are rebuilt: their request lacks it)
        request["tokenizer_kind"] = pretrained[0].kind
    fingerprint = hashlib.sha256("\n".join(s.fingerprint() for s in srcs).encode()).hexdigest()
    if not cfg.force and (m := shards.up_to_date(out, request, fingerprint)):
        _check_windows(m["splits"], cfg.block_size, bool(cfg.val_file))
        log.debug("%s is up to date", out)
        remove_replaced(shards.write_target(out))  # what a killed rebuild left
        return {**m, "up_to_date": True}
    shards.check_nothing_else(out, cfg.force)
    _say_what_is_replaced(out, request)

    key = {"request": request, "fingerprint": fingerprint, "chunk_bytes": cfg.chunk_bytes}
    # a pretrained tokenizer's own kind decides where a split by bytes may cut
    kind = pretrained[0].kind if pretrained else cfg.tokenizer
    dest = shards.write_target(out)  # a symlink stays: its target is rebuilt
    try:
        tmp, state, plan = _start(dest, key, srcs, owner, cfg, progress, kind)
    except OSError as exc:  # its temporary folder, named: the user's is --out (an audit)
        if exc.filename is None or resume.temp_prefix(dest) not in str(exc.filename):
            raise
        raise OSError(exc.errno, exc.strerror, str(out)) from None
    try:
        if pretrained:
            tok = pretrained[0]
        elif state["stage"] != "scanned":  # trained before the kill
            tok = load_tokenizer(tmp / "tokenizer.json")
        else:
            texts = _train_texts(srcs, plan, cfg, progress)
            tok = train_tokenizer(cfg.tokenizer, texts, cfg.vocab_size)
            tok.save(tmp / "tokenizer.json")
            state["stage"] = "trained"
            resume.save(tmp, state)
        splits, sha = _encode(srcs, plan, tok, tmp, cfg, progress, state)
        _check_windows(splits, cfg.block_size, bool(cfg.val_file))
        tok.save(tmp / "tokenizer.json")
        sha["tokenizer.json"] = sha256_file(tmp / "tokenizer.json")
        seconds = time.perf_counter() - t0
        manifest = _manifest(
            specs, srcs, tok, plan, cfg, splits, sha, request, fingerprint, seconds
        )
        if pretrained:
            manifest["pretrained_tokenizer"] = pretrained[1]
        resume.finish(tmp)
        atomic_write_json(tmp / shards.MANIFEST, manifest)  # last: it makes the folder valid
        replace_dir(tmp, dest)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(out)) from None  # a write: name it
        raise
    return {**manifest, "up_to_date": False}


def _specs(sources) -> list[str]:
    """`prepare`'s sources as a list of spec strings: a pathlib.Path (one, or in a list)
    is its path (it raised "'PosixPath' object is not iterable"); anything else that is no
    source is named."""
    if sources is None:
        return ["stdlib"]
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    if not isinstance(sources, list | tuple):
        raise ConfigError(
            f"prepare: sources is a path or source name, or a list of them, "
            f"not {type(sources).__name__}"
        )
    specs = [os.fspath(s) if isinstance(s, os.PathLike) else s for s in sources]
    for s in specs:
        if not isinstance(s, str):
            raise ConfigError(f"prepare: a source is a path or a source name, got {s!r}")
    return specs or ["stdlib"]


def _start(out: Path, key: dict, srcs, owner, cfg: PrepareConfig, progress, kind: str):
    """(temporary folder to work in, its resume state, the plan): a killed prepare's folder
    of the same request (resume.adopt), or a new one holding the scan's plan."""
    if found := resume.adopt(out, key):
        tmp, state = found
        try:
            plan = _load_plan(tmp, state)
            log.info("%s: resuming the prepare a killed process left in %s", out, tmp.name)
            remove_stale_temps(out.parent, resume.temp_prefix(out))  # others' leftovers
            remove_unnamed_temps(out.parent, resume.temp_prefix(out))
            return tmp, state, plan
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: cannot resume from %s (%s); starting over", out, tmp.name, exc)
            shutil.rmtree(tmp, ignore_errors=True)
    plan = _scan(srcs, owner, cfg, progress, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out.parent, resume.temp_prefix(out))  # what a killed prepare left
    remove_unnamed_temps(out.parent, resume.temp_prefix(out))  # and an older version's
    tmp = make_temp_dir(out.parent, f"{resume.temp_prefix(out)}{temp_tag()}.")
    fields = {"split_by": plan.split_by, "val_fraction": plan.val_fraction,
              "split_at": plan.split_at, "splits": list(plan.splits)}  # fmt: skip
    try:
        return tmp, resume.save_plan(tmp, key, plan.sizes, plan.labels, fields), plan
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _load_plan(tmp: Path, state: dict) -> _Plan:
    sizes, labels, fields = resume.load_plan(tmp, state)
    kept = array("q")
    kept.frombytes(sizes.astype(np.int64).tobytes())
    return _Plan(kept, fields["split_by"], fields["val_fraction"],
                 labels=labels, split_at=fields["split_at"], splits=tuple(fields["splits"]))  # fmt: skip


def _manifest(specs, srcs, tok, plan, cfg, splits, sha, request, fingerprint, seconds) -> dict:
    total = sum(s["bytes"] for s in splits.values())
    return {
        "format_version": shards.FORMAT_VERSION,
        "kind": shards.KIND,
        "sources": specs,
        "source_details": [s.describe() for s in srcs],
        "tokenizer": tok.kind,
        "vocab_size": tok.vocab_size,
        "dtype": shards.dtype_for_vocab(tok.vocab_size),
        "seed": cfg.seed,
        "val_fraction": plan.val_fraction,
        **({"val_file": cfg.val_file} if cfg.val_file else {}),
        **({"test_file": cfg.test_file} if cfg.test_file else {}),
        "split_by": plan.split_by,
        "documents": len(plan.sizes),
        "splits": splits,
        "sha256": sha,
        "request": request,
        "fingerprint": fingerprint,
        "build": {
            "seconds": round(seconds, 3),
            "mb_per_s": round(total / 1e6 / max(seconds, 1e-9), 2),
            "scalinglab": __version__,
            "python": sys.version.split()[0],
        },
    }


def _request(specs: list[str], cfg: PrepareConfig) -> dict:
    """What determines the output; equal requests on unchanged sources give equal shards."""
    keys = ("tokenizer", "vocab_size", "val_fraction", "seed", "text_field", "glob", "errors")
    files = {k: getattr(cfg, k) for k in ("val_file", "test_file") if getattr(cfg, k)}
    return {"sources": specs, **{k: getattr(cfg, k) for k in keys}, **files,
            "stdlib_tests": cfg.stdlib_tests, "writer": WRITER_VERSION}  # fmt: skip


def _resolve(specs: list[str], cfg: PrepareConfig) -> tuple[list, list[int]]:
    """The sources of every split, in order, and each one's split (index in SPLIT_NAMES)."""
    srcs, owner = [], []
    for split, given in enumerate((specs, [cfg.val_file], [cfg.test_file])):
        if split and not given[0]:
            continue
        try:
            found = resolve_sources(
                given, cfg.glob, cfg.text_field, cfg.stdlib_tests, cfg.streaming
            )
        except DataError as exc:  # a missing or empty --val-file: say which flag names it
            if not split:
                raise
            raise DataError(f"{_FLAGS[split]} {exc.message}") from None
        srcs += found
        owner += [split] * len(found)
    _check_read_once(srcs, owner)
    return srcs, owner


def _check_text_field(srcs, field: str) -> None:
    """Refuse a --text-field that no source reads: a JSON Lines file named `.json` is
    read as plain text, keys, quotes and all, which the flag says is not meant."""
    if not any(isinstance(s, JsonlSource | HFSource) for s in srcs):
        raise ConfigError(
            f"--text-field {field}: no source is JSON Lines or hf:, so no field is read "
            f"({', '.join(s.spec for s in srcs)}: plain text, each file whole); a JSON Lines "
            "file is read by field when named .jsonl or .ndjson, or given as hf:PATH"
        )


# option: (what no source is, what it would have done, what it is for, a SOURCE it is for)
_USED_BY = {
    "glob": ("a folder", "no file is chosen by it", "it picks the files read from a folder SOURCE",
             lambda s: s != "stdlib" and not s.startswith("hf:") and os.path.isdir(s)),
    "streaming": ("hf:", "nothing is streamed", "it is for hf: sources (rows read as they come)",
                  lambda s: s.startswith("hf:")),
    "stdlib_tests": ("stdlib", "no test folder is read",
                     "it is for the stdlib source (its test folders)", lambda s: s == "stdlib"),
}  # fmt: skip


def _check_flags_used(specs: list[str], cfg: PrepareConfig, options: dict) -> None:
    """Refuse --glob, --streaming or --stdlib-tests where no source is of the kind it is for:
    the user thinks it took effect. Only one given (in `options`) or set off its default
    counts, and never a --no-... flag (False), which asks for what happens anyway."""
    given = [s for s in (*specs, cfg.val_file, cfg.test_file) if s]
    for name, (kind, nothing, purpose, reads) in _USED_BY.items():
        value = getattr(cfg, name)
        default = next(f.default for f in fields(PrepareConfig) if f.name == name)
        if value is False or (name not in options and value == default):
            continue
        if not any(reads(s) for s in given):
            flag = "--" + name.replace("_", "-") + ("" if value is True else f" {value!r}")
            raise ConfigError(
                f"{flag}: no source is {kind} ({', '.join(dict.fromkeys(given))}), "
                f"so {nothing}; {purpose}"
            )


def _check_read_once(srcs, owner: list[int]) -> None:
    """Refuse a file that two SOURCEs name (its documents would be read twice; held out
    by documents, one copy could be in each split), or that is a training file and the
    --val-file's or --test-file's too (the held-out text would be trained on)."""
    seen: dict[tuple, tuple[int, str]] = {}  # identity -> (split, spec)
    for src, split in zip(srcs, owner, strict=True):
        for path, key, kind in _read_once_keys(src):
            if key not in seen:
                seen[key] = (split, src.spec)
                continue
            split0, spec0 = seen[key]  # sources come in split order: split0 <= split
            if split == 0:
                raise DataError(
                    f"{path}: named by two SOURCEs, {spec0} and {src.spec}; its documents "
                    f"would be read twice (give each {kind} once)"
                )
            also, why = (
                (f"a training {kind} (SOURCE {spec0})", "trained on")
                if split0 == 0
                else (f"in {_FLAGS[split0]} {spec0}", "in two splits")
            )
            raise DataError(
                f"{_FLAGS[split]} {src.spec}: {path} is also {also}; the held-out text "
                f"would be {why} (give each {kind} to one split)"
            )


def _read_once_keys(src) -> list[tuple[object, tuple, str]]:
    """(what to name, identity, what it is) of each thing `src` reads that no other source may read: its
    local files ((device, inode): a symlink or hard link is the same file), and for an hf:
    data set that is not one local file (a save_to_disk folder, a hub name) its rows: the
    data set and split (the same split of one data set as SOURCE and --val-file was both
    splits, whole)."""
    keys = []
    for path in local_paths(src):
        if path.is_file():
            st = path.stat()
            keys.append((path, (st.st_dev, st.st_ino), "file"))
    if isinstance(src, HFSource) and not keys:
        where = os.path.realpath(src.name) if os.path.exists(src.name) else src.name
        what = f"{src.name}{f':{src.config}' if src.config else ''}@{src.split}"
        keys.append((f"the data set {what}", ("hf", where, src.config, src.split), "data set"))
    return keys


def _check_out(out: Path) -> None:
    """Refuse an --out that cannot be a folder here, before the sources are looked at."""
    shards.check_out_in_a_folder(out)
    shards.check_out_apart_from_cwd(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: exists and is not a folder")


def _check_out_replaceable(out: Path, force: bool) -> None:
    """Refuse to replace a folder of other files without --force. Checked after
    _check_inputs_outside: an --out that holds a source is refused with or without
    --force, so its line must not advise --force."""
    if not out.exists() or shards.is_shards_dir(out):
        return
    if any(out.iterdir()) and not force:
        raise DataError(
            f"--out {out}: exists and is not a shards folder; refusing to replace it "
            "(pass --force to replace it)"
        )


def _check_inputs_outside(srcs, tokenizer: str, out: Path) -> None:
    """Refuse a source, or a pretrained tokenizer's file or folder, inside --out: replacing
    the folder (a rebuild, --force) deletes it."""
    if not out.exists():
        return
    inputs = [("source", path) for src in srcs for path in local_paths(src)]
    if tokenizer not in KINDS and os.path.exists(tokenizer):
        inputs.append(("tokenizer", Path(tokenizer)))
    for what, path in inputs:
        if path_relation(path, out) in ("is", "lies inside"):
            raise DataError(
                f"--out {out}: the {what} {path} lies inside it, and replacing the "
                "folder would delete it; write the shards to another folder"
            )


def _scan(
    srcs, owner: list[int], cfg: PrepareConfig, progress: Progress | None, kind: str
) -> _Plan:
    """The plan of the splits; `kind` is the tokenizer's kind (a pretrained one's too)."""
    sizes = array("q")  # 8 bytes a document, however many there are
    labels = array("b")  # each document's split (with --val-file)
    for src, split in zip(srcs, owner, strict=True):
        n0 = len(sizes)
        for doc in src.documents(cfg.errors):
            sizes.append(doc.size)
            labels.append(split)
            if progress:
                progress("scan", doc.size, None)
        if split and len(sizes) == n0:
            flag = "--val-file" if split == 1 else "--test-file"
            raise DataError(f"{flag} {src.spec}: no documents (every one is empty)")
    if not sizes:
        raise DataError(f"{', '.join(s.spec for s in srcs)}: no documents (every one is empty)")
    n = len(sizes)
    if cfg.val_file:
        names = SPLIT_NAMES[: 3 if cfg.test_file else 2]
        return _Plan(sizes, "files", None, labels=np.asarray(labels, dtype=np.int8), splits=names)
    if n >= DOC_SPLIT_MIN:
        frac = cfg.val_fraction or 0.01
        k = min(n - 1, max(1, round(frac * n)))
        mask = np.zeros(n, dtype=np.int8)
        mask[np.random.default_rng(cfg.seed).choice(n, size=k, replace=False)] = 1
        return _Plan(sizes, "documents", frac, labels=mask)
    frac = cfg.val_fraction or 0.1
    at = int(sum(sizes) * (1 - frac))
    if kind in ("word", "bpe"):  # tokens span characters: cut between lines
        point, at = at, _line_start(srcs, sizes, at, cfg)
        total = sum(sizes)
        share = (total - at) / total
        if not frac / 2 <= share <= 2 * frac:  # a long line held the point: said, not hidden
            log.warning(
                "--val-fraction %g: the validation split holds %.1f%% of the bytes, not "
                "%g%%: %s tokens span characters, so the split is cut between lines, and the "
                "nearest line boundary to byte %d is byte %d (a long line); break the text "
                "into lines, or give --val-file",
                frac, 100 * share, 100 * frac, kind, point, at,
            )  # fmt: skip
    return _Plan(sizes, "bytes", frac, split_at=at)


def _line_start(srcs, sizes: array, at: int, cfg: PrepareConfig) -> int:
    """The split point `at` moved to a boundary no token crosses: the start of the next
    line or document; else (no line starts after it) the start of the line holding it;
    else (no line break at all) `at` itself, which `_cut_at` moves to a character."""
    total, start = sum(sizes), 0
    for src in srcs:
        for doc in src.documents(cfg.errors):
            end = start + doc.size
            if end <= at:
                start = end
                continue
            before = start or None  # the last line start at or before `at`
            for off, data in doc.read(cfg.chunk_bytes):
                cs = start + off
                if (k := data.rfind(b"\n", 0, max(at - cs, 0))) >= 0:
                    before = cs + k + 1
                if cs + len(data) < at:
                    continue
                if (j := data.find(b"\n", max(at - cs - 1, 0))) >= 0:
                    p = cs + j + 1
                    return p if p < total else before or at
            return end if end < total else before or at
    return at


def _walk(
    srcs, plan: _Plan, cfg: PrepareConfig, only: str | None,
    progress: Progress | None, phase: str,
) -> Iterator[tuple[str, Document, int, bytes]]:  # fmt: skip
    """(split, document, offset in document, bytes) for every chunk, in corpus order."""
    total = _split_bytes(plan, only)
    i = start = 0
    for src in srcs:
        for doc in src.documents(cfg.errors):
            if i >= len(plan.sizes) or doc.size != plan.sizes[i]:
                raise DataError(f"{doc.place()}: changed while being prepared; run prepare again")
            if plan.split_by != "bytes":
                split = SPLIT_NAMES[plan.labels[i]]
                pieces = doc.read(cfg.chunk_bytes) if only in (None, split) else ()
                for off, data in pieces:
                    if progress:
                        progress(phase, len(data), total)
                    yield split, doc, off, data
            else:
                if only == "train" and start >= plan.split_at:
                    return
                for off, data in doc.read(cfg.chunk_bytes):
                    if progress:
                        progress(phase, len(data), total)
                    yield from _cut_at(doc, off, data, plan.split_at - start, only)
            i += 1
            start += doc.size
    if i != len(plan.sizes):
        raise DataError("the sources changed while being prepared; run prepare again")


def _cut_at(doc: Document, off: int, data: bytes, split_at: int, only: str | None):
    """Route a chunk to train/val around a split point given relative to its document."""
    cut = min(max(split_at - off, 0), len(data))
    while cut < len(data) and data[cut] & 0xC0 == 0x80:  # never split inside a character
        cut += 1
    if cut and only in (None, "train"):
        yield "train", doc, off, data[:cut]
    if cut < len(data) and only in (None, "val"):
        yield "val", doc, off + cut, data[cut:]


def _train_texts(srcs, plan: _Plan, cfg: PrepareConfig, progress) -> Iterator[str]:
    if cfg.tokenizer == "byte":  # nothing to learn: skip the pass
        return
    for _, doc, off, data in _walk(srcs, plan, cfg, "train", progress, "train tokenizer"):
        if cfg.tokenizer != "bpe":
            yield _decode(doc, off, data, cfg.errors)
            continue
        # `tokenizers` buffers many texts from the iterator and pre-tokenizing one costs
        # many times its size: fed whole 4 MB chunks, training on 50 MB of "a" peaked at
        # 600 MB, in the encoder's 64 KiB pieces (the same cuts) at 95 MB.
        for o, piece in split_pieces(data, BPE_PIECE):
            yield _decode(doc, off + o, piece, cfg.errors)


def _split_bytes(plan: _Plan, only: str | None) -> int:
    total = sum(plan.sizes)
    if only is None:
        return total
    if plan.split_by == "bytes":
        return plan.split_at if only == "train" else total - plan.split_at
    want = SPLIT_NAMES.index(only)
    return int(np.asarray(plan.sizes)[plan.labels == want].sum())


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _check_not_utf16(doc: Document, off: int, data: bytes) -> None:
    """Refuse a document that starts with a UTF-16 byte-order mark: it is text, but not
    UTF-8, so neither "invalid UTF-8; pass --errors replace" nor "NUL byte; a binary file"
    (what its bytes gave before) says what to do."""
    if off == 0 and data[:2] in _UTF16_BOMS:
        raise DataError(
            f"{doc.place()}: UTF-16 text (it starts with a UTF-16 byte-order mark), not UTF-8; "
            "convert it first: iconv -f UTF-16 -t UTF-8"
        )


def _decode(doc: Document, off: int, data: bytes, errors: str) -> str:
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        _check_not_utf16(doc, off, data)
        raise DataError(
            f"{doc.place()}: byte {doc.skipped + off + exc.start}: invalid UTF-8 ({exc.reason}); "
            "the byte tokenizer takes any bytes, or pass --errors replace"
        ) from None


def _encode(srcs, plan: _Plan, tok, tmp: Path, cfg: PrepareConfig, progress, state: dict):
    """Encode every split into tmp/SPLIT.bin; returns (stats, sha256 of each file). After
    every CHECKPOINT_CHUNKS × chunk_bytes of text the files are synced and `state` records
    how far they go; with such a record (a killed prepare's), the chunks before it are read
    again, not encoded."""
    dtype = np.dtype(shards.DTYPES[shards.dtype_for_vocab(tok.vocab_size)]).newbyteorder("<")
    done = state.get("encode")
    if done:
        log.info("skipping the %d chunks encoded before the kill", done["chunks"])
        stats, nonblank = done["stats"], done["nonblank"]
        files, hashes = resume.reopen(tmp, done["lengths"])
    else:
        stats = {s: {"documents": 0, "bytes": 0, "tokens": 0} for s in plan.splits}
        hashes = {s: hashlib.sha256() for s in plan.splits}
        files = {s: open(tmp / f"{s}.bin", "wb") for s in plan.splits}  # noqa: SIM115
        nonblank = False
    skip = done["chunks"] if done else 0
    last_doc = {s: None for s in plan.splits}
    chunks = since = 0
    try:
        for split, doc, off, data in _walk(srcs, plan, cfg, None, progress, "encode"):
            chunks += 1
            if chunks <= skip:  # counted in the checkpoint's stats
                last_doc[split] = doc
                continue
            if (nul := data.find(b"\0")) >= 0:  # text never holds NUL: a binary file
                _check_not_utf16(doc, off, data)
                raise DataError(
                    f"{doc.place()}: byte {doc.skipped + off + nul}: NUL byte; this looks like a binary "
                    "file (or UTF-16 text), not UTF-8 text"
                )
            ids = _encode_chunk(tok, doc, off, data, cfg.errors).astype(dtype)
            buf = ids.tobytes()
            files[split].write(buf)
            hashes[split].update(buf)
            st = stats[split]
            st["bytes"] += len(data)
            st["tokens"] += len(ids)
            if last_doc[split] is not doc:
                st["documents"] += 1
                last_doc[split] = doc
            nonblank = nonblank or bool(data.strip())
            since += len(data)
            if since >= resume.CHECKPOINT_CHUNKS * cfg.chunk_bytes:
                _sync(files)
                lengths = {s: f.tell() for s, f in files.items()}
                state["encode"] = {"chunks": chunks, "lengths": lengths, "stats": stats,
                                   "nonblank": nonblank}  # fmt: skip
                resume.save(tmp, state)
                since = 0
        _sync(files)
    finally:
        for f in files.values():
            f.close()
    if not nonblank:
        raise DataError(
            f"{', '.join(s.spec for s in srcs)}: the corpus holds only whitespace "
            f"({sum(plan.sizes)} bytes)"
        )
    return stats, {f"{s}.bin": h.hexdigest() for s, h in hashes.items()}


def _sync(files: dict) -> None:
    for f in files.values():
        f.flush()
        os.fsync(f.fileno())


def _encode_chunk(tok, doc: Document, off: int, data: bytes, errors: str) -> np.ndarray:
    if tok.kind == "byte":
        return np.frombuffer(data, dtype=np.uint8)
    if isinstance(tok, BPETokenizer) and (off or len(data) > BPE_PIECE):
        texts = [_decode(doc, off + o, p, errors) for o, p in split_pieces(data, BPE_PIECE)]
        # only the document's first piece is a text's start (BPETokenizer.continuation)
        first = tok.encode_batch(texts[:1]) if off == 0 else []
        return np.concatenate(first + tok.continuation().encode_batch(texts[len(first) :]))
    if tok.kind == "word":  # <eos> ends the document's last line only at its real end
        return tok.encode(_decode(doc, off, data, errors), final=off + len(data) == doc.size)
    return tok.encode(_decode(doc, off, data, errors))


def _check_windows(splits: dict, block_size: int, val_file: bool) -> None:
    """Refuse shards that cannot give one training window and one validation window."""
    tr, va = splits["train"]["tokens"], splits["val"]["tokens"]
    if "test" in splits and splits["test"]["tokens"] < block_size + 1:
        raise DataError(
            f"--test-file: the test split has {splits['test']['tokens']} tokens, less than "
            f"one window of --block-size {block_size} plus one token; use more text or a "
            "smaller --block-size"
        )
    if tr < block_size + 2 or va < block_size + 1:
        raise DataError(
            f"corpus too small: train has {tr} tokens and val {va}; each split needs one "
            f"window of --block-size {block_size} plus one token, train one more (train "
            f"{block_size + 2}, val {block_size + 1}); use more text"
            + (
                " or"  # a --val-file is the split; and too short both, no fraction helps
                if val_file or (tr < block_size + 2 and va < block_size + 1)
                else f", a {'smaller' if tr < block_size + 2 else 'larger'} --val-fraction or"
            )
            + " a smaller --block-size"
        )
