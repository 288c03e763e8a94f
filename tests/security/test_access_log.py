"""#16: the access log of a real `incident serve` names route templates, never the signed
acknowledgement links or inbound secrets in request paths and query strings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import PLAYBOOKS
from tests.peers import free_port

ROOT = Path(__file__).resolve().parents[2]
ACK_TOKEN = "eyJyIjo0MiwibiI6ImFiY2RlZiIsImUiOjk5OTk5OTk5OTl9.c2lnbmF0dXJlLXNlY3JldA"
QUERY_SECRET = "q-secret-1f2e3d"
HEADER_SECRET = "h-secret-9a8b7c"


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_access_log_of_a_real_server_names_routes_never_tokens_or_secrets(
    database_url: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    env.update(
        INCIDENT_DATABASE_URL=database_url,
        INCIDENT_PLAYBOOKS_DIR=str(PLAYBOOKS),
        INCIDENT_LOG_LEVEL="INFO",
        INCIDENT_LOG_FORMAT="json",
        INCIDENT_INBOUND_SECRET="the-inbound-secret",
        INCIDENT_EMBEDDED_WORKER="false",
    )
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "incident", "serve", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(base):
            assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get(f"/ack/{ACK_TOKEN}?k={QUERY_SECRET}").status_code == 404
            reply = http.post(
                f"/inbound/sms?secret={QUERY_SECRET}",
                headers={"X-Incident-Secret": HEADER_SECRET},
                json={"from": "inbox://li.na", "text": "1"},
            )
            assert reply.status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(20)
    text = log_path.read_text()
    for secret in (ACK_TOKEN, ACK_TOKEN[:20], QUERY_SECRET, HEADER_SECRET):
        assert secret not in text, f"{secret[:12]}... is in the log:\n{text[-3000:]}"
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    requests = {
        (e["method"], e["route"], e["status"]) for e in lines if e["event"] == "http_request"
    }
    assert ("GET", "/ack/{token}", 404) in requests, text[-3000:]
    assert ("POST", "/inbound/{channel}", 401) in requests, text[-3000:]
