"""Single-instance locks: one trader (or thinker, or hub) per data folder.

An OS advisory lock (``flock`` on POSIX, ``msvcrt.locking`` on Windows) rather than a pid file,
because the OS releases it when the holder dies, however it dies, so a crash never leaves a
stale lock behind. The lock file holds the holder's pid only for the message of whoever comes
second.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType

from pt_state import FIX_HINT, AlreadyRunningError, DataDirError

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl


_WIN_LOCK_OFFSET = 1 << 20  # lock a byte past the pid text so other processes can still read it


def _try_os_lock(fd: int) -> bool:
    """Take the OS lock without waiting; False if another process holds it."""
    try:
        if sys.platform == "win32":
            os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _os_unlock(fd: int) -> None:
    if sys.platform == "win32":
        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)


class SingleInstanceLock:
    """One process per (data folder, name), held for the process lifetime.

    The lock file is never deleted: removing it would let a second process lock a fresh file
    while the first still holds the old one.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (idempotent) or raise AlreadyRunningError naming the holder."""
        if self._fd is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DataDirError(
                f"cannot create lock file {self.path}: {exc.strerror or exc}. "
                f"Fix: check the data folder's permissions, or {FIX_HINT}."
            ) from exc
        if not _try_os_lock(fd):
            os.close(fd)
            raise AlreadyRunningError(
                f"another {self.path.stem} is already running for this data folder "
                f"(pid {self._holder_pid()}, lock {self.path}); "
                "stop it first or use a different --data-dir"
            )
        self._fd = fd
        self._write_pid(fd)

    def _write_pid(self, fd: int) -> None:
        """Record the holder's pid for the error message of whoever comes second."""
        if sys.platform != "win32":  # Windows keeps the file length: the lock byte lies beyond it
            os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)

    def _holder_pid(self) -> str:
        try:
            words = self.path.read_bytes()[:64].decode("ascii", "replace").split()
        except OSError:
            return "unknown"
        return words[0] if words and words[0].isdigit() else "unknown"

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            _os_unlock(fd)
        finally:
            os.close(fd)

    def __enter__(self) -> SingleInstanceLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
