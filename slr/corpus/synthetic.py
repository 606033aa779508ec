"""Synthetic signing in the MediaPipe Holistic layout: the embedded corpus for users without data.

Each gloss is a consistent motion prototype: a trajectory of the dominant hand (and, for two-handed
glosses, the other hand) through signing space relative to the shoulders, a handshape that may change
during the sign, a hand orientation, and for some glosses a facial component (mouth opening or brow
raise). A sentence concatenates glosses with smooth transitions between them (movement epenthesis)
and rests at both ends. Signers differ in body size and position, speed and a personal offset of
their signing space; frames get landmark jitter and runs of missing hand detections.

Gloss frequencies follow a Zipf-Mandelbrot law and sentence lengths a clipped normal. For ``bench``
both are fitted to the PHOENIX-2014 train annotations (1,100 glosses; rank-frequency exponent 2.55,
offset 50; length mean 10.3, sd 3.2, range 2-26 -- see tests/slr/test_synthetic.py); smaller presets
use fewer types and shorter sentences so they train in seconds or minutes on a CPU.

Everything is a pure function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from slr.corpus.store import CorpusWriter
from slr.layout import FACE, LEFT_HAND, NUM_POINTS, POSE, RIGHT_HAND


@dataclass(frozen=True)
class Preset:
    types: int
    train: int
    dev: int
    test: int
    signers: int
    length_mean: float
    length_sd: float
    length_min: int
    length_max: int
    zipf_a: float
    zipf_q: float
    gloss_frames: tuple[int, int]  # base duration range of one gloss at 25 fps


PRESETS: dict[str, Preset] = {
    "tiny": Preset(12, 64, 16, 16, 3, 3.0, 1.0, 1, 5, 0.6, 2.0, (7, 10)),
    "quickstart": Preset(24, 480, 80, 80, 6, 3.5, 1.2, 2, 7, 0.8, 3.0, (6, 8)),
    "bench": Preset(1100, 4000, 400, 400, 9, 10.3, 3.2, 2, 26, 2.55, 50.0, (10, 16)),
}

FPS = 25.0
_MOUTH_FRACTION, _BROW_FRACTION = 0.12, 0.12


@dataclass(frozen=True)
class GlossPrototype:
    controls: np.ndarray  # [hands=2, 4, 2] Bezier control points (shoulder-width units, y down)
    active: np.ndarray  # [2] bool: right (dominant) always, left for two-handed glosses
    shape_start: np.ndarray  # [2, 5] finger flexion in [0, 1]
    shape_end: np.ndarray  # [2, 5]
    angle: np.ndarray  # [2, 2] hand rotation (start, end), radians
    face: int  # 0 none, 1 mouth opening, 2 brow raise
    frames: int


@dataclass(frozen=True)
class Signer:
    centre: np.ndarray  # [2] shoulder midpoint in image coordinates
    width: float  # shoulder width in image units
    speed: float  # > 1 signs faster
    offset: np.ndarray  # [2] personal shift of signing space (shoulder widths)


def generate(preset: str | Preset, out: str | Path, seed: int = 0, signer_independent: bool = False,
             progress: bool = False, sentences: list[tuple[str, ...]] | None = None,
             sentences_source: str = "") -> Path:
    """Write a synthetic corpus to ``out`` and return its path.

    Args:
        preset: a name in :data:`PRESETS` or a :class:`Preset`.
        signer_independent: if True, dev and test use signers never seen in train.
        sentences: real gloss sequences (e.g. PHOENIX-2014's train annotations) to sign instead of drawing glosses
            from the preset's unigram law: each sample signs one of them, drawn uniformly (a sentence longer than
            the preset's ``length_max`` glosses: a random window of that length), so the corpus has real sentence
            structure and a gloss language model has something to learn. The vocabulary is their glosses.
        sentences_source: where ``sentences`` came from, recorded in the manifest.
    """
    name = preset if isinstance(preset, str) else "custom"
    p = PRESETS[preset] if isinstance(preset, str) else preset
    rng = np.random.default_rng(seed)
    if sentences is not None:
        sentences = [tuple(s) for s in sentences if s]
        if not sentences:
            raise ValueError(f"{sentences_source or 'sentences'}: no gloss sequence to sign")
        vocab = sorted({g for s in sentences for g in s})
        p = replace(p, types=len(vocab))
    glosses = vocab if sentences is not None else [f"G{i:04d}" for i in range(p.types)]
    protos = [_prototype(rng, p) for _ in glosses]
    index = {g: i for i, g in enumerate(glosses)}
    freq = 1.0 / (np.arange(1, p.types + 1) + p.zipf_q) ** p.zipf_a
    freq /= freq.sum()
    signers = [_signer(rng) for _ in range(p.signers)]
    face = _face_template()
    writer = CorpusWriter(out, fps=FPS, extra=dict(synthetic=dict(
        preset=name, seed=seed, signer_independent=signer_independent,
        **({"sentences": sentences_source or "given", "sentence_count": len(sentences)} if sentences else {}))))
    plan = [("train", p.train), ("dev", p.dev), ("test", p.test)]
    total = p.train + p.dev + p.test
    bar = _progress(total, progress)
    held_out = max(1, p.signers // 3) if signer_independent else 0
    for split, count in plan:
        # Signer-independent: the first third of the signers appear only in dev and test.
        pool = list(range(held_out, p.signers)) if split == "train" else list(range(held_out or p.signers))
        for i in range(count):
            s = int(rng.choice(pool))
            if sentences is not None:
                ids = _sentence(rng, sentences, p.length_max, index)
            else:
                length = int(np.clip(round(rng.normal(p.length_mean, p.length_sd)), p.length_min, p.length_max))
                ids = rng.choice(p.types, size=length, p=freq)
            xyz, mask = _render(rng, [protos[j] for j in ids], signers[s], face)
            writer.add(f"{split}-{i:05d}", f"Signer{s + 1:02d}", split, [glosses[j] for j in ids], xyz, mask)
            bar.update(1)
    bar.close()
    return writer.close()


def _sentence(rng: np.random.Generator, sentences: list[tuple[str, ...]], longest: int,
              index: dict[str, int]) -> np.ndarray:
    """One of ``sentences`` (uniformly), as gloss indices; a random window of ``longest`` glosses if longer."""
    glosses = sentences[int(rng.integers(len(sentences)))]
    if len(glosses) > longest:
        start = int(rng.integers(len(glosses) - longest + 1))
        glosses = glosses[start:start + longest]
    return np.array([index[g] for g in glosses])


def _progress(total: int, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc="synth", unit="sample", disable=not enabled)


# -- prototypes -------------------------------------------------------------------------------------
def _prototype(rng: np.random.Generator, p: Preset) -> GlossPrototype:
    # Signing space: x in [-1.2, 1.2] shoulder widths, y from forehead (-1.4) to belly (0.9).
    start = np.stack([rng.uniform([-1.1, -1.3], [0.3, 0.8]), rng.uniform([-0.3, -1.3], [1.1, 0.8])])  # [2, 2]
    moves = rng.normal(0, 0.45, size=(2, 3, 2))
    controls = np.concatenate([start[:, None], start[:, None] + np.cumsum(moves, axis=1)], axis=1)  # [2, 4, 2]
    active = np.array([True, rng.random() < 0.5])
    # The first index is the signer's right (dominant) hand.
    shape_start = rng.integers(0, 3, size=(2, 5)) / 2.0
    shape_end = np.where(rng.random((2, 1)) < 0.4, rng.integers(0, 3, size=(2, 5)) / 2.0, shape_start)
    angle = rng.uniform(-1.2, 1.2, size=(2, 2))
    face = int(rng.choice(3, p=[0.7, 0.15, 0.15]))
    return GlossPrototype(controls, active, shape_start, shape_end, angle, face,
                          int(rng.integers(p.gloss_frames[0], p.gloss_frames[1] + 1)))


def _signer(rng: np.random.Generator) -> Signer:
    return Signer(centre=rng.uniform([0.45, 0.5], [0.55, 0.6]), width=float(rng.uniform(0.2, 0.28)),
                  speed=float(rng.uniform(0.85, 1.2)), offset=rng.normal(0, 0.08, size=2))


def _face_template() -> np.ndarray:
    """468 face points on an ellipse (face-relative units, y down); fixed for every corpus."""
    r = np.random.default_rng(468)
    angle, radius = r.uniform(0, 2 * np.pi, 468), np.sqrt(r.uniform(0, 1, 468))
    return np.stack([0.32 * radius * np.cos(angle), 0.42 * radius * np.sin(angle)], axis=1)  # [468, 2]


# -- rendering ---------------------------------------------------------------------------------------
REST = np.array([[-0.5, 1.3], [0.5, 1.3]])  # hands resting low, in front of the body


def _render(rng: np.random.Generator, protos: list[GlossPrototype], signer: Signer,
            face: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A sentence -> ``([T, 543, 3]`` float32 landmarks, ``[T, 543]`` bool detected)."""
    hand_pos, shape, angle, face_act = _timeline(rng, protos, signer)
    T = len(hand_pos)
    xyz = np.zeros((T, NUM_POINTS, 3), np.float32)
    sway = np.cumsum(rng.normal(0, 0.002, size=(T, 2)), axis=0)  # slow body drift, image units
    centre = signer.centre + sway  # [T, 2]
    w = signer.width
    xyz[:, POSE[0]:POSE[1], :2] = _pose(centre, w, hand_pos)
    xyz[:, FACE[0]:FACE[1], :2] = _face(centre, w, face, face_act)
    for h, (lo, hi) in enumerate((RIGHT_HAND, LEFT_HAND)):
        wrist = centre + w * hand_pos[:, h]
        xyz[:, lo:hi, :2] = wrist[:, None] + w * _hand(shape[:, h], angle[:, h], mirror=h == 1)
        xyz[:, lo:hi, 2] = -0.05 * shape[:, h].mean(-1, keepdims=True)
    xyz += rng.normal(0, 0.003, size=xyz.shape).astype(np.float32)  # detector jitter
    return xyz, _detections(rng, T, hand_pos)


def _timeline(rng: np.random.Generator, protos: list[GlossPrototype], signer: Signer):
    """Per-frame hand positions [T, 2, 2], flexion [T, 2, 5], angle [T, 2], face activity [T, 2]."""
    segments = []
    rest_shape, rest_angle = np.full((2, 5), 0.5), np.zeros(2)
    prev = (REST, rest_shape, rest_angle)
    segments.append(_hold(REST, rest_shape, rest_angle, int(rng.integers(3, 7))))
    for proto in protos:
        frames = max(3, round(proto.frames * rng.uniform(0.85, 1.15) / signer.speed))
        u = np.linspace(0, 1, frames)
        pos = _bezier(proto.controls + signer.offset, u)  # [F, 2, 2]
        pos = np.where(proto.active[None, :, None], pos, REST[None])
        shp = proto.shape_start[None] + (proto.shape_end - proto.shape_start)[None] * u[:, None, None]
        ang = proto.angle[None, :, 0] + (proto.angle[:, 1] - proto.angle[:, 0])[None] * u[:, None]
        face = np.zeros((frames, 2))
        if proto.face:
            face[:, proto.face - 1] = np.sin(np.pi * u)
        start = (pos[0], shp[0], ang[0])
        segments.append(_transition(prev, start, int(rng.integers(2, 6))))  # movement epenthesis
        segments.append((pos, shp, ang, face))
        prev = (pos[-1], shp[-1], ang[-1])
    segments.append(_transition(prev, (REST, rest_shape, rest_angle), int(rng.integers(2, 5))))
    segments.append(_hold(REST, rest_shape, rest_angle, int(rng.integers(3, 7))))
    return [np.concatenate(parts) for parts in zip(*segments)]


def _hold(pos, shape, angle, n):
    return (np.repeat(pos[None], n, 0), np.repeat(shape[None], n, 0), np.repeat(angle[None], n, 0),
            np.zeros((n, 2)))


def _transition(a, b, n):
    u = (np.arange(1, n + 1) / (n + 1))
    u = u * u * (3 - 2 * u)  # smoothstep
    mix = [x0[None] + (x1 - x0)[None] * u.reshape(-1, *([1] * x0.ndim)) for x0, x1 in zip(a, b)]
    return (*mix, np.zeros((n, 2)))


def _bezier(controls: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Cubic Bezier: controls [2, 4, 2], u [F] -> [F, 2, 2]."""
    b = np.stack([(1 - u) ** 3, 3 * u * (1 - u) ** 2, 3 * u ** 2 * (1 - u), u ** 3], axis=1)  # [F, 4]
    return np.einsum("fk,hkd->fhd", b, controls)


def _hand(flex: np.ndarray, angle: np.ndarray, mirror: bool) -> np.ndarray:
    """21 hand points relative to the wrist, in shoulder widths: flex [T, 5], angle [T] -> [T, 21, 2]."""
    T = len(flex)
    base_dir = np.array([-0.9, -0.35, 0.0, 0.3, 0.6])  # finger directions (radians from 'up')
    base_len = np.array([0.09, 0.12, 0.13, 0.12, 0.1])
    out = np.zeros((T, 21, 2))
    for f in range(5):
        direction = base_dir[f] + angle
        knuckle = 0.12 * np.stack([np.sin(base_dir[f] * 0.6 + angle), -np.cos(base_dir[f] * 0.6 + angle)], -1)
        point, heading = knuckle, direction
        out[:, 1 + 4 * f] = point
        for j in range(1, 4):
            heading = heading + flex[:, f] * 1.2  # each joint curls by up to ~70 degrees
            point = point + base_len[f] / 3 * np.stack([np.sin(heading), -np.cos(heading)], -1)
            out[:, 1 + 4 * f + j] = point
    if mirror:
        out[..., 0] *= -1
    return out


def _pose(centre: np.ndarray, w: float, hands: np.ndarray) -> np.ndarray:
    """33 MediaPipe pose points [T, 33, 2] from the body frame and the wrists."""
    T = len(centre)
    rel = np.zeros((T, 33, 2))
    head = {0: (0, -1.0), 1: (0.08, -1.1), 2: (0.12, -1.1), 3: (0.16, -1.1), 4: (-0.08, -1.1), 5: (-0.12, -1.1),
            6: (-0.16, -1.1), 7: (0.3, -1.05), 8: (-0.3, -1.05), 9: (0.1, -0.85), 10: (-0.1, -0.85)}
    body = {11: (0.5, 0), 12: (-0.5, 0), 23: (0.35, 1.6), 24: (-0.35, 1.6), 25: (0.35, 2.6), 26: (-0.35, 2.6),
            27: (0.35, 3.5), 28: (-0.35, 3.5), 29: (0.35, 3.6), 30: (-0.35, 3.6), 31: (0.4, 3.7), 32: (-0.4, 3.7)}
    for i, xy in {**head, **body}.items():
        rel[:, i] = xy
    # Signer's left is image right (+x). hands[:, 0] is the right hand, hands[:, 1] the left.
    for side, (sh, el, wr, pinky, index, thumb) in ((1, (11, 13, 15, 17, 19, 21)), (0, (12, 14, 16, 18, 20, 22))):
        wrist = hands[:, side]
        rel[:, wr] = wrist
        rel[:, el] = (rel[:, sh] + wrist) / 2 + np.array([0.25 if side else -0.25, 0.35])
        rel[:, pinky] = wrist + [0.05 if side else -0.05, -0.08]
        rel[:, index] = wrist + [0.0, -0.12]
        rel[:, thumb] = wrist + [-0.05 if side else 0.05, -0.06]
    return centre[:, None] + w * rel


def _face(centre: np.ndarray, w: float, face: np.ndarray, act: np.ndarray) -> np.ndarray:
    """468 face points [T, 468, 2]; mouth points stretch down with act[:, 0], brow points rise with act[:, 1]."""
    pts = np.repeat(face[None], len(centre), 0).copy()  # [T, 468, 2]
    mouth = face[:, 1] > 0.42 * (1 - 2 * _MOUTH_FRACTION)
    brow = face[:, 1] < -0.42 * (1 - 2 * _BROW_FRACTION)
    pts[:, mouth, 1] += 0.12 * act[:, :1]
    pts[:, brow, 1] -= 0.1 * act[:, 1:2]
    return centre[:, None] + w * (pts + np.array([0.0, -1.0]))


def _detections(rng: np.random.Generator, T: int, hands: np.ndarray) -> np.ndarray:
    """[T, 543] detected flags: runs of missed hands (more likely when resting low), rare face loss."""
    mask = np.ones((T, NUM_POINTS), bool)
    for h, (lo, hi) in enumerate((RIGHT_HAND, LEFT_HAND)):
        low = hands[:, h, 1] > 1.1
        mask[low & (rng.random(T) < 0.6), lo:hi] = False
        for _ in range(rng.poisson(0.4)):
            start, length = int(rng.integers(0, T)), int(rng.integers(2, 8))
            mask[start:start + length, lo:hi] = False
    if rng.random() < 0.2:
        start = int(rng.integers(0, T))
        mask[start:start + int(rng.integers(1, 4)), FACE[0]:FACE[1]] = False
    return mask


def with_overrides(name: str, **changes) -> Preset:
    """A preset with some fields changed (used by tests and benchmarks)."""
    return replace(PRESETS[name], **changes)
