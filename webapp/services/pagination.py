"""Every list is paginated and sorted by an indexed column: two queries whatever the data size."""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from webapp import cache

MAX_PER_PAGE = 100
LARGE_COUNT = 10_000


@dataclass(frozen=True)
class Page:
    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, ceil(self.total / self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def clamp(page, per_page, default_per_page: int) -> tuple[int, int]:
    """Page numbers from untrusted input: anything odd falls back to a sane value."""
    try:
        page = max(1, min(int(page), 1_000_000))
    except (TypeError, ValueError):
        page = 1
    try:
        per_page = max(1, min(int(per_page), MAX_PER_PAGE))
    except (TypeError, ValueError):
        per_page = default_per_page
    return page, per_page


def paginate(session: Session, query: Select, page: int, per_page: int) -> Page:
    count = select(func.count()).select_from(query.order_by(None).subquery())
    compiled = count.compile(dialect=session.get_bind().dialect)
    # A count of many rows (a whole portfolio: 130 ms at a million) is reused for a while; a small one,
    # like an inbox whose items come and go, is always exact.
    total = cache.remembered(cache.key_of("count", str(compiled), sorted(compiled.params.items())),
                             lambda: session.scalar(count), keep=lambda rows: rows >= LARGE_COUNT)
    items = list(session.scalars(query.limit(per_page).offset((page - 1) * per_page)).unique())
    return Page(items, page, per_page, total or 0)
