"""The demo: the demo roster and one user per role, for a first run on one machine."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import make_url

from incident import roster, security
from incident.clock import Clock
from incident.db import Database
from incident.models import User
from incident.settings import Settings

# name, role, roster person (demo users log in to the console with password = name)
DEMO_USERS = [
    ("admin", "admin", None),
    ("duty", "duty_manager", "zhou.min"),
    ("agent", "staff", "zhang.wei"),
    ("evaluator", "evaluator", None),
    ("viewer", "viewer", None),
]


def tokens_path(settings: Settings) -> Path:
    """Where the demo tokens are kept: beside the SQLite file, else under var/."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).parent / "demo-tokens.txt"
    return Path("var/demo-tokens.txt")


def seed(db: Database, settings: Settings, clock: Clock) -> list[str]:
    """Load the demo roster and create missing demo users; return lines to print."""
    lines = []
    doc = roster.load_roster_file(Path(settings.demo_roster))
    with db.transaction() as session:
        counts = roster.apply_roster(doc, session=session)
        _, _, people = roster.known_ids(session=session)
        lines.append("demo roster: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        tokens_file = tokens_path(settings)
        for name, role, person in DEMO_USERS:
            if session.scalar(select(User.id).where(User.name == name)) is not None:
                continue
            _, token = security.add_user(
                name,
                role,
                session=session,
                now=clock.now(),
                person_id=person if person in people else None,
                password=name,
            )
            tokens_file.parent.mkdir(parents=True, exist_ok=True)
            with tokens_file.open("a") as out:
                out.write(f"{name}\t{role}\t{token}\n")
            lines.append(f"demo user {name} ({role}): token {token}")
    lines.append(f"demo tokens are kept in {tokens_path(settings)}")
    return lines
