"""The CTC trainer: ``Trainer(config, on_epoch=callback).fit()``.

Seed regime: AdamW at ``train.learning_rate`` (used as given -- seed bug #3 ignored it), linear warmup
over 5 epochs from 10 %, then cosine; gradient clipping at 1.0; early stopping on dev WER. Batches
whose loss or gradient is not finite are skipped and counted; an epoch with too many of them fails
the run. bf16 autocast on CUDA, with log_softmax and the CTC loss in float32.

The callback seam: after every epoch ``on_epoch(metrics, checkpoint_dir)`` is called with the epoch's
metrics and a directory holding that epoch's checkpoint (``last.pt``). This is where Ray Tune or a
logger plugs in; slr itself never imports Ray.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from slr import checkpoint, losses
from slr.augment import Augmenter
from slr.config import Config, ConfigError, TrainConfig
from slr.corpus.store import Corpus
from slr.data import Batch, BucketBatchSampler, SignDataset, check_layout, collate
from slr.evaluate import evaluate_split, loader, log_probs_of
from slr.features import FeaturePipeline
from slr.model import build_model
from slr.teacher import Teacher
from slr.vocab import Vocabulary

EpochCallback = Callable[[dict[str, Any], Path | None], None]


class NonFiniteLossError(RuntimeError):
    """Too many batches of an epoch had a non-finite loss or gradient: the run cannot continue."""


def lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Learning rate at an optimizer step: linear warmup from ``warmup_start_factor``, then cosine."""
    epoch = step / max(1, steps_per_epoch)
    if epoch < cfg.warmup_epochs:
        factor = cfg.warmup_start_factor + (1 - cfg.warmup_start_factor) * epoch / cfg.warmup_epochs
    else:
        progress = min(1.0, (epoch - cfg.warmup_epochs) / max(1e-9, cfg.epochs - cfg.warmup_epochs))
        factor = cfg.min_lr_factor + (1 - cfg.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.learning_rate * factor


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name!r} but no CUDA device is available")
    return torch.device(name)


def adopt_corpus_layout(cfg: Config, corpus: Corpus) -> Config:
    """A corpus of precomputed ``[T, D]`` features (``slr data import --feature-layout``) declares its width
    and modalities in its manifest; a config left at the landmark default trains on them as declared."""
    declared = corpus.manifest.get("modalities")
    if corpus.layout != "precomputed" or cfg.features.layout == "precomputed" or not declared:
        return cfg
    return cfg.override({"features.layout": "precomputed", "features.input_dim": corpus.manifest["frame_dim"],
                         "features.modalities": declared})


class Trainer:
    """Trains the student on a corpus directory; writes checkpoints and ``metrics.jsonl`` to ``out``."""

    def __init__(self, config: Config, *, out: str | Path | None = None, on_epoch: EpochCallback | None = None,
                 progress: bool = False):
        """``config.data.corpus`` names the corpus (its one source); ``out``: the run directory (None: nothing is
        written); ``on_epoch``: the callback seam (module docstring); ``progress``: a line per epoch, and a batch bar when stderr is a terminal."""
        self._born = time.perf_counter()  # wall_seconds in the metrics count from here (setup included)
        if not config.data.corpus:
            raise ConfigError("data.corpus", "", "the trainer needs a corpus directory")
        self.corpus = Corpus(config.data.corpus)
        self.corpus.require_splits("train", "dev")
        self.cfg = config = adopt_corpus_layout(config, self.corpus)
        self.out = Path(out) if out else None
        self.on_epoch = on_epoch
        self.progress = progress
        self.device = resolve_device(config.train.device)
        if config.train.num_threads:  # the thread count changes float reductions, so it is part of the run
            torch.set_num_threads(config.train.num_threads)
        self.amp = self.device.type == "cuda" and config.train.amp == "bf16"
        if self.device.type == "cuda":
            # Measured on an H100 (docs/benchmarks.md, GPU section): the student is launch-bound, so bf16 autocast
            # only adds cast kernels; fp32 with TF32 tensor-core matmuls is fastest. "off" = strict fp32.
            tf32 = config.train.amp == "auto"
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        check_layout(config, self.corpus)
        torch.manual_seed(config.train.seed)
        self.vocab: Vocabulary = self.corpus.vocab
        self.features = FeaturePipeline(config.features).to(self.device)
        self.model = build_model(config.model, self.features.spans, len(self.vocab)).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.train.learning_rate,
                                           weight_decay=config.train.weight_decay)
        self.train_set, self.dev_set = (self._dataset(split) for split in ("train", "dev"))
        if not len(self.train_set) or not len(self.dev_set):
            raise ValueError(f"{self.corpus.root}: needs train and dev samples CTC can align "
                             f"(train {len(self.train_set)}, dev {len(self.dev_set)})")
        self.sampler = BucketBatchSampler(self.train_set.lengths(), config.data.batch_size, config.data.bucket_size,
                                          config.train.seed)
        self.train_loader = self._loader(self.train_set, self.sampler)
        self.steps_per_epoch = len(self.sampler)
        if config.features.standardize:
            self._fit_features()
        self.augment = (Augmenter(config.augment, config.train.seed, self.model.input_frames)
                        if config.augment.enabled() else None)
        # checked here, before anything is trained or written (slr.teacher)
        self.teacher = Teacher(config.train, self.corpus, self.vocab, self.device) if config.train.teacher else None
        self.state = dict(epoch=0, step=0, best_wer=math.inf, best_loss=math.inf, best_epoch=0, bad_epochs=0,
                          history=[])

    # -- the loop -------------------------------------------------------------------------------------
    def fit(self, resume: str | Path | None = None) -> dict[str, Any]:
        """Train until ``train.epochs``, early stopping, or failure. Returns a summary dict."""
        cfg = self.cfg.train
        if resume:
            self._restore(resume)
        stopped_early = False
        while self.state["epoch"] < cfg.epochs:
            epoch = self.state["epoch"] + 1
            t0 = time.perf_counter()
            # train one epoch
            train_loss, frames, skipped, step_seconds = self._train_epoch(epoch)
            # evaluate on dev
            dev = self.evaluate("dev") if epoch % cfg.eval_every == 0 or epoch == cfg.epochs else None
            # bookkeeping: best model, early stopping
            improved = dev is not None and dev["wer"] < self.state["best_wer"]
            # Patience runs out only when neither dev WER nor dev loss improves: on the CTC blank plateau the WER
            # is flat at 100 % for a while as the loss falls, and stopping there would end a run that is learning.
            lower_loss = dev is not None and dev["loss"] < self.state["best_loss"]
            if improved:
                self.state.update(best_wer=dev["wer"], best_epoch=epoch)
            if lower_loss:
                self.state["best_loss"] = dev["loss"]
            if dev is not None:
                self.state["bad_epochs"] = 0 if improved or lower_loss else self.state["bad_epochs"] + 1
            self.state["epoch"] = epoch
            seconds = time.perf_counter() - t0
            metrics = dict(
                epoch=epoch, train_loss=train_loss, lr=self.optimizer.param_groups[0]["lr"],
                dev_loss=dev["loss"] if dev else None, dev_wer=dev["wer"] if dev else None,
                best_dev_wer=self.state["best_wer"] if math.isfinite(self.state["best_wer"]) else None,
                epoch_seconds=seconds, step_seconds=step_seconds + (dev["seconds"] if dev else 0.0),
                frames_per_second=frames / max(step_seconds, 1e-9), skipped_batches=skipped,
                wall_seconds=time.perf_counter() - self._born,
            )
            patience = cfg.early_stopping_patience
            stopped_early = bool(patience) and self.state["bad_epochs"] >= patience
            metrics["finished"] = int(stopped_early or epoch >= cfg.epochs)  # the trainer's own last epoch
            self.state["history"].append(metrics)
            # checkpoint, log, report
            ckpt_dir = self._save(improved)
            self._log(metrics)
            if self.on_epoch:
                self.on_epoch(metrics, ckpt_dir)
            if stopped_early:
                break
        return self.summary(stopped_early)

    def _train_epoch(self, epoch: int) -> tuple[float, int, int, float]:
        """One pass over train. Returns (mean loss, frames seen, skipped batches, seconds in steps)."""
        self.model.train()
        self.sampler.set_epoch(epoch)
        total = count = frames = skipped = 0
        busy = 0.0
        bar = self._bar(self.train_loader, f"epoch {epoch}")
        for batch in bar:
            t0 = time.perf_counter()
            loss = self.step(batch)
            if loss is None:
                skipped += 1
            else:
                total += loss * len(batch.ids)
                count += len(batch.ids)
                frames += int(batch.lengths.sum())
            busy += time.perf_counter() - t0
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{total / max(count, 1):.3f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
        if skipped > self.cfg.train.max_nonfinite_fraction * len(self.sampler):
            raise NonFiniteLossError(f"epoch {epoch}: {skipped} of {len(self.sampler)} batches had a non-finite "
                                     f"loss or gradient (limit train.max_nonfinite_fraction="
                                     f"{self.cfg.train.max_nonfinite_fraction})")
        return total / max(count, 1), frames, skipped, busy

    def step(self, batch: Batch) -> float | None:
        """One optimizer step on a training batch: the learning rate of this step, augmentation, loss, backward,
        clipping. Returns the loss, or None when the loss or the gradient was not finite (NaN guard: no step is
        taken, the gradients are dropped). The step counter advances either way."""
        self._set_lr(self.state["step"])
        batch = batch.to(self.device)
        if self.augment is not None:  # training split only; seeded by (train.seed, step)
            batch = self.augment(batch, self.state["step"])
        self.state["step"] += 1
        loss = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        finite = bool(torch.isfinite(loss))
        if finite:
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
            finite = bool(torch.isfinite(norm))
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        return loss.item()

    def loss(self, batch: Batch) -> torch.Tensor:
        """CTC on the main head, plus (when on) distillation from the teacher, VAC's auxiliary CTC at T/4 and
        self-distillation into it."""
        log_probs, aux = self.forward(batch, with_aux=True)  # [T, B, V], [T'/4, B, V] or None; float32
        out_lengths = self.model.output_lengths(batch.lengths)  # [B]: T per sample (the student), T/4 (vac)
        loss = F.ctc_loss(log_probs, batch.targets, out_lengths, batch.target_lengths, blank=self.vocab.blank_id,
                          reduction="mean", zero_infinity=False)
        m, t = self.cfg.model, self.cfg.train
        if self.teacher is not None and t.kd_weight > 0:  # the same (augmented) batch through the frozen teacher
            teacher, teacher_lengths = self.teacher.log_probs(batch)
            loss = loss + t.kd_weight * losses.distillation(log_probs, teacher, out_lengths.to(log_probs.device),
                                                            t.kd_temperature, teacher_lengths,
                                                            self.teacher.model.rate, self.model.rate)
        if aux is None:
            return loss
        loss = loss + m.aux_ctc_weight * losses.aux_ctc(aux, batch, self.vocab.blank_id)
        if t.self_distill_weight > 0:
            loss = loss + t.self_distill_weight * losses.self_distillation(log_probs, aux, batch.lengths,
                                                                           t.self_distill_temperature)
        return loss

    def forward(self, batch: Batch, with_aux: bool = False):
        """Landmarks -> features -> log-probs ``[T, B, V]`` (bf16 autocast if ``train.amp: bf16``; float32 out).
        ``with_aux``: ``(log_probs, aux_log_probs [T'/4, B, V] or None)`` (the auxiliary head, when built)."""
        if not with_aux:
            return log_probs_of(self.features, self.model, batch, self.device, self.amp)
        frame_mask = batch.frame_mask.to(self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            x = self.features(batch.x, batch.point_mask, frame_mask)  # [B, T, D]
            return self.model.forward_train(x, batch.lengths.to(self.device))

    # -- evaluation -----------------------------------------------------------------------------------
    def evaluate(self, split: str, method: str | None = None) -> dict[str, Any]:
        """Loss, WER and S/D/I on ``train`` or ``dev``; also the hypotheses (``hyps``) and references (``refs``)
        (:func:`slr.evaluate.evaluate_split`). The test split is a lockbox: training, trials and re-rank runs never
        look at it; it is scored once for a finished sweep's winner (``slr export``) or by ``slr eval``."""
        if split == "test":
            raise ValueError("the trainer never evaluates the test split (the lockbox: only the chosen model is "
                             "scored on it, by `slr export` or `slr eval --split test`)")
        dataset = self.dev_set if split == "dev" else self._dataset(split)
        return evaluate_split(self.model, self.features, dataset, self.vocab, self.cfg.decode,
                              self.cfg.data.batch_size, self.device, self.amp, self.cfg.data.num_workers, method)

    # -- helpers --------------------------------------------------------------------------------------
    def _dataset(self, split: str) -> SignDataset:
        """A split, without the samples CTC cannot align at the model's output rate."""
        return SignDataset(self.corpus, split, self.vocab, self.cfg.data.max_frames, self.model.input_frames)

    def _loader(self, dataset: SignDataset, sampler: BucketBatchSampler) -> DataLoader:
        return loader(dataset, sampler, self.cfg.data.num_workers, pin_memory=self.device.type == "cuda")

    def _fit_features(self) -> None:
        """Standardization statistics from the first train batches of a fixed order (seeded)."""
        sampler = BucketBatchSampler(self.train_set.lengths(), self.cfg.data.batch_size, 1, self.cfg.train.seed)
        batches = sampler.batches()[: self.cfg.features.standardize_batches]
        self.features.fit((b.x, b.point_mask, b.frame_mask) for b in
                          (collate([self.train_set[i] for i in idx]) for idx in batches))

    def _set_lr(self, step: int) -> None:
        lr = lr_at(step, self.steps_per_epoch, self.cfg.train)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _bar(self, iterable, desc: str):
        """A batch progress bar on a terminal only: redrawn into a log file it is a line per batch update."""
        if not (self.progress and sys.stderr.isatty()):
            return iterable
        from tqdm import tqdm
        return tqdm(iterable, desc=desc, leave=False, unit="batch", dynamic_ncols=True)

    def checkpoint_state(self) -> dict[str, Any]:
        return dict(config=self.cfg.to_dict(), vocab=self.vocab.to_list(), model=self.model.state_dict(),
                    features=self.features.state_dict(), fps=self.corpus.fps,
                    optimizer=self.optimizer.state_dict(), rng_torch=torch.get_rng_state(),
                    **{k: v for k, v in self.state.items()})

    def _save(self, improved: bool) -> Path | None:
        if not self.out or not self.cfg.train.checkpoint:
            return None
        last = checkpoint.save(self.checkpoint_state(), self.out / "last.pt")
        if improved:
            shutil.copyfile(last, self.out / ".best.pt.tmp")
            (self.out / ".best.pt.tmp").replace(self.out / "best.pt")
        return self.out

    def _restore(self, path: str | Path) -> None:
        path = Path(path)
        state = checkpoint.load(path / "last.pt" if path.is_dir() else path)
        if state["vocab"] != self.vocab.to_list():
            raise ValueError(f"{path}: checkpoint vocabulary differs from corpus {self.corpus.root}")
        self.model.load_state_dict(state["model"])
        self.features.load_state_dict(state["features"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_torch"])
        for key in self.state:
            self.state[key] = state.get(key, self.state[key])  # best_loss: absent from older checkpoints
        if self.out:  # drop log lines of epochs after the checkpoint: they will be trained again
            log = self.out / "metrics.jsonl"
            if log.exists():
                lines = [ln for ln in log.read_text().splitlines() if ln and json.loads(ln)["epoch"] <= state["epoch"]]
                log.write_text("".join(ln + "\n" for ln in lines))

    def _log(self, metrics: dict[str, Any]) -> None:
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
        if self.progress:
            wer = "-" if metrics["dev_wer"] is None else f"{100 * metrics['dev_wer']:.1f}%"
            print(f"epoch {metrics['epoch']:3d}  loss {metrics['train_loss']:.3f}  dev WER {wer}  "
                  f"lr {metrics['lr']:.2e}  {metrics['epoch_seconds']:.1f}s", flush=True)

    def summary(self, stopped_early: bool = False) -> dict[str, Any]:
        best = self.state["best_wer"]
        return dict(best_dev_wer=best if math.isfinite(best) else None, best_epoch=self.state["best_epoch"],
                    epochs=self.state["epoch"], stopped_early=stopped_early,
                    excluded=dict(train=len(self.train_set.excluded), dev=len(self.dev_set.excluded)),
                    parameters=self.model.num_parameters())
