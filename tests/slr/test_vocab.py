import pytest

from slr.vocab import BLANK, UNK, Vocabulary


def test_blank_is_zero_and_unique():
    v = Vocabulary.build([["A", "B"], ["B", "C"]])
    assert v.blank_id == 0 and v.idx2word[0] == BLANK
    assert v.word2idx[UNK] == 1
    assert list(v.word2idx.values()).count(0) == 1  # seed bug #2: <pad> and <blank> shared index 0


def test_seed_bug_2_idx2word_follows_every_added_word():
    v = Vocabulary()
    for g in ["HAUS", "REGEN", "SONNE"]:
        idx = v.add(g)
        assert v.idx2word[idx] == g  # seed bug #2: idx2word was never updated in add_word
    assert {w: i for i, w in v.idx2word.items()} == v.word2idx
    assert v.decode(v.encode(["SONNE", "HAUS"])) == ["SONNE", "HAUS"]  # not ['<blank>', '<blank>']


def test_unseen_glosses_map_to_unk_and_never_blank():
    v = Vocabulary.build([["A"]])
    ids = v.encode(["A", "NEVER-SEEN"])
    assert ids == [v.word2idx["A"], v.unk_id]
    assert v.blank_id not in ids


def test_built_from_the_given_sentences_only_sorted():
    v = Vocabulary.build([["B", "A"], ["C"]])
    assert v.to_list() == [BLANK, UNK, "A", "B", "C"]


def test_json_round_trip(tmp_path):
    v = Vocabulary.build([["__ON__", "WETTER", "MORGEN", "__OFF__"]])
    v.to_json(tmp_path / "v.json")
    w = Vocabulary.from_json(tmp_path / "v.json")
    assert w.to_list() == v.to_list() and w.word2idx == v.word2idx and w.idx2word == v.idx2word


def test_corrupt_vocab_is_refused(tmp_path):
    (tmp_path / "v.json").write_text('{"glosses": ["A", "<blank>"]}')
    with pytest.raises(ValueError, match="v.json"):
        Vocabulary.from_json(tmp_path / "v.json")
    with pytest.raises(ValueError, match="whitespace"):
        Vocabulary().add("TWO WORDS")
