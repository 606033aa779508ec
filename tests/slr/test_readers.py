"""Landmark readers on the real MediaPipe Holistic recordings in shared/data/pose."""

from __future__ import annotations

import numpy as np
import pytest
from pose_format import Pose

from slr.corpus.readers import RecordingError, read_numpy, read_pose, read_recording, resample

HOLISTIC_FILES = ["0ff215ef4f1f111e217e2cefee0adc77.pose", "7bd6dd48722def3cf84258b96371cb1e.pose",
                  "84322c38ff23406f222641da30d0a49b.pose", "example.pose"]


def _file_mask(path) -> np.ndarray:
    """The file's own missing-point mask, in holistic543 order (face mesh = the first 468 face points)."""
    pose = Pose.read(path.read_bytes())
    missing = np.ma.getmaskarray(pose.body.data)[:, 0].any(-1)  # [T, points]
    parts, start = [], 0
    for comp in pose.header.components:
        keep = {"POSE_LANDMARKS": 33, "FACE_LANDMARKS": 468, "LEFT_HAND_LANDMARKS": 21,
                "RIGHT_HAND_LANDMARKS": 21}.get(comp.name)
        if keep:
            parts.append((comp.name, missing[:, start:start + keep]))
        start += len(comp.points)
    order = ["POSE_LANDMARKS", "FACE_LANDMARKS", "LEFT_HAND_LANDMARKS", "RIGHT_HAND_LANDMARKS"]
    return np.concatenate([dict(parts)[n] for n in order], axis=1)


@pytest.mark.parametrize("name", HOLISTIC_FILES)
def test_real_pose_files_map_to_holistic543_with_the_files_own_mask(shared_data, name):
    path = shared_data / "pose" / name
    rec = read_pose(path)
    assert rec.values.shape[1:] == (543, 3)
    missing = ~np.isfinite(rec.values).all(-1)
    np.testing.assert_array_equal(missing, _file_mask(path))
    assert 0 < missing.mean() < 0.2  # real data: some points missing, most present
    assert np.isfinite(rec.values[~missing]).all()


def test_478_point_face_drops_the_irises(shared_data):
    path = shared_data / "pose" / "84322c38ff23406f222641da30d0a49b.pose"
    pose = Pose.read(path.read_bytes())
    raw = np.ma.getdata(pose.body.data)[:, 0]
    rec = read_pose(path)
    # face mesh = component points 33..33+468; right hand comes after the 478 face points + left hand
    seen = np.isfinite(rec.values[:, 33:501]).all(-1)
    np.testing.assert_allclose(rec.values[:, 33:501][seen], raw[:, 33:501, :3][seen])
    rh = np.isfinite(rec.values[:, 522:543]).all(-1)
    np.testing.assert_allclose(rec.values[:, 522:543][rh], raw[:, 33 + 478 + 21: 33 + 478 + 42, :3][rh])


def test_reduced_layout_gets_an_error_naming_file_and_component(shared_data):
    path = shared_data / "pose" / "mediapipe.pose"
    with pytest.raises(RecordingError, match=r"mediapipe\.pose.*POSE_LANDMARKS has 8 points"):
        read_pose(path)


def test_truncated_pose_file_names_the_file(shared_data, tmp_path):
    bad = tmp_path / "cut.pose"
    bad.write_bytes((shared_data / "pose" / "example.pose").read_bytes()[:5000])
    with pytest.raises(RecordingError, match="cut.pose"):
        read_pose(bad)


def test_other_frame_rates_are_resampled_to_the_corpus_rate(shared_data):
    path = shared_data / "pose" / "0ff215ef4f1f111e217e2cefee0adc77.pose"  # 29.89 fps, 121 frames
    native = read_pose(path)
    rec = read_recording(path, fps=25.0)
    assert rec.fps == 25.0
    assert rec.frames == round(121 * 25.0 / native.fps)
    assert rec.values[0].tobytes() == native.values[0].tobytes()  # frame 0 lands exactly on frame 0


def test_resample_interpolates_and_keeps_missing_points_missing():
    v = np.zeros((4, 1, 3), np.float32)
    v[:, 0, 0] = [0, 1, 2, 3]
    v[2, 0, 1] = np.nan
    out = resample(v, 2.0, 4.0)  # twice the rate
    assert out.shape == (8, 1, 3)
    np.testing.assert_allclose(out[:3, 0, 0], [0, 0.5, 1])
    assert np.isnan(out[3, 0, 1]) and np.isnan(out[4, 0, 1])  # touches frame 2 -> missing
    assert np.isfinite(out[2, 0, 1])


def test_numpy_landmarks_and_features(tmp_path):
    lm = np.random.default_rng(0).normal(size=(10, 543, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", lm)
    np.testing.assert_array_equal(read_numpy(tmp_path / "a.npy").values, lm)
    np.savez(tmp_path / "b.npz", features=np.ones((7, 6516)), fps=np.float32(50.0))
    rec = read_numpy(tmp_path / "b.npz", feature_dim=6516)
    assert rec.values.shape == (7, 6516) and rec.fps == 50.0 and not rec.is_landmarks
    with pytest.raises(RecordingError, match=r"b\.npz: array shape \[7, 6516\]"):
        read_numpy(tmp_path / "b.npz")  # features, but no layout declared


def test_corrupt_numpy_names_the_file(tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(RecordingError, match="bad.npy"):
        read_numpy(tmp_path / "bad.npy")
    np.save(tmp_path / "strings.npy", np.array(["a", "b"]))
    with pytest.raises(RecordingError, match="strings.npy.*not numeric"):
        read_numpy(tmp_path / "strings.npy")
