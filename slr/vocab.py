"""Gloss vocabulary for CTC.

Index 0 is the CTC blank and nothing else (seed bug #2: ``<pad>`` and ``<blank>`` shared index 0
and ``idx2word`` was never updated, so every decoded token read back as ``<blank>``). Index 1 is
``<unk>`` for glosses unseen in train. Both directions are derived from one list, so they cannot
disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

BLANK = "<blank>"
UNK = "<unk>"


class Vocabulary:
    """Bidirectional gloss <-> index map with blank = 0 and ``<unk>`` = 1."""

    blank_id = 0
    unk_id = 1

    def __init__(self, glosses: Iterable[str] = ()):
        self._words: list[str] = [BLANK, UNK]
        self._index: dict[str, int] = {BLANK: 0, UNK: 1}
        for gloss in glosses:
            self.add(gloss)

    @classmethod
    def build(cls, sentences: Iterable[Iterable[str]]) -> Vocabulary:
        """Vocabulary of the distinct glosses of ``sentences`` (pass the train split only), sorted."""
        return cls(sorted({g for sentence in sentences for g in sentence}))

    def add(self, gloss: str) -> int:
        if not gloss or gloss.strip() != gloss or " " in gloss:
            raise ValueError(f"invalid gloss {gloss!r}: must be non-empty without whitespace")
        if gloss not in self._index:
            self._index[gloss] = len(self._words)
            self._words.append(gloss)
        return self._index[gloss]

    def __len__(self) -> int:
        return len(self._words)

    def __contains__(self, gloss: str) -> bool:
        return gloss in self._index

    @property
    def word2idx(self) -> dict[str, int]:
        return dict(self._index)

    @property
    def idx2word(self) -> dict[int, str]:
        return dict(enumerate(self._words))

    def encode(self, glosses: Iterable[str]) -> list[int]:
        """Gloss list -> ids; unseen glosses become ``<unk>``. Never emits blank."""
        return [self._index.get(g, self.unk_id) for g in glosses]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Ids -> glosses, dropping blanks."""
        return [self._words[i] for i in ids if i != self.blank_id]

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"glosses": self._words}, ensure_ascii=False, indent=0))

    @classmethod
    def from_json(cls, path: str | Path) -> Vocabulary:
        words = json.loads(Path(path).read_text())["glosses"]
        return cls.from_list(words, source=str(path))

    @classmethod
    def from_list(cls, words: list[str], source: str = "vocabulary") -> Vocabulary:
        if words[:2] != [BLANK, UNK]:
            raise ValueError(f"{source}: must start with {BLANK!r}, {UNK!r}; got {words[:2]}")
        if len(set(words)) != len(words):
            raise ValueError(f"{source}: duplicate glosses")
        return cls(words[2:])

    def to_list(self) -> list[str]:
        return list(self._words)
