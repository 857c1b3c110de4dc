"""The EMI schedule against the standard formula and published figures, to the paisa."""
from datetime import date
from decimal import Decimal, getcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webapp.services.schedule import ScheduleError, build_schedule, due_date, emi_paise


@pytest.mark.parametrize(
    "principal_rupees, rate_bps, months, expected_emi",
    [
        (100000, 1200, 12, "8884.88"),  # ₹1 lakh at 12 % for a year
        (1000000, 850, 240, "8678.23"),  # ₹10 lakh home loan at 8.5 % for 20 years
        (500000, 1050, 60, "10746.95"),  # ₹5 lakh at 10.5 % for 5 years
        (200000, 1400, 36, "6835.53"),  # ₹2 lakh at 14 % for 3 years
        (12000, 0, 12, "1000.00"),  # interest-free: P / n
    ],
)
def test_emi_matches_published_figures(principal_rupees, rate_bps, months, expected_emi):
    assert emi_paise(principal_rupees * 100, rate_bps, months) == int(Decimal(expected_emi) * 100)


def test_first_lakh_schedule_row_by_row():
    rows = build_schedule(10_000_000, 1200, 12, date(2026, 1, 31))
    # Month 1: interest = 1,00,000 × 1 % = 1,000.00; principal = EMI − interest.
    assert (rows[0].interest_paise, rows[0].principal_paise) == (100_000, 788_488)
    # Month 2 on the reduced balance 92,115.12: interest 921.15.
    assert (rows[1].interest_paise, rows[1].principal_paise) == (92_115, 796_373)
    # The last row absorbs the rounding: principal sums exactly to the loan.
    assert sum(r.principal_paise for r in rows) == 10_000_000
    assert rows[-1].total_paise == 888_485
    assert all(r.total_paise == 888_488 for r in rows[:-1])


def test_due_dates_clamp_to_month_end_and_return_to_the_anchor_day():
    rows = build_schedule(10_000_000, 1200, 4, date(2027, 1, 31))
    assert [r.due_date for r in rows] == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30)]
    assert due_date(date(2028, 1, 31), 1) == date(2028, 2, 29)  # leap year
    assert due_date(date(2026, 11, 15), 2) == date(2027, 1, 15)  # across the year end


@pytest.mark.parametrize("principal, rate_bps, months", [(100_000, 2110, 300)])
def test_terms_that_cannot_be_scheduled_exactly_are_refused(principal, rate_bps, months):
    # ₹1,000 at 21.1 % over 25 years: EMI rounding would overpay the balance before the last month.
    with pytest.raises(ScheduleError):
        build_schedule(principal, rate_bps, months, date(2026, 1, 1))


def _reference_emi(principal_paise: int, rate_bps: int, months: int) -> Decimal:
    getcontext().prec = 60
    r = Decimal(rate_bps) / Decimal(120000)
    growth = (1 + r) ** months
    return Decimal(principal_paise) * r * growth / (growth - 1)


# Realistic products: small-ticket loans up to 36 % over 7 years, housing up to 15 % over 30 years.
SMALL_TICKET = st.tuples(st.integers(5_000_00, 50_00_000_00), st.integers(1, 3600), st.integers(1, 84))
HOUSING = st.tuples(st.integers(1_00_000_00, 5_00_00_000_00), st.integers(1, 1500), st.integers(1, 360))


@given(terms=st.one_of(SMALL_TICKET, HOUSING))
def test_any_schedule_is_exact(terms):
    principal, rate_bps, months = terms
    rows = build_schedule(principal, rate_bps, months, date(2026, 1, 15))
    assert len(rows) == months
    assert sum(r.principal_paise for r in rows) == principal
    assert abs(Decimal(emi_paise(principal, rate_bps, months)) - _reference_emi(principal, rate_bps, months)) <= Decimal("0.5")
    assert all(r.principal_paise >= 0 and r.interest_paise >= 0 for r in rows)
