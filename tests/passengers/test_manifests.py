"""Manifest uploads: checked row by row, stored encrypted, visible only when complete."""

from __future__ import annotations

from sqlalchemy import func, select

from incident.models import ManifestUpload, Passenger
from tests.passengers.conftest import Rig, manifest

GOOD_AND_BAD = manifest(
    [
        ("张三", "138 1234 0001", "12A", "05", "zh", "E100000001"),
        ("Ann Lee", "+86 138-1234-0002", "12B", "05", "en", "E100000002"),
        ("李四", "12345", "12C", "05", "zh", "E100000003"),  # line 4: not a phone number
        ("王五", "008613812340004", "12D", "05", "fr", "E100000004"),  # line 5: language
        ("", "", "13A", "06", "zh", ""),  # line 6: nobody
        ("赵六", "13812340006", "13B", "06", "", "E100000006"),
        ("张三", "13812340001", "", "", "", "E100000001"),  # line 8: duplicate ticket
    ]
)


def open_group(rig: Rig, incident_id: str, headers: dict[str, str], **fields: object) -> str:
    body = {"train": "G1234", "station": "Langfang", "location": "coach 5", "count": 300}
    body.update(fields)
    made = rig.client().post(
        f"/api/incidents/{incident_id}/passenger-groups", json=body, headers=headers
    )
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def upload(rig: Rig, group_id: str, text: str | bytes, headers: dict[str, str], **kw: object):  # type: ignore[no-untyped-def]
    content = text.encode() if isinstance(text, str) else text
    return rig.client().post(
        f"/api/passenger-groups/{group_id}/passengers",
        content=content,
        headers={**headers, "Content-Type": "text/csv"},
        **kw,
    )


def test_good_rows_are_stored_and_bad_rows_reported_with_line_and_reason(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    group = open_group(rig, rig.declare(), duty)
    done = upload(rig, group, GOOD_AND_BAD, duty)
    assert done.status_code == 201, done.text
    report = done.json()
    assert report["status"] == "complete" and report["encoding"] == "utf-8"
    assert report["stored"] == 3 and report["merged"] == 1 and report["rejected_count"] == 3
    assert [r["line"] for r in report["rejected"]] == [4, 5, 6]
    assert "phone" in report["rejected"][0]["reason"]
    assert "language" in report["rejected"][1]["reason"]
    listed = rig.client().get(f"/api/passenger-groups/{group}/passengers", headers=duty).json()
    phones = [p["phone"] for p in listed["items"]]
    assert phones == ["+8613812340001", "+8613812340002", "+8613812340006"]
    first = listed["items"][0]
    assert first["seat"] == "12A" and first["ticket"] == "E100000001" and first["language"] == "zh"
    assert listed["items"][1]["language"] == "en"


def test_a_gb18030_manifest_from_a_spreadsheet_reads_like_utf8(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    group = open_group(rig, rig.declare(), duty)
    text = manifest(
        [("张三", "13812340001", "01A", "01", "中文", ""), ("李四", "13812340002", "", "", "", "")],
        header="姓名,手机号,座位号,车厢,语言,票号",
    )
    done = upload(rig, group, text.encode("gb18030"), duty)
    assert done.status_code == 201, done.text
    assert done.json()["encoding"] == "gb18030" and done.json()["stored"] == 2
    listed = rig.client().get(f"/api/passenger-groups/{group}/passengers", headers=duty).json()
    assert [p["name"] for p in listed["items"]] == ["张三", "李四"]


def test_a_multipart_upload_works_like_a_csv_body(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    group = open_group(rig, rig.declare(), duty)
    done = rig.client().post(
        f"/api/passenger-groups/{group}/passengers",
        files={"file": ("manifest.csv", GOOD_AND_BAD.encode(), "text/csv")},
        headers=duty,
    )
    assert done.status_code == 201, done.text
    assert done.json()["stored"] == 3


def test_a_failed_upload_leaves_nothing_half_written_and_the_old_manifest_current(
    rig: Rig,
) -> None:
    duty = rig.auth("duty_manager")
    group = open_group(rig, rig.declare(), duty)
    assert upload(rig, group, GOOD_AND_BAD, duty).status_code == 201
    # 5,000 good rows (more than two batches are staged) then bytes that are not UTF-8
    rows = [(f"旅客{i}", f"1381{i:07d}", "", "", "zh", f"T{i}") for i in range(5000)]
    broken = manifest(rows).encode() + "王五,13800000000\n".encode("gb18030")
    failed = upload(rig, group, broken, duty)
    assert failed.status_code == 422, failed.text
    assert "utf-8" in failed.text
    listed = rig.client().get(f"/api/passenger-groups/{group}/passengers", headers=duty).json()
    assert len(listed["items"]) == 3  # the earlier manifest, untouched
    rig.worker.drain()  # the failed upload's staged rows are discarded by jobs
    with rig.db.reading() as session:
        statuses = dict(session.execute(select(ManifestUpload.id, ManifestUpload.status)).all())
        total = session.scalar(select(func.count()).select_from(Passenger))
    assert sorted(statuses.values()) == ["complete", "failed"]
    assert total == 3


def test_a_new_upload_replaces_the_manifest_at_once_and_the_old_rows_go(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    group = open_group(rig, rig.declare(), duty)
    assert upload(rig, group, GOOD_AND_BAD, duty).status_code == 201
    second = upload(rig, group, manifest([("新人", "13812349999", "", "", "zh", "")]), duty)
    assert second.status_code == 201
    listed = rig.client().get(f"/api/passenger-groups/{group}/passengers", headers=duty).json()
    assert [p["phone"] for p in listed["items"]] == ["+8613812349999"]
    rig.worker.drain()
    with rig.db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Passenger)) == 1


def test_a_manifest_without_usable_rows_or_header_is_refused(rig: Rig) -> None:
    duty = rig.auth("duty_manager")
    group = open_group(rig, rig.declare(), duty)
    assert upload(rig, group, "foo,bar\n1,2\n", duty).status_code == 422
    only_bad = upload(rig, group, manifest([("x", "123", "", "", "", "")]), duty)
    assert only_bad.status_code == 422
    assert only_bad.json()["errors"][0]["field"] == "line 2"
    assert upload(rig, group, "", duty).status_code == 422
    assert upload(rig, group, GOOD_AND_BAD, rig.auth("viewer")).status_code == 403
