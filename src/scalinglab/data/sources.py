"""Corpus sources: what `scalinglab prepare SOURCE...` reads, as a stream of documents.

A SOURCE is one of

- a file (`.jsonl`/`.ndjson` files are JSONL, one document per line, text in
  `text_field`; any other file is one document of raw text);
- a folder: every non-hidden file below it matching `glob` (default `**/*`), symlinked
  folders followed;
- a glob pattern (`data/*.txt`, `**` recurses), read as from a folder;
- `hf:NAME[:CONFIG][@SPLIT]`: a Hugging Face `datasets` data set (a hub name,
  a folder written by `Dataset.save_to_disk`, a local data file whose suffix names
  its format, or a folder that `load_dataset` reads), one document per row; with `streaming`, its rows are read
  as they come (`load_dataset(..., streaming=True)`: nothing is downloaded or
  converted first, memory stays bounded, and each pass of the writer reads the rows
  again);
- `stdlib`: the running Python's standard library `.py` files, sorted by path,
  test folders excluded unless `stdlib_tests`.

Documents are yielded in a fixed order and read lazily, in chunks cut where no
tokenizer would cut differently (after a newline that starts a non-blank line
when there is one), so memory stays bounded whatever the corpus size.
"""

import csv
import functools
import hashlib
import importlib
import json
import lzma
import os
import sys
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import NoReturn

from scalinglab.data.shards import is_shards_dir
from scalinglab.errors import ConfigError, DataError, MissingExtraError, require

CHUNK_BYTES = 4 << 20
JSONL_SUFFIXES = (".jsonl", ".ndjson")
STDLIB_EXCLUDE = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
_GLOB_CHARS = set("*?[")
# the `datasets` builder of a local data file by its suffix (any case, after a compression
# suffix that `datasets` undoes); a file with another suffix is refused, not read as lines
_HF_BUILDERS = {
    ".jsonl": "json",
    ".ndjson": "json",
    ".json": "json",
    ".csv": "csv",
    ".parquet": "parquet",
    ".txt": "text",
    ".text": "text",
    ".md": "text",
}
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")


@dataclass
class Document:
    """One document: a display name for errors, its size in bytes, and its content in chunks."""

    name: str
    size: int
    read: Callable[[int], Iterator[tuple[int, bytes]]]  # chunk_bytes -> (offset, bytes) pieces
    skipped: int = 0  # bytes of the file before offset 0 (a BOM), for the byte an error names
    # where the document is for an error about its content, found only when one is raised
    # (a local CSV's row: the line it starts on, which reading the file again tells)
    locate: Callable[[], str] | None = None

    def place(self) -> str:
        """Where the document is, for an error about its content: `name`, or what
        `locate` finds."""
        return self.locate() if self.locate else self.name


def safe_cut(buf: bytes) -> int:
    """Where `buf` may be cut so that each piece tokenizes as it would inside the whole.

    In order of preference, in the back half of `buf`: just after a newline
    between printable ASCII characters (a pre-token boundary for byte-level
    BPE, a line boundary for words; after a blank line it is not: GPT-2's
    regex splits two newlines before a letter into two pre-tokens, but keeps
    them as one at the end of a piece); just before a space that follows printable
    ASCII or any other printable character that is no space (GPT-2's pre-tokens never
    span such a space; a word boundary); after
    any newline; else at a UTF-8 character start.
    """
    n = len(buf)
    j = buf.rfind(b"\n", n // 2, n - 1)
    while j >= 0:
        if 0x21 <= buf[j + 1] <= 0x7E and j and 0x21 <= buf[j - 1] <= 0x7E:
            return j + 1
        j = buf.rfind(b"\n", n // 2, j)
    j = buf.rfind(b" ", max(1, n // 2), n)
    while j >= 1:
        if 0x21 <= buf[j - 1] <= 0x7E or _word_char_before(buf, j):
            return j
        j = buf.rfind(b" ", max(1, n // 2), j)
    j = buf.rfind(b"\n", n // 2)
    if j >= 0:
        return j + 1
    for k in range(n - 1, max(0, n - 4) - 1, -1):
        if buf[k] & 0xC0 != 0x80:  # not a continuation byte: the last character starts here
            lead = buf[k]
            length = 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
            return n if k + length <= n or k == 0 else k
    return n


def _word_char_before(buf: bytes, j: int) -> bool:
    """Whether the character that ends just before byte j is a multi-byte one that is no
    space (a Cyrillic or accented letter: a word ends there, as after printable ASCII; a
    text of such words with no newline was cut inside them, which a BPE then split)."""
    k = j - 1
    while k > max(0, j - 4) and buf[k] & 0xC0 == 0x80:  # back to the character's start
        k -= 1
    if buf[j - 1] < 0x80 or buf[k] < 0xC0:
        return False
    try:
        ch = buf[k:j].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return len(ch) == 1 and ch.isprintable() and not ch.isspace()


def split_pieces(data: bytes, size: int) -> Iterator[tuple[int, bytes]]:
    """Cut `data` into (offset, piece) of about `size` bytes at safe points."""
    pos, n = 0, len(data)
    while pos < n:
        if n - pos <= size:
            yield pos, data[pos:]
            return
        cut = pos + safe_cut(data[pos : pos + size])
        yield pos, data[pos:cut]
        pos = cut


def _file_reader(path: Path, skip: int = 0) -> Callable[[int], Iterator[tuple[int, bytes]]]:
    def read(chunk_bytes: int) -> Iterator[tuple[int, bytes]]:
        with open(path, "rb") as f:
            f.seek(skip)
            offset, carry = 0, b""
            while block := f.read(chunk_bytes):
                buf = carry + block
                cut = safe_cut(buf)
                yield offset, buf[:cut]
                offset += cut
                carry = buf[cut:]
            if carry:
                yield offset, carry

    return read


def _bytes_reader(data: bytes) -> Callable[[int], Iterator[tuple[int, bytes]]]:
    return lambda chunk_bytes: split_pieces(data, chunk_bytes)


class Source:
    """A corpus source: a description for the manifest, a fingerprint, and its documents."""

    spec: str

    def describe(self) -> dict:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Cheap identity of the content (paths, sizes, mtimes), to skip an up-to-date prepare."""
        raise NotImplementedError

    def documents(self, errors: str = "strict") -> Iterator[Document]:
        raise NotImplementedError


UTF8_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark: starts some files, says only 'UTF-8'


def _bom_length(path: Path, size: int) -> int:
    """The length of the UTF-8 byte-order mark `path` starts with: 3, or 0 without one."""
    if size < len(UTF8_BOM):
        return 0
    with open(path, "rb") as f:
        return len(UTF8_BOM) if f.read(len(UTF8_BOM)) == UTF8_BOM else 0


class FilesSource(Source):
    """Plain text files, one document each, in the given order. A UTF-8 byte-order mark
    at a file's start is no text and is left out, except in the built-in `stdlib` corpus,
    read byte for byte as it always was (two of its test files start with one)."""

    def __init__(self, spec: str, files: list[Path], kind: str = "files", **info):
        self.spec, self.files, self.kind, self.info = spec, files, kind, info
        self.strip_bom = kind != "stdlib"

    def describe(self) -> dict:
        """`files`: the files the SOURCE names; `empty_files`: those of them that hold no
        text (empty, or a byte-order mark alone), skipped: the others are its documents."""
        empty = sum(1 for p in self.files if not self._text_bytes(p)[0])
        return {"spec": self.spec, "type": self.kind, "files": len(self.files),
                "empty_files": empty, **self.info}  # fmt: skip

    def _text_bytes(self, path: Path) -> tuple[int, int]:
        """(bytes of text, bytes skipped before it) of the file `path`."""
        size = path.stat().st_size
        skip = _bom_length(path, size) if self.strip_bom else 0
        return size - skip, skip

    def fingerprint(self) -> str:
        stats = _stat_hash(self.files)
        if not self.strip_bom:
            return stats
        # shards prepared before the mark was left out hold it: a changed fingerprint
        # rebuilds those (only those) from files that start with one
        marked = [i for i, p in enumerate(self.files) if _bom_length(p, p.stat().st_size)]
        if not marked:
            return stats
        return hashlib.sha256(f"{stats}\0bom:{marked}".encode()).hexdigest()

    def documents(self, errors: str = "strict") -> Iterator[Document]:
        for path in self.files:
            size, skip = self._text_bytes(path)
            if size:  # an empty file in a folder holds no document
                yield Document(str(path), size, _file_reader(path, skip), skip)


class JsonlSource(Source):
    """A JSONL file: one document per non-blank line, the text in `text_field`."""

    def __init__(self, spec: str, path: Path, text_field: str):
        self.spec, self.path, self.text_field = spec, path, text_field

    def describe(self) -> dict:
        return {"spec": self.spec, "type": "jsonl", "text_field": self.text_field}

    def fingerprint(self) -> str:
        return _stat_hash([self.path])

    def documents(self, errors: str = "strict") -> Iterator[Document]:
        with open(self.path, "rb") as f:
            offset = 0
            for lineno, raw in enumerate(f, 1):
                where = f"{self.path}: line {lineno}"
                if lineno == 1 and raw.startswith(UTF8_BOM):  # Notepad, PowerShell write one
                    raw, offset = raw[len(UTF8_BOM) :], len(UTF8_BOM)  # not JSON, not text
                text = _jsonl_text(raw, where, offset, self.text_field, errors)
                offset += len(raw)
                if text:
                    data = _utf8(text, where, errors)
                    yield Document(where, len(data), _bytes_reader(data))


def _jsonl_text(raw: bytes, where: str, offset: int, field: str, errors: str) -> str | None:
    try:
        line = raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{where} (byte {offset + exc.start}): invalid UTF-8; pass --errors replace "
            "to replace undecodable bytes"
        ) from None
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        # json counts the line's own newline as the start of another line: place the
        # error in this one, at its end where the text stops short
        body = line.rstrip("\r\n")
        at = f"column {exc.pos + 1}" if exc.pos < len(body) else "the end of the line"
        msg = exc.msg.removesuffix(" at")  # json's own "Invalid control character at"
        raise DataError(f"{where}: not valid JSON ({msg} at {at})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: a JSON {type(obj).__name__}, not an object")
    if field not in obj:
        raise DataError(f"{where}: no field '{field}' (choose the text field with --text-field)")
    text = obj[field]
    if text is None:
        return None
    if not isinstance(text, str):
        raise DataError(f"{where}: field '{field}' is {type(text).__name__}, not a string")
    return text


def _utf8(text: str, where: str, errors: str) -> bytes:
    try:
        return text.encode("utf-8", errors=errors)
    except UnicodeEncodeError as exc:  # lone surrogates from JSON escapes such as "\ud800"
        raise DataError(
            f"{where}: character {exc.start} is not encodable as UTF-8 ({exc.reason}); "
            "pass --errors replace"
        ) from None


class HFSource(Source):
    """`hf:NAME[:CONFIG][@SPLIT]`: rows of a Hugging Face data set, text in `text_field`;
    `streaming`: an IterableDataset read row by row, never loaded whole."""

    def __init__(self, spec: str, text_field: str, streaming: bool = False):
        body = spec[3:]
        body, _, split = body.rpartition("@") if "@" in body else (body, "", "train")
        name, _, config = body.partition(":") if not os.path.exists(body) else (body, "", "")
        if not name:
            raise ConfigError(f"source {spec!r}: expected hf:NAME[:CONFIG][@SPLIT]")
        self.spec, self.name, self.config = spec, name, config or None
        self.split, self.text_field = split or "train", text_field
        self.streaming = streaming
        self._ds = None

    def dataset(self):
        if self._ds is None:
            self._ds = _load_hf(self.name, self.config, self.split, self.spec, self.streaming)
            cols = self._ds.column_names  # None: a stream whose columns are not known yet
            if cols is not None and self.text_field not in cols:
                raise DataError(
                    f"{self.spec}: no column '{self.text_field}' (columns: "
                    f"{', '.join(self._ds.column_names)}); choose one with --text-field"
                )
        return self._ds

    def describe(self) -> dict:
        return {
            "spec": self.spec,
            "type": "hf",
            "name": self.name,
            "config": self.config,
            "split": self.split,
            "text_field": self.text_field,
            "rows": None if self.streaming else len(self.dataset()),
            "streaming": self.streaming,
        }

    def fingerprint(self) -> str:
        if self.streaming:  # a stream has no content hash short of reading it: where it is
            local = Path(self.name)
            files = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else []
            files = [local] if local.is_file() else files
            where = f"{self.name}\0{self.config}\0{self.split}\0{_stat_hash(files)}"
            if local.is_file() and hf_builder(local, self.spec) == "text":
                where += "\0keep_linebreaks"  # read without line breaks before: rebuild
                if _bom_length(local, local.stat().st_size) or self._drops_bom:
                    where += "\0utf-8-sig"  # read with the mark before: rebuild
            return hashlib.sha256(where.encode()).hexdigest()
        fingerprint = str(getattr(self.dataset(), "_fingerprint", "")) or _stat_hash([])
        if self._drops_bom:  # read with the mark before: rebuild
            return hashlib.sha256(f"{fingerprint}\0utf-8-sig".encode()).hexdigest()
        return fingerprint

    @functools.cached_property
    def _drops_bom(self) -> bool:
        """Whether the first row's text starts with a byte-order mark that is no text: a
        compressed text file's (`datasets` drops an uncompressed one's itself)."""
        return _compressed_text_with_bom(Path(self.name), self.spec)

    def documents(self, errors: str = "strict") -> Iterator[Document]:
        ds = self.dataset()
        if ds.column_names is not None:
            ds = ds.select_columns([self.text_field])
        row = 0
        for batch in ds.iter(batch_size=1024):  # batches: row-by-row access is slow
            if self.text_field not in batch:
                raise DataError(
                    f"{self._where(row)}: no column '{self.text_field}' (columns: "
                    f"{', '.join(batch)}); choose one with --text-field"
                )
            for text in batch[self.text_field]:
                where = f"{self.spec}: row {row}"
                if text is not None and not isinstance(text, str):
                    raise DataError(
                        f"{self._where(row)}: '{self.text_field}' is {type(text).__name__}, "
                        "not text"
                    )
                if row == 0 and text and text[0] == "\ufeff" and self._drops_bom:
                    text = text[1:]
                if text:
                    try:
                        data = text.encode("utf-8", errors=errors)
                    except UnicodeEncodeError:  # lone surrogates: said, naming the line
                        _utf8(text, self._where(row), errors)
                        raise
                    yield Document(where, len(data), _bytes_reader(data),
                                   locate=functools.partial(self._where, row))  # fmt: skip
                row += 1

    def _where(self, row: int) -> str:
        """Where the row numbered `row` (from 0) is, for an error: in a local CSV file, the
        line it starts on, counted as an editor does (the header is line 1); else the row."""
        path = Path(self.name)
        if path.is_file() and hf_builder(path, self.spec) == "csv":
            line = csv_line(path, row)
            if line is not None:
                return f"{self.spec}: line {line}"
            # not a line number: said, or "row 0" reads as the header's
            return f"{self.spec}: row {row} (counted from 0 at the first row after the header)"
        return f"{self.spec}: row {row}"


_OPENERS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


def _opener(path: Path) -> tuple[Callable, tuple[type[Exception], ...]] | None:
    """The `open` that reads the local data file `path` decompressed, as `datasets` reads
    it (by its suffix: .gz, .bz2, .xz, .zst, else none), and the errors a damaged file
    raises from it; None for a .zst file where `zstandard` is not installed."""
    suffix = path.suffix.lower()
    failed: tuple[type[Exception], ...] = (OSError, EOFError, ValueError, lzma.LZMAError)
    if suffix == ".zst":  # the module `datasets` itself reads .zst with (no stdlib opener)
        try:
            zstandard = importlib.import_module("zstandard")
        except ImportError:
            return None
        return zstandard.open, (*failed, zstandard.ZstdError)
    return (importlib.import_module(_OPENERS[suffix]).open if suffix in _OPENERS else open), failed


def _compressed_text_with_bom(path: Path, spec: str) -> bool:
    """Whether `path` is a compressed text file whose text starts with a UTF-8 byte-order
    mark: `datasets` reads a compressed file without the encoding it is given (utf-8-sig),
    so the mark reaches the first row's text. False where it cannot be read here (its
    load says why)."""
    if not path.is_file() or path.suffix.lower() not in _COMPRESSION_SUFFIXES:
        return False
    if hf_builder(path, spec) != "text" or (how := _opener(path)) is None:
        return False
    opener, failed = how
    try:
        with opener(path, "rb") as f:
            return f.read(len(UTF8_BOM)) == UTF8_BOM
    except failed:
        return False


def csv_line(path: Path, row: int) -> int | None:
    """The line of the CSV file `path` on which its data row `row` (from 0, after the
    header) starts, as `datasets`' csv builder numbers rows (blank lines skipped, a quoted
    field may span lines); None where the file has no such row or cannot be read here."""
    if (how := _opener(path)) is None:
        return None
    opener, failed = how
    failed = (*failed, csv.Error)
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            while header == []:  # blank lines before the header
                header = next(reader, None)
            line, n = reader.line_num, 0
            for record in reader:
                start, line = line + 1, reader.line_num
                if not record:  # a blank line: no row
                    continue
                if n == row:
                    return start
                n += 1
    except failed:
        return None
    return None


def _load_hf(name: str, config: str | None, split: str, spec: str, streaming: bool = False):
    path = Path(name)
    if not path.exists() and _names_a_path(name):  # a typo went to the hub, retried 40 s
        raise DataError(
            f"{spec}: no such file or folder {name} (a hub data set is named NAME or "
            f"OWNER/NAME, with no file suffix){_tilde_hint(name, spec)}"
        )
    datasets = require("datasets", "hf", f"the source {spec}")
    try:
        if path.is_dir() and (path / "dataset_info.json").exists():
            ds = datasets.load_from_disk(str(path))  # a Dataset.save_to_disk folder
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DataError(f"{spec}: no split '{split}' (splits: {', '.join(ds)})")
                ds = ds[split]
            return ds.to_iterable_dataset() if streaming else ds
        if path.is_file():  # a local data file: let the packaged builder for its type read it
            builder = hf_builder(path, spec)
            if path.suffix.lower() == ".zst":  # without it `datasets` says only that it failed
                require("zstandard", "hf", f"the source {spec} (zstd-compressed)")
            # the text builder's rows are lines; without keep_linebreaks it strips their line
            # ends, and documents are joined without a separator: the text lost every break;
            # utf-8-sig: a byte-order mark at the file's start is no text of its first line
            extra = {"keep_linebreaks": True, "encoding": "utf-8-sig"} if builder == "text" else {}
            if builder == "csv":  # pandas reads a row whose text is NA, None, null, nan or
                # N/A as missing: it was dropped as a null text, without a word
                extra = {"keep_default_na": False, "na_values": [""]}  # empty: still none
            return datasets.load_dataset(
                builder, data_files=str(path), split=split, streaming=streaming, **extra
            )
        return datasets.load_dataset(name, config, split=split, streaming=streaming)
    except (DataError, MissingExtraError):
        raise
    except Exception as exc:  # datasets raises many types (hub, file, split errors)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{spec}: cannot load the data set ({msg})") from None


def _names_a_path(name: str) -> bool:
    """Whether an hf: NAME can only be a local path: it starts as a path does, or ends in a
    data file's suffix (no hub data set is named so)."""
    if name.startswith(("/", "./", "../", "~")):
        return True
    suffixes = [x.lower() for x in Path(name).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] in _HF_BUILDERS


def hf_builder(path: Path, spec: str) -> str:
    """The `datasets` builder that reads the local data file `path`, from its suffix."""
    suffixes = [x.lower() for x in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        suffixes.pop()
    builder = _HF_BUILDERS.get(suffixes[-1]) if suffixes else None
    if builder is None:
        known = ", ".join(_HF_BUILDERS)
        raise DataError(
            f"{spec}: cannot tell the format of {path.name} from its name (an hf: data file is "
            f"{known}, optionally compressed {', '.join(_COMPRESSION_SUFFIXES)}); rename it, "
            "or give the file itself as SOURCE to read it as text"
        )
    return builder


def local_paths(src: Source) -> list[Path]:
    """The local files (or folder) a source reads: none for a remote data set."""
    if isinstance(src, FilesSource):
        return src.files
    if isinstance(src, JsonlSource):
        return [src.path]
    name = getattr(src, "name", None)  # hf: a local file, a save_to_disk folder, a hub name
    return [Path(name)] if name and os.path.exists(name) else []


def _stat_hash(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        st = p.stat()
        h.update(f"{p.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def stdlib_files(include_tests: bool = False) -> tuple[Path, list[Path]]:
    """The running Python's standard library .py files, sorted by path below its root."""
    root = Path(sysconfig.get_paths()["stdlib"])
    exclude = STDLIB_EXCLUDE - ({"test", "tests", "idle_test"} if include_tests else set())
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in exclude]  # prune: site-packages is large
        files.extend(Path(folder, n) for n in names if n.endswith(".py"))
    return root, sorted(files, key=lambda p: p.relative_to(root).as_posix())


def check_glob(pattern: str) -> None:
    """Refuse a --glob that names no files below a folder: empty, absolute, or with '..'."""
    why = (
        "is empty" if not pattern.strip()
        else "is absolute" if os.path.isabs(pattern)
        else "climbs out with '..'" if ".." in PurePosixPath(pattern).parts
        else None
    )  # fmt: skip
    if why:
        raise ConfigError(
            f"--glob {pattern!r}: the pattern {why}; it names files below each folder SOURCE, "
            "relative to it (like '**/*.md')"
        )


def _match(parts: tuple[str, ...], segs: tuple[str, ...]) -> bool:
    """Whether the relative path `parts` matches the pattern `segs` (`**`: any folders)."""
    if not segs:
        return not parts
    if segs[0] == "**":
        return any(_match(parts[i:], segs[1:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatchcase(parts[0], segs[0]) and _match(parts[1:], segs[1:])


def _may_hold(parts: tuple[str, ...], segs: tuple[str, ...]) -> bool:
    """Whether files below the folder `parts` may match `segs` (else it is not walked)."""
    for i, part in enumerate(parts):
        if i < len(segs) and segs[i] == "**":
            return True
        if i >= len(segs) - 1 or not fnmatchcase(part, segs[i]):
            return False  # no segment left for a file below, or this folder is not matched
    return True


def _walk(root: Path, pattern: str, spec: str) -> list[Path]:
    """Non-hidden files below `root` matching `pattern`, sorted by relative path. Symlinked
    folders are followed (pathlib's `**` does not: it skipped their files); one that leads
    back to a folder it lies in is a loop, refused. A shards folder is skipped (so
    `prepare . --out shards` run twice does not read its own output)."""
    segs = tuple(s for s in PurePosixPath(pattern).parts if s != ".")
    found: list[tuple[tuple[str, ...], Path]] = []

    def visit(folder: Path, parts: tuple[str, ...], ancestors: dict[str, Path]) -> None:
        real = os.path.realpath(folder)
        if real in ancestors:
            raise DataError(
                f"{spec}: {folder} is a symlink back to {ancestors[real]} (a loop); its files "
                "would be read again and again (remove the link, or name the folders to read)"
            )
        if is_shards_dir(folder):
            return
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise DataError(f"{spec}: cannot list {folder} ({exc.strerror or exc})") from None
        for e in entries:
            if e.name.startswith("."):
                continue
            sub = (*parts, e.name)
            if e.is_dir():  # a symlinked folder too
                if _may_hold(sub, segs):
                    visit(folder / e.name, sub, {**ancestors, real: folder})
            elif e.is_file() and _match(sub, segs):
                found.append((sub, folder / e.name))

    visit(root, (), {})
    found.sort(key=lambda f: "/".join(f[0]))
    files = [p for _, p in found]
    _check_once(spec, files)
    return files


def _check_once(spec: str, files: list[Path]) -> None:
    """Refuse one file reached by two paths of one SOURCE (through a symlink)."""
    seen: dict[tuple[int, int], Path] = {}
    for p in files:
        st = p.stat()
        first = seen.setdefault((st.st_dev, st.st_ino), p)
        if first is not p:
            raise DataError(
                f"{spec}: {p} is {first} again (through a symlink or hard link); its "
                "documents would be read twice (give each file once)"
            )


def _glob_files(spec: str) -> list[Path]:
    """The files a glob pattern SOURCE matches: below its first folder with a wildcard,
    as a folder SOURCE reads them."""
    parts = PurePosixPath(spec).parts
    k = next(i for i, part in enumerate(parts) if _GLOB_CHARS & set(part))
    root = Path(*parts[:k])  # Path(): the current folder, and its files' paths are relative
    return _walk(root, "/".join(parts[k:]), spec) if root.is_dir() else []


def _file_source(spec: str, path: Path, text_field: str) -> Source:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return JsonlSource(spec, path, text_field)
    return FilesSource(spec, [path])


def _no_match(spec: str, glob: str) -> NoReturn:
    """A folder whose files --glob leaves none of with text. It was called an 'empty
    folder' even where it holds files the pattern missed ('notes/: empty folder' for
    `--glob '**/*.rst'` over Markdown notes): name one of them then."""
    text = [p for p in _walk(Path(spec), "**/*", spec) if p.stat().st_size]
    if not text:
        raise DataError(f"{spec}: empty folder (no non-empty files match --glob '{glob}')")
    raise DataError(
        f"{spec}: no non-empty file matches --glob '{glob}' (the folder holds {len(text):,} "
        f"others, e.g. {text[0].relative_to(spec).as_posix()}; the pattern is relative to the "
        "folder, '**/' any folders)"
    )


def resolve_sources(
    specs: list[str],
    glob: str = "**/*",
    text_field: str = "text",
    stdlib_tests: bool = False,
    streaming: bool = False,
) -> list[Source]:
    """Turn SOURCE arguments into sources; raise DataError for a missing or empty one."""
    if not specs:
        specs = ["stdlib"]
    out: list[Source] = []
    for spec in specs:
        if spec == "stdlib":
            root, files = stdlib_files(stdlib_tests)
            if not files:
                raise DataError(f"stdlib: no .py files found under {root}")
            ver = "{}.{}.{}".format(*sys.version_info[:3])
            out.append(FilesSource(spec, files, "stdlib", root=str(root), python=ver))
        elif spec.startswith("hf:"):
            out.append(HFSource(spec, text_field, streaming))
        elif os.path.isdir(spec):
            check_glob(glob)
            files = _walk(Path(spec), glob, spec)
            if not files or all(p.stat().st_size == 0 for p in files):
                _no_match(spec, glob)
            out.extend(_group_files(spec, files, text_field))
        elif os.path.exists(spec):
            path = Path(spec)
            if path.stat().st_size == 0:
                raise DataError(f"{spec}: empty file")
            out.append(_file_source(spec, path, text_field))
        elif _GLOB_CHARS & set(spec):
            files = _glob_files(spec)
            if not files:
                raise DataError(f"{spec}: no files match this pattern{_tilde_hint(spec, spec)}")
            out.extend(_group_files(spec, files, text_field))
        else:
            raise DataError(f"{spec}: no such file or folder{_tilde_hint(spec, spec)}")
    return out


def _tilde_hint(path: str, spec: str) -> str:
    """What to write instead of a `path` (in the source `spec`) that starts with a `~` the
    shell left as it is (quoted, or after `hf:`), or "". It is not expanded here: `~/x` is
    also a folder named `~`, as the shell's quoting meant it."""
    full = os.path.expanduser(path) if path.startswith("~") else path
    if full == path:  # no ~, or ~user of no such user
        return ""
    written = spec.replace(path, full, 1)
    if spec.startswith("hf:"):
        return f"; `~` is not expanded after hf:, write the path out: {written}"
    return f"; `~` is expanded only by the shell, unquoted: write the path out: {written}"


def _group_files(spec: str, files: list[Path], text_field: str) -> list[Source]:
    """Consecutive plain files become one source; each JSONL file its own."""
    out: list[Source] = []
    plain: list[Path] = []
    for p in files:
        if p.suffix.lower() in JSONL_SUFFIXES:
            if plain:
                out.append(FilesSource(spec, plain))
                plain = []
            out.append(JsonlSource(f"{spec} ({p})", p, text_field))
        else:
            plain.append(p)
    if plain:
        out.append(FilesSource(spec, plain))
    return out
