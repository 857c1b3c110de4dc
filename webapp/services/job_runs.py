"""Reading the record of job runs (CronRun): one query for the admin API, scoped like the jobs screen."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from webapp.models import CronRun
from webapp.permissions import Perm, require
from webapp.services.pagination import Page, paginate


@dataclass(frozen=True)
class RunFilters:
    job: str = ""
    status: str = ""
    date_from: date | None = None  # business dates, inclusive
    date_to: date | None = None


def list_runs(session: Session, actor, filters: RunFilters, page: int, per_page: int) -> Page:
    """Newest first (started_at is indexed), filtered by job, status and business date."""
    require(actor, Perm.ADMINISTER)
    query = select(CronRun)
    if filters.job:
        query = query.where(CronRun.job == filters.job)
    if filters.status:
        query = query.where(CronRun.status == filters.status)
    if filters.date_from:
        query = query.where(CronRun.business_date >= filters.date_from)
    if filters.date_to:
        query = query.where(CronRun.business_date <= filters.date_to)
    return paginate(session, query.order_by(CronRun.started_at.desc(), CronRun.id.desc()), page, per_page)
