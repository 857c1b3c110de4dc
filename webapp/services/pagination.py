"""Every list is paginated and sorted by an indexed column: two queries whatever the data size."""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from sqlalchemy.util import LRUCache

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


def paginate(session: Session, query: Select, page: int, per_page: int, *, reuse_large_pages: bool = False) -> Page:
    """One page of `query` and the total. With `reuse_large_pages` (for a query of plain values such as ids),
    a page of a large list is reused like its count: sorting a branch's 20,000 loans by priority costs more
    than everything else on a manager's home page, and its order may lag a minute; the rows shown are loaded
    fresh by the caller."""
    count = select(func.count()).select_from(query.order_by(None).subquery())
    # A count of many rows (a whole portfolio: 130 ms at a million) is reused for a while; a small one,
    # like an inbox whose items come and go, is always exact.
    total = _remembered(session, count, lambda: session.scalar(count), keep=lambda rows: rows >= LARGE_COUNT) or 0
    window = query.limit(per_page).offset((page - 1) * per_page)

    def fetch() -> list:
        return list(session.scalars(window).unique())

    items = _remembered(session, window, fetch) if reuse_large_pages and total >= LARGE_COUNT else fetch()
    return Page(items, page, per_page, total)


# A statement's shape (SQLAlchemy's cache key, without the values) → its SQL, in this process: compiling a
# list's query costs about a millisecond, the shape a tenth of that.
_SQL_OF_SHAPE = LRUCache(500)


def _remembered(session: Session, statement: Select, compute, **options):
    if not cache.enabled():
        return compute()  # no key to build
    dialect = session.get_bind().dialect
    shape = statement._generate_cache_key()
    if shape is None:  # a statement SQLAlchemy cannot cache: compiled every time
        compiled = statement.compile(dialect=dialect)
        sql, values = str(compiled), sorted(compiled.params.items())
    else:
        sql = _SQL_OF_SHAPE.get((dialect.name, shape.key))
        if sql is None:
            sql = _SQL_OF_SHAPE[(dialect.name, shape.key)] = str(statement.compile(dialect=dialect))
        values = [p.effective_value for p in shape.bindparams]
    return cache.remembered(cache.key_of(sql, values), compute, **options)
