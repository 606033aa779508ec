"""CTC decoding: greedy (best path) and prefix beam search over log-probs ``[T, V]``."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import torch

BLANK = 0


@dataclass
class Token:
    id: int
    start: int  # first frame (inclusive)
    end: int  # last frame (exclusive)


def greedy(log_probs: torch.Tensor | np.ndarray, length: int | None = None) -> list[Token]:
    """Best path: argmax per frame, merge repeats, drop blanks; keeps each token's frame span."""
    best = np.asarray(torch.as_tensor(log_probs[:length]).argmax(-1).cpu())
    tokens: list[Token] = []
    prev = BLANK
    for t, k in enumerate(best.tolist()):
        if k != BLANK and k == prev:
            tokens[-1].end = t + 1
        elif k != BLANK:
            tokens.append(Token(k, t, t + 1))
        prev = k
    return tokens


def beam_search(log_probs: torch.Tensor | np.ndarray, beam: int = 8, length: int | None = None) -> list[int]:
    """CTC prefix beam search (Hannun et al. 2014, no LM). Returns the best label sequence.

    Each prefix keeps two log-scores: ending in blank (pb) and ending in its last label (pnb).
    Only the ``beam`` most likely labels per frame are expanded, which is exact for beam <= V.
    """
    lp = np.asarray(torch.as_tensor(log_probs[:length]).float().cpu())  # [T, V]
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -np.inf)}
    for t in range(lp.shape[0]):
        frame = lp[t]
        top = np.argsort(frame)[::-1][: max(beam, 1)]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [-np.inf, -np.inf])
        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            entry = nxt[prefix]
            entry[0] = np.logaddexp(entry[0], total + frame[BLANK])  # stay, emit blank
            last = prefix[-1] if prefix else None
            for k in top:
                k = int(k)
                if k == BLANK:
                    continue
                p = frame[k]
                if k == last:
                    entry[1] = np.logaddexp(entry[1], pnb + p)  # repeat collapses into the same prefix
                    ext = nxt[prefix + (k,)]
                    ext[1] = np.logaddexp(ext[1], pb + p)  # a blank separated the repeat: a new label
                else:
                    ext = nxt[prefix + (k,)]
                    ext[1] = np.logaddexp(ext[1], total + p)
        ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))[:beam]
        beams = {k: (v[0], v[1]) for k, v in ranked}
    return list(max(beams.items(), key=lambda kv: np.logaddexp(*kv[1]))[0])


def decode_batch(log_probs: torch.Tensor, lengths: torch.Tensor, method: str = "greedy",
                 beam: int = 8, lm: dict | None = None) -> list[list[int]]:
    """``[T, B, V]`` log-probs -> label id lists, one per sample. ``lm`` (method ``beam_lm``): the keyword
    arguments of :func:`lm_beam_search` (vocab, lm, weight, bonus)."""
    lp = log_probs.detach().float().cpu()
    out = []
    for b, n in enumerate(lengths.tolist()):
        if method == "beam_lm":
            out.append(lm_beam_search(lp[:, b], beam=beam, length=n, **(lm or {})))
        elif method == "beam":
            out.append(beam_search(lp[:, b], beam, n))
        else:
            out.append([tok.id for tok in greedy(lp[:, b], n)])
    return out


def align(log_probs: torch.Tensor | np.ndarray, labels: list[int], length: int | None = None) -> list[Token]:
    """Viterbi CTC alignment of a given label sequence (e.g. the beam's) -> each label's frame span.

    Runs over the usual extended sequence (blank, l1, blank, l2, ..., blank); a label may be skipped-to
    from two states back unless it repeats the previous label. Needs ``T >= len(labels) + repeats``.
    """
    lp = np.asarray(torch.as_tensor(log_probs[:length]).float().cpu())  # [T, V]
    if not labels:
        return []
    ext = [BLANK]
    for k in labels:
        ext += [k, BLANK]
    T, S = lp.shape[0], len(ext)
    score = np.full((T, S), -np.inf)
    back = np.zeros((T, S), dtype=np.int64)
    score[0, 0], score[0, 1] = lp[0, ext[0]], lp[0, ext[1]]
    for t in range(1, T):
        for s in range(S):
            cands = [(score[t - 1, s], s)]
            if s >= 1:
                cands.append((score[t - 1, s - 1], s - 1))
            if s >= 2 and ext[s] != BLANK and ext[s] != ext[s - 2]:
                cands.append((score[t - 1, s - 2], s - 2))
            best, arg = max(cands)
            score[t, s], back[t, s] = best + lp[t, ext[s]], arg
    s = S - 1 if score[T - 1, S - 1] >= score[T - 1, S - 2] else S - 2
    if not np.isfinite(score[T - 1, s]):
        raise ValueError(f"{len(labels)} labels cannot be aligned to {T} frames")
    path = [s]
    for t in range(T - 1, 0, -1):
        s = int(back[t, s])
        path.append(s)
    path.reverse()  # state per frame
    tokens: list[Token] = []
    for t, s in enumerate(path):
        if ext[s] == BLANK:
            continue
        if tokens and tokens[-1].end == t and s == path[t - 1]:
            tokens[-1].end = t + 1
        else:
            tokens.append(Token(ext[s], t, t + 1))
    return tokens


# -- beam search with a gloss language model (flashlight-text) -----------------------------------------------
def lm_decoder_available() -> bool:
    try:
        import flashlight.lib.text.decoder  # noqa: F401
    except ImportError:
        return False
    return True


def _fusion_lm(lm, vocab: list[str], weight: float, bonus: float):  # noqa: ANN001, ANN202 -- a GlossLM
    """flashlight-text's ``LM`` interface over a :class:`slr.lm.GlossLM`: each label scores
    ``weight * log P(gloss | previous glosses) + bonus`` (the insertion bonus), the sentence end
    ``weight * log P(</s> | ...)``. A state is the label sequence so far (flashlight hands each path its own)."""
    from flashlight.lib.text.decoder import LM, LMState

    from slr.lm import EOS

    class FusionLM(LM):
        def __init__(self) -> None:
            LM.__init__(self)
            self.context: dict[LMState, tuple[str, ...]] = {}

        def start(self, start_with_nothing: bool) -> LMState:
            state = LMState()
            self.context[state] = ()
            return state

        def score(self, state: LMState, token: int) -> tuple[LMState, float]:
            child = state.child(token)
            glosses = self.context[state]
            self.context.setdefault(child, (*glosses, vocab[token]))
            return child, weight * lm.logprob(glosses, vocab[token]) + bonus

        def finish(self, state: LMState) -> tuple[LMState, float]:
            return state, weight * lm.logprob(self.context[state], EOS)

    return FusionLM()


def lm_beam_search(log_probs: torch.Tensor | np.ndarray, vocab: list[str], lm=None, weight: float = 0.0,  # noqa: ANN001
                   bonus: float = 0.0, beam: int = 8, length: int | None = None) -> list[int]:
    """CTC beam search fused with a gloss LM (shallow fusion), by flashlight-text's lexicon-free decoder (summing
    the paths of a prefix, as the prefix beam search does). ``vocab``: the model's labels by index (blank 0);
    ``lm``: a :class:`slr.lm.GlossLM` over ``vocab[1:]``, or None for no LM. Returns the best label sequence.

    Raises:
        RuntimeError: flashlight-text is not installed (``pip install 'slr-tune[lm]'``).
    """
    if not lm_decoder_available():
        raise RuntimeError("decode.method=beam_lm needs flashlight-text: pip install 'slr-tune[lm]' "
                           "(or decode with method beam, which needs nothing)")
    from flashlight.lib.text.decoder import CriterionType, LexiconFreeDecoder, LexiconFreeDecoderOptions, ZeroLM
    lp = torch.as_tensor(log_probs[:length]).float().cpu().contiguous()  # [T, V]
    T, V = lp.shape
    options = LexiconFreeDecoderOptions(beam_size=beam, beam_size_token=V, beam_threshold=1e3, lm_weight=1.0,
                                        sil_score=0.0, log_add=True, criterion_type=CriterionType.CTC)
    fusion = ZeroLM() if lm is None else _fusion_lm(lm, vocab, weight, bonus)
    decoder = LexiconFreeDecoder(options, fusion, BLANK, BLANK, [])
    best = decoder.decode(lp.data_ptr(), T, V)[0]
    labels, prev = [], BLANK
    for k in best.tokens:  # the best path, one token per frame (plus flashlight's start/end markers: -1)
        if k != prev and k > BLANK:
            labels.append(int(k))
        prev = k
    return labels
