"""``docs/config.md`` generated from the config dataclasses: every key, its type, default and meaning.

The meaning is the field's trailing comment in ``slr/config.py`` (one source of truth); a test fails when
the committed file drifts from the code. Regenerate: ``python -m slr.configdoc > docs/config.md``.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import re
import tokenize
import typing

from slr.config import Config

HEADER = """# Configuration reference

Every key of the training config (`slr train --config FILE key=value ...`, the `config:` section of an
experiment YAML, and the keys a sweep's `space:` may search). Generated from `slr/config.py` by
`python -m slr.configdoc > docs/config.md`; `tests/slr/test_configdoc.py` fails when this file drifts.
Invalid values raise an error naming the key, the value and the rule.
"""


def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the trailing ``# comment`` on (the first line of) its definition."""
    source = inspect.getsource(cls)
    comments: dict[str, str] = {}
    line_of: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            line_of[tok.start[0]] = tok.string.lstrip("# ").strip()
    for i, line in enumerate(source.splitlines(), 1):
        m = re.match(r"\s{4}(\w+): [^=]+=", line)
        if m and i in line_of:
            comments.setdefault(m.group(1), line_of[i])
    return comments


def _type_name(hint: typing.Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def rows() -> list[tuple[str, str, str, str, str]]:
    """(section, key, type, default, meaning) for every leaf field."""
    out = []
    default = Config()
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        hints = typing.get_type_hints(cls)
        comments = field_comments(cls)
        for f in dataclasses.fields(cls):
            value = getattr(getattr(default, section.name), f.name)
            out.append((section.name, f"{section.name}.{f.name}", _type_name(hints[f.name]), repr(value),
                        comments.get(f.name, "")))
    return out


def markdown() -> str:
    parts = [HEADER]
    for section in dataclasses.fields(Config):
        cls = typing.get_type_hints(Config)[section.name]
        parts.append(f"\n## `{section.name}`\n\n{inspect.getdoc(cls) or ''}\n\n| key | type | default | meaning |\n"
                     "|---|---|---|---|\n")
        for sec, key, typ, default, meaning in rows():
            if sec == section.name:
                parts.append(f"| `{key}` | `{typ}` | `{default}` | {meaning.replace('|', '/')} |\n")
    return "".join(parts)


if __name__ == "__main__":
    print(markdown(), end="")
