"""Annotation parsers: the real PHOENIX-2014 .stm ground truth and the csv formats."""

from __future__ import annotations

import pytest

from slr.corpus.annotations import AnnotationError, detect_format, read_annotations


def test_real_phoenix2014_stm_files(shared_data):
    root = shared_data / "phoenix2014"
    for split in ("train", "dev", "test"):
        path = root / f"phoenix2014-groundtruth-{split}.stm"
        rows = read_annotations(path)
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        assert len(rows) == len(lines)
        assert {r.split for r in rows} == {split}
        first = lines[0].split()
        assert rows[0].id == first[0] and list(rows[0].glosses) == first[5:]
        assert all(r.signer.startswith("signer") for r in rows)  # "Signer04" and "signer05" are one spelling


def test_phoenix2014_corpus_csv(tmp_path):
    path = tmp_path / "train.corpus.csv"
    path.write_text("id|folder|signer|annotation\n"
                    "01April_2010_Thursday_heute_default-0|01April_2010_Thursday_heute_default-0/1/*.png|Signer04|"
                    "__ON__ LIEB ZUSCHAUER ABEND\n")
    assert detect_format(path) == "phoenix2014"
    (row,) = read_annotations(path)
    assert (row.id, row.signer, row.split, row.glosses) == (
        "01April_2010_Thursday_heute_default-0", "signer04", "train", ("__ON__", "LIEB", "ZUSCHAUER", "ABEND"))


def test_phoenix2014t_corpus_csv(tmp_path):
    path = tmp_path / "PHOENIX-2014-T.dev.corpus.csv"
    path.write_text("name|video|start|end|speaker|orth|translation\n"
                    "11August_2010_Wednesday_tagesschau-2|x/1/*.png|-1|-1|Signer08|DRUCK TIEF KOMMEN|tiefer luftdruck\n")
    assert detect_format(path) == "phoenix2014t"
    (row,) = read_annotations(path)
    assert row.split == "dev" and row.signer == "signer08" and row.glosses == ("DRUCK", "TIEF", "KOMMEN")


def test_plain_csv_with_split_column(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("id,signer,split,glosses\na,s1,train,HELLO WORLD\nb,s2,test,WORLD\n")
    rows = read_annotations(path)
    assert [(r.id, r.split, r.glosses) for r in rows] == [("a", "train", ("HELLO", "WORLD")), ("b", "test", ("WORLD",))]


@pytest.mark.parametrize("body, match", [
    ("id,signer,split,glosses\na,s1,train\n", r"mine.csv:2: 3 fields"),
    ("id,signer,split,glosses\na,s1,train,   \n", r"mine.csv:2: empty gloss list"),
    ("id,signer,split,glosses\na,s1,valid,X\n", r"mine.csv:2: split 'valid'"),
    ("id,signer,split,glosses\na,s1,train,X\na,s1,dev,Y\n", r"mine.csv:3: sample id 'a' already annotated"),
    ("name,glosses\na,X\n", r"unknown annotation format"),
])
def test_bad_lines_are_named_by_file_and_line(tmp_path, body, match):
    path = tmp_path / "mine.csv"
    path.write_text(body)
    with pytest.raises(AnnotationError, match=match):
        read_annotations(path)


def test_stm_line_with_too_few_fields(tmp_path):
    path = tmp_path / "x-dev.stm"
    path.write_text("a 1 signer01 0.0 1.0 HELLO\nb 1 signer01 0.0\n")
    with pytest.raises(AnnotationError, match=r"x-dev.stm:2: 4 fields"):
        read_annotations(path)


def test_split_must_be_in_the_file_name(tmp_path):
    path = tmp_path / "groundtruth.stm"
    path.write_text("a 1 signer01 0.0 1.0 HELLO\n")
    with pytest.raises(AnnotationError, match="cannot tell the split"):
        read_annotations(path)
    assert read_annotations(path, split="dev")[0].split == "dev"


def test_a_utf8_bom_csv_is_read_like_any_other(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_bytes("\ufeffid,signer,split,glosses\na,s1,train,HELLO\n".encode())  # Excel's "CSV UTF-8"
    assert detect_format(path) == "csv"
    assert [(r.id, r.glosses) for r in read_annotations(path)] == [("a", ("HELLO",))]


def test_composed_and_decomposed_forms_are_one_gloss_and_one_id(tmp_path):
    import unicodedata
    composed, decomposed = "\u00dcBER", unicodedata.normalize("NFD", "\u00dcBER")
    assert composed != decomposed
    path = tmp_path / "mine.csv"
    path.write_text(f"id,signer,split,glosses\n{decomposed}-1,s1,train,{composed} X\nb,s1,dev,{decomposed}\n")
    train, dev = read_annotations(path)
    assert train.glosses[0] == dev.glosses[0] == composed  # not an unseen gloss in dev
    assert train.id == f"{composed}-1"
