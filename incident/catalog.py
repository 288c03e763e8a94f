"""The playbooks the service runs: the current files, and the versions incidents pinned."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from incident.errors import NotFound
from incident.models import PlaybookVersion
from incident.playbook import Playbook, RosterRefs, load_playbooks, parse_playbook_text


class Catalog:
    """Current playbooks by id, and a cache of pinned versions by digest."""

    def __init__(self, playbooks: dict[str, Playbook]) -> None:
        self._current = dict(playbooks)
        self._pinned: dict[str, Playbook] = {p.digest: p for p in playbooks.values()}
        self._lock = threading.Lock()

    @classmethod
    def from_paths(cls, paths: Iterable[Path], roster: RosterRefs | None = None) -> Catalog:
        return cls(load_playbooks(list(paths), roster))

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
