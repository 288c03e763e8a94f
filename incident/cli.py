"""The ``incident`` command."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.exc import SQLAlchemyError

from incident import migrate, response, roster, security, timeline
from incident.clock import SystemClock
from incident.db import Database, wait_until_reachable
from incident.errors import ConfigError, FileError, IncidentError, ValidationFailed
from incident.logs import configure_logging
from incident.models import Incident
from incident.playbook import RosterRefs, load_playbooks, rendering_problems
from incident.privacy import mask_error
from incident.settings import Settings, load_settings, weak_key_problem

F = TypeVar("F", bound=Callable[..., Any])


class Env:
    """What every command shares: the settings and, lazily, the database."""

    def __init__(self) -> None:
        self.settings: Settings = load_settings()
        self._db: Database | None = None

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = Database.from_url(self.settings.database_url)
            self._db.audit_keys = timeline.AuditKeys.from_settings(self.settings)
        return self._db


pass_env = click.make_pass_decorator(Env, ensure=True)


def _has_passenger_data(env: Env) -> bool:
    from sqlalchemy import select

    from incident.models import Inquiry, Passenger

    try:
        with env.db.reading() as session:
            return any(
                session.scalar(select(model.id).limit(1)) is not None
                for model in (Passenger, Inquiry)
            )
    except SQLAlchemyError:  # not migrated yet: no passenger data
        return False


def refuse_weak_keys(env: Env, host: str | None = None) -> None:
    """Stop a long-running process (serve, worker, auditor) started with a development or
    short secret key (or derived data keys over passenger data) off loopback."""
    problem = weak_key_problem(env.settings, host=host, has_passenger_data=_has_passenger_data(env))
    if problem is not None:
        raise ConfigError(f"refusing to start: {problem}")


def parse_facts(pairs: Sequence[str]) -> dict[str, Any]:
    """``name=value`` pairs; values that read as JSON (numbers, true) become that."""
    facts: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r}: expected name=value", param_hint="--fact")
        try:
            facts[name] = json.loads(raw)
        except json.JSONDecodeError:
            facts[name] = raw
    return facts


@click.group()
def cli() -> None:
    """Emergency incident coordination for railway passenger-service centres."""


# -- serving -------------------------------------------------------------------------------
@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Serve the web app only.")
@pass_env
def serve(env: Env, host: str, port: int, no_worker: bool) -> None:
    """Serve the API (with the embedded worker unless --no-worker)."""
    import uvicorn

    from incident.app import create_app

    wait_until_reachable(env.db, timeout=env.settings.database_wait_seconds)
    refuse_weak_keys(env, host)
    app = create_app(
        env.settings, db=env.db, run_worker=False if no_worker else None, access_log=True
    )
    # uvicorn's access log prints paths (signed /ack/ links): ours prints route templates
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)


@cli.command()
@pass_env
def worker(env: Env) -> None:
    """Run a worker on its own (no web app)."""
    import signal
    import threading

    from incident.app import load_catalog, pin_catalog
    from incident.handlers import Context
    from incident.worker import Worker

    wait_until_reachable(env.db, timeout=env.settings.database_wait_seconds)
    refuse_weak_keys(env)
    catalog = load_catalog(env.settings, env.db)
    clock = SystemClock()
    pin_catalog(catalog, env.db, clock)
    from incident.channels import Sender

    ctx = Context.build(env.settings, catalog)
    w = Worker(env.db, ctx, clock, sender=Sender(ctx.send_policy()))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    w.start()
    done.wait()
    w.stop()


@cli.command()
@pass_env
def auditor(env: Env) -> None:
    """Watch the workers from a separate process; alert when they stop or run late."""
    import signal
    import threading

    from incident.auditor import Auditor
    from incident.channels import Sender, SendPolicy

    wait_until_reachable(env.db, timeout=env.settings.database_wait_seconds)
    refuse_weak_keys(env)
    sender = Sender(SendPolicy())
    watcher = Auditor(env.db, env.settings, SystemClock(), sender)
    done = threading.Event()

    def stop(*_: object) -> None:
        watcher.stop()
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    thread = threading.Thread(target=watcher.run_forever, daemon=True)
    thread.start()
    done.wait()
    thread.join(10)
    sender.close()


@cli.group("workers")
def workers_group() -> None:
    """The workers' heartbeats, as the auditor sees them."""


@workers_group.command("list")
@click.option("--days", default=7.0, show_default=True, help="Workers seen this far back.")
@pass_env
def workers_list(env: Env, days: float) -> None:
    """Workers seen lately: owner, host, seconds since their last heartbeat, state."""
    from incident import operations

    stale = env.settings.auditor_worker_stale_seconds
    with env.db.reading() as session:
        seen = operations.workers(
            session=session, now=SystemClock().now(), within=timedelta(days=days)
        )
    for w in seen:
        state = "stopped" if w.stopped else ("alive" if w.age_s <= stale else "silent")
        click.echo(f"{w.owner}\t{w.host}\t{w.age_s:.0f} s\t{state}")


@workers_group.command("forget")
@click.argument("owner")
@pass_env
def workers_forget(env: Env, owner: str) -> None:
    """Mark a worker that went silent as stopped: the auditor stops alerting it."""
    from incident import operations

    with env.db.transaction() as session:
        found = operations.forget(owner, session=session, now=SystemClock().now())
    if not found:
        click.echo(f"no silent worker {owner!r} (see `incident workers list`)", err=True)
        raise SystemExit(1)
    click.echo(f"forgotten: {owner}")


# -- database ------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@pass_env
def db_upgrade(env: Env) -> None:
    """Migrate the database to the current schema."""
    migrate.upgrade(env.db.engine)
    click.echo(f"database at revision {migrate.current_revision(env.db.engine)}")


@db.command("backup")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@pass_env
def db_backup(env: Env, target: Path) -> None:
    """Back up the database (SQLite online backup; pg_dump for PostgreSQL)."""
    from incident import backup

    click.echo(backup.backup(env.settings.database_url, target))
    click.echo(backup.KEYS_REMINDER)


@db.command("restore")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@pass_env
def db_restore(env: Env, source: Path) -> None:
    """Replace the database with a backup (stop the service first)."""
    from incident import backup

    env.db.dispose()
    click.echo(backup.restore(env.settings.database_url, source))


# -- playbooks -----------------------------------------------------------------------------
@cli.group()
def playbooks() -> None:
    """Check and simulate playbooks."""


def _refs_from_file(path: Path) -> RosterRefs:
    departments, roles, people = roster.ids_in_doc(roster.load_roster_file(path))
    return RosterRefs(departments=departments, roles=roles, people=people)


@playbooks.command("check")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--roster",
    "roster_file",
    type=click.Path(path_type=Path),
    help="Roster to check names against (default: the demo roster).",
)
@pass_env
def playbooks_check(env: Env, paths: tuple[Path, ...], roster_file: Path | None) -> None:
    """Validate playbook files or folders; print file:line: what is wrong."""
    targets = list(paths) or [Path(env.settings.playbooks_dir)]
    missing = [p for p in targets if not p.exists()]
    if missing:
        raise click.ClickException(f"{missing[0]}: no such file or folder")
    refs = _refs_from_file(roster_file or Path(env.settings.demo_roster))
    try:
        found = load_playbooks(targets, refs)
    except FileError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        raise SystemExit(1) from None
    failed = False
    for playbook in found.values():
        problems = rendering_problems(playbook)
        for problem in problems:
            click.echo(str(problem))
        if problems:
            failed = True
            continue
        click.echo(
            f"ok {playbook.path}: {playbook.id} v{playbook.version}, {len(playbook.stages)} stages"
        )
    if failed:
        raise SystemExit(1)


@playbooks.command("simulate")
@click.argument("playbook_id")
@click.option("--severity", required=True, type=click.Choice(["I", "II", "III", "IV"]))
@click.option("--fact", "facts", multiple=True, help="name=value (repeatable)")
@click.option("--title", default="Simulation")
@click.option("--hours", default=4.0, show_default=True, help="How far to look ahead.")
@click.option(
    "--change",
    "changes",
    multiple=True,
    help="AT:name=value, e.g. 30m:severity=II or 45m:expected_delay_min=150",
)
@click.option("--resolve-at", default=None, help="Resolve at this offset, e.g. 3h")
@pass_env
def playbooks_simulate(
    env: Env,
    playbook_id: str,
    severity: str,
    facts: tuple[str, ...],
    title: str,
    hours: float,
    changes: tuple[str, ...],
    resolve_at: str | None,
) -> None:
    """Print what the playbook would do when, with no side effects."""
    import logging

    from incident.simulation import Change, simulate

    logging.getLogger().setLevel(logging.WARNING)  # the simulated engine's own log is noise

    catalog_paths = [Path(env.settings.playbooks_dir)]
    from incident.catalog import Catalog

    catalog = Catalog.from_paths(catalog_paths)
    if catalog.has(playbook_id):
        for problem in rendering_problems(catalog.get(playbook_id)):
            click.echo(f"warning: {problem}", err=True)
    planned = [Change.parse(c) for c in changes]
    with env.db.reading() as session:
        has_roster = bool(roster.known_ids(session=session)[0]) if _migrated(env) else False
    result = simulate(
        catalog,
        playbook_id,
        severity=severity,
        title=title,
        facts=parse_facts(facts),
        horizon=timedelta(hours=hours),
        changes=planned,
        resolve_at=resolve_at,
        roster_from=env.db if has_roster else None,
        roster_doc=None if has_roster else roster.load_roster_file(Path(env.settings.demo_roster)),
    )
    click.echo(
        f"# {playbook_id} at level {severity}: simulated, nothing sent; "
        "nobody acknowledges, so pages climb their chains"
    )
    for line in result.lines():
        click.echo(line)


def _migrated(env: Env) -> bool:
    try:
        return migrate.is_current(env.db.engine)
    except SQLAlchemyError:
        return False


# -- roster --------------------------------------------------------------------------------
@cli.group("roster")
def roster_group() -> None:
    """The roster: departments, people, rota."""


@roster_group.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@pass_env
def roster_load(env: Env, file: Path) -> None:
    """Load (replace) the roster from a YAML file."""
    doc = roster.load_roster_file(file, allow_link_local=env.settings.allow_link_local_urls)
    if doc.timezone != env.settings.timezone:  # shifts would be read in the wrong zone
        raise click.ClickException(
            f"{file}: the roster's timezone {doc.timezone} is not INCIDENT_TIMEZONE "
            f"({env.settings.timezone}); set one to the other (a roster without `timezone:` "
            f"is in {roster.DEFAULT_TIMEZONE})"
        )
    with env.db.transaction() as session:
        counts = roster.apply_roster(doc, session=session)
    click.echo("loaded " + ", ".join(f"{n} {what}" for what, n in counts.items()))


@roster_group.command("test")
@click.argument("person_id")
@pass_env
def roster_test(env: Env, person_id: str) -> None:
    """Send a test message to each of a person's contact methods; say which answered."""
    from incident import paging
    from incident.catalog import Catalog
    from incident.channels import Message, Sender
    from incident.handlers import Context, record_sent
    from incident.models import Delivery

    clock = SystemClock()
    ctx = Context.build(env.settings, Catalog({}))  # a test message needs no playbook
    with env.db.transaction() as session:
        queued = paging.test_contacts(person_id, session=session, now=clock.now(), direct=True)
        messages = [Message(d.id, d.address, d.subject, d.body, d.idempotency_key) for d in queued]
    if not messages:
        raise click.ClickException(f"{person_id} has no contact methods")
    sender = Sender(ctx.send_policy())
    try:
        outcomes = [f.result() for f in [sender.submit(m) for m in messages]]
    finally:
        sender.close()
    failed = 0
    with env.db.transaction() as session:
        record_sent(outcomes, session=session, now=clock.now(), ctx=ctx)
        paging.finish_direct_tests(
            [m.delivery_id for m in messages], session=session, now=clock.now()
        )
        for message, outcome in zip(messages, outcomes, strict=True):
            sent = session.get(Delivery, message.delivery_id)
            assert sent is not None
            last = outcome.tries[-1] if outcome.tries else None
            detail = f"{len(outcome.tries)} attempt(s)"
            if last is not None and last.outcome != "delivered":
                detail += f", {mask_error(last.error or '')}"
                failed += 1
            click.echo(
                f"{(sent.contact_position or 0) + 1}. {sent.channel}: {sent.status} ({detail})"
            )
    if failed:
        raise SystemExit(1)


@roster_group.command("on-duty")
@pass_env
def roster_on_duty(env: Env) -> None:
    """Who is on duty now, per department."""
    with env.db.reading() as session:
        table = roster.who_is_on_duty(SystemClock().now(), session=session, zone=env.settings.zone)
    for department, people in table.items():
        click.echo(f"{department}: {', '.join(p.id for p in people) or '-'}")


# -- users ---------------------------------------------------------------------------------
@cli.group()
def users() -> None:
    """Users, roles and API tokens."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(security.ROLES))
@click.option("--person", default=None, help="Roster person id this user answers for.")
@click.option("--password-stdin", is_flag=True, help="Read a console password from stdin.")
@pass_env
def users_add(env: Env, name: str, role: str, person: str | None, password_stdin: bool) -> None:
    """Add a user; prints its API token once."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    if password_stdin and not password:
        raise click.ClickException("no password on stdin")
    with env.db.transaction() as session:
        _, token = security.add_user(
            name,
            role,
            session=session,
            now=SystemClock().now(),
            person_id=person,
            password=password,
        )
    click.echo(f"token: {token}")


@users.command("list")
@pass_env
def users_list(env: Env) -> None:
    """List users."""
    from sqlalchemy import select

    from incident.models import User

    with env.db.reading() as session:
        for user in session.scalars(select(User).order_by(User.name)):
            state = "active" if user.active else "deactivated"
            click.echo(f"{user.name}\t{user.role}\t{user.person_id or '-'}\t{state}")


@users.command("revoke")
@click.argument("name")
@pass_env
def users_revoke(env: Env, name: str) -> None:
    """Revoke every API token of a user."""
    with env.db.transaction() as session:
        n = security.revoke_tokens(
            security.user_named(name, session=session), session=session, now=SystemClock().now()
        )
    click.echo(f"revoked {n} token(s) of {name}")


@users.command("token")
@click.argument("name")
@pass_env
def users_token(env: Env, name: str) -> None:
    """Issue a new API token for a user; prints it once."""
    with env.db.transaction() as session:
        token = security.issue_token(
            security.user_named(name, session=session), session=session, now=SystemClock().now()
        )
    click.echo(f"token: {token}")


@users.command("password")
@click.argument("name")
@pass_env
def users_password(env: Env, name: str) -> None:
    """Set a user's console password from stdin; their console sessions end."""
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise click.ClickException("no password on stdin")
    with env.db.transaction() as session:
        security.set_password(security.user_named(name, session=session), password, session=session)
    click.echo(f"password of {name} changed; their console sessions ended")


@users.command("deactivate")
@click.argument("name")
@pass_env
def users_deactivate(env: Env, name: str) -> None:
    """Deactivate a user (and revoke their tokens)."""
    with env.db.transaction() as session:
        security.deactivate(
            security.user_named(name, session=session), session=session, now=SystemClock().now()
        )
    click.echo(f"deactivated {name}")


# -- incidents -----------------------------------------------------------------------------
@cli.command()
@click.argument("playbook_id")
@click.option("--severity", required=True)
@click.option("--title", required=True)
@click.option("--fact", "facts", multiple=True, help="name=value (repeatable)")
@click.option("--drill", is_flag=True, help="Declare in drill mode.")
@pass_env
def declare(
    env: Env, playbook_id: str, severity: str, title: str, facts: tuple[str, ...], drill: bool
) -> None:
    """Declare an incident; the worker (serve or worker) runs its playbook."""
    from incident.app import load_catalog

    catalog = load_catalog(env.settings, env.db)
    with env.db.transaction() as session:
        incident = response.declare(
            session=session,
            now=SystemClock().now(),
            catalog=catalog,
            playbook_id=playbook_id,
            severity=severity,
            title=title,
            facts=parse_facts(facts),
            mode="drill" if drill else "live",
            actor="cli",
            zone=env.settings.zone,
        )
        incident_id = incident.id
    click.echo(incident_id)


@cli.group()
def drill() -> None:
    """Drills: run one now, schedule them, list them."""


@drill.command("run")
@click.argument("playbook_id")
@click.option("--severity", required=True)
@click.option("--title", default="Drill")
@click.option("--fact", "facts", multiple=True, help="name=value (repeatable)")
@click.option(
    "--participant",
    "participants",
    multiple=True,
    help="person or department id (repeatable); default: whom the playbook pages",
)
@pass_env
def drill_run(
    env: Env,
    playbook_id: str,
    severity: str,
    title: str,
    facts: tuple[str, ...],
    participants: tuple[str, ...],
) -> None:
    """Start a drill now (the worker runs it)."""
    from incident import drills
    from incident.app import load_catalog

    catalog = load_catalog(env.settings, env.db)
    with env.db.transaction() as session:
        incident = drills.start_drill(
            session=session,
            now=SystemClock().now(),
            catalog=catalog,
            playbook_id=playbook_id,
            severity=severity,
            facts=parse_facts(facts),
            title=title,
            participants=list(participants),
            actor="cli",
        )
        incident_id = incident.id
    click.echo(incident_id)


@drill.command("schedule")
@click.argument("playbook_id")
@click.option("--cron", required=True, help="in the centre's time zone, e.g. '0 10 * * 3'")
@click.option("--severity", required=True)
@click.option("--title", default=None)
@click.option("--fact", "facts", multiple=True, help="name=value (repeatable)")
@click.option("--participant", "participants", multiple=True)
@pass_env
def drill_schedule(
    env: Env,
    playbook_id: str,
    cron: str,
    severity: str,
    title: str | None,
    facts: tuple[str, ...],
    participants: tuple[str, ...],
) -> None:
    """Schedule a recurring drill; prints its id and next run."""
    from incident import drills
    from incident.app import load_catalog

    catalog = load_catalog(env.settings, env.db)
    with env.db.transaction() as session:
        schedule = drills.add_schedule(
            session=session,
            now=SystemClock().now(),
            zone=env.settings.zone,
            catalog=catalog,
            playbook_id=playbook_id,
            cron=cron,
            severity=severity,
            facts=parse_facts(facts),
            title=title,
            participants=list(participants),
            actor="cli",
        )
        due = schedule.next_run_at
        line = f"{schedule.id} next {due.isoformat() if due else '-'}"
    click.echo(line)


@drill.command("list")
@pass_env
def drill_list(env: Env) -> None:
    """Upcoming scheduled drills and past drills."""
    from sqlalchemy import select

    from incident import drills

    now = SystemClock().now()
    with env.db.reading() as session:
        for run in drills.upcoming(
            session=session, now=now, zone=env.settings.zone, per_schedule=1
        ):
            at = run["at"].astimezone(env.settings.zone).strftime("%Y-%m-%d %H:%M")
            click.echo(f"upcoming\t{at}\t{run['playbook']}\t{run['title']}")
        for incident in session.scalars(
            select(Incident)
            .where(Incident.mode == "drill")
            .order_by(Incident.declared_at.desc())
            .limit(20)
        ):
            at = incident.declared_at.astimezone(env.settings.zone).strftime("%Y-%m-%d %H:%M")
            click.echo(f"past\t{at}\t{incident.playbook_id}\t{incident.id}\t{incident.status}")


@cli.group()
def audit() -> None:
    """Check the timelines."""


@audit.command("verify")
@click.argument("incident_ids", nargs=-1)
@click.option(
    "--checkpoints",
    "folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Also check the signed checkpoints in this folder (`audit checkpoint --out`).",
)
@pass_env
def audit_verify(env: Env, incident_ids: tuple[str, ...], folder: Path | None) -> None:
    """Verify the hash chains of the given incidents (default: all), and with --checkpoints
    that nothing was rewritten after a checkpoint."""
    from sqlalchemy import select

    problems: list[str] = []
    with env.db.reading() as session:
        ids = list(incident_ids) or list(session.scalars(select(Incident.id)))
        for incident_id in ids:
            problems.extend(timeline.verify(incident_id, session=session))
        if folder is not None:
            problems.extend(
                timeline.check_checkpoints(
                    _read_checkpoints(folder),
                    session=session,
                    incident_ids=incident_ids or None,
                )
            )
    for problem in problems:
        click.echo(problem)
    if problems:
        raise SystemExit(1)
    click.echo(f"ok: {len(ids)} timeline(s) intact")


def _read_checkpoints(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    entries: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(folder.glob("checkpoint-*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = None
            entries.append((f"{path}:{number}", entry if isinstance(entry, dict) else {}))
    return entries


@audit.command("checkpoint")
@click.option(
    "--out",
    "folder",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the checkpoint file (keep it off the database server, append-only).",
)
@pass_env
def audit_checkpoint(env: Env, folder: Path) -> None:
    """Write a signed checkpoint of every timeline's head (incident, seq, hash, time, HMAC)
    to a new file; `audit verify --checkpoints` then detects any rewrite after it."""
    now = SystemClock().now()
    with env.db.reading() as session:
        entries = timeline.checkpoint(session=session, now=now)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"checkpoint-{now.strftime('%Y%m%dT%H%M%S%fZ')}.jsonl"
    partial = target.with_suffix(".partial")
    partial.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))
    partial.replace(target)
    click.echo(f"{target}: {len(entries)} timeline head(s)")


@cli.command()
@pass_env
def demo(env: Env) -> None:
    """Load the demo roster and demo users (idempotent); print their tokens."""
    from incident.demo_data import seed

    migrate.upgrade(env.db.engine)
    for line in seed(env.db, env.settings, SystemClock()):
        click.echo(line)


# -- stranded passengers (#5) -------------------------------------------------------------
@cli.group("passengers")
def passengers_group() -> None:
    """Passenger personal data: purge after retention, rotate the encryption key."""


@passengers_group.command("purge")
@click.option("--incident", "incident_ids", multiple=True, help="Purge this closed incident now.")
@pass_env
def passengers_purge(env: Env, incident_ids: tuple[str, ...]) -> None:
    """Purge passenger personal data of incidents closed longer than the retention (or the
    closed incidents named), keeping counts; fail manifest uploads abandoned mid-way."""
    from incident.passengers import retention

    clock = SystemClock()
    keep = timedelta(days=env.settings.passenger_retention_days)
    with env.db.reading() as session:
        ids = list(incident_ids) or retention.incidents_to_purge(
            session=session, now=clock.now(), retention=keep
        )
    rows = 0
    for incident_id in ids:
        done = False
        while not done:  # one short transaction per round
            with env.db.transaction() as session:
                incident = response.get_incident(incident_id, session=session)
                deleted, done = retention.purge_round(incident, session=session, now=clock.now())
                rows += deleted
    with env.db.transaction() as session:
        stale = retention.fail_stale_uploads(session=session, now=clock.now())
    click.echo(
        f"purged {len(ids)} incident(s), {rows} manifest row(s); {stale} abandoned upload(s) failed"
    )


@passengers_group.command("rotate-keys")
@pass_env
def passengers_rotate_keys(env: Env) -> None:
    """Re-encrypt every passenger record with the first key of INCIDENT_DATA_KEYS; the
    others can then be removed from the setting."""
    from incident.passengers import Vault, retention

    vault = Vault.from_settings(env.settings)
    for table in retention.ROTATED_TABLES:
        after: int | str = 0 if table != "inquiries" else ""
        count = 0
        while True:  # one short transaction per batch
            with env.db.transaction() as session:
                done = retention.rotate_batch(table, after, session=session, vault=vault)
            if done is None:
                break
            after, count = done[0], count + done[1]
        click.echo(f"{table}: {count} re-encrypted")
    click.echo("done: the old keys can be removed from INCIDENT_DATA_KEYS")


# -- command: handover and call tree (#10) -------------------------------------------------
def _handover_lines(listing: dict[str, Any], zone: Any) -> list[str]:
    def at(value: object) -> str:
        if not isinstance(value, str):
            return "-"
        return datetime.fromisoformat(value).astimezone(zone).strftime("%m-%d %H:%M")

    counts = listing["counts"]
    lines = [
        f"handover as of {at(listing['as_of'])}: {counts['incidents']} open incident(s), "
        f"{counts['pending_acks']} page(s) awaiting acknowledgement, {counts['notices_due']} "
        f"notice(s) due, {counts['callbacks_overdue']} overdue call-back(s), "
        f"{counts['tasks_open']} open task(s), {counts['reports_due']} report(s) to submit"
    ]
    for item in listing["incidents"]:
        drill = " DRILL" if item["mode"] == "drill" else ""
        lines.append(f"[{item['severity']}]{drill} {item['id']} {item['title']} ({item['status']})")
        for p in item["pending_acks"]:
            lines.append(
                f"  page {p['id']} {p['target']} {p['status']} due {at(p['ack_deadline'])}"
            )
        for n in item["notices_due"]:
            state = "draft awaiting approval" if n["draft_awaiting_approval"] else "update"
            late = " OVERDUE" if n["overdue"] else ""
            lines.append(f"  notice {n['id']} {state} due {at(n['next_update_due'])}{late}")
        for c in item["callbacks_overdue"]:
            lines.append(f"  call-back {c['id']} ({c['kind']}) was due {at(c['callback_due'])}")
        for t in item["tasks_open"]:
            owner = t["owner"]["person"] or t["owner"]["department"]
            late = " OVERDUE" if t["overdue"] else ""
            lines.append(
                f"  task {t['id']} {owner}: {t['title'].get('zh', '')} / "
                f"{t['title'].get('en', '')} ({t['status']}) due {at(t['due_at'])}{late}"
            )
        for r in item["reports_due"]:
            lines.append(
                f"  report {r['id']} no. {r['number']} ({r['kind']}) due {at(r['due_at'])}"
            )
    return lines


@cli.command()
@click.option("--ack", is_flag=True, help="Acknowledge the handover as the incoming manager.")
@click.option("--by", "incoming", default=None, help="The incoming duty manager (with --ack).")
@click.option("--from", "outgoing", default=None, help="The outgoing duty manager (with --ack).")
@click.option("--note", default=None, help="A note recorded with the handover (with --ack).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_env
def handover(
    env: Env,
    ack: bool,
    incoming: str | None,
    outgoing: str | None,
    note: str | None,
    as_json: bool,
) -> None:
    """List what the outgoing duty manager hands over; --ack --by NAME records the incoming
    duty manager taking it over."""
    from incident.command import handover as handovers

    if not ack and (incoming or outgoing or note):
        raise click.UsageError("--by, --from and --note go with --ack")
    if ack and not incoming:
        raise click.UsageError("--ack needs --by NAME (the incoming duty manager)")
    now = SystemClock().now()
    if ack:
        assert incoming is not None
        body = {k: v for k, v in (("outgoing", outgoing), ("note", note)) if v is not None}
        with env.db.transaction() as session:
            made = handovers.handover_json(
                handovers.acknowledge(body, session=session, now=now, incoming=incoming)
            )
        if as_json:
            click.echo(json.dumps(made, ensure_ascii=False, indent=2))
        else:
            click.echo(
                f"handover {made['id']} acknowledged by {incoming} "
                f"({made['open_items']} open item(s) taken over)"
            )
        return
    with env.db.reading() as session:
        listing = handovers.handover_list(session=session, now=now)
    if as_json:
        click.echo(json.dumps(listing, ensure_ascii=False, indent=2))
        return
    for line in _handover_lines(listing, env.settings.zone):
        click.echo(line)


@cli.command()
@click.argument("playbook_id")
@click.option("--format", "fmt", type=click.Choice(["md", "html"]), default="md", show_default=True)
@pass_env
def calltree(env: Env, playbook_id: str, fmt: str) -> None:
    """Print the call tree of a playbook's roster (who calls whom, with numbers) for when chat
    and phones are down."""
    from incident.app import load_catalog
    from incident.command import calltree as trees

    catalog = load_catalog(env.settings, env.db)
    playbook = catalog.get(playbook_id)
    with env.db.reading() as session:
        tree = trees.call_tree(
            playbook,
            session=session,
            now=SystemClock().now(),
            zone=env.settings.zone,
            full=True,
        )
    if fmt == "md":
        click.echo(trees.markdown(tree, env.settings.zone), nl=False)
        return
    from markupsafe import Markup

    from incident.web.command_api import PRINT_CSS, pages

    css = Markup(PRINT_CSS.read_text(encoding="utf-8"))  # a file printed away from the server
    click.echo(
        pages.get_template("calltree.html").render(tree=tree, zone=env.settings.zone, css=css)
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command; errors become one line on stderr and a non-zero exit."""
    try:
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level)
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="incident",
            standalone_mode=False,
        )
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.Abort:
        click.echo("incident: aborted", err=True)
        raise SystemExit(130) from None
    except click.UsageError as exc:
        click.echo(f"incident: {exc.format_message()}", err=True)
        raise SystemExit(2) from None
    except click.ClickException as exc:
        click.echo(f"incident: {exc.format_message()}", err=True)
        raise SystemExit(1) from None
    except FileError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(1) from None
    except ValidationFailed as exc:
        details = "; ".join(f"{e.field}: {e.message}" for e in exc.errors)
        click.echo(f"incident: {exc}" + (f" ({details})" if details else ""), err=True)
        raise SystemExit(1) from None
    except IncidentError as exc:
        click.echo(f"incident: {exc}", err=True)
        raise SystemExit(1) from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        hint = " (run `incident db upgrade`)" if "no such table" in reason else ""
        click.echo(f"incident: database error: {reason}{hint}", err=True)
        raise SystemExit(1) from None
