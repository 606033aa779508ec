from pathlib import Path

import pytest
import yaml

from slr.config import ConfigError
from tune.experiment import check_resources, from_dict, load_experiment

ROOT = Path(__file__).resolve().parents[2]


def _raw(**changes):
    raw = dict(name="t", corpus={"path": "corpora/x"}, config={"train": {"epochs": 4}},
               space={"train.learning_rate": {"type": "loguniform", "low": 1e-4, "high": 1e-2}})
    raw.update(changes)
    return raw


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_experiment_validates_and_opens_with_its_command(path):
    spec = load_experiment(path)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# Run:") and path.name in first
    assert spec.num_trials >= 1 and spec.space


def test_the_fast_recipe_draws_only_students_far_cheaper_than_the_baseline():
    """experiments/fast.yaml's header: every configuration it can draw is a student for one CPU core. Its costliest
    corner (the largest value of every size key) has under a quarter of the VAC-style baseline's model FLOPs per
    frame (timings live in benchmarks/baseline.py; FLOPs are what a test can hold fixed)."""
    from slr.config import Config
    from slr.cost import measure
    from slr.features import FeaturePipeline
    from slr.model import build_model

    def mflops(cfg: Config) -> float:
        features = FeaturePipeline(cfg.features)
        return measure(["mflops"], features, build_model(cfg.model, features.spans, 27), 25.0)["mflops"]

    spec = load_experiment(ROOT / "experiments" / "fast.yaml")
    sizes = ("model.num_blocks", "model.block_channels", "model.hidden_dim", "model.block_kernel",
             "model.lstm_layers", "model.bottleneck_channels")
    corner = {k: (max(p.values) if p.type == "choice" else p.high) for k, p in spec.space.items() if k in sizes}
    assert {"model.num_blocks", "model.block_channels", "model.hidden_dim"} <= set(corner)
    base = spec.base_config()
    assert base.features.temporal == ["velocity"] and not base.model.upsample
    assert mflops(base.override(corner)) < mflops(Config().override({"model.arch": "vac"})) / 4


@pytest.mark.parametrize("changes, key", [
    (dict(bogus=1), "bogus"),
    (dict(name="bad name!"), "name"),
    (dict(space={"train.learning_rat": {"type": "uniform", "low": 0, "high": 1}}), "space.train.learning_rat"),
    (dict(space={"model.dropout": {"type": "uniform", "low": 0.5, "high": 0.1}}), "space.model.dropout"),
    (dict(space={"model.dropout": {"type": "uniform", "low": 0.2, "high": 0.2}}), "space.model.dropout"),
    (dict(space={"train.learning_rate": {"type": "loguniform", "low": 0, "high": 1e-2}}), "space.train.learning_rate.low"),
    (dict(space={"model.dropout": {"type": "uniform", "low": 0.0, "high": 1.5}}), "space.model.dropout"),
    (dict(space={"model.lstm_layers": {"type": "choice", "values": []}}), "space.model.lstm_layers.values"),
    (dict(space={"model.num_blocks": {"type": "normal", "low": 1, "high": 3}}), "space.model.num_blocks.type"),
    (dict(space={"model.num_blocks": {"type": "int", "low": "one", "high": 3}}), "space.model.num_blocks.low"),
    (dict(num_trials=0), "num_trials"),
    (dict(reuse_workers="yes"), "reuse_workers"),
    (dict(tensorboard=1), "tensorboard"),
    (dict(resources={"cpu": 1, "gpu": 0.3}), "resources.gpu"),
    (dict(scheduler={"type": "hyperband"}), "scheduler.type"),
    (dict(scheduler={"max_epochs": 10}), "scheduler.max_epochs"),
    (dict(config={"train": {"learning_rate": -1}}), "train.learning_rate"),
    (dict(storage_path="/etc/hostname/sweeps"), "storage_path"),  # below a file
    (dict(scheduler={"metric": "train_loss"}), "scheduler.metric"),
    (dict(storage_path="ftp://host/sweeps"), "storage_path"),
    (dict(storage_path="s3://bucket/sweeps", local_path="/etc/hostname/x"), "local_path"),
    # values a searcher can draw must build a valid config, not only the range's ends or the first choice
    (dict(space={"model.num_blocks": {"type": "uniform", "low": 2, "high": 8}}), "space.model.num_blocks.type"),
    (dict(space={"model.block_kernel": {"type": "int", "low": 3, "high": 7}}), "space.model.block_kernel"),
    (dict(space={"model.lstm_layers": {"type": "choice", "values": [1, "two"]}}), "space.model.lstm_layers"),
    (dict(space={"model.dropout": {"type": "choice", "values": [0.1, 2.0]}}), "space.model.dropout"),
    (dict(space={"augment.rotation": {"type": "uniform", "low": 0, "high": 200}}), "space.augment.rotation"),
    # checked here, not by a Ray traceback after start (the lifecycle issue)
    (dict(scheduler={"grace_period": 5}), "scheduler.grace_period"),  # train.epochs is 4
    (dict(storage_path=""), "storage_path"),
    (dict(corpus={"path": "corpora/x", "synth": "huge"}), "corpus.synth"),
    (dict(searcher={"seed": -1}), "searcher.seed"),
    (dict(config={"train": {"learning_rate": float("inf")}}), "train.learning_rate"),
    (dict(config={"train": {"warmup_epochs": float("inf")}}), "train.warmup_epochs"),
    (dict(config={"model": {"dropout": float("nan")}}), "model.dropout"),
    (dict(name="nl\n"), "name"),
    (dict(num_trials=True), "num_trials"),
    (dict(max_concurrent=2.5), "max_concurrent"),
    # a trial sets these itself: the drawn value would be recorded as if it had been used
    (dict(space={"train.epochs": {"type": "int", "low": 2, "high": 4}}), "space.train.epochs"),
    (dict(space={"data.corpus": {"type": "choice", "values": ["a", "b"]}}), "space.data.corpus"),
    (dict(space={"train.device": {"type": "choice", "values": ["cpu", "cuda"]}}), "space.train.device"),
])
def test_bad_experiments_name_the_key(changes, key):
    with pytest.raises(ConfigError) as err:
        from_dict(_raw(**changes))
    assert err.value.key == key, str(err.value)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(_raw(num_trials=-1)))
    with pytest.raises(ConfigError, match=str(path)):
        load_experiment(path)


def test_resources_larger_than_any_node():
    spec = from_dict(_raw(resources={"cpu": 1, "gpu": 1}))
    with pytest.raises(ConfigError, match="no node can run a trial"):
        check_resources(spec, [{"CPU": 8.0}, {"CPU": 2.0}])
    check_resources(spec, [{"CPU": 8.0}, {"CPU": 2.0, "GPU": 1.0}])


def test_baseline_is_the_seed_clipped_to_the_space():
    spec = from_dict(_raw(space={"train.learning_rate": {"type": "loguniform", "low": 1e-3, "high": 1e-2},
                                 "model.num_blocks": {"type": "int", "low": 2, "high": 8}}))
    assert spec.baseline() == {"train.learning_rate": 1e-3, "model.num_blocks": 6}


def test_overrides_apply_before_validation(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(_raw()))
    spec = load_experiment(path, ["num_trials=3", "config.train.epochs=2"])
    assert spec.num_trials == 3 and spec.base_config().train.epochs == 2


def test_space_keys_can_be_overridden_on_the_command_line(tmp_path):
    """The searched key holds dots itself: ``space.train.learning_rate.low=...`` sets one field of its
    distribution, ``space.model.dropout={...}`` adds a whole one."""
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(_raw()))
    spec = load_experiment(path, ["space.train.learning_rate.low=1.0e-4", "space.train.learning_rate.high=3e-3",
                                  "space.model.dropout={type: uniform, low: 0.0, high: 0.2}"])
    assert (spec.space["train.learning_rate"].low, spec.space["train.learning_rate"].high) == (1e-4, 3e-3)
    assert spec.space["train.learning_rate"].type == "loguniform"
    assert (spec.space["model.dropout"].type, spec.space["model.dropout"].high) == ("uniform", 0.2)
    with pytest.raises(ConfigError) as err:
        load_experiment(path, ["space.train.learning_rate.low=0"])
    assert err.value.key == "space.train.learning_rate.low"


def test_home_relative_paths_mean_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = from_dict(_raw(storage_path="~/sweeps", corpus={"path": "~/corpora/x"}))
    assert spec.sweep_dir == tmp_path / "sweeps" / "t"
    assert spec.corpus.path == str(tmp_path / "corpora" / "x")


def test_a_uri_storage_path_keeps_the_driver_files_local(tmp_path):
    spec = from_dict(_raw(storage_path="s3://bucket/team/sweeps?scheme=http", local_path=str(tmp_path)))
    assert spec.remote and spec.sweep_dir == tmp_path / "t"
    assert spec.sweep_uri == "s3://bucket/team/sweeps/t?scheme=http"
    assert spec.ray_storage == "s3://bucket/team/sweeps?scheme=http"
    assert spec.optuna_storage == f"sqlite:///{tmp_path / 't' / 'optuna.db'}"
    local = from_dict(_raw(storage_path=str(tmp_path / "s")))
    assert not local.remote and local.sweep_uri == str(tmp_path / "s" / "t") == str(local.sweep_dir)
    shared = from_dict(_raw(searcher={"storage": "postgresql://db/optuna"}))
    assert shared.optuna_storage == "postgresql://db/optuna"


def test_config_error_survives_pickling():
    """Trials raise it in Ray workers; the driver must get the same error back, not a TypeError."""
    import pickle
    err = ConfigError("model.num_blocks", 4.5, "must be int", source="x.yaml")
    back = pickle.loads(pickle.dumps(err))
    assert (back.key, back.value, back.rule, back.source, str(back)) == (err.key, err.value, err.rule, err.source,
                                                                         str(err))


def test_tensorboard_is_off_by_default_and_an_old_sweeps_experiment_yaml_is_unchanged():
    """Off by default (tune.callbacks.tensorboard_logger); at its default the key is left out of experiment.yaml, so
    that a sweep started before the key existed resumes (--resume compares the two)."""
    assert from_dict(_raw()).tensorboard is False and "tensorboard" not in from_dict(_raw()).to_dict()
    on = from_dict(_raw(tensorboard=True))
    assert on.tensorboard is True and from_dict(on.to_dict()).tensorboard is True


# -- objectives (multi-objective sweeps) ----------------------------------------------------------------------
def test_objectives_are_dev_wer_and_costs_validated_before_ray_starts():
    spec = from_dict(_raw(objectives=[{"metric": "dev_wer", "mode": "min"}, {"metric": "latency_ms", "mode": "min"},
                                      {"metric": "params", "mode": "min"}]))
    assert spec.costs == ["latency_ms", "params"]
    assert from_dict(_raw()).costs == [] and "objectives" not in from_dict(_raw()).to_dict()  # one objective: as before
    assert from_dict(spec.to_dict()).objectives == spec.objectives  # experiment.yaml round trip


@pytest.mark.parametrize("objectives, key", [
    ([{"metric": "dev_wer", "mode": "min"}, {"metric": "watts", "mode": "min"}], r"objectives\[1\]\.metric"),
    ([{"metric": "dev_wer", "mode": "min"}, {"metric": "params"}], r"objectives\[1\]\.mode"),
    ([{"metric": "dev_wer"}, {"metric": "params", "mode": "min"}], r"objectives\[0\]\.mode"),
    ([{"metric": "dev_wer", "mode": "min"}, {"metric": "params", "mode": "min"}, {"metric": "mflops", "mode": "min"},
      {"metric": "latency_ms", "mode": "min"}], "at most 3"),
    ([{"metric": "params", "mode": "min"}, {"metric": "mflops", "mode": "min"}], "must include dev_wer"),
    ([{"metric": "dev_wer", "mode": "min"}], "at least one cost"),
    ([{"metric": "dev_wer", "mode": "max"}, {"metric": "params", "mode": "min"}], "dev_wer is minimized"),
    ([{"metric": "dev_wer", "mode": "min"}, {"metric": "params", "mode": "min"}, {"metric": "params", "mode": "min"}],
     "each metric once"),
    ([{"metric": "dev_wer", "mode": "min", "weight": 2}, {"metric": "params", "mode": "min"}], r"objectives\[0\]\.weight"),
    ("dev_wer", "must be a list"),
])
def test_bad_objectives_name_the_key(objectives, key):
    with pytest.raises(ConfigError, match=key):
        from_dict(_raw(objectives=objectives))


def test_an_entry_of_a_dict_valued_key_is_searchable(tmp_path):
    """model.encoder_dims is one config key holding a dict: its entries (the modality widths, the largest share of
    the student's latency) are searched as model.encoder_dims.<modality>; a modality the layout lacks is refused."""
    from tune.trainable import trial_config
    spec = from_dict(dict(name="x", corpus={"path": "x"}, storage_path=str(tmp_path),
                          space={"model.encoder_dims.face": {"type": "choice", "values": [16, 64]}}))
    cfg = trial_config(spec.base_config().to_dict(), {"model.encoder_dims.face": 16}, 3)
    assert cfg.model.encoder_dims == {"pose": 64, "hands": 128, "face": 16, "temporal": 128}
    with pytest.raises(ConfigError, match="space.model.encoder_dims.feet"):
        from_dict(dict(name="x", corpus={"path": "x"}, storage_path=str(tmp_path),
                       space={"model.encoder_dims.feet": {"type": "choice", "values": [16, 64]}}))
    with pytest.raises(ConfigError, match="space.model.encoder_dims.face.*must be an int >= 1"):
        from_dict(dict(name="x", corpus={"path": "x"}, storage_path=str(tmp_path),
                       space={"model.encoder_dims.face": {"type": "choice", "values": [0, 64]}}))
