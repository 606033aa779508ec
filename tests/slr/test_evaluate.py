"""Inference from a checkpoint: fp32, bf16 and int8 models score the same trained model alike."""

import json

import pytest
import torch

from slr.cli import main
from slr.config import Config
from slr.evaluate import evaluate_checkpoint, for_inference, load_model
from slr.train import Trainer


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_lower_precision_keeps_the_model_and_its_greedy_output(trained, precision):
    _, _, features, model = load_model(trained)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = for_inference(model, precision)
    x = torch.randn(2, 60, 543, 3) * 0.3
    lengths = torch.tensor([60, 41])
    frame_mask = torch.arange(60)[None] < lengths[:, None]
    with torch.no_grad():
        feats = features(x, None, frame_mask)
        ref, out = model(feats, lengths), fast(feats, lengths)
    assert out.dtype == torch.float32 and out.shape == ref.shape  # log-probs [T, B, V]
    assert torch.allclose(out.exp().sum(-1), torch.ones(out.shape[:2]), atol=1e-3)
    agree = (out.argmax(-1) == ref.argmax(-1)).float().mean()
    assert agree > 0.9, f"{precision}: greedy labels agree with fp32 on only {agree:.1%} of frames"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the fp32 model is untouched
    assert for_inference(model, "fp32") is model


def test_eval_in_every_precision_gives_about_the_same_wer(trained):
    wer = {p: evaluate_checkpoint(trained, None, "dev", precision=p) for p in ("fp32", "bf16", "int8")}
    assert all(r["precision"] == p for p, r in wer.items())
    for p in ("bf16", "int8"):
        assert abs(wer[p]["wer"] - wer["fp32"]["wer"]) <= 0.05, (p, wer[p]["wer"], wer["fp32"]["wer"])


def test_cli_eval_and_decode_take_a_precision(trained, shared_data, capsys):
    assert main(["eval", "--checkpoint", str(trained), "--precision", "int8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "int8"
    pose = shared_data / "pose" / "example.pose"
    assert main(["decode", "--checkpoint", str(trained), "--precision", "bf16", "--json", str(pose)]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] > 0
    with pytest.raises(SystemExit):
        main(["eval", "--checkpoint", str(trained), "--precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err


def test_unknown_precision_is_refused_by_name(trained):
    _, _, _, model = load_model(trained)
    with pytest.raises(ValueError, match=r"precision 'fp16'.*fp32, bf16, int8"):
        for_inference(model, "fp16")


def test_a_checkpoint_without_a_corpus_asks_for_one(tiny_corpus, tmp_path):
    from slr import checkpoint
    cfg = Config().override({"train.epochs": 1, "model.num_blocks": 1})
    Trainer(cfg.override({"data.corpus": str(tiny_corpus)}), out=tmp_path).fit()
    state = checkpoint.load(tmp_path / "best.pt")  # as an older checkpoint, trained with the corpus given apart
    state["config"]["data"]["corpus"] = ""
    checkpoint.save(state, tmp_path / "best.pt")
    with pytest.raises(ValueError, match=r"best\.pt: the checkpoint names no corpus.*--corpus"):
        evaluate_checkpoint(tmp_path / "best.pt", None, "dev")
    assert evaluate_checkpoint(tmp_path / "best.pt", tiny_corpus, "dev")["sentences"] == 16
