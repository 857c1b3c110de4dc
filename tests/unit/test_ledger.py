"""The pure position function: DPD by the RBI day-end convention, classes, advance, allocation order."""
from datetime import date, timedelta

import pytest

from webapp.services.ledger import Receipt, bucket_for_dpd, class_for_dpd, compute_position, parse_buckets
from webapp.services.schedule import build_schedule

FIRST_DUE = date(2026, 1, 5)
SCHEDULE = build_schedule(10_000_000, 1200, 12, FIRST_DUE)  # EMI 8,884.88
EMI = 888_488


def at(day, receipts=()):
    return compute_position(SCHEDULE, list(receipts), day)


def test_nothing_due_yet_is_standard():
    p = at(FIRST_DUE - timedelta(days=1))
    assert (p.dpd, p.asset_class, p.overdue_paise, p.bucket) == (0, "STANDARD", 0, "0")
    assert p.outstanding_principal_paise == 10_000_000


def test_due_today_and_unpaid_is_one_day_past_due():
    p = at(FIRST_DUE)
    assert (p.dpd, p.asset_class, p.overdue_paise) == (1, "SMA-0", EMI)
    assert p.instalments[0].status == "OVERDUE" and p.instalments[1].status == "DUE"


@pytest.mark.parametrize("days_after, dpd, asset_class", [
    (29, 30, "SMA-0"), (30, 31, "SMA-1"), (59, 60, "SMA-1"), (60, 61, "SMA-2"), (89, 90, "SMA-2"), (90, 91, "NPA"),
])
def test_class_boundaries(days_after, dpd, asset_class):
    p = at(FIRST_DUE + timedelta(days=days_after))
    assert (p.dpd, p.asset_class) == (dpd, asset_class)


def test_npa_is_sticky_until_every_arrear_is_paid():
    npa_day = FIRST_DUE + timedelta(days=90)
    # Three instalments fell due (5 Jan, 5 Feb, 5 Mar); paying two leaves the March one: DPD drops, NPA stays.
    partial = at(npa_day + timedelta(days=5), [Receipt("p1", npa_day + timedelta(days=1), 2 * EMI)])
    assert partial.dpd < 91 and partial.asset_class == "NPA" and partial.class_since == npa_day
    cured = at(npa_day + timedelta(days=5), [Receipt("p1", npa_day + timedelta(days=1), 4 * EMI)])
    assert (cured.dpd, cured.overdue_paise, cured.asset_class) == (0, 0, "STANDARD")


def test_payment_after_the_day_end_date_does_not_count():
    p = at(FIRST_DUE, [Receipt("late", FIRST_DUE + timedelta(days=1), EMI)])
    assert p.dpd == 1


def test_live_position_counts_money_received_today():
    yesterday = FIRST_DUE + timedelta(days=10)
    p = compute_position(SCHEDULE, [Receipt("noon", yesterday + timedelta(days=1), EMI)], yesterday,
                         receipts_until=yesterday + timedelta(days=1))
    assert (p.dpd, p.asset_class) == (0, "STANDARD")


def test_interest_before_principal_then_advance():
    p = at(FIRST_DUE, [Receipt("a", FIRST_DUE, 1_000_000)])
    first = p.instalments[0]
    assert (first.interest_paid, first.principal_paid) == (100_000, 788_488)
    assert p.advance_paise == 1_000_000 - EMI
    # The advance is applied when the next instalment falls due.
    later = at(FIRST_DUE + timedelta(days=31), [Receipt("a", FIRST_DUE, 1_000_000)])
    assert later.advance_paise == 0 and later.instalments[1].interest_paid == 92_115
    assert later.instalments[1].status == "PARTIALLY_PAID" and later.dpd == 1


def test_configured_order_principal_first():
    p = compute_position(SCHEDULE, [Receipt("a", FIRST_DUE, 100_000)], FIRST_DUE,
                         order=("principal", "interest", "charges"))
    assert (p.instalments[0].principal_paid, p.instalments[0].interest_paid) == (100_000, 0)


def test_allocations_name_the_payment_that_funded_them():
    p = at(FIRST_DUE + timedelta(days=31), [Receipt("a", FIRST_DUE, EMI + 5_000), Receipt("b", FIRST_DUE, EMI)])
    assert sum(a.amount_paise for a in p.allocations if a.key == "a") == EMI + 5_000
    assert sum(a.amount_paise for a in p.allocations if a.key == "b") == EMI - 5_000
    assert p.advance_paise == 5_000


def test_paying_everything_closes_the_loan():
    total = sum(r.total_paise for r in SCHEDULE)
    p = at(FIRST_DUE, [Receipt("all", FIRST_DUE, total)])
    assert p.closed and p.outstanding_principal_paise == 0 and all(i.status == "PAID" for i in p.instalments)


def test_paying_off_what_is_left_after_some_emis_closes_the_loan():
    left = sum(r.total_paise for r in SCHEDULE[3:])
    emis = [Receipt(f"emi{r.seq}", r.due_date, EMI) for r in SCHEDULE[:3]]
    p = at(SCHEDULE[3].due_date - timedelta(days=10), [*emis, Receipt("rest", SCHEDULE[2].due_date, left)])
    assert p.closed and p.advance_paise == 0 and all(i.status == "PAID" for i in p.instalments)
    assert sum(a.amount_paise for a in p.allocations if a.key == "rest") == left
    short = at(SCHEDULE[3].due_date - timedelta(days=10), [*emis, Receipt("rest", SCHEDULE[2].due_date, left - 1)])
    assert not short.closed and short.advance_paise == left - 1  # not enough: held until instalments fall due


def test_classes_and_buckets():
    assert [class_for_dpd(d) for d in (0, 1, 30, 31, 60, 61, 90, 91, 500)] == [
        "STANDARD", "SMA-0", "SMA-0", "SMA-1", "SMA-1", "SMA-2", "SMA-2", "NPA", "NPA"]
    assert [bucket_for_dpd(d) for d in (0, 1, 30, 31, 91, 180, 181)] == [
        "0", "1-30", "1-30", "31-60", "91-180", "91-180", "181+"]
    with pytest.raises(ValueError):
        parse_buckets("0,1-30,40-60,61+")  # gap
    with pytest.raises(ValueError):
        parse_buckets("0,1-30")  # not open-ended
    with pytest.raises(ValueError):
        parse_buckets("0,1+,5-9")  # nothing after the open-ended one
