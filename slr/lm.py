"""A gloss n-gram language model for decoding: interpolated absolute discounting (Ney, Essen and Kneser 1994).

Trained on the train split's gloss sequences (each with a sentence end ``</s>``; contexts padded with ``<s>``).
For a context ``h`` (the previous ``order - 1`` glosses) and a gloss ``w``:

    P(w | h) = max(c(h, w) - D, 0) / c(h)  +  D * N1+(h .) / c(h) * P(w | h')

with ``h'`` the context one gloss shorter, the base case an add-one unigram over the vocabulary and ``</s>``, and
``P(w | h) = P(w | h')`` for a context never seen. Every context's probabilities sum to 1 over the vocabulary and
``</s>`` (tested), so the model is a proper distribution for beam-search fusion. Saved as JSON with its vocabulary:
an LM over other glosses than the model's is refused by name.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


class LMError(ValueError):
    """A gloss LM file that cannot be used: missing, unreadable, or over other glosses."""


class GlossLM:
    """An n-gram model over glosses; ``logprob(context, gloss)`` in natural log."""

    def __init__(self, vocab: Sequence[str], order: int = 3, discount: float = 0.75):
        if order < 1:
            raise ValueError(f"LM order must be >= 1, got {order}")
        if not 0 < discount < 1:
            raise ValueError(f"LM discount must be in (0, 1), got {discount}")
        self.vocab, self.order, self.discount = list(vocab), order, discount
        self.words = [*self.vocab, EOS]  # what can follow a context
        # counts[n][context tuple] = Counter of next glosses, for context lengths n = 0 .. order-1
        self.counts: list[dict[tuple[str, ...], Counter]] = [defaultdict(Counter) for _ in range(order)]
        self._cache: dict[tuple[tuple[str, ...], str], float] = {}

    # -- training ------------------------------------------------------------------------------------------
    def fit(self, sentences: Iterable[Sequence[str]]) -> GlossLM:
        for sentence in sentences:
            padded = [BOS] * (self.order - 1) + list(sentence) + [EOS]
            for i in range(self.order - 1, len(padded)):
                for n in range(self.order):
                    self.counts[n][tuple(padded[i - n:i])][padded[i]] += 1
        self._cache.clear()
        return self

    # -- scoring -------------------------------------------------------------------------------------------
    def prob(self, context: Sequence[str], word: str) -> float:
        """P(word | the last order-1 glosses of context); ``context`` may be shorter (sentence start: ``<s>``)."""
        h = tuple(([BOS] * (self.order - 1) + list(context))[-(self.order - 1):]) if self.order > 1 else ()
        key = (h, word)
        if key not in self._cache:
            self._cache[key] = self._prob(h, word)
        return self._cache[key]

    def logprob(self, context: Sequence[str], word: str) -> float:
        return math.log(self.prob(context, word))

    def _prob(self, h: tuple[str, ...], word: str) -> float:
        if not h:
            unigram = self.counts[0][()]
            return (unigram[word] + 1) / (sum(unigram.values()) + len(self.words))
        lower = self._prob(h[1:], word)
        seen = self.counts[len(h)].get(h)
        if not seen:
            return lower
        total = sum(seen.values())
        return max(seen[word] - self.discount, 0) / total + self.discount * len(seen) / total * lower

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> float:
        """exp of the mean negative log-probability per predicted token (each gloss and each sentence end); a gloss
        outside the vocabulary counts as ``<unk>`` when the vocabulary has it."""
        nll, tokens = 0.0, 0
        known = set(self.words)
        for sentence in sentences:
            context: list[str] = []
            for word in [*sentence, EOS]:
                word = word if word in known or UNK not in known else UNK
                nll -= self.logprob(context, word)
                context.append(word)
                tokens += 1
        return math.exp(nll / max(tokens, 1))

    # -- files ---------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        doc = dict(kind="slr-gloss-lm", order=self.order, discount=self.discount, vocab=self.vocab,
                   counts=[[[list(h), dict(c)] for h, c in level.items()] for level in self.counts])
        path.write_text(json.dumps(doc))
        return path

    @classmethod
    def load(cls, path: str | Path, vocab: Sequence[str] | None = None) -> GlossLM:
        """The LM in ``path``; with ``vocab`` (the model's glosses), an LM over other glosses is an error."""
        path = Path(path)
        if not path.is_file():
            raise LMError(f"{path}: no such gloss LM file (train one: slr tune-decode, or slr.lm.train_lm)")
        try:
            doc = json.loads(path.read_text())
            if doc.get("kind") != "slr-gloss-lm":
                raise KeyError("kind")
            lm = cls(doc["vocab"], doc["order"], doc["discount"])
            for n, level in enumerate(doc["counts"]):
                for h, c in level:
                    lm.counts[n][tuple(h)] = Counter(c)
        except (ValueError, KeyError, TypeError) as err:
            raise LMError(f"{path}: not a gloss LM written by slr ({err})") from None
        if vocab is not None and list(vocab) != lm.vocab:
            missing = sorted(set(vocab) - set(lm.vocab))[:5]
            raise LMError(f"{path}: the LM is over other glosses than the model ({len(lm.vocab)} against "
                          f"{len(vocab)}; e.g. not in the LM: {missing}): train it on this corpus's train split")
        return lm


def train_lm(sentences: Iterable[Sequence[str]], vocab: Sequence[str], order: int = 3,
             discount: float = 0.75) -> GlossLM:
    return GlossLM(vocab, order, discount).fit(sentences)
