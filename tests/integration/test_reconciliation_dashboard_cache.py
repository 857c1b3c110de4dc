"""The reconciliation dashboard keeps the figures of past days in the aggregate cache (webapp/cache.py) and
drops a day the moment a change to its payments or bank lines commits; today is always summed. On SQLite and
PostgreSQL, with the cache in process memory and in Redis; with Redis unreachable the figures are still right.

Changes are committed (`db.commit()` releases the test session's SAVEPOINT: an ORM commit as far as the
session knows), since the cache is only told after a commit.
"""
import io
import re
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone

import pytest
import redis
from sqlalchemy import event, select

from tests.conftest import csrf_token
from tests.recon_support import hdfc_csv, make_loans, make_second_finance_user, neft, upi
from webapp import cache, clock
from webapp.models import ReconciliationMatch
from webapp.services import approvals, payments
from webapp.services import reconciliation as recon
from webapp.services.reconciliation import Figures

TODAY = date(2026, 6, 15)
D = {n: TODAY - timedelta(days=n) for n in range(0, 14)}  # D[2] is two days ago
FORTNIGHT = set(D.values())
REDIS_DB = "redis://127.0.0.1:6379/10"  # flushed by these tests
ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch):
    monkeypatch.setattr(clock, "now", lambda: datetime(2026, 6, 15, 6, 30, tzinfo=timezone.utc))  # noon IST


@contextmanager
def aggregate_cache(apps, redis_url: str):
    """The aggregate cache on for `apps` (the test client's and the services'), in memory or in Redis."""
    saved = {a: {k: a.config[k] for k in ("AGGREGATE_CACHE_SECONDS", "REDIS_URL")} for a in apps}
    for a in apps:
        a.config.update(AGGREGATE_CACHE_SECONDS=60, REDIS_URL=redis_url)
        cache.init_app(a)
        a.config["REDIS_URL"] = saved[a]["REDIS_URL"]  # only the cache uses the URL here
    try:
        yield
    finally:
        for a, config in saved.items():
            a.config.update(config)


@pytest.fixture(params=["memory", "redis"])
def caching(request, app, service_app, db):
    if request.param == "redis":
        redis.Redis.from_url(REDIS_DB).flushdb()  # nothing kept from another test's (rolled back) data
    with aggregate_cache([app, service_app], REDIS_DB if request.param == "redis" else ""):
        yield request.param


@pytest.fixture()
def cache_down(app, service_app, db):
    with aggregate_cache([app, service_app], "redis://127.0.0.1:1/0"):
        yield


@pytest.fixture()
def loans(make_loan):
    return make_loans(make_loan, 3)


@pytest.fixture()
def fin2(db, system, users):
    return make_second_finance_user(db, system, users)


@contextmanager
def payment_sums(engine):
    """The value dates asked for by each run of the dashboard's payments aggregate meanwhile."""
    runs: list[set[date]] = []

    def seen(_conn, _cursor, statement, parameters, _context, _executemany):
        if "GROUP BY payments.value_date" in statement:
            values = parameters.values() if isinstance(parameters, dict) else parameters
            runs.append({date.fromisoformat(str(v)) for v in values if ISO_DAY.match(str(v))})

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield runs
    finally:
        event.remove(engine, "before_cursor_execute", seen)


@pytest.fixture()
def engine(app):
    return app.extensions["kisht.engine"]


def pay(db, user, day, amount="1000", mode="NEFT", reference="", loan="KL1", receipt=None):
    fields = {"amount": amount, "mode": mode, "reference": reference, "value_date": day.isoformat()}
    if mode == "CASH":
        fields["receipt_number"] = receipt
    return payments.record_payment(db, user, loan, fields)


def by_day(db, users) -> dict[date, Figures]:
    """One view of the dashboard (the last 14 days): each day's total."""
    return {row.day: row.total for row in recon.dashboard(db, users["fin"], D[13], TODAY).days}


def system(f: Figures) -> tuple[int, int, int, int]:
    return f.system_count, f.system_paise, f.reconciled_count, f.reconciled_paise


def bank(f: Figures) -> tuple[int, int, int, int]:
    return f.bank_count, f.bank_paise, f.matched_count, f.unmatched_count


def load(db, user, rows):
    return recon.import_statement(db, user, bank="HDFC", data=hdfc_csv(rows), filename="statement.csv")


# ---------------------------------------------------------------- kept

def test_a_second_view_sums_only_today(db, users, loans, caching, engine):
    pay(db, users["col"], D[2], amount="1000", reference="HDFCN26306250001")
    pay(db, users["col"], D[1], amount="2000", mode="UPI", reference="111111111111", loan="KL2")
    pay(db, users["col"], TODAY, amount="500", reference="HDFCN26306250002", loan="KL3")
    with payment_sums(engine) as sums:
        first = by_day(db, users)
    assert sums == [FORTNIGHT]  # one aggregate for every day
    with payment_sums(engine) as sums:
        second = by_day(db, users)
    assert sums == [{TODAY}]  # the past days come from the cache
    assert second == first
    assert [system(second[d]) for d in (D[2], D[1], TODAY)] == [(1, 100_000, 0, 0), (1, 200_000, 0, 0),
                                                                 (1, 50_000, 0, 0)]
    with payment_sums(engine) as sums:
        recon.dashboard(db, users["fin"], D[6], D[1])
    assert sums == []  # past days only: nothing summed
    # What is kept survives the trip through pickle (and Redis): exact integers, per mode.
    kept = cache.get_many([recon._day_key(D[1]), recon._day_key(D[3]), recon._day_key(TODAY)])
    assert kept == {recon._day_key(D[1]): {"UPI": Figures(system_count=1, system_paise=200_000)},
                    recon._day_key(D[3]): {}}
    assert all(type(v) is int for v in kept[recon._day_key(D[1])]["UPI"].as_dict().values())


# ---------------------------------------------------------------- dropped by every change that commits

def test_an_import_then_a_confirmed_match_show_on_the_next_view(db, users, loans, caching):
    pay(db, users["col"], D[3], amount="8884.88", reference="HDFCN26306258999")
    db.commit()
    assert bank(by_day(db, users)[D[3]]) == (0, 0, 0, 0)
    # Another UTR: only a suggestion, so the statement's own (core) insert is all that changes the day.
    load(db, users["fin"], [neft(D[3], "8884.88", "HDFCN26306258176")])
    db.commit()
    assert bank(by_day(db, users)[D[3]]) == (1, 888_488, 0, 1)
    [suggestion] = db.scalars(select(ReconciliationMatch).where(ReconciliationMatch.status == "SUGGESTED")).all()
    recon.confirm(db, users["fin"], suggestion.id)
    db.commit()
    d3 = by_day(db, users)[D[3]]
    assert bank(d3) == (1, 888_488, 1, 0) and system(d3) == (1, 888_488, 1, 888_488)


def test_an_approved_unreconcile_shows_on_the_next_view(db, users, loans, fin2, caching):
    pay(db, users["col"], D[2], amount="8884.88", mode="UPI", reference="154335349840")
    load(db, users["fin"], [upi(D[2], "8884.88", "154335349840")])  # the UTR matches at once
    db.commit()
    d2 = by_day(db, users)[D[2]]
    assert bank(d2) == (1, 888_488, 1, 0) and system(d2) == (1, 888_488, 1, 888_488)
    [match] = db.scalars(select(ReconciliationMatch)).all()
    request = recon.request_unreconcile(db, users["fin"], match.id, "booked on the wrong loan")
    db.commit()
    assert by_day(db, users)[D[2]] == d2  # only asked
    recon.decide_unreconcile(db, fin2, request.id, approve=True, reason="agreed")
    db.commit()
    d2 = by_day(db, users)[D[2]]
    assert bank(d2) == (1, 888_488, 0, 1) and system(d2) == (1, 888_488, 0, 0)


def test_backdated_payments_show_on_the_next_view(db, users, loans, caching):
    assert system(by_day(db, users)[D[2]]) == (0, 0, 0, 0)
    assert pay(db, users["col"], D[2], amount="1000", reference="HDFCN26306250001").posted
    db.commit()
    assert system(by_day(db, users)[D[2]]) == (1, 100_000, 0, 0)
    held = pay(db, users["col"], D[12], amount="700", mode="CASH", receipt="R700", loan="KL2")
    assert not held.posted  # beyond BACKDATE_APPROVAL_DAYS: waits for a manager
    db.commit()
    assert system(by_day(db, users)[D[12]]) == (0, 0, 0, 0)
    approvals.decide(db, users["mgr"], [held.approval.id], approve=True, reason="receipt book seen")
    db.commit()
    assert system(by_day(db, users)[D[12]]) == (1, 70_000, 0, 0)


def test_a_rolled_back_change_leaves_the_cache_as_it_was(db, users, loans, caching, engine):
    pay(db, users["col"], D[2], amount="1000", reference="HDFCN26306250001")
    db.commit()
    before = by_day(db, users)
    pay(db, users["col"], D[2], amount="2000", reference="HDFCN26306250002", loan="KL2")
    db.flush()
    db.rollback()
    with payment_sums(engine) as sums:
        assert by_day(db, users) == before
    assert sums == [{TODAY}]  # D[2] is still kept
    pay(db, users["col"], D[5], amount="300", reference="HDFCN26306250003", loan="KL3")
    db.commit()
    with payment_sums(engine) as sums:
        after = by_day(db, users)
    assert sums == [{D[5], TODAY}]  # only the committed change's day: the rolled-back one was forgotten
    assert system(after[D[5]]) == (1, 30_000, 0, 0) and system(after[D[2]]) == (1, 100_000, 0, 0)


# ---------------------------------------------------------------- over HTTP: the request's commit drops the day

def post(client, url, data=None):
    return client.post(url, headers={"HX-Request": "true"},
                       data={"csrf_token": csrf_token(client, "/reconciliation/"), **(data or {})})


def test_a_confirmation_over_http_shows_on_the_next_view(login_as, db, users, loans, caching, engine):
    pay(db, users["col"], D[2], amount="8884.88", mode="UPI", reference="111111111111")  # bank: another reference
    client = login_as("fin")
    uploaded = client.post("/reconciliation/statements", headers={"HX-Request": "true"},
                           content_type="multipart/form-data",
                           data={"csrf_token": csrf_token(client, "/reconciliation/statements"), "bank": "HDFC",
                                 "file": (io.BytesIO(hdfc_csv([upi(D[2], "8884.88", "154335349840")])), "s.csv")})
    assert uploaded.status_code == 204
    assert 'data-testid="total-matched">0<' in client.get("/reconciliation/").get_data(as_text=True)
    with payment_sums(engine) as sums:
        client.get("/reconciliation/")
    assert sums == [{TODAY}]
    match_id = db.scalar(select(ReconciliationMatch.id).where(ReconciliationMatch.status == "SUGGESTED"))
    assert post(client, f"/reconciliation/matches/{match_id}/confirm").status_code == 200
    with payment_sums(engine) as sums:
        board = client.get("/reconciliation/").get_data(as_text=True)
    assert sums == [{D[2], TODAY}] and 'data-testid="total-matched">1<' in board


# ---------------------------------------------------------------- Redis down

def test_with_redis_down_every_view_is_summed_and_right(login_as, db, users, loans, cache_down, engine):
    pay(db, users["col"], D[2], amount="1000", reference="HDFCN26306250001")
    with payment_sums(engine) as sums:
        assert system(by_day(db, users)[D[2]]) == (1, 100_000, 0, 0)
        pay(db, users["col"], D[2], amount="2000", reference="HDFCN26306250002", loan="KL2")
        db.commit()  # dropping the day fails quietly
        assert system(by_day(db, users)[D[2]]) == (2, 300_000, 0, 0)
    assert sums == [FORTNIGHT, FORTNIGHT]
    page = login_as("fin").get("/reconciliation/")
    assert page.status_code == 200 and 'data-testid="total-system">₹3,000.00<' in page.get_data(as_text=True)
