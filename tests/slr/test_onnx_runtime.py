"""The student exported to ONNX and run on ONNX Runtime: the same log-probs, WER and glosses as in torch."""

import json
import os

import onnx
import pytest
import torch

from slr.cli import main
from slr.evaluate import evaluate_checkpoint, inference_model, load_model
from slr.onnx_runtime import SOURCE_KEY, OnnxStudent, _require, cached_export, recorded_source, sha256


@pytest.fixture(scope="module")
def exported(trained):
    """The trained checkpoint's export beside it (one export for the module)."""
    _, _, _, model = load_model(trained)
    path = cached_export(trained, model)
    assert path == trained.with_suffix(".onnx") and path.is_file()
    return path


def test_onnx_runtime_gives_torch_log_probs_at_every_length(trained, exported):
    _, _, features, model = load_model(trained)
    runner = OnnxStudent(exported, threads=1)
    assert runner.metadata[SOURCE_KEY] == sha256(trained)
    lengths = torch.tensor([61, 2, 30])  # dynamic frames: not multiples of 4, and the shortest the export takes
    x = torch.randn(3, 61, 543, 3) * 0.3
    with torch.no_grad():
        feats = features(x, None, torch.arange(61)[None] < lengths[:, None])
        ref, out = model(feats, lengths), runner(feats, lengths)
    assert out.shape == ref.shape and out.dtype == torch.float32  # [T, B, V]
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(out[:n, b], ref[:n, b], atol=1e-4), (n, (out[:n, b] - ref[:n, b]).abs().max())
        assert not out[n:, b].any()  # padding frames: 0, never read


def test_eval_and_decode_on_onnx_match_torch_and_reuse_the_export(trained, exported, shared_data, capsys):
    made = exported.stat().st_mtime_ns
    torch_wer = evaluate_checkpoint(trained, None, "dev")
    assert main(["eval", "--checkpoint", str(trained), "--runtime", "onnx", "--json"]) == 0
    onnx_result = json.loads(capsys.readouterr().out)
    assert onnx_result["runtime"] == "onnx"
    assert abs(onnx_result["wer"] - torch_wer["wer"]) <= 0.01, (onnx_result["wer"], torch_wer["wer"])
    pose = str(shared_data / "pose" / "example.pose")
    glosses = {}
    for runtime in ("torch", "onnx"):
        assert main(["decode", "--checkpoint", str(trained), "--runtime", runtime, "--json", pose]) == 0
        glosses[runtime] = [g["gloss"] for g in json.loads(capsys.readouterr().out)["glosses"]]
    assert glosses["onnx"] == glosses["torch"]
    assert exported.stat().st_mtime_ns == made  # the checkpoint did not change: its export was reused


def test_an_export_of_another_checkpoint_or_a_damaged_file_is_not_reused(trained, exported, tmp_path):
    assert recorded_source(exported) == sha256(trained)
    other = onnx.load(str(exported))
    next(p for p in other.metadata_props if p.key == SOURCE_KEY).value = "0" * 64  # made from another checkpoint
    onnx.save(other, str(tmp_path / "other.onnx"))
    assert recorded_source(tmp_path / "other.onnx") == "0" * 64
    (tmp_path / "damaged.onnx").write_bytes(b"\x08\x07not a protobuf")
    assert recorded_source(tmp_path / "damaged.onnx") is None
    assert recorded_source(tmp_path / "missing.onnx") is None


def test_a_damaged_model_file_is_named(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"bad\.onnx: not a usable ONNX model"):
        OnnxStudent(bad)


def test_onnx_runs_fp32_only_and_says_so(trained, capsys):
    _, _, _, model = load_model(trained)
    with pytest.raises(ValueError, match=r"runtime onnx runs the model in fp32 only \(precision 'int8'"):
        inference_model(trained, model, "int8", "onnx")
    with pytest.raises(ValueError, match=r"runtime 'tensorrt': must be one of torch, onnx"):
        inference_model(trained, model, "fp32", "tensorrt")
    assert main(["decode", "--checkpoint", str(trained), "--runtime", "onnx", "--precision", "bf16", "x.pose"]) != 0
    assert "fp32 only" in capsys.readouterr().err


def test_a_missing_extra_names_the_install_command():
    with pytest.raises(RuntimeError, match=r"pip install 'slr-tune\[onnx\]'"):
        _require("onnxruntime_that_is_not_installed")


def test_read_only_checkpoint_folders_export_to_the_temporary_folder(trained, exported, tmp_path, monkeypatch):
    # a read-only folder, as a shared model store would be (root ignores permission bits, so os.access decides)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(trained.parent) else real(p, mode))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    target = tmp_path / f"slr-{sha256(trained)[:16]}.onnx"
    target.write_bytes(exported.read_bytes())  # as if exported before: reused, not exported again
    _, _, _, model = load_model(trained)
    assert cached_export(trained, model) == target


def test_the_vac_baseline_exports_and_runs_at_its_quarter_rate(tmp_path):
    """model.arch: vac on ONNX Runtime: the same log-probs as torch at every length, its T/4 rule read from the
    export's metadata."""
    from slr.config import FeaturesConfig, ModelConfig, VacConfig
    from slr.features import FeaturePipeline
    from slr.model import build_model
    from slr.onnx_runtime import ARCH_KEY, export
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="vac", vac=VacConfig(width=32, hidden_dim=16)),
                        FeaturePipeline(FeaturesConfig()).spans, 7).eval()
    runner = OnnxStudent(export(model, tmp_path / "vac.onnx"), threads=1)
    assert runner.metadata[ARCH_KEY] == "vac"
    lengths = torch.tensor([61, 16, 30])  # 16: the fewest frames with one output frame
    x = torch.randn(3, 61, 6516)
    with torch.no_grad():
        ref, out = model(x, lengths), runner(x, lengths)
    assert out.shape == ref.shape and runner.output_lengths(lengths).tolist() == [12, 1, 4]
    for b, n in enumerate(runner.output_lengths(lengths).tolist()):
        assert torch.allclose(out[:n, b], ref[:n, b], atol=1e-4), (n, (out[:n, b] - ref[:n, b]).abs().max())


def test_a_multi_layer_lstm_is_refused_naming_the_key(tmp_path):
    """torch.export fixes a multi-layer LSTM to the example's length: refused before any file is written."""
    from slr.config import FeaturesConfig, ModelConfig
    from slr.features import FeaturePipeline
    from slr.model import build_model
    from slr.onnx_runtime import export
    model = build_model(ModelConfig(lstm_layers=2), FeaturePipeline(FeaturesConfig()).spans, 7).eval()
    with pytest.raises(RuntimeError, match="model.lstm_layers=2"):
        export(model, tmp_path / "deep.onnx")
    assert not (tmp_path / "deep.onnx").exists()


@pytest.mark.parametrize("changes,stride", [({"upsample": False}, 4), ({"upsample_factor": 2}, 2)])
def test_a_strided_student_exports_and_runs_at_its_rate(tmp_path, changes, stride):
    """model.upsample: false (T/4) and upsample_factor 2 (T/2) on ONNX Runtime: the same log-probs as torch at
    every length, ceil(T/stride) frames, the stride read from the export's metadata."""
    from slr.config import FeaturesConfig, ModelConfig
    from slr.features import FeaturePipeline
    from slr.model import build_model
    from slr.onnx_runtime import STRIDE_KEY, export
    torch.manual_seed(0)
    model = build_model(ModelConfig(num_blocks=2, hidden_dim=16, **changes),
                        FeaturePipeline(FeaturesConfig()).spans, 7).eval()
    runner = OnnxStudent(export(model, tmp_path / "strided.onnx"), threads=1)
    assert runner.metadata[STRIDE_KEY] == str(stride) and runner.input_frames(3) == 2 * stride + 1
    lengths = torch.tensor([61, 1, 30])
    x = torch.randn(3, 61, 6516)
    with torch.no_grad():
        ref, out = model(x, lengths), runner(x, lengths)
    assert out.shape == ref.shape and runner.output_lengths(lengths).tolist() == [-(-n // stride) for n in (61, 1, 30)]
    for b, n in enumerate(runner.output_lengths(lengths).tolist()):
        assert torch.allclose(out[:n, b], ref[:n, b], atol=1e-4), (n, (out[:n, b] - ref[:n, b]).abs().max())
