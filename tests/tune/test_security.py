"""Ray token authentication on loopback: a client without the cluster's token is refused, one with it
connects, and the token never appears in what `ray start` prints."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]
RAY = str(Path(sys.executable).parent / "ray")
CONNECT = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
           "print('NODES', len(ray.nodes())); ray.shutdown()")


def _client(address: str, token: str, retries: int = 20) -> subprocess.CompletedProcess:
    # retries: Ray's connect attempts, ~1 s apart (RAY_NUM_REDIS_GET_RETRIES, 20 by default)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "RAY_NUM_REDIS_GET_RETRIES": str(retries)}
    return subprocess.run([sys.executable, "-c", CONNECT, address], env=env, capture_output=True, text=True,
                          timeout=120)


def test_a_client_without_the_token_is_refused(tmp_path, services):
    token = secrets.token_hex(32)
    port = services.free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    log = tmp_path / "head.log"
    head = subprocess.Popen([RAY, "start", "--block", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                             "--num-cpus", "1", "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        ok = _client(address, token)
        while ok.returncode != 0 and time.time() < deadline:  # the head may still be starting
            time.sleep(2)
            ok = _client(address, token)
        assert ok.returncode == 0 and "NODES 1" in ok.stdout, ok.stderr[-2000:]

        wrong = _client(address, secrets.token_hex(32), retries=3)  # refused every time: no need to wait 20 s
        assert wrong.returncode != 0
        assert "NODES" not in wrong.stdout
        assert any(w in wrong.stderr.lower() for w in ("auth", "unauthenticated", "token")), wrong.stderr[-2000:]
    finally:
        services.stop(head)
    assert token not in log.read_text()
