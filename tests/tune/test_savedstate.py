"""State files cut short by a killed driver are mended from their last whole copy (tune.savedstate)."""

from __future__ import annotations

import json
import pickle

import pytest

from tune import savedstate


def _experiment(tmp_path):
    exp = tmp_path / "sweep"
    exp.mkdir()
    (exp / "tuner.pkl").write_bytes(pickle.dumps({"trainable": "train_trial", "space": list(range(50))}))
    (exp / "experiment_state-2026-12-04_01-00-00.json").write_text(json.dumps({"trial_data": [["a", "b"]] * 20}))
    (exp / "searcher-state-2026-12-04_01-00-00.pkl").write_text(json.dumps({"study": "x"}))  # JSON in a .pkl
    (exp / "search_gen_state-2026-12-04_01-00-00.json").write_bytes(pickle.dumps({"counter": 3}))  # and back
    return exp


def test_a_cut_file_is_not_whole_and_a_full_one_is():
    data = pickle.dumps({"x": list(range(100))})
    text = json.dumps({"x": list(range(100))}).encode()
    assert savedstate.whole(data) and savedstate.whole(text)
    assert not savedstate.whole(b"")
    assert not savedstate.whole(data[: len(data) // 2])
    assert not savedstate.whole(data[:-1])  # everything but the STOP opcode
    assert not savedstate.whole(text[: len(text) // 2])


def test_repair_puts_back_the_last_whole_copy_of_every_cut_file(tmp_path):
    exp = _experiment(tmp_path)
    originals = {p.name: p.read_bytes() for p in exp.iterdir()}
    savedstate.keep_all(str(exp))
    assert {p.name for p in (exp / savedstate.GOOD).iterdir()} == set(originals)
    (exp / "tuner.pkl").write_bytes(b"")  # the copy-up was killed right after truncating
    state = exp / "experiment_state-2026-12-04_01-00-00.json"
    state.write_bytes(originals[state.name][:40])
    assert sorted(savedstate.repair(str(exp))) == sorted(["tuner.pkl", state.name])
    assert {p.name: p.read_bytes() for p in exp.iterdir() if p.is_file()} == originals
    assert savedstate.repair(str(exp)) == []  # nothing left to mend


def test_a_cut_copy_never_replaces_a_whole_one(tmp_path):
    exp = _experiment(tmp_path)
    savedstate.keep_all(str(exp))
    whole = (exp / "tuner.pkl").read_bytes()
    savedstate.keep(str(exp), "tuner.pkl", whole[:10])  # read while Ray was rewriting it
    assert (exp / savedstate.GOOD / "tuner.pkl").read_bytes() == whole


def test_a_cut_file_with_no_copy_is_removed_so_ray_restores_the_state_before_it(tmp_path):
    exp = _experiment(tmp_path)
    savedstate.keep_all(str(exp))
    newer = exp / "experiment_state-2026-12-04_02-00-00.json"  # a later driver's, never read back whole
    newer.write_text('{"trial_data": [')
    assert savedstate.repair(str(exp)) == [newer.name]
    assert not newer.exists() and (exp / "experiment_state-2026-12-04_01-00-00.json").exists()


def test_a_cut_tuner_pkl_with_no_copy_is_a_clear_error(tmp_path):
    exp = _experiment(tmp_path)
    (exp / "tuner.pkl").write_bytes(b"")
    with pytest.raises(RuntimeError, match=r"tuner\.pkl is cut short .* cannot be resumed"):
        savedstate.repair(str(exp))


def test_object_stores_are_left_alone(tmp_path):
    assert savedstate.repair("s3://bucket/sweeps/x") == []
    savedstate.keep_all("s3://bucket/sweeps/x")  # no local folder is made or read
    assert not (tmp_path / savedstate.GOOD).exists()
