"""The saved experiment state a ``Tuner.restore`` reads, kept whole across a killed driver.

Ray writes its state files (``tuner.pkl``, ``experiment_state-*.json``, the searcher's ``*-state-*``) into a
staging folder and copies them onto storage at every state save; a resumed driver first copies every one of them
back down and then up again. On a local storage path that copy truncates the file and rewrites it, so a driver
killed in the middle leaves an empty or half-written file, and the next ``Tuner.restore`` fails on it ("EOFError:
Ran out of input", seen for ``tuner.pkl``). Object stores (S3) replace an object whole, so this is local-only.

So every state file that parses is copied, whole and atomically, into ``.slr-state/`` next to it (the sweep does
it for ``tuner.pkl`` right after Ray writes it, :class:`tune.retention.CheckpointRetention` for the rest every
time it reads the saved state), and :func:`repair` puts the copy back before a restore when the file itself does
not parse. A copy is never newer than what its file held, and retention deletes checkpoints only by what it read
(and copied), so a repaired state never names a deleted checkpoint. A broken file with no copy was never read by
retention: removing it lets Ray restore from the state before it. That leaves one window open: a resumed driver's
own new state files, killed in their first copy-up before retention's next pass (every 2 s) copied them; Ray then
restores from the state before them, and a searcher file removed that way can leave the resumed sweep
interrupted once more (the next ``--resume`` goes on).
"""

from __future__ import annotations

import json
import logging
import os
import pickletools
from pathlib import Path

log = logging.getLogger(__name__)

GOOD = ".slr-state"


def _local(experiment_path: str) -> Path | None:
    """The experiment folder when it is on a local file system, else None (object stores replace files whole)."""
    if "://" in experiment_path and not experiment_path.startswith("file://"):
        return None
    return Path(experiment_path.removeprefix("file://"))


def whole(data: bytes) -> bool:
    """Whether ``data`` is a complete state file: JSON that parses, or a pickle stream that runs to its STOP
    opcode (walked without building any object, so no class needs importing). The name does not tell which:
    Ray pickles into ``search_gen_state-*.json``, and a searcher may save JSON into its ``*.pkl``."""
    try:
        json.loads(data)
        return True
    except ValueError:
        pass
    try:
        ops = list(pickletools.genops(data))
    except Exception:  # noqa: BLE001 -- any parse error means a cut file
        return False
    return bool(ops) and ops[-1][0].name == "STOP"


def _state_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".json", ".pkl"))


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def keep(experiment_path: str, name: str, data: bytes) -> None:
    """Copy one state file's bytes into ``.slr-state/`` if they are whole (and differ from the copy there)."""
    folder = _local(experiment_path)
    if folder is None or not whole(data):
        return
    good = folder / GOOD / name
    if good.exists() and good.read_bytes() == data:
        return
    good.parent.mkdir(exist_ok=True)
    _write_atomically(good, data)


def keep_all(experiment_path: str) -> None:
    """Copy every whole state file of the experiment (a sweep calls this once Ray has written ``tuner.pkl``)."""
    folder = _local(experiment_path)
    if folder is None or not folder.is_dir():
        return
    for path in _state_files(folder):
        keep(experiment_path, path.name, path.read_bytes())


def repair(experiment_path: str) -> list[str]:
    """Before a restore: put back the last whole copy of every state file that does not parse (or remove it when
    it has none). Returns the names of the files mended. Raises when ``tuner.pkl`` is broken with no copy to put
    back (a sweep saved before this existed): nothing else can say what the sweep was."""
    folder = _local(experiment_path)
    if folder is None or not folder.is_dir():
        return []
    mended = []
    for path in _state_files(folder):
        if whole(path.read_bytes()):
            continue
        good = folder / GOOD / path.name
        if good.exists():
            _write_atomically(path, good.read_bytes())
            log.warning("sweep state: %s was cut short (a driver killed while saving it); restored its last whole "
                        "copy", path)
        elif path.name == "tuner.pkl":
            raise RuntimeError(f"{path} is cut short (a driver was killed while saving it) and has no saved copy "
                               f"in {folder / GOOD}: this sweep cannot be resumed")
        else:
            path.unlink()
            log.warning("sweep state: %s was cut short and never read back whole; removed, so the restore uses "
                        "the state saved before it", path)
        mended.append(path.name)
    return mended
