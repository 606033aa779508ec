"""`slr data import` and `slr decode` on real recordings, NumPy round trips and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slr.cli import main
from slr.corpus import Corpus
from slr.corpus.importer import import_corpus
from slr.corpus.readers import read_recording
from slr.features import FeaturePipeline
from slr.config import FeaturesConfig

GOOD = {"0ff215ef4f1f111e217e2cefee0adc77": "train", "7bd6dd48722def3cf84258b96371cb1e": "train",
        "84322c38ff23406f222641da30d0a49b": "dev", "example": "test"}


@pytest.fixture
def pose_inputs(shared_data, tmp_path):
    """The shared recordings plus a csv annotating them (and one sample with no recording)."""
    ann = tmp_path / "ann.csv"
    rows = [f"{sid},signer{i % 2},{split},HELLO WORLD {'RAIN' if split == 'test' else 'SUN'}"
            for i, (sid, split) in enumerate(GOOD.items())]
    rows += ["mediapipe,signer9,train,HELLO", "ghost,signer9,train,HELLO"]
    ann.write_text("id,signer,split,glosses\n" + "\n".join(rows) + "\n")
    return shared_data / "pose", ann


def test_import_real_pose_recordings(pose_inputs, tmp_path, capsys):
    pose_dir, ann = pose_inputs
    out = tmp_path / "corpus"
    code = main(["data", "import", "--format", "pose", "--annotations", str(ann), "--out", str(out), str(pose_dir)])
    captured = capsys.readouterr()
    assert code == 1  # one bad input ...
    assert "mediapipe.pose" in captured.err and "POSE_LANDMARKS has 8 points" in captured.err
    corpus = Corpus(out)  # ... but the good ones are imported
    assert sorted(s.id for s in corpus.samples) == sorted(GOOD)
    report = json.loads((out / "import_report.json").read_text())
    assert report["samples"] == {"train": 2, "dev": 1, "test": 1}
    assert report["without_landmarks"] == ["ghost"]
    assert report["unseen_glosses"]["test"] == ["RAIN"]
    assert [e["id"] for e in report["excluded"]] == ["mediapipe"]
    features = FeaturePipeline(FeaturesConfig(standardize=False))
    for s in corpus.samples:
        xyz, mask = corpus.load(s)
        rec = read_recording(pose_dir / f"{s.id}.pose", fps=25.0)
        assert s.frames == rec.frames
        np.testing.assert_array_equal(mask.astype(bool), np.isfinite(rec.values).all(-1))  # exactly the file's mask
        x = torch.as_tensor(xyz.astype(np.float32))[None]
        f = features(x, torch.as_tensor(mask.astype(bool))[None], torch.ones(1, s.frames, dtype=torch.bool))
        assert f.shape == (1, s.frames, 6516) and torch.isfinite(f).all()


def test_unannotated_recordings_and_short_samples_are_reported(pose_inputs, tmp_path):
    pose_dir, _ = pose_inputs
    ann = tmp_path / "a.csv"
    long = " ".join(f"G{i}" for i in range(60))  # 84322c... has 47 frames: too short for 60 glosses
    ann.write_text("id,signer,split,glosses\nexample,s,train,A B\n7bd6dd48722def3cf84258b96371cb1e,s,dev,A\n"
                   f"84322c38ff23406f222641da30d0a49b,s,train,{long}\n")
    report = import_corpus([pose_dir], tmp_path / "c", [ann], workers=1)
    assert "0ff215ef4f1f111e217e2cefee0adc77" in report.without_annotation
    (short,) = [e for e in report.excluded if e["id"].startswith("84322")]
    assert "too short for CTC: 47 frames < 60" in short["reason"]


def _export_npy(corpus: Corpus, folder, features: bool = False):
    """Write every sample of a corpus as .npy (landmarks with NaN, or seed-layout features) + a csv."""
    folder.mkdir()
    pipe = FeaturePipeline(FeaturesConfig(standardize=False))
    lines = ["id,signer,split,glosses"]
    for s in corpus.samples:
        xyz, mask = corpus.load(s)
        lm = np.where(mask[..., None].astype(bool), xyz.astype(np.float32), np.nan)
        if features:
            x = torch.as_tensor(xyz.astype(np.float32))[None]
            lm = pipe(x, torch.as_tensor(mask.astype(bool))[None], torch.ones(1, s.frames, dtype=torch.bool))[0]
            lm = lm.numpy()
        np.save(folder / f"{s.id}.npy", lm)
        lines.append(f"{s.id},{s.signer},{s.split},{' '.join(s.glosses)}")
    (folder / "ann.csv").write_text("\n".join(lines) + "\n")


def test_numpy_round_trip_is_exact_and_order_independent_of_workers(tiny_corpus, tmp_path):
    src = Corpus(tiny_corpus)
    _export_npy(src, tmp_path / "npy")
    one = import_corpus([tmp_path / "npy"], tmp_path / "w1", [tmp_path / "npy" / "ann.csv"], workers=1)
    two = import_corpus([tmp_path / "npy"], tmp_path / "w2", [tmp_path / "npy" / "ann.csv"], workers=2)
    assert one.samples == two.samples == {"train": 64, "dev": 16, "test": 16}
    a, b = Corpus(tmp_path / "w1"), Corpus(tmp_path / "w2")
    assert (tmp_path / "w1" / "landmarks.arrow").read_bytes() == (tmp_path / "w2" / "landmarks.arrow").read_bytes()
    assert a.vocab.to_list() == src.vocab.to_list()
    for s in src.samples[:10]:
        (t,) = [x for x in a.samples if x.id == s.id]
        np.testing.assert_array_equal(a.load(t)[0], src.load(s)[0])
        np.testing.assert_array_equal(a.load(t)[1], src.load(s)[1])
    assert b.samples[0].id == a.samples[0].id


def test_precomputed_seed_features_train_directly(tiny_corpus, tmp_path, capsys):
    _export_npy(Corpus(tiny_corpus), tmp_path / "feat", features=True)
    out = tmp_path / "fc"
    assert main(["data", "import", "--format", "npy", "--feature-layout", "seed6516", "--annotations",
                 str(tmp_path / "feat" / "ann.csv"), "--out", str(out), str(tmp_path / "feat")]) == 0
    assert Corpus(out).layout == "precomputed"
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(out), "--out", str(run), "--quiet", "train.epochs=1",
                 "model.num_blocks=1"]) == 0
    assert "layout: precomputed" in (run / "config.yaml").read_text()


def test_import_without_any_good_input_fails_clearly(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.npy").write_bytes(b"not numpy")
    ann = tmp_path / "ann.csv"
    ann.write_text("id,signer,split,glosses\na,s,train,X\n")
    with pytest.raises(ValueError, match=r"nothing imported.*a\.npy"):
        import_corpus([tmp_path / "in"], tmp_path / "out", [ann])


def test_decode_real_recordings(tiny_corpus, shared_data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--corpus", str(tiny_corpus), "--out", str(run), "--quiet", "train.epochs=2",
                 "model.num_blocks=1"]) == 0
    capsys.readouterr()
    pose = shared_data / "pose"
    files = [pose / "example.pose", pose / "0ff215ef4f1f111e217e2cefee0adc77.pose", pose / "mediapipe.pose"]
    for beam in ("0", "4"):
        code = main(["decode", "--checkpoint", str(run / "best.pt"), "--beam", beam, "--json", *map(str, files)])
        captured = capsys.readouterr()
        assert code == 1 and "mediapipe.pose" in captured.err  # the reduced layout is refused by name
        results = [json.loads(line) for line in captured.out.splitlines()]
        assert [r["input"] for r in results] == list(map(str, files[:2]))
        assert results[1]["frames"] == 101  # 121 frames at 29.89 fps -> 25 fps
        for r in results:
            for g in r["glosses"]:
                assert 0 <= g["start"] < g["end"] <= r["frames"] and g["gloss"] != "<blank>"


@pytest.mark.slow
def test_real_phoenix2014_stm_annotations_import(shared_data, tmp_path):
    """All three real PHOENIX-2014 ground-truth files, with small landmark files generated for their ids."""
    from slr.corpus.annotations import read_annotations
    stm = [shared_data / "phoenix2014" / f"phoenix2014-groundtruth-{s}.stm" for s in ("train", "dev", "test")]
    rows = {p: read_annotations(p) for p in stm}
    lm = tmp_path / "landmarks"
    lm.mkdir()
    rng = np.random.default_rng(0)
    for anns in rows.values():
        for a in anns:  # just enough frames for CTC: one per gloss plus one per adjacent repeat, plus one
            frames = len(a.glosses) + sum(x == y for x, y in zip(a.glosses, a.glosses[1:])) + 1
            np.save(lm / f"{a.id}.npy", rng.normal(0, 0.3, (frames, 543, 3)).astype(np.float16))
    out = tmp_path / "phoenix"
    assert main(["data", "import", "--format", "phoenix2014", "--out", str(out), str(lm),
                 *(x for p in stm for x in ("--annotations", str(p)))]) == 0
    corpus = Corpus(out)
    train = {g for a in rows[stm[0]] for g in a.glosses}
    dev = {g for a in rows[stm[1]] for g in a.glosses}
    words = corpus.vocab.to_list()
    assert words[:2] == ["<blank>", "<unk>"] and set(words[2:]) == train and len(words) == len(train) + 2
    report = json.loads((out / "import_report.json").read_text())
    assert report["samples"] == {s: len(rows[p]) for s, p in zip(("train", "dev", "test"), stm)}
    assert report["unseen_glosses"]["dev"] == sorted(dev - train) and report["unseen_glosses"]["dev"]
    assert report["vocab_size"] == len(train) + 2 and not report["excluded"]
