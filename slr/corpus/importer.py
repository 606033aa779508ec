"""Import real data: landmark recordings + annotation files -> a corpus directory and an import report.

Streaming: recordings are read (and resampled) by a pool of worker processes, a bounded window ahead of
the single writer, so a PHOENIX-size corpus never sits in memory at once. Bad inputs never stop the
import: each is listed in the report with its reason, and the good ones are imported.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from slr.corpus.annotations import Annotation, nfc, read_annotations
from slr.corpus.readers import SUFFIXES, Recording, RecordingError, read_recording
from slr.corpus.store import SPLITS, CorpusError, CorpusWriter, encode
from slr.layout import holistic_spans
from slr.vocab import Vocabulary

REPORT = "import_report.json"
# Declared layouts of precomputed [T, D] features: name -> (D, modality spans). ``seed6516`` is the seed's
# "teacher features": 4 x 1629 (positions, velocity, acceleration, centered) in holistic543 order.
FEATURE_LAYOUTS: dict[str, tuple[int, dict[str, list[list[int]]]]] = {
    "seed6516": (6516, {k: [list(s) for s in v] for k, v in holistic_spans(3).items()}),
}


@dataclass
class ImportReport:
    out: str
    samples: dict[str, int] = field(default_factory=dict)  # per split
    vocab_size: int = 0
    unseen_glosses: dict[str, list[str]] = field(default_factory=dict)  # dev/test glosses not in train -> <unk>
    excluded: list[dict[str, str]] = field(default_factory=list)  # {id, file, reason}
    without_landmarks: list[str] = field(default_factory=list)  # annotated ids with no landmark file
    without_annotation: list[str] = field(default_factory=list)  # landmark files no annotation names
    bad_files: list[dict[str, str]] = field(default_factory=list)  # unreadable recordings {file, reason}

    @property
    def failed(self) -> bool:
        return bool(self.bad_files)

    def summary(self) -> str:
        lines = [f"imported into {self.out}: " + ", ".join(f"{k} {v}" for k, v in self.samples.items()),
                 f"vocabulary {self.vocab_size} (incl. <blank>, <unk>)"]
        for split, glosses in self.unseen_glosses.items():
            if glosses:
                lines.append(f"{split}: {len(glosses)} gloss types unseen in train (mapped to <unk>): "
                             + " ".join(glosses[:12]) + (" ..." if len(glosses) > 12 else ""))
        for title, items in (("annotated but no landmark file", self.without_landmarks),
                             ("landmark file but no annotation", self.without_annotation)):
            if items:
                lines.append(f"{len(items)} {title}: " + " ".join(items[:8]) + (" ..." if len(items) > 8 else ""))
        for ex in self.excluded:
            lines.append(f"excluded {ex['id']} ({ex['file']}): {ex['reason']}")
        return "\n".join(lines)


def find_recordings(inputs: Iterable[str | Path]) -> tuple[dict[str, Path], list[dict[str, str]]]:
    """Landmark files under ``inputs`` (files or directories, recursive) keyed by file stem."""
    found: dict[str, Path] = {}
    problems = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths = sorted(p for p in item.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        elif item.is_file():
            paths = [item]
        else:
            problems.append(dict(file=str(item), reason="no such file or directory"))
            continue
        for p in paths:
            if p.suffix not in SUFFIXES:
                problems.append(dict(file=str(p), reason=f"unsupported file type (expected {', '.join(SUFFIXES)})"))
            elif (stem := nfc(p.stem)) in found:  # a file name decomposed (macOS) matches its NFC annotation id
                problems.append(dict(file=str(p), reason=f"second file for sample {stem!r} (first: {found[stem]})"))
            else:
                found[stem] = p
    return found, problems


def import_corpus(inputs: Iterable[str | Path], out: str | Path, annotations: Iterable[str | Path],
                  fmt: str | None = None, fps: float = 25.0, feature_layout: str | None = None,
                  workers: int | None = None, progress: Callable[[int, int], None] | None = None) -> ImportReport:
    """Import every annotated recording under ``inputs`` into the corpus directory ``out``.

    Args:
        annotations: annotation files (formats in slr.corpus.annotations; ``fmt`` forces one).
        fps: the corpus frame rate; recordings at another (declared) rate are resampled.
        feature_layout: for ``[T, D]`` feature arrays, a name in :data:`FEATURE_LAYOUTS`.
        workers: reader processes (default: every usable core).
    """
    out = Path(out)
    labels: dict[str, Annotation] = {}
    for path in annotations:
        for a in read_annotations(path, _annotation_format(fmt, Path(path))):
            if a.id in labels:
                raise CorpusError(f"{a.source}: sample {a.id!r} already annotated at {labels[a.id].source}")
            labels[a.id] = a
    if not labels:
        raise CorpusError("no annotations given: pass --annotations FILE (PHOENIX .corpus.csv/.stm or id,signer,"
                          "split,glosses CSV)")
    files, bad = find_recordings(inputs)
    report = ImportReport(out=str(out), bad_files=bad)
    report.without_landmarks = sorted(set(labels) - set(files))
    report.without_annotation = sorted(set(files) - set(labels))
    todo = [(labels[i], files[i]) for i in sorted(set(labels) & set(files), key=lambda i: labels[i].source)]
    dim, modalities = FEATURE_LAYOUTS[feature_layout] if feature_layout else (None, None)
    writer: CorpusWriter | None = None
    done = 0
    jobs = [(p, ann.glosses) for ann, p in todo]
    for (ann, path), result in zip(todo, _read_all(jobs, fps, dim, workers)):
        done += 1
        if progress:
            progress(done, len(todo))
        if isinstance(result, str):
            report.bad_files.append(dict(file=str(path), reason=result))
            report.excluded.append(dict(id=ann.id, file=str(path), reason=f"unreadable: {result}"))
            continue
        if result.reason:
            report.excluded.append(dict(id=ann.id, file=str(path), reason=result.reason))
            continue
        if writer is None:
            writer = _writer(out, result.flat.shape[1], result.seen is not None, fps, feature_layout, modalities)
        elif writer.has_mask != (result.seen is not None):
            report.excluded.append(dict(id=ann.id, file=str(path), reason="landmarks and features mixed in one "
                                        f"import; the corpus is {writer.layout}"))
            continue
        writer.add_encoded(ann.id, ann.signer, ann.split, list(ann.glosses), result.flat, result.seen)
    if writer is None:
        why = ("; ".join(f"{e['id']}: {e['reason']}" for e in report.excluded) if todo else
               f"no landmark file matches an annotated id (e.g. {next(iter(labels))!r})")
        raise CorpusError(f"nothing imported into {out}: {why}")
    writer.close()
    _fill_report(report, writer)
    (out / REPORT).write_text(json.dumps(asdict(report), indent=2))
    return report


def _annotation_format(fmt: str | None, path: Path) -> str | None:
    """``--format`` names the landmark type (pose, npy: annotations detected) or the annotation format;
    PHOENIX-2014 ships its ground truth as .stm beside the .corpus.csv files, so both are accepted."""
    if fmt in (None, "pose", "npy"):
        return None
    return "stm" if fmt == "phoenix2014" and path.suffix == ".stm" else fmt


def _writer(out: Path, width: int, landmarks: bool, fps: float, feature_layout: str | None,
            modalities: dict[str, list[list[int]]] | None) -> CorpusWriter:
    if landmarks:
        return CorpusWriter(out, fps=fps, extra=dict(source="import"))
    return CorpusWriter(out, layout="precomputed", frame_dim=width, fps=fps,
                        extra=dict(source="import", feature_layout=feature_layout, modalities=modalities))


def _unusable(rec: Recording, glosses: tuple[str, ...]) -> str | None:
    """Why a readable recording cannot be a training sample (None when it can)."""
    if rec.is_landmarks:
        if not np.isfinite(rec.values).all(-1).any():
            return "every landmark is missing"
    elif not np.isfinite(rec.values).all():
        bad = int((~np.isfinite(rec.values)).any(-1).sum())
        return f"{bad} frames hold NaN/Inf features"
    need = len(glosses) + sum(a == b for a, b in zip(glosses, glosses[1:]))
    if rec.frames < need:
        return f"too short for CTC: {rec.frames} frames < {need} needed for {len(glosses)} glosses"
    return None


def _fill_report(report: ImportReport, writer: CorpusWriter) -> None:
    counts = Counter(r["split"] for r in writer.rows)
    report.samples = {s: counts.get(s, 0) for s in SPLITS}
    train = {g for r in writer.rows if r["split"] == "train" for g in r["glosses"]}
    report.vocab_size = len(Vocabulary.build([sorted(train)]))
    report.unseen_glosses = {s: sorted({g for r in writer.rows if r["split"] == s for g in r["glosses"]} - train)
                             for s in ("dev", "test")}


# -- reading in parallel, in order, a bounded window ahead ------------------------------------------------
@dataclass
class _Encoded:
    """A recording as the corpus stores it (encoded in the worker, so the writer only appends)."""
    flat: np.ndarray | None  # [T, D] float16
    seen: np.ndarray | None  # [T, 543] uint8 (landmarks) or None (features)
    reason: str | None = None  # why it cannot be a training sample


def _read_one(job: tuple[Path, tuple[str, ...]], fps: float, dim: int | None) -> _Encoded | str:
    path, glosses = job
    try:
        rec = read_recording(path, fps, dim)
        reason = _unusable(rec, glosses)
        if reason:
            return _Encoded(None, None, reason)
        return _Encoded(*encode(rec.values, None, rec.is_landmarks))
    except RecordingError as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 -- a damaged file must not stop the import
        return f"{path}: {type(err).__name__}: {err}"


def _read_all(jobs: list[tuple[Path, tuple[str, ...]]], fps: float, dim: int | None,
              workers: int | None) -> Iterator[_Encoded | str]:
    if not workers:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if workers <= 1 or len(jobs) < 4:
        yield from (_read_one(j, fps, dim) for j in jobs)
        return
    window = 4 * workers
    with ProcessPoolExecutor(workers) as pool:
        pending: deque[Future] = deque()
        it = iter(jobs)
        for j in it:
            pending.append(pool.submit(_read_one, j, fps, dim))
            if len(pending) >= window:
                break
        while pending:
            yield pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(_read_one, nxt, fps, dim))


def print_progress(done: int, total: int) -> None:
    if sys.stderr.isatty() and (done == total or done % 50 == 0):
        print(f"\rimporting {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
