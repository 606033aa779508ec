import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from slr.corpus import Corpus, CorpusError, CorpusWriter
from slr.layout import NUM_POINTS


def _write(tmp_path, n=3, frames=12):
    w = CorpusWriter(tmp_path / "c")
    rng = np.random.default_rng(0)
    for i in range(n):
        xyz = rng.random((frames + i, NUM_POINTS, 3)).astype(np.float32)
        xyz[2, 501:522] = np.nan  # a missed left hand
        w.add(f"s{i}", "S1", ["train", "dev", "test"][i % 3], ["A", "B"][: 1 + i % 2], xyz)
    return w.close(), rng


def test_round_trip_fp16_and_mask(tmp_path):
    root, _ = _write(tmp_path)
    c = Corpus(root)
    assert [s.id for s in c.samples] == ["s0", "s1", "s2"]
    xyz, mask = c.load(c.samples[1])
    assert xyz.dtype == np.float16 and xyz.shape == (13, NUM_POINTS, 3)
    assert mask.shape == (13, NUM_POINTS)
    assert not mask[2, 501:522].any() and mask[2, :501].all() and mask[3].all()
    assert np.isfinite(xyz).all() and (xyz[2, 501:522] == 0).all()  # stored as 0 + mask, never NaN


def test_load_is_a_zero_copy_memory_map_view(tmp_path):
    root, _ = _write(tmp_path)
    c = Corpus(root)
    xyz, _ = c.load(c.samples[0])
    assert not xyz.flags.owndata and not xyz.flags.writeable  # a view into the mapped file


def test_manifest_counts_and_vocab_from_train_only(tmp_path):
    root, _ = _write(tmp_path, n=3)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 1, "dev": 1, "test": 1}
    assert manifest["format_version"] == 1 and manifest["layout"] == "holistic543"
    assert Corpus(root).vocab.to_list() == ["<blank>", "<unk>", "A"]  # train's glosses only


def test_manifest_that_does_not_match_the_data_is_named(tmp_path):
    root, _ = _write(tmp_path)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["num_samples"] = 5
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CorpusError, match="samples.parquet.*3 samples.*says 5"):
        Corpus(root)


def test_truncated_arrow_file_is_named(tmp_path):
    root, _ = _write(tmp_path)
    data = (root / "landmarks.arrow").read_bytes()
    (root / "landmarks.arrow").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match="landmarks.arrow"):
        Corpus(root)


def test_corrupt_parquet_is_named(tmp_path):
    root, _ = _write(tmp_path)
    (root / "samples.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(CorpusError, match="samples.parquet"):
        Corpus(root)


def test_missing_directory_and_manifest(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        Corpus(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="manifest.json: missing"):
        Corpus(tmp_path / "empty")


def test_duplicate_ids_and_bad_splits_are_refused(tmp_path):
    w = CorpusWriter(tmp_path / "c")
    x = np.zeros((5, NUM_POINTS, 3), np.float32)
    w.add("a", "S", "train", ["A"], x)
    with pytest.raises(CorpusError, match="duplicate sample id 'a'"):
        w.add("a", "S", "train", ["A"], x)
    with pytest.raises(CorpusError, match="split 'val'"):
        w.add("b", "S", "val", ["A"], x)


def test_stats(tiny_corpus):
    s = Corpus(tiny_corpus).stats()
    assert s["samples"] == {"train": 64, "dev": 16, "test": 16}
    assert 0.005 < s["missing_point_fraction"] < 0.15
    assert s["vocab_size"] == len(Corpus(tiny_corpus).vocab)
    assert pq.read_table(tiny_corpus / "samples.parquet").num_rows == 96


def test_digest_names_the_content_not_the_folder(tmp_path):
    first, copy, other = (_write(tmp_path / name, n)[0] for name, n in (("a", 3), ("b", 3), ("c", 4)))
    assert Corpus(first).digest() == Corpus(copy).digest()  # the same corpus in another folder
    assert Corpus(first).digest() != Corpus(other).digest()
    assert len(Corpus(first).digest()) == 16
