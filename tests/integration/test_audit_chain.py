"""The audit chain appends late: `record()` stages an entry and the commit appends it (services.audit).

The first tests run in the shared rolled-back transaction on both databases; the concurrent ones commit,
so they use a database of their own per backend.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import DBAPIError

from tests import pg
from tests.conftest import TEST_CONFIG, migrate
from webapp import create_app
from webapp.models import AuditChainHead, AuditEntry
from webapp.services import audit, disputes


def head_seq(session) -> int:
    return session.scalar(select(AuditChainHead.seq).where(AuditChainHead.id == 1))


def actions_after(session, seq: int) -> list[str]:
    return list(session.scalars(select(AuditEntry.action).where(AuditEntry.seq > seq).order_by(AuditEntry.seq)))


def chain_statements(app):
    """Collects the SQL statements that touch the chain head, on the test's engine."""
    seen: list[str] = []

    def listener(_conn, _cursor, statement, *_args):
        if "audit_chain_head" in statement:
            seen.append(statement)

    event.listen(app.extensions["kisht.engine"], "before_cursor_execute", listener)
    return seen, lambda: event.remove(app.extensions["kisht.engine"], "before_cursor_execute", listener)


# ---------------------------------------------------------------- in one transaction (both databases)

def test_record_takes_the_chain_head_only_at_commit(db, system, app):
    start = head_seq(db)
    seen, stop = chain_statements(app)
    try:
        entry = audit.record(db, system, "test.first", "test", 1)
        with db.begin_nested():  # releasing a savepoint is not the commit
            audit.record(db, system, "test.second", "test", 2)
        assert seen == [] and entry.seq is None
        db.commit()
    finally:
        stop()
    assert len(seen) == 2  # one UPDATE reserving both seqs, one setting the last hash
    assert (entry.seq, actions_after(db, start)) == (start + 1, ["test.first", "test.second"])
    assert entry.hash == audit.entry_hash(entry)
    assert audit.verify_chain(db).ok


def test_an_entry_staged_in_a_rolled_back_savepoint_is_not_written(db, system):
    start = head_seq(db)
    audit.record(db, system, "test.before", "test", 1)
    with pytest.raises(RuntimeError):
        with db.begin_nested():
            audit.record(db, system, "test.in_rolled_back", "test", 2)
            raise RuntimeError("refused")
    with pytest.raises(RuntimeError):
        with db.begin_nested():
            with db.begin_nested():
                audit.record(db, system, "test.in_released_inside_rolled_back", "test", 3)
            raise RuntimeError("refused")
    with db.begin_nested():
        audit.record(db, system, "test.in_released", "test", 4)
    audit.record(db, system, "test.after", "test", 5)
    db.commit()
    assert actions_after(db, start) == ["test.before", "test.in_released", "test.after"]
    assert head_seq(db) == start + 3 and audit.verify_chain(db).ok


def test_an_entry_read_inside_a_savepoint_that_rolls_back_is_still_written(db, system):
    start = head_seq(db)
    audit.record(db, system, "test.before", "test", 1)
    with pytest.raises(RuntimeError):
        with db.begin_nested():
            assert actions_after(db, start) == ["test.before"]  # a reader here appends it, inside the savepoint
            audit.record(db, system, "test.in_rolled_back", "test", 2)
            assert actions_after(db, start) == ["test.before", "test.in_rolled_back"]
            raise RuntimeError("refused")
    assert actions_after(db, start) == ["test.before"]  # appended again, outside the savepoint
    db.commit()
    assert actions_after(db, start) == ["test.before"] and head_seq(db) == start + 1
    assert audit.verify_chain(db).ok


def test_a_rolled_back_transaction_writes_nothing_and_the_refusal_after_it_is_written(db, system):
    start = head_seq(db)
    audit.record(db, system, "loan.updated", "loan", "KL1")
    db.rollback()
    attempt = audit.RefusedAttempt(audit.Actor(None, "system"), "loan.change_refused", "loan", "KL1",
                                   {"principal": "1.00"})
    audit.record_refusal(db, attempt)
    db.commit()
    assert actions_after(db, start) == ["loan.change_refused"]
    assert head_seq(db) == start + 1 and audit.verify_chain(db).ok


def test_readers_in_the_same_transaction_see_staged_entries(db, system, users, make_loan):
    make_loan(loan_number="KL1")
    dispute = disputes.raise_dispute(db, users["col"], "KL1", {
        "category": "PAYMENT_NOT_CREDITED", "description": "Paid by UPI on the 3rd; not shown."}, [])
    assert [e.action for e in disputes.timeline(db, dispute)] == ["dispute.raised"]  # no commit in between
    start = head_seq(db)
    audit.record(db, system, "test.staged", "test", 1)
    assert db.execute(text("SELECT COUNT(*) FROM audit_log WHERE action = 'test.staged'")).scalar() == 1
    audit.record(db, system, "test.before_bulk", "test", 2)
    audit.record_many(db, audit.SYSTEM, "test.bulk", "test", [(3, None, None, None), (4, None, None, None)])
    audit.record(db, system, "test.after_bulk", "test", 5)
    assert audit.verify_chain(db).ok
    assert actions_after(db, start) == ["test.staged", "test.before_bulk", "test.bulk", "test.bulk",
                                        "test.after_bulk"]


# ---------------------------------------------------------------- concurrent transactions (a database of their own)

@pytest.fixture(scope="module")
def chain_app(backend, tmp_path_factory):
    url = (f"sqlite:///{tmp_path_factory.mktemp('chain') / 'chain.db'}" if backend == "sqlite"
           else pg.fresh_database("kisht_audit_chain"))
    application = create_app(TEST_CONFIG | {"DATABASE_URL": url, "DB_POOL_SIZE": 12})
    migrate(application)
    yield application
    application.extensions["kisht.engine"].dispose()


def new_session(chain_app):
    return chain_app.extensions["kisht.sessionmaker"]()


def test_an_uncommitted_record_does_not_block_another_transaction(chain_app, backend, system):
    if backend != "postgresql":
        pytest.skip("SQLite has one writer per database; the row lock is PostgreSQL's")
    with new_session(chain_app) as reader:
        start = head_seq(reader)
    holder = new_session(chain_app)
    try:
        holder.execute(text("SELECT 1"))  # its transaction is open
        slow = audit.record(holder, system, "test.slow", "test", 1)  # ...and stays open, not committed

        def other_transaction():
            with new_session(chain_app) as other:
                other.execute(text("SET LOCAL lock_timeout = '3s'"))
                fast = audit.record(other, system, "test.fast", "test", 2)
                other.commit()
                return fast.seq

        with ThreadPoolExecutor(max_workers=1) as pool:
            try:
                fast_seq = pool.submit(other_transaction).result(timeout=30)
            except DBAPIError as error:
                pytest.fail(f"the other transaction waited for the chain head: {error.orig}")
        holder.commit()
    finally:
        holder.close()
    assert (fast_seq, slow.seq) == (start + 1, start + 2)  # appended in commit order
    with new_session(chain_app) as reader:
        assert actions_after(reader, start) == ["test.fast", "test.slow"]
        fast_at = reader.scalar(select(AuditEntry.occurred_at).where(AuditEntry.seq == fast_seq))
        assert slow.occurred_at < fast_at  # occurred_at is the moment of record(), not of the append
        assert audit.verify_chain(reader).ok


def test_concurrent_transactions_build_one_gap_free_chain(chain_app, system):
    threads, commits = 8, 20
    with new_session(chain_app) as reader:
        start = head_seq(reader)
    barrier = threading.Barrier(threads)

    def work(worker):
        barrier.wait()
        for i in range(commits):
            with new_session(chain_app) as session:
                audit.record(session, system, "test.payment_posted", "payment", f"{worker}-{i}")
                time.sleep(0.001)  # the rest of the request: rendering, the idempotency record
                try:
                    with session.begin_nested():
                        audit.record(session, system, "test.maybe", "payment", f"{worker}-{i}")
                        if i % 2:
                            raise RuntimeError("refused")
                except RuntimeError:
                    pass
                session.commit()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(work, range(threads)))
    written = threads * commits + threads * commits // 2
    with new_session(chain_app) as reader:
        seqs = list(reader.scalars(select(AuditEntry.seq).where(AuditEntry.seq > start).order_by(AuditEntry.id)))
        assert seqs == list(range(start + 1, start + written + 1))  # gap-free, ids in seq order
        assert head_seq(reader) == start + written
        assert reader.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "test.maybe", AuditEntry.seq > start)) == threads * commits // 2
        report = audit.verify_chain(reader)
        assert report.ok, report.problem
