"""`scalinglab data fetch`: real download code against a loopback HTTP server (never the
network): checked, atomic, resumable, one-line errors."""

import dataclasses
import hashlib
import http.server
import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from scalinglab.cli import main
from scalinglab.data.fetch import CATALOGUE, DataSet, RemoteFile, fetch, fetch_file, make_derived
from scalinglab.errors import DataError

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
BODY = bytes(range(256)) * 400  # 102,400 bytes


class Server:
    """A loopback server for one file body; `mode` says how it misbehaves."""

    def __init__(self, body: bytes, mode: str = "ok", root: Path | None = None):
        self.body, self.mode, self.root, self.requests = body, mode, root, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.body
                if server.root is not None:
                    f = server.root / self.path.lstrip("/")
                    if not f.is_file():
                        self.send_error(404)
                        return
                    body = f.read_bytes()
                start = 0
                rng = self.headers.get("Range")
                if rng and server.mode != "no-range":
                    start = int(rng.split("=")[1].rstrip("-"))
                    if start >= len(body):  # as a server does: no such range
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if server.mode == "truncate":
                    server.mode = "ok"  # the next request is served whole
                    self.wfile.write(body[start : start + (len(body) - start) // 3])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(body[start:])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def make(*args, **kw):
        servers.append(Server(*args, **kw))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def remote(body: bytes = BODY) -> RemoteFile:
    return RemoteFile("corpora/x.txt", "unused", len(body), hashlib.sha256(body).hexdigest())


def test_download_is_checked_and_then_up_to_date(serve, tmp_path):
    s = serve(BODY)
    got = fetch_file(remote(), tmp_path, mirror=s.url)
    assert got == tmp_path / "corpora" / "x.txt" and got.read_bytes() == BODY
    assert s.requests == [("/corpora/x.txt", None)]
    fetch_file(remote(), tmp_path, mirror=s.url)  # right hash in place: no request
    assert len(s.requests) == 1
    assert [p.name for p in got.parent.iterdir()] == ["x.txt"]  # no .part left


def test_checksum_mismatch_is_refused_and_nothing_is_kept(serve, tmp_path):
    s = serve(BODY[:-1] + b"!")  # one byte changed upstream
    with pytest.raises(DataError, match=r"x.txt: checksum mismatch: got 102,400 bytes"):
        fetch_file(remote(), tmp_path, mirror=s.url)
    assert list((tmp_path / "corpora").iterdir()) == []


def test_truncated_download_is_kept_and_resumed(serve, tmp_path):
    s = serve(BODY, mode="truncate")
    with pytest.raises(DataError, match=r"stopped at 34,133 of 102,400 bytes; run the command"):
        fetch_file(remote(), tmp_path, mirror=s.url)
    part = tmp_path / "corpora" / ".x.txt.part"
    assert part.read_bytes() == BODY[:34133] and not (tmp_path / "corpora" / "x.txt").exists()
    got = fetch_file(remote(), tmp_path, mirror=s.url)  # resumes from byte 34,133
    assert s.requests[-1] == ("/corpora/x.txt", "bytes=34133-")
    assert got.read_bytes() == BODY and not part.exists()


def test_a_server_that_ignores_range_sends_the_whole_file_again(serve, tmp_path):
    part = tmp_path / "corpora" / ".x.txt.part"
    part.parent.mkdir()
    part.write_bytes(b"garbage from an older attempt")
    s = serve(BODY, mode="no-range")
    assert fetch_file(remote(), tmp_path, mirror=s.url).read_bytes() == BODY
    assert s.requests == [("/corpora/x.txt", "bytes=29-")]


def test_offline_is_one_line_naming_the_url_and_the_way_out(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with pytest.raises(DataError, match=r"cannot download http://127.0.0.1:\d+/corpora/x.txt: "):
        fetch_file(remote(), tmp_path, mirror=f"http://127.0.0.1:{port}")


def test_offline_with_a_wrong_file_in_place_says_it_is_wrong(tmp_path):
    # "place the file at DEST by hand" named a file already there as if it were missing
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    dest = tmp_path / "corpora" / "x.txt"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    with pytest.raises(DataError) as e:
        fetch_file(remote(), tmp_path, mirror=f"http://127.0.0.1:{port}")
    assert f"place the file at {dest} (the one there, 3 bytes, fails the check) by hand" in str(
        e.value
    )
    assert dest.read_bytes() == b"old"


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["data", "fetch", "tinyshakespear", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown data set(s) 'tinyshakespear'; known: tinyshakespeare")
    assert err.count("\n") == 1
    # an empty name read "unknown data set(s) ; known: ..."
    assert main(["data", "fetch", "", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: unknown data set(s) ''; known: ")


def test_the_catalogue_is_pinned_and_has_no_duplicate_paths():
    paths = [f.path for d in CATALOGUE.values() for f in d.files]
    assert len(paths) == len(set(paths))
    for d in CATALOGUE.values():
        for f in d.files:
            assert f.url.startswith("https://raw.githubusercontent.com/")
            commit = f.url.split("/")[5]
            assert len(commit) == 40 and int(commit, 16) >= 0  # a commit, never a branch
            assert len(f.sha256) == 64 and f.size > 0


@pytest.mark.skipif(
    not SHARED.is_dir(), reason="../shared (the public data) is not beside the repo"
)
def test_every_catalogued_file_matches_the_public_copy(serve, tmp_path, capsys):
    """The catalogue's sizes and hashes are those of the public files (../shared holds the
    same upstream files, and the tables derived from others); served from a mirror, `data
    fetch` gets every one of them and derives the same tables, byte for byte."""
    mirror = tmp_path / "mirror"
    for d in CATALOGUE.values():
        for f in (*d.files, *d.derived):
            if (SHARED / f.path).is_file():
                (mirror / f.path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(SHARED / f.path, mirror / f.path)
    split_multipowerlaw(mirror)  # its upstream files, back out of ../shared's table
    s = serve(b"", root=mirror)
    out = tmp_path / "out"
    assert main(["data", "fetch", *CATALOGUE, "--out", str(out), "--mirror", s.url]) == 0
    printed = capsys.readouterr().out.split()
    files = [f for d in CATALOGUE.values() for f in (*d.files, *d.derived)]
    assert printed == [str(out / f.path) for f in files]
    for f in files:
        assert (out / f.path).read_bytes() == (mirror / f.path).read_bytes()
    assert not [p for p in out.rglob(".*.part")]
    assert os.path.getsize(out / "corpora/tinyshakespeare.txt") == 1115394


def split_multipowerlaw(root: Path) -> None:
    """The upstream curve files (CRLF text, step,lr,loss) that ../shared's table was made
    from, written back out of that table under root."""
    table = (root / "scaling_data/multipowerlaw_schedule_curves.csv").read_text()
    curves: dict = {}
    for line in table.splitlines()[1:]:
        model, stem, _, rest = line.split(",", 3)
        curves.setdefault((model, stem), []).append(rest)
    for (model, stem), lines in curves.items():
        path = root / f"scaling_data/upstream/multipowerlaw/csv_{model[:-1]}/{stem}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes("".join(x + "\r\n" for x in ["step,lr,loss", *lines]).encode())


def test_a_derived_table_that_does_not_match_is_refused(tmp_path):
    d = CATALOGUE["multipowerlaw"]
    (tmp_path / "scaling_data").mkdir()
    (tmp_path / "scaling_data/multipowerlaw_schedule_curves.csv").write_bytes(b"x")
    for folder, stem in (("csv_25", "cosine_24000"), ("csv_100", "wsdcon_9")):
        p = tmp_path / f"scaling_data/upstream/multipowerlaw/{folder}/{stem}.csv"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("step,lr,loss\n2160,0.0003,4.1114\n")
    (derived,) = d.derived
    with pytest.raises(FileNotFoundError):  # the other 25 files are not there
        make_derived(derived, tmp_path)
    one = dataclasses.replace(derived, build=lambda out: b"model\n")
    with pytest.raises(DataError, match=r"expected 313,380 bytes"):
        make_derived(one, tmp_path)
    assert (tmp_path / derived.path).read_bytes() == b"x"  # nothing written over it


def test_a_whole_response_of_the_wrong_size_is_a_wrong_file(serve, tmp_path):
    # (read from Python, --mirror is named mirror) a mirror whose file is short: the
    # response ends at its Content-Length, so a rerun
    # would only fetch the same short file again ("run the command again to resume it",
    # forever); it is the checksum mismatch, and the .part is deleted
    part = tmp_path / "corpora" / ".x.txt.part"
    for served, got in ((BODY[:50_000], "50,000"), (BODY + b"more", "102,404")):
        s = serve(served)
        with pytest.raises(DataError, match=rf"x\.txt: checksum mismatch: got {got} bytes.*"
                           r"check mirror"):  # fmt: skip
            fetch_file(remote(), tmp_path, mirror=s.url)
        assert not part.exists() and list((tmp_path / "corpora").iterdir()) == []
    # resumed from a part: the server's whole rest (206) ends short of the size
    part.write_bytes(BODY[:1000])
    s = serve(BODY[:50_000])
    with pytest.raises(DataError, match=r"checksum mismatch after resuming the 1,000 bytes an "
                       r"earlier download left in .*: got 50,000 bytes"):  # fmt: skip
        fetch_file(remote(), tmp_path, mirror=s.url)
    assert s.requests == [("/corpora/x.txt", "bytes=1000-")] and not part.exists()


def test_a_stale_part_is_named_not_the_mirror(serve, tmp_path):
    """A .part of other bytes, resumed by a good server (Range honoured), made a wrong file:
    the error blamed the mirror ('check --mirror'); it names the part, and the next run,
    from the start, is right."""
    part = tmp_path / "corpora" / ".x.txt.part"
    part.parent.mkdir()
    part.write_bytes(b"x" * 5000)
    s = serve(BODY)
    with pytest.raises(DataError) as e:
        fetch_file(remote(), tmp_path, mirror=s.url)
    said = str(e.value)
    assert (
        f"checksum mismatch after resuming the 5,000 bytes an earlier download left in {part}"
        in said
    )
    assert said.endswith(
        "the download was deleted: run the command again to download it from the start"
    )
    assert "check mirror" not in said and not part.exists()
    assert fetch_file(remote(), tmp_path, mirror=s.url).read_bytes() == BODY


def test_refused_connection_with_a_mirror_says_check_it(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(DataError, match=r"by hand, or check mirror\)$"):
        fetch_file(remote(), tmp_path, mirror=f"http://127.0.0.1:{port}")
    with pytest.raises(DataError, match=r"by hand, or use mirror\)$"):
        fetch_file(dataclasses.replace(remote(), url=f"http://127.0.0.1:{port}/x"), tmp_path)


def test_a_local_folder_or_file_url_serves_as_mirror(tmp_path, capsys):
    # a path raised ValueError (unknown url type), file:// an AttributeError after the
    # download, leaving a .part: tracebacks, where the docs pitch --mirror for offline use
    mirror = tmp_path / "mirror"
    (mirror / "corpora").mkdir(parents=True)
    (mirror / "corpora" / "x.txt").write_bytes(BODY)
    for i, m in enumerate((str(mirror), mirror.as_uri(), f"file://localhost{mirror}")):
        out = tmp_path / f"out{i}"
        got = fetch_file(remote(), out, mirror=m)
        assert got.read_bytes() == BODY and os.listdir(got.parent) == ["x.txt"]
    (mirror / "corpora" / "x.txt").write_bytes(BODY[:-1] + b"!")
    with pytest.raises(DataError, match=r"x\.txt: checksum mismatch: got 102,400 bytes"):
        fetch_file(remote(), tmp_path / "bad", mirror=str(mirror))
    assert os.listdir(tmp_path / "bad" / "corpora") == []
    with pytest.raises(DataError) as exc:
        fetch_file(dataclasses.replace(remote(), path="corpora/y.txt"), tmp_path, str(mirror))
    assert exc.value.message == (
        f"--mirror {mirror}: {mirror / 'corpora' / 'y.txt'} is missing (the mirror lacks this file)"
    )


@pytest.mark.parametrize(
    ("mirror", "why"),
    [("http://[bad", "not a valid URL (Invalid IPv6 URL)"),
     ("http://127.0.0.1:port", "not a valid URL (Port could not be cast to integer value as 'port')"),
     ("ftp://host/x", "not an http://, https:// or file:// URL, nor a local folder"),
     ("/no/such/folder", "no such folder"), ("file:///no/such", "no such folder")],
)  # fmt: skip
def test_a_bad_mirror_is_one_line_naming_it(tmp_path, capsys, mirror, why):
    argv = ["data", "fetch", "tinyshakespeare", "--out", str(tmp_path), "--mirror", mirror]
    assert main(argv) == 2
    assert capsys.readouterr().err == f"error: --mirror {mirror}: {why}\n"
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


def test_a_part_past_the_servers_end_is_downloaded_again(serve, tmp_path):
    # the server answers the Range request with 416: every run printed it and kept the
    # .part, stuck forever; now the part goes and the file comes whole
    part = tmp_path / "corpora" / ".x.txt.part"
    part.parent.mkdir()
    part.write_bytes(b"z" * 60_000)
    s = serve(BODY[:50_000])  # a shorter file than the part: 416, then whole and wrong
    with pytest.raises(DataError, match=r"x\.txt: checksum mismatch: got 50,000 bytes"):
        fetch_file(remote(), tmp_path, mirror=s.url)
    assert s.requests == [("/corpora/x.txt", "bytes=60000-"), ("/corpora/x.txt", None)]
    assert not part.exists()


def test_a_file_of_the_users_in_the_way_is_refused_unless_forced(tmp_path, capsys):
    """`--out` can be any folder: a file of the user's own under a catalogue name was
    replaced by the download (exit 0), and lost."""
    mirror = tmp_path / "mirror" / "corpora"
    mirror.mkdir(parents=True)
    body = b"the catalogue's text\n"
    (mirror / "x.txt").write_bytes(body)
    f = RemoteFile("corpora/x.txt", "https://example.invalid/x.txt", len(body),
                   hashlib.sha256(body).hexdigest())  # fmt: skip
    data = DataSet("x", "a test set", (f,))
    dest = tmp_path / "out" / "corpora" / "x.txt"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"mine\n")
    with pytest.raises(DataError) as e:
        fetch(data, tmp_path / "out", mirror=str(tmp_path / "mirror"))
    assert str(e.value) == (
        f"{dest}: exists and is not the catalogue's file (5 bytes, sha256 "
        f"{hashlib.sha256(b'mine' + bytes([10])).hexdigest()[:16]}…; expected {len(body)} bytes, "
        f"{f.sha256[:16]}…); move it away, or give force=True to replace it"
    )
    assert dest.read_bytes() == b"mine\n" and sorted(dest.parent.iterdir()) == [dest]
    assert fetch(data, tmp_path / "out", mirror=str(tmp_path / "mirror"), force=True) == [dest]
    assert dest.read_bytes() == body
    assert fetch(data, tmp_path / "out", mirror=str(tmp_path / "mirror")) == [dest]  # in place


def test_a_file_where_a_folder_belongs_is_named(tmp_path, capsys):
    """'.part: File exists' named the wrong path (OUT/corpora was the file), and a --mirror
    that is a file was 'no such folder'."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "corpora").write_text("x")
    argv = ["data", "fetch", "tinyshakespeare", "--mirror", str(tmp_path)]
    assert main([*argv, "--out", str(out)]) == 2
    assert (
        capsys.readouterr().err == f"error: {out / 'corpora'}: a file where a folder is expected\n"
    )
    assert main(["data", "fetch", "tinyshakespeare", "--mirror", str(out / "corpora"),
                 "--out", str(tmp_path / "o2")]) == 2  # fmt: skip
    assert capsys.readouterr().err == f"error: --mirror {out / 'corpora'}: a file, not a folder\n"


def test_a_users_file_of_the_same_size_in_the_way_is_refused(serve, tmp_path):
    """a file in the way is the catalogue's only with its size AND its sha256: the user's
    edited copy of the same length was replaced without --force."""
    dest = tmp_path / "corpora" / "x.txt"
    dest.parent.mkdir()
    mine = BODY[:-1] + b"!"  # same size, one byte edited
    dest.write_bytes(mine)
    s = serve(BODY)
    with pytest.raises(DataError, match=r"exists and is not the catalogue's file"):
        fetch(DataSet("x", "x", (remote(),)), tmp_path, mirror=s.url)
    assert dest.read_bytes() == mine and s.requests == []


def test_a_corrupt_file_of_the_right_size_is_downloaded_again(serve, tmp_path):
    """'up to date' needs the right sha256, not only the size: a file damaged in place
    (one byte) is downloaded again when --force lets fetch replace it."""
    dest = tmp_path / "corpora" / "x.txt"
    dest.parent.mkdir()
    dest.write_bytes(BODY[:-1] + b"!")
    s = serve(BODY)
    fetch_file(remote(), tmp_path, mirror=s.url)
    assert dest.read_bytes() == BODY and len(s.requests) == 1
