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
relative paths from another server (or copies them from a local folder: a path or a
file:// URL).
"""

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scalinglab.errors import ConfigError, DataError
from scalinglab.fsio import atomic_write_bytes, fsync_dir

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
class DerivedFile:
    """A table made from a data set's fetched files by `build(out) -> bytes` (parsing only,
    no upstream code run), checked against its size and sha256 like a download."""

    path: str
    size: int
    sha256: str
    build: Callable[[Path], bytes]


@dataclass(frozen=True)
class DataSet:
    name: str
    what: str
    files: tuple[RemoteFile, ...]
    derived: tuple[DerivedFile, ...] = ()

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
_MPL = ("thu-yao-01-luo/MultiPowerLaw", "8da9f1902602f3391b971a811e3cc51604541769")
# Luo et al. 2025's loss curves: loss_curve_repo/csv_{25,100,400}/SCHEDULE.csv (step,lr,loss)
_MPL_FILES = (
    ("csv_100", "constant_24000", 3527, "034a75e2415373a9be1097e9d406f98524344f4718d200d3a188dcbd5115103b"),
    ("csv_100", "constant_72000", 11352, "52b5752009e1e4c396f15016e98897238fccb3816f58576ea944f03fe529dbc3"),
    ("csv_100", "cosine_24000", 6128, "dd544dc61a11fa138c98ac0b673d5512287062d2d2d2e9c2867976abc8c46e69"),
    ("csv_100", "cosine_72000", 19761, "2e637203b48b3e3a84063f49035cde2f6a40c69ecd15d95b6551774b9a279f44"),
    ("csv_100", "wsd_20000_24000", 4008, "e66df98c85dba705ebc85512c6a09a8ebec5675878a20d4d783c0bf80d031002"),
    ("csv_100", "wsdcon_18", 2294, "33cfea673dc0efde9e4fd74cc47d8daabdebfdc6d5a2659835bd780347f6e651"),
    ("csv_100", "wsdcon_3", 3235, "a1cbb8c730ae0628d69bb1d7aefadbad5cda5f6a92272f85203cd33d7b8f4912"),
    ("csv_100", "wsdcon_9", 2170, "510256497a0ea9d4270919fb37c56140e1b4d07e50b96b46334891ba316f144e"),
    ("csv_100", "wsdld_20000_24000", 3930, "0ef6b02e260ff5efa51a5885655ead8cf126a7e9c4ea3034d403e11852c06fe2"),
    ("csv_25", "constant_24000", 3523, "5a7c0b440751e258e7199eeefe9f0ae58520a2f2d64c5f81524d8d375f75f0ce"),
    ("csv_25", "constant_72000", 11364, "99ee51a9be7b7fb71511d0af28edd6bc6221350d2ad26a66c615467cb5c83247"),
    ("csv_25", "cosine_24000", 6135, "554e35f9efbe28a614c9ae1121b3bf55490df6b72a5898957f68a52770038e3a"),
    ("csv_25", "cosine_72000", 19747, "af3b25a485966a0f7fc34824774cf8ec85af14848a6dc7b64d6a8d3d044befa5"),
    ("csv_25", "wsd_20000_24000", 3988, "8649b7de4b4b31db5c35f4ff0458af9472a50168177de6372c3ceb37ace9fc62"),
    ("csv_25", "wsdcon_18", 1992, "9b9bd40f519d20ecbf540d4c9451f6a01b7b379b1d335407ba4651025cc5926f"),
    ("csv_25", "wsdcon_3", 2719, "3d37fcf82c237e5c1ba2ee34c4b9e606ecba781536d4fea9a7dde5463207fc3d"),
    ("csv_25", "wsdcon_9", 1889, "b7579f38b5e175d9e9dc9b9598b409efdf2cba0a68819857ba28649c242c2bd8"),
    ("csv_25", "wsdld_20000_24000", 3914, "8e3a9ae33ed586e5040a114fad215f4f245c6a2ff7d96f61cba02ccd8b74b3e7"),
    ("csv_400", "constant_24000", 3516, "5d91536675592acdc40ea56f71ca24ee9026243e51a0a791ac25b631381c45ee"),
    ("csv_400", "constant_72000", 11349, "a453ef82f549470cc8250723917668801436dd835fd17bbf71e1fd77d00a3b6c"),
    ("csv_400", "cosine_24000", 6147, "aa18c9dbad66610d2037249bbcbf08fdce0983aa486b876ba95c2e3fb6fc0dce"),
    ("csv_400", "cosine_72000", 19784, "347acbdc80042cb7cfe0dcb28580a2780718ccbad23443d4de76821f0a1ab41e"),
    ("csv_400", "wsd_20000_24000", 4001, "8a56dbd8f6b553b42ca8b3f4be9822cf5b7458a6c1b7ae0ddc6ac57b2893dea7"),
    ("csv_400", "wsdcon_18", 2292, "998aaf3fd14de43fe754c7250885d7f72e20e7a210b1ea205a8af37ea8b22951"),
    ("csv_400", "wsdcon_3", 3240, "e1a896755ea1e1a6a4648a503be6a19eb62fc7ef12fbab3440a66f7a94197ac6"),
    ("csv_400", "wsdcon_9", 2166, "497aa4a60df8f520e11e212a990dcf70e8bfd89e814f295dc5476af630aac768"),
    ("csv_400", "wsdld_20000_24000", 3900, "7c5d5141d917955491732606e8817e7fdbd4bc2036e508e1610ab8bd252267dc"),
)  # fmt: skip
_MPL_FIT = ("cosine_24000", "constant_24000", "wsdcon_9")  # the curves the authors fit on


def _mpl_path(folder: str, stem: str) -> str:
    return f"scaling_data/upstream/multipowerlaw/{folder}/{stem}.csv"


def _multipowerlaw_table(out: Path) -> bytes:
    """The 27 curve files as one table: model, schedule, split (fit or test), step, lr,
    loss; rows in the files' order, values as written upstream."""
    rows = ["model,schedule,split,step,lr,loss"]
    for folder, stem, _, _ in _MPL_FILES:
        path = out / _mpl_path(folder, stem)
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines or lines[0] != "step,lr,loss":
            raise DataError(f"{path}: expected the header step,lr,loss")
        model = folder.removeprefix("csv_") + "M"
        split = "fit" if stem in _MPL_FIT else "test"
        rows += [f"{model},{stem},{split},{line}" for line in lines[1:] if line.strip()]
    return "".join(row + "\r\n" for row in rows).encode()  # CRLF, as the curve files


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
        DataSet("multipowerlaw", "loss curves of 3 sizes under 9 LR schedules (Luo et al. 2025)",
            tuple(_file(_mpl_path(d, s), _MPL, f"loss_curve_repo/{d}/{s}.csv", n, h)
                  for d, s, n, h in _MPL_FILES),
            (DerivedFile("scaling_data/multipowerlaw_schedule_curves.csv", 313380,
                         "96c741df128d957ecc3970fcd113f6503a19cd9562be334494410460b5960b70",
                         _multipowerlaw_table),),
        ),
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
            f"unknown data set(s) {', '.join(map(repr, unknown))}; known: "
            f"{', '.join(CATALOGUE)} "
            "(`scalinglab data list`)"
        )
    return [CATALOGUE[n] for n in names]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(
    data: DataSet, out: str | os.PathLike, mirror: str | None = None, force: bool = False
) -> list[Path]:
    """Every file of `data` in `out` (downloaded where missing), then its derived tables;
    returns their paths. A file in the way that is not the catalogue's (another size or
    sha256) is refused before anything is downloaded, unless `force`: it may be the user's."""
    out = Path(out)
    if not force:
        for f in (*data.files, *data.derived):
            check_in_the_way(out / f.path, f.size, f.sha256)
    paths = [fetch_file(f, out, mirror) for f in data.files]
    return paths + [make_derived(d, out) for d in data.derived]


def check_in_the_way(dest: Path, size: int, sha256: str) -> None:
    """Refuse a file at `dest` that is not the catalogue's: a download would replace it, and
    `--out` can be any folder (a user's own edited copy under the same name was lost)."""
    if not dest.is_file() or (dest.stat().st_size == size and sha256_of(dest) == sha256):
        return
    raise DataError(
        f"{dest}: exists and is not the catalogue's file ({dest.stat().st_size:,} bytes, "
        f"sha256 {sha256_of(dest)[:16]}…; expected {size:,} bytes, {sha256[:16]}…); move it "
        "away, or give --force to replace it"
    )


def make_derived(d: DerivedFile, out: Path) -> Path:
    """A derived table, in place and checked: built from the fetched files or found there."""
    dest = out / d.path
    if dest.is_file() and dest.stat().st_size == d.size and sha256_of(dest) == d.sha256:
        return dest
    body = d.build(out)
    digest = hashlib.sha256(body).hexdigest()
    if len(body) != d.size or digest != d.sha256:
        raise DataError(
            f"{dest}: the table built from the fetched files has {len(body):,} bytes with "
            f"sha256 {digest[:16]}…, expected {d.size:,} bytes with {d.sha256[:16]}…"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(dest, body)
    log.info("%s: derived, sha256 checked", dest)
    return dest


def fetch_file(f: RemoteFile, out: Path, mirror: str | None = None) -> Path:
    """One file, in place and checked: downloaded, resumed, or found already there."""
    dest = out / f.path
    if dest.is_file() and dest.stat().st_size == f.size and sha256_of(dest) == f.sha256:
        log.info("%s: up to date", dest)
        return dest
    # a file in place that failed the check (fetch refused it without --force) stays there
    # until a right one replaces it
    wrong = dest.is_file() and f" (the one there, {dest.stat().st_size:,} bytes, fails the check)"
    local = _local_mirror(mirror) if mirror else None
    url = f"{mirror.rstrip('/')}/{f.path}" if mirror else f.url
    part = dest.parent / f".{dest.name}.part"
    for above in reversed(dest.relative_to(out).parents[:-1]):  # corpora/, corpora/wikitext-2/
        if (out / above).exists() and not (out / above).is_dir():  # was '.part: File exists'
            raise DataError(f"{out / above}: a file where a folder is expected")
    earlier = 0  # bytes of a .part an earlier run left, resumed (HTTP range)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        if local is not None:
            url = str(local / f.path)
            complete = _copy_local(local / f.path, part, mirror)
        else:
            complete, earlier = _download(url, part, f.size)
    except (ValueError, http.client.InvalidURL) as exc:  # a URL urllib cannot use
        raise ConfigError(f"--mirror {mirror}: not a valid URL ({exc})") from None
    except DataError:
        raise
    except OSError as exc:
        if isinstance(exc, urllib.error.HTTPError):
            raise DataError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from None
        if isinstance(exc, urllib.error.URLError | TimeoutError | ConnectionError):
            reason = getattr(exc, "reason", exc)
            way_out = "check --mirror" if mirror else "use --mirror"
            raise DataError(
                f"cannot download {url}: {reason} (no network? place the file at {dest}"
                f"{wrong or ''} by hand, or {way_out})"
            ) from None
        raise DataError(f"cannot write {part}: {exc.strerror or exc}") from None
    got = part.stat().st_size
    if got < f.size and not complete:
        raise DataError(
            f"download of {url} stopped at {got:,} of {f.size:,} bytes; run the command "
            f"again to resume it ({part} is kept)"
        )
    digest = sha256_of(part)
    if got != f.size or digest != f.sha256:
        part.unlink()
        if earlier:  # the stale start, not the server, may be what is wrong
            raise DataError(
                f"{url}: checksum mismatch after resuming the {earlier:,} bytes an earlier "
                f"download left in {part}: got {got:,} bytes with sha256 {digest[:16]}…, "
                f"expected {f.size:,} bytes with sha256 {f.sha256[:16]}…; the download was "
                "deleted: run the command again to download it from the start"
            )
        raise DataError(
            f"{url}: checksum mismatch: got {got:,} bytes with sha256 {digest[:16]}…, "
            f"expected {f.size:,} bytes with sha256 {f.sha256[:16]}…; the download was "
            "deleted (a changed or wrong file: check --mirror)"
        )
    os.replace(part, dest)
    fsync_dir(dest.parent)
    log.info("%s: %s bytes, sha256 checked", dest, f"{f.size:,}")
    return dest


def _local_mirror(mirror: str) -> Path | None:
    """The folder a --mirror names (a path or a file:// URL), None for an http(s) URL;
    ConfigError for anything else (a malformed URL, another scheme, a missing folder)."""
    try:
        parts = urllib.parse.urlsplit(mirror)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as exc:  # 'http://[bad': Invalid IPv6 URL
        raise ConfigError(f"--mirror {mirror}: not a valid URL ({exc})") from None
    if parts.scheme in ("http", "https"):
        if not parts.netloc:
            raise ConfigError(f"--mirror {mirror}: not a valid URL (no host)")
        return None
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"--mirror {mirror}: a file:// URL names a local folder, not a host")
        folder = Path(urllib.request.url2pathname(parts.path))
    elif parts.scheme and not os.path.isdir(mirror):
        raise ConfigError(
            f"--mirror {mirror}: not an http://, https:// or file:// URL, nor a local folder"
        )
    else:
        folder = Path(mirror)
    if not folder.is_dir():
        why = "a file, not a folder" if folder.exists() else "no such folder"
        raise ConfigError(f"--mirror {mirror}: {why}")
    return folder


def _copy_local(src: Path, part: Path, mirror: str) -> bool:
    """Copy a local mirror's file into `part` (whole: nothing to resume locally)."""
    if not src.is_file():
        raise DataError(f"--mirror {mirror}: {src} is missing (the mirror lacks this file)")
    with open(src, "rb") as fin, open(part, "wb") as out:
        while chunk := fin.read(CHUNK):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    return True


def _download(url: str, part: Path, size: int) -> tuple[bool, int]:
    """Append the rest of `url` to `part` (all of it where the server ignores Range).
    Returns whether the server sent its whole response (all of its Content-Length, or
    every chunk): then `part` is the server's file, whatever its size, and a wrong size
    is a wrong file, not a download to resume; and how many bytes of an earlier download
    the part kept (0: none, or the server sent the file whole)."""
    have = part.stat().st_size if part.exists() else 0
    if have >= size:  # a complete (or overlong) part: the checks decide
        return True, have
    req = urllib.request.Request(url, headers={"User-Agent": "scalinglab"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        opened = urllib.request.urlopen(req, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code != 416 or not have:
            raise
        # 416: no byte past the part's end, so the part is not the start of this file;
        # kept, every run would ask the same again: download the file from its start
        exc.close()
        log.info("%s: the server has no bytes past %s (HTTP 416): downloading it whole", url, have)
        part.unlink()
        return _download(url, part, size)
    with opened as resp:
        resumed = have and resp.status == 206
        if have and not resumed:
            log.info("%s: the server sent the whole file again", url)
        with open(part, "ab" if resumed else "wb") as out:
            try:
                while chunk := resp.read(CHUNK):
                    out.write(chunk)
            except (http.client.IncompleteRead, ConnectionError, TimeoutError):
                return False, 0  # the connection broke: what arrived is kept, to resume
            finally:
                out.flush()
                os.fsync(out.fileno())
    # without a Content-Length or chunks, a closed connection may be the end or a break
    return resp.length == 0 or bool(getattr(resp, "chunked", False)), have if resumed else 0
