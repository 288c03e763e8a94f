"""After-action reports (Markdown; the HTML page renders the same data) and the trend of one
playbook's drills: time to acknowledge per department and time to first notice."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape

from sqlalchemy import select
from sqlalchemy.orm import Session

from incident import command, timeline
from incident.catalog import Catalog
from incident.drills.evaluations import RATINGS, actions_of, evaluations_of
from incident.drills.metrics import Measure, measure
from incident.models import Incident
from incident.response import get_incident


def _fmt(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _measure_row(name: str, m: Measure) -> str:
    verdict = {True: "on time", False: "LATE", None: ""}[m.on_time]
    return f"| {name} | {_fmt(m.seconds)} | {_fmt(m.target_s)} | {verdict} |"


def report_data(incident_id: str, *, session: Session, catalog: Catalog) -> dict[str, Any]:
    """Everything an after-action report shows."""
    incident = get_incident(incident_id, session=session)
    return {
        "incident": incident,
        "metrics": measure(incident_id, session=session, catalog=catalog),
        "evaluations": evaluations_of(incident_id, session=session),
        "actions": actions_of(incident_id, session=session),
        "follow_ups": [
            t for t in command.tasks.tasks_of(incident_id, session=session) if t.follow_up
        ],
        "events": timeline.events(incident_id, session=session),
    }


def markdown_report(incident_id: str, *, session: Session, catalog: Catalog) -> str:
    data = report_data(incident_id, session=session, catalog=catalog)
    incident: Incident = data["incident"]
    m = data["metrics"]
    out = [
        f"# After-action report: {incident.title}",
        "",
        f"- Incident: `{incident.id}` ({incident.mode}), playbook `{incident.playbook_id}`, "
        f"level {incident.severity}",
        f"- Declared: {incident.declared_at.isoformat()}; status {incident.status}",
        "",
        "## Measured against targets",
        "",
        "| measure | value | target | |",
        "|---|---|---|---|",
        _measure_row("first page delivered", m.first_page_delivered),
        _measure_row("first acknowledgement", m.first_ack),
        _measure_row("first public notice", m.first_notice),
        "",
        f"Escalations: {m.escalations}; unanswered pages: {m.unanswered_pages}; "
        f"unreachable: {', '.join(m.unreachable_people) or 'none'}.",
        "",
        "| department | pages | acknowledged | first ack | escalated to level |",
        "|---|---|---|---|---|",
    ]
    for dept, entry in sorted(m.ack_by_department.items()):
        out.append(
            f"| {dept} | {entry['pages']} | {entry['acked']} | "
            f"{_fmt(entry['first_ack_s'])} | {entry['escalated_to_level']} |"
        )
    out += ["", "| stage | state | fired after | target | |", "|---|---|---|---|---|"]
    for stage in m.stages:
        verdict = {True: "on time", False: "LATE", None: ""}[stage["on_time"]]
        out.append(
            f"| {stage['stage']} | {stage['state']} | {_fmt(stage['fired_after_s'])} | "
            f"{_fmt(stage['target_s'])} | {verdict} |"
        )
    for evaluation in data["evaluations"]:
        out += [
            "",
            f"## Evaluation by {evaluation.evaluator}",
            "",
            "| critical task | rating | notes |",
            "|---|---|---|",
        ]
        for r in evaluation.ratings:
            out.append(
                f"| {r['task']} | {r['rating']} ({RATINGS.get(r['rating'], '')}) | "
                f"{r.get('notes') or ''} |"
            )
        if evaluation.strengths:
            out += ["", "Strengths:", *[f"- {s}" for s in evaluation.strengths]]
        if evaluation.improvements:
            out += [
                "",
                "Areas for improvement:",
                *[
                    f"- {i['finding']} (root cause: {i['root_cause']})"
                    for i in evaluation.improvements
                ],
            ]
    if data["actions"]:
        out += [
            "",
            "## Corrective actions",
            "",
            "| action | owner | due | status | playbook |",
            "|---|---|---|---|---|",
        ]
        for a in data["actions"]:
            out.append(
                f"| {a.title} | {a.owner_id} | {a.due_at.date().isoformat()} | "
                f"{a.status} | {a.playbook_id or ''} |"
            )
    if data["follow_ups"]:
        out += [
            "",
            "## Follow-up tasks (after resolution)",
            "",
            "| task | owner | due | status | done |",
            "|---|---|---|---|---|",
        ]
        for t in data["follow_ups"]:
            out.append(
                f"| {t.title.get('zh', '')} / {t.title.get('en', '')} | "
                f"{t.person_id or t.department_id} | "
                f"{t.due_at.isoformat() if t.due_at else ''} | {t.status} | "
                f"{t.done_at.isoformat() + ' ' + (t.done_by or '') if t.done_at else ''} |"
            )
    out += ["", "## Timeline", ""]
    out += [f"- {e.at.isoformat()} `{e.kind}` {e.actor or ''}".rstrip() for e in data["events"]]
    return "\n".join(out) + "\n"


def trend(
    playbook_id: str, *, session: Session, catalog: Catalog, limit: int = 20
) -> list[dict[str, Any]]:
    """Drill by drill (oldest first): time to acknowledge per department, first notice."""
    drills = list(
        session.scalars(
            select(Incident)
            .where(Incident.playbook_id == playbook_id, Incident.mode == "drill")
            .order_by(Incident.declared_at.desc())
            .limit(limit)
        )
    )
    rows = []
    for incident in reversed(drills):
        m = measure(incident.id, session=session, catalog=catalog)
        rows.append(
            {
                "incident": incident.id,
                "declared_at": incident.declared_at.isoformat(),
                "first_ack_s": m.first_ack.seconds,
                "first_notice_s": m.first_notice.seconds,
                "ack_by_department": {d: e["first_ack_s"] for d, e in m.ack_by_department.items()},
                "ratings": [
                    r["rating"]
                    for e in evaluations_of(incident.id, session=session)
                    for r in e.ratings
                ],
            }
        )
    return rows


def trend_svg(rows: list[dict[str, Any]], *, width: int = 640, height: int = 260) -> str:
    """A line chart (SVG) of minutes to acknowledge per department and to first notice."""
    series: dict[str, list[float | None]] = {}
    for i, row in enumerate(rows):
        for dept, seconds in row["ack_by_department"].items():
            series.setdefault(f"ack {dept}", [None] * len(rows))[i] = seconds
        series.setdefault("first notice", [None] * len(rows))[i] = row["first_notice_s"]
    values = [v for line in series.values() for v in line if v is not None]
    top = max(values) / 60 if values else 1.0
    top = max(top, 1.0)
    left, right, upper, lower = 48, 150, 16, 32
    plot_w, plot_h = width - left - right, height - upper - lower
    colours = ["#c0392b", "#e67e22", "#2e86c1", "#27ae60", "#8e44ad", "#7f8c8d", "#d4ac0d"]

    def x(i: int) -> float:
        return left + (plot_w * i / max(len(rows) - 1, 1))

    def y(seconds: float) -> float:
        return upper + plot_h - plot_h * (seconds / 60) / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="drill trend">',
        f'<rect x="{left}" y="{upper}" width="{plot_w}" height="{plot_h}" fill="none" '
        f'stroke="#ccc"/>',
        f'<text x="4" y="{upper + 10}" font-size="11">{top:.0f} min</text>',
        f'<text x="4" y="{upper + plot_h}" font-size="11">0</text>',
    ]
    for i in range(len(rows)):
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - 12}" font-size="10" '
            f'text-anchor="middle">#{i + 1}</text>'
        )
    for n, (name, line) in enumerate(sorted(series.items())):
        colour = colours[n % len(colours)]
        points = [(x(i), y(v)) for i, v in enumerate(line) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>'
            )
        parts += [
            f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>' for px, py in points
        ]
        parts.append(
            f'<text x="{width - right + 8}" y="{upper + 14 + 16 * n}" font-size="11" '
            f'fill="{colour}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
