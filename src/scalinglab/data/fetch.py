"""`scalinglab data fetch NAME`: the public data the docs use, downloaded and checked.

Each data set of the catalogue is a few files, each with the URL it comes from
(pinned to a commit, so its bytes never change), its size and its sha256. A
file is downloaded into `OUT/.NAME.part`, hashed as it arrives, and renamed to
its place only once its size and hash are right: a file in place is always a
whole and correct one. An interrupted download keeps its `.part` and the next
fetch resumes it (an HTTP Range request; a server that ignores it sends the
file again from the start). A file already in place with the right hash is not
downloaded again.

The layout under OUT mirrors the catalogue's paths (`corpora/...`,
`scaling_data/...`), so a folder that already holds the same files (a mirror,
a copy made by hand) serves as it is, and `--mirror URL` fetches the same
relative paths from another server.
"""

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from scalinglab.errors import DataError
from scalinglab.fsio import fsync_dir

log = logging.getLogger(__name__)

CHUNK = 1 << 16
TIMEOUT = 30.0  # seconds without a byte before a download counts as stalled


@dataclass(frozen=True)
class RemoteFile:
    path: str  # relative to the output folder, and to a mirror's base URL
    url: str
    size: int
    sha256: str


@dataclass(frozen=True)
class DataSet:
    name: str
    what: str
    files: tuple[RemoteFile, ...]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def _gh(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


_CHARRNN = ("karpathy/char-rnn", "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e")
_EXAMPLES = ("pytorch/examples", "77f55b912142e11fcfdf5b530231fb9c52f181e8")
_EPOCH = ("epoch-research/analyzing-chinchilla", "92258837425e1b5f2851d624287f0120583a3d0e")
_ATHENA = ("Open-Athena/scaling-law-analysis", "3e0656ee3dce1a2c89aa67691920f5eb9d30f0fc")
_MISFIT = ("hadasah/scaling_laws", "1f3708c0a12df0effb0ee906b1da5f9f0ff4f4f1")


def _file(path: str, source: tuple[str, str], upstream: str, size: int, sha256: str):
    return RemoteFile(path, _gh(*source, upstream), size, sha256)


CATALOGUE: dict[str, DataSet] = {
    d.name: d
    for d in (
        DataSet("tinyshakespeare", "Karpathy's tiny Shakespeare (1.1 MB of plays)", (
            _file("corpora/tinyshakespeare.txt", _CHARRNN, "data/tinyshakespeare/input.txt",
                  1115394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
        )),
        DataSet("wikitext-2", "WikiText-2 (tokenized) valid and test, as in PyTorch's word LM example", (
            _file("corpora/wikitext-2/valid.txt", _EXAMPLES,
                  "word_language_model/data/wikitext-2/valid.txt",
                  1121681, "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8"),
            _file("corpora/wikitext-2/test.txt", _EXAMPLES,
                  "word_language_model/data/wikitext-2/test.txt",
                  1256449, "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0"),
        )),
        DataSet("epoch-chinchilla", "Chinchilla's runs digitised by Besiroglu et al. 2024", (
            _file("scaling_data/epoch_chinchilla_svg_extracted_data.csv", _EPOCH,
                  "data/svg_extracted_data.csv",
                  23224, "193478df4e90f040016431996c45682659306840ecdadf83cfb9cd5ca0aa1b30"),
        )),
        DataSet("openathena-isoflops", "IsoFLOP points of Chinchilla, Llama 3 and Marin (Open-Athena)", (
            _file("scaling_data/openathena_isoflops_extract_all.csv", _ATHENA,
                  "data/isoflops/extract/isoflops.csv",
                  115576, "cf343ffda3106862e0e73bfc10ed017f683a03e46f4540896a213276fd180651"),
            _file("scaling_data/openathena_isoflops_transform_all.csv", _ATHENA,
                  "data/isoflops/transform/isoflops.csv",
                  127708, "b04d611253611490c5cc339fb95cb28d4f38f279a97438cb804a80f03171caa0"),
            _file("scaling_data/openathena_ml_scalefit_chinchilla_isoflops.csv", _ATHENA,
                  "data/isoflops/extract/ml_scalefit/isoflops.csv",
                  18059, "e9eecba2c7f93050254e577b970495e3ef36db84a39f06fe220b576578e84199"),
            _file("scaling_data/openathena_llama3_isoflops_digitized.csv", _ATHENA,
                  "data/isoflops/extract/llama_3/isoflops.csv",
                  30434, "9450f8829778ce8bfb51cc9b18ef121ef18f0c81758cd8fbe74d9dcf0545a692"),
            _file("scaling_data/openathena_marin_isoflops.csv", _ATHENA,
                  "data/isoflops/extract/marin_202603/isoflops.csv",
                  31162, "f2c307ac8152f0df9b2be720bfc5958fdc54688de152e3294cec12da34cfa7f2"),
        )),
        DataSet("misfitting", "open_lm runs and their checkpoints (Li et al. 2025)", (
            _file("scaling_data/misfitting_scaling_results.csv", _MISFIT,
                  "data/scaling_results.csv",
                  1133268, "193b4b7665365112605417e2ef06d55efe599cfa08412354e3ae42c3af7a9f58"),
            _file("scaling_data/misfitting_scaling_results_last_ckpt_only.csv", _MISFIT,
                  "data/scaling_results_last_ckpt_only.csv",
                  58697, "cd96b9eb8e5b2adc80e6739a642dd8554590edc96234d36859ab6ed0f5c30562"),
        )),
    )
}  # fmt: skip


def default_dir() -> Path:
    """$SCALINGLAB_CACHE/data, else ~/.cache/scalinglab/data (the study's cache root)."""
    env = os.environ.get("SCALINGLAB_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "scalinglab") / "data"


def lookup(names: list[str]) -> list[DataSet]:
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise DataError(
            f"unknown data set(s) {', '.join(unknown)}; known: {', '.join(CATALOGUE)} "
            "(`scalinglab data list`)"
        )
    return [CATALOGUE[n] for n in names]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(data: DataSet, out: str | os.PathLike, mirror: str | None = None) -> list[Path]:
    """Every file of `data` in `out` (downloaded where missing); returns their paths."""
    return [fetch_file(f, Path(out), mirror) for f in data.files]


def fetch_file(f: RemoteFile, out: Path, mirror: str | None = None) -> Path:
    """One file, in place and checked: downloaded, resumed, or found already there."""
    dest = out / f.path
    if dest.is_file() and dest.stat().st_size == f.size and sha256_of(dest) == f.sha256:
        log.info("%s: up to date", dest)
        return dest
    url = f"{mirror.rstrip('/')}/{f.path}" if mirror else f.url
    part = dest.parent / f".{dest.name}.part"
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        _download(url, part, f.size)
    except OSError as exc:
        if isinstance(exc, urllib.error.HTTPError):
            raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
        if isinstance(exc, urllib.error.URLError | TimeoutError | ConnectionError):
            reason = getattr(exc, "reason", exc)
            raise DataError(
                f"cannot download {url}: {reason} (no network? place the file at {dest} "
                "by hand, or use --mirror)"
            ) from None
        raise DataError(f"cannot write {part}: {exc.strerror or exc}") from None
    got = part.stat().st_size
    if got < f.size:
        raise DataError(
            f"download of {url} stopped at {got:,} of {f.size:,} bytes; run the command "
            f"again to resume it ({part} is kept)"
        )
    digest = sha256_of(part)
    if got != f.size or digest != f.sha256:
        part.unlink()
        raise DataError(
            f"{url}: checksum mismatch: got {got:,} bytes with sha256 {digest[:16]}…, "
            f"expected {f.size:,} bytes with sha256 {f.sha256[:16]}…; the download was "
            "deleted (a changed or wrong file: check --mirror)"
        )
    os.replace(part, dest)
    fsync_dir(dest.parent)
    log.info("%s: %s bytes, sha256 checked", dest, f"{f.size:,}")
    return dest


def _download(url: str, part: Path, size: int) -> None:
    """Append the rest of `url` to `part` (all of it where the server ignores Range)."""
    have = part.stat().st_size if part.exists() else 0
    if have >= size:  # a complete (or overlong) part: the checks decide
        return
    req = urllib.request.Request(url, headers={"User-Agent": "scalinglab"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        resumed = have and resp.status == 206
        if have and not resumed:
            log.info("%s: the server sent the whole file again", url)
        with open(part, "ab" if resumed else "wb") as out:
            try:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
            except (http.client.IncompleteRead, ConnectionError, TimeoutError):
                pass  # the connection broke: what arrived is kept, the caller resumes
            finally:
                out.flush()
                os.fsync(out.fileno())
