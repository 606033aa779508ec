"""The docs match the code: every `slr ...` command shown in the README and docs parses with the real CLI,
and every file the README points to exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from slr.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "docs" / "cluster.md", ROOT / "docs" / "corpus.md"]


def _commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            joined = block.replace("\\\n", " ")
            for line in joined.splitlines():
                line = line.split("#")[0].strip()
                if line.startswith("slr "):
                    found.append((doc.name, line))
    return found


@pytest.mark.parametrize("doc, line", _commands())
def test_documented_commands_parse(doc, line):
    words = shlex.split(re.sub(r"([\w-]+)(\|[\w-]+)+", r"\1", line))[1:]  # a|b|c: check the first choice
    words = [w for w in words if not ("[" in w or "]" in w)]  # optional parts shown in brackets
    try:
        build_parser().parse_args(words)
    except SystemExit as exc:
        pytest.fail(f"{doc}: `{line}` does not parse (exit {exc.code})")


def test_there_are_documented_commands_to_check():
    assert len(_commands()) >= 15


def test_files_the_readme_points_to_exist():
    text = (ROOT / "README.md").read_text()
    for path in re.findall(r"`((?:docs|scripts|experiments|mlflow|benchmarks)/[\w./-]+)`", text):
        assert (ROOT / path).exists(), path
    for path in re.findall(r"\]\(((?:docs)/[\w./-]+)\)", text):
        assert (ROOT / path).exists(), path


def test_every_experiment_key_is_documented():
    import dataclasses
    import typing

    from tune.experiment import ExperimentSpec
    text = (ROOT / "docs" / "experiments.md").read_text()
    hints = typing.get_type_hints(ExperimentSpec)
    for f in dataclasses.fields(ExperimentSpec):
        if f.name == "source":
            continue
        cls = hints[f.name]
        keys = ([f"{f.name}.{g.name}" for g in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls)
                and f.name != "space" else [f.name])
        for key in keys:
            assert f"| `{key}` |" in text, f"docs/experiments.md does not document `{key}`"
