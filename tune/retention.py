"""Checkpoint retention that a resume can never outrun: keep-until-saved.

Ray's own retention (``CheckpointConfig(num_to_keep=K)``) deletes a trial's previous checkpoint the moment a
new one is registered, while the experiment state on storage -- what ``Tuner.restore`` reads -- still names it
until the next state save (up to ``TUNE_GLOBAL_CHECKPOINT_S`` later, and an upload may be in flight). A driver
killed in that window resumes a trial from a checkpoint that "does not exist on storage anymore".

So Ray keeps every checkpoint (``num_to_keep=None``) and this callback deletes one only when it is neither the
trial's best nor its latest in memory, *and* the newest experiment state on storage already names a later
checkpoint of that trial as the one to restore from. A state file on storage only ever moves forward, so once
it has passed a checkpoint, no restore can ask for it again. Deleted entries leave the trial's checkpoint list,
so the saved state does not grow by one entry per epoch.

Each time it reads the saved state it also copies every state file that is whole into ``.slr-state/``
(:mod:`tune.savedstate`), deleting only by what it copied: a state file cut short by a killed driver is put back
from that copy before a resume, and the copy never names a deleted checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ray.tune import Callback

from tune import savedstate

log = logging.getLogger(__name__)


def _index(path: str) -> int:
    """``.../checkpoint_000007`` -> 7 (Ray numbers a trial's checkpoints in order)."""
    return int(path.rstrip("/").rsplit("_", 1)[-1])


def _newest_state(experiment_path: str) -> tuple[Any, str | None]:
    """(the storage's filesystem, the newest experiment state file on it, None before Ray's first save)."""
    from ray.train._internal.storage import get_fs_and_path
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint

    fs, _ = get_fs_and_path(experiment_path)
    return fs, _find_newest_experiment_checkpoint(experiment_path)


def saved_latest(experiment_path: str, trial_ids: set[str]) -> dict[str, str]:
    """trial id -> the checkpoint path the newest experiment state on storage would restore it from."""
    from ray.tune.utils.serialization import _loads_with_cloudpickle

    fs, newest = _newest_state(experiment_path)
    if newest is None:
        return {}
    with fs.open_input_stream(newest) as f:
        data = f.read()
    state = json.loads(data)  # a file cut short raises here: nothing is deleted by it
    savedstate.keep(experiment_path, newest.rsplit("/", 1)[-1], data)
    out = {}
    for trial_json, metadata_json in state.get("trial_data", []):
        trial_id = json.loads(trial_json).get("trial_id")
        if trial_id not in trial_ids:
            continue  # unpickle only the trials with something to delete
        latest = _loads_with_cloudpickle(metadata_json)["checkpoint_manager"].latest_checkpoint_result
        if latest is not None:
            out[trial_id] = latest.checkpoint.path
    return out


def saved_stamp(experiment_path: str) -> tuple[str, int, int] | None:
    """(file, modification time, size) of the newest experiment state on storage, None before the first save:
    a listing and a stat, what tells a new save from the one read last."""
    fs, newest = _newest_state(experiment_path)
    if newest is None:
        return None
    info = fs.get_file_info(newest)
    return newest, info.mtime_ns or 0, info.size or 0


class CheckpointRetention(Callback):
    """Keeps each trial's best checkpoint (by ``metric``, lower is better, as the sweep ranks) and its latest,
    and every checkpoint the saved experiment state may still restore from; deletes the rest.

    Every ``every_seconds`` it looks at the saved state, and reads it only when Ray has saved it since it last
    read it (Ray saves it every 10 s or more): an unchanged state names no checkpoint as passed that it did not
    name before, so there is nothing new to copy or delete. Reading and parsing a 1,000-trial state (twice: its
    copy, then its checkpoints) was 62 s of a 128-at-once sweep's driver when done every 2 s
    (docs/benchmarks.md, "128 at once")."""

    def __init__(self, experiment_path: str, every_seconds: float = 2.0):
        self.experiment_path = experiment_path
        self.every_seconds = every_seconds
        self._last = float("-inf")
        self._read: tuple[str, int, int] | None = None  # saved_stamp of the state last read whole
        self.reads = 0  # how many times it has read the saved state (copied it, and read it when it could delete)

    def on_step_end(self, iteration, trials, **info):  # noqa: ANN001
        if time.monotonic() - self._last >= self.every_seconds:
            self._last = time.monotonic()
            self.look(trials)

    def on_experiment_end(self, trials, **info):  # noqa: ANN001 -- after Ray's final state save
        self.look(trials, always=True)

    def look(self, trials: list[Any], always: bool = False) -> None:
        """Copy the saved state and delete what it has passed, if Ray saved the state since the last read."""
        try:
            stamp = saved_stamp(self.experiment_path)
        except Exception as err:  # noqa: BLE001 -- storage briefly unlistable: keep everything, try later
            log.warning("checkpoint retention: cannot list the saved experiment state (%s)", err)
            return
        if stamp is not None and stamp == self._read and not always:
            return
        self.reads += 1
        savedstate.keep_all(self.experiment_path)
        if self.prune(trials) is not None:
            self._read = stamp

    def prune(self, trials: list[Any]) -> int | None:
        """Delete every checkpoint no restore can need; returns how many were deleted, None when the saved state
        could not be read."""
        candidates = {t.trial_id: (t, _superseded(t)) for t in trials}
        candidates = {k: v for k, v in candidates.items() if v[1]}
        if not candidates:
            return 0
        try:
            saved = saved_latest(self.experiment_path, set(candidates))
        except Exception as err:  # noqa: BLE001 -- storage briefly unreadable: keep everything, try later
            log.warning("checkpoint retention: cannot read the saved experiment state (%s); keeping checkpoints",
                        err)
            return None
        deleted = 0
        for trial_id, (trial, results) in candidates.items():
            if trial_id not in saved:
                continue  # the saved state does not know this trial's checkpoints yet
            passed = [r for r in results if _index(r.checkpoint.path) < _index(saved[trial_id])]
            for result in passed:
                _delete(result.checkpoint)
            if passed:
                manager = trial.run_metadata.checkpoint_manager
                manager._checkpoint_results = [r for r in manager._checkpoint_results if r not in passed]
                trial.run_metadata.invalidate_cache()
                deleted += len(passed)
        return deleted


def _superseded(trial) -> list[Any]:  # noqa: ANN001
    """The trial's registered checkpoints that are neither its best nor its latest."""
    manager = trial.run_metadata.checkpoint_manager
    keep = {id(manager.latest_checkpoint_result), id(manager.best_checkpoint_result)}
    return [r for r in manager._checkpoint_results if id(r) not in keep]


def _delete(checkpoint) -> None:  # noqa: ANN001
    from ray.train._internal.storage import _delete_fs_path, _exists_at_fs_path
    if _exists_at_fs_path(checkpoint.filesystem, checkpoint.path):
        _delete_fs_path(fs=checkpoint.filesystem, fs_path=checkpoint.path)
