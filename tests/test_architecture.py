"""The floor plan as rules (docs/architecture in ../shared/DESIGN.md): every import points down the data flow, and
each rule has one home. Read from the source with ``ast``, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (``from x import y`` counts as ``x``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def _files(*parts: str) -> list[Path]:
    return sorted((ROOT.joinpath(*parts)).rglob("*.py"))


def _hits(files: list[Path], forbidden: str) -> list[str]:
    return [f"{p.relative_to(ROOT)}: {m}" for p in files for m in sorted(imports_of(p))
            if m == forbidden or m.startswith(forbidden + ".")]


def test_slr_never_imports_tune():
    assert _hits(_files("slr"), "tune") == []


def test_the_corpus_stands_below_the_features():
    assert _hits(_files("slr", "corpus"), "slr.features") == []
    assert _hits(_files("slr", "corpus"), "slr.augment") == []


def test_evaluation_stands_below_training():
    assert _hits([ROOT / "slr" / "evaluate.py"], "slr.train") == []


@pytest.mark.parametrize("module", ["tracking.py", "trials.py", "experiment.py", "cli.py", "savedstate.py"])
def test_tune_modules_that_need_no_ray_import_none(module):
    assert _hits([ROOT / "tune" / module], "ray") == []


def test_the_ground_floor_of_tune_imports_no_service_library():
    found = imports_of(ROOT / "tune" / "trials.py")
    assert not {m for m in found if m.split(".")[0] in ("ray", "optuna", "mlflow", "slr")} | \
        {m for m in found if m.startswith("tune")}


def _literal_homes(word: str) -> list[str]:
    """The files under slr/, tune/ and benchmarks/ that spell ``word`` as a string literal."""
    homes = []
    for p in [*_files("slr"), *_files("tune"), *_files("benchmarks")]:
        if any(isinstance(n, ast.Constant) and n.value == word for n in ast.walk(ast.parse(p.read_text()))):
            homes.append(str(p.relative_to(ROOT)))
    return homes


@pytest.mark.parametrize("word", ["stopped-by-asha", "completed", "failed", "dev_wer_then_loss"])
def test_a_trials_status_and_the_rank_metric_have_one_home(word):
    assert _literal_homes(word) == ["tune/trials.py"]


def test_the_rung_arithmetic_has_one_home():
    defs = [f"{p.relative_to(ROOT)}:{n.name}" for p in [*_files("tune"), *_files("benchmarks")]
            for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.FunctionDef) and ("rung" in n.name or "milestone" in n.name)]
    assert defs == ["tune/trials.py:asha_milestones", "tune/trials.py:asha_rung"]


def test_benchmarks_are_a_package_that_patches_no_import_path():
    assert (ROOT / "benchmarks" / "__init__.py").exists()
    for p in _files("benchmarks"):
        assert "sys.path.insert" not in p.read_text(), p
