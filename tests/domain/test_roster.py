"""The roster: reading files, who is on duty, escalation levels, loading into the database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from incident import roster
from incident.db import Database
from incident.errors import RosterError
from incident.models import ContactMethod, Department, Person, RotaOverride, RotaPattern
from incident.roster_file import ContactDoc

DEMO = Path(__file__).resolve().parents[2] / "incident" / "demo" / "roster.yaml"
SHANGHAI = ZoneInfo("Asia/Shanghai")

ROSTER = """\
timezone: Asia/Shanghai
departments:
  - id: inquiry
    name: {zh: 问询组, en: Inquiry section}
    head: li.na
  - id: complaints
    name: {zh: 投诉组, en: Complaints section}
    head: he.jing
  - id: directorate
    name: {zh: 中心领导, en: Directorate}
    head: wang.jianguo
    escalation: [on_duty, person:wang.jianguo]
people:
  - {id: li.na, name: 李娜, department: inquiry, roles: [section_head],
     contacts: [inbox://li.na, {url: inbox://li.na/backup, label: backup}]}
  - {id: zhang.wei, name: 张伟, department: inquiry, roles: [on_duty_agent],
     contacts: [inbox://zhang.wei]}
  - {id: wang.fang, name: 王芳, department: inquiry, roles: [on_duty_agent],
     contacts: [inbox://wang.fang]}
  - {id: chen.jie, name: 陈杰, language: en, department: inquiry, roles: [on_duty_agent],
     contacts: [inbox://chen.jie]}
  - {id: zhao.min, name: 赵敏, department: inquiry, roles: [on_duty_agent],
     contacts: [inbox://zhao.min]}
  - {id: he.jing, name: 何静, department: complaints, roles: [section_head],
     contacts: [inbox://he.jing]}
  - {id: xu.lei, name: 徐磊, department: complaints, roles: [on_duty_agent],
     contacts: [inbox://xu.lei]}
  - {id: wang.jianguo, name: 王建国, department: directorate, roles: [director, duty_director],
     contacts: [inbox://wang.jianguo]}
  - {id: liu.min, name: 刘敏, department: directorate, roles: [deputy_director, duty_director],
     contacts: [inbox://liu.min]}
  - {id: sun.hao, name: 孙浩, department: directorate, roles: [deputy_director, duty_director],
     contacts: [inbox://sun.hao]}
rota:
  - department: inquiry
    starts_on: 2026-01-01
    start_time: "08:00"
    shift_hours: 12
    teams: [[zhang.wei, wang.fang], [chen.jie], [zhao.min]]
  - department: complaints          # nobody on nights
    starts_on: 2026-01-01
    start_time: "08:00"
    shift_hours: 12
    teams: [[xu.lei], []]
  - department: directorate
    starts_on: 2026-01-01
    start_time: "08:00"
    shift_hours: 24
    teams: [[wang.jianguo], [liu.min], [sun.hao]]
"""


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    from incident.migrate import upgrade

    database = Database.from_url(f"sqlite:///{tmp_path}/t.db")
    upgrade(database.engine)
    yield database
    database.dispose()


def local(*args: int) -> datetime:
    """A moment given as Shanghai wall-clock time."""
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


def load(db: Database, text: str) -> dict[str, int]:
    with db.transaction() as session:
        return roster.apply_roster(roster.parse_roster_text(text, "roster.yaml"), session=session)


def ids(people: list[Person]) -> list[str]:
    return [p.id for p in people]


def on_duty(db: Database, department: str, at: datetime) -> list[str]:
    with db.reading() as session:
        return ids(roster.on_duty(department, at, session=session, zone=SHANGHAI))


def resolve(db: Database, level: str, at: datetime, department: str | None = None) -> list[str]:
    with db.reading() as session:
        people = roster.resolve_level(
            level, at, session=session, zone=SHANGHAI, department_id=department
        )
        return ids(people)


def problems(text: str) -> list[str]:
    with pytest.raises(RosterError) as caught:
        roster.parse_roster_text(text, "roster.yaml")
    return [str(p) for p in caught.value.problems]


def with_overrides(block: str) -> str:
    return ROSTER + "overrides:\n" + block


# -- reading the file --------------------------------------------------------------------------


def test_the_example_roster_parses() -> None:
    doc = roster.parse_roster_text(ROSTER, "roster.yaml")
    assert [d.id for d in doc.departments] == ["inquiry", "complaints", "directorate"]
    assert doc.people[0].contacts == (
        ContactDoc("inbox://li.na"),
        ContactDoc("inbox://li.na/backup", "backup"),
    )
    assert doc.departments[2].escalation == ("on_duty", "person:wang.jianguo")
    assert doc.escalation_default == roster.DEFAULT_ESCALATION


def test_bad_yaml_is_reported_with_its_line() -> None:
    text = ROSTER.replace("teams: [[xu.lei], []]", "teams: [[xu.lei], []")
    [problem] = problems(text)
    assert problem.startswith("roster.yaml:45: invalid YAML")


def test_unknown_key_is_reported_with_its_line() -> None:
    text = ROSTER.replace("    head: li.na\n", "    head: li.na\n    phone: 12345\n")
    assert problems(text) == [
        "roster.yaml:6: departments item 1 (inquiry): unknown key 'phone' "
        "(allowed: id, name, head, escalation)"
    ]


def test_unknown_top_level_key_is_reported_with_its_line() -> None:
    assert problems("shifts: []\n" + ROSTER)[0].startswith("roster.yaml:1: the roster: unknown key")


def test_unknown_person_in_a_team_is_reported_with_its_line() -> None:
    text = ROSTER.replace("[[xu.lei], []]", "[[xu.lei], [nobody]]")
    assert problems(text) == [
        "roster.yaml:44: rota item 2: team 2: unknown person 'nobody'",
    ]


def test_duplicate_person_id_is_reported_with_both_lines() -> None:
    text = ROSTER.replace(
        "rota:\n", "  - {id: li.na, name: 李娜, contacts: [inbox://li.na2]}\nrota:\n"
    )
    assert problems(text) == [
        "roster.yaml:34: duplicate person id 'li.na' (first at line 14)",
    ]


def test_duplicate_yaml_key_is_reported_with_its_line() -> None:
    text = ROSTER.replace(
        '    start_time: "08:00"\n', '    start_time: "08:00"\n    shift_hours: 8\n', 1
    )
    [problem] = problems(text)
    assert problem.startswith("roster.yaml:39: invalid YAML: found duplicate key")


def test_bad_time_is_reported_with_its_line() -> None:
    text = ROSTER.replace('start_time: "08:00"', 'start_time: "25:00"', 1)
    assert problems(text) == [
        "roster.yaml:37: rota item 1: start_time '25:00' must be a time like \"08:00\"",
    ]


def test_every_problem_is_reported_at_once() -> None:
    text = (
        ROSTER.replace("language: en", "language: fr")
        .replace("contacts: [inbox://xu.lei]", "contacts: [xu.lei@example]")
        .replace("shift_hours: 24", "shift_hours: 25")
        .replace("person:wang.jianguo", "chief_of_staff")
    )
    found = problems(text)
    assert [p.split(":")[1] for p in found] == ["12", "20", "27", "48"]
    assert "language 'fr' must be one of zh-CN, en" in found[1]
    assert "must be a URL like inbox://name" in found[2]
    assert "shift_hours must be 1 to 24" in found[3]
    assert "escalation level 'chief_of_staff'" in found[0]


def test_override_that_ends_before_it_starts_is_refused() -> None:
    text = with_overrides(
        "  - {department: inquiry, person: zhao.min, from: 2026-01-01T20:00+08:00,"
        " to: 2026-01-01T08:00+08:00}\n"
    )
    assert problems(text) == ["roster.yaml:51: overrides item 1: 'to' must be after 'from'"]


def test_override_time_without_offset_is_read_in_the_roster_zone() -> None:
    text = with_overrides(
        "  - {department: inquiry, person: zhao.min,"
        " from: 2026-01-01 08:00, to: 2026-01-01 20:00}\n"
    )
    [override] = roster.parse_roster_text(text, "roster.yaml").overrides
    assert override.starts_at == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)


def test_missing_file_is_a_roster_error(tmp_path: Path) -> None:
    with pytest.raises(RosterError, match="cannot read the roster"):
        roster.load_roster_file(tmp_path / "absent.yaml")


# -- the demo roster ---------------------------------------------------------------------------


def test_the_demo_roster_loads_and_someone_is_always_on_duty(db: Database) -> None:
    doc = roster.load_roster_file(DEMO)
    with db.transaction() as session:
        counts = roster.apply_roster(doc, session=session)
    assert counts["departments"] == 7
    assert 24 <= counts["people"] <= 30
    start = local(2026, 11, 20, 0, 30)
    with db.reading() as session:
        for hour in range(0, 24 * 7, 3):
            at = start + timedelta(hours=hour)
            duty = roster.who_is_on_duty(at, session=session, zone=SHANGHAI)
            assert all(duty.values()), (at, {d: ids(people) for d, people in duty.items()})
        departments, roles, people = roster.known_ids(session=session)
    assert (departments, roles, people) == roster.ids_in_doc(doc)
    assert set(departments) == {
        "directorate", "inquiry", "complaints", "ticketing", "coordination", "operations", "it",
    }  # fmt: skip


def test_the_demo_roster_swap_puts_zhou_ting_in_zhang_weis_place(db: Database) -> None:
    with db.transaction() as session:
        roster.apply_roster(roster.load_roster_file(DEMO), session=session)
    assert on_duty(db, "inquiry", local(2026, 11, 22, 10, 0)) == ["zhou.ting", "wang.fang"]
    assert on_duty(db, "inquiry", local(2026, 11, 24, 10, 0)) == ["zhang.wei", "wang.fang"]


# -- who is on duty ----------------------------------------------------------------------------


def test_on_duty_changes_at_the_shift_boundary_in_shanghai_time(db: Database) -> None:
    load(db, ROSTER)
    assert on_duty(db, "inquiry", local(2026, 1, 1, 7, 59)) == []  # the rota has not begun
    assert on_duty(db, "inquiry", local(2026, 1, 1, 8, 0)) == ["zhang.wei", "wang.fang"]
    assert on_duty(db, "inquiry", local(2026, 1, 1, 19, 59)) == ["zhang.wei", "wang.fang"]
    assert on_duty(db, "inquiry", local(2026, 1, 1, 20, 0)) == ["chen.jie"]
    # 12:00 UTC is 20:00 in Shanghai.
    assert on_duty(db, "inquiry", datetime(2026, 1, 1, 11, 59, tzinfo=UTC)) == [
        "zhang.wei",
        "wang.fang",
    ]
    assert on_duty(db, "inquiry", datetime(2026, 1, 1, 12, 0, tzinfo=UTC)) == ["chen.jie"]


def test_a_night_shift_runs_past_midnight_and_the_cycle_continues_across_days(
    db: Database,
) -> None:
    load(db, ROSTER)
    assert on_duty(db, "inquiry", local(2026, 1, 2, 3, 0)) == ["chen.jie"]
    assert on_duty(db, "inquiry", local(2026, 1, 2, 8, 0)) == ["zhao.min"]
    assert on_duty(db, "inquiry", local(2026, 1, 2, 20, 0)) == ["zhang.wei", "wang.fang"]
    # 100 days on: shift 200, and 200 % 3 teams is the third team.
    assert on_duty(db, "inquiry", local(2026, 4, 11, 9, 0)) == ["zhao.min"]
    assert on_duty(db, "directorate", local(2026, 1, 3, 7, 59)) == ["liu.min"]
    assert on_duty(db, "directorate", local(2026, 1, 3, 8, 0)) == ["sun.hao"]


def test_a_swap_override_replaces_the_covered_person(db: Database) -> None:
    swap = (
        "  - department: inquiry\n"
        "    person: chen.jie\n"
        "    covers: zhang.wei\n"
        "    from: 2026-01-04T08:00+08:00\n"
        "    to: 2026-01-04T20:00+08:00\n"
    )
    load(db, with_overrides(swap))
    assert on_duty(db, "inquiry", local(2026, 1, 4, 7, 59)) == ["zhao.min"]
    assert on_duty(db, "inquiry", local(2026, 1, 4, 8, 0)) == ["chen.jie", "wang.fang"]
    assert on_duty(db, "inquiry", local(2026, 1, 4, 19, 59)) == ["chen.jie", "wang.fang"]
    assert on_duty(db, "inquiry", local(2026, 1, 4, 20, 0)) == ["chen.jie"]
    assert on_duty(db, "inquiry", local(2026, 1, 5, 20, 0)) == ["zhang.wei", "wang.fang"]


def test_an_override_without_covers_adds_the_person(db: Database) -> None:
    addition = (
        "  - {department: complaints, person: he.jing,"
        " from: 2026-01-01T18:00+08:00, to: 2026-01-01T22:00+08:00}\n"
    )
    load(db, with_overrides(addition))
    assert on_duty(db, "complaints", local(2026, 1, 1, 17, 59)) == ["xu.lei"]
    assert on_duty(db, "complaints", local(2026, 1, 1, 19, 0)) == ["xu.lei", "he.jing"]
    assert on_duty(db, "complaints", local(2026, 1, 1, 21, 0)) == ["he.jing"]
    assert on_duty(db, "complaints", local(2026, 1, 1, 22, 0)) == []


def test_a_later_pattern_replaces_the_earlier_one_from_its_first_shift(db: Database) -> None:
    later = (
        "  - {department: complaints, starts_on: 2026-03-01, start_time: '09:00',"
        " shift_hours: 24, teams: [[he.jing]]}\n"
    )
    load(db, ROSTER + later)
    assert on_duty(db, "complaints", local(2026, 3, 1, 8, 30)) == ["xu.lei"]
    assert on_duty(db, "complaints", local(2026, 3, 1, 9, 0)) == ["he.jing"]
    assert on_duty(db, "complaints", local(2026, 3, 1, 23, 0)) == ["he.jing"]


def test_on_duty_falls_back_to_the_section_head_when_nobody_is_on_duty(db: Database) -> None:
    load(db, ROSTER)
    night, day = local(2026, 1, 1, 23, 0), local(2026, 1, 1, 9, 0)
    assert on_duty(db, "complaints", night) == []
    assert resolve(db, "on_duty", night, "complaints") == ["he.jing"]
    assert resolve(db, "on_duty", day, "complaints") == ["xu.lei"]
    assert resolve(db, "on_duty", day) == []  # no department, no one


def test_who_is_on_duty_lists_every_department(db: Database) -> None:
    load(db, ROSTER)
    with db.reading() as session:
        duty = roster.who_is_on_duty(local(2026, 1, 1, 23, 0), session=session, zone=SHANGHAI)
        found = {department: ids(people) for department, people in duty.items()}
    assert found == {"complaints": [], "directorate": ["wang.jianguo"], "inquiry": ["chen.jie"]}


def test_naive_times_are_refused(db: Database) -> None:
    load(db, ROSTER)
    naive = datetime(2026, 1, 1, 9, 0)  # noqa: DTZ001
    with db.reading() as session, pytest.raises(ValueError, match="naive"):
        roster.on_duty("inquiry", naive, session=session, zone=SHANGHAI)


# -- escalation --------------------------------------------------------------------------------


def test_the_escalation_chain_is_the_file_default_unless_the_department_has_its_own(
    db: Database,
) -> None:
    load(db, ROSTER.replace("timezone:", "escalation_default: [on_duty, director]\ntimezone:"))
    with db.reading() as session:
        inquiry = roster.escalation_chain("inquiry", session=session)
        directorate = roster.escalation_chain("directorate", session=session)
        unknown = roster.escalation_chain("unknown", session=session)
    assert inquiry == ["on_duty", "director"]
    assert directorate == ["on_duty", "person:wang.jianguo"]
    assert unknown == list(roster.DEFAULT_ESCALATION)


def test_the_built_in_default_chain_runs_from_on_duty_to_the_duty_director(db: Database) -> None:
    load(db, ROSTER)
    with db.reading() as session:
        chain = roster.escalation_chain("inquiry", session=session)
    assert chain == ["on_duty", "section_head", "deputy_director", "duty_director"]


def test_a_role_level_resolves_to_every_active_holder(db: Database) -> None:
    load(db, ROSTER)
    at = local(2026, 1, 1, 9, 0)
    assert resolve(db, "deputy_director", at) == ["liu.min", "sun.hao"]
    assert resolve(db, "director", at) == ["wang.jianguo"]
    assert resolve(db, "press_officer", at) == []
    assert resolve(db, "section_head", at, "inquiry") == ["li.na"]
    assert resolve(db, "person:sun.hao", at) == ["sun.hao"]


def test_the_duty_director_level_is_the_holder_on_duty_at_that_moment(db: Database) -> None:
    load(db, ROSTER)
    assert resolve(db, "duty_director", local(2026, 1, 1, 9)) == ["wang.jianguo"]
    assert resolve(db, "duty_director", local(2026, 1, 2, 9)) == ["liu.min"]
    # Before the directorate rota begins nobody is on duty: every holder is paged.
    everyone = ["liu.min", "sun.hao", "wang.jianguo"]
    assert resolve(db, "duty_director", local(2025, 12, 31, 9)) == everyone
    with db.reading() as session:
        assert ids(roster.people_with_role("duty_director", session=session)) == everyone


# -- loading into the database -----------------------------------------------------------------


def test_applying_a_roster_twice_gives_the_same_tables(db: Database) -> None:
    text = with_overrides(
        "  - {department: inquiry, person: he.jing, from: 2026-01-01T08:00+08:00,"
        " to: 2026-01-01T09:00+08:00}\n"
    )
    first = load(db, text)
    before = snapshot(db)
    second = load(db, text)
    assert snapshot(db) == before
    assert first == second
    assert first == {"departments": 3, "people": 10, "contacts": 11, "shifts": 3, "overrides": 1}
    assert on_duty(db, "inquiry", local(2026, 1, 1, 8, 30)) == ["zhang.wei", "wang.fang", "he.jing"]


def snapshot(db: Database) -> object:
    """The roster tables' content, without generated row ids."""
    with db.reading() as session:
        people = [
            (p.id, p.name, p.language, p.department_id, p.roles, p.active,
             [(c.position, c.url, c.label) for c in p.contacts])
            for p in session.scalars(select(Person).order_by(Person.id))
        ]  # fmt: skip
        departments = [
            (d.id, d.name_zh, d.name_en, d.head_id, d.escalation)
            for d in session.scalars(select(Department).order_by(Department.id))
        ]
        rota = [
            (r.department_id, r.starts_on, r.start_time, r.shift_hours, r.teams)
            for r in session.scalars(select(RotaPattern).order_by(RotaPattern.id))
        ]
        overrides = [
            (o.department_id, o.person_id, o.covers_id, o.starts_at, o.ends_at)
            for o in session.scalars(select(RotaOverride).order_by(RotaOverride.id))
        ]
        contacts = session.scalar(select(func.count()).select_from(ContactMethod))
    return people, departments, rota, overrides, contacts


def test_applying_a_roster_deactivates_people_removed_from_it(db: Database) -> None:
    load(db, ROSTER)
    without_zhao_min = ROSTER.replace(
        "  - {id: zhao.min, name: 赵敏, department: inquiry, roles: [on_duty_agent],\n"
        "     contacts: [inbox://zhao.min]}\n",
        "",
    ).replace("[[zhang.wei, wang.fang], [chen.jie], [zhao.min]]", "[[zhang.wei], [chen.jie]]")
    assert load(db, without_zhao_min)["people"] == 9
    with db.reading() as session:
        gone = session.get(Person, "zhao.min")
        assert gone is not None
        assert (gone.active, gone.contacts) == (False, [])
        _, _, active = roster.known_ids(session=session)
        agents = ids(roster.people_with_role("on_duty_agent", session=session))
    assert "zhao.min" not in active
    assert agents == ["chen.jie", "wang.fang", "xu.lei", "zhang.wei"]
    assert resolve(db, "person:zhao.min", local(2026, 1, 2, 8, 0)) == []
    assert on_duty(db, "inquiry", local(2026, 1, 2, 8, 0)) == ["zhang.wei"]

    load(db, ROSTER)  # back in the file: active again
    with db.reading() as session:
        back = session.get(Person, "zhao.min")
        assert back is not None
        assert back.active
        assert [c.url for c in back.contacts] == ["inbox://zhao.min"]


def test_applying_a_roster_removes_departments_no_longer_listed(db: Database) -> None:
    load(db, ROSTER)
    smaller = """\
departments:
  - {id: inquiry, name: {zh: 问询组, en: Inquiry section}, head: li.na}
people:
  - {id: li.na, name: 李娜, department: inquiry, roles: [section_head], contacts: [inbox://li.na]}
"""
    assert load(db, smaller) == {
        "departments": 1, "people": 1, "contacts": 1, "shifts": 0, "overrides": 0,
    }  # fmt: skip
    with db.reading() as session:
        departments, _, active = roster.known_ids(session=session)
        he_jing = session.get(Person, "he.jing")
        assert he_jing is not None
        assert (he_jing.active, he_jing.department_id) == (False, None)
        everyone = roster.who_is_on_duty(local(2026, 1, 1, 9), session=session, zone=SHANGHAI)
    assert departments == {"inquiry"}
    assert active == {"li.na"}
    assert everyone == {"inquiry": []}
    assert resolve(db, "on_duty", local(2026, 1, 1, 9), "inquiry") == ["li.na"]


# -- the documentation -------------------------------------------------------------------------


def test_the_documented_example_means_what_the_docs_say(db: Database) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "roster.md").read_text("utf-8")
    example = docs.split("## A complete example\n\n```yaml\n")[1].split("```")[0]
    load(db, example)
    assert on_duty(db, "inquiry", local(2026, 1, 1, 7, 59)) == []
    assert resolve(db, "on_duty", local(2026, 1, 1, 7, 59), "inquiry") == ["li.na"]
    assert on_duty(db, "inquiry", local(2026, 1, 1, 8, 0)) == ["zhang.wei"]
    assert on_duty(db, "inquiry", local(2026, 1, 2, 3, 0)) == ["chen.jie"]
    assert on_duty(db, "inquiry", local(2026, 1, 2, 8, 0)) == ["zhao.min"]
    assert on_duty(db, "inquiry", local(2026, 1, 4, 10, 0)) == ["zhao.min"]
    assert on_duty(db, "inquiry", local(2026, 1, 5, 19, 0)) == ["zhao.min", "li.na"]
    assert resolve(db, "duty_director", local(2026, 1, 1, 9)) == ["wang.jianguo"]
    assert resolve(db, "duty_director", local(2026, 1, 2, 9)) == ["liu.min"]
