"""The single writer's lock: an flock(2) on `DIR/lock`. The kernel releases it when the holder dies, so a lock left
by a killed process never blocks the next writer (its holder line is kept as `stale_holder`). Readers never take
it."""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from pathlib import Path

from dedup.errors import IndexLocked, IndexProblem


class LockLostError(IndexLocked):
    """DIR/lock was removed or replaced while a writer held it: another writer may have come in."""


def _holder_line(fd: int) -> str | None:
    return os.pread(fd, 4096, 0).decode("utf-8", "replace").split("\n", 1)[0].strip() or None


class WriterLock:
    """Held from construction to `release`; raises `IndexLocked` when another writer holds the index."""

    def __init__(self, root: Path):
        self.root = root
        self._fd: int | None = None
        self._tables_fd: int | None = None
        path = root / "lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise IndexProblem(f"{root}: cannot open lock file: {e.strerror}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_line(fd) or "unknown process"
            os.close(fd)
            raise IndexLocked(f"{root}: index is locked by another writer ({holder})") from None
        except OSError as e:
            os.close(fd)
            raise IndexProblem(f"{root}: cannot lock the index: {e.strerror}") from e
        # A holder line left in the file means its writer died without closing: flock was released by the kernel.
        self.stale_holder = _holder_line(fd)
        info = (f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                f"{' '.join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv[:3]))}\n"
                ).encode("utf-8", "backslashreplace")
        os.pwrite(fd, info, 0)  # one write, then cut the tail: a failing writer reads a whole first line
        os.ftruncate(fd, len(info))
        self._fd = fd
        # A second flock, on the tables directory, which no one removes by mistake as they may `rm DIR/lock`: with
        # the lock file gone a second writer got in and its cleanup deleted the first one's staged files. Here it is
        # refused before it deletes anything, and the first writer aborts at commit (`check`).
        tables = root / "tables"
        try:
            tables.mkdir(exist_ok=True)
            tfd = os.open(tables, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            self.release()
            raise IndexProblem(f"{root}: cannot open {tables}: {e.strerror}") from e
        try:
            fcntl.flock(tfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(tfd)
            self.release()
            raise IndexLocked(f"{root}: another writer is running although {path} was free (was the lock "
                              "file removed?); nothing was done") from None
        self._tables_fd = tfd

    def check(self) -> None:
        """Raise `LockLostError` unless DIR/lock is still the file this writer locked (same device and inode)."""
        held = os.fstat(self._fd) if self._fd is not None else None
        try:
            now = os.stat(self.root / "lock")
        except FileNotFoundError:
            now = None
        if held is None or now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            raise LockLostError(f"{self.root}: {self.root / 'lock'} was removed or replaced while this writer ran; "
                                "another writer may have started, so nothing was committed; run the command again")

    def release(self) -> None:
        if self._tables_fd is not None:
            os.close(self._tables_fd)  # releases its flock
            self._tables_fd = None
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
