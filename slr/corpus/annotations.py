"""Corpus annotation files -> :class:`Annotation` records (id, signer, split, glosses).

Formats:
    phoenix2014   ``*.corpus.csv``: ``id|folder|signer|annotation`` (header line), pipe-separated
    phoenix2014t  ``*.corpus.csv``: ``name|video|start|end|speaker|orth|translation`` (header line)
    stm           PHOENIX-2014 ground truth: ``id channel signer start end gloss ...`` per line
    csv           your own corpus: ``id,signer,split,glosses`` (header line; glosses space-separated)

PHOENIX files carry no split column: it is read from the file name (``train``/``dev``/``test``) unless
given. Every bad line raises :class:`AnnotationError` naming the file and line number.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

FORMATS = ("phoenix2014", "phoenix2014t", "stm", "csv")
SPLITS = ("train", "dev", "test")
_HEADERS = {
    "phoenix2014": ["id", "folder", "signer", "annotation"],
    "phoenix2014t": ["name", "video", "start", "end", "speaker", "orth", "translation"],
    "csv": ["id", "signer", "split", "glosses"],
}


class AnnotationError(ValueError):
    """An annotation file or line is malformed."""


@dataclass(frozen=True)
class Annotation:
    id: str
    signer: str
    split: str
    glosses: tuple[str, ...]
    source: str  # "file:line", for messages


def detect_format(path: str | Path) -> str:
    """Guess the format from the extension and header line."""
    path = Path(path)
    if path.suffix == ".stm":
        return "stm"
    header = _first_line(path)
    for fmt, names in _HEADERS.items():
        sep = "," if fmt == "csv" else "|"
        if [h.strip().lower() for h in header.split(sep)] == names:
            return fmt
    known = "; ".join(f"{fmt}: {(',' if fmt == 'csv' else '|').join(names)}" for fmt, names in _HEADERS.items())
    raise AnnotationError(f"{path}: unknown annotation format (header {header[:80]!r}); expected a header "
                          f"line ({known}) or a .stm file")


def read_annotations(path: str | Path, fmt: str | None = None, split: str | None = None) -> list[Annotation]:
    """All annotations of one file. ``split`` overrides the split read from a PHOENIX file name."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise AnnotationError(f"{path}: format {fmt!r} not in {FORMATS}")
    if fmt != "csv":
        split = split or split_from_name(path)
    rows = _read_stm(path, split) if fmt == "stm" else _read_table(path, fmt, split)
    seen: dict[str, str] = {}
    for a in rows:
        if a.id in seen:
            raise AnnotationError(f"{a.source}: sample id {a.id!r} already annotated at {seen[a.id]}")
        seen[a.id] = a.source
    return rows


def split_from_name(path: Path) -> str:
    found = [s for s in SPLITS if re.search(rf"(^|[^a-z]){s}([^a-z]|$)", path.name.lower())]
    if len(found) != 1:
        raise AnnotationError(f"{path}: cannot tell the split from the file name; name it *train*/*dev*/*test* "
                              "or pass the split explicitly")
    return found[0]


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        return f.readline().strip()


def nfc(text: str) -> str:
    """One form per string: \u00dcBER typed on one system and U+0308-composed on another are the same gloss (and
    a macOS file name, stored decomposed, matches its annotation's id)."""
    return unicodedata.normalize("NFC", text)


def _glosses(text: str, source: str) -> tuple[str, ...]:
    glosses = tuple(nfc(text).split())
    if not glosses:
        raise AnnotationError(f"{source}: empty gloss list")
    return glosses


def _read_stm(path: Path, split: str) -> list[Annotation]:
    out = []
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip() or line.startswith(";;"):
                continue
            fields = line.split()
            source = f"{path}:{n}"
            if len(fields) < 6:
                raise AnnotationError(f"{source}: {len(fields)} fields, an .stm line needs id, channel, signer, "
                                      "start, end and at least one gloss")
            out.append(Annotation(nfc(fields[0]), nfc(fields[2].lower()), split, _glosses(" ".join(fields[5:]), source),
                                  source))
    return out


def _read_table(path: Path, fmt: str, split: str | None) -> list[Annotation]:
    sep = "," if fmt == "csv" else "|"
    names = _HEADERS[fmt]
    out = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=sep)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header] != names:
            raise AnnotationError(f"{path}:1: header {header} is not {sep.join(names)} ({fmt})")
        for row in reader:
            source = f"{path}:{reader.line_num}"
            if not row or not "".join(row).strip():
                continue
            if len(row) != len(names):
                raise AnnotationError(f"{source}: {len(row)} fields, {fmt} lines have {len(names)} "
                                      f"({sep.join(names)})")
            rec = dict(zip(names, (nfc(v.strip()) for v in row)))
            if fmt == "phoenix2014":
                out.append(Annotation(rec["id"], rec["signer"].lower(), split, _glosses(rec["annotation"], source),
                                      source))
            elif fmt == "phoenix2014t":
                out.append(Annotation(rec["name"], rec["speaker"].lower(), split, _glosses(rec["orth"], source),
                                      source))
            else:
                if rec["split"] not in SPLITS:
                    raise AnnotationError(f"{source}: split {rec['split']!r} not in {SPLITS}")
                out.append(Annotation(rec["id"], rec["signer"], rec["split"], _glosses(rec["glosses"], source),
                                      source))
    return out
