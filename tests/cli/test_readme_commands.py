"""The README's first command serves the API with the demo data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.peers import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scripts_serve_serves_the_api_with_demo_data(database_url: str, tmp_path: Path) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the embedded default is SQLite")
    readme = (ROOT / "README.md").read_text()
    assert "\n./scripts/serve\n" in readme and "\n./scripts/test\n" in readme
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "INCIDENT_DATABASE_URL": f"sqlite:///{tmp_path}/demo.db",
        "INCIDENT_LOG_LEVEL": "WARNING",
    }
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(ROOT / "scripts" / "serve"), "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail(log.read_text()[-2000:])
        found = re.search(r"demo user duty \(duty_manager\): token (\S+)", log.read_text())
        assert found, log.read_text()[-2000:]
        headers = {"Authorization": f"Bearer {found.group(1)}"}
        playbooks = httpx.get(f"{base}/api/playbooks", headers=headers).json()["items"]
        assert len(playbooks) >= 5
        declared = httpx.post(
            f"{base}/api/incidents",
            headers=headers,
            json={
                "playbook": "mass-delay",
                "severity": "III",
                "title": "Demo",
                "facts": {"line": "G", "trains_affected": 3, "expected_delay_min": 70},
            },
        )
        assert declared.status_code == 201, declared.text
        pages: list[dict[str, object]] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not pages:
            pages = httpx.get(
                f"{base}/api/incidents/{declared.json()['id']}/pages", headers=headers
            ).json()["items"]
            time.sleep(0.2)
        assert pages, "the embedded worker fired the activation stage"
        inbox = httpx.get(f"{base}/demo/inbox", headers={"Accept": "application/json"})
        deadline = time.monotonic() + 20
        while not inbox.json()["items"] and time.monotonic() < deadline:
            time.sleep(0.2)
            inbox = httpx.get(f"{base}/demo/inbox", headers={"Accept": "application/json"})
        assert inbox.json()["items"], "pages reached the demo inbox"
        assert (tmp_path / "demo-tokens.txt").exists()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)
