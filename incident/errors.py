"""The one exception tree of the service.

    IncidentError
    ├── ConfigError            bad settings (startup)
    ├── NotFound               an id that does not exist
    ├── ValidationFailed       bad input; carries [{field, message}]
    ├── Conflict               the request clashes with the current state
    │   └── IdempotencyMismatch  same Idempotency-Key, different body
    ├── AuthError              no or bad credentials (401)
    ├── Forbidden              authenticated but not allowed (403)
    ├── Gone                   a used or expired link (410)
    └── FileError              a file is wrong; carries file:line problems
        ├── PlaybookError      a playbook
        └── RosterError        a roster file

``web/problems.py`` maps each to an HTTP status and RFC 9457 problem+json.
"""

from __future__ import annotations

from dataclasses import dataclass


class IncidentError(Exception):
    """Base of every error the service raises on purpose."""


class ConfigError(IncidentError):
    pass


class NotFound(IncidentError):
    pass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ValidationFailed(IncidentError):
    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class Conflict(IncidentError):
    pass


class IdempotencyMismatch(Conflict):
    pass


class AuthError(IncidentError):
    pass


class Forbidden(IncidentError):
    pass


class Gone(IncidentError):
    pass


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a file, at a line (1-based; 0 when unknown)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class FileError(IncidentError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class PlaybookError(FileError):
    pass


class RosterError(FileError):
    pass
