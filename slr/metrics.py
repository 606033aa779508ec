"""Word error rate over gloss sequences (jiwer), with the official PHOENIX-2014 normalization.

The PHOENIX-2014 evaluation (``preprocess.sh`` + sclite) normalizes the *hypothesis*, written as CTM
with one gloss per line, so its per-gloss rules are the ones that act. It scores against the cleaned ground-truth
STM, whose glosses those rules leave as they are (tests/slr/test_metrics.py checks every gloss of the real train,
dev and test STMs). A corpus imported from the ``.corpus.csv`` annotations carries the raw glosses (``loc-REGION``,
``cl-...``), so ``scorer: phoenix2014`` brings references to the ground-truth form with the same rules: the WER is
the official one whichever way the corpus was imported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import jiwer

_PHOENIX_DROP = {"__EMOTION__", "__PU__", "__LEFTHAND__", "__EPENTHESIS__"}
_PHOENIX_PREFIXES = re.compile(r"^(loc-|cl-|qu-|poss-|lh-)")
EMPTY = "[EMPTY]"


def phoenix2014_normalize(glosses: Sequence[str]) -> list[str]:
    """Apply the PHOENIX-2014 hypothesis rules gloss by gloss (see DESIGN.md)."""
    out = []
    for g in glosses:
        if g in _PHOENIX_DROP:
            continue
        g = _PHOENIX_PREFIXES.sub("", g)
        g = {"S0NNE": "SONNE", "HABEN2": "HABEN"}.get(g, g)
        if g.endswith("ZEIGEN"):
            g += "-BILDSCHIRM"
        g = re.sub(r"\b([A-Z][A-Z])RAUM\b", r"\1", g)  # preprocess.sh: \b\([A-Z][A-Z]\)RAUM\b
        g = g.replace("-PLUSPLUS", "")
        if g:
            out.append(g)
    return out or [EMPTY]


def phoenix2014_reference(glosses: Sequence[str]) -> list[str]:
    """A reference in the cleaned ground-truth form: the hypothesis rules, gloss by gloss (the identity on the
    ground-truth STMs). Unlike a hypothesis, a reference that loses every gloss is not scored as ``[EMPTY]``."""
    out = phoenix2014_normalize(glosses)
    return [] if out == [EMPTY] and list(glosses) != [EMPTY] else out


def score(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]], scorer: str = "plain") -> dict[str, float]:
    """Corpus-level WER = (S + D + I) / N over gloss lists.

    Args:
        refs: reference gloss lists (must be non-empty).
        hyps: hypothesis gloss lists (may be empty).
        scorer: ``plain`` or ``phoenix2014`` (normalizes hypotheses, and references to the ground-truth form).
    Returns:
        dict with wer, substitutions, deletions, insertions, hits, words (reference count), sentences.
    Raises:
        ValueError: on mismatched lengths, an empty reference or an unknown scorer.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if scorer not in ("plain", "phoenix2014"):
        raise ValueError(f"unknown scorer {scorer!r}: plain or phoenix2014")
    if not refs:
        raise ValueError("nothing to score: no references")
    if scorer == "phoenix2014":
        refs = [phoenix2014_reference(r) for r in refs]
        hyps = [phoenix2014_normalize(h) for h in hyps]
    for i, r in enumerate(refs):
        if not r:
            raise ValueError(f"reference {i} is empty" + (" after the PHOENIX-2014 rules (only dropped glosses)"
                                                           if scorer == "phoenix2014" else ""))
    out = jiwer.process_words([" ".join(r) for r in refs], [" ".join(h) for h in hyps])
    words = out.hits + out.substitutions + out.deletions
    errors = out.substitutions + out.deletions + out.insertions
    return dict(wer=errors / words, substitutions=out.substitutions, deletions=out.deletions,
                insertions=out.insertions, hits=out.hits, words=words, sentences=len(refs))
