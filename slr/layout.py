"""The landmark layout: where each body part sits in MediaPipe Holistic's 543 points, and in the feature vector.

The ground floor of ``slr``: the corpus (readers, importers, the synthetic generator, the store) and the
feature pipeline both read these facts from here, so neither depends on the other.

MediaPipe Holistic order (543 points): pose 33, face 468, left hand 21, right hand 21.
"""

from __future__ import annotations

NUM_POINTS = 543
POSE = (0, 33)
FACE = (33, 501)
LEFT_HAND = (501, 522)
RIGHT_HAND = (522, 543)
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
POSITION_DIM = NUM_POINTS * 3  # 1629

Spans = dict[str, list[tuple[int, int]]]


def holistic_spans(num_temporal: int) -> Spans:
    """Modality -> feature spans for the holistic543 layout (positions first, temporal blocks after)."""
    def xyz(span: tuple[int, int]) -> tuple[int, int]:
        return span[0] * 3, span[1] * 3
    return {
        "pose": [xyz(POSE)],
        "face": [xyz(FACE)],
        "hands": [(xyz(LEFT_HAND)[0], xyz(RIGHT_HAND)[1])],
        "temporal": [(POSITION_DIM, POSITION_DIM * (1 + num_temporal))] if num_temporal else [],
    }
