import pytest
import torch

from slr.config import ConfigError, FeaturesConfig, ModelConfig
from slr.features import FeaturePipeline
from slr.model import MobileNetV3Block, Student, block_strides, fold_batch_norm


def _model(**changes):
    spans = FeaturePipeline(FeaturesConfig()).spans
    return Student(ModelConfig(**changes), spans, 20).eval()


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 7, 13, 31, 64])
def test_output_length_equals_input_length_for_every_T(T):
    m = _model(num_blocks=3)
    out = m(torch.randn(2, T, 6516), torch.tensor([T, max(1, T - 2)]))
    assert out.shape == (T, 2, 20) and out.dtype == torch.float32
    assert torch.allclose(out.exp().sum(-1), torch.ones(T, 2), atol=1e-4)  # log-probabilities


def test_seed_bug_1_no_sequence_collapse():
    """AdaptiveAvgPool1d(1) + expand made every timestep identical; frames must differ and depend on input."""
    torch.manual_seed(0)
    # Calibrate BatchNorm first: with fresh running statistics (mean 0, var 1) an untrained model in eval
    # mode shrinks activations ~40x per stride-2 block, so no input could move its output above rounding.
    m = _model(dropout=0.0).train()
    with torch.no_grad():
        for _ in range(30):
            m(torch.randn(4, 40, 6516), torch.tensor([40] * 4))
    m.eval()
    x = torch.randn(1, 40, 6516)
    out = m(x, torch.tensor([40]))[:, 0]  # [T, V]
    assert out.std(0).mean() > 1e-3  # timesteps differ
    y = x.clone()
    y[0, 5] += 3.0  # a change at frame 5 ...
    diff = (m(y, torch.tensor([40]))[:, 0] - out).abs().sum(-1)
    assert diff[5] > 0 and diff[5] > diff[35]  # ... acts at frame 5, most there
    assert not any(isinstance(mod, torch.nn.AdaptiveAvgPool1d) for mod in m.modules())


@pytest.mark.parametrize("blocks", [1, 2, 3, 6, 11])
def test_four_times_downsampling_for_any_block_count(blocks):
    strides = block_strides(blocks)
    assert len(strides) == blocks
    product = 1
    for s in strides:
        product *= s
    assert product == 4


def test_padding_never_leaks_into_real_frames():
    m = _model()
    x = torch.randn(3, 30, 6516)
    lengths = torch.tensor([30, 17, 9])
    batched = m(x, lengths)
    for i, n in enumerate(lengths.tolist()):
        alone = m(x[i: i + 1, :n], lengths[i: i + 1])
        assert torch.allclose(alone[:, 0], batched[:n, i], atol=1e-4)
    # garbage in the padding changes nothing
    x2 = x.clone()
    x2[2, 9:] = 100.0
    assert torch.allclose(m(x2, lengths)[:9, 2], batched[:9, 2], atol=1e-4)


def test_seed_bug_4_model_size_is_configurable():
    small, big = _model(num_blocks=2, lstm_layers=1), _model(num_blocks=8, lstm_layers=3)
    assert sum(isinstance(b, MobileNetV3Block) for b in small.modules()) == 2
    assert sum(isinstance(b, MobileNetV3Block) for b in big.modules()) == 8
    assert small.lstm.num_layers == 1 and big.lstm.num_layers == 3
    assert big.num_parameters() > small.num_parameters()


def test_optional_cross_modal_attention():
    dims = {"pose": 32, "hands": 32, "face": 32, "temporal": 32}
    m = _model(encoder_dims=dims, cross_modal_attention=True)
    assert m.cross is not None
    assert m(torch.randn(2, 9, 6516), torch.tensor([9, 5])).shape == (9, 2, 20)
    assert _model().cross is None  # off by default


def test_encoder_names_must_match_the_layout():
    with pytest.raises(ConfigError, match="model.encoder_dims"):
        _model(encoder_dims={"pose": 64, "hands": 128})


@pytest.mark.parametrize("bias", [True, False])
def test_pointwise_is_a_1x1_conv_with_the_same_parameters(bias):
    from slr.model import Pointwise
    conv, pw = torch.nn.Conv1d(24, 40, 1, bias=bias), Pointwise(24, 40, bias=bias)
    pw.load_state_dict(conv.state_dict())  # same names and shapes: checkpoints of either load into the other
    x = torch.randn(3, 24, 17)
    assert torch.equal(pw(x), conv(x)) and pw(x).shape == (3, 40, 17)  # fp32: exactly a Conv1d
    xb, pb = x.bfloat16(), Pointwise(24, 40, bias=bias).to(torch.bfloat16)
    pb.load_state_dict(conv.state_dict())
    assert pb(xb).dtype == torch.bfloat16 and torch.allclose(pb(xb).float(), conv(x), atol=0.1, rtol=0.05)


def test_folding_batch_norm_keeps_the_output_and_the_model():
    torch.manual_seed(0)
    m = _model(num_blocks=3)
    for bn in (mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm1d)):  # trained-like statistics
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.2, 3.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.normal_(0, 0.3)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    folded = fold_batch_norm(m)
    assert not any(isinstance(mod, torch.nn.BatchNorm1d) for mod in folded.modules())
    assert sum(isinstance(mod, torch.nn.BatchNorm1d) for mod in m.modules()) == 3 * 3 + 3  # blocks, stem, up, proj
    x, lengths = torch.randn(2, 37, 6516), torch.tensor([37, 22])
    with torch.no_grad():
        ref, out = m(x, lengths), folded(x, lengths)
    assert ref.std() > 0.01 and torch.allclose(out, ref, atol=1e-4), (out - ref).abs().max()
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    with pytest.raises(ValueError, match="training mode.*model.eval"):
        fold_batch_norm(m.train())


def test_frame_skip_off_is_the_seed_model_exactly():
    """model.frame_skip=false builds the seed's layers only, initialized as before the skip existed."""
    torch.manual_seed(0)
    seed = _model(frame_skip=False)
    torch.manual_seed(0)
    skip = _model()
    assert seed.frame_skip is None and skip.frame_skip is not None and seed.aux_head is None
    extra = set(skip.state_dict()) - set(seed.state_dict())
    assert extra == {"frame_skip.weight", "frame_skip.bias"}
    assert all(torch.equal(v, skip.state_dict()[k]) for k, v in seed.state_dict().items())


def test_frame_skip_carries_each_frame_to_the_lstm():
    m = _model(dropout=0.0)
    x = torch.randn(2, 24, 6516)
    lengths = torch.tensor([24, 15])
    with torch.no_grad():
        h = m.encode(x, torch.arange(24)[None] < lengths[:, None])
        down, mask, embedded = m.encode_down(x, torch.arange(24)[None] < lengths[:, None])
        seed_path = m.upsample_project.__func__(type("NoSkip", (), {"upsample": m.upsample, "projection": m.projection,
                                                                       "frame_skip": None, "stride": 1})(), down, mask, embedded)
    assert torch.allclose(h - seed_path, m.frame_skip(embedded) * mask[:, 0, :24, None], atol=1e-5)


def test_auxiliary_head_at_a_quarter_of_the_frames():
    m = _model(aux_ctc_weight=1.0)
    for T in (1, 5, 8, 13):
        log_probs, aux = m.forward_train(torch.randn(2, T, 6516), torch.tensor([T, max(1, T - 3)]))
        assert log_probs.shape == (T, 2, 20) and aux.shape == ((T + 3) // 4, 2, 20)
        assert torch.allclose(aux.exp().sum(-1), torch.ones(aux.shape[:2]), atol=1e-4)
    assert _model().forward_train(torch.randn(1, 8, 6516), torch.tensor([8]))[1] is None  # off: no head


def test_a_checkpoint_from_before_the_frame_skip_loads_as_the_seed_model(tmp_path):
    from slr import checkpoint
    from slr.config import Config
    from slr.evaluate import load_model
    cfg = Config().override({"model.frame_skip": False})
    features = FeaturePipeline(cfg.features)
    model = Student(cfg.model, features.spans, 5)
    old = cfg.to_dict()
    del old["model"]["frame_skip"], old["augment"]  # the config as checkpoints wrote it before these keys
    checkpoint.save(dict(config=old, vocab=["<blank>", "<unk>", "A", "B", "C"], model=model.state_dict(),
                         features=features.state_dict(), fps=25.0), tmp_path / "old.pt")
    loaded_cfg, _, _, loaded = load_model(tmp_path / "old.pt")
    assert loaded_cfg.model.frame_skip is False and loaded.frame_skip is None


# -- the VAC-style baseline (model.arch: vac) -----------------------------------------------------------
def _vac(**changes):
    from slr.model import build_model
    spans = FeaturePipeline(FeaturesConfig()).spans
    return build_model(ModelConfig(arch="vac", **changes), spans, 20).eval()


@pytest.mark.parametrize("T", [16, 17, 19, 20, 31, 64, 101])
def test_vac_emits_vacs_quarter_rate_and_its_length_rule_is_exact(T):
    from slr.model import VacBaseline
    m = _vac()
    assert isinstance(m, VacBaseline)
    lengths = torch.tensor([T, T - 1, 16])
    out = m(torch.randn(3, T, 6516), lengths)
    n = m.output_lengths(lengths)
    assert n.tolist() == [((t - 4) // 2 - 4) // 2 for t in lengths.tolist()]  # VAC's update_lgt for K5-P2-K5-P2
    assert out.shape == (int(n.max()), 3, 20)
    assert torch.allclose(out.exp().sum(-1), torch.ones(out.shape[:2]), atol=1e-4)
    # input_frames inverts the rule: the fewest input frames with k output frames
    for k in (1, 2, 5, 9):
        need = m.input_frames(k)
        assert m.output_lengths(torch.tensor(need)) == k and m.output_lengths(torch.tensor(need - 1)) == k - 1


def test_vac_padding_never_leaks_into_real_frames():
    torch.manual_seed(0)
    m = _vac()
    x = torch.randn(3, 60, 6516)
    lengths = torch.tensor([60, 37, 16])
    batched = m(x, lengths)
    noisy = x.clone()
    for i, n in enumerate(lengths.tolist()):
        noisy[i, n:] = 1e3 * torch.randn_like(noisy[i, n:])
        k = int(m.output_lengths(lengths[i]))
        alone = m(x[i: i + 1, :n], lengths[i: i + 1])
        assert alone.shape[0] == k
        assert torch.allclose(alone[:, 0], batched[:k, i], atol=1e-4)
        assert torch.allclose(m.forward_sentence(x[i: i + 1, :n])[:, 0], batched[:k, i], atol=1e-4)
    assert torch.allclose(m(noisy, lengths), batched, atol=1e-4)  # garbage in the padding changes nothing


def test_vac_keys_are_checked_and_named():
    with pytest.raises(ConfigError, match="model.arch"):
        ModelConfig(arch="transformer")
    with pytest.raises(ConfigError, match="model.vac.width"):
        from slr.config import Config
        Config.from_dict({"model": {"arch": "vac", "vac": {"width": 0}}})
    with pytest.raises(ConfigError, match="model.aux_ctc_weight"):
        ModelConfig(arch="vac", aux_ctc_weight=0.5)


def test_vac_sizes_come_from_model_vac_and_ignore_the_students_keys():
    from slr.config import VacConfig
    small, wide = _vac(vac=VacConfig(width=64, hidden_dim=32)), _vac(vac=VacConfig(width=128, hidden_dim=32))
    assert small.num_parameters() < wide.num_parameters()
    assert _vac(num_blocks=2, hidden_dim=999, vac=VacConfig(width=64, hidden_dim=32)).num_parameters() == \
        small.num_parameters()
    assert _vac(vac=VacConfig(lstm_layers=2)).lstm.num_layers == 2


# the student at a stride: upsample false (BiLSTM and CTC on the T/4 block features), or half way up (T/2)
STRIDED = [pytest.param({"upsample": False}, 4, id="T/4"), pytest.param({"upsample_factor": 2}, 2, id="T/2")]


@pytest.mark.parametrize("changes,stride", STRIDED)
@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 7, 13, 31, 64])
def test_a_strided_student_emits_one_frame_per_stride(T, changes, stride):
    """model.upsample: false: ceil(T/4) frames; upsample_factor 2: ceil(T/2); input_frames inverts it."""
    m = _model(num_blocks=3, **changes)
    lengths = torch.tensor([T, max(1, T - 2)])
    out = m(torch.randn(2, T, 6516), lengths)
    n = m.output_lengths(lengths)
    assert n.tolist() == [-(-t // stride) for t in lengths.tolist()] and out.shape == (int(n.max()), 2, 20)
    assert torch.allclose(out.exp().sum(-1), torch.ones(out.shape[:2]), atol=1e-4)
    assert m.rate == (stride, (stride - 1) / 2) and _model().rate == (1, 0.0)
    for k in (1, 2, 5):
        need = m.input_frames(k)
        assert m.output_lengths(torch.tensor(need)) == k and m.output_lengths(torch.tensor(need - 1)) == k - 1


@pytest.mark.parametrize("changes,stride", STRIDED)
def test_a_strided_student_never_leaks_padding_and_each_frame_reads_its_own_inputs(changes, stride):
    torch.manual_seed(0)
    m = _model(num_blocks=2, **changes)
    x = torch.randn(3, 30, 6516)
    lengths = torch.tensor([30, 17, 9])
    batched = m(x, lengths)
    noisy = x.clone()
    for i, n in enumerate(lengths.tolist()):
        noisy[i, n:] = 1e3 * torch.randn_like(noisy[i, n:])
        k = int(m.output_lengths(lengths[i]))
        alone = m(x[i: i + 1, :n], lengths[i: i + 1])
        assert alone.shape[0] == k and torch.allclose(alone[:, 0], batched[:k, i], atol=1e-4)
        assert torch.allclose(m.forward_sentence(x[i: i + 1, :n])[:, 0], batched[:k, i], atol=1e-4)
    assert torch.allclose(m(noisy, lengths), batched, atol=1e-4)  # garbage in the padding changes nothing
    # the frame skip: nudging input frame 13 changes the output frame covering it most (T/4: 3, frames 12-15;
    # T/2: 6, frames 12-13)
    y = x[:1].clone()
    y[0, 13] += 3.0
    diff = (m(y, lengths[:1]) - batched[:, :1]).abs().sum(-1)[:, 0]
    assert int(diff.argmax()) == 13 // stride
