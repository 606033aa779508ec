"""The one-driver lock with real processes: refused while held, named by status, taken over after a SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from tune.lock import DriverLock, SweepLocked, holder_of

HOLD = ("import sys, time; from tune.lock import DriverLock; DriverLock(sys.argv[1]).acquire(); print('held', "
        "flush=True); time.sleep(600)")


def test_a_held_lock_refuses_a_second_driver_and_a_killed_holders_lock_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert holder_of(tmp_path)["pid"] == holder.pid
        with pytest.raises(SweepLocked, match=f"pid {holder.pid}"):
            DriverLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert holder_of(tmp_path) is None  # the kernel released it with the process
    lock = DriverLock(tmp_path).acquire()
    try:
        assert lock.stale["pid"] == holder.pid  # the file still named the dead driver
        assert holder_of(tmp_path)["pid"] != holder.pid
    finally:
        lock.release()
    again = DriverLock(tmp_path).acquire()  # released cleanly: nothing stale
    assert again.stale is None
    again.release()


def test_a_status_probe_at_the_same_moment_does_not_refuse_a_driver(tmp_path):
    """`slr sweep status` takes a shared lock for a moment to see whether a driver holds it: a driver starting
    meanwhile waits that moment out (here a probe paused for 0.3 s) instead of reporting a driver that is not there."""
    import fcntl
    import os
    import threading
    DriverLock(tmp_path).acquire().release()
    fd = os.open(tmp_path / "driver.lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # the probe, caught mid-look
    threading.Timer(0.3, lambda: (fcntl.flock(fd, fcntl.LOCK_UN), os.close(fd))).start()
    lock = DriverLock(tmp_path).acquire()
    assert lock.stale is None
    lock.release()
