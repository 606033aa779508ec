"""Training losses beyond the main head's CTC: VAC's auxiliary CTC at T/4, its self-distillation, and
distillation from a teacher checkpoint (``train.teacher``).

VAC (Min et al., ICCV 2021) supervises the visual (here: MobileNetV3 block) features directly with a second
CTC head, and distils the sequence model's (BiLSTM head's) posteriors into it, so the blocks learn alignments
without waiting for the BiLSTM to pass useful gradients down. The main head still emits one frame per input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from slr.data import Batch
from slr.model import DOWNSAMPLE


def aux_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Frames at the auxiliary head's rate: a T/4 frame is real if any of its 4 inputs is (``ceil(T / 4)``)."""
    return (lengths + DOWNSAMPLE - 1) // DOWNSAMPLE


def aux_feasible(batch: Batch) -> torch.Tensor:
    """``[B]`` bool: the sample's labels fit CTC at T/4 (one frame per label, a blank between repeats), the same
    rule that admits a sample for the main head at T (``Batch.min_frames``)."""
    return aux_lengths(batch.lengths) >= torch.tensor(batch.min_frames())


def aux_ctc(aux: torch.Tensor, batch: Batch, blank: int) -> torch.Tensor:
    """Mean over samples of the per-label CTC loss of the auxiliary head (as the main head's ``reduction="mean"``);
    a sample too short for CTC at T/4 contributes 0 (its loss and gradient are masked, never inf or NaN)."""
    ok = aux_feasible(batch).to(aux.device)
    per_sample = F.ctc_loss(aux, batch.targets, aux_lengths(batch.lengths), batch.target_lengths, blank=blank,
                            reduction="none", zero_infinity=True)  # [B]; zero_infinity: masked below anyway
    per_label = per_sample / batch.target_lengths.to(aux.device).clamp(min=1)
    return torch.where(ok, per_label, torch.zeros_like(per_label)).sum() / len(ok)


def self_distillation(log_probs: torch.Tensor, aux: torch.Tensor, lengths: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """``T^2 * KL(teacher || aux)`` per real T/4 frame, averaged. The teacher is the main head's posterior at the
    temperature, detached and averaged over each frame's 4 inputs (real ones only) to reach the T/4 rate.

    Args: log_probs ``[T, B, V]`` main head; aux ``[T'/4, B, V]`` auxiliary head; lengths ``[B]`` frames.
    """
    T, B, V = log_probs.shape
    L = aux.shape[0]
    real = (torch.arange(L * DOWNSAMPLE, device=lengths.device)[:, None] < lengths[None]).to(aux)  # [T', B]
    teacher = F.softmax(log_probs.detach() / temperature, dim=-1)  # [T, B, V]
    teacher = F.pad(teacher, (0, 0, 0, 0, 0, L * DOWNSAMPLE - T)) * real[..., None]  # [T', B, V], 0 on padding
    count = real.view(L, DOWNSAMPLE, B).sum(1)  # [L, B] real inputs per T/4 frame
    teacher = teacher.view(L, DOWNSAMPLE, B, V).sum(1) / count.clamp(min=1)[..., None]  # [L, B, V]
    student = F.log_softmax(aux / temperature, dim=-1)
    kl = (teacher * (teacher.clamp(min=1e-12).log() - student)).sum(-1)  # [L, B]
    frames = (count > 0).to(kl)
    return temperature**2 * (kl * frames).sum() / frames.sum().clamp(min=1)


Rate = tuple[int, float]  # (stride, centre): output frame j sits at input frame stride * j + centre (slr.model)


def at_rate(log_probs: torch.Tensor, frames: int, teacher_lengths: torch.Tensor, teacher_rate: Rate,
            student_rate: Rate = (1, 0.0)) -> torch.Tensor:
    """A teacher's ``[T_t, B, V]`` posteriors at the student's ``frames`` output frames: each student frame takes the
    teacher frame whose centre is nearest its own, in input frames (``Rate``), within that sample's
    ``teacher_lengths`` (so no sample reads the teacher's padding).

    By centres, not by proportion: VAC's output frame j covers input frames 4j .. 4j + 15 (unpadded convolutions),
    so its centre is 4j + 7.5; mapping student frame t to teacher frame t // 4 shifted every label ~2 teacher
    frames early, and the student, taught spikes 8 frames before their evidence, stayed on the blank plateau
    (93.6 % dev WER on quickstart against 2.9 % undistilled, docs/model_quality.md). Repeating a frame keeps each
    posterior a distribution, and a spike held for 4 frames collapses to one label, as the student's own repeats
    do. A teacher at the student's rate is returned as it is."""
    T_t, B, V = log_probs.shape
    if teacher_rate == student_rate and T_t == frames:
        return log_probs
    (s_stride, s_centre), (t_stride, t_centre) = student_rate, teacher_rate
    centres = torch.arange(frames, device=log_probs.device, dtype=torch.float64) * s_stride + s_centre  # [T]
    nearest = torch.floor((centres - t_centre) / t_stride + 0.5).long()[:, None]  # [T, 1], teacher frames
    last = (teacher_lengths.to(log_probs.device).clamp(min=1) - 1)[None]  # [1, B]
    index = torch.minimum(nearest.clamp(min=0), last)  # [T, B]
    return log_probs.gather(0, index[..., None].expand(frames, B, V))  # [T, B, V]


def distillation(student: torch.Tensor, teacher: torch.Tensor, lengths: torch.Tensor, temperature: float,
                 teacher_lengths: torch.Tensor, teacher_rate: Rate = (1, 0.0),
                 student_rate: Rate = (1, 0.0)) -> torch.Tensor:
    """``T^2 * KL(teacher || student)`` per real frame, averaged (Hinton et al.; frame-level, on CTC posteriors).

    Args: student ``[T, B, V]`` log-probs (with gradients); teacher ``[T_t, B, V]`` log-probs (no gradients; brought
    to the student's frames by :func:`at_rate`); lengths ``[B]`` real output frames per sample of the student's,
    teacher_lengths ``[B]`` of the teacher's; each model's ``Rate`` (``model.rate``).
    """
    T = student.shape[0]
    teacher = F.softmax(at_rate(teacher.detach(), T, teacher_lengths, teacher_rate, student_rate) / temperature,
                        dim=-1)  # [T, B, V]
    student = F.log_softmax(student / temperature, dim=-1)
    kl = (teacher * (teacher.clamp(min=1e-12).log() - student)).sum(-1)  # [T, B]
    real = (torch.arange(T, device=lengths.device)[:, None] < lengths[None]).to(kl)  # [T, B]
    return temperature**2 * (kl * real).sum() / real.sum().clamp(min=1)
