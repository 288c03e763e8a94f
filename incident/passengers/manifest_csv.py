"""Reading a manifest CSV: byte chunks in, checked rows out, one at a time.

UTF-8 (with or without a BOM) or GB18030, as spreadsheets in China save CSV; the encoding is
detected from the first 64 KiB unless declared. Each row is checked (phone numbers normalised
to E.164, names or phones required, languages zh or en); rejected rows are reported with their
line and reason. Duplicates (the same ticket number, or the same name and phone when a row has
no ticket) are merged into the first row: its empty fields are filled from the later one.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from incident.errors import FieldError, ValidationFailed
from incident.passengers.privacy import normalise_phone

REPORT_LIMIT = 1000  # rejected rows kept with the upload (all are counted)
SNIFF_BYTES = 65536
ENCODINGS = ("utf-8", "gb18030")

COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "passenger", "passenger_name", "姓名", "旅客姓名", "乘客姓名"),
    "phone": ("phone", "mobile", "tel", "telephone", "phone_number", "手机", "手机号", "手机号码",
              "电话", "联系电话"),
    "seat": ("seat", "seat_number", "座位", "座位号", "席位"),
    "coach": ("coach", "car", "carriage", "车厢", "车厢号"),
    "language": ("language", "lang", "语言"),
    "ticket": ("ticket", "ticket_number", "ticket_no", "票号", "车票号"),
}  # fmt: skip
_ALIASES = {alias: key for key, names in COLUMNS.items() for alias in names}
_LANGUAGES = {
    "": "zh",
    "zh": "zh",
    "zh-cn": "zh",
    "zh_cn": "zh",
    "chinese": "zh",
    "中文": "zh",
    "汉语": "zh",
    "en": "en",
    "en-us": "en",
    "en-gb": "en",
    "english": "en",
    "英文": "en",
    "英语": "en",
}
_LIMITS = {"name": 100, "seat": 20, "coach": 10, "ticket": 40}


@dataclass(slots=True)
class Row:
    """One accepted manifest row, in plain text until it is sealed for storage."""

    line: int
    name: str | None
    phone: str | None  # E.164
    seat: str | None
    coach: str | None
    language: str
    ticket: str | None

    def personal(self) -> dict[str, Any]:
        return {k: v for k, v in (("name", self.name), ("phone", self.phone),
                                  ("ticket", self.ticket)) if v}  # fmt: skip

    def fill_from(self, other: Row) -> bool:
        """Fill this row's empty fields from a duplicate; True when anything changed."""
        changed = False
        for name in ("name", "phone", "seat", "coach", "ticket"):
            if getattr(self, name) is None and getattr(other, name) is not None:
                setattr(self, name, getattr(other, name))
                changed = True
        return changed


@dataclass
class Report:
    """What reading the manifest found so far."""

    encoding: str | None = None
    rows_read: int = 0
    rows_accepted: int = 0
    rows_merged: int = 0
    rows_rejected: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rows_rejected += 1
        if len(self.rejected) < REPORT_LIMIT:
            self.rejected.append({"line": line, "reason": reason})


class _Chunks(io.RawIOBase):
    """A readable stream over an iterator of byte chunks (no copy of the whole body)."""

    def __init__(self, head: bytes, chunks: Iterator[bytes]) -> None:
        self._buf = memoryview(head)
        self._chunks = chunks

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not len(self._buf):
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = memoryview(nxt)
        n = min(len(target), len(self._buf))
        target[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def detect_encoding(head: bytes, declared: str | None = None) -> str:
    """The manifest's encoding: as declared, else UTF-8 (with BOM) if the start decodes as
    UTF-8, else GB18030."""
    if declared:
        name = declared.strip().lower().replace("_", "-")
        if name in ("utf-8", "utf8", "utf-8-sig"):
            return "utf-8-sig"
        if name in ("gb18030", "gbk", "gb2312"):
            return "gb18030"
        raise ValidationFailed(
            "unsupported encoding", [FieldError("encoding", "use utf-8 or gb18030")]
        )
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head[:SNIFF_BYTES], final=False)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8-sig"


class ManifestReader:
    """Reads a manifest CSV from byte chunks, one checked row at a time."""

    def __init__(self, region: str = "CN", declared_encoding: str | None = None) -> None:
        self.region = region
        self.declared = declared_encoding
        self.report = Report()
        self._seen: dict[bytes, int] = {}  # identity -> line of the first row
        self._batch: dict[int, Row] = {}  # rows yielded since start_batch(), by line
        self.pending_merges: list[tuple[int, Row]] = []  # (line already staged, duplicate)

    def start_batch(self) -> None:
        """The rows yielded so far are staged: later duplicates of them become updates."""
        self._batch = {}

    def rows(self, chunks: Iterable[bytes]) -> Iterator[Row]:
        """Yield accepted rows; duplicates are merged into the first (see :meth:`merges`).

        Raises ValidationFailed for a file that cannot be read at all (no header, an
        encoding that does not fit)."""
        source = iter(chunks)
        head = b""
        for chunk in source:
            head += chunk
            if len(head) >= SNIFF_BYTES:
                break
        encoding = detect_encoding(head, self.declared)
        self.report.encoding = "gb18030" if encoding == "gb18030" else "utf-8"
        text = io.TextIOWrapper(
            io.BufferedReader(_Chunks(head, source), 65536),
            encoding=encoding,
            errors="strict",
            newline="",
        )
        reader = csv.reader(text)
        try:
            yield from self._read(reader)
        except UnicodeDecodeError:
            raise ValidationFailed(
                "the file could not be decoded",
                [
                    FieldError(
                        "file",
                        f"not valid {self.report.encoding} after line {reader.line_num}; "
                        "save the CSV as UTF-8 or GB18030 (or say ?encoding=gb18030)",
                    )
                ],
            ) from None
        except csv.Error as exc:
            raise ValidationFailed(
                "the file is not valid CSV",
                [FieldError("file", f"line {reader.line_num}: {exc}")],
            ) from None

    def _header(self, cells: list[str]) -> list[str | None]:
        keys: list[str | None] = []
        for cell in cells:
            name = cell.strip().lower().replace(" ", "_")
            key = _ALIASES.get(name)
            if key is None or key in keys:
                if cell.strip():
                    self.report.ignored_columns.append(cell.strip())
                keys.append(None)
            else:
                keys.append(key)
        self.report.columns = [k for k in keys if k]
        if "name" not in keys and "phone" not in keys:
            raise ValidationFailed(
                "the manifest has no name or phone column",
                [
                    FieldError(
                        "file",
                        "line 1 must name the columns: name, phone, seat, coach, language, "
                        "ticket (or 姓名, 手机号, 座位号, 车厢, 语言, 票号)",
                    )
                ],
            )
        return keys

    def _read(self, reader: Any) -> Iterator[Row]:
        keys: list[str | None] | None = None
        last_line = 0
        for cells in reader:
            line = last_line + 1
            last_line = reader.line_num
            if not cells or not any(c.strip() for c in cells):
                continue
            if keys is None:
                keys = self._header(cells)
                continue
            self.report.rows_read += 1
            row = self._row(line, keys, cells)
            if row is None:
                continue
            key = _identity(row)
            first = self._seen.get(key) if key is not None else None
            if first is not None:
                self.report.rows_merged += 1
                current = self._batch.get(first)
                if current is not None:
                    current.fill_from(row)
                else:
                    self.pending_merges.append((first, row))
                continue
            if key is not None:
                self._seen[key] = row.line
            self._batch[row.line] = row
            self.report.rows_accepted += 1
            yield row
        if keys is None:
            raise ValidationFailed(
                "the manifest is empty", [FieldError("file", "no header line and no rows")]
            )

    def _row(self, line: int, keys: list[str | None], cells: list[str]) -> Row | None:
        values: dict[str, str] = {}
        for key, cell in zip(keys, cells, strict=False):
            if key is not None:
                values[key] = cell.strip()
        if len(cells) > len(keys) and any(c.strip() for c in cells[len(keys) :]):
            self.report.reject(line, f"{len(cells)} cells but {len(keys)} columns")
            return None
        for name, limit in _LIMITS.items():
            if len(values.get(name, "")) > limit:
                self.report.reject(line, f"{name} is longer than {limit} characters")
                return None
        phone: str | None = None
        if values.get("phone"):
            try:
                phone = normalise_phone(values["phone"], self.region)
            except ValueError as exc:
                self.report.reject(line, f"phone: {exc}")
                return None
        language = _LANGUAGES.get(values.get("language", "").lower())
        if language is None:
            self.report.reject(line, "language must be zh or en")
            return None
        who = values.get("name") or None
        if who is None and phone is None:
            self.report.reject(line, "neither a name nor a phone number")
            return None
        return Row(
            line=line,
            name=who,
            phone=phone,
            seat=values.get("seat") or None,
            coach=values.get("coach") or None,
            language=language,
            ticket=values.get("ticket") or None,
        )


def _identity(row: Row) -> bytes | None:
    """What makes two rows the same passenger (None: never merged)."""
    if row.ticket:
        raw = "t\x00" + row.ticket
    elif row.name and row.phone:
        raw = "n\x00" + row.name + "\x00" + row.phone
    else:
        return None
    return hashlib.blake2b(raw.encode(), digest_size=16).digest()
