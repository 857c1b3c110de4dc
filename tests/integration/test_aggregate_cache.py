"""Portfolio totals, large list counts and the order of a large loan list are reused for
AGGREGATE_CACHE_SECONDS; small lists never are;
a cache that cannot be reached is skipped, never fails the request (webapp/cache.py)."""
import pytest
import redis
from sqlalchemy import select

from webapp import cache
from webapp.models import Loan
from webapp.services import loans, pagination

REDIS_DB = "redis://127.0.0.1:6379/11"


@pytest.fixture(params=["memory", "redis", "redis unreachable"])
def caching(request, service_app, db):
    """Switch the aggregate cache on for the test's app, in each of its backends."""
    url = {"memory": "", "redis": REDIS_DB, "redis unreachable": "redis://127.0.0.1:1/0"}[request.param]
    if request.param == "redis":
        redis.Redis.from_url(REDIS_DB).flushdb()
    saved = {k: service_app.config[k] for k in ("AGGREGATE_CACHE_SECONDS", "REDIS_URL")}
    service_app.config.update(AGGREGATE_CACHE_SECONDS=60, REDIS_URL=url)
    cache.init_app(service_app)
    yield request.param
    service_app.config.update(saved)


def classes(summary):
    return {row.asset_class: row.loans for row in summary}


def test_portfolio_totals_are_reused_per_scope(db, users, make_loan, caching):
    make_loan()
    assert sum(classes(loans.portfolio_summary(db, users["mgr"])).values()) == 1
    make_loan(loan_number="KL0002")
    expected = 1 if caching != "redis unreachable" else 2  # without a cache every view is exact
    assert sum(classes(loans.portfolio_summary(db, users["mgr"])).values()) == expected
    assert sum(classes(loans.portfolio_summary(db, users["mgr2"])).values()) == 0  # another branch: its own entry
    assert sum(classes(loans.portfolio_summary(db, users["fin"])).values()) == 2  # first view of the whole book


def test_only_large_counts_are_reused(db, users, make_loan, caching, monkeypatch):
    make_loan()
    query = select(Loan).order_by(Loan.id)
    assert pagination.paginate(db, query, 1, 10).total == 1
    make_loan(loan_number="KL0002")
    assert pagination.paginate(db, query, 1, 10).total == 2  # small: counted every time
    monkeypatch.setattr(pagination, "LARGE_COUNT", 2)
    assert pagination.paginate(db, query, 1, 10).total == 2
    make_loan(loan_number="KL0003")
    page = pagination.paginate(db, query, 1, 10)
    assert page.total == (2 if caching != "redis unreachable" else 3) and len(page.items) == 3  # rows are always fresh


def test_a_large_loan_list_reuses_its_page_order_but_shows_fresh_rows(db, users, make_loan, caching, monkeypatch):
    monkeypatch.setattr(pagination, "LARGE_COUNT", 2)
    first, second = make_loan(), make_loan(loan_number="KL0002")
    assert [loan.loan_number for loan in loans.list_for(db, users["fin"], sort="number").items] == ["KL0001", "KL0002"]
    make_loan(loan_number="KL0000")  # sorts first
    second.overdue_paise = 123_45
    db.flush()
    db.expire_all()
    page = loans.list_for(db, users["fin"], sort="number")
    numbers = [loan.loan_number for loan in page.items]
    if caching == "redis unreachable":
        assert numbers == ["KL0000", "KL0001", "KL0002"]  # without a cache every view is exact
    else:
        assert numbers == ["KL0001", "KL0002"]  # the order of the first view, for AGGREGATE_CACHE_SECONDS
    assert page.items[numbers.index("KL0002")].overdue_paise == 123_45  # what a row shows is read now


def test_a_small_loan_list_is_always_exact(db, users, make_loan, caching):
    make_loan()
    assert [loan.loan_number for loan in loans.list_for(db, users["fin"], sort="number").items] == ["KL0001"]
    make_loan(loan_number="KL0000")
    assert [loan.loan_number for loan in loans.list_for(db, users["fin"], sort="number").items] == ["KL0000", "KL0001"]


def test_off_by_default_in_tests(db, users, make_loan, service_app):
    assert service_app.config["AGGREGATE_CACHE_SECONDS"] == 0
    make_loan()
    assert sum(classes(loans.portfolio_summary(db, users["fin"])).values()) == 1
    make_loan(loan_number="KL0002")
    assert sum(classes(loans.portfolio_summary(db, users["fin"])).values()) == 2


def test_each_page_and_each_scope_has_its_own_entry(db, users, make_loan, caching, monkeypatch):
    """The entry is keyed by the statement's SQL and every value in it: the page, the branch, the filter."""
    monkeypatch.setattr(pagination, "LARGE_COUNT", 2)
    for n in range(1, 6):
        make_loan(loan_number=f"KL000{n}")
    query = lambda cut: select(Loan.id).where(Loan.loan_number >= cut).order_by(Loan.loan_number)  # noqa: E731
    pages = [pagination.paginate(db, query("KL0001"), page, 2, reuse_large_pages=True) for page in (1, 2, 3)]
    assert [len(p.items) for p in pages] == [2, 2, 1] and len({i for p in pages for i in p.items}) == 5
    again = [pagination.paginate(db, query("KL0001"), page, 2, reuse_large_pages=True).items for page in (1, 2, 3)]
    assert again == [p.items for p in pages]
    other = pagination.paginate(db, query("KL0003"), 1, 2, reuse_large_pages=True)
    assert other.total == 3 and other.items == pages[1].items  # another value: another count, another page


def test_two_databases_sharing_a_redis_never_read_each_others_values(service_app):
    redis.Redis.from_url(REDIS_DB).flushdb()
    saved = {k: service_app.config[k] for k in ("AGGREGATE_CACHE_SECONDS", "REDIS_URL", "DATABASE_URL")}
    try:
        def remembered_in(database_url: str, value: int) -> int:
            service_app.config.update(AGGREGATE_CACHE_SECONDS=60, REDIS_URL=REDIS_DB, DATABASE_URL=database_url)
            cache.init_app(service_app)
            with service_app.app_context():
                return cache.remembered("portfolio", lambda: value)

        assert remembered_in("postgresql+psycopg://kisht:one@db/kisht", 1) == 1
        assert remembered_in("postgresql+psycopg://kisht:one@db/kisht_staging", 2) == 2
        assert remembered_in("postgresql+psycopg://kisht:other-password@db/kisht", 3) == 1  # same database
    finally:
        service_app.config.update(saved)
        cache.init_app(service_app)
