import pytest

from slr.metrics import EMPTY, phoenix2014_normalize, score


def test_score_counts_sdi():
    refs = [["A", "B", "C", "D"], ["E", "F"]]
    hyps = [["A", "X", "C"], ["E", "F", "G"]]  # 1 substitution, 1 deletion; 1 insertion
    out = score(refs, hyps)
    assert (out["substitutions"], out["deletions"], out["insertions"]) == (1, 1, 1)
    assert out["words"] == 6 and out["sentences"] == 2
    assert out["wer"] == pytest.approx(3 / 6)


def test_empty_hypothesis_is_all_deletions():
    out = score([["A", "B"]], [[]])
    assert out["deletions"] == 2 and out["wer"] == 1.0


def test_wer_can_exceed_one_with_insertions():
    assert score([["A"]], [["B", "C", "D"]])["wer"] == pytest.approx(3.0)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="reference 1 is empty"):
        score([["A"], []], [["A"], ["B"]])
    with pytest.raises(ValueError, match="2 references but 1"):
        score([["A"], ["B"]], [["A"]])
    with pytest.raises(ValueError, match="scorer"):
        score([["A"]], [["A"]], scorer="sclite")


@pytest.mark.parametrize("hyp, expected", [
    (["loc-REGION", "cl-KOMMEN", "qu-WAS", "poss-MEIN", "lh-HAUS"], ["REGION", "KOMMEN", "WAS", "MEIN", "HAUS"]),
    (["S0NNE", "HABEN2"], ["SONNE", "HABEN"]),
    (["ZEIGEN", "HIER-ZEIGEN"], ["ZEIGEN-BILDSCHIRM", "HIER-ZEIGEN-BILDSCHIRM"]),
    (["SWRAUM", "NORDRAUM", "WETTER-PLUSPLUS"], ["SW", "NORDRAUM", "WETTER"]),
    (["__EMOTION__", "__PU__", "__LEFTHAND__", "__EPENTHESIS__", "__ON__", "REGEN"], ["__ON__", "REGEN"]),
    (["__PU__"], [EMPTY]),
    ([], [EMPTY]),
])
def test_phoenix2014_hypothesis_normalization(hyp, expected):
    assert phoenix2014_normalize(hyp) == expected


def test_phoenix_scorer_normalizes_hypotheses_and_brings_references_to_the_ground_truth_form():
    refs = [["__ON__", "SONNE", "REGION"]]
    hyps = [["__ON__", "S0NNE", "loc-REGION", "__EPENTHESIS__"]]
    assert score(refs, hyps, "plain")["wer"] > 0
    assert score(refs, hyps, "phoenix2014")["wer"] == 0.0
    # a raw .corpus.csv reference (loc-REGION) is scored as the cleaned ground-truth STM has it (REGION)
    assert score([["loc-REGION"]], [["REGION"]], "phoenix2014")["wer"] == 0.0
    assert score([["loc-REGION"]], [["REGION"]], "plain")["wer"] == 1.0
    with pytest.raises(ValueError, match="after the PHOENIX-2014 rules"):
        score([["__EPENTHESIS__"]], [["A"]], "phoenix2014")


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_the_reference_rules_leave_the_real_ground_truth_as_it_is(shared_data, split):
    from slr.corpus.annotations import read_annotations
    from slr.metrics import phoenix2014_reference
    stm = shared_data / "phoenix2014" / f"phoenix2014-groundtruth-{split}.stm"
    annotations = read_annotations(stm)
    assert len(annotations) > 500
    assert [a for a in annotations if phoenix2014_reference(a.glosses) != list(a.glosses)] == []


def test_scores_real_phoenix_annotations(shared_data):
    lines = (shared_data / "phoenix2014" / "phoenix2014-groundtruth-dev.stm").read_text().splitlines()
    refs = [ln.split()[5:] for ln in lines]
    assert score(refs, refs)["wer"] == 0.0
    dropped = [r[:-1] for r in refs]  # drop the last gloss of every sentence
    out = score(refs, dropped)
    assert out["deletions"] == len(refs)
    assert out["wer"] == pytest.approx(len(refs) / sum(map(len, refs)))
