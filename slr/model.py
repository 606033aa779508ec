"""The seed's CTC student, with the sequence-collapse bug (seed #1) designed out.

    [B, T, D] --modality encoders--> [B, T, 384] --1x1 stem--> --MobileNetV3-1D x num_blocks (4x down)--> [B, 48, T/4]
      --ConvTranspose1d (4x up)--> [B, H, T] --temporal projection--> --BiLSTM--> [B, T, 2H]
      --linear--> [B, T, V] --log_softmax (float32)--> [T, B, V]

There is no global pooling over time anywhere on the main path: the temporal axis is downsampled by
exactly 4 (two stride-2 blocks, or one stride-4 block when num_blocks = 1) and restored by a stride-4
ConvTranspose1d, then trimmed to T, so the output length equals the input length for every T.

``model.upsample: false`` keeps the BiLSTM and CTC on the block features instead (ceil(T/4) output frames, each
covering 4 input frames): a 1x1 conv widens 48 -> H in place of the ConvTranspose, and the frame skip adds the
modality embeddings averaged over each frame's 4 input frames. ``model.upsample_factor: 2`` goes half way: a
stride-2 ConvTranspose to ceil(T/2) frames of 2 input frames each (room for the blank CTC needs between a gloss and
its repeat, which a quarter of the frame rate often lacks), the BiLSTM at half the seed's length.
Padded frames never leak into real ones: activations are zeroed on padding after every block,
squeeze-excitation averages over real frames only, and the BiLSTM runs on packed sequences.

``model.arch: vac`` builds :class:`VacBaseline` instead, the VAC-style baseline the student is measured against:

    [B, T, D] --the same modality encoders--> [B, T, 384] --K5-P2-K5-P2 (conv k=5, no padding; max-pool 2)-->
      [B, W, T'] --BiLSTM--> [B, T', 2H] --linear--> log-probs [T', B, V],  T' = ((T - 4) // 2 - 4) // 2

Every model has the same interface: ``forward(x, lengths)`` (batches), ``forward_train`` (with the auxiliary
head), ``forward_sentence(x)`` (one sentence, every frame real: what ONNX exports), ``output_lengths(lengths)``
(frames of the output per sample) and ``input_frames(n)`` (the fewest input frames giving n output frames).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from slr.config import ConfigError, ModelConfig

DOWNSAMPLE = 4


class ModalityEncoder(nn.Module):
    """Gathers a modality's spans of the feature vector and projects them: [B, T, d_in] -> [B, T, d_out]."""

    def __init__(self, spans: list[tuple[int, int]], dim: int, dropout: float):
        super().__init__()
        # One contiguous span (every default modality) is a view; several need a gather.
        self.span = spans[0] if len(spans) == 1 else None
        index = torch.cat([torch.arange(a, b) for a, b in spans])
        self.register_buffer("index", index, persistent=False)
        self.net = nn.Sequential(nn.Linear(len(index), dim), nn.LayerNorm(dim), nn.GELU(), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        part = x[..., self.span[0]: self.span[1]] if self.span else x.index_select(-1, self.index)
        return self.net(part)


class Pointwise(nn.Conv1d):
    """A 1x1 Conv1d, computed as a matmul for reduced-precision inputs: oneDNN's bf16 1x1 convolution is about
    2x slower than a bf16 matmul on a CPU core. Float32 inputs (training, fp32 inference) keep the convolution,
    which is as fast there and keeps results bit for bit those of a plain Conv1d."""

    def __init__(self, c_in: int, c_out: int, bias: bool = True):
        super().__init__(c_in, c_out, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, C_in, T] -> [B, C_out, T]
        if x.dtype == torch.float32:
            return super().forward(x)
        y = torch.matmul(self.weight[:, :, 0], x)
        return y if self.bias is None else y + self.bias[:, None]


class SqueezeExcite(nn.Module):
    """Channel gating from the mean over *real* frames (a plain mean would let padding leak in)."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc1 = Pointwise(channels, max(8, channels // reduction))
        self.fc2 = Pointwise(max(8, channels // reduction), channels)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x [B, C, T], mask [B, 1, T]
        mean = (x * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)  # [B, C, 1]
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(mean))))


class MobileNetV3Block(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise k (stride s) -> SE -> 1x1 project, hard-swish."""

    def __init__(self, c_in: int, c_out: int, expansion: int, kernel: int, stride: int, dropout: float):
        super().__init__()
        hidden = c_in * expansion
        self.stride = stride
        self.expand = nn.Sequential(Pointwise(c_in, hidden, bias=False), nn.BatchNorm1d(hidden), nn.Hardswish())
        self.depthwise = nn.Sequential(
            nn.Conv1d(hidden, hidden, kernel, stride=stride, padding=kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm1d(hidden), nn.Hardswish())
        self.se = SqueezeExcite(hidden)
        self.project = nn.Sequential(Pointwise(hidden, c_out, bias=False), nn.BatchNorm1d(c_out))
        self.drop = nn.Dropout(dropout)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, C, T], mask [B, 1, T] float -> ([B, C', T/s], [B, 1, T/s])."""
        h = self.expand(x) * mask
        h = self.depthwise(h)
        if self.stride > 1:
            # A frame at T/s is real if any of its s inputs is; T is a multiple of 4 here, so a reshape does it
            # (max_pool1d's ceil_mode would make torch.compile specialize on every length).
            B, _, L = mask.shape
            mask = mask.view(B, 1, L // self.stride, self.stride).amax(-1)
        h = self.se(h * mask, mask)
        h = self.drop(self.project(h))
        if self.residual:
            h = h + x
        return h * mask, mask


def block_strides(num_blocks: int) -> list[int]:
    """Strides giving exactly 4x downsampling for any block count (stride-2 at the first and middle block)."""
    if num_blocks == 1:
        return [4]
    strides = [1] * num_blocks
    strides[0] = 2
    strides[max(1, num_blocks // 2)] = 2
    return strides


class CrossModalAttention(nn.Module):
    """Optional: each frame's modality embeddings attend to each other (off by default, seed)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, parts: list[torch.Tensor]) -> list[torch.Tensor]:
        B, T, d = parts[0].shape
        tokens = torch.stack(parts, dim=2).reshape(B * T, len(parts), d)  # [B*T, M, d]
        out = self.norm(tokens + self.attn(tokens, tokens, tokens, need_weights=False)[0])
        return list(out.reshape(B, T, len(parts), d).unbind(2))


class Student(nn.Module):
    """The CSLR student. ``forward(features [B, T, D], lengths [B]) -> log-probs [T, B, V] float32``."""

    def __init__(self, cfg: ModelConfig, spans: dict[str, list[tuple[int, int]]], vocab_size: int):
        super().__init__()
        if set(cfg.encoder_dims) != set(spans):
            raise ConfigError("model.encoder_dims", cfg.encoder_dims,
                              f"must name exactly the feature layout's modalities {sorted(spans)}")
        self.cfg = cfg
        self.names = list(cfg.encoder_dims)
        self.encoders = nn.ModuleDict({n: ModalityEncoder(spans[n], cfg.encoder_dims[n], cfg.dropout)
                                       for n in self.names})
        self.cross = (CrossModalAttention(cfg.encoder_dims[self.names[0]], cfg.attention_heads, cfg.dropout)
                      if cfg.cross_modal_attention else None)
        width = sum(cfg.encoder_dims.values())  # 384 for the seed
        # A 1x1 stem narrows 384 -> block_channels before the first expansion (as MobileNetV3's stem).
        self.stem = nn.Sequential(Pointwise(width, cfg.block_channels, bias=False),
                                  nn.BatchNorm1d(cfg.block_channels), nn.Hardswish())
        blocks, c_in = [], cfg.block_channels
        for i, stride in enumerate(block_strides(cfg.num_blocks)):
            c_out = cfg.bottleneck_channels if i == cfg.num_blocks - 1 else cfg.block_channels
            blocks.append(MobileNetV3Block(c_in, c_out, cfg.block_expansion, cfg.block_kernel, stride, cfg.dropout))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        # seed fix for the collapse: restore T, never pool it away (or T/2 with upsample_factor 2; or, upsample:
        # false, widen at T/4)
        factor = cfg.upsample_factor if cfg.upsample else 1
        widen = (nn.ConvTranspose1d(cfg.bottleneck_channels, cfg.hidden_dim, kernel_size=factor, stride=factor)
                 if factor > 1 else nn.Conv1d(cfg.bottleneck_channels, cfg.hidden_dim, 1))
        self.upsample = nn.Sequential(widen, nn.BatchNorm1d(cfg.hidden_dim), nn.ReLU())
        self.stride = DOWNSAMPLE // factor  # input frames per output frame: 1 (the seed), 2 or 4
        # (stride, centre): output frame j covers input frames s*j .. s*j + s - 1 (slr.losses.at_rate)
        self.rate = (self.stride, (self.stride - 1) / 2)
        self.projection = nn.Sequential(nn.Conv1d(cfg.hidden_dim, cfg.hidden_dim, 3, padding=1),
                                        nn.BatchNorm1d(cfg.hidden_dim), nn.ReLU(), nn.Dropout(cfg.dropout))
        self.lstm = nn.LSTM(cfg.hidden_dim, cfg.hidden_dim, num_layers=cfg.lstm_layers, batch_first=True,
                            bidirectional=True, dropout=cfg.dropout if cfg.lstm_layers > 1 else 0.0)
        self.head = nn.Linear(2 * cfg.hidden_dim, vocab_size)
        # The frame-rate skip: the modality embeddings at T, projected to H and added to the upsampled path before
        # the BiLSTM (U-Net style). Without it every bit of per-frame evidence has to pass the 48-channel T/4
        # bottleneck and the ConvTranspose, and the student sits on the CTC blank plateau for hundreds of steps
        # (docs/model_quality.md). Built after the seed's layers so model.frame_skip=false is the seed exactly.
        self.frame_skip = nn.Linear(width, cfg.hidden_dim) if cfg.frame_skip else None
        # VAC's auxiliary ("visual") CTC head on the T/4 block features; built last, and only when used, so a
        # model without it has the same parameters, initialization and checkpoints as before it existed.
        self.aux_head = nn.Linear(cfg.bottleneck_channels, vocab_size) if cfg.aux_ctc_weight > 0 else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.forward_train(x, lengths, with_aux=False)[0]

    def forward_sentence(self, x: torch.Tensor) -> torch.Tensor:
        """One sentence, every frame real: ``[1, T, D] -> [T, 1, V]`` without packing (what ONNX exports)."""
        h = self.encode(x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device))  # [1, T, H]
        return self.classify(self.lstm(h)[0])

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return strided_lengths(lengths, self.stride)  # one output frame per input frame (the seed), or per 4

    def input_frames(self, frames: int) -> int:
        return strided_input_frames(frames, self.stride)

    def forward_train(self, x: torch.Tensor, lengths: torch.Tensor,
                      with_aux: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(log-probs [T, B, V], auxiliary log-probs [ceil(T/4), B, V] or None)``, both float32; the auxiliary
        head runs only ``with_aux`` (training), when it is built."""
        T = x.shape[1]
        frame_mask = (torch.arange(T, device=x.device)[None] < lengths[:, None])  # [B, T]
        down, mask, parts = self.encode_down(x, frame_mask)  # [B, 48, T'/4], [B, 1, T'] (T' = T rounded up to 4)
        h = self.upsample_project(down, mask, parts)  # [B, T, H] (or [B, T'/s, H] at stride s = 2, 4)
        out = self.output_lengths(lengths)
        packed = pack_padded_sequence(h, out.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=h.shape[1])  # [B, T, 2H]
        aux = None
        if with_aux and self.aux_head is not None:
            aux = self.aux_head(down.transpose(1, 2)).float().log_softmax(-1).transpose(0, 1)  # [T'/4, B, V]
        return self.classify(h), aux

    def encode(self, x: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        """Everything before the BiLSTM: features ``[B, T, D]``, frame_mask ``[B, T]`` bool -> ``[B, T, H]``."""
        return self.upsample_project(*self.encode_down(x, frame_mask))

    def encode_down(self, x: torch.Tensor,
                    frame_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoders and blocks: ``[B, T, D]`` -> (``[B, 48, T'/4]``, frame mask ``[B, 1, T']``, the modality
        embeddings ``[B, T, 384]``), T' = T rounded up to a multiple of 4; the block features are 0 on padding."""
        T = x.shape[1]
        embedded = embed(self, x)  # [B, T, 384]
        h = embedded.transpose(1, 2)  # [B, 384, T]
        # so that T/4 * 4 covers every frame; no %: torch.compile's dynamic shapes trip on a Mod of the length
        pad = (T + DOWNSAMPLE - 1) // DOWNSAMPLE * DOWNSAMPLE - T
        mask = F.pad(frame_mask, (0, pad)).to(h.dtype)[:, None]  # [B, 1, T+pad]
        h = self.stem(F.pad(h, (0, pad))) * mask  # [B, C, T+pad]
        down = mask
        for block in self.blocks:
            h, down = block(h, down)  # -> [B, 48, (T+pad)/4] after the last block
        return h, mask, embedded

    def upsample_project(self, h: torch.Tensor, mask: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """ConvTranspose back to T, the temporal projection and the frame skip: ``[B, 48, T'/4]`` -> ``[B, T, H]``
        (at stride s = 2 or 4: ``[B, T'/s, H]``, the skip averaging each output frame's s input frames)."""
        if self.stride > 1:
            return self._project_at_stride(h, mask, embedded)
        T = embedded.shape[1]
        h = self.upsample(h)[..., :T]  # [B, H, T]
        h = self.projection(h * mask[..., :T]).transpose(1, 2)  # [B, T, H]
        if self.frame_skip is not None:
            h = h + self.frame_skip(embedded) * mask[:, 0, :T, None]  # [B, T, H], 0 on padding
        return h

    def _project_at_stride(self, h: torch.Tensor, mask: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        B, _, T4 = mask.shape  # T4 = T rounded up to 4; s = self.stride (2 or 4) input frames per output frame
        s, n = self.stride, strided_lengths(embedded.shape[1], self.stride)  # n = ceil(T/s) <= T4/s output frames
        down = mask.view(B, 1, T4 // s, s)[:, :, :n]  # [B, 1, n, s]: which input frames are real
        real = down.amax(-1)  # [B, 1, n]: an output frame is real if any of its s inputs is
        h = self.projection(self.upsample(h)[..., :n] * real).transpose(1, 2)  # [B, n, H]
        if self.frame_skip is not None:
            e = F.pad(embedded, (0, 0, 0, T4 - embedded.shape[1])).view(B, T4 // s, s, -1)[:, :n]
            w = down[:, 0, :, :, None]  # [B, n, s, 1]
            pooled = (e * w).sum(2) / w.sum(2).clamp(min=1.0)  # [B, n, 384]: the mean of the real frames
            h = h + self.frame_skip(pooled) * real[:, 0, :, None]
        return h

    def classify(self, h: torch.Tensor) -> torch.Tensor:
        """BiLSTM output ``[B, T, 2H]`` -> log-probs ``[T, B, V]`` float32."""
        logits = self.head(h).float()  # CTC wants float32, also under bf16 autocast
        return logits.log_softmax(-1).transpose(0, 1)  # [T, B, V]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def strided_lengths(lengths, stride: int):  # noqa: ANN001, ANN201 -- int or tensor, as given
    """Output frames of ``lengths`` input frames at one output frame per ``stride`` inputs (ceil)."""
    return (lengths + stride - 1) // stride


def strided_input_frames(frames: int, stride: int) -> int:
    """The fewest input frames with ``frames`` output frames at ``stride`` (inverts :func:`strided_lengths`)."""
    return stride * (frames - 1) + 1 if frames > 0 else 0


def embed(model: Model, x: torch.Tensor) -> torch.Tensor:
    """The modality encoders (and the cross-modal attention, when on): ``[B, T, D]`` -> ``[B, T, sum(dims)]``."""
    parts = [model.encoders[n](x) for n in model.names]  # each [B, T, d_m]
    if model.cross is not None:
        parts = model.cross(parts)
    return torch.cat(parts, dim=-1)


VAC_STAGES = 2  # K5-P2, twice (VAC's conv_type 2)


VAC_KERNEL = 5


class MaxPool2(nn.Module):
    """``nn.MaxPool1d(2)`` (floor: an odd last frame is dropped) as a reshape, which ``torch.export`` keeps
    dynamic in T (max_pool1d made it specialize the ONNX export to the example's length)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, L] -> [B, C, L // 2]
        B, C, L = x.shape
        return x[..., : L // 2 * 2].reshape(B, C, L // 2, 2).amax(-1)


def _after_stage(lengths):  # noqa: ANN001, ANN202 -- int or tensor, as given
    """Frames after one TemporalConv stage: an unpadded conv loses ``kernel - 1``, then max-pool 2 halves (floor)."""
    return (lengths - (VAC_KERNEL - 1)) // 2


def _vac_rate() -> tuple[int, float]:
    """(stride, centre) of the TemporalConv's output frames in input frames: each stage (conv k, then max-pool 2)
    widens an output frame's window by k steps of the stage's input stride and doubles the stride."""
    width, step = 1, 1
    for _ in range(VAC_STAGES):
        width += step * VAC_KERNEL
        step *= 2
    return step, (width - 1) / 2


class VacBaseline(nn.Module):
    """The VAC-style baseline (module docstring): the student's encoders, VAC's ``TemporalConv`` (K5-P2-K5-P2,
    unpadded convolutions as published, so no output frame reads padding) and ``BiLSTMLayer``, CTC at T/4."""

    def __init__(self, cfg: ModelConfig, spans: dict[str, list[tuple[int, int]]], vocab_size: int):
        super().__init__()
        if set(cfg.encoder_dims) != set(spans):
            raise ConfigError("model.encoder_dims", cfg.encoder_dims,
                              f"must name exactly the feature layout's modalities {sorted(spans)}")
        self.cfg, v = cfg, cfg.vac
        self.names = list(cfg.encoder_dims)
        self.encoders = nn.ModuleDict({n: ModalityEncoder(spans[n], cfg.encoder_dims[n], cfg.dropout)
                                       for n in self.names})
        self.cross = (CrossModalAttention(cfg.encoder_dims[self.names[0]], cfg.attention_heads, cfg.dropout)
                      if cfg.cross_modal_attention else None)
        c_in = sum(cfg.encoder_dims.values())
        self.stages = nn.ModuleList()
        for _ in range(VAC_STAGES):
            self.stages.append(nn.Sequential(nn.Conv1d(c_in, v.width, VAC_KERNEL), nn.BatchNorm1d(v.width),
                                             nn.ReLU(), MaxPool2()))
            c_in = v.width
        self.lstm = nn.LSTM(v.width, v.hidden_dim, num_layers=v.lstm_layers, batch_first=True, bidirectional=True,
                            dropout=cfg.dropout if v.lstm_layers > 1 else 0.0)
        self.head = nn.Linear(2 * v.hidden_dim, vocab_size)

    rate = _vac_rate()  # (4, 7.5): output frame j covers input frames 4j .. 4j + 15, centred on 4j + 7.5

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        """VAC's ``update_lgt``: :func:`_after_stage`, once per stage."""
        for _ in range(VAC_STAGES):
            lengths = _after_stage(lengths)
        return lengths.clamp(min=0) if isinstance(lengths, torch.Tensor) else max(0, lengths)

    @staticmethod
    def input_frames(frames: int) -> int:
        """The fewest input frames with ``frames`` output frames (inverts :meth:`output_lengths`)."""
        for _ in range(VAC_STAGES):
            frames = 2 * frames + VAC_KERNEL - 1
        return frames

    def temporal(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encoders and TemporalConv: ``[B, T, D]`` -> ``[B, T', W]``, 0 past each sample's output length."""
        h = embed(self, x).transpose(1, 2)  # [B, 384, T]
        short = self.input_frames(1) - h.shape[-1]
        if short > 0:  # a batch of sentences shorter than one output frame: pad (they are excluded from CTC)
            h = F.pad(h, (0, short))
        for stage in self.stages:
            h = stage(h * _real(h, lengths))  # padding zeroed: BatchNorm's batch statistics never see it
            lengths = _after_stage(lengths)
        return (h * _real(h, lengths)).transpose(1, 2)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[B, T, D]``, ``lengths [B]`` -> log-probs ``[T', B, V]`` float32 (T' = output_lengths of the longest)."""
        h = self.temporal(x, lengths)  # [B, T'', W]
        out = self.output_lengths(lengths)
        T = int(out.max())
        packed = pack_padded_sequence(h[:, :T], out.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=T)  # [B, T', 2H]
        return self.head(h).float().log_softmax(-1).transpose(0, 1)

    def forward_train(self, x: torch.Tensor, lengths: torch.Tensor,
                      with_aux: bool = True) -> tuple[torch.Tensor, None]:
        return self.forward(x, lengths), None  # no auxiliary head (model.aux_ctc_weight must be 0)

    def forward_sentence(self, x: torch.Tensor) -> torch.Tensor:
        """One sentence, every frame real: ``[1, T, D] -> [T', 1, V]`` without packing (what ONNX exports)."""
        h = embed(self, x).transpose(1, 2)
        for stage in self.stages:
            h = stage(h)
        return self.head(self.lstm(h.transpose(1, 2))[0]).float().log_softmax(-1).transpose(0, 1)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


Model = Student | VacBaseline  # what build_model returns


def _real(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``[B, 1, L]`` float: 1 on each sample's first ``lengths`` frames of ``h [B, C, L]``."""
    return (torch.arange(h.shape[-1], device=h.device)[None] < lengths.to(h.device)[:, None]).to(h.dtype)[:, None]


def build_model(cfg: ModelConfig, spans: dict[str, list[tuple[int, int]]], vocab_size: int) -> Model:
    """The model ``model.arch`` names."""
    return (VacBaseline if cfg.arch == "vac" else Student)(cfg, spans, vocab_size)


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` with every BatchNorm that directly follows a convolution in a Sequential
    folded into that convolution's weights and bias (``y = bn(conv(x))`` becomes one conv): 21 fewer passes
    over the activations for the seed student. Same outputs up to float rounding; ``model`` is left as it is.
    The statistics are frozen, so this is for eval mode only."""
    if model.training:
        raise ValueError("fold_batch_norm: the model is in training mode; folding freezes BatchNorm statistics, "
                         "so call model.eval() first")
    folded = copy.deepcopy(model)
    for seq in folded.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        for i in range(len(seq) - 1):
            conv, bn = seq[i], seq[i + 1]
            if isinstance(conv, (nn.Conv1d, nn.ConvTranspose1d)) and isinstance(bn, nn.BatchNorm1d):
                seq[i] = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose1d))
                seq[i + 1] = nn.Identity()
    return folded
