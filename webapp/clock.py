"""The one place that reads the clock. Business dates are IST calendar dates, whatever TZ says."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

IST = ZoneInfo("Asia/Kolkata")


def now() -> datetime:
    """Current instant, aware, in UTC."""
    return datetime.now(timezone.utc)


def today_ist() -> date:
    """Today's business date in India."""
    return now().astimezone(IST).date()


def last_business_date() -> date:
    """The date whose day-end the live position reflects (normally yesterday, IST)."""
    return today_ist() - timedelta(days=1)


def to_ist(moment: datetime) -> datetime:
    return moment.astimezone(IST)


def start_of_ist_day(day: date, plus_days: int = 0) -> datetime:
    """The instant an IST calendar day begins (for filtering timestamps by business date)."""
    return datetime.combine(day + timedelta(days=plus_days), datetime.min.time(), tzinfo=IST)
