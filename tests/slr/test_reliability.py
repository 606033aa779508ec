"""Disk faults, read-only corpora, and fuzzing of the YAML config loader and the annotation parsers."""

from __future__ import annotations

import hashlib
import string

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slr import checkpoint
from slr.config import Config, ConfigError
from slr.corpus.annotations import AnnotationError, read_annotations
from slr.corpus.importer import import_corpus
from slr.train import Trainer


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_training_never_modifies_the_corpus(tiny_corpus, tmp_path):
    before = _digest(tiny_corpus)
    cfg = Config().override({"train.epochs": 1, "model.num_blocks": 1, "train.early_stopping_patience": 0})
    Trainer(cfg.override({"data.corpus": str(tiny_corpus)}), out=tmp_path / "run").fit()
    assert _digest(tiny_corpus) == before


def test_interrupted_checkpoint_write_keeps_the_last_good_one(tiny_corpus, tmp_path, monkeypatch):
    cfg = Config().override({"train.epochs": 2, "model.num_blocks": 1, "train.early_stopping_patience": 0})
    trainer = Trainer(cfg.override({"data.corpus": str(tiny_corpus)}), out=tmp_path)
    real_save = torch.save
    calls = {"n": 0}

    def dying_save(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # epoch 2: write half a file, then the process "dies"
            f.write(b"\x80\x02partial")
            raise OSError("No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(OSError, match="No space left"):
        trainer.fit()
    state = checkpoint.load(tmp_path / "last.pt")  # still the complete epoch-1 checkpoint
    assert state["epoch"] == 1
    assert not list(tmp_path.glob(".last.pt.*.tmp"))  # no partial file left behind


def test_importer_excludes_all_missing_and_nan_feature_samples(tmp_path):
    (tmp_path / "in").mkdir()
    good = np.random.default_rng(0).normal(size=(20, 543, 3)).astype(np.float32)
    np.save(tmp_path / "in" / "good.npy", good)
    np.save(tmp_path / "in" / "empty.npy", np.full((20, 543, 3), np.nan, np.float32))
    ann = tmp_path / "a.csv"
    ann.write_text("id,signer,split,glosses\ngood,s,train,A B\nempty,s,train,A\n")
    report = import_corpus([tmp_path / "in"], tmp_path / "out", [ann], workers=1)
    assert report.samples["train"] == 1
    assert report.excluded == [dict(id="empty", file=str(tmp_path / "in" / "empty.npy"),
                                    reason="every landmark is missing")]


# -- fuzzing: any input gives a result or a clean validation error ------------------------------------
yaml_text = st.text(alphabet=string.printable, max_size=200)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12))
keys = st.sampled_from(["data", "model", "train", "features", "decode", "batch_size", "learning_rate", "dropout",
                        "num_blocks", "lstm_layers", "epochs", "layout", "temporal", "x"])
trees = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(keys, inner, max_size=4)), max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=yaml_text)
def test_config_loader_fuzz_text(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    try:
        Config.load(path)
    except ConfigError as err:
        assert str(err)  # a clean, named validation error


@settings(max_examples=300, deadline=None)
@given(tree=st.dictionaries(keys, trees, max_size=4))
def test_config_from_dict_fuzz_structures(tree):
    try:
        cfg = Config.from_dict(tree)
    except ConfigError as err:
        assert err.key and err.rule
    else:
        assert Config.from_dict(cfg.to_dict()) == cfg  # whatever is accepted round-trips


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.sampled_from(["id,signer,split,glosses", "id|folder|signer|annotation",
                               "name|video|start|end|speaker|orth|translation", "", "junk"]),
       body=st.text(alphabet=string.printable + "ÄÖÜß", max_size=300),
       suffix=st.sampled_from([".csv", ".train.corpus.csv", "-dev.stm"]))
def test_annotation_parsers_fuzz(tmp_path, header, body, suffix):
    path = tmp_path / f"a{suffix}"
    path.write_text(header + "\n" + body, encoding="utf-8")
    try:
        rows = read_annotations(path)
    except AnnotationError as err:
        assert str(path) in str(err)  # names the file (and the line where there is one)
    else:
        assert all(r.glosses and r.id for r in rows)


def test_a_files_digest_follows_its_content_at_the_same_path(tmp_path):
    """A checkpoint rewritten at the same path (a retrained teacher, a newer best.pt) gets its new digest: the
    digest is remembered per file state, not per path."""
    import hashlib
    from slr.checkpoint import sha256
    path = tmp_path / "best.pt"
    for content in (b"first", b"second, longer", b"third!"):
        path.write_bytes(content)
        assert sha256(path) == sha256(str(path)) == hashlib.sha256(content).hexdigest()
