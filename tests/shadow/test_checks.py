"""Integrity check, failure simulations and the go/no-go board."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text

from tests.shadow.conftest import D, system_rows, tracker_xlsx
from webapp import clock
from webapp.errors import Forbidden, ValidationError
from webapp.permissions import SystemActor
from webapp.services import golive, integrity, shadow, simulate


def test_integrity_is_clean_then_catches_a_tampered_position_and_a_duplicate(db, users, portfolio):
    report = integrity.check(db, SystemActor("test"))
    assert report.ok and report.run.passed, report.summary()
    db.execute(text("UPDATE loans SET overdue_since = '2020-01-01' WHERE loan_number = 'KL3'"))
    db.execute(text("UPDATE instalments SET principal_paid_paise = 1 WHERE seq = 12 AND loan_id = "
                    "(SELECT id FROM loans WHERE loan_number = 'KL3')"))
    db.expire_all()
    report = integrity.check(db, SystemActor("test"))
    failed = {c.name: c for c in report.checks if not c.ok}
    assert set(failed) == {"positions"} and "KL3" in failed["positions"].problems[0]
    assert not report.run.passed and "Stored positions" in report.run.summary


def test_integrity_finds_orphans(db, users, portfolio):
    db.execute(text("INSERT INTO dayend_positions (business_date, loan_id, dpd, asset_class, bucket, overdue_paise) "
                    "VALUES (:d, 999999, 0, 'STANDARD', '0', 0)"), {"d": D})
    report = integrity.run_checks(db)
    orphans = next(c for c in report.checks if c.name == "orphans")
    assert not orphans.ok and "dayend_positions.loan_id = 999999" in orphans.problems[0]


def test_every_simulation_passes_and_is_recorded(db):
    outcomes = simulate.run(db, SystemActor("test"), "all")
    assert [(o.scenario, o.passed) for o in outcomes] == [(name, True) for name in simulate.SCENARIOS], \
        [o.summary() + "\n" + "\n".join(o.steps) for o in outcomes if not o.passed]
    latest = simulate.latest_results(db)
    assert set(latest) == set(simulate.SCENARIOS) and all(r.passed for r in latest.values())


def test_a_deliberately_broken_scenario_fails(db):
    # With the approval threshold at 60 days, a 10-day-old payment posts at once: the checklist's rule is broken.
    [outcome] = simulate.run(db, SystemActor("test"), "backdated-entry", overrides={"BACKDATE_APPROVAL_DAYS": 60})
    assert not outcome.passed and "waits for a manager" in outcome.failure
    assert not outcome.run.passed and json.loads(outcome.run.detail)["overrides"] == {"BACKDATE_APPROVAL_DAYS": 60}
    with pytest.raises(ValidationError) as refused:
        simulate.run(db, SystemActor("test"), "fire-drill")
    assert "scenario" in refused.value.fields


def _write_verified_backup(directory, when):
    directory.mkdir(parents=True, exist_ok=True)
    name = "kisht-20260620T000000Z"
    (directory / f"{name}.manifest.json").write_text(json.dumps(
        {"file": f"{name}.sqlite3", "created_at": when.isoformat(), "size": 1, "backend": "sqlite"}))
    (directory / f"{name}.verify.json").write_text(json.dumps({"verified_at": when.isoformat(), "ok": True}))


def test_the_board_turns_go_only_when_every_row_holds(db, users, portfolio, service_app, tmp_path, monkeypatch):
    from jobs.dayend import run_dayend

    adm, fin = users["adm"], users["fin"]
    monkeypatch.setitem(service_app.config, "SHADOW_CONVERGED_DAYS", 2)
    monkeypatch.setitem(service_app.config, "BACKUP_DIR", str(tmp_path / "backups"))
    board = golive.board(db, fin)
    assert not board.go and len(board.rows) == len(golive.ROWS)
    with pytest.raises(Forbidden):
        golive.record_answer(db, fin, {"key": "s20", "holds": "yes", "note": "x"})
    # The system's rows, one by one.
    day2 = clock.last_business_date()  # D + 1: day-end for D ran with the portfolio
    assert day2 == D + timedelta(days=1) and run_dayend(day2).status == "SUCCEEDED"
    for day in (D, day2):
        shadow.import_tracker(db, fin, data=tracker_xlsx(system_rows(db, day).values(), day), filename="t.xlsx",
                              business_date=day.isoformat(), layout="EXCEL_V1")
    simulate.run(db, SystemActor("test"), "all")
    integrity.check(db, SystemActor("test"))
    _write_verified_backup(tmp_path / "backups", clock.now() - timedelta(hours=2))
    board = golive.board(db, adm)
    system_rows_state = {r.row.key: (r.holds, r.evidence.text) for r in board.rows if r.row.check}
    assert all(holds for holds, _ in system_rows_state.values()), system_rows_state
    assert not board.go  # people have not answered, nobody has signed
    with pytest.raises(ValidationError) as refused:
        golive.record_answer(db, adm, {"key": "s22", "holds": "yes", "note": "x"})
    assert "checked by the system" in refused.value.fields["key"]
    with pytest.raises(ValidationError) as refused:
        golive.record_answer(db, adm, {"key": "s20", "holds": "yes", "note": ""})
    assert "note" in refused.value.fields
    for row in golive.ROWS:
        if not row.check:
            golive.record_answer(db, adm, {"key": row.key, "holds": "yes", "signatory": "mgr", "note": "done"})
    for key in list(golive.SIGNOFFS)[:3]:
        golive.record_signoff(db, adm, {"key": key, "signatory": "adm", "signed_on": clock.today_ist().isoformat()})
    assert not golive.board(db, adm).go  # one sign-off missing
    with pytest.raises(ValidationError) as refused:
        golive.record_signoff(db, adm, {"key": "finance-compliance", "signatory": "nobody"})
    assert "signatory" in refused.value.fields
    with pytest.raises(ValidationError) as refused:
        golive.record_signoff(db, adm, {"key": "finance-compliance", "signatory": "fin",
                                        "signed_on": (clock.today_ist() + timedelta(days=1)).isoformat()})
    assert "signed_on" in refused.value.fields
    golive.record_signoff(db, adm, {"key": "finance-compliance", "signatory": "fin"})
    board = golive.board(db, adm)
    assert board.go, board.blocking
    # A failed simulation turns it back to NO-GO.
    simulate.run(db, SystemActor("test"), "backdated-entry", overrides={"BACKDATE_APPROVAL_DAYS": 60})
    board = golive.board(db, adm)
    assert not board.go and board.blocking == [next(r.title for r in golive.ROWS if r.key == "s23")]
