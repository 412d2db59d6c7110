"""The inspection report is hostile input: typed and bounded, and kept once per machine."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vaquero.inspect import InspectionReport, list_inspections, record_inspection
from vaquero.inspect import records as records_mod
from vaquero.state.sqlite import SQLiteStore


def report(**kw) -> dict:
    body = {
        "boot_mac": "52-54-00-AA-00-09",
        "nics": [{"name": "ens3", "mac": "52:54:00:aa:00:09"}, {"name": "ens4", "mac": "52:54:00:aa:00:0a"}],
        "uuid": "5a9a0001-0000-4000-8000-000000001009",
        "serial": "VQ-0009",
        "cpus": 2,
        "memory_mib": 1024,
        "disks": [{"name": "vda", "size_bytes": 10 << 30, "rotational": True}],
    }
    body.update(kw)
    return body


def test_a_report_is_normalised_and_lists_the_boot_mac_first():
    r = InspectionReport.model_validate(report(nics=[{"name": "ens4", "mac": "52:54:00:aa:00:0a"}, {"name": "ens3", "mac": "52-54-00-AA-00-09"}]))
    assert r.boot_mac == "52:54:00:aa:00:09" and r.macs == ["52:54:00:aa:00:09", "52:54:00:aa:00:0a"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"boot_mac": "52:54:00:aa:00:0b"}, "not among the reported NICs"),
        ({"nics": [{"name": "ens3", "mac": "52:54:00:aa:00:09"}] * 2}, "reported twice"),
        ({"nics": []}, "at least 1"),
        (
            {
                "nics": [{"name": "ens3", "mac": "52:54:00:aa:00:09"}]
                + [{"name": f"e{i}", "mac": f"02:00:00:00:{i // 256:02x}:{i % 256:02x}"} for i in range(64)]
            },
            "at most 64",
        ),
        ({"uuid": "$(reboot)"}, "should match pattern"),
        ({"serial": "a\nb"}, "control or format character"),
        ({"serial": "x" * 129}, "at most 128"),
        ({"disks": [{"name": "../sda", "size_bytes": 1}]}, "should match pattern"),
        ({"cpus": 0}, "greater than or equal to 1"),
        ({"memory_mib": -1}, "greater than or equal to 1"),
        ({"extra": "field"}, "Extra inputs are not permitted"),
        ({"boot_mac": "not-a-mac"}, "is not a MAC address"),
    ],
)
def test_a_hostile_report_is_refused_with_the_reason(change, why):
    with pytest.raises(ValidationError, match=why):
        InspectionReport.model_validate(report(**change))


def test_a_machine_reporting_again_replaces_its_report_and_keeps_its_proposal(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    first = record_inspection(store, InspectionReport.model_validate(report()), site="lab", agent="lab-agent", now=100.0)
    assert (first["status"], first["reports"], first["first_seen"]) == ("new", 1, 100.0)
    rec = store.get("/inspections/52-54-00-aa-00-09")
    assert rec is not None
    store.put(rec.key, {**rec.value, "status": "proposed", "proposal": {"kind": "pull", "number": 7}, "retry_at": 500.0, "last_error": "GitHub answered 502"})
    again = record_inspection(store, InspectionReport.model_validate(report(memory_mib=2048)), site="lab", agent="lab-agent", now=200.0)
    assert (again["status"], again["proposal"], again["reports"], again["first_seen"], again["last_seen"]) == (
        "proposed",
        {"kind": "pull", "number": 7},
        2,
        100.0,
        200.0,
    )
    assert again["report"]["memory_mib"] == 2048 and len(list_inspections(store)) == 1
    assert (again["retry_at"], again["last_error"]) == (500.0, "GitHub answered 502")  # the proposer's backoff stands


def test_the_store_keeps_a_bounded_number_of_machines(tmp_path, monkeypatch):
    monkeypatch.setattr(records_mod, "MAX_INSPECTIONS", 2)
    store = SQLiteStore(tmp_path / "s.db")
    for i in range(2):
        record_inspection(
            store,
            InspectionReport.model_validate(report(boot_mac=f"02:00:00:00:00:0{i}", nics=[{"name": "e", "mac": f"02:00:00:00:00:0{i}"}])),
            site="lab",
            agent="a",
        )
    with pytest.raises(records_mod.TooManyInspections):
        record_inspection(
            store,
            InspectionReport.model_validate(report(boot_mac="02:00:00:00:00:09", nics=[{"name": "e", "mac": "02:00:00:00:00:09"}])),
            site="lab",
            agent="a",
        )
    # a machine already known still reports
    record_inspection(
        store, InspectionReport.model_validate(report(boot_mac="02:00:00:00:00:01", nics=[{"name": "e", "mac": "02:00:00:00:00:01"}])), site="lab", agent="a"
    )
