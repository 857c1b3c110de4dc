"""Real concurrent HTTP requests against a live server on PostgreSQL: one payment per key, one per UTR, 409 in flight."""
import json
import threading
import uuid

from sqlalchemy import text

from webapp.services import idempotency


def all_at_once(count: int, work):
    barrier = threading.Barrier(count)
    results = [None] * count

    def run(i):
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return results


def count_payments(live, utr: str) -> int:
    with live.app.extensions["kisht.engine"].connect() as connection:
        return connection.execute(text("SELECT count(*) FROM payments WHERE utr = :utr"), {"utr": utr}).scalar()


def test_same_key_at_once_books_once_and_every_answer_is_the_same(live):
    key, utr = f"conc-{uuid.uuid4().hex}", "555000000001"
    body = {"loan_number": "KL0001", "amount": "100.00", "mode": "UPI", "utr": utr}
    results = all_at_once(6, lambda i: live.call("POST", "/payments", "col", body, {"Idempotency-Key": key}))
    statuses = [status for status, _, _ in results]
    assert statuses == [201] * 6, [r[2] for r in results]
    assert len({raw for _, _, raw in results}) == 1  # byte for byte
    assert sum(1 for _, headers, _ in results if headers.get("Idempotent-Replayed") == "true") == 5
    assert count_payments(live, utr) == 1


def test_same_utr_different_keys_at_once_books_once(live):
    utr = "555000000002"
    body = {"loan_number": "KL0002", "amount": "100.00", "mode": "UPI", "utr": utr}
    results = all_at_once(6, lambda i: live.call("POST", "/payments", "col", body, {"Idempotency-Key": uuid.uuid4().hex}))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [201] + [409] * 5
    reference = next(json.loads(raw)["data"]["reference"] for status, _, raw in results if status == 201)
    for status, _, raw in results:
        if status == 409:
            error = json.loads(raw)["error"]
            assert error["code"] == "duplicate_utr" and reference in error["message"]
    assert count_payments(live, utr) == 1


def test_a_key_still_in_flight_is_409(live, monkeypatch):
    monkeypatch.setattr(idempotency, "IN_FLIGHT_WAIT", "1s")
    key, utr = f"flight-{uuid.uuid4().hex}", "555000000003"
    body = {"loan_number": "KL0004", "amount": "100.00", "mode": "UPI", "utr": utr}
    live.token("col")
    engine = live.app.extensions["kisht.engine"]
    first = {}
    with engine.connect() as blocker:
        blocker.execute(text("SELECT id FROM loans WHERE loan_number = 'KL0004' FOR UPDATE"))  # holds the first request

        def send_first():
            first["result"] = live.call("POST", "/payments", "col", body, {"Idempotency-Key": key})

        thread = threading.Thread(target=send_first)
        thread.start()
        for _ in range(100):  # wait until the first request holds its claim and waits for the loan
            with engine.connect() as probe:
                waiting = probe.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
                    "AND query LIKE '%FROM loans%'")).scalar()
            if waiting:
                break
            threading.Event().wait(0.05)
        status, _, raw = live.call("POST", "/payments", "col", body, {"Idempotency-Key": key})
        assert status == 409 and json.loads(raw)["error"]["code"] == "idempotency_in_flight"
        blocker.rollback()
    thread.join(timeout=60)
    assert first["result"][0] == 201
    status, headers, raw = live.call("POST", "/payments", "col", body, {"Idempotency-Key": key})
    assert status == 201 and headers.get("Idempotent-Replayed") == "true" and raw == first["result"][2]
    assert count_payments(live, utr) == 1
