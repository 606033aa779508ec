"""Checkpoint retention's reads of the saved experiment state (tune.retention); what it deletes, and that a resume
never misses a checkpoint it deleted, is tested by killing real sweeps (test_resume.py)."""

import json
import os

from tune.retention import CheckpointRetention
from tune.savedstate import GOOD


def test_retention_reads_the_saved_state_only_after_ray_saved_it_again(tmp_path):
    """Ray saves the experiment state every 10 s or more, retention looks every 2 s: a state file unchanged since
    its last read is not read (copied, parsed) again; a rewritten one is, and the experiment's end reads it always."""
    retention = CheckpointRetention(str(tmp_path), every_seconds=0.0)
    state = tmp_path / "experiment_state-2026-12-06_04-00-00.json"  # Ray's name for it (TuneController.CKPT_FILE_TMPL)
    state.write_text(json.dumps({"trial_data": [], "saved": 1}))
    retention.on_step_end(1, [])
    assert retention.reads == 1 and json.loads((tmp_path / GOOD / state.name).read_text())["saved"] == 1
    for step in range(2, 6):
        retention.on_step_end(step, [])
    assert retention.reads == 1  # nothing saved since

    state.write_text(json.dumps({"trial_data": [], "saved": 22}))  # Ray's next save rewrites the same file
    os.utime(state, ns=(state.stat().st_atime_ns, state.stat().st_mtime_ns + 1_000_000))
    retention.on_step_end(6, [])
    assert retention.reads == 2 and json.loads((tmp_path / GOOD / state.name).read_text())["saved"] == 22
    retention.on_step_end(7, [])
    assert retention.reads == 2
    retention.on_experiment_end([])
    assert retention.reads == 3
