"""Personal data: masked for viewers, never in logs (every logger at DEBUG), never in the
database file in clear, readable after a key rotation once the old key is gone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import InvalidToken
from sqlalchemy.engine import make_url

from incident.passengers import Vault
from incident.settings import Secret
from tests.canaries import FOREIGN_PASSENGER, PASSENGER_NUMBERS, PASSENGERS_ONLY, find
from tests.conftest import DEMO_ROSTER, PLAYBOOKS
from tests.passengers.conftest import KEY_A, KEY_B, Rig, manifest
from tests.passengers.gateway import Gateway
from tests.passengers.test_manifests import open_group, upload
from tests.peers import free_port

CANARIES = PASSENGER_NUMBERS[1:5]  # 13987654321 .. 13987654324 (tests/canaries.py)


def leaks(data: bytes) -> list[str]:
    """Any passenger canary, raw, E.164, spaced or dashed (the suite-wide detector)."""
    return find(data, PASSENGERS_ONLY)


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "incident", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def wait_until(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_no_phone_number_in_debug_logs_or_in_the_database_file(
    database_url: str, gateway: Gateway, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    env.update(
        INCIDENT_DATABASE_URL=database_url,
        INCIDENT_PLAYBOOKS_DIR=str(PLAYBOOKS),
        INCIDENT_DEMO_ROSTER=str(DEMO_ROSTER),
        INCIDENT_LOG_LEVEL="DEBUG",  # every logger: apprise, uvicorn (access log), ours
        INCIDENT_LOG_FORMAT="console",
        INCIDENT_DATA_KEYS=KEY_A,
        INCIDENT_SMS_GATEWAY=gateway.template(),
        INCIDENT_WORKER_POLL_SECONDS="0.05",
        INCIDENT_DELIVERY_ATTEMPTS="2",
        INCIDENT_DELIVERY_BACKOFF_SECONDS="0.01",
    )
    out = run_cli(["demo"], env, tmp_path)
    tokens = dict(re.findall(r"demo user (\w+) \([a-z_]+\): token (\S+)", out))
    duty = {"Authorization": f"Bearer {tokens['duty']}"}
    viewer = {"Authorization": f"Bearer {tokens['viewer']}"}
    staff = {"Authorization": f"Bearer {tokens['agent']}"}
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "incident", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    gateway.down = {"+86" + CANARIES[1]}  # its delivery fails: error paths log too
    try:
        wait_until(lambda: _ready(base))
        with httpx.Client(base_url=base, timeout=30) as http:
            # the server runs on the wall clock: stopped a minute ago, so no stage fires now
            stopped = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
            incident = http.post(
                "/api/incidents",
                json={
                    "playbook": "passenger-stranding",
                    "severity": "III",
                    "title": "G1234 stopped",
                    "facts": {"station": "Langfang", "passengers_stranded": 3,
                              "stopped_since": stopped},
                },
                headers=duty,
            ).json()["id"]  # fmt: skip
            group = http.post(
                f"/api/incidents/{incident}/passenger-groups",
                json={"train": "G1234", "station": "Langfang", "count": 3},
                headers=duty,
            ).json()["id"]
            spaced = f"{CANARIES[0][:3]} {CANARIES[0][3:7]} {CANARIES[0][7:]}"
            csv_text = manifest(
                [
                    ("张三", spaced, "01A", "01", "zh", "E1"),
                    ("Ann", f"+86-{CANARIES[1]}", "01B", "01", "en", "E2"),
                    ("李四", CANARIES[2], "01C", "01", "zh", "E3"),
                    ("Tom", "+61 491 570 156", "01D", "01", "en", "E4"),
                    ("坏", "12345", "", "", "", ""),
                ]
            )
            made = http.post(
                f"/api/passenger-groups/{group}/passengers",
                content=csv_text.encode(),
                headers={**duty, "Content-Type": "text/csv"},
            )
            assert made.status_code == 201, made.text
            masked = http.get(f"/api/passenger-groups/{group}/passengers", headers=viewer).json()
            assert [p["phone"] for p in masked["items"]] == [
                "139****4321",
                "139****4322",
                "139****4323",
                "491**0156",
            ]
            assert not leaks(str(masked).encode())
            full = http.get(f"/api/passenger-groups/{group}/passengers", headers=duty).json()
            assert full["items"][0]["phone"] == "+86" + CANARIES[0]
            assert (
                http.get(
                    f"/api/passenger-groups/{group}/passengers.csv", headers=viewer
                ).status_code
                == 403
            )
            exported = http.get(f"/api/passenger-groups/{group}/passengers.csv", headers=duty)
            assert ("+86" + CANARIES[2]) in exported.text
            broadcast = http.post(
                f"/api/passenger-groups/{group}/broadcasts",
                json={"texts": {"zh": "请在3号口集合。", "en": "Meet at exit 3."}},
                headers=duty,
            ).json()["id"]
            wait_until(
                lambda: (
                    http.get(f"/api/broadcasts/{broadcast}", headers=duty).json()["counts"]
                    == {"queued": 0, "sent": 3, "failed": 1}
                )
            )
            gateway.down.clear()
            http.post(f"/api/broadcasts/{broadcast}/resend", headers=duty)
            wait_until(
                lambda: (
                    http.get(f"/api/broadcasts/{broadcast}", headers=duty).json()["counts"]
                    == {"queued": 0, "sent": 4, "failed": 0}
                )
            )
            inquiry = http.post(
                f"/api/incidents/{incident}/inquiries",
                json={"phone": f"+86 {CANARIES[3]}", "question": "When?", "name": "赵六"},
                headers={**staff, "Idempotency-Key": "call-1"},
            )
            assert inquiry.status_code == 201, inquiry.text
            again = http.post(
                f"/api/incidents/{incident}/inquiries",
                json={"phone": f"+86 {CANARIES[3]}", "question": "When?", "name": "赵六"},
                headers={**staff, "Idempotency-Key": "call-1"},
            )
            assert again.json()["id"] == inquiry.json()["id"]
            http.get(f"/api/incidents/{incident}/inquiries", headers=viewer)
            http.get(f"/api/incidents/{incident}/passengers/summary", headers=viewer)
        assert sorted(gateway.numbers()) == sorted(  # once each; the failing one 2 + 1 times
            ["+86" + CANARIES[0], "+86" + CANARIES[1], "+86" + CANARIES[1], "+86" + CANARIES[1],
             "+86" + CANARIES[2], FOREIGN_PASSENGER]
        ), [(m.to, m.key) for m in gateway.received]  # fmt: skip
        files = _database_files(database_url)
        in_files = {str(p): leaks(p.read_bytes()) for p in files if p.exists()}
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(server.pid, signal.SIGKILL)
                server.wait(10)
    logged = log_path.read_bytes()
    assert b"DEBUG" in logged.upper()
    assert b"http_request" in logged and b"/api/passenger-groups/{group_id}" in logged  # access log
    assert b"Loaded JSON URL" in logged  # apprise's own DEBUG lines were captured
    assert leaks(logged) == []
    assert all(found == [] for found in in_files.values()), in_files
    after = {str(p): leaks(p.read_bytes()) for p in _database_files(database_url) if p.exists()}
    assert all(found == [] for found in after.values()), after


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _database_files(url: str) -> list[Path]:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return []
    main = Path(parsed.database)
    return [main, main.with_name(main.name + "-wal")]


def test_after_key_rotation_all_data_reads_without_the_old_key(
    rig: Rig, database_url: str, tmp_path: Path
) -> None:
    duty, staff = rig.auth("duty_manager"), rig.auth("staff")
    incident = rig.declare()
    group = open_group(rig, incident, duty)
    people = manifest(
        [("张三", "13812340001", "", "", "zh", "T1"), ("Ann", "13812340002", "", "", "en", "T2")]
    )
    assert upload(rig, group, people, duty).status_code == 201
    rig.gateway.down = {"+8613812340002"}
    broadcast = rig.client().post(
        f"/api/passenger-groups/{group}/broadcasts", json={"texts": {"zh": "好", "en": "OK"}},
        headers=duty,
    ).json()["id"]  # fmt: skip
    rig.worker.drain()
    inquiry = (
        rig.client()
        .post(
            f"/api/incidents/{incident}/inquiries",
            json={"phone": "13812340001", "question": "Q?", "callback": False},
            headers=staff,
        )
        .json()["id"]
    )
    rig.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    env.update(INCIDENT_DATABASE_URL=database_url, INCIDENT_DATA_KEYS=f"{KEY_B},{KEY_A}")
    rotated = run_cli(["passengers", "rotate-keys"], env, tmp_path)
    assert "old keys can be removed" in rotated

    rig.settings = replace(rig.settings, data_keys=Secret(KEY_B))  # the old key is gone
    with pytest.raises(InvalidToken):
        Vault.from_settings(replace(rig.settings, data_keys=Secret(KEY_A))).open(_any_sealed(rig))
    rig._client = None
    rig.worker = rig.make_worker(rig.settings)
    listed = rig.client().get(f"/api/passenger-groups/{group}/passengers", headers=duty).json()
    assert [p["phone"] for p in listed["items"]] == ["+8613812340001", "+8613812340002"]
    exported = rig.client().get(f"/api/passenger-groups/{group}/passengers.csv", headers=duty)
    assert "+8613812340002" in exported.text
    shown = rig.client().get(f"/api/inquiries/{inquiry}", headers=staff).json()
    assert shown["phone"] == "+8613812340001"
    matched = (
        rig.client()
        .post(
            f"/api/incidents/{incident}/inquiries",
            json={"phone": "13812340002", "question": "Again?", "callback": False},
            headers=staff,
        )
        .json()
    )
    assert matched["group"] == group  # the lookup hash was recomputed with the new key
    rig.gateway.down.clear()
    assert rig.client().post(f"/api/broadcasts/{broadcast}/resend", headers=duty).status_code == 202
    rig.worker.drain()
    assert rig.gateway.numbers().count("+8613812340002") >= 2
    view = rig.client().get(f"/api/broadcasts/{broadcast}", headers=duty).json()
    assert view["counts"] == {"queued": 0, "sent": 2, "failed": 0}
    assert {i["phone"] for i in view["items"]} == {"138****0001", "138****0002"}


def _any_sealed(rig: Rig) -> str:
    from sqlalchemy import select

    from incident.models import Passenger

    with rig.db.reading() as session:
        token = session.scalar(select(Passenger.personal).limit(1))
    assert token is not None
    return token


def test_the_worker_hook_opens_only_broadcast_addresses() -> None:
    from incident.passengers.broadcasts import UNOPENABLE, seal_address, sending_address
    from incident.settings import Settings

    settings = Settings(data_keys=Secret(KEY_A))
    sealed = seal_address(
        Vault.from_settings(settings), "+8613812340001", "json://gw/sms?:to={phone}"
    )
    assert "13812340001" not in sealed
    assert sending_address(sealed, settings) == "json://gw/sms?:to=%2B8613812340001"
    assert sending_address(sealed, Settings(data_keys=Secret(KEY_B))) == UNOPENABLE
    assert sending_address("json://other", settings) == "json://other"
