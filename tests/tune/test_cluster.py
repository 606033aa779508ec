from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_cluster_yaml_passes_rays_schema_validator():
    from ray.autoscaler._private.util import prepare_config, validate_config
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` runs first; raises on a schema violation
    assert config["provider"]["type"] == "aws"


def test_cluster_opens_only_ssh_and_uses_token_auth():
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    ports = config["provider"]["security_group"]["IpPermissions"]
    assert [(p["FromPort"], p["ToPort"]) for p in ports] == [(22, 22)]
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if c.strip().startswith("RAY_AUTH_MODE") or "ray start" in c)
    assert "--dashboard-host=127.0.0.1" in " ".join(config["head_start_ray_commands"])
    gpu_types = [t for t in config["available_node_types"].values() if t["resources"].get("GPU")]
    assert gpu_types and all(t["min_workers"] == 0 for t in gpu_types)


def test_mlflow_dir_never_shadows_the_real_package():
    assert not (ROOT / "mlflow" / "__init__.py").exists()
    import mlflow
    assert hasattr(mlflow, "MlflowClient") and "site-packages" in mlflow.__file__
