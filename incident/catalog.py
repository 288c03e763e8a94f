"""The playbooks the service runs: the current files, and the versions incidents pinned."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from incident.errors import NotFound, PlaybookError, Problem
from incident.logs import get_logger
from incident.models import PlaybookVersion
from incident.playbook import (
    Playbook,
    RosterRefs,
    load_playbooks,
    parse_playbook_text,
    read_playbooks,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class BrokenPlaybook:
    """A playbook file that failed to load, and what runs in its place: the newest stored
    version of its id (the last good one), or nothing when it never loaded before."""

    file: str
    playbook_id: str
    problems: Sequence[Problem]
    serving_version: int | None = None
    serving_digest: str | None = None

    @property
    def line(self) -> int:
        return self.problems[0].line if self.problems else 0

    @property
    def error(self) -> str:
        return self.problems[0].message if self.problems else "cannot be loaded"

    def serving(self) -> str:
        if self.serving_version is None:
            return "nothing: it never loaded before"
        return f"last good version {self.serving_version}"

    def to_summary(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "error": self.error,
            "problems": len(self.problems),
            "playbook": self.playbook_id,
            "serving": self.serving(),
        }


class Catalog:
    """Current playbooks by id, and a cache of pinned versions by digest."""

    def __init__(
        self, playbooks: dict[str, Playbook], broken: Sequence[BrokenPlaybook] = ()
    ) -> None:
        self._current = dict(playbooks)
        self._pinned: dict[str, Playbook] = {p.digest: p for p in playbooks.values()}
        self._lock = threading.Lock()
        self.broken: list[BrokenPlaybook] = list(broken)
        """Files that failed to load (see :meth:`load`); empty when every file loaded."""

    @classmethod
    def from_paths(cls, paths: Iterable[Path], roster: RosterRefs | None = None) -> Catalog:
        """Every playbook, or PlaybookError naming every problem (``playbooks check``)."""
        return cls(load_playbooks(list(paths), roster))

    @classmethod
    def load(cls, paths: Iterable[Path], roster: RosterRefs | None, *, session: Session) -> Catalog:
        """The playbooks a service runs: each good file, and for each broken file the newest
        stored version of its id (the last good one; nothing if there is none), each broken
        file logged as ``playbook_broken``. One bad file never stops the others."""
        playbooks, broken_files = read_playbooks(list(paths), roster)
        broken = []
        for file in broken_files:
            stand_in = None
            if file.playbook_id not in playbooks:
                stand_in = _last_good(file.playbook_id, file.file, session=session)
            if stand_in is not None:
                playbooks[stand_in.id] = stand_in
            entry = BrokenPlaybook(
                file.file,
                file.playbook_id,
                file.problems,
                stand_in.version if stand_in else None,
                stand_in.digest if stand_in else None,
            )
            broken.append(entry)
            log.error(
                "playbook_broken",
                file=entry.file,
                line=entry.line,
                error=entry.error,
                problems=len(entry.problems),
                playbook=entry.playbook_id,
                serving=entry.serving(),
            )
        return cls(playbooks, broken)

    def __iter__(self) -> Iterator[Playbook]:
        return iter(sorted(self._current.values(), key=lambda p: p.id))

    def ids(self) -> list[str]:
        return sorted(self._current)

    def get(self, playbook_id: str) -> Playbook:
        try:
            return self._current[playbook_id]
        except KeyError:
            raise NotFound(f"no playbook {playbook_id!r}") from None

    def has(self, playbook_id: str) -> bool:
        return playbook_id in self._current

    def pinned(self, version: PlaybookVersion) -> Playbook:
        """The playbook exactly as it was when an incident was declared."""
        with self._lock:
            found = self._pinned.get(version.digest)
            if found is None:
                found = parse_playbook_text(version.source, f"{version.playbook_id}.yaml")
                self._pinned[version.digest] = found
            return found

    def pin(self, playbook: Playbook, *, session: Session, now: datetime) -> PlaybookVersion:
        """The stored version row for ``playbook``, created on first use. Several processes
        starting at once may all try: the insert skips a row another one wrote first."""
        where = (
            PlaybookVersion.playbook_id == playbook.id,
            PlaybookVersion.digest == playbook.digest,
        )
        row = session.scalar(select(PlaybookVersion).where(*where))
        if row is None:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            session.execute(
                insert(PlaybookVersion)
                .values(
                    playbook_id=playbook.id,
                    version=playbook.version,
                    digest=playbook.digest,
                    source=playbook.source,
                    definition=playbook.to_summary(),
                    loaded_at=now,
                )
                .on_conflict_do_nothing(index_elements=["playbook_id", "digest"])
            )
            row = session.scalars(select(PlaybookVersion).where(*where)).one()
        return row


def _last_good(playbook_id: str, file: str, *, session: Session) -> Playbook | None:
    """The newest stored version of a playbook id, parsed again (None if none, or if it no
    longer parses either)."""
    row = session.scalar(
        select(PlaybookVersion)
        .where(PlaybookVersion.playbook_id == playbook_id)
        .order_by(PlaybookVersion.loaded_at.desc(), PlaybookVersion.id.desc())
        .limit(1)
    )
    if row is None:
        return None
    try:
        return parse_playbook_text(row.source, file)
    except PlaybookError:
        return None
