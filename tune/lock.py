"""One driver per sweep: an exclusive lock on ``<sweep>/driver.lock`` held for the driver's whole run.

Two drivers on one sweep (a second ``slr sweep X --resume`` while X runs) would train the same trials twice, log
every epoch twice and overwrite each other's summary. The lock is ``flock(2)`` on a file in the sweep folder on the
driver's disk: the kernel releases it when the holder exits in any way (SIGKILL included), so a lock left by a
dead driver is stale by construction and the next driver takes it. The file names its holder (pid, host, start
time) for the refusal message and for ``slr sweep status``.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

LOCK = "driver.lock"


class SweepLocked(RuntimeError):
    """Another live driver holds the sweep."""


class DriverLock:
    def __init__(self, sweep_dir: Path):
        self.path = Path(sweep_dir) / LOCK
        self._fd: int | None = None
        self.stale: dict[str, Any] | None = None  # the previous holder's record, when it had died

    def acquire(self) -> DriverLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock(fd, fcntl.LOCK_EX, tries=20):  # ~1 s: `slr sweep status` holds a shared lock for a moment
            os.close(fd)
            holder = holder_of(self.path) or {}
            raise SweepLocked(
                f"sweep {self.path.parent.name} is being run by another driver (pid {holder.get('pid', '?')} on "
                f"{holder.get('host', '?')}, since {holder.get('since', '?')}): wait for it to end, or stop it "
                "(Ctrl-C) and resume with --resume") from None
        previous = _read(fd)
        self.stale = previous or None  # the file outlived its holder: the kernel had released the lock
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                  "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty file: nobody holds it
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DriverLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder_of(path: Path) -> dict[str, Any] | None:
    """The live driver holding the sweep's lock, or None (no lock file, nobody holds it, or its holder died)."""
    path = Path(path)
    if path.is_dir():
        path = path / LOCK
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        if not _lock(fd, fcntl.LOCK_SH):  # held exclusively: a driver is running
            return _read(fd) or {"pid": "?", "host": "?", "since": "?"}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _lock(fd: int, kind: int, tries: int = 1) -> bool:
    for attempt in range(tries):
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < tries:
                time.sleep(0.05)
    return False


def _read(fd: int) -> dict[str, Any]:
    raw = os.pread(fd, 4096, 0)
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {}
