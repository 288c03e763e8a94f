"""Reading playbook files and folders: strictly (any problem fails them all, for
``playbooks check``) or tolerantly (each file on its own, for a service that must start)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from incident.errors import PlaybookError, Problem
from incident.playbook.loader import parse_playbook_text
from incident.playbook.schema import Playbook, RosterRefs

_ID = re.compile(r"id\s*:\s*['\"]?([a-z0-9][a-z0-9_-]*)")


@dataclass(frozen=True)
class BrokenFile:
    """A playbook file that does not load: its problems, and the id it claims (from its
    ``id:`` line, else its file name) so that the last good version can stand in."""

    file: str
    playbook_id: str
    problems: list[Problem]


def load_playbook(path: Path | str, roster: RosterRefs | None = None) -> Playbook:
    """Read and check one playbook file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PlaybookError([Problem(str(path), 0, f"cannot read the file: {error}")]) from None
    return parse_playbook_text(text, str(path), roster)


def playbook_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, and the ``*.yaml`` and ``*.yml`` files of the folders named."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = (p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            files.extend(sorted(found))
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def read_playbooks(
    paths: Sequence[Path], roster: RosterRefs | None = None
) -> tuple[dict[str, Playbook], list[BrokenFile]]:
    """Load every playbook file on its own: the good ones by id, and the broken ones (a
    second file using an id already loaded is broken too)."""
    playbooks: dict[str, Playbook] = {}
    broken: list[BrokenFile] = []
    for file in playbook_files(paths):
        try:
            playbook = load_playbook(file, roster)
        except PlaybookError as error:
            broken.append(BrokenFile(str(file), _claimed_id(file), error.problems))
            continue
        if playbook.id in playbooks:
            first = playbooks[playbook.id].path
            line = _id_line(playbook.source)
            problem = Problem(str(file), line, f"id '{playbook.id}' is also used by {first}")
            broken.append(BrokenFile(str(file), playbook.id, [problem]))
        else:
            playbooks[playbook.id] = playbook
    return playbooks, broken


def load_playbooks(paths: Sequence[Path], roster: RosterRefs | None = None) -> dict[str, Playbook]:
    """Load playbook files and folders (their ``*.yaml``, ``*.yml``) by id; one error for all."""
    playbooks, broken = read_playbooks(paths, roster)
    problems = [problem for file in broken for problem in file.problems]
    if problems:
        raise PlaybookError(problems)
    return playbooks


def _claimed_id(file: Path) -> str:
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return file.stem
    for line in text.splitlines():
        found = _ID.match(line)
        if found:
            return found.group(1)
    return file.stem


def _id_line(source: str) -> int:
    for number, line in enumerate(source.splitlines(), start=1):
        if re.match(r"id\s*:", line):
            return number
    return 1
