"""The EMI schedule (DESIGN.md §3): monthly EMI on reducing balance, exact to the paisa. Pure functions."""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, localcontext


@dataclass(frozen=True)
class ScheduledInstalment:
    seq: int
    due_date: date
    principal_paise: int
    interest_paise: int

    @property
    def total_paise(self) -> int:
        return self.principal_paise + self.interest_paise


class ScheduleError(ValueError):
    pass


def _round(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def monthly_rate(annual_rate_bps: int) -> Decimal:
    """r = annual rate / 12, from basis points (12.50 % = 1250 bps)."""
    return Decimal(annual_rate_bps) / Decimal(10000) / Decimal(12)


def emi_paise(principal_paise: int, annual_rate_bps: int, tenure_months: int) -> int:
    """EMI = P·r·(1+r)^n / ((1+r)^n − 1), rounded to the paisa; P/n when the rate is zero."""
    with localcontext() as ctx:
        ctx.prec = 50
        if annual_rate_bps == 0:
            return _round(Decimal(principal_paise) / tenure_months)
        r = monthly_rate(annual_rate_bps)
        growth = (1 + r) ** tenure_months
        return _round(Decimal(principal_paise) * r * growth / (growth - 1))


def due_date(first_due_on: date, months_after: int) -> date:
    """Same day each month as the first due date, clamped to month end (31 Jan → 28/29 Feb → 31 Mar)."""
    month_index = first_due_on.month - 1 + months_after
    year, month = first_due_on.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(first_due_on.day, calendar.monthrange(year, month)[1]))


def build_schedule(
    principal_paise: int, annual_rate_bps: int, tenure_months: int, first_due_on: date
) -> list[ScheduledInstalment]:
    """Instalments whose principal sums exactly to the loan; the last one absorbs the rounding."""
    emi = emi_paise(principal_paise, annual_rate_bps, tenure_months)
    if emi <= 0:
        raise ScheduleError("the loan is too small for its tenure (EMI would round to zero)")
    with localcontext() as ctx:
        ctx.prec = 50
        r = monthly_rate(annual_rate_bps)
        balance = principal_paise
        rows = []
        for seq in range(1, tenure_months + 1):
            interest = _round(Decimal(balance) * r)
            principal = balance if seq == tenure_months else emi - interest
            if principal < 0 or principal > balance:
                # EMI rounding compounds; at extreme rate × tenure for a small amount it overtakes the balance.
                raise ScheduleError("these terms cannot be scheduled exactly to the paisa "
                                    "(amount too small for this rate and tenure)")
            balance -= principal
            rows.append(ScheduledInstalment(seq, due_date(first_due_on, seq - 1), principal, interest))
    return rows
