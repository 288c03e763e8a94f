"""#16: `db backup` and `db restore` never put the PostgreSQL password on the command line
(ps shows it to everyone) and a failure is one line with pg_dump's own message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-Sup3r-s3cret"
URL = f"postgresql+psycopg://incident:{PASSWORD}@db.example:5432/incident"
FAKE = """#!{python}
import json, os, sys
with open({record!r}, "w") as out:
    json.dump({{"argv": sys.argv, "pgpassword": os.environ.get("PGPASSWORD")}}, out)
if {fail!r}:
    print("pg_dump: error: connection to server at \\"db.example\\" failed: FATAL:  password "
          "authentication failed for user \\"incident\\"", file=sys.stderr)
    sys.exit(1)
for arg in sys.argv:
    if arg.startswith("--file="):
        open(arg[len("--file="):], "wb").write(b"PGDMP")
"""


def fake_tools(folder: Path, *, fail: bool) -> Path:
    """pg_dump and pg_restore stand-ins that record their arguments and environment."""
    record = folder / "record.json"
    for tool in ("pg_dump", "pg_restore"):
        path = folder / tool
        path.write_text(FAKE.format(python=sys.executable, record=str(record), fail=fail))
        path.chmod(0o755)
    return record


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INCIDENT_", "PG"))}
    env.update(
        INCIDENT_DATABASE_URL=URL,
        INCIDENT_LOG_LEVEL="WARNING",
        PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}",
    )
    return subprocess.run(
        [sys.executable, "-m", "incident", "db", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_the_password_goes_by_environment_never_on_the_command_line(
    tmp_path: Path, command: str
) -> None:
    record = fake_tools(tmp_path, fail=False)
    dump = tmp_path / "incident.dump"
    dump.write_bytes(b"PGDMP")
    result = run(tmp_path, command, str(dump))
    assert result.returncode == 0, result.stderr
    seen = json.loads(record.read_text())
    assert PASSWORD not in " ".join(seen["argv"])
    assert any("incident@db.example:5432/incident" in arg for arg in seen["argv"])
    assert seen["pgpassword"] == PASSWORD


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_a_failure_is_one_line_with_the_tools_message_and_no_password(
    tmp_path: Path, command: str
) -> None:
    fake_tools(tmp_path, fail=True)
    dump = tmp_path / "incident.dump"
    if command == "restore":
        dump.write_bytes(b"PGDMP")
    result = run(tmp_path, command, str(dump))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"incident: pg_{'dump' if command == 'backup' else 'restore'}")
    assert "password authentication failed" in lines[0]
    assert PASSWORD not in result.stderr + result.stdout
    if command == "backup":
        assert not dump.exists()
