"""Manifests over HTTP: a streamed upload staged in batches (each its own short transaction,
visible only when complete), the current manifest (masked for roles that need not see it),
its CSV export for duty managers, and an upload's report."""

from __future__ import annotations

import asyncio
import csv
import io
import queue
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from incident.passengers import groups, manifests
from incident.passengers.privacy import Vault
from incident.web.api import RUNS_INCIDENTS, read, write
from incident.web.auth import principal
from incident.web.passengers_views import passenger_json, upload_json
from incident.web.problems import BadRequest
from incident.web.requests import encode_cursor, limit_param, seq_cursor
from incident.web.state import AppState, state_of
from incident.web.views import spreadsheet_safe

EXPORTS = ("duty_manager",)
CHUNK = 65536


def _vault(state: AppState) -> Vault:
    return Vault.from_settings(state.settings)


def _import(
    state: AppState,
    group_id: str,
    chunks: Iterator[bytes],
    actor: str,
    encoding: str | None,
) -> dict[str, Any]:
    """Stage a manifest in batches, one short transaction each, then make it current."""
    vault = _vault(state)
    reader = manifests.ManifestReader(state.settings.phone_region, encoding)
    with state.db.transaction() as session:
        group = groups.get_group(group_id, session=session)
        upload_id = manifests.begin_upload(
            group, session=session, now=state.clock.now(), actor=actor
        ).id
    try:
        batch: list[manifests.Row] = []

        def flush() -> None:
            sealed = manifests.seal_rows(batch, vault, upload_id, group_id)
            merges, reader.pending_merges = reader.pending_merges, []
            with state.db.transaction() as session:
                manifests.stage_batch(upload_id, sealed, reader.report, session=session)
                if merges:
                    manifests.merge_staged(upload_id, merges, vault, session=session)
            batch.clear()
            reader.start_batch()

        for row in reader.rows(chunks):
            batch.append(row)
            if len(batch) >= manifests.BATCH_ROWS:
                flush()
        flush()
        with state.db.transaction() as session:
            session.connection()
            upload = manifests.complete_upload(
                upload_id, reader.report, session=session, now=state.clock.now(), actor=actor
            )
            view = upload_json(upload)
    except BaseException as exc:
        reason = str(exc) or type(exc).__name__
        with state.db.transaction() as session:
            manifests.fail_upload(
                upload_id, reason, reader.report, session=session, now=state.clock.now()
            )
        raise
    view.update(columns=reader.report.columns, ignored_columns=reader.report.ignored_columns)
    return view


class _Aborted(Exception):
    """The request stopped before the whole manifest arrived."""


async def _body_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"the manifest is larger than {limit} bytes", status=413)
        if chunk:
            yield chunk


async def _file_chunks(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The first file of a multipart form (the parser spools it; read it in chunks)."""
    form = await request.form(max_files=1, max_fields=20)
    try:
        upload = next((v for v in form.values() if isinstance(v, UploadFile)), None)
        if upload is None:
            raise BadRequest("send the CSV as the body, or as a file in a multipart form")
        size = 0
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise BadRequest(f"the manifest is larger than {limit} bytes", status=413)
            yield chunk
    finally:
        await form.close()


async def _put(feed: queue.Queue[Any], item: Any, job: asyncio.Future[Any]) -> None:
    while not job.done():
        try:
            feed.put_nowait(item)
            return
        except queue.Full:
            await asyncio.sleep(0.002)


async def upload_manifest(request: Request) -> Response:
    """Upload a group's manifest (CSV body, or a multipart file): checked row by row."""
    who = principal(request)
    who.require(*RUNS_INCIDENTS)
    state = state_of(request)
    group_id = request.path_params["group_id"]
    limit = state.settings.manifest_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"the manifest is larger than {limit} bytes", status=413)
    ctype = request.headers.get("content-type", "")
    encoding = request.query_params.get("encoding")
    if encoding is None and "charset=" in ctype.lower():
        encoding = ctype.lower().split("charset=", 1)[1].split(";")[0].strip().strip('"')
    multipart = ctype.split(";")[0].strip().lower() == "multipart/form-data"
    source = _file_chunks(request, limit) if multipart else _body_chunks(request, limit)
    feed: queue.Queue[Any] = queue.Queue(maxsize=32)

    def chunks() -> Iterator[bytes]:
        while True:
            item = feed.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    job = asyncio.ensure_future(
        run_in_threadpool(_import, state, group_id, chunks(), who.name, encoding)
    )
    try:
        async for chunk in source:
            await _put(feed, chunk, job)
            if job.done():
                break
        await _put(feed, None, job)
    except BaseException:
        await _put(feed, _Aborted("the upload stopped before the end"), job)
        await asyncio.gather(job, return_exceptions=True)
        raise
    view = await job
    return JSONResponse(
        view, status_code=201, headers={"Location": f"/api/manifest-uploads/{view['id']}"}
    )


async def get_upload(request: Request) -> Response:
    """A manifest upload's report: stored, merged and rejected rows (line and reason)."""
    principal(request)
    upload_id = request.path_params["upload_id"]
    return JSONResponse(
        await read(request, lambda s: upload_json(manifests.get_upload(upload_id, session=s)))
    )


async def list_passengers(request: Request) -> Response:
    """The group's current manifest (personal data masked for roles that need not see it)."""
    who = principal(request)
    state = state_of(request)
    group_id = request.path_params["group_id"]
    limit = limit_param(request, default=100, maximum=1000)
    after = seq_cursor(request)
    vault = _vault(state)

    def run(session: Session) -> dict[str, Any]:
        group = groups.get_group(group_id, session=session)
        found = manifests.current_passengers(
            group, session=session, after_id=after, limit=limit + 1
        )
        items = [passenger_json(p, vault, full=who.sees_personal_data) for p in found[:limit]]
        nxt = encode_cursor(str(found[limit - 1].id)) if len(found) > limit else None
        return {"items": items, "next_cursor": nxt}

    return JSONResponse(await read(request, run))


async def export_passengers(request: Request) -> Response:
    """The group's manifest as CSV (UTF-8 with BOM), for duty managers; on the timeline."""
    who = principal(request)
    who.require(*EXPORTS)
    state = state_of(request)
    group_id = request.path_params["group_id"]
    vault = _vault(state)

    def record(session: Session, now: datetime) -> None:
        group = groups.get_group(group_id, session=session)
        manifests.record_export(group, session=session, now=now, actor=who.name)

    await write(request, record)

    def rows() -> Iterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["name", "phone", "seat", "coach", "language", "ticket"])
        yield ("\ufeff" + out.getvalue()).encode()
        after = 0
        while True:
            with state.db.reading() as session:
                group = groups.get_group(group_id, session=session)
                found = manifests.current_passengers(
                    group, session=session, after_id=after, limit=2000
                )
            if not found:
                return
            out = io.StringIO()
            writer = csv.writer(out)
            for p in found:
                fields = vault.open(p.personal) if p.personal else {}
                cells = [
                    fields.get("name", ""),
                    fields.get("phone", ""),
                    p.seat or "",
                    p.coach or "",
                    p.language,
                    fields.get("ticket", ""),
                ]
                writer.writerow([spreadsheet_safe(str(c)) for c in cells])
            yield out.getvalue().encode()
            after = found[-1].id

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="passengers-{group_id}.csv"',
            "Cache-Control": "no-store",
        },
    )


routes = [
    Route("/api/passenger-groups/{group_id}/passengers", upload_manifest, methods=["POST"]),
    Route("/api/passenger-groups/{group_id}/passengers", list_passengers, methods=["GET"]),
    Route("/api/passenger-groups/{group_id}/passengers.csv", export_passengers, methods=["GET"]),
    Route("/api/manifest-uploads/{upload_id}", get_upload, methods=["GET"]),
]
