"""Crash-safe file writing: write to a temporary name, fsync, rename.

A reader never sees a half-written file under its final name: either the old
content or the new one. Every JSON file the project writes goes through here.
"""

import contextlib
import ctypes
import errno
import fcntl
import glob
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename inside `path` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def named_as(path: str | os.PathLike):
    """Name `path` in an OSError that names no file (a write() on a full disk, as file
    objects report it), so that the error says where; other errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, os.fspath(path)) from None
        raise


@contextlib.contextmanager
def machine_lock(key: str, waiting=None):
    """Hold, for the `with` block, an exclusive lock that every process of this user on
    this machine asking for the same `key` shares (a flock on a file in the temporary
    folder named by a hash of the key; the kernel drops it if the holder dies). For a
    check-then-create that the store behind it does not make atomic. `waiting()` is
    called once where another process holds it, before waiting for it."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"scalinglab-{os.getuid()}-{digest}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:  # a full or read-only temporary folder: go on, unguarded
        log.warning("cannot take the lock %s (%s): going on without it", path, exc.strerror)
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting is not None:
                waiting()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and with it the lock


def temp_tag() -> str:
    """`PID@HOST`: whose temporary file or folder this is. Every temporary name carries
    it, so that a later run can tell one a killed process left (`remove_stale_temps`)
    from one another process is writing."""
    return f"{os.getpid()}@{socket.gethostname()}"


def stale_temps(folder: str | os.PathLike, prefix: str) -> list[Path]:
    """The temporary files and folders named `prefix` + `PID@HOST` + `.TOKEN` (+ `.tmp`)
    in `folder` that a process of this host left when it was killed (SIGKILL, power loss):
    its pid is no longer running. Another host's (`node12` or `node1.example` beside
    `node1` too), or a live process's, are not listed."""
    host = socket.gethostname()
    ours = re.compile(re.escape(host) + r"\.[^.]+(\.tmp)?")
    found = []
    for path in Path(folder).glob(glob.escape(prefix) + "*@" + glob.escape(host) + "*"):
        pid, _, rest = path.name[len(prefix) :].partition("@")
        if pid.isdigit() and ours.fullmatch(rest) and not _alive(int(pid)):
            found.append(path)
    return found


def remove_stale_temps(folder: str | os.PathLike, prefix: str) -> None:
    """Delete the `stale_temps` (what killed processes of this host left) in `folder`."""
    for path in stale_temps(folder, prefix):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's: it exists
        return True
    return True


def make_temp_dir(parent: str | os.PathLike, prefix: str) -> Path:
    """A new, uniquely named folder in `parent` with the usual permissions (umask),
    unlike tempfile.mkdtemp's 0700: it is renamed into place as a user-visible folder."""
    while True:
        path = Path(parent) / f"{prefix}{secrets.token_hex(6)}"
        try:
            path.mkdir(mode=0o777)
            return path
        except FileExistsError:
            continue


def replace_dir(tmp: str | os.PathLike, out: str | os.PathLike) -> None:
    """Rename the finished folder `tmp` to `out`, replacing what is there only after `tmp`
    is complete. Where the system can (Linux), `tmp` and `out` are swapped in one step, so
    `out` is never missing; elsewhere the old folder is moved aside first (a kill between
    the two renames leaves no `out` until the next build). Either way the old folder goes
    into a hidden `.NAME.old-PID@HOST.*` folder beside it and is deleted (moved back if
    `tmp` cannot be renamed). One that a killed process left there is deleted once the new
    folder is in place (`remove_replaced`)."""
    tmp, out = Path(tmp), Path(out)
    if out.exists() and _exchange(tmp, out):  # `tmp` now holds the old folder
        fsync_dir(out.parent)
        old = make_temp_dir(out.parent, f"{_old_prefix(out)}{temp_tag()}.")
        tmp.rename(old / "x")
        shutil.rmtree(old, ignore_errors=True)
        remove_replaced(out)
        return
    old = None
    if out.exists():
        old = make_temp_dir(out.parent, f"{_old_prefix(out)}{temp_tag()}.")
        try:
            out.rename(old / "x")
        except BaseException:
            with contextlib.suppress(OSError):
                old.rmdir()
            raise
    try:
        tmp.rename(out)
    except BaseException:
        if old is not None:  # put the old folder back: nothing replaced it
            with contextlib.suppress(OSError):
                (old / "x").rename(out)
                old.rmdir()
        raise
    fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    remove_replaced(out)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap the paths `a` and `b` atomically (Linux's renameat2 with RENAME_EXCHANGE);
    False where this system or file system cannot, an OSError for any other failure
    (`a` missing: nothing was swapped)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):  # not glibc >= 2.28
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                          ctypes.c_uint]  # fmt: skip
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # no such call, or not here
        return False
    raise OSError(err, os.strerror(err), os.fspath(a), None, os.fspath(b))


def _old_prefix(out: Path) -> str:
    return f".{out.name}.old-"


UNNAMED_OLD_AGE = 3600.0  # seconds; see remove_replaced
_MKDTEMP_TAIL = re.compile(r"[a-z0-9_]{8}")  # tempfile.mkdtemp's random part


def remove_replaced(out: str | os.PathLike) -> None:
    """Delete the old folders that `replace_dir` into `out` moved aside and a killed process
    (SIGKILL between the move and the delete) left: `.NAME.old-PID@HOST.*` of this host
    whose pid is gone (`stale_temps`). Only while `out` is there: then they are superseded.
    A live process's and another host's are left.

    An older scalinglab named them `.NAME.old-XXXXXXXX` (mkdtemp), with no pid to check.
    Such a folder is in a live process's hands only for two renames: made empty, then the
    old `out` renamed into it (the folder's mtime), then the new folder renamed to `out`
    while `out` is missing; after that it is only deleted (its delete ignores errors). So
    one is deleted, while `out` is there, once its mtime is UNNAMED_OLD_AGE old: no process
    still between those renames after an hour."""
    out = Path(out)
    if not out.exists():
        return
    remove_stale_temps(out.parent, _old_prefix(out))
    prefix = _old_prefix(out)
    for path in out.parent.glob(glob.escape(prefix) + "*"):
        if not _MKDTEMP_TAIL.fullmatch(path.name[len(prefix) :]):
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and time.time() - st.st_mtime > UNNAMED_OLD_AGE:
            shutil.rmtree(path, ignore_errors=True)


_PID_TAIL = re.compile(r"[0-9]+")  # an older export's `.NAME.tmp-PID` (no host)


def remove_unnamed_temps(folder: str | os.PathLike, prefix: str) -> None:
    """Delete the temporary folders `prefix` + a name with no PID@HOST that an older
    scalinglab left when it was killed: `.NAME.tmp-XXXXXXXX` (prepare, tempfile.mkdtemp)
    or `.NAME.tmp-PID` (export), whose process cannot be told alive (`stale_temps`).
    One is deleted only once nothing in it has changed for UNNAMED_OLD_AGE (the newest
    mtime of the folder and everything in it): a live process writing into it changes
    its files' mtimes, and none of those versions wrote nothing for an hour between
    making the folder and renaming it into place."""
    for path in Path(folder).glob(glob.escape(prefix) + "*"):
        tail = path.name[len(prefix) :]
        if not (_MKDTEMP_TAIL.fullmatch(tail) or _PID_TAIL.fullmatch(tail)):
            continue
        newest = _newest_mtime(path) if path.is_dir() and not path.is_symlink() else None
        if newest is not None and time.time() - newest > UNNAMED_OLD_AGE:
            shutil.rmtree(path, ignore_errors=True)


def _newest_mtime(folder: Path) -> float | None:
    """The newest mtime of `folder` and everything below it (symlinks not followed);
    None where part of it cannot be read (then it is left alone)."""
    try:
        newest = folder.lstat().st_mtime
        for root, dirs, files in os.walk(folder, onerror=_raise):
            for name in (*dirs, *files):
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    except OSError:
        return None
    return newest


def _raise(exc: OSError) -> None:
    raise exc


def umask() -> int:
    """The process's umask, read without changing it (Linux's /proc; elsewhere set and
    put back at once)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path: str | os.PathLike) -> None:
    """Give a file another library wrote with private permissions (safetensors writes
    0600) the usual ones: 0666 less the umask, as plain open() would."""
    os.chmod(path, 0o666 & ~umask())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    # os.open with mode 0o666 (not mkstemp's 0o600) so the file gets the usual
    # permissions under the user's umask, as if written with plain open().
    remove_stale_temps(path.parent, f".{path.name}.")
    tmp = path.parent / f".{path.name}.{temp_tag()}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:  # name the file being written, not our temporary name
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # name the file being written, not our temporary name
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write `obj` as indented JSON, atomically. NaN/inf are refused (not valid JSON)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")


def path_relation(path: str | os.PathLike, other: str | os.PathLike) -> str | None:
    """How `path` stands to `other`, both resolved: "is" (the same path, or a hard link of
    the same file), "lies inside", "contains", or None (apart)."""
    a, b = Path(path).resolve(), Path(other).resolve()
    if a == b or (a.exists() and b.exists() and os.path.samefile(a, b)):
        return "is"
    if a.is_relative_to(b):
        return "lies inside"
    if b.is_relative_to(a):
        return "contains"
    return None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (memory stays bounded)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
