"""docs/config.md is generated from the config dataclasses and must not drift from them."""

from pathlib import Path

from slr.configdoc import markdown, rows

ROOT = Path(__file__).resolve().parents[2]


def test_every_config_key_is_documented_with_a_meaning():
    missing = [key for _, key, _, _, meaning in rows() if not meaning]
    assert not missing, f"add a trailing comment to these fields in slr/config.py: {missing}"


def test_committed_reference_matches_the_code():
    assert (ROOT / "docs" / "config.md").read_text() == markdown(), \
        "docs/config.md is stale: run `python -m slr.configdoc > docs/config.md`"


def test_reference_lists_the_searched_keys_with_their_defaults():
    text = markdown()
    for key, default in [("train.learning_rate", "0.001"), ("model.dropout", "0.3"), ("model.num_blocks", "6"),
                         ("model.lstm_layers", "1"), ("train.weight_decay", "0.0001")]:
        assert f"| `{key}` |" in text and f"`{default}`" in text.split(f"| `{key}` |")[1].split("\n")[0]
