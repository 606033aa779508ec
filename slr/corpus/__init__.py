"""Corpus format (store), the embedded synthetic corpus and the importers."""

from slr.corpus.store import SPLITS, Corpus, CorpusError, CorpusWriter, Sample

__all__ = ["SPLITS", "Corpus", "CorpusError", "CorpusWriter", "Sample"]
