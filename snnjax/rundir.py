"""A run directory as a unit: atomic artifacts, one lock per run, no silent overwrite.

Every file snnjax writes into a run directory goes through :func:`atomic_write`:
a temporary file beside the target, ``fsync``, then :func:`os.replace` onto
the final name, so a crash, ``kill -9`` or a full disk leaves either the old
file or the new one under that name, never a truncated one. The file gets the
mode any other new file would get (``0o666`` minus the umask), not the
``0o600`` of :func:`tempfile.mkstemp`.

:class:`RunLock` is held for a run's whole life (``RUN/.snnjax.lock``, an
exclusive ``flock``): a second run into the same directory fails at once with
a clear error. The kernel drops the lock when its process dies, so a lock file
left by a killed run is stale and taken over silently.

:func:`check_output_dir` and :func:`check_output_file` turn the ways an output
path can be unusable (an existing file where a directory is wanted, a path
below a file, a read-only file system) into one-line
:class:`~snnjax.errors.OutputError` messages before any work starts.
"""

from __future__ import annotations

import errno
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import SnnjaxError

#: Name of the lock file inside a run directory.
LOCK_NAME = ".snnjax.lock"
#: Files whose presence makes a directory the output of a (possibly interrupted) run.
RUN_MARKERS = ("config.json", "results.json", "checkpoint.npz")


class OutputError(SnnjaxError):
    """An output path that cannot be written, or a run directory that is in use or holds another run."""


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort)."""
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


def atomic_write(path: str | Path, write: Callable[[IO[Any]], None], *, binary: bool = True) -> Path:
    """Write ``path`` atomically: ``write(fh)`` into a temporary file, fsync, rename.

    On any failure (e.g. ``ENOSPC``) the temporary file is removed and the
    exception propagates; whatever was under ``path`` before is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _umask_mode())
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def describe_os_error(exc: OSError, what: str) -> str:
    """One line for an :class:`OSError` met while writing ``what``."""
    reason = exc.strerror or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) not in what else ""
    hint = {
        errno.ENOSPC: "free some space",
        errno.EDQUOT: "free some space",
        errno.EROFS: "choose a writable location",
        errno.EACCES: "choose a location you may write to",
        errno.EPERM: "choose a location you may write to",
        errno.ENOTDIR: "a part of the path is a file, not a directory",
        errno.EISDIR: "give a file name, not a directory",
        errno.EEXIST: "choose another path",
    }.get(exc.errno or -1, "check the path")
    return f"cannot write {what}: {reason}{where}; {hint}"


def _blocking_file(path: Path) -> Path | None:
    """The first existing non-directory among ``path``'s ancestors (``path`` included), or ``None``."""
    for p in [path, *path.parents]:
        if p.exists():
            return None if p.is_dir() else p
    return None


def check_output_dir(path: str | Path, what: str = "the output directory") -> None:
    """Raise :class:`OutputError` unless ``path`` is, or can be created as, a writable directory.

    Creates nothing.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is an existing file, not a directory; give a directory path")
    blocker = _blocking_file(path)
    if blocker is not None:
        raise OutputError(f"{what} {str(path)!r} lies below {str(blocker)!r}, which is a file, not a directory")
    existing = next(p for p in [path, *path.parents] if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {str(path)!r} cannot be written: {str(existing)!r} is not writable")


def check_output_file(path: str | Path, what: str = "the output file") -> None:
    """Raise :class:`OutputError` unless ``path`` can be written as a file (it may exist). Creates nothing."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {str(path)!r} is a directory; give a file name")
    check_output_dir(path.parent, f"the directory of {what}")


def holds_run(path: Path) -> list[str]:
    """The run files (config.json, results.json, checkpoint.npz) in ``path``."""
    return [m for m in RUN_MARKERS if (path / m).exists()]


class RunLock:
    """An exclusive lock on a run directory, held from :meth:`acquire` to :meth:`release`.

    Raises :class:`OutputError` from :meth:`acquire` when another live process
    holds it (its pid and host are named) or the directory cannot be written.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(describe_os_error(exc, f"the run directory {str(self.run_dir)!r}")) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:  # released and unlinked meanwhile: retry
                os.close(fd)
                return self.acquire()
        except FileNotFoundError:
            os.close(fd)
            return self.acquire()
        except OSError as exc:
            try:
                holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            finally:
                os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise OutputError(f"{str(self.run_dir)!r} is in use by another snnjax run ({holder}); wait for it "
                                  f"to finish, or give another --out") from exc
            raise OutputError(describe_os_error(exc, f"the lock of {str(self.run_dir)!r}")) from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except OSError:
            pass  # the lock itself is what matters
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
