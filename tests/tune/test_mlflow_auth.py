"""The cluster tracking server (`mlflow/cluster.sh`, basic-auth app) on loopback with a sqlite backend:
requests without credentials are refused; the sweep tracker authenticates with credentials from its
environment; the password never appears on any process's command line."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "slr-test-admin-pw-7d2e"


def _status(url: str, auth: str | None = None) -> int:
    req = urllib.request.Request(url)
    if auth:
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # basic auth hashes the password: slow under load
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_cluster_server_requires_credentials_from_the_environment(tmp_path, services, monkeypatch):
    port = services.free_port()
    env = {**os.environ, "MLFLOW_BACKEND_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
           "MLFLOW_ARTIFACTS_URI": str(tmp_path / "artifacts"), "MLFLOW_ADMIN_PASSWORD": PASSWORD,
           "MLFLOW_PORT": str(port), "MLFLOW_WORKERS": "1", "MLFLOW_STATE_DIR": str(tmp_path / "state"),
           "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(["bash", str(ROOT / "mlflow" / "cluster.sh")], env=env, start_new_session=True,
                            stdout=open(tmp_path / "server.log", "ab"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=1"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                code = _status(url)
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError((tmp_path / "server.log").read_text()[-2000:])
        assert code == 401  # no credentials: refused
        assert _status(url, f"admin:{PASSWORD}") == 200
        assert _status(url, "admin:wrong") == 401

        cmdlines = [p.read_bytes() for p in Path("/proc").glob("[0-9]*/cmdline") if p.exists()]
        assert not any(PASSWORD.encode() in c for c in cmdlines)  # never on a command line
        config = tmp_path / "state" / "basic_auth.ini"
        assert oct(config.stat().st_mode & 0o777) == "0o600"

        from tune.tracking import SweepTracker
        uri = f"http://127.0.0.1:{port}"
        # the tracker's 10-s request timeout fails fast on a dead server; this one is alive but hashes the password
        # on every request, with one worker, beside two other test processes (a 10-s read timeout was seen in CI)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
        tracker = SweepTracker(uri, "authed", "authed", tmp_path)
        assert tracker.start({"x": 1})  # the parent run is created with the environment's credentials
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
        with pytest.raises(Exception, match="401|Unauthorized|credentials"):
            SweepTracker(uri, "authed", "authed", tmp_path).start({"x": 1})
    finally:
        services.stop(proc)
