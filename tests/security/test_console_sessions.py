"""#16: console sessions end at logout, password change and deactivation everywhere (a
copied cookie too), and last at most INCIDENT_CONSOLE_SESSION_HOURS from signing in."""

from __future__ import annotations

from collections.abc import Callable

from starlette.testclient import TestClient

from incident import security
from incident.clock import FrozenClock
from incident.db import Database
from tests.console.conftest import console_login, csrf_of

MakeUser = Callable[..., str]


def is_signed_in(client: TestClient) -> bool:
    answer = client.get("/", follow_redirects=False)
    assert answer.status_code in (200, 303), answer.status_code
    return answer.status_code == 200


def second_client(client: TestClient) -> TestClient:
    """Another browser holding a copy of ``client``'s session cookie."""
    other = TestClient(client.app, raise_server_exceptions=False)
    other.cookies.set("incident_session", client.cookies["incident_session"])
    return other


def test_a_cookie_copied_before_logout_no_longer_works_after_it(
    client: TestClient, console_user: MakeUser
) -> None:
    name = console_user("duty_manager")
    console_login(client, name, name)
    copy = second_client(client)
    assert is_signed_in(copy)
    page = client.get("/")
    client.post("/logout", data={"csrf": csrf_of(page.text)})
    assert not is_signed_in(client)
    assert not is_signed_in(copy)
    console_login(client, name, name)  # signing in again works
    assert is_signed_in(client)


def test_a_password_change_and_a_deactivation_end_every_session(
    client: TestClient, console_user: MakeUser, seeded: Database
) -> None:
    name = console_user("duty_manager")
    console_login(client, name, name)
    copy = second_client(client)
    with seeded.transaction() as session:
        security.set_password(security.user_named(name, session=session), "new", session=session)
    assert not is_signed_in(client) and not is_signed_in(copy)
    console_login(client, name, "new")
    assert is_signed_in(client)
    with seeded.transaction() as session:
        user = security.user_named(name, session=session)
        security.deactivate(user, session=session, now=FrozenClock().now())
        assert user.session_version == 2
    assert not is_signed_in(client)


def test_a_session_ends_its_hours_after_sign_in_however_busy(
    client: TestClient, console_user: MakeUser, clock: FrozenClock
) -> None:
    name = console_user("duty_manager")
    console_login(client, name, name)
    for _ in range(11):  # a request every hour re-signs the cookie: it must not slide
        clock.advance(hours=1)
        assert is_signed_in(client)
    clock.advance(hours=1, seconds=1)
    assert not is_signed_in(client)
