import collections
import hashlib

import numpy as np

from slr.corpus import Corpus
from slr.corpus.synthetic import PRESETS, generate, with_overrides
from slr.layout import LEFT_HAND, RIGHT_HAND


def _digest(root):
    return hashlib.sha256((root / "landmarks.arrow").read_bytes()).hexdigest()


def test_deterministic_by_seed(tmp_path, tiny_corpus):
    again = generate("tiny", tmp_path / "again", seed=0)
    other = generate("tiny", tmp_path / "other", seed=1)
    assert _digest(again) == _digest(tiny_corpus)
    assert _digest(other) != _digest(tiny_corpus)


def test_holistic_layout_jitter_and_missing_hand_runs(tiny_corpus):
    c = Corpus(tiny_corpus)
    runs = 0
    for s in c.samples:
        xyz, mask = c.load(s)
        assert xyz.shape[1:] == (543, 3) and s.fps == 25.0
        for lo, hi in (LEFT_HAND, RIGHT_HAND):
            hand = mask[:, lo:hi].all(1)
            assert (mask[:, lo:hi].all(1) == mask[:, lo:hi].any(1)).all()  # a hand is missed as a whole
            runs += int(np.sum(np.diff(hand.astype(int)) == -1))
    assert runs > len(c.samples) // 4


def _dtw(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-step distance along the best time alignment (signers differ in speed and rests)."""
    cost = np.full((len(a) + 1, len(b) + 1), np.inf)
    cost[0, 0] = 0
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d = np.linalg.norm(a[i - 1] - b[j - 1])
            cost[i, j] = d + min(cost[i - 1, j], cost[i, j - 1], cost[i - 1, j - 1])
    return float(cost[-1, -1] / (len(a) + len(b)))


def test_same_gloss_same_motion_different_glosses_differ(tiny_corpus):
    """Single-gloss sentences of the same gloss share a right-hand path; different glosses do not."""
    tmp = with_overrides("tiny", length_mean=1, length_sd=0, length_min=1, length_max=1, train=40, dev=1, test=1)
    root = generate(tmp, tiny_corpus.parent / "single", seed=3)
    c = Corpus(root)
    paths = collections.defaultdict(list)
    for s in c.split("train"):
        xyz, mask = c.load(s)
        xyz = xyz[mask[:, RIGHT_HAND[0]].astype(bool)]  # frames where the right hand was detected
        wrist = xyz[:, RIGHT_HAND[0], :2].astype(np.float32)
        shoulders = (xyz[:, 11, :2] + xyz[:, 12, :2]).astype(np.float32) / 2
        width = np.linalg.norm((xyz[:, 11, :2] - xyz[:, 12, :2]).astype(np.float32), axis=1, keepdims=True)
        rel = (wrist - shoulders) / width
        paths[s.glosses[0]].append(rel)
    same = [_dtw(a, b) for v in paths.values() for a, b in zip(v, v[1:])]
    keys = list(paths)
    diff = [_dtw(paths[a][0], paths[b][0]) for a, b in zip(keys, keys[1:])]
    assert np.mean(same) < 0.5 * np.mean(diff)


def test_bench_statistics_follow_phoenix_train(shared_data):
    """The bench preset's length and frequency laws were fitted to the real PHOENIX-2014 train split."""
    lines = (shared_data / "phoenix2014" / "phoenix2014-groundtruth-train.stm").read_text().splitlines()
    lengths = [len(ln.split()) - 5 for ln in lines]
    counts = collections.Counter(g for ln in lines for g in ln.split()[5:])
    p = PRESETS["bench"]
    assert abs(p.length_mean - np.mean(lengths)) < 0.2 and abs(p.length_sd - np.std(lengths)) < 0.2
    assert (p.length_min, p.length_max) == (min(lengths), max(lengths))
    assert p.types == len(counts)
    # the Zipf-Mandelbrot law predicts the real top-10 share within a few points
    freq = 1 / (np.arange(1, p.types + 1) + p.zipf_q) ** p.zipf_a
    real_top10 = sum(sorted(counts.values())[-10:]) / sum(counts.values())
    assert abs(freq[:10].sum() / freq.sum() - real_top10) < 0.05


def test_signer_independent_split(tmp_path):
    root = generate("tiny", tmp_path / "si", seed=0, signer_independent=True)
    c = Corpus(root)
    train = {s.signer for s in c.split("train")}
    held = {s.signer for s in c.split("dev") + c.split("test")}
    assert train and held and not train & held


def test_sentences_from_an_annotation_file_are_signed_as_given(shared_data, tmp_path):
    """`slr data synth --sentences FILE`: each sample signs a real PHOENIX sentence (or a window of one when longer
    than the preset allows), so the corpus has real sentence structure; the vocabulary is the file's glosses."""
    from slr.cli import main
    from slr.corpus.annotations import read_annotations
    stm = shared_data / "phoenix2014" / "phoenix2014-groundtruth-train.stm"
    real = [" ".join(a.glosses) for a in read_annotations(stm)]
    out = tmp_path / "phx"
    assert main(["data", "synth", "--preset", "tiny", "--sentences", str(stm), "--out", str(out)]) == 0
    corpus = Corpus(out)
    longest = PRESETS["tiny"].length_max
    for sample in corpus.samples:
        assert 1 <= len(sample.glosses) <= longest
        text = " ".join(sample.glosses)
        assert any(f" {text} " in f" {r} " for r in real), text  # a contiguous part of a real sentence
    vocab = {g for r in real for g in r.split()}
    assert set(corpus.vocab.to_list()[2:]) <= vocab and corpus.manifest["synthetic"]["sentences"] == str(stm)
    # the same seed, the same corpus
    again = generate("tiny", tmp_path / "again", sentences=[a.glosses for a in read_annotations(stm)])
    assert [s.glosses for s in Corpus(again).samples] == [s.glosses for s in corpus.samples]


def test_sentences_file_errors_name_the_file(tmp_path, capsys):
    from slr.cli import main
    missing = tmp_path / "nothing.stm"
    assert main(["data", "synth", "--preset", "tiny", "--sentences", str(missing), "--out", str(tmp_path / "o")]) != 0
    assert str(missing) in capsys.readouterr().err
