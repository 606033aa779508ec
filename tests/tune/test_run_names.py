"""MLflow run names a person can read (tune.tracking.run_name)."""

from tune.tracking import run_name


def test_searched_values_are_named_short():
    name = run_name("t04", {"train.learning_rate": 0.001, "model.num_blocks": 8, "model.lstm_layers": 1})
    assert name == "t04 lr=1.0e-3 blocks=8 lstm=1"


def test_floats_read_plainly_in_the_middle_and_in_powers_of_ten_outside():
    assert run_name("t01", {"model.dropout": 0.25, "train.weight_decay": 3.2e-5, "augment.rotation": 12.5}) == \
        "t01 drop=0.25 wd=3.2e-5 rotation=12.5"
    assert run_name("t01", {"model.dropout": 0.0}) == "t01 drop=0"


def test_other_keys_by_their_last_part_and_names_fit_mlflow():
    assert run_name("rerank #1 seed=2", {"model.arch": "vac", "augment.mirror": True}) == \
        "rerank #1 seed=2 arch=vac mirror=True"
    assert len(run_name("t01", {f"model.key{i}": i for i in range(200)})) == 250
